//! Disputes and optimistic jobs: the records and the trace arithmetic the
//! dispute game checks (docs/disputes.md).
//!
//! A job's [`JobExt`] record (`0x07 || job id`) holds what the job record
//! itself does not: the end of an optimistic result's challenge window,
//! the auditor drawn for it, and the [`Dispute`] once reveals disagree or
//! a challenger contests a result. The game bisects two parties' execution
//! traces down to the first trace leaf where they differ, then the BLAKE3
//! tree of the first output where that leaf differs down to one 1 KiB
//! chunk; a [`Referee`] (the validators, computing that chunk of that one
//! operator with the runtime) decides which side is right. The Merkle arithmetic is
//! `glassbox_primitives::trace` (docs/determinism.md, "Trace commitment"),
//! the one definition the runtime also commits with, so the ledger checks
//! openings without the runtime.

//!
//! The records are here; the rules of the game (steps, verdicts, slashing,
//! challenges, audits) are in `arbitrate`.

pub(crate) mod arbitrate;

use glassbox_primitives::{MerkleNode, OutputHash, TensorHash, TraceRoot};
use glassbox_types::{ModelId, PublicKey};
use serde::Serialize;

use crate::error::DecodeError;
use crate::jobs::{read_tensors, write_tensors};
use crate::limits;
use crate::records::RECORD_VERSION;
use crate::serde_util;
use glassbox_primitives::codec::{Reader, Writer};

// ---- trace arithmetic: glassbox_primitives::trace ------------------------

pub use glassbox_primitives::trace::{hash_leaf, hash_node, root_from_path, split};

/// The most trace leaves (operators) a dispute accepts.
pub const MAX_TRACE_LEAVES: u64 = 1 << 24;
/// The longest audit path ([`MAX_TRACE_LEAVES`] is 2^24).
pub const MAX_PATH: usize = 24;
/// The most leaf openings one transaction may carry.
pub const MAX_OPENINGS_PER_TX: usize = 64;
/// The most leaf openings a game keeps: the operands of one operator
/// (distinct earlier nodes), so an operator reading more than 256 earlier
/// nodes cannot be refereed.
pub const MAX_OPENINGS: usize = 256;
/// The most new leaf openings one side may add in a game. Openings are
/// only of the operands the referee needs, so nobody (the other side, or a
/// member of one's own claim) can spend them on anything else (issue #25),
/// and one side alone may open every operand.
pub const MAX_OPENINGS_PER_SIDE: usize = MAX_OPENINGS;
/// The most outputs one opened leaf may list.
pub const MAX_LEAF_OUTPUTS: usize = 64;
/// The longest canonical encoding of one output a side may claim (1 TiB,
/// so chunk bisection takes at most 30 rounds).
pub const MAX_OUTPUT_BYTES: u64 = 1 << 40;

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
    Constant(TensorHash),
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
    /// Computing the chunk costs `work` units, over the `max_work` the
    /// ledger allowed (nothing was computed). `work` counts what is known
    /// before the computation would exceed the allowance, so it may be
    /// less than the whole chunk's; like every answer, a pure function of
    /// the model, the job and the opened hashes.
    #[error("the chunk costs {work} units of referee work, over the {max_work} allowed")]
    OverBudget {
        /// The work counted.
        work: u64,
        /// The allowance.
        max_work: u64,
    },
}

/// One computed chunk ([`Referee::output_bytes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkBytes {
    /// The whole length of the output's canonical encoding.
    pub len: u64,
    /// The bytes asked for, cut to the encoding.
    pub bytes: Vec<u8>,
    /// The referee work it cost (docs/disputes.md, "Referee budget").
    pub work: u64,
}

/// What running one operator whole found ([`Referee::run_whole`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WholeRun {
    /// The referee work it cost (its price, known before running).
    pub work: u64,
    /// Whether the operator fails on the operands.
    pub fails: bool,
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

    /// The earlier trace nodes whose outputs trace node `node` reads
    /// (sorted, distinct): the only openings a game about it accepts.
    fn operands(&self, model: &ModelId, node: u64) -> Result<Vec<u64>, RefereeError>;

    /// How many bound outputs trace node `node` has (its leaf's count).
    fn output_count(&self, model: &ModelId, node: u64) -> Result<u32, RefereeError>;

    /// Runs trace node `node` alone and returns the bytes `start..end` of
    /// the canonical encoding of its bound output `output` (cut to the
    /// encoding), the encoding's whole length and the work it cost,
    /// computing no more of the operator than those bytes need where it
    /// can. Its operands are the job's `inputs` (canonical encodings), the
    /// model's constants and outputs of earlier nodes, whose hashes
    /// `opened(node, slot)` gives when opened (the tensors themselves
    /// travel off-ledger and are looked up by hash). Work over `max_work`
    /// is [`RefereeError::OverBudget`], found before computing (or
    /// decoding) what it counts (docs/disputes.md, "Referee budget").
    #[allow(clippy::too_many_arguments)]
    fn output_bytes(
        &self,
        model: &ModelId,
        node: u64,
        output: u32,
        range: (u64, u64),
        inputs: &[Vec<u8>],
        opened: &dyn Fn(u64, u32) -> Option<TensorHash>,
        max_work: u64,
    ) -> Result<ChunkBytes, RefereeError>;

    /// Runs trace node `node` alone and whole (every output), from the
    /// same operands as [`Referee::output_bytes`], to see whether it
    /// fails on them (docs/disputes.md, "Runs that fail"). Priced like a
    /// chunk, for the whole operator; work over `max_work` is
    /// [`RefereeError::OverBudget`], found before computing.
    fn run_whole(
        &self,
        model: &ModelId,
        node: u64,
        inputs: &[Vec<u8>],
        opened: &dyn Fn(u64, u32) -> Option<TensorHash>,
        max_work: u64,
    ) -> Result<WholeRun, RefereeError>;
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

    fn operands(&self, model: &ModelId, _: u64) -> Result<Vec<u64>, RefereeError> {
        Err(RefereeError::Unavailable(format!("no referee for {model}")))
    }

    fn output_count(&self, model: &ModelId, _: u64) -> Result<u32, RefereeError> {
        Err(RefereeError::Unavailable(format!("no referee for {model}")))
    }

    fn output_bytes(
        &self,
        model: &ModelId,
        _: u64,
        _: u32,
        _: (u64, u64),
        _: &[Vec<u8>],
        _: &dyn Fn(u64, u32) -> Option<TensorHash>,
        _: u64,
    ) -> Result<ChunkBytes, RefereeError> {
        Err(RefereeError::Unavailable(format!("no referee for {model}")))
    }

    fn run_whole(
        &self,
        model: &ModelId,
        _: u64,
        _: &[Vec<u8>],
        _: &dyn Fn(u64, u32) -> Option<TensorHash>,
        _: u64,
    ) -> Result<WholeRun, RefereeError> {
        Err(RefereeError::Unavailable(format!("no referee for {model}")))
    }
}

/// One output of an opened leaf, as a side states it at the leaf where
/// the traces part: its canonical hash and the length of its canonical
/// encoding (the shape of its chunk tree).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeafOutput {
    /// The output's canonical hash.
    pub hash: TensorHash,
    /// The length of its canonical encoding, in bytes.
    pub len: u64,
}

// ---- records -------------------------------------------------------------

/// One trace leaf opened: its output hashes and its audit path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeafOpening {
    /// The trace node.
    pub node: u64,
    /// The canonical hashes of its outputs.
    #[serde(deserialize_with = "serde_util::max_64::deserialize")]
    pub outputs: Vec<TensorHash>,
    /// Sibling hashes from the leaf up to the root.
    #[serde(deserialize_with = "serde_util::max_64::deserialize")]
    pub path: Vec<MerkleNode>,
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
        leaves_root: MerkleNode,
    },
    /// The two halves of the range in question.
    Split {
        /// Hash of the left half.
        left: MerkleNode,
        /// Hash of the right half.
        right: MerkleNode,
    },
    /// Leaf openings of the operands the referee needs.
    Openings {
        /// The openings.
        items: Vec<LeafOpening>,
    },
    /// The outputs of the leaf where the traces part (their hashes hash to
    /// this side's leaf).
    Leaf {
        /// The outputs, in order.
        #[serde(deserialize_with = "serde_util::max_64::deserialize")]
        outputs: Vec<LeafOutput>,
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
                w.digest(leaves_root);
            }
            Step::Split { left, right } => {
                w.u8(1);
                w.digest(left);
                w.digest(right);
            }
            Step::Openings { items } => {
                w.u8(2);
                w.len(items.len());
                for o in items {
                    write_opening(w, o);
                }
            }
            Step::Leaf { outputs } => {
                w.u8(3);
                write_leaf_outputs(w, outputs);
            }
        }
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Step, DecodeError> {
        let at = r.pos();
        Ok(match r.u8()? {
            0 => Step::Open {
                leaves: r.u64()?,
                leaves_root: r.digest()?,
            },
            1 => Step::Split {
                left: r.digest()?,
                right: r.digest()?,
            },
            2 => {
                let n = r.len("openings", MAX_OPENINGS_PER_TX)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(read_opening(r)?);
                }
                Step::Openings { items }
            }
            3 => Step::Leaf {
                outputs: read_leaf_outputs(r)?,
            },
            t => return Err(r.err_at(at, format!("unknown dispute step {t}"))),
        })
    }

    /// The step's name.
    pub fn name(&self) -> &'static str {
        match self.kind() {
            StepKind::Open => "open",
            StepKind::Split => "split",
            StepKind::Openings => "openings",
            StepKind::Leaf => "leaf",
        }
    }

    /// Which kind of step this is.
    pub fn kind(&self) -> StepKind {
        match self {
            Step::Open { .. } => StepKind::Open,
            Step::Split { .. } => StepKind::Split,
            Step::Openings { .. } => StepKind::Openings,
            Step::Leaf { .. } => StepKind::Leaf,
        }
    }
}

/// The kind of a dispute [`Step`], as events name it (`open`, `split`,
/// `openings`, `leaf`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// [`Step::Open`].
    Open,
    /// [`Step::Split`].
    Split,
    /// [`Step::Openings`].
    Openings,
    /// [`Step::Leaf`].
    Leaf,
}

fn write_leaf_outputs(w: &mut Writer, outputs: &[LeafOutput]) {
    w.len(outputs.len());
    for o in outputs {
        w.digest(&o.hash);
        w.u64(o.len);
    }
}

fn read_leaf_outputs(r: &mut Reader<'_>) -> Result<Vec<LeafOutput>, DecodeError> {
    let n = r.len("leaf outputs", MAX_LEAF_OUTPUTS)?;
    let mut outputs = Vec::with_capacity(n);
    for _ in 0..n {
        outputs.push(LeafOutput {
            hash: r.digest()?,
            len: r.u64()?,
        });
    }
    Ok(outputs)
}

fn write_opening(w: &mut Writer, o: &LeafOpening) {
    w.u64(o.node);
    w.len(o.outputs.len());
    for h in &o.outputs {
        w.digest(h);
    }
    w.len(o.path.len());
    for h in &o.path {
        w.digest(h);
    }
}

fn read_opening(r: &mut Reader<'_>) -> Result<LeafOpening, DecodeError> {
    let node = r.u64()?;
    let n = r.len("leaf outputs", MAX_LEAF_OUTPUTS)?;
    let mut outputs = Vec::with_capacity(n);
    for _ in 0..n {
        outputs.push(r.digest()?);
    }
    let n = r.len("audit path", MAX_PATH)?;
    let mut path = Vec::with_capacity(n);
    for _ in 0..n {
        path.push(r.digest()?);
    }
    Ok(LeafOpening {
        node,
        outputs,
        path,
    })
}

/// What the referee is asked about once bisection ends.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "index", rename_all = "snake_case")]
pub enum Target {
    /// The two sides opened different leaf counts: the model decides.
    LeafCount,
    /// The traces agree but graph output `o` differs: the trace decides.
    Output(u32),
    /// At the first leaf where the traces part, the sides list different
    /// numbers of outputs: the model decides.
    Outputs {
        /// The trace node.
        node: u64,
    },
    /// The first output where the leaf differs has different lengths: the
    /// referee infers its shape from the operands.
    Length {
        /// The trace node.
        node: u64,
        /// The output.
        output: u32,
    },
    /// The first chunk where that output differs: the referee computes
    /// that chunk of that operator.
    Chunk {
        /// The trace node.
        node: u64,
        /// The output.
        output: u32,
        /// The chunk (1,024 bytes of its canonical encoding).
        chunk: u64,
    },
    /// At the first leaf where the traces part, one side states that the
    /// operator fails (no outputs) and the other states outputs: the
    /// referee runs the operator whole (docs/disputes.md, "Runs that
    /// fail").
    Fails {
        /// The trace node.
        node: u64,
    },
    /// The traces are the same but one claim is a failure (no outputs)
    /// and the other has outputs: the trace decides, and only a trace
    /// holding a failed leaf can show one (the failing side opens it).
    Failure,
}

impl Target {
    /// The trace node whose operands the referee needs, if any (the
    /// source of a graph output for [`Target::Output`] is the referee's to
    /// name, see [`Referee::output_source`]).
    pub fn node(&self) -> Option<u64> {
        match *self {
            Target::LeafCount | Target::Output(_) | Target::Failure => None,
            Target::Outputs { node }
            | Target::Length { node, .. }
            | Target::Chunk { node, .. }
            | Target::Fails { node } => Some(node),
        }
    }
}

/// A result claimed in a dispute: one distinct `(output hash, trace
/// root)` and who stands behind it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Claim {
    /// The claimed outputs' hash ([`crate::outputs_hash`]).
    pub output_hash: OutputHash,
    /// The claimed trace root.
    pub trace_root: TraceRoot,
    /// The claimed outputs (canonical tensor encodings).
    #[serde(with = "serde_util::hex_vec")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub outputs: Vec<Vec<u8>>,
    /// The executors behind it: slot holders, and challengers who posted
    /// or joined it (docs/disputes.md, "Challenges").
    #[serde(with = "serde_util::public_key_vec")]
    pub members: Vec<PublicKey>,
    /// The bonds its challengers posted, `challenge_bond` each (0 for a
    /// claim of slot holders alone).
    pub bond: u64,
    /// Whether it lost a game (its members were slashed).
    pub lost: bool,
}

/// One side's position in the current game.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Side {
    /// The claim it defends (index into [`Dispute::claims`]).
    pub claim: u8,
    /// Its opened leaf count, once opened.
    pub leaves: Option<u64>,
    /// Its leaves' Merkle root, once opened.
    pub root: Option<MerkleNode>,
    /// Its hash of the range in question (bisection).
    pub hash: Option<MerkleNode>,
    /// Whether it has moved in the current round.
    pub moved: bool,
    /// Its split of the current range, once posted.
    #[serde(skip)]
    pub split: Option<(MerkleNode, MerkleNode)>,
    /// New leaf openings it added in this game (at most
    /// [`MAX_OPENINGS_PER_SIDE`]).
    pub openings: u32,
    /// The outputs it stated at the leaf where the traces part.
    pub outputs: Vec<LeafOutput>,
}

/// Where the current game is.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// The traces part at leaf `node`: each side states its outputs.
    Leaf {
        /// The trace node.
        node: u64,
    },
    /// Bisection of the chunk range `[lo, hi)` of output `output` of
    /// `node`, whose encoding has `chunks` chunks (docs/disputes.md,
    /// "Chunks"); each side posts its split.
    Chunks {
        /// The trace node.
        node: u64,
        /// The output.
        output: u32,
        /// First chunk of the range.
        lo: u64,
        /// One past its last chunk.
        hi: u64,
        /// The output's chunk count.
        chunks: u64,
    },
    /// The point of difference is known; the referee decides as soon as
    /// the operands it needs are opened (by either side).
    Referee {
        /// What the referee decides.
        target: Target,
    },
}

/// The game between two claims.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// At the referee stage with every operand opened, the height from
    /// which the game waits for the referee's per-block budget (it no
    /// longer takes moves or times out; docs/disputes.md, "Referee
    /// budget").
    pub queued: Option<u64>,
}

/// How a finished game ended.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// Why, as a code: consensus state holds no text the protocol or the
    /// runtime produces, so no message can overflow a record or fork the
    /// chain by being reworded (docs/disputes.md, "Verdicts").
    pub reason: VerdictReason,
    /// Rounds played.
    pub rounds: u32,
    /// The height it was decided at.
    pub height: u64,
}

/// Why a game ended. Encoded as one byte, in the order below.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictReason {
    /// The referee counted the model's trace leaves; a side that claimed
    /// another count lost.
    LeafCount,
    /// The referee computed the chunk where the sides' outputs part; a
    /// side whose chunk differs lost.
    Operator,
    /// A graph output was checked against the trace; a side whose output
    /// differs lost.
    Output,
    /// The operator fails deterministically on the opened operands, so
    /// neither side's leaf can be right: both lost.
    OperatorFails,
    /// A side did not open its claim in time (the one that did not lost).
    TimeoutOpen,
    /// A side did not split in time (the one that did not lost).
    TimeoutSplit,
    /// The operands the referee needs were never all opened: both lost
    /// (at [`Target::Failure`], only the failing side, which alone can
    /// open a failed leaf).
    TimeoutOpenings,
    /// The referee counted the outputs of the operator where the traces
    /// part; a side that stated another count lost.
    OutputCount,
    /// The referee inferred the length of the disputed output; a side that
    /// stated another length lost (both, when they agreed on a wrong one).
    Length,
    /// A side did not state its leaf's outputs in time (the one that did
    /// not lost).
    TimeoutLeaf,
    /// The chunk where the sides part costs more referee work than a
    /// block allows: neither side can be shown wrong, the job fails and
    /// nobody is slashed (docs/disputes.md, "Referee budget").
    Unrefereeable,
    /// The referee ran the operator where the traces part whole: a side
    /// that stated it fails lost if it runs, a side that stated outputs
    /// lost if it fails (docs/disputes.md, "Runs that fail").
    Fails,
    /// The trace holds a failed leaf (opened by the failing side) where
    /// a side claims outputs (on the trace both sides opened, or below
    /// the leaf where they part): that side lost.
    FailedLeaf,
    /// A failure was claimed at an operator whose whole run costs more
    /// referee work than a block allows: the failing side lost (an honest
    /// executor does not claim a failure the referee cannot check).
    FailureOverBudget,
}

impl VerdictReason {
    const ALL: [VerdictReason; 14] = [
        VerdictReason::LeafCount,
        VerdictReason::Operator,
        VerdictReason::Output,
        VerdictReason::OperatorFails,
        VerdictReason::TimeoutOpen,
        VerdictReason::TimeoutSplit,
        VerdictReason::TimeoutOpenings,
        VerdictReason::OutputCount,
        VerdictReason::Length,
        VerdictReason::TimeoutLeaf,
        VerdictReason::Unrefereeable,
        VerdictReason::Fails,
        VerdictReason::FailedLeaf,
        VerdictReason::FailureOverBudget,
    ];

    /// The byte that encodes it.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The reason a byte encodes, if any.
    pub fn from_code(code: u8) -> Option<VerdictReason> {
        Self::ALL.get(usize::from(code)).copied()
    }
}

impl std::fmt::Display for VerdictReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VerdictReason::LeafCount => "the referee counted the trace leaves",
            VerdictReason::Operator => "the referee computed the operator's chunk",
            VerdictReason::Output => "a graph output checked against the trace",
            VerdictReason::OperatorFails => "the operator fails on the opened operands",
            VerdictReason::TimeoutOpen => "timeout in open",
            VerdictReason::TimeoutSplit => "timeout in split",
            VerdictReason::TimeoutOpenings => "timeout: the operands were never all opened",
            VerdictReason::OutputCount => "the referee counted the operator's outputs",
            VerdictReason::Length => "the referee inferred the output's length",
            VerdictReason::TimeoutLeaf => "timeout in leaf",
            VerdictReason::Unrefereeable => "the chunk is over the referee's budget",
            VerdictReason::Fails => "the referee ran the operator to see whether it fails",
            VerdictReason::FailedLeaf => "the trace holds a failed leaf",
            VerdictReason::FailureOverBudget => {
                "a failure claimed at an operator over the referee's budget"
            }
        })
    }
}

/// A dispute over a job's result: the claims, the game in progress and
/// the verdicts so far.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// A dispute opened at `height` over `claims`: no game, verdict or
    /// winner yet.
    pub(crate) fn open(height: u64, claims: Vec<Claim>) -> Dispute {
        Dispute {
            opened_height: height,
            claims,
            game: None,
            verdicts: Vec::new(),
            winner: None,
            closed_height: None,
        }
    }

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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
        w.option(self.pending_until.as_ref(), |w, v| w.u64(*v));
        w.option(self.auditor.as_ref(), |w, k| k.write_to(w));
        w.option(self.dispute.as_ref(), write_dispute);
        w.len(self.extra_outputs.len());
        for o in &self.extra_outputs {
            write_tensors(&mut w, o);
        }
        w.into_bytes()
    }

    /// Decodes [`JobExt::encode`]'s form, every count within its limit.
    pub fn decode(bytes: &[u8]) -> Result<JobExt, DecodeError> {
        let mut r = Reader::new("job extension record", bytes);
        r.version(RECORD_VERSION)?;
        let pending_until = r.option("pending until", |r| r.u64())?;
        let auditor = r.option("auditor", |r| PublicKey::read_from(r, "auditor"))?;
        let dispute = r.option("dispute", read_dispute)?;
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

fn write_target(w: &mut Writer, t: &Target) {
    match *t {
        Target::LeafCount => w.u8(0),
        Target::Output(o) => {
            w.u8(2);
            w.u32(o);
        }
        Target::Outputs { node } => {
            w.u8(3);
            w.u64(node);
        }
        Target::Length { node, output } => {
            w.u8(4);
            w.u64(node);
            w.u32(output);
        }
        Target::Chunk {
            node,
            output,
            chunk,
        } => {
            w.u8(5);
            w.u64(node);
            w.u32(output);
            w.u64(chunk);
        }
        Target::Fails { node } => {
            w.u8(6);
            w.u64(node);
        }
        Target::Failure => w.u8(7),
    }
}

fn read_target(r: &mut Reader<'_>) -> Result<Target, DecodeError> {
    let at = r.pos();
    Ok(match r.u8()? {
        0 => Target::LeafCount,
        // 1 was a whole operator, before chunk bisection.
        2 => Target::Output(r.u32()?),
        3 => Target::Outputs { node: r.u64()? },
        4 => Target::Length {
            node: r.u64()?,
            output: r.u32()?,
        },
        5 => Target::Chunk {
            node: r.u64()?,
            output: r.u32()?,
            chunk: r.u64()?,
        },
        6 => Target::Fails { node: r.u64()? },
        7 => Target::Failure,
        t => return Err(r.err_at(at, format!("unknown referee target {t}"))),
    })
}

fn write_side(w: &mut Writer, s: &Side) {
    w.u8(s.claim);
    w.option(s.leaves.as_ref(), |w, v| w.u64(*v));
    w.option(s.root.as_ref(), |w, h| w.digest(h));
    w.option(s.hash.as_ref(), |w, h| w.digest(h));
    w.flag(s.moved);
    w.option(s.split.as_ref(), |w, (l, r)| {
        w.digest(l);
        w.digest(r);
    });
    w.u32(s.openings);
    write_leaf_outputs(w, &s.outputs);
}

fn read_side(r: &mut Reader<'_>) -> Result<Side, DecodeError> {
    Ok(Side {
        claim: r.u8()?,
        leaves: r.option("leaves", |r| r.u64())?,
        root: r.option("root", |r| r.digest())?,
        hash: r.option("hash", |r| r.digest())?,
        moved: r.flag("moved")?,
        split: r.option("split", |r| Ok((r.digest()?, r.digest()?)))?,
        openings: {
            let at = r.pos();
            let n = r.u32()?;
            if usize::try_from(n).map_or(true, |n| n > MAX_OPENINGS_PER_SIDE) {
                return Err(r.err_at(at, format!("{n} openings, over {MAX_OPENINGS_PER_SIDE}")));
            }
            n
        },
        outputs: read_leaf_outputs(r)?,
    })
}

fn write_dispute(w: &mut Writer, d: &Dispute) {
    w.u64(d.opened_height);
    w.len(d.claims.len());
    for c in &d.claims {
        w.digest(&c.output_hash);
        w.digest(&c.trace_root);
        write_tensors(w, &c.outputs);
        w.len(c.members.len());
        for m in &c.members {
            m.write_to(w);
        }
        w.u64(c.bond);
        w.flag(c.lost);
    }
    w.option(d.game.as_ref(), |w, g| {
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
            Stage::Leaf { node } => {
                w.u8(3);
                w.u64(*node);
            }
            Stage::Chunks {
                node,
                output,
                lo,
                hi,
                chunks,
            } => {
                w.u8(4);
                w.u64(*node);
                w.u32(*output);
                w.u64(*lo);
                w.u64(*hi);
                w.u64(*chunks);
            }
        }
        w.u32(g.rounds);
        w.u64(g.deadline);
        w.u64(g.leaves);
        w.len(g.opened.len());
        for o in &g.opened {
            write_opening(w, o);
        }
        w.option(g.queued.as_ref(), |w, h| w.u64(*h));
    });
    w.len(d.verdicts.len());
    for v in &d.verdicts {
        w.u8(v.a);
        w.u8(v.b);
        w.option(v.target.as_ref(), write_target);
        w.flag(v.a_lost);
        w.flag(v.b_lost);
        w.u8(v.reason.code());
        w.u32(v.rounds);
        w.u64(v.height);
    }
    w.option(d.winner.as_ref(), |w, v| w.u8(*v));
    w.option(d.closed_height.as_ref(), |w, v| w.u64(*v));
}

/// The most claims a dispute holds (one per replica plus a challenger).
pub const MAX_CLAIMS: usize = limits::HARD_MAX_JOB_REPLICAS + 1;

/// The most members a claim holds: one per replica, or as many
/// challengers, plus one place only the job's drawn auditor may take.
pub const MAX_CLAIM_MEMBERS: usize = limits::HARD_MAX_JOB_REPLICAS + 1;

fn read_dispute(r: &mut Reader<'_>) -> Result<Dispute, DecodeError> {
    let opened_height = r.u64()?;
    let n = r.len("claims", MAX_CLAIMS)?;
    let mut claims = Vec::with_capacity(n);
    for _ in 0..n {
        let output_hash = r.digest()?;
        let trace_root = r.digest()?;
        let outputs = read_tensors(r, "claim outputs")?;
        let m = r.len("claim members", MAX_CLAIM_MEMBERS)?;
        let mut members = Vec::with_capacity(m);
        for _ in 0..m {
            members.push(PublicKey::read_from(r, "claim member")?);
        }
        claims.push(Claim {
            output_hash,
            trace_root,
            outputs,
            members,
            bond: r.u64()?,
            lost: r.flag("lost")?,
        });
    }
    let game = r.option("game", |r| {
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
            3 => Stage::Leaf { node: r.u64()? },
            4 => Stage::Chunks {
                node: r.u64()?,
                output: r.u32()?,
                lo: r.u64()?,
                hi: r.u64()?,
                chunks: r.u64()?,
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
        let queued = r.option("queued", |r| r.u64())?;
        Ok(Game {
            a,
            b,
            stage,
            rounds,
            deadline,
            leaves,
            opened,
            queued,
        })
    })?;
    let k = r.len("verdicts", MAX_CLAIMS)?;
    let mut verdicts = Vec::with_capacity(k);
    for _ in 0..k {
        let a = r.u8()?;
        let b = r.u8()?;
        let target = r.option("target", read_target)?;
        let a_lost = r.flag("lost")?;
        let b_lost = r.flag("lost")?;
        let at = r.pos();
        let code = r.u8()?;
        let reason = VerdictReason::from_code(code)
            .ok_or_else(|| r.err_at(at, format!("unknown verdict reason {code}")))?;
        verdicts.push(Verdict {
            a,
            b,
            target,
            a_lost,
            b_lost,
            reason,
            rounds: r.u32()?,
            height: r.u64()?,
        });
    }
    let winner = r.option("winner", |r| r.u8())?;
    let closed_height = r.option("closed height", |r| r.u64())?;
    Ok(Dispute {
        opened_height,
        claims,
        game,
        verdicts,
        winner,
        closed_height,
    })
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
    use glassbox_primitives::Digest;

    use super::*;

    fn h<D: Digest>(i: u64) -> D {
        D::from_array(*blake3::hash(&i.to_le_bytes()).as_bytes())
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
                        openings: 2,
                        outputs: vec![LeafOutput {
                            hash: h(9),
                            len: 1_000,
                        }],
                    },
                    b: Side::default(),
                    stage: Stage::Referee {
                        target: Target::Chunk {
                            node: 3,
                            output: 0,
                            chunk: 7,
                        },
                    },
                    rounds: 4,
                    deadline: 30,
                    leaves: 5,
                    opened: vec![LeafOpening {
                        node: 1,
                        outputs: vec![h(6)],
                        path: vec![h(7), h(8)],
                    }],
                    queued: Some(29),
                }),
                verdicts: vec![Verdict {
                    a: 0,
                    b: 1,
                    target: Some(Target::Output(0)),
                    a_lost: false,
                    b_lost: true,
                    reason: VerdictReason::Output,
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
