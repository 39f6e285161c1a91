//! The crate's single error type.

use std::path::PathBuf;

/// Every failure the solver crate reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The XML of a `.fet` file is malformed.
    #[error("line {line}, column {column}: malformed XML: {message}")]
    Xml {
        line: u32,
        column: u32,
        message: String,
    },
    /// A syntax or value error at a known place of an input file.
    #[error("line {line}, column {column}: {message}")]
    Syntax {
        line: u32,
        column: u32,
        message: String,
    },
    /// An input names a teacher, room, activity… that is not defined.
    #[error("line {line}, column {column}: unknown {kind} \"{name}\"")]
    Unknown {
        kind: &'static str,
        name: String,
        line: u32,
        column: u32,
    },
    /// The file uses constraint types this solver does not implement.
    #[error("unsupported constraint types (pass --ignore-unsupported to skip them): {0}")]
    Unsupported(String),
    /// Inconsistent data that is not tied to one place of a file.
    #[error("invalid data: {0}")]
    Invalid(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
