//! The one error a job can end with, and whether trying again could help.

use std::fmt;

/// Whether a failed job is worth another attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorKind {
    /// The job can never succeed as it is: bad payload, unknown session, corrupt audio.
    Permanent,
    /// Something outside the job failed: database, network, GPU memory. Retried with backoff.
    Transient,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Permanent => "permanent",
            ErrorKind::Transient => "transient",
        })
    }
}

/// Why a job failed, as it travels between actors and into the failed list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct JobError {
    pub kind: ErrorKind,
    pub message: String,
}

impl JobError {
    pub fn permanent(message: impl Into<String>) -> Self {
        JobError {
            kind: ErrorKind::Permanent,
            message: message.into(),
        }
    }

    pub fn transient(message: impl Into<String>) -> Self {
        JobError {
            kind: ErrorKind::Transient,
            message: message.into(),
        }
    }

    pub fn is_transient(&self) -> bool {
        self.kind == ErrorKind::Transient
    }
}

/// Every concern's error enum says which kind its variants are, so the Processor can turn any
/// of them into a `JobError` with `?`.
pub trait Classify: std::error::Error {
    fn kind(&self) -> ErrorKind;
}

impl<E: Classify> From<E> for JobError {
    fn from(err: E) -> Self {
        JobError {
            kind: err.kind(),
            message: err.to_string(),
        }
    }
}

/// An error and its causes on one line ("error sending request: …: Connection refused").
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
