//! Accounts: an address's balance and next nonce, and the `Transfer` rule
//! (docs/ledger.md, "Transactions").

use glassbox_primitives::codec::{Reader, Writer};
use glassbox_types::PublicKey;
use serde::{Deserialize, Serialize};

use crate::apply::Event;
use crate::error::{DecodeError, ExecutionError};
use crate::records::RECORD_VERSION;
use crate::state::State;

/// A balance and the next nonce of an address.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    /// Spendable balance.
    pub balance: u64,
    /// The nonce the account's next transaction must carry.
    pub nonce: u64,
}

impl Account {
    /// `u8` 1, `u64` balance, `u64` nonce.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(17);
        w.u8(RECORD_VERSION);
        w.u64(self.balance);
        w.u64(self.nonce);
        w.into_bytes()
    }

    /// Decodes [`Account::encode`]'s form.
    pub fn decode(bytes: &[u8]) -> Result<Account, DecodeError> {
        let mut r = Reader::new("account record", bytes);
        r.version(RECORD_VERSION)?;
        let a = Account {
            balance: r.u64()?,
            nonce: r.u64()?,
        };
        r.finish()?;
        Ok(a)
    }
}

impl State {
    pub(crate) fn transfer(
        &mut self,
        sender: &PublicKey,
        account: &mut Account,
        to: &PublicKey,
        amount: u64,
    ) -> Result<Vec<Event>, ExecutionError> {
        if amount == 0 {
            return Err(ExecutionError::ZeroAmount { field: "amount" });
        }
        let balance =
            account
                .balance
                .checked_sub(amount)
                .ok_or(ExecutionError::InsufficientBalance {
                    field: "amount",
                    balance: account.balance,
                    needed: amount,
                })?;
        if to != sender {
            let mut recipient = self.load_account(to)?.unwrap_or_default();
            recipient.balance =
                recipient
                    .balance
                    .checked_add(amount)
                    .ok_or(ExecutionError::BalanceOverflow {
                        account: to.to_string(),
                    })?;
            self.put_account(to, &recipient)?;
            account.balance = balance;
        }
        Ok(vec![Event::Transferred {
            from: *sender,
            to: *to,
            amount,
        }])
    }
}
