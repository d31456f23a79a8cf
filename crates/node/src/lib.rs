//! A Glassbox validator node (docs/consensus.md): Commonware simplex
//! consensus over authenticated p2p, the consensus application that
//! executes blocks on the pure ledger, the mempool, and the HTTP API. This
//! crate owns all of the node's I/O; the ledger never sees the engine.
//!
//! By subsystem: `consensus` (types, engine wiring, the application,
//! blocks, genesis), `chain` (the node's view of the ledger: finalized and
//! pending states, mempool, gossip, the job index), `api` (HTTP, blobs,
//! the OpenAPI document), `executor` (the executor role and peer model
//! fetch), `disputes` (a party's moves, the referee, off-ledger data),
//! `receipt` (build and verify), `manifest` (a model's manifest facts) and
//! `run` (the `glassbox node`/`dev` runners).

pub mod api;
pub mod chain;
pub mod consensus;
pub mod disputes;
pub mod executor;
pub mod manifest;
pub mod receipt;
pub mod run;
