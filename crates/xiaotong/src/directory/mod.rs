//! Tenants, campuses, departments, classes, people, parent↔student links, tags, bulk import.

pub mod http;
pub mod import;
pub mod model;
pub mod service;
pub mod store;
pub mod validate;
