//! The genesis: the chain's name, time, parameters, initial balances and
//! executors (docs/ledger.md, "Genesis"). Its canonical encoding's BLAKE3
//! hash is the chain id.

use std::collections::BTreeSet;

use glassbox_primitives::ChainId;
use glassbox_types::PublicKey;
use serde::{Deserialize, Serialize};

use crate::accounts::Account;
use crate::error::GenesisError;
use crate::limits;
use crate::records::{ChainInfo, Params};
use crate::serde_util;
use crate::staking::{Executor, capacity_ok, validate_endpoint};
use crate::state::State;
use glassbox_primitives::codec::Writer;

/// Genesis encoding format version.
pub const GENESIS_VERSION: u16 = 1;
const GENESIS_MAGIC: &[u8; 4] = glassbox_primitives::tags::GENESIS;

/// An initial balance.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisAccount {
    /// The address (`ed25519:<hex>`).
    #[serde(with = "serde_util::public_key")]
    pub address: PublicKey,
    /// Its balance.
    pub balance: u64,
}

/// An initial executor (its stake is created at genesis, on top of the
/// balances).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisExecutor {
    /// The owner (`ed25519:<hex>`).
    #[serde(with = "serde_util::public_key")]
    pub owner: PublicKey,
    /// Bonded stake (≥ `params.min_executor_stake`).
    pub stake: u64,
    /// Declared concurrent jobs.
    pub capacity: u32,
    /// `http(s)://` URL serving model blobs.
    pub endpoint: String,
}

/// The genesis file (JSON through serde).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisState {
    /// The chain's name: 1–64 bytes of `[a-z0-9._-]`, starting with a
    /// letter or digit.
    pub chain_name: String,
    /// The genesis time, ms since the Unix epoch; the first block's
    /// timestamp must not be earlier.
    pub genesis_time_ms: u64,
    /// The parameters ([`Params::default`] when omitted).
    #[serde(default)]
    pub params: Params,
    /// Initial balances (no address twice).
    #[serde(default)]
    pub accounts: Vec<GenesisAccount>,
    /// Initial executors (no owner twice).
    #[serde(default)]
    pub executors: Vec<GenesisExecutor>,
}

fn check_chain_name(name: &str) -> Result<(), GenesisError> {
    let err = |reason: String| GenesisError::ChainName {
        name: name.chars().take(80).collect(),
        reason,
    };
    if name.is_empty() || name.len() > limits::MAX_CHAIN_NAME_BYTES {
        return Err(err(format!(
            "must be 1 to {} bytes, is {}",
            limits::MAX_CHAIN_NAME_BYTES,
            name.len()
        )));
    }
    let first_ok = name
        .bytes()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let all_ok = name
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(&c));
    if !first_ok || !all_ok {
        return Err(err(
            "use lower-case letters, digits and `._-`, starting with a letter or digit".into(),
        ));
    }
    Ok(())
}

impl GenesisState {
    /// Checks the chain name, the parameters, the counts, duplicates, each
    /// executor (stake, capacity, endpoint) and that the total supply fits
    /// in `u64`.
    pub fn validate(&self) -> Result<(), GenesisError> {
        check_chain_name(&self.chain_name)?;
        self.params.validate()?;
        if self.accounts.len() > limits::MAX_GENESIS_ACCOUNTS {
            return Err(GenesisError::TooManyAccounts {
                count: self.accounts.len(),
                max: limits::MAX_GENESIS_ACCOUNTS,
            });
        }
        if self.executors.len() > limits::MAX_GENESIS_EXECUTORS {
            return Err(GenesisError::TooManyExecutors {
                count: self.executors.len(),
                max: limits::MAX_GENESIS_EXECUTORS,
            });
        }
        let mut seen = BTreeSet::new();
        for (index, a) in self.accounts.iter().enumerate() {
            if !seen.insert(a.address.to_bytes()) {
                return Err(GenesisError::DuplicateAccount {
                    index,
                    address: a.address.to_string(),
                });
            }
        }
        let mut seen = BTreeSet::new();
        for (index, e) in self.executors.iter().enumerate() {
            if !seen.insert(e.owner.to_bytes()) {
                return Err(GenesisError::DuplicateExecutor {
                    index,
                    owner: e.owner.to_string(),
                });
            }
            let err = |reason: String| GenesisError::Executor {
                index,
                owner: e.owner.to_string(),
                reason,
            };
            if e.stake < self.params.min_executor_stake {
                return Err(err(format!(
                    "stake {} is below params.min_executor_stake = {}",
                    e.stake, self.params.min_executor_stake
                )));
            }
            if !capacity_ok(e.capacity) {
                return Err(err(format!(
                    "capacity {} must be between 1 and {}",
                    e.capacity,
                    limits::MAX_CAPACITY
                )));
            }
            validate_endpoint(&e.endpoint).map_err(|r| err(format!("endpoint: {r}")))?;
        }
        self.total_supply().map(|_| ())
    }

    /// The sum of the balances and stakes.
    pub fn total_supply(&self) -> Result<u64, GenesisError> {
        let mut total = 0u64;
        for (i, a) in self.accounts.iter().enumerate() {
            total = total
                .checked_add(a.balance)
                .ok_or_else(|| GenesisError::SupplyOverflow {
                    at: format!("accounts[{i}]"),
                })?;
        }
        for (i, e) in self.executors.iter().enumerate() {
            total = total
                .checked_add(e.stake)
                .ok_or_else(|| GenesisError::SupplyOverflow {
                    at: format!("executors[{i}]"),
                })?;
        }
        Ok(total)
    }

    /// The canonical encoding (validated first): magic `GBGN`, `u16`
    /// version 1, `str` chain name, `u64` genesis time, the params record,
    /// `u32` count + (address, `u64` balance) accounts, `u32` count +
    /// (owner, `u64` stake, `u32` capacity, `str` endpoint) executors, in
    /// the listed order.
    pub fn encode(&self) -> Result<Vec<u8>, GenesisError> {
        self.validate()?;
        let mut w =
            Writer::with_capacity(128 + 40 * self.accounts.len() + 300 * self.executors.len());
        w.bytes(GENESIS_MAGIC);
        w.u16(GENESIS_VERSION);
        w.str(&self.chain_name);
        w.u64(self.genesis_time_ms);
        self.params.write_genesis(&mut w);
        w.len(self.accounts.len());
        for a in &self.accounts {
            a.address.write_to(&mut w);
            w.u64(a.balance);
        }
        w.len(self.executors.len());
        for e in &self.executors {
            e.owner.write_to(&mut w);
            w.u64(e.stake);
            w.u32(e.capacity);
            w.str(&e.endpoint);
        }
        Ok(w.into_bytes())
    }

    /// The chain id: BLAKE3 of [`GenesisState::encode`].
    pub fn chain_id(&self) -> Result<ChainId, GenesisError> {
        Ok(blake3::hash(&self.encode()?).into())
    }
}

impl State {
    /// The state at height 0 of the chain `genesis` defines.
    pub fn genesis(genesis: &GenesisState) -> Result<State, GenesisError> {
        let chain_id = genesis.chain_id()?;
        let internal = |e: String| GenesisError::Internal { reason: e };
        let mut s = State::empty(
            ChainInfo {
                chain_id,
                chain_name: genesis.chain_name.clone(),
                genesis_time_ms: genesis.genesis_time_ms,
            },
            genesis.params,
        )
        .map_err(|e| internal(e.to_string()))?;
        for a in &genesis.accounts {
            s.put_account(
                &a.address,
                &Account {
                    balance: a.balance,
                    nonce: 0,
                },
            )
            .map_err(|e| internal(e.to_string()))?;
        }
        for e in &genesis.executors {
            s.put_executor(Executor {
                owner: e.owner,
                stake: e.stake,
                capacity: e.capacity,
                endpoint: e.endpoint.clone(),
                registered_height: 0,
                unbonding: Vec::new(),
                active_jobs: 0,
                disputes: 0,
                served: 0,
                paused_height: None,
            })
            .map_err(|e| internal(e.to_string()))?;
        }
        Ok(s)
    }
}
