//! flowbot's run engine: the `Worker` that claims runs from the store (leases and
//! heartbeats), drives core's `Runner` through a journal kept in the store, fires
//! schedule slots, polls polling triggers, applies retention, and notifies on final
//! failures; and the `FlowCache` of parsed flow versions.
//!
//! **Invariant:** the engine reaches the database only through the store's public API and
//! apps only through core's `Connector`; it knows nothing of HTTP servers (the server
//! depends on the engine, never the other way).

pub mod notify;
pub mod sync;
pub mod worker;

pub use worker::{EngineError, FlowCache, Worker, WorkerConfig, WorkerStats};
