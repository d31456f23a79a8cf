//! Glassbox's HTTP API as types: the JSON body of every route
//! ([`wire`]), shared by the node's server and every client so that the
//! two cannot drift; the paths ([`routes`]); proof-checked state reads
//! ([`Proven::verify`] → [`Verified`]); and, with the `client` feature, the
//! one client ([`Client`], async over reqwest, and [`blocking::Client`])
//! used by the CLI, the examples, the tests and the SDKs.
//!
//! Without the `client` feature the crate is pure: no I/O, no runtime.
//! The routes, statuses and error codes are documented on
//! `glassbox_node::api`; the OpenAPI document at `GET /v1/openapi.json`
//! describes the same types.

#[cfg(feature = "client")]
pub mod blocking;
#[cfg(feature = "client")]
mod client;
pub mod routes;
pub mod schema;
#[cfg(feature = "client")]
pub mod tls;
mod verify;
pub mod wire;

#[cfg(feature = "client")]
pub use client::{
    Client, Error, MAX_CONNECT_TIMEOUT, MAX_JSON_BYTES, MIN_UPLOAD_BYTES_PER_SEC, ModelByName,
};
pub use verify::{MAX_RECORD_BYTES, Record, Verified, VerifyError, VersionEntry};
pub use wire::Proven;
