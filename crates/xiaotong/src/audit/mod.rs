//! The audit trail: an append-only, per-tenant hash-chained record of every write.

pub mod http;
pub mod model;
pub mod store;

pub use model::Change;
pub use store::{append, verify};
