//! Executors and their stake: the record, and the rules that register an
//! executor, change its stake, unbond and withdraw it (docs/ledger.md,
//! "Transactions", kinds 1-6 and 13).

use glassbox_primitives::codec::{Reader, Writer};
use glassbox_types::PublicKey;
use serde::{Deserialize, Serialize};

use crate::accounts::Account;
use crate::apply::Event;
use crate::error::{DecodeError, ExecutionError};
use crate::limits;
use crate::records::RECORD_VERSION;
use crate::serde_util;
use crate::state::State;

/// Stake on its way out: released to the owner's balance by a `Withdraw`
/// at or after `release_height`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unbonding {
    /// The amount.
    pub amount: u64,
    /// The first height at which it can be withdrawn.
    pub release_height: u64,
}

/// A registered executor: a node that runs inference jobs for a stake.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Executor {
    /// The owner (the key that registered it and controls its stake).
    #[serde(with = "serde_util::public_key")]
    pub owner: PublicKey,
    /// Bonded stake; 0 once deregistered (then only unbonding remains).
    pub stake: u64,
    /// Declared maximum of concurrent jobs (1..=[`limits::MAX_CAPACITY`]).
    pub capacity: u32,
    /// `http(s)://` URL where its node serves model blobs
    /// (≤ [`limits::MAX_ENDPOINT_BYTES`]).
    pub endpoint: String,
    /// Height of its (latest) registration.
    pub registered_height: u64,
    /// Pending unbondings, by increasing release height
    /// (≤ [`limits::MAX_UNBONDING_ENTRIES`]).
    pub unbonding: Vec<Unbonding>,
    /// Jobs it holds a slot of that are still open (≤ its capacity).
    #[serde(default)]
    pub active_jobs: u32,
    /// Disputed jobs it took part in; its stake is locked while any is
    /// open (docs/jobs.md).
    #[serde(default)]
    pub disputes: u32,
    /// Jobs it was paid for (a final result it computed): the count the
    /// concentration report ranks operators by.
    #[serde(default)]
    pub served: u64,
    /// The height of the missed slot that paused it: a paused executor is
    /// not drawn for new slots until a `Resume` from its owner (the node's
    /// heartbeat) (docs/jobs.md, "Liveness").
    #[serde(default)]
    pub paused_height: Option<u64>,
}

impl Executor {
    /// Whether it is registered (has stake); a deregistered executor's
    /// record remains until its unbonding is withdrawn.
    pub fn is_active(&self) -> bool {
        self.stake > 0
    }

    /// The sum of its unbonding entries (saturating; it cannot exceed the
    /// supply, which fits in `u64`).
    pub fn unbonding_total(&self) -> u64 {
        self.unbonding
            .iter()
            .fold(0u64, |acc, u| acc.saturating_add(u.amount))
    }

    /// `u8` 1, owner, `u64` stake, `u32` capacity, `str` endpoint, `u64`
    /// registered height, `u32` count + (`u64` amount, `u64` release
    /// height) entries, `u32` active jobs, `u32` disputes, `u64` served,
    /// opt `u64` paused height.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(64 + self.endpoint.len() + 16 * self.unbonding.len());
        w.u8(RECORD_VERSION);
        self.owner.write_to(&mut w);
        w.u64(self.stake);
        w.u32(self.capacity);
        w.str(&self.endpoint);
        w.u64(self.registered_height);
        w.len(self.unbonding.len());
        for u in &self.unbonding {
            w.u64(u.amount);
            w.u64(u.release_height);
        }
        w.u32(self.active_jobs);
        w.u32(self.disputes);
        w.u64(self.served);
        w.option(self.paused_height.as_ref(), |w, h| w.u64(*h));
        w.into_bytes()
    }

    /// Decodes [`Executor::encode`]'s form: lengths within their limits,
    /// unbonding entries positive and strictly increasing in release
    /// height.
    pub fn decode(bytes: &[u8]) -> Result<Executor, DecodeError> {
        let mut r = Reader::new("executor record", bytes);
        r.version(RECORD_VERSION)?;
        let owner = PublicKey::read_from(&mut r, "owner")?;
        let stake = r.u64()?;
        let capacity = r.u32()?;
        let endpoint = r.str("endpoint", limits::MAX_ENDPOINT_BYTES)?;
        let registered_height = r.u64()?;
        let n = r.len("unbonding entries", limits::MAX_UNBONDING_ENTRIES)?;
        let mut unbonding: Vec<Unbonding> = Vec::with_capacity(n);
        for _ in 0..n {
            let at = r.pos();
            let u = Unbonding {
                amount: r.u64()?,
                release_height: r.u64()?,
            };
            if u.amount == 0 {
                return Err(r.err_at(at, "unbonding amount is 0"));
            }
            if unbonding
                .last()
                .is_some_and(|p| p.release_height >= u.release_height)
            {
                return Err(r.err_at(at, "unbonding release heights are not increasing"));
            }
            unbonding.push(u);
        }
        let active_jobs = r.u32()?;
        let disputes = r.u32()?;
        let served = r.u64()?;
        let paused_height = r.option("paused height", |r| r.u64())?;
        r.finish()?;
        Ok(Executor {
            owner,
            stake,
            capacity,
            endpoint,
            registered_height,
            unbonding,
            active_jobs,
            disputes,
            served,
            paused_height,
        })
    }
}

/// Checks an executor endpoint: `http://` or `https://` then a host, at
/// most [`limits::MAX_ENDPOINT_BYTES`] of printable ASCII without spaces.
pub fn validate_endpoint(endpoint: &str) -> Result<(), String> {
    if endpoint.len() > limits::MAX_ENDPOINT_BYTES {
        return Err(format!(
            "{} bytes, over the limit of {}",
            endpoint.len(),
            limits::MAX_ENDPOINT_BYTES
        ));
    }
    if !endpoint.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be printable ASCII without spaces".into());
    }
    let rest = endpoint
        .strip_prefix("https://")
        .or_else(|| endpoint.strip_prefix("http://"))
        .ok_or_else(|| format!("`{endpoint}` does not start with http:// or https://"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("`{endpoint}` has no host"));
    }
    Ok(())
}

/// Checks an executor capacity (1..=[`limits::MAX_CAPACITY`]).
pub(crate) fn capacity_ok(capacity: u32) -> bool {
    (1..=limits::MAX_CAPACITY).contains(&capacity)
}

impl State {
    pub(crate) fn register_executor(
        &mut self,
        owner: &PublicKey,
        account: &mut Account,
        stake: u64,
        capacity: u32,
        endpoint: &str,
        height: u64,
    ) -> Result<Vec<Event>, ExecutionError> {
        check_capacity(capacity)?;
        validate_endpoint(endpoint).map_err(|reason| ExecutionError::InvalidEndpoint { reason })?;
        let min = self.params.min_executor_stake;
        if stake < min {
            return Err(ExecutionError::StakeBelowMinimum {
                field: "stake",
                stake,
                min,
            });
        }
        let (unbonding, active_jobs, disputes, served) = match self.executor(owner) {
            Some(e) if e.is_active() => {
                return Err(ExecutionError::AlreadyRegistered {
                    owner: owner.to_string(),
                });
            }
            Some(e) => (e.unbonding.clone(), e.active_jobs, e.disputes, e.served),
            None => (Vec::new(), 0, 0, 0),
        };
        account.balance =
            account
                .balance
                .checked_sub(stake)
                .ok_or(ExecutionError::InsufficientBalance {
                    field: "stake",
                    balance: account.balance,
                    needed: stake,
                })?;
        self.put_executor(Executor {
            owner: *owner,
            stake,
            capacity,
            endpoint: endpoint.to_string(),
            registered_height: height,
            unbonding,
            active_jobs,
            disputes,
            served,
            paused_height: None,
        })?;
        Ok(vec![Event::ExecutorRegistered {
            owner: *owner,
            stake,
            capacity,
            endpoint: endpoint.to_string(),
        }])
    }

    /// The sender's active executor, cloned for modification.
    fn active_executor(&self, owner: &PublicKey) -> Result<Executor, ExecutionError> {
        match self.executor(owner) {
            None => Err(ExecutionError::NotAnExecutor {
                owner: owner.to_string(),
            }),
            Some(e) if !e.is_active() => Err(ExecutionError::ExecutorInactive {
                owner: owner.to_string(),
            }),
            Some(e) => Ok(e.clone()),
        }
    }

    pub(crate) fn add_stake(
        &mut self,
        owner: &PublicKey,
        account: &mut Account,
        amount: u64,
    ) -> Result<Vec<Event>, ExecutionError> {
        if amount == 0 {
            return Err(ExecutionError::ZeroAmount { field: "amount" });
        }
        let mut e = self.active_executor(owner)?;
        let balance =
            account
                .balance
                .checked_sub(amount)
                .ok_or(ExecutionError::InsufficientBalance {
                    field: "amount",
                    balance: account.balance,
                    needed: amount,
                })?;
        e.stake = e
            .stake
            .checked_add(amount)
            .ok_or(ExecutionError::StakeOverflow {
                owner: owner.to_string(),
                field: "stake",
            })?;
        let stake = e.stake;
        account.balance = balance;
        self.put_executor(e)?;
        Ok(vec![Event::StakeChanged {
            owner: *owner,
            stake,
        }])
    }

    fn release_height(&self, height: u64) -> Result<u64, ExecutionError> {
        height.checked_add(self.params.unbonding_blocks).ok_or(
            ExecutionError::ReleaseHeightOverflow {
                height,
                blocks: self.params.unbonding_blocks,
            },
        )
    }

    pub(crate) fn unbond(
        &mut self,
        owner: &PublicKey,
        amount: u64,
        height: u64,
    ) -> Result<Vec<Event>, ExecutionError> {
        if amount == 0 {
            return Err(ExecutionError::ZeroAmount { field: "amount" });
        }
        let mut e = self.active_executor(owner)?;
        check_unlocked(&e)?;
        let remaining = e
            .stake
            .checked_sub(amount)
            .ok_or(ExecutionError::InsufficientStake {
                stake: e.stake,
                amount,
            })?;
        let min = self.params.min_executor_stake;
        if remaining < min {
            return Err(ExecutionError::StakeBelowMinimum {
                field: "remaining stake (deregister to unbond all of it)",
                stake: remaining,
                min,
            });
        }
        let release_height = self.release_height(height)?;
        add_unbonding(&mut e, amount, release_height)?;
        e.stake = remaining;
        self.put_executor(e)?;
        Ok(vec![
            Event::Unbonding {
                owner: *owner,
                amount,
                release_height,
            },
            Event::StakeChanged {
                owner: *owner,
                stake: remaining,
            },
        ])
    }

    pub(crate) fn deregister(
        &mut self,
        owner: &PublicKey,
        height: u64,
    ) -> Result<Vec<Event>, ExecutionError> {
        let mut e = self.active_executor(owner)?;
        check_unlocked(&e)?;
        if e.active_jobs > 0 {
            return Err(ExecutionError::ExecutorBusy {
                owner: owner.to_string(),
                active_jobs: e.active_jobs,
            });
        }
        let amount = e.stake;
        let release_height = self.release_height(height)?;
        add_unbonding(&mut e, amount, release_height)?;
        e.stake = 0;
        self.put_executor(e)?;
        Ok(vec![
            Event::Unbonding {
                owner: *owner,
                amount,
                release_height,
            },
            Event::StakeChanged {
                owner: *owner,
                stake: 0,
            },
            Event::ExecutorDeregistered { owner: *owner },
        ])
    }

    pub(crate) fn withdraw(
        &mut self,
        owner: &PublicKey,
        account: &mut Account,
        height: u64,
    ) -> Result<Vec<Event>, ExecutionError> {
        let mut e = self
            .executor(owner)
            .cloned()
            .ok_or(ExecutionError::NotAnExecutor {
                owner: owner.to_string(),
            })?;
        check_unlocked(&e)?;
        let (released, pending): (Vec<Unbonding>, Vec<Unbonding>) =
            e.unbonding.iter().partition(|u| u.release_height <= height);
        if released.is_empty() {
            return Err(ExecutionError::NothingToWithdraw {
                height,
                next_release: pending.first().map(|u| u.release_height),
            });
        }
        let amount = released
            .iter()
            .try_fold(0u64, |acc, u| acc.checked_add(u.amount))
            .ok_or(ExecutionError::StakeOverflow {
                owner: owner.to_string(),
                field: "unbonding",
            })?;
        let balance =
            account
                .balance
                .checked_add(amount)
                .ok_or(ExecutionError::BalanceOverflow {
                    account: owner.to_string(),
                })?;
        e.unbonding = pending;
        if e.stake == 0 && e.unbonding.is_empty() {
            self.remove_executor(owner);
        } else {
            self.put_executor(e)?;
        }
        account.balance = balance;
        Ok(vec![Event::Withdrawn {
            owner: *owner,
            amount,
        }])
    }

    pub(crate) fn update_executor(
        &mut self,
        owner: &PublicKey,
        capacity: u32,
        endpoint: &str,
    ) -> Result<Vec<Event>, ExecutionError> {
        let mut e = self.active_executor(owner)?;
        check_capacity(capacity)?;
        validate_endpoint(endpoint).map_err(|reason| ExecutionError::InvalidEndpoint { reason })?;
        e.capacity = capacity;
        e.endpoint = endpoint.to_string();
        self.put_executor(e)?;
        Ok(vec![Event::ExecutorUpdated {
            owner: *owner,
            capacity,
            endpoint: endpoint.to_string(),
        }])
    }
}

impl State {
    /// The checks of a `Resume`: the sender's active executor, paused, and
    /// the height it was paused at.
    pub(crate) fn check_resume(
        &self,
        owner: &PublicKey,
    ) -> Result<(Executor, u64), ExecutionError> {
        let e = self.active_executor(owner)?;
        match e.paused_height {
            Some(h) => Ok((e, h)),
            None => Err(ExecutionError::NotPaused {
                owner: owner.to_string(),
            }),
        }
    }

    pub(crate) fn resume(&mut self, owner: &PublicKey) -> Result<Vec<Event>, ExecutionError> {
        let (mut e, paused_height) = self.check_resume(owner)?;
        e.paused_height = None;
        self.put_executor(e)?;
        Ok(vec![Event::ExecutorResumed {
            owner: *owner,
            paused_height,
        }])
    }
}

/// Refuses to move stake of an executor locked by disputes.
fn check_unlocked(e: &Executor) -> Result<(), ExecutionError> {
    if e.disputes > 0 {
        return Err(ExecutionError::ExecutorLocked {
            owner: e.owner.to_string(),
            disputes: e.disputes,
        });
    }
    Ok(())
}

fn check_capacity(capacity: u32) -> Result<(), ExecutionError> {
    if capacity_ok(capacity) {
        Ok(())
    } else {
        Err(ExecutionError::InvalidCapacity {
            capacity,
            max: limits::MAX_CAPACITY,
        })
    }
}

/// Adds an unbonding entry, merging with an entry of the same release
/// height and keeping the list sorted by release height.
fn add_unbonding(e: &mut Executor, amount: u64, release_height: u64) -> Result<(), ExecutionError> {
    match e
        .unbonding
        .binary_search_by_key(&release_height, |u| u.release_height)
    {
        Ok(i) => {
            let owner = e.owner.to_string();
            let u = e.unbonding.get_mut(i).ok_or(ExecutionError::Internal {
                reason: "unbonding index out of range".into(),
            })?;
            u.amount = u
                .amount
                .checked_add(amount)
                .ok_or(ExecutionError::StakeOverflow {
                    owner,
                    field: "unbonding",
                })?;
        }
        Err(i) => {
            if e.unbonding.len() >= limits::MAX_UNBONDING_ENTRIES {
                return Err(ExecutionError::TooManyUnbonding {
                    max: limits::MAX_UNBONDING_ENTRIES,
                });
            }
            e.unbonding.insert(
                i,
                Unbonding {
                    amount,
                    release_height,
                },
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        for ok in ["http://a", "https://node-1.example.org:8080/blobs"] {
            assert_eq!(validate_endpoint(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "ftp://a",
            "http://",
            "https:///x",
            "http://a b",
            "http://é",
            &format!("http://{}", "a".repeat(300)),
        ] {
            assert!(validate_endpoint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn executor_record_canonical_unbonding() {
        let owner = glassbox_types::SecretKey::from_seed(&[1; 32]).public();
        let mut e = Executor {
            owner,
            stake: 10,
            capacity: 2,
            endpoint: "http://x".into(),
            registered_height: 3,
            active_jobs: 1,
            disputes: 0,
            served: 0,
            paused_height: Some(7),
            unbonding: vec![
                Unbonding {
                    amount: 1,
                    release_height: 5,
                },
                Unbonding {
                    amount: 2,
                    release_height: 6,
                },
            ],
        };
        assert_eq!(Executor::decode(&e.encode()), Ok(e.clone()));
        e.unbonding.swap(0, 1);
        assert!(Executor::decode(&e.encode()).is_err(), "not increasing");
        e.unbonding = vec![Unbonding {
            amount: 0,
            release_height: 1,
        }];
        assert!(Executor::decode(&e.encode()).is_err(), "zero amount");
    }
}
