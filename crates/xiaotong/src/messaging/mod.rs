//! Message center: messages, audiences, templates, the delivery pipeline,
//! inbox with live updates, history with read receipts.
//!
//! Other modules send through [`notify`], inside their own transaction.

pub mod audience;
pub mod http;
pub mod live;
pub mod model;
pub mod pipeline;
pub mod service;
pub mod store;
pub mod template;

pub use model::{Audience, AudienceRule, Priority};
pub use pipeline::Runtime;
pub use service::{notify, notify_many, Notify};
