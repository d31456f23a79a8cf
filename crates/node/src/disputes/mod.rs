//! Disputes on the node's side (docs/disputes.md): an executor's moves in
//! the game (`party`), the validators' referee that re-runs one operator
//! (`referee`), and the off-ledger data the referee needs, held and
//! fetched by hash (`offchain`).

pub mod offchain;
pub mod party;
pub mod referee;
