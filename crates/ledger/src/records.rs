//! The typed records of the state, their keys in the authenticated map and
//! their canonical encodings (docs/ledger.md, "State layout").

use glassbox_primitives::ChainId;
use glassbox_types::{Manifest, ManifestId, ModelId, PublicKey, Signature, SignedManifest};
use serde::{Deserialize, Serialize};

use crate::error::{DecodeError, GenesisError};
use crate::limits;
use crate::serde_util;
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
    /// height) entries, `u32` active jobs, `u32` disputes, `u64` served.
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
        })
    }
}

/// A published model: its signed manifest and where it was published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRecord {
    /// The publisher-signed manifest.
    pub manifest: SignedManifest,
    /// Its id (BLAKE3 of its encoding).
    pub manifest_id: ManifestId,
    /// The model's id (from the manifest).
    pub model_id: ModelId,
    /// The publisher (the manifest's signer).
    pub publisher: PublicKey,
    /// The height of the block that published it.
    pub height: u64,
}

impl ModelRecord {
    /// The record of `manifest` published at `height`.
    pub fn new(manifest: SignedManifest, height: u64) -> ModelRecord {
        ModelRecord {
            manifest_id: manifest.id(),
            model_id: manifest.manifest().model_id,
            publisher: manifest.manifest().publisher,
            manifest,
            height,
        }
    }

    /// `u8` 1, `u64` height, `u32` length + the signed manifest's canonical
    /// encoding (docs/manifest.md). The ids and publisher derive from it.
    pub fn encode(&self) -> Vec<u8> {
        let m = self.manifest.encode();
        let mut w = Writer::with_capacity(13 + m.len());
        w.u8(RECORD_VERSION);
        w.u64(self.height);
        w.blob(&m);
        w.into_bytes()
    }

    /// Decodes [`ModelRecord::encode`]'s form (the manifest must decode;
    /// its signature is not checked here: it was when published).
    pub fn decode(bytes: &[u8]) -> Result<ModelRecord, DecodeError> {
        let mut r = Reader::new("model record", bytes);
        r.version(RECORD_VERSION)?;
        let height = r.u64()?;
        let at = r.pos();
        let m = r.blob("signed manifest", limits::MAX_SIGNED_MANIFEST_BYTES)?;
        let manifest =
            SignedManifest::decode(m).map_err(|e| r.err_at(at, format!("signed manifest: {e}")))?;
        r.finish()?;
        Ok(ModelRecord::new(manifest, height))
    }
}

/// A model record as JSON.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = ModelRecord))]
struct ModelRecordJson<'a> {
    /// The model's id.
    model_id: ModelId,
    /// Its manifest's id.
    manifest_id: ManifestId,
    /// The publisher (the manifest's signer).
    publisher: PublicKey,
    /// The height of the block that published it.
    height: u64,
    /// The manifest's name.
    name: &'a str,
    /// The manifest's version.
    version: String,
    /// The manifest.
    manifest: &'a Manifest,
    /// The publisher's signature of the manifest.
    signature: &'a Signature,
    /// Hex of the signed manifest's canonical encoding.
    signed_manifest: String,
}

impl Serialize for ModelRecord {
    /// [`ModelRecordJson`].
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let m = self.manifest.manifest();
        ModelRecordJson {
            model_id: self.model_id,
            manifest_id: self.manifest_id,
            publisher: self.publisher,
            height: self.height,
            name: &m.name,
            version: m.version.to_string(),
            manifest: m,
            signature: self.manifest.signature(),
            signed_manifest: glassbox_types::hex(&self.manifest.encode()),
        }
        .serialize(s)
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for ModelRecord {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <ModelRecordJson<'_> as utoipa::PartialSchema>::schema()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for ModelRecord {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        <ModelRecordJson<'_> as utoipa::ToSchema>::schemas(schemas);
    }
}

/// The value of a `name@version` index key: the model it names.
pub fn encode_model_version(model_id: &ModelId) -> Vec<u8> {
    let mut w = Writer::with_capacity(33);
    w.u8(RECORD_VERSION);
    w.bytes(model_id.as_bytes());
    w.into_bytes()
}

/// Decodes [`encode_model_version`]'s form.
pub fn decode_model_version(bytes: &[u8]) -> Result<ModelId, DecodeError> {
    let mut r = Reader::new("model version record", bytes);
    r.version(RECORD_VERSION)?;
    let id = ModelId::from_bytes(r.array()?);
    r.finish()?;
    Ok(id)
}

/// The value of a name-owner key: the publisher owning the name.
pub fn encode_name_owner(owner: &PublicKey) -> Vec<u8> {
    let mut w = Writer::with_capacity(33);
    w.u8(RECORD_VERSION);
    owner.write_to(&mut w);
    w.into_bytes()
}

/// Decodes [`encode_name_owner`]'s form.
pub fn decode_name_owner(bytes: &[u8]) -> Result<PublicKey, DecodeError> {
    let mut r = Reader::new("name owner record", bytes);
    r.version(RECORD_VERSION)?;
    let k = PublicKey::read_from(&mut r, "owner")?;
    r.finish()?;
    Ok(k)
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
    /// Cap on one executor's share of the total selection weight, in basis
    /// points (10,000 = no cap).
    #[serde(default = "defaults::max_selection_share_bps")]
    pub max_selection_share_bps: u32,
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
}

impl Default for Params {
    /// Development defaults: fees of a few thousand units, a stake of
    /// 10^9 units, 100-block unbonding, 64 KiB transactions, blocks of up
    /// to 10,000 transactions and 8 MiB; jobs at 10,000 units per replica
    /// plus 100 per million operations, up to 7 replicas and 32 KiB of
    /// inputs, 100-block commit and reveal windows, a 10^7 miss penalty;
    /// 20-block dispute rounds with half of a slashed stake to the winners,
    /// a 50-block challenge window with a 10^8 bond, 10 % of optimistic
    /// jobs audited, no executor above 20 % of the selection weight.
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
    /// max_selection_share_bps.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(142);
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
    }

    /// The parameters as the genesis encoding (hashed into the chain id)
    /// holds them: the fields before the dispute parameters, then — only
    /// when any dispute parameter differs from its default — `"GBD1"` and
    /// the dispute parameters. A genesis written before they existed keeps
    /// its chain id, and the encoding stays unambiguous: the account count
    /// that follows is at most 10^6, never the bytes `"GBD1"`.
    pub(crate) fn write_genesis(&self, w: &mut Writer) {
        let mut full = Writer::with_capacity(142);
        self.write(&mut full);
        let mut tail = Writer::with_capacity(40);
        self.write_disputes(&mut tail);
        let base = full.as_bytes().len().saturating_sub(tail.as_bytes().len());
        w.bytes(&full.as_bytes()[..base]);
        let defaults = Params::default();
        let mut default_tail = Writer::with_capacity(40);
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
