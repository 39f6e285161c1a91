//! Passwords, sessions, API tokens, roles and permissions.

pub mod authz;
pub mod cache;
pub mod http;
pub mod model;
pub mod password;
pub mod service;
pub mod store;

pub use authz::authorize;
pub use model::{Actor, Principal, Scope};
