//! What a job that failed for good looks like on the failed list.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ErrorKind;

/// One entry of the failed list (JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureRecord {
    /// The job's payload as the worker last held it (a JSON string when it was not JSON).
    pub payload: Value,
    /// The session, when the payload had a readable one.
    pub session_id: Option<String>,
    /// Attempts made, the failing one included.
    pub attempts: u32,
    pub error: String,
    pub error_kind: ErrorKind,
    pub first_failed_at: String,
    pub last_failed_at: String,
    pub worker_id: String,
}

impl FailureRecord {
    /// The record for a raw payload that failed `attempts` times with `error`.
    pub fn new(
        raw: &str,
        attempts: u32,
        error: &crate::error::JobError,
        first_failed_at: Option<String>,
        worker_id: &str,
    ) -> FailureRecord {
        let now = crate::job::api_timestamp(chrono::Utc::now());
        let payload = serde_json::from_str::<Value>(raw)
            .ok()
            .filter(Value::is_object)
            .unwrap_or_else(|| Value::String(raw.to_string()));
        FailureRecord {
            payload,
            session_id: crate::job::loose_session_id(raw),
            attempts,
            error: error.message.clone(),
            error_kind: error.kind,
            first_failed_at: first_failed_at.unwrap_or_else(|| now.clone()),
            last_failed_at: now,
            worker_id: worker_id.to_string(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The job to enqueue again, with its attempts reset, when the payload is a valid job.
    pub fn job_to_retry(&self) -> Option<crate::job::JobPayload> {
        let payload =
            serde_json::from_value::<crate::job::JobPayload>(self.payload.clone()).ok()?;
        Some(payload.reset_attempts())
    }
}
