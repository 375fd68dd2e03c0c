//! The one error a storage operation can end with, classified for the retry policy.

use crate::error::{Classify, ErrorKind};

/// Why reading or writing an object failed. Every message names the store, the bucket and the
/// key, and the setting to check; none carries a credential (keys travel in headers or request
/// signatures, never in the URLs or server replies quoted here).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StorageError {
    #[error("{key} is not in bucket {bucket} ({store}); check the chunk's storage_path and that {setting} names the bucket the app uploads to.")]
    NotFound {
        store: &'static str,
        bucket: String,
        key: String,
        setting: &'static str,
    },

    #[error("Bucket {bucket} does not exist on {store} at {endpoint}, or the configured key may not see it; check {setting}.")]
    BucketNotFound {
        store: &'static str,
        endpoint: String,
        bucket: String,
        setting: &'static str,
    },

    #[error("{store} refused access to {key} in bucket {bucket} ({reason}); check {setting}.")]
    AccessDenied {
        store: &'static str,
        bucket: String,
        key: String,
        reason: String,
        setting: &'static str,
    },

    #[error("{store} refused to store {key} in bucket {bucket}: it is larger than the bucket's file size limit ({reason}); raise the limit for bucket {bucket}.")]
    TooLarge {
        store: &'static str,
        bucket: String,
        key: String,
        reason: String,
    },

    #[error(
        "{store} rejected the request for {key} in bucket {bucket} ({reason}); check {setting}."
    )]
    Rejected {
        store: &'static str,
        bucket: String,
        key: String,
        reason: String,
        setting: &'static str,
    },

    #[error("{store} at {endpoint} failed for {key} in bucket {bucket} ({reason}); the job will be retried.")]
    Unavailable {
        store: &'static str,
        endpoint: String,
        bucket: String,
        key: String,
        reason: String,
    },

    #[error("{store} at {endpoint} did not answer in time for {key} in bucket {bucket}; the job will be retried.")]
    Timeout {
        store: &'static str,
        endpoint: String,
        bucket: String,
        key: String,
    },

    #[error("Storing {key} under {root} failed: {reason}. Check that the directory is writable and the disk has room.")]
    LocalIo {
        root: String,
        key: String,
        reason: String,
    },

    #[error("The storage configuration is not usable: {reason}; fix {setting}.")]
    Config {
        setting: &'static str,
        reason: String,
    },
}

impl Classify for StorageError {
    fn kind(&self) -> ErrorKind {
        match self {
            // Network trouble and a full or read-only disk may pass; the job is fine.
            StorageError::Unavailable { .. }
            | StorageError::Timeout { .. }
            | StorageError::LocalIo { .. } => ErrorKind::Transient,
            // Asking again gets the same answer until someone changes the data or the settings.
            StorageError::NotFound { .. }
            | StorageError::BucketNotFound { .. }
            | StorageError::AccessDenied { .. }
            | StorageError::TooLarge { .. }
            | StorageError::Rejected { .. }
            | StorageError::Config { .. } => ErrorKind::Permanent,
        }
    }
}

/// At most this many characters of a server's explanation go into a message.
const MAX_REASON_CHARS: usize = 300;

/// A server's explanation cut to a readable length, on one line.
pub(crate) fn short_reason(text: &str) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(MAX_REASON_CHARS) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_objects_are_permanent_and_outages_transient() {
        let missing = StorageError::NotFound {
            store: "Supabase Storage",
            bucket: "audio-chunks".into(),
            key: "sessions/a/chunks/chunk_0000_1.m4a".into(),
            setting: "STORAGE_BUCKET",
        };
        assert_eq!(missing.kind(), ErrorKind::Permanent);
        let text = missing.to_string();
        for part in [
            "audio-chunks",
            "sessions/a/chunks/chunk_0000_1.m4a",
            "STORAGE_BUCKET",
        ] {
            assert!(text.contains(part), "{text}");
        }
        let down = StorageError::Unavailable {
            store: "S3",
            endpoint: "http://127.0.0.1:9".into(),
            bucket: "b".into(),
            key: "k".into(),
            reason: "connection refused".into(),
        };
        assert_eq!(down.kind(), ErrorKind::Transient);
    }

    #[test]
    fn reasons_are_one_short_line() {
        assert_eq!(short_reason("a\n  b\tc"), "a b c");
        let long = "x".repeat(1000);
        assert_eq!(short_reason(&long).chars().count(), MAX_REASON_CHARS + 1);
    }
}
