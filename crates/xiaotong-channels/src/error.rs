//! The crate's single error type.

/// Errors raised while building adapters or preparing requests.
///
/// Per-recipient delivery failures are *not* errors: they are reported as
/// [`crate::DeliveryOutcome`] values so that a batch can partly succeed.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The adapter configuration is invalid (bad URL, missing field…).
    #[error("invalid channel configuration: {0}")]
    Config(String),
    /// The message cannot be expressed on this channel (e.g. SMS without a template).
    #[error("invalid message for this channel: {0}")]
    InvalidMessage(String),
    /// Transport-level HTTP failure (connection refused, timeout, TLS…).
    #[error("http transport error: {0}")]
    Http(#[from] reqwest::Error),
    /// The provider answered something that is not the documented shape.
    #[error("unexpected provider response: {0}")]
    Protocol(String),
    /// SMTP transport failure.
    #[error("smtp error: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
    /// A mail could not be built (bad address, bad header…).
    #[error("invalid e-mail: {0}")]
    Email(String),
    /// JSON (de)serialisation failure.
    #[error("json error: {0}")]
    Json(#[from] serde_json::Error),
}

/// Result alias used across the crate.
pub type Result<T> = std::result::Result<T, ChannelError>;
