//! The state layout (docs/ledger.md, "State layout"): the key tags and
//! [`StateKey`] of the authenticated map, the record format version, and
//! the chain-wide records (chain identity, parameters, head, fee pool).
//! Feature records live with their rules: `accounts.rs`, `staking.rs`,
//! `registry.rs`, `jobs/`, `dispute/`.

use glassbox_primitives::ChainId;
use glassbox_types::{ModelId, PublicKey};
use serde::{Deserialize, Serialize};

use crate::error::{DecodeError, GenesisError};
use crate::limits;
use glassbox_primitives::codec::{Reader, Writer};

/// Format version byte that starts every record encoding.
pub const RECORD_VERSION: u8 = 1;

/// Key tags: the first byte of every key in the authenticated map.
pub mod tags {
    /// Chain-wide singletons (`[0x00, sub]`).
    pub const META: u8 = 0x00;
    /// `0x01 || address`: an [`Account`](crate::Account).
    pub const ACCOUNT: u8 = 0x01;
    /// `0x02 || owner`: an [`Executor`](crate::Executor).
    pub const EXECUTOR: u8 = 0x02;
    /// `0x03 || model id`: a [`ModelRecord`](crate::ModelRecord).
    pub const MODEL: u8 = 0x03;
    /// `0x04 || name || 0x00 || version`: the model id of a name@version.
    pub const MODEL_VERSION: u8 = 0x04;
    /// `0x05 || name`: the publisher owning a model name.
    pub const NAME_OWNER: u8 = 0x05;
    /// `0x06 || job id`: a [`Job`](crate::Job).
    pub const JOB: u8 = 0x06;
    /// A job's optimistic window, audit and dispute (`0x07 || job id`).
    pub const JOB_EXT: u8 = 0x07;

    /// `[META, META_CHAIN]`: the [`ChainInfo`](crate::ChainInfo).
    pub const META_CHAIN: u8 = 0x00;
    /// `[META, META_PARAMS]`: the [`Params`](crate::Params).
    pub const META_PARAMS: u8 = 0x01;
    /// `[META, META_HEAD]`: the [`Head`](crate::Head) (height, time).
    pub const META_HEAD: u8 = 0x02;
    /// `[META, META_FEE_POOL]`: the [`FeePool`](crate::FeePool).
    pub const META_FEE_POOL: u8 = 0x03;
}

/// A key of the authenticated map, by record kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateKey {
    /// The chain's identity.
    Chain,
    /// The parameters.
    Params,
    /// The latest block's height and time.
    Head,
    /// The collected fees.
    FeePool,
    /// An account by address.
    Account(PublicKey),
    /// An executor by owner.
    Executor(PublicKey),
    /// A model by id.
    Model(ModelId),
    /// A name@version's model id.
    ModelVersion {
        /// The model name.
        name: String,
        /// The version text (canonical semver).
        version: String,
    },
    /// A model name's owner.
    NameOwner(String),
    /// An inference job by id.
    Job(crate::JobId),
    /// A job's optimistic window, audit and dispute
    /// ([`JobExt`](crate::JobExt)), by job id.
    JobExt(crate::JobId),
}

impl StateKey {
    /// The key bytes (see [`tags`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        let tagged = |tag: u8, id: &[u8]| {
            let mut k = Vec::with_capacity(1 + id.len());
            k.push(tag);
            k.extend_from_slice(id);
            k
        };
        match self {
            StateKey::Chain => vec![tags::META, tags::META_CHAIN],
            StateKey::Params => vec![tags::META, tags::META_PARAMS],
            StateKey::Head => vec![tags::META, tags::META_HEAD],
            StateKey::FeePool => vec![tags::META, tags::META_FEE_POOL],
            StateKey::Account(a) => tagged(tags::ACCOUNT, &a.to_bytes()),
            StateKey::Executor(a) => tagged(tags::EXECUTOR, &a.to_bytes()),
            StateKey::Model(m) => tagged(tags::MODEL, m.as_bytes()),
            StateKey::ModelVersion { name, version } => {
                let mut k = Vec::with_capacity(2 + name.len() + version.len());
                k.push(tags::MODEL_VERSION);
                k.extend_from_slice(name.as_bytes());
                k.push(0);
                k.extend_from_slice(version.as_bytes());
                k
            }
            StateKey::NameOwner(name) => tagged(tags::NAME_OWNER, name.as_bytes()),
            StateKey::Job(id) => tagged(tags::JOB, id.as_bytes()),
            StateKey::JobExt(id) => tagged(tags::JOB_EXT, id.as_bytes()),
        }
    }
}

/// Chain parameters, fixed at genesis.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Fee floor of every transaction.
    pub min_fee: u64,
    /// Fee per encoded byte, on top of `min_fee`.
    pub fee_per_byte: u64,
    /// Least stake of an active executor (≥ 1).
    pub min_executor_stake: u64,
    /// Blocks between an unbond and its withdrawal.
    pub unbonding_blocks: u64,
    /// Largest encoded transaction.
    pub max_tx_bytes: u32,
    /// Most transactions in a block.
    pub max_block_txs: u32,
    /// Most bytes of encoded transactions in a block.
    pub max_block_bytes: u32,
    /// Price of one replica of any job (docs/jobs.md, "Price").
    #[serde(default = "defaults::job_base_price")]
    pub job_base_price: u64,
    /// Price of one replica per started million operations of the model's
    /// deterministic cost (`flops` in its manifest).
    #[serde(default = "defaults::job_price_per_mflop")]
    pub job_price_per_mflop: u64,
    /// Most replicas of one job (1..=16).
    #[serde(default = "defaults::max_job_replicas")]
    pub max_job_replicas: u8,
    /// Most canonical tensor bytes of a job's inputs, and of its outputs.
    #[serde(default = "defaults::max_job_io_bytes")]
    pub max_job_io_bytes: u32,
    /// Blocks an assigned executor has to commit.
    #[serde(default = "defaults::commit_window_blocks")]
    pub commit_window_blocks: u64,
    /// Blocks an executor has to reveal once every slot has committed.
    #[serde(default = "defaults::reveal_window_blocks")]
    pub reveal_window_blocks: u64,
    /// Stake taken from an executor that misses a deadline (into the fee
    /// pool); at most its stake.
    #[serde(default = "defaults::miss_penalty")]
    pub miss_penalty: u64,
    /// Blocks each side of a dispute has for each step (opening its trace,
    /// a bisection split, the operand openings) before it loses by
    /// timeout (docs/disputes.md).
    #[serde(default = "defaults::dispute_round_blocks")]
    pub dispute_round_blocks: u64,
    /// Share of a loser's slashed stake (or forfeited bond) paid to the
    /// winners of the dispute, in basis points; the rest is burned.
    #[serde(default = "defaults::dispute_reward_bps")]
    pub dispute_reward_bps: u32,
    /// Blocks an optimistic (`replicas = 1`) result stays pending, open to
    /// challenges, before it is final.
    #[serde(default = "defaults::challenge_window_blocks")]
    pub challenge_window_blocks: u64,
    /// What a challenger posts with a challenge, forfeited if it loses.
    #[serde(default = "defaults::challenge_bond")]
    pub challenge_bond: u64,
    /// Share of optimistic jobs re-executed by a randomly drawn auditor,
    /// in basis points.
    #[serde(default = "defaults::audit_rate_bps")]
    pub audit_rate_bps: u32,
    /// Ignored since issue #25: it capped one identity's share of the
    /// selection weight, which splitting stake evades and which then
    /// raised the splitter's share (docs/disputes.md, "Selection"). Kept,
    /// 1-10,000, so existing genesis files and their chain ids stay valid.
    #[serde(default = "defaults::max_selection_share_bps")]
    pub max_selection_share_bps: u32,
    /// Referee work a block may spend on dispute chunks, in work units
    /// (one per operation or byte the runtime's cost model counts); a
    /// chunk over it cannot be refereed, one over what the block has left
    /// waits for the next block (docs/disputes.md, "Referee budget").
    #[serde(default = "defaults::max_referee_work_per_block")]
    pub max_referee_work_per_block: u64,
}

/// Serde defaults of the job parameters (the values of
/// [`Params::default`]), so a genesis written before jobs still loads.
mod defaults {
    pub(super) fn job_base_price() -> u64 {
        10_000
    }
    pub(super) fn job_price_per_mflop() -> u64 {
        100
    }
    pub(super) fn max_job_replicas() -> u8 {
        7
    }
    pub(super) fn max_job_io_bytes() -> u32 {
        32 << 10
    }
    pub(super) fn commit_window_blocks() -> u64 {
        100
    }
    pub(super) fn reveal_window_blocks() -> u64 {
        100
    }
    pub(super) fn miss_penalty() -> u64 {
        10_000_000
    }
    pub(super) fn dispute_round_blocks() -> u64 {
        20
    }
    pub(super) fn dispute_reward_bps() -> u32 {
        5_000
    }
    pub(super) fn challenge_window_blocks() -> u64 {
        50
    }
    pub(super) fn challenge_bond() -> u64 {
        100_000_000
    }
    pub(super) fn audit_rate_bps() -> u32 {
        1_000
    }
    pub(super) fn max_selection_share_bps() -> u32 {
        2_000
    }
    pub(super) fn max_referee_work_per_block() -> u64 {
        super::DEFAULT_REFEREE_WORK
    }
}

/// [`Params::max_referee_work_per_block`]'s default: 2^28 units, under
/// 100 ms of referee work on the reference machine for the slowest work
/// we could construct (docs/disputes.md, "Referee budget").
pub const DEFAULT_REFEREE_WORK: u64 = 1 << 28;

/// The least [`Params::max_referee_work_per_block`]: a 1 KiB chunk of a
/// small operator must always be refereeable.
pub const MIN_REFEREE_WORK: u64 = 1 << 20;

impl Default for Params {
    /// Development defaults: fees of a few thousand units, a stake of
    /// 10^9 units, 100-block unbonding, 64 KiB transactions, blocks of up
    /// to 10,000 transactions and 8 MiB; jobs at 10,000 units per replica
    /// plus 100 per million operations, up to 7 replicas and 32 KiB of
    /// inputs, 100-block commit and reveal windows, a 10^7 miss penalty;
    /// 20-block dispute rounds with half of a slashed stake to the winners,
    /// a 50-block challenge window with a 10^8 bond, 10 % of optimistic
    /// jobs audited, no executor above 20 % of the selection weight, 2^28
    /// units of referee work per block.
    fn default() -> Self {
        Params {
            min_fee: 1_000,
            fee_per_byte: 10,
            min_executor_stake: 1_000_000_000,
            unbonding_blocks: 100,
            max_tx_bytes: 64 << 10,
            max_block_txs: 10_000,
            max_block_bytes: 8 << 20,
            job_base_price: defaults::job_base_price(),
            job_price_per_mflop: defaults::job_price_per_mflop(),
            max_job_replicas: defaults::max_job_replicas(),
            max_job_io_bytes: defaults::max_job_io_bytes(),
            commit_window_blocks: defaults::commit_window_blocks(),
            reveal_window_blocks: defaults::reveal_window_blocks(),
            miss_penalty: defaults::miss_penalty(),
            dispute_round_blocks: defaults::dispute_round_blocks(),
            dispute_reward_bps: defaults::dispute_reward_bps(),
            challenge_window_blocks: defaults::challenge_window_blocks(),
            challenge_bond: defaults::challenge_bond(),
            audit_rate_bps: defaults::audit_rate_bps(),
            max_selection_share_bps: defaults::max_selection_share_bps(),
            max_referee_work_per_block: defaults::max_referee_work_per_block(),
        }
    }
}

impl Params {
    /// The least fee of a transaction of `size` encoded bytes, `None` on
    /// overflow (impossible for valid params and sizes within
    /// `max_tx_bytes`).
    pub fn min_fee_for(&self, size: usize) -> Option<u64> {
        let size = u64::try_from(size).ok()?;
        self.fee_per_byte
            .checked_mul(size)?
            .checked_add(self.min_fee)
    }

    /// The price of one replica of a job on a model whose manifest states
    /// `flops`: `job_base_price + ⌈flops / 10^6⌉ × job_price_per_mflop`;
    /// `None` on overflow.
    pub fn job_price(&self, flops: u64) -> Option<u64> {
        flops
            .div_ceil(1_000_000)
            .checked_mul(self.job_price_per_mflop)?
            .checked_add(self.job_base_price)
    }

    /// Checks every parameter against its range ([`limits`]).
    pub fn validate(&self) -> Result<(), GenesisError> {
        let err = |field: &'static str, reason: String| GenesisError::Params { field, reason };
        if self.min_executor_stake == 0 {
            return Err(err("min_executor_stake", "must be at least 1".into()));
        }
        if self.unbonding_blocks > limits::MAX_UNBONDING_BLOCKS {
            return Err(err(
                "unbonding_blocks",
                format!(
                    "{} is over the limit of {}",
                    self.unbonding_blocks,
                    limits::MAX_UNBONDING_BLOCKS
                ),
            ));
        }
        if !(limits::MIN_MAX_TX_BYTES..=limits::HARD_MAX_TX_BYTES).contains(&self.max_tx_bytes) {
            return Err(err(
                "max_tx_bytes",
                format!(
                    "{} is not between {} and {}",
                    self.max_tx_bytes,
                    limits::MIN_MAX_TX_BYTES,
                    limits::HARD_MAX_TX_BYTES
                ),
            ));
        }
        if !(1..=limits::HARD_MAX_BLOCK_TXS).contains(&self.max_block_txs) {
            return Err(err(
                "max_block_txs",
                format!(
                    "{} is not between 1 and {}",
                    self.max_block_txs,
                    limits::HARD_MAX_BLOCK_TXS
                ),
            ));
        }
        if self.max_block_bytes < self.max_tx_bytes
            || self.max_block_bytes > limits::HARD_MAX_BLOCK_BYTES
        {
            return Err(err(
                "max_block_bytes",
                format!(
                    "{} is not between max_tx_bytes ({}) and {}",
                    self.max_block_bytes,
                    self.max_tx_bytes,
                    limits::HARD_MAX_BLOCK_BYTES
                ),
            ));
        }
        if !(1..=limits::HARD_MAX_JOB_REPLICAS).contains(&usize::from(self.max_job_replicas)) {
            return Err(err(
                "max_job_replicas",
                format!(
                    "{} is not between 1 and {}",
                    self.max_job_replicas,
                    limits::HARD_MAX_JOB_REPLICAS
                ),
            ));
        }
        if self.max_job_io_bytes == 0 || self.max_job_io_bytes > self.max_tx_bytes {
            return Err(err(
                "max_job_io_bytes",
                format!(
                    "{} is not between 1 and max_tx_bytes ({})",
                    self.max_job_io_bytes, self.max_tx_bytes
                ),
            ));
        }
        for (field, v) in [
            ("commit_window_blocks", self.commit_window_blocks),
            ("reveal_window_blocks", self.reveal_window_blocks),
            ("dispute_round_blocks", self.dispute_round_blocks),
            ("challenge_window_blocks", self.challenge_window_blocks),
        ] {
            if !(1..=limits::MAX_JOB_WINDOW_BLOCKS).contains(&v) {
                return Err(err(
                    field,
                    format!("{v} is not between 1 and {}", limits::MAX_JOB_WINDOW_BLOCKS),
                ));
            }
        }
        for (field, v, min) in [
            ("dispute_reward_bps", self.dispute_reward_bps, 0),
            ("audit_rate_bps", self.audit_rate_bps, 0),
            ("max_selection_share_bps", self.max_selection_share_bps, 1),
        ] {
            if !(min..=10_000).contains(&v) {
                return Err(err(
                    field,
                    format!("{v} is not between {min} and 10000 basis points"),
                ));
            }
        }
        if self.max_referee_work_per_block < MIN_REFEREE_WORK {
            return Err(err(
                "max_referee_work_per_block",
                format!(
                    "{} is below the least, {MIN_REFEREE_WORK}",
                    self.max_referee_work_per_block
                ),
            ));
        }
        let max_tx = usize::try_from(self.max_tx_bytes).unwrap_or(usize::MAX);
        if self.min_fee_for(max_tx).is_none() {
            return Err(err(
                "fee_per_byte",
                "min_fee + fee_per_byte × max_tx_bytes overflows u64".into(),
            ));
        }
        Ok(())
    }

    /// `u8` 1, `u64` min_fee, fee_per_byte, min_executor_stake,
    /// unbonding_blocks, `u32` max_tx_bytes, max_block_txs,
    /// max_block_bytes, `u64` job_base_price, job_price_per_mflop, `u8`
    /// max_job_replicas, `u32` max_job_io_bytes, `u64`
    /// commit_window_blocks, reveal_window_blocks, miss_penalty,
    /// dispute_round_blocks, `u32` dispute_reward_bps, `u64`
    /// challenge_window_blocks, challenge_bond, `u32` audit_rate_bps,
    /// max_selection_share_bps, `u64` max_referee_work_per_block.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(150);
        self.write(&mut w);
        w.into_bytes()
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.u8(RECORD_VERSION);
        w.u64(self.min_fee);
        w.u64(self.fee_per_byte);
        w.u64(self.min_executor_stake);
        w.u64(self.unbonding_blocks);
        w.u32(self.max_tx_bytes);
        w.u32(self.max_block_txs);
        w.u32(self.max_block_bytes);
        w.u64(self.job_base_price);
        w.u64(self.job_price_per_mflop);
        w.u8(self.max_job_replicas);
        w.u32(self.max_job_io_bytes);
        w.u64(self.commit_window_blocks);
        w.u64(self.reveal_window_blocks);
        w.u64(self.miss_penalty);
        self.write_disputes(w);
    }

    fn write_disputes(&self, w: &mut Writer) {
        w.u64(self.dispute_round_blocks);
        w.u32(self.dispute_reward_bps);
        w.u64(self.challenge_window_blocks);
        w.u64(self.challenge_bond);
        w.u32(self.audit_rate_bps);
        w.u32(self.max_selection_share_bps);
        w.u64(self.max_referee_work_per_block);
    }

    /// The parameters as the genesis encoding (hashed into the chain id)
    /// holds them: the fields before the dispute parameters, then — only
    /// when any dispute parameter differs from its default — `"GBD1"` and
    /// the dispute parameters. A genesis written before they existed keeps
    /// its chain id, and the encoding stays unambiguous: the account count
    /// that follows is at most 10^6, never the bytes `"GBD1"`.
    pub(crate) fn write_genesis(&self, w: &mut Writer) {
        let mut full = Writer::with_capacity(150);
        self.write(&mut full);
        let mut tail = Writer::with_capacity(48);
        self.write_disputes(&mut tail);
        let base = full.as_bytes().len().saturating_sub(tail.as_bytes().len());
        w.bytes(&full.as_bytes()[..base]);
        let defaults = Params::default();
        let mut default_tail = Writer::with_capacity(48);
        defaults.write_disputes(&mut default_tail);
        if tail.as_bytes() != default_tail.as_bytes() {
            w.bytes(glassbox_primitives::tags::GENESIS_DISPUTES);
            w.bytes(tail.as_bytes());
        }
    }

    /// Decodes [`Params::encode`]'s form and validates it.
    pub fn decode(bytes: &[u8]) -> Result<Params, DecodeError> {
        let mut r = Reader::new("params record", bytes);
        let p = Params::read(&mut r)?;
        r.finish()?;
        Ok(p)
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Params, DecodeError> {
        let at = r.pos();
        r.version(RECORD_VERSION)?;
        let p = Params {
            min_fee: r.u64()?,
            fee_per_byte: r.u64()?,
            min_executor_stake: r.u64()?,
            unbonding_blocks: r.u64()?,
            max_tx_bytes: r.u32()?,
            max_block_txs: r.u32()?,
            max_block_bytes: r.u32()?,
            job_base_price: r.u64()?,
            job_price_per_mflop: r.u64()?,
            max_job_replicas: r.u8()?,
            max_job_io_bytes: r.u32()?,
            commit_window_blocks: r.u64()?,
            reveal_window_blocks: r.u64()?,
            miss_penalty: r.u64()?,
            dispute_round_blocks: r.u64()?,
            dispute_reward_bps: r.u32()?,
            challenge_window_blocks: r.u64()?,
            challenge_bond: r.u64()?,
            audit_rate_bps: r.u32()?,
            max_selection_share_bps: r.u32()?,
            max_referee_work_per_block: r.u64()?,
        };
        p.validate().map_err(|e| r.err_at(at, e.to_string()))?;
        Ok(p)
    }
}

/// The chain's identity, fixed at genesis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainInfo {
    /// BLAKE3 of the canonical genesis encoding.
    pub chain_id: ChainId,
    /// The genesis' chain name.
    pub chain_name: String,
    /// The genesis time.
    pub genesis_time_ms: u64,
}

impl ChainInfo {
    /// `u8` 1, chain id, `str` chain name, `u64` genesis time.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(45 + self.chain_name.len());
        w.u8(RECORD_VERSION);
        w.digest(&self.chain_id);
        w.str(&self.chain_name);
        w.u64(self.genesis_time_ms);
        w.into_bytes()
    }

    /// Decodes [`ChainInfo::encode`]'s form.
    pub fn decode(bytes: &[u8]) -> Result<ChainInfo, DecodeError> {
        let mut r = Reader::new("chain record", bytes);
        r.version(RECORD_VERSION)?;
        let c = ChainInfo {
            chain_id: r.digest()?,
            chain_name: r.str("chain name", limits::MAX_CHAIN_NAME_BYTES)?,
            genesis_time_ms: r.u64()?,
        };
        r.finish()?;
        Ok(c)
    }
}

/// The latest applied block's height and timestamp (the genesis' at
/// height 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Head {
    /// Height.
    pub height: u64,
    /// Timestamp, ms since the Unix epoch.
    pub timestamp_ms: u64,
}

impl Head {
    /// `u8` 1, `u64` height, `u64` timestamp.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(17);
        w.u8(RECORD_VERSION);
        w.u64(self.height);
        w.u64(self.timestamp_ms);
        w.into_bytes()
    }

    /// Decodes [`Head::encode`]'s form.
    pub fn decode(bytes: &[u8]) -> Result<Head, DecodeError> {
        let mut r = Reader::new("head record", bytes);
        r.version(RECORD_VERSION)?;
        let h = Head {
            height: r.u64()?,
            timestamp_ms: r.u64()?,
        };
        r.finish()?;
        Ok(h)
    }
}

/// Fees collected so far (held for validator rewards, which a later issue
/// distributes; until then they are out of circulation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeePool {
    /// The collected total.
    pub balance: u64,
    /// Slashed stake and forfeited bonds destroyed so far (out of the
    /// supply for good).
    #[serde(default)]
    pub burned: u64,
}

impl FeePool {
    /// `u8` 1, `u64` balance, `u64` burned.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(17);
        w.u8(RECORD_VERSION);
        w.u64(self.balance);
        w.u64(self.burned);
        w.into_bytes()
    }

    /// Decodes [`FeePool::encode`]'s form.
    pub fn decode(bytes: &[u8]) -> Result<FeePool, DecodeError> {
        let mut r = Reader::new("fee pool record", bytes);
        r.version(RECORD_VERSION)?;
        let f = FeePool {
            balance: r.u64()?,
            burned: r.u64()?,
        };
        r.finish()?;
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::Account;

    #[test]
    fn default_params_are_valid_and_round_trip() {
        let p = Params::default();
        assert_eq!(p.validate(), Ok(()));
        assert_eq!(Params::decode(&p.encode()), Ok(p));
        let mut bad = p;
        bad.min_executor_stake = 0;
        assert!(Params::decode(&bad.encode()).is_err());
        bad = p;
        bad.fee_per_byte = u64::MAX;
        assert!(matches!(
            bad.validate(),
            Err(GenesisError::Params {
                field: "fee_per_byte",
                ..
            })
        ));
        bad = p;
        bad.max_block_bytes = bad.max_tx_bytes - 1;
        assert!(bad.validate().is_err());
    }

    #[test]
    fn record_round_trips_reject_trailing_bytes() {
        let a = Account {
            balance: 5,
            nonce: 7,
        };
        assert_eq!(Account::decode(&a.encode()), Ok(a));
        let mut b = a.encode();
        b.push(0);
        assert!(Account::decode(&b).is_err());
        let h = Head {
            height: 1,
            timestamp_ms: 2,
        };
        assert_eq!(Head::decode(&h.encode()), Ok(h));
        let f = FeePool {
            balance: 3,
            burned: 4,
        };
        assert_eq!(FeePool::decode(&f.encode()), Ok(f));
        let c = ChainInfo {
            chain_id: ChainId::from_bytes([9; 32]),
            chain_name: "dev".into(),
            genesis_time_ms: 4,
        };
        assert_eq!(ChainInfo::decode(&c.encode()), Ok(c));
    }

    #[test]
    fn keys_are_distinct_by_tag() {
        let k = glassbox_types::SecretKey::from_seed(&[1; 32]).public();
        let a = StateKey::Account(k).to_bytes();
        let e = StateKey::Executor(k).to_bytes();
        assert_eq!(a.len(), 33);
        assert_ne!(a, e);
        assert_eq!(a.first(), Some(&tags::ACCOUNT));
        let v = StateKey::ModelVersion {
            name: "a".into(),
            version: "1.0.0".into(),
        }
        .to_bytes();
        assert_eq!(v, b"\x04a\x001.0.0");
    }
}
