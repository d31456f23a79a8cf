//! Disputes and optimistic jobs: the records and the trace arithmetic the
//! dispute game checks (docs/disputes.md).
//!
//! A job's [`JobExt`] record (`0x07 || job id`) holds what the job record
//! itself does not: the end of an optimistic result's challenge window,
//! the auditor drawn for it, and the [`Dispute`] once reveals disagree or
//! a challenger contests a result. The game bisects two parties' execution
//! traces down to the first trace leaf where they differ; a [`Referee`]
//! (the validators, re-running that single operator with the runtime)
//! decides which leaf is right. The Merkle arithmetic here is the
//! runtime's trace commitment (docs/determinism.md, "Trace commitment")
//! re-stated, so the ledger checks openings without the runtime.

use glassbox_types::{ModelId, PublicKey};
use serde::Serialize;

use crate::codec::{Reader, Writer};
use crate::error::DecodeError;
use crate::jobs::{read_tensors, write_tensors};
use crate::limits;
use crate::records::RECORD_VERSION;
use crate::serde_util;

// ---- trace arithmetic (docs/determinism.md, "Trace commitment") ----------

const LEAF_TAG: u8 = 0x00;
const NODE_TAG: u8 = 0x01;

/// The leaf of trace node `node` whose outputs hash to `outputs`:
/// `BLAKE3("GBL1" || node (u64 LE) || count (u32 LE) || hashes)`.
pub fn trace_leaf(node: u64, outputs: &[[u8; 32]]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(b"GBL1");
    h.update(&node.to_le_bytes());
    h.update(
        &u32::try_from(outputs.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    for o in outputs {
        h.update(o);
    }
    *h.finalize().as_bytes()
}

/// The Merkle hash of a one-leaf range: `BLAKE3(0x00 || leaf)`.
pub fn hash_leaf(leaf: &[u8; 32]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(&[LEAF_TAG]);
    h.update(leaf);
    *h.finalize().as_bytes()
}

/// The Merkle hash of a range from its halves: `BLAKE3(0x01 || l || r)`.
pub fn hash_node(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(&[NODE_TAG]);
    h.update(left);
    h.update(right);
    *h.finalize().as_bytes()
}

/// Where a range of `n >= 2` leaves splits: the largest power of two
/// strictly below `n` goes left (RFC 6962's shape).
pub fn split(n: u64) -> u64 {
    let mut k = 1u64;
    while k.saturating_mul(2) < n {
        k *= 2;
    }
    k
}

/// The trace root: `BLAKE3("GBR1" || model || input count (u32 LE) ||
/// input hashes || leaf count (u64 LE) || Merkle root of the leaves)`.
pub fn trace_root(
    model: &ModelId,
    input_hashes: &[[u8; 32]],
    leaves: u64,
    leaves_root: &[u8; 32],
) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(b"GBR1");
    h.update(model.as_bytes());
    h.update(
        &u32::try_from(input_hashes.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    for i in input_hashes {
        h.update(i);
    }
    h.update(&leaves.to_le_bytes());
    h.update(leaves_root);
    *h.finalize().as_bytes()
}

/// The Merkle root of `n` leaves recomputed from leaf `index` and its
/// audit path (siblings from the leaf up); `None` when the index is out of
/// range or the path has the wrong length.
pub fn root_from_path(leaf: &[u8; 32], index: u64, n: u64, path: &[[u8; 32]]) -> Option<[u8; 32]> {
    if index >= n {
        return None;
    }
    let mut sides: Vec<bool> = Vec::with_capacity(path.len());
    let (mut lo, mut hi, mut i) = (0u64, n, index);
    while hi - lo > 1 {
        if sides.len() >= MAX_PATH {
            return None;
        }
        let k = split(hi - lo);
        if i < k {
            sides.push(true);
            hi = lo + k;
        } else {
            sides.push(false);
            lo += k;
            i -= k;
        }
    }
    if sides.len() != path.len() {
        return None;
    }
    let mut acc = hash_leaf(leaf);
    for (sib, left) in path.iter().zip(sides.iter().rev()) {
        acc = if *left {
            hash_node(&acc, sib)
        } else {
            hash_node(sib, &acc)
        };
    }
    Some(acc)
}

/// The most trace leaves (operators) a dispute accepts.
pub const MAX_TRACE_LEAVES: u64 = 1 << 24;
/// The longest audit path ([`MAX_TRACE_LEAVES`] is 2^24).
pub const MAX_PATH: usize = 24;
/// The most leaf openings one transaction may carry.
pub const MAX_OPENINGS_PER_TX: usize = 64;
/// The most leaf openings a dispute keeps at one point.
pub const MAX_OPENINGS: usize = 256;
/// The most outputs one opened leaf may list.
pub const MAX_LEAF_OUTPUTS: usize = 64;

// ---- the referee --------------------------------------------------------

/// Where a graph output comes from, as the model says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputSource {
    /// Output `slot` of trace node `node`.
    Node {
        /// The node.
        node: u64,
        /// Its output position.
        slot: u32,
    },
    /// Graph input `index`, passed through.
    Input(u32),
    /// A constant of the model, by canonical tensor hash.
    Constant([u8; 32]),
}

/// Why the referee gave no verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefereeError {
    /// This replica cannot decide now (the model or an opened tensor is
    /// not held locally). Never an outcome: the block cannot be applied
    /// here until the data is fetched.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Output `slot` of earlier node `node`, an operand, has not been
    /// opened yet.
    #[error("operand missing: output {slot} of node {node} is not opened")]
    Missing {
        /// The producing node.
        node: u64,
        /// Its output position.
        slot: u32,
    },
    /// The operator itself fails on these operands (or the question is
    /// malformed for this model): no claimed leaf can be right.
    #[error("{0}")]
    Failed(String),
}

/// The validators' re-execution of single operators (docs/disputes.md,
/// "Referee"). The ledger calls it only while applying a dispute step that
/// reaches the referee stage; [`crate::State::referee_needs`] lists what
/// it may need, so a node can fetch that before applying the block. Every
/// answer must be a pure function of the model, the job and the opened
/// hashes.
pub trait Referee {
    /// The model's trace leaf count (its top-level operators).
    fn leaf_count(&self, model: &ModelId) -> Result<u64, RefereeError>;

    /// Where graph output `index` comes from.
    fn output_source(&self, model: &ModelId, index: u32) -> Result<OutputSource, RefereeError>;

    /// Re-runs trace node `node` alone and returns its leaf. Its operands
    /// are the job's `inputs` (canonical encodings), the model's constants
    /// and outputs of earlier nodes, whose hashes `opened(node, slot)`
    /// gives when opened (the tensors themselves travel off-ledger and are
    /// looked up by hash).
    fn run_node(
        &self,
        model: &ModelId,
        node: u64,
        inputs: &[Vec<u8>],
        opened: &dyn Fn(u64, u32) -> Option<[u8; 32]>,
    ) -> Result<[u8; 32], RefereeError>;
}

/// A referee that holds nothing: every question is
/// [`RefereeError::Unavailable`]. For replicas that apply blocks without
/// ever adjudicating (tools, tests of other parts).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoReferee;

impl Referee for NoReferee {
    fn leaf_count(&self, model: &ModelId) -> Result<u64, RefereeError> {
        Err(RefereeError::Unavailable(format!("no referee for {model}")))
    }

    fn output_source(&self, model: &ModelId, _: u32) -> Result<OutputSource, RefereeError> {
        Err(RefereeError::Unavailable(format!("no referee for {model}")))
    }

    fn run_node(
        &self,
        model: &ModelId,
        _: u64,
        _: &[Vec<u8>],
        _: &dyn Fn(u64, u32) -> Option<[u8; 32]>,
    ) -> Result<[u8; 32], RefereeError> {
        Err(RefereeError::Unavailable(format!("no referee for {model}")))
    }
}

// ---- records -------------------------------------------------------------

/// One trace leaf opened: its output hashes and its audit path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeafOpening {
    /// The trace node.
    pub node: u64,
    /// The canonical hashes of its outputs.
    #[serde(with = "serde_util::hex32_vec")]
    pub outputs: Vec<[u8; 32]>,
    /// Sibling hashes from the leaf up to the root.
    #[serde(with = "serde_util::hex32_vec")]
    pub path: Vec<[u8; 32]>,
}

/// One move of a party in a dispute (the body of a `DisputeStep`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "step", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Opens the party's trace root: its leaf count and leaves' Merkle
    /// root.
    Open {
        /// Trace leaves (operators).
        leaves: u64,
        /// Merkle root of the leaves.
        #[serde(with = "serde_util::hex32")]
        leaves_root: [u8; 32],
    },
    /// The two halves of the range in question.
    Split {
        /// Hash of the left half.
        #[serde(with = "serde_util::hex32")]
        left: [u8; 32],
        /// Hash of the right half.
        #[serde(with = "serde_util::hex32")]
        right: [u8; 32],
    },
    /// Leaf openings of the operands the referee needs.
    Openings {
        /// The openings.
        items: Vec<LeafOpening>,
    },
}

impl Step {
    pub(crate) fn write(&self, w: &mut Writer) {
        match self {
            Step::Open {
                leaves,
                leaves_root,
            } => {
                w.u8(0);
                w.u64(*leaves);
                w.bytes(leaves_root);
            }
            Step::Split { left, right } => {
                w.u8(1);
                w.bytes(left);
                w.bytes(right);
            }
            Step::Openings { items } => {
                w.u8(2);
                w.len(items.len());
                for o in items {
                    write_opening(w, o);
                }
            }
        }
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Step, DecodeError> {
        let at = r.pos();
        Ok(match r.u8()? {
            0 => Step::Open {
                leaves: r.u64()?,
                leaves_root: r.array()?,
            },
            1 => Step::Split {
                left: r.array()?,
                right: r.array()?,
            },
            2 => {
                let n = r.len("openings", MAX_OPENINGS_PER_TX)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(read_opening(r)?);
                }
                Step::Openings { items }
            }
            t => return Err(r.err_at(at, format!("unknown dispute step {t}"))),
        })
    }

    /// The step's name.
    pub fn name(&self) -> &'static str {
        match self {
            Step::Open { .. } => "open",
            Step::Split { .. } => "split",
            Step::Openings { .. } => "openings",
        }
    }
}

fn write_opening(w: &mut Writer, o: &LeafOpening) {
    w.u64(o.node);
    w.len(o.outputs.len());
    for h in &o.outputs {
        w.bytes(h);
    }
    w.len(o.path.len());
    for h in &o.path {
        w.bytes(h);
    }
}

fn read_opening(r: &mut Reader<'_>) -> Result<LeafOpening, DecodeError> {
    let node = r.u64()?;
    let n = r.len("leaf outputs", MAX_LEAF_OUTPUTS)?;
    let mut outputs = Vec::with_capacity(n);
    for _ in 0..n {
        outputs.push(r.array()?);
    }
    let n = r.len("audit path", MAX_PATH)?;
    let mut path = Vec::with_capacity(n);
    for _ in 0..n {
        path.push(r.array()?);
    }
    Ok(LeafOpening {
        node,
        outputs,
        path,
    })
}

/// What the referee is asked about once bisection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "index", rename_all = "snake_case")]
pub enum Target {
    /// The two sides opened different leaf counts: the model decides.
    LeafCount,
    /// The first trace leaf where the sides differ: the referee re-runs
    /// that operator.
    Node(u64),
    /// The traces agree but graph output `o` differs: the trace decides.
    Output(u32),
}

/// A result claimed in a dispute: one distinct `(output hash, trace
/// root)` and who stands behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Claim {
    /// The claimed outputs' hash ([`crate::outputs_hash`]).
    #[serde(with = "serde_util::hex32")]
    pub output_hash: [u8; 32],
    /// The claimed trace root.
    #[serde(with = "serde_util::hex32")]
    pub trace_root: [u8; 32],
    /// The claimed outputs (canonical tensor encodings).
    #[serde(with = "serde_util::hex_vec")]
    pub outputs: Vec<Vec<u8>>,
    /// The executors behind it (slot holders, or the challenger).
    #[serde(with = "serde_util::public_key_vec")]
    pub members: Vec<PublicKey>,
    /// The bond its challenger posted (0 for slot holders).
    pub bond: u64,
    /// Whether it lost a game (its members were slashed).
    pub lost: bool,
}

/// One side's position in the current game.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct Side {
    /// The claim it defends (index into [`Dispute::claims`]).
    pub claim: u8,
    /// Its opened leaf count, once opened.
    pub leaves: Option<u64>,
    /// Its leaves' Merkle root, once opened.
    #[serde(with = "opt_hex32")]
    pub root: Option<[u8; 32]>,
    /// Its hash of the range in question (bisection).
    #[serde(with = "opt_hex32")]
    pub hash: Option<[u8; 32]>,
    /// Whether it has moved in the current round.
    pub moved: bool,
    /// Its split of the current range, once posted.
    #[serde(skip)]
    pub split: Option<([u8; 32], [u8; 32])>,
}

/// Where the current game is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum Stage {
    /// Each side opens its trace root.
    Open,
    /// Bisection of the leaf range `[lo, hi)`; each side posts its split.
    Bisect {
        /// First leaf of the range.
        lo: u64,
        /// One past its last leaf.
        hi: u64,
    },
    /// The point of difference is known; the referee decides as soon as
    /// the operands it needs are opened (by either side).
    Referee {
        /// What the referee decides.
        target: Target,
    },
}

/// The game between two claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Game {
    /// The first side (the lower claim index).
    pub a: Side,
    /// The second side.
    pub b: Side,
    /// Where it is.
    pub stage: Stage,
    /// Rounds played (the opening, each split and the referee).
    pub rounds: u32,
    /// The last height at which the sides' current moves are accepted.
    pub deadline: u64,
    /// The trace leaf count both sides opened (once they agree on it).
    pub leaves: u64,
    /// Leaf openings so far, by node (all consistent with both traces up
    /// to the point of difference).
    #[serde(skip)]
    pub opened: Vec<LeafOpening>,
}

/// How a finished game ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// The first claim.
    pub a: u8,
    /// The second claim.
    pub b: u8,
    /// What decided it (`None` for a timeout before the point of
    /// difference was found).
    pub target: Option<Target>,
    /// Whether the first claim lost.
    pub a_lost: bool,
    /// Whether the second claim lost.
    pub b_lost: bool,
    /// Why, in words (`wrong leaf`, `timeout in split`, ...).
    pub reason: String,
    /// Rounds played.
    pub rounds: u32,
    /// The height it was decided at.
    pub height: u64,
}

/// A dispute over a job's result: the claims, the game in progress and
/// the verdicts so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dispute {
    /// The height it opened.
    pub opened_height: u64,
    /// The distinct claims.
    pub claims: Vec<Claim>,
    /// The game in progress (`None` once decided).
    pub game: Option<Game>,
    /// Finished games, in order.
    pub verdicts: Vec<Verdict>,
    /// The claim that won, once decided (`None` if every claim lost).
    pub winner: Option<u8>,
    /// The height it was decided at.
    pub closed_height: Option<u64>,
}

impl Dispute {
    /// The claims that have not lost, in order.
    pub fn alive(&self) -> impl Iterator<Item = (usize, &Claim)> {
        self.claims.iter().enumerate().filter(|(_, c)| !c.lost)
    }

    /// The claim `key` stands behind.
    pub fn claim_of(&self, key: &PublicKey) -> Option<usize> {
        self.claims.iter().position(|c| c.members.contains(key))
    }
}

/// A job's extension record (`0x07 || job id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct JobExt {
    /// The end of an optimistic result's challenge window (the last height
    /// a challenge is accepted), while pending.
    pub pending_until: Option<u64>,
    /// The executor drawn to audit the optimistic result.
    #[serde(with = "opt_key")]
    pub auditor: Option<PublicKey>,
    /// The dispute, once opened.
    pub dispute: Option<Dispute>,
    /// Outputs of reveals whose output hash no earlier reveal had, kept
    /// until the job settles (the job record keeps the first reveal's).
    #[serde(skip)]
    pub extra_outputs: Vec<Vec<Vec<u8>>>,
}

impl JobExt {
    /// Whether the job is still in play (pending, or an undecided
    /// dispute).
    pub fn is_live(&self) -> bool {
        self.pending_until.is_some()
            || !self.extra_outputs.is_empty()
            || self
                .dispute
                .as_ref()
                .is_some_and(|d| d.closed_height.is_none())
    }

    /// The canonical encoding (docs/disputes.md, "Records").
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(256);
        w.u8(RECORD_VERSION);
        opt(&mut w, self.pending_until.as_ref(), |w, v| w.u64(*v));
        opt(&mut w, self.auditor.as_ref(), |w, k| w.key(k));
        opt(&mut w, self.dispute.as_ref(), write_dispute);
        w.len(self.extra_outputs.len());
        for o in &self.extra_outputs {
            write_tensors(&mut w, o);
        }
        w.buf
    }

    /// Decodes [`JobExt::encode`]'s form, every count within its limit.
    pub fn decode(bytes: &[u8]) -> Result<JobExt, DecodeError> {
        let mut r = Reader::new("job extension record", bytes);
        r.version(RECORD_VERSION)?;
        let pending_until = read_opt(&mut r, |r| r.u64())?;
        let auditor = read_opt(&mut r, |r| r.key("auditor"))?;
        let dispute = read_opt(&mut r, read_dispute)?;
        let n = r.len("extra outputs", limits::HARD_MAX_JOB_REPLICAS)?;
        let mut extra_outputs = Vec::with_capacity(n);
        for _ in 0..n {
            extra_outputs.push(read_tensors(&mut r, "extra outputs")?);
        }
        r.finish()?;
        Ok(JobExt {
            pending_until,
            auditor,
            dispute,
            extra_outputs,
        })
    }
}

fn opt<T>(w: &mut Writer, v: Option<&T>, f: impl FnOnce(&mut Writer, &T)) {
    match v {
        Some(v) => {
            w.u8(1);
            f(w, v);
        }
        None => w.u8(0),
    }
}

fn read_opt<'a, T>(
    r: &mut Reader<'a>,
    f: impl FnOnce(&mut Reader<'a>) -> Result<T, DecodeError>,
) -> Result<Option<T>, DecodeError> {
    match r.u8()? {
        0 => Ok(None),
        1 => Ok(Some(f(r)?)),
        t => Err(r.err(format!("option tag {t} is not 0 or 1"))),
    }
}

fn write_target(w: &mut Writer, t: &Target) {
    match t {
        Target::LeafCount => w.u8(0),
        Target::Node(n) => {
            w.u8(1);
            w.u64(*n);
        }
        Target::Output(o) => {
            w.u8(2);
            w.u32(*o);
        }
    }
}

fn read_target(r: &mut Reader<'_>) -> Result<Target, DecodeError> {
    let at = r.pos();
    Ok(match r.u8()? {
        0 => Target::LeafCount,
        1 => Target::Node(r.u64()?),
        2 => Target::Output(r.u32()?),
        t => return Err(r.err_at(at, format!("unknown referee target {t}"))),
    })
}

fn write_side(w: &mut Writer, s: &Side) {
    w.u8(s.claim);
    opt(w, s.leaves.as_ref(), |w, v| w.u64(*v));
    opt(w, s.root.as_ref(), |w, h| w.bytes(h));
    opt(w, s.hash.as_ref(), |w, h| w.bytes(h));
    w.u8(u8::from(s.moved));
    opt(w, s.split.as_ref(), |w, (l, r)| {
        w.bytes(l);
        w.bytes(r);
    });
}

fn read_bool(r: &mut Reader<'_>) -> Result<bool, DecodeError> {
    match r.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        t => Err(r.err(format!("bool {t} is not 0 or 1"))),
    }
}

fn read_side(r: &mut Reader<'_>) -> Result<Side, DecodeError> {
    Ok(Side {
        claim: r.u8()?,
        leaves: read_opt(r, |r| r.u64())?,
        root: read_opt(r, |r| r.array())?,
        hash: read_opt(r, |r| r.array())?,
        moved: read_bool(r)?,
        split: read_opt(r, |r| Ok((r.array()?, r.array()?)))?,
    })
}

fn write_dispute(w: &mut Writer, d: &Dispute) {
    w.u64(d.opened_height);
    w.len(d.claims.len());
    for c in &d.claims {
        w.bytes(&c.output_hash);
        w.bytes(&c.trace_root);
        write_tensors(w, &c.outputs);
        w.len(c.members.len());
        for m in &c.members {
            w.key(m);
        }
        w.u64(c.bond);
        w.u8(u8::from(c.lost));
    }
    opt(w, d.game.as_ref(), |w, g| {
        write_side(w, &g.a);
        write_side(w, &g.b);
        match &g.stage {
            Stage::Open => w.u8(0),
            Stage::Bisect { lo, hi } => {
                w.u8(1);
                w.u64(*lo);
                w.u64(*hi);
            }
            Stage::Referee { target } => {
                w.u8(2);
                write_target(w, target);
            }
        }
        w.u32(g.rounds);
        w.u64(g.deadline);
        w.u64(g.leaves);
        w.len(g.opened.len());
        for o in &g.opened {
            write_opening(w, o);
        }
    });
    w.len(d.verdicts.len());
    for v in &d.verdicts {
        w.u8(v.a);
        w.u8(v.b);
        opt(w, v.target.as_ref(), write_target);
        w.u8(u8::from(v.a_lost));
        w.u8(u8::from(v.b_lost));
        w.str(&v.reason);
        w.u32(v.rounds);
        w.u64(v.height);
    }
    opt(w, d.winner.as_ref(), |w, v| w.u8(*v));
    opt(w, d.closed_height.as_ref(), |w, v| w.u64(*v));
}

/// The most claims a dispute holds (one per replica plus a challenger).
pub const MAX_CLAIMS: usize = limits::HARD_MAX_JOB_REPLICAS + 1;
const MAX_REASON_BYTES: usize = 128;

fn read_dispute(r: &mut Reader<'_>) -> Result<Dispute, DecodeError> {
    let opened_height = r.u64()?;
    let n = r.len("claims", MAX_CLAIMS)?;
    let mut claims = Vec::with_capacity(n);
    for _ in 0..n {
        let output_hash = r.array()?;
        let trace_root = r.array()?;
        let outputs = read_tensors(r, "claim outputs")?;
        let m = r.len("claim members", limits::HARD_MAX_JOB_REPLICAS)?;
        let mut members = Vec::with_capacity(m);
        for _ in 0..m {
            members.push(r.key("claim member")?);
        }
        claims.push(Claim {
            output_hash,
            trace_root,
            outputs,
            members,
            bond: r.u64()?,
            lost: read_bool(r)?,
        });
    }
    let game = read_opt(r, |r| {
        let a = read_side(r)?;
        let b = read_side(r)?;
        let at = r.pos();
        let stage = match r.u8()? {
            0 => Stage::Open,
            1 => Stage::Bisect {
                lo: r.u64()?,
                hi: r.u64()?,
            },
            2 => Stage::Referee {
                target: read_target(r)?,
            },
            t => return Err(r.err_at(at, format!("unknown game stage {t}"))),
        };
        let rounds = r.u32()?;
        let deadline = r.u64()?;
        let leaves = r.u64()?;
        let k = r.len("openings", MAX_OPENINGS)?;
        let mut opened = Vec::with_capacity(k);
        for _ in 0..k {
            opened.push(read_opening(r)?);
        }
        Ok(Game {
            a,
            b,
            stage,
            rounds,
            deadline,
            leaves,
            opened,
        })
    })?;
    let k = r.len("verdicts", MAX_CLAIMS)?;
    let mut verdicts = Vec::with_capacity(k);
    for _ in 0..k {
        verdicts.push(Verdict {
            a: r.u8()?,
            b: r.u8()?,
            target: read_opt(r, read_target)?,
            a_lost: read_bool(r)?,
            b_lost: read_bool(r)?,
            reason: r.str("verdict reason", MAX_REASON_BYTES)?,
            rounds: r.u32()?,
            height: r.u64()?,
        });
    }
    let winner = read_opt(r, |r| r.u8())?;
    let closed_height = read_opt(r, |r| r.u64())?;
    Ok(Dispute {
        opened_height,
        claims,
        game,
        verdicts,
        winner,
        closed_height,
    })
}

mod opt_hex32 {
    use serde::Serializer;

    use crate::serde_util::Hex32;

    pub(crate) fn serialize<S: Serializer>(v: &Option<[u8; 32]>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(h) => s.serialize_some(&Hex32(*h)),
            None => s.serialize_none(),
        }
    }
}

mod opt_key {
    use glassbox_types::PublicKey;
    use serde::Serializer;

    pub(crate) fn serialize<S: Serializer>(v: &Option<PublicKey>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(k) => s.collect_str(k),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(i: u64) -> [u8; 32] {
        *blake3::hash(&i.to_le_bytes()).as_bytes()
    }

    fn root(leaves: &[[u8; 32]]) -> [u8; 32] {
        match leaves.len() {
            0 => *blake3::hash(b"").as_bytes(),
            1 => hash_leaf(&leaves[0]),
            n => {
                let k = split(n as u64) as usize;
                hash_node(&root(&leaves[..k]), &root(&leaves[k..]))
            }
        }
    }

    fn path(leaves: &[[u8; 32]], index: usize) -> Vec<[u8; 32]> {
        let mut p = Vec::new();
        let (mut lo, mut hi, mut i) = (0, leaves.len(), index);
        while hi - lo > 1 {
            let k = split((hi - lo) as u64) as usize;
            if i < k {
                p.push(root(&leaves[lo + k..hi]));
                hi = lo + k;
            } else {
                p.push(root(&leaves[lo..lo + k]));
                lo += k;
                i -= k;
            }
        }
        p.reverse();
        p
    }

    #[test]
    fn paths_verify_for_every_leaf_and_size_and_nothing_else() {
        for n in 1..34u64 {
            let leaves: Vec<[u8; 32]> = (0..n).map(h).collect();
            let r = root(&leaves);
            for i in 0..n {
                let p = path(&leaves, i as usize);
                assert_eq!(root_from_path(&leaves[i as usize], i, n, &p), Some(r));
                assert_ne!(root_from_path(&h(99), i, n, &p), Some(r));
                if n > 1 {
                    assert_ne!(
                        root_from_path(&leaves[i as usize], (i + 1) % n, n, &p),
                        Some(r)
                    );
                }
                assert_eq!(root_from_path(&leaves[i as usize], i, n + 64, &p), None);
            }
            assert_eq!(root_from_path(&h(0), n, n, &[]), None);
        }
    }

    #[test]
    fn ext_record_round_trips_and_rejects_garbage() {
        let key = glassbox_types::SecretKey::from_seed(&[3; 32]).public();
        let ext = JobExt {
            pending_until: Some(9),
            auditor: Some(key),
            dispute: Some(Dispute {
                opened_height: 4,
                claims: vec![Claim {
                    output_hash: h(1),
                    trace_root: h(2),
                    outputs: vec![b"GBT1\x01\x00\x00\x00\x00\x00\x00\x80\x3f".to_vec()],
                    members: vec![key],
                    bond: 7,
                    lost: false,
                }],
                game: Some(Game {
                    a: Side {
                        claim: 0,
                        leaves: Some(5),
                        root: Some(h(3)),
                        hash: None,
                        moved: true,
                        split: Some((h(4), h(5))),
                    },
                    b: Side::default(),
                    stage: Stage::Referee {
                        target: Target::Node(3),
                    },
                    rounds: 4,
                    deadline: 30,
                    leaves: 5,
                    opened: vec![LeafOpening {
                        node: 1,
                        outputs: vec![h(6)],
                        path: vec![h(7), h(8)],
                    }],
                }),
                verdicts: vec![Verdict {
                    a: 0,
                    b: 1,
                    target: Some(Target::Output(0)),
                    a_lost: false,
                    b_lost: true,
                    reason: "wrong output".into(),
                    rounds: 2,
                    height: 8,
                }],
                winner: None,
                closed_height: None,
            }),
            extra_outputs: vec![vec![]],
        };
        let bytes = ext.encode();
        assert_eq!(JobExt::decode(&bytes), Ok(ext));
        for cut in 0..bytes.len() {
            assert!(JobExt::decode(&bytes[..cut]).is_err(), "prefix {cut}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(JobExt::decode(&extra).is_err());
    }
}
