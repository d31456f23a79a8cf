//! Glassbox's ledger: the pure, deterministic state machine that consensus
//! replicates (docs/ledger.md).
