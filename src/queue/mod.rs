//! The Redis job queue: every key the worker uses, every atomic step on them (each multi-key step
//! a Lua script in `lua/`), and the QueueListener that takes jobs. A job always lives in Redis —
//! queue, in-flight list, retry set or failed list — never only in a worker's memory. How a job
//! ends (ack, retry, failed list) is the Settler's (`crate::settle`), on a connection of its own.

pub mod client;
pub mod keys;
mod link;
pub mod listener;
pub mod record;

pub use client::RedisQueue;
pub use keys::Keys;
pub use record::FailureRecord;

/// Errors talking to Redis.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("Connecting to Redis at {url} failed: {source}. Is Redis running there?")]
    Connect {
        url: String,
        source: redis::RedisError,
    },
    #[error("Redis command {command} failed: {source}")]
    Command {
        command: &'static str,
        source: redis::RedisError,
    },
    #[error("No connection to Redis")]
    Disconnected,
}

impl QueueError {
    /// Whether the connection is gone (as opposed to one command being refused).
    pub fn is_connection_lost(&self) -> bool {
        match self {
            QueueError::Connect { .. } | QueueError::Disconnected => true,
            QueueError::Command { source, .. } => {
                source.is_io_error()
                    || source.is_connection_dropped()
                    || source.is_connection_refusal()
                    || source.is_timeout()
            }
        }
    }
}

impl crate::error::Classify for QueueError {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::Transient
    }
}
