//! A Glassbox validator node (docs/consensus.md): Commonware simplex
//! consensus over authenticated p2p, the consensus application that
//! executes blocks on the pure ledger, the mempool, and the HTTP API. This
//! crate owns all of the node's I/O; the ledger never sees the engine.

pub mod api;
pub mod application;
pub mod block;
pub mod chain;
pub mod consensus;
pub mod engine;
pub mod executor;
pub mod fetch;
pub mod genesis;
pub mod gossip;
pub mod jobindex;
pub mod manifest;
pub mod mempool;
pub mod offchain;
pub mod party;
pub mod receipt;
pub mod referee;
pub mod run;
