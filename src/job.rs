//! A job and its journey. The payload the API pushes is `{"session_id": "<uuid>", "queued_at":
//! "<iso>"}`; unknown fields are kept so a requeue never drops what the API (or a newer worker)
//! put there, and the worker adds `attempt`, `last_error` and failure timestamps when it retries
//! a job.
//!
//! The messages a job travels in live here too, in a module every actor may import, so the
//! actors are wired with `Recipient<M>` and no two of queue, processor and settle import each
//! other: the QueueListener sends [`Process`] to the Processor; the Processor (or the listener,
//! for a job it cannot hand over) sends [`Settle`] to the Settler, the one owner of a job's end;
//! the Settler tells the listener [`Settled`] once the job has left its in-flight list.

use actix::{Message, Recipient};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::JobError;
use crate::session::{SessionResults, SpeakerSample};
use crate::stats::JobSummary;

/// One job as the worker understands it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobPayload {
    pub session_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_at: Option<String>,
    /// Attempts already made (0 for a job fresh from the API).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failed_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failed_at: Option<String>,
    /// Optional per-job bounds on the number of speakers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_speakers: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_speakers: Option<usize>,
    /// Process the session even if it is already `ready_for_claiming` or its speakers are
    /// claimed, replacing results and claims (an operator's `failed retry --force`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub force: bool,
    /// Fields this worker does not know, carried through requeues unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl JobPayload {
    /// A fresh job for a session, exactly as the API makes it.
    pub fn new(session_id: Uuid) -> Self {
        JobPayload {
            session_id,
            queued_at: Some(api_timestamp(chrono::Utc::now())),
            attempt: 0,
            last_error: None,
            first_failed_at: None,
            last_failed_at: None,
            min_speakers: None,
            max_speakers: None,
            force: false,
            extra: Map::new(),
        }
    }

    pub fn to_json(&self) -> String {
        // Serialising a struct of strings, numbers and a JSON map cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The payload for the next attempt after a failure.
    pub fn next_attempt(&self, error: &str, now: chrono::DateTime<chrono::Utc>) -> JobPayload {
        let stamp = api_timestamp(now);
        JobPayload {
            attempt: self.attempt.saturating_add(1),
            last_error: Some(error.to_string()),
            first_failed_at: self.first_failed_at.clone().or_else(|| Some(stamp.clone())),
            last_failed_at: Some(stamp),
            ..self.clone()
        }
    }

    /// The payload with its attempt history cleared (for `failed retry`).
    pub fn reset_attempts(&self) -> JobPayload {
        JobPayload {
            attempt: 0,
            last_error: None,
            first_failed_at: None,
            last_failed_at: None,
            ..self.clone()
        }
    }
}

/// The API's timestamp style: ISO-8601 UTC without a zone suffix.
pub fn api_timestamp(at: chrono::DateTime<chrono::Utc>) -> String {
    at.naive_utc().format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

/// Parses a raw payload; every way it can be wrong is a permanent error saying which.
pub fn parse(raw: &str, max_bytes: usize) -> Result<JobPayload, JobError> {
    if raw.len() > max_bytes {
        return Err(JobError::permanent(format!(
            "payload is {} bytes, over the {max_bytes}-byte limit",
            raw.len()
        )));
    }
    let value: Value = serde_json::from_str(raw)
        .map_err(|err| JobError::permanent(format!("payload is not JSON: {err}")))?;
    let Some(object) = value.as_object() else {
        return Err(JobError::permanent("payload is not a JSON object"));
    };
    match object.get("session_id") {
        None | Some(Value::Null) => return Err(JobError::permanent("payload has no session_id")),
        Some(Value::String(id)) if Uuid::parse_str(id).is_err() => {
            return Err(JobError::permanent(format!(
                "session_id {id:?} is not a valid uuid"
            )))
        }
        Some(Value::String(_)) => {}
        Some(other) => {
            return Err(JobError::permanent(format!(
                "session_id {other} is not a string"
            )))
        }
    }
    serde_json::from_value(value)
        .map_err(|err| JobError::permanent(format!("payload fields are malformed: {err}")))
}

/// The session id of a payload, if one can be read at all (for failed-list records of bad jobs).
pub fn loose_session_id(raw: &str) -> Option<String> {
    let value: Value = serde_json::from_str(raw).ok()?;
    value.get("session_id")?.as_str().map(str::to_string)
}

// ---- the journey ----

/// A job as it was taken off the queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Taken {
    /// The payload exactly as taken: it is removed from the in-flight list by value.
    pub raw: String,
    /// The parsed payload; `None` when it could not be parsed.
    pub payload: Option<JobPayload>,
    /// How many times the job was taken back from a worker that died holding it.
    pub redeliveries: u32,
}

impl Taken {
    pub fn session_id(&self) -> Option<Uuid> {
        self.payload.as_ref().map(|p| p.session_id)
    }

    /// The session for log lines: its id, or a note that the payload had none.
    pub fn session_text(&self) -> String {
        self.session_id()
            .map_or_else(|| "(no valid session_id)".to_string(), |id| id.to_string())
    }

    /// Attempts made so far, this one included.
    pub fn attempts(&self) -> u32 {
        self.payload
            .as_ref()
            .map_or(0, |p| p.attempt)
            .saturating_add(1)
    }
}

/// What one delivery of a job came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The pipeline ran: these results, sample URLs and status `ready_for_claiming` are to be
    /// committed together.
    Completed(Box<Completed>),
    /// The attempt failed; retried or failed for good according to its kind and attempts.
    Failed(JobError),
    /// Nothing to do: the session is already finished or claimed (a duplicate job). The reason
    /// is logged.
    Finished(String),
    /// Another worker holds the session: this copy is a duplicate and is dropped.
    HeldElsewhere,
    /// Not run, and put back on the queue as it was (the pipeline is not loaded).
    Returned(String),
}

/// A finished analysis, ready to be committed.
#[derive(Debug, Clone, PartialEq)]
pub struct Completed {
    pub results: SessionResults,
    pub samples: Vec<SpeakerSample>,
    pub summary: JobSummary,
    /// Replace results even if the session is finished or claimed by then.
    pub force: bool,
}

/// Process one job (QueueListener → Processor).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Process {
    pub job: Taken,
    /// Who is told once the job has left the in-flight list (passed on in [`Settle`]).
    pub reply_to: Recipient<Settled>,
}

/// Record how a job ended: the database first, then the job's move in Redis (→ Settler).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Settle {
    pub job: Taken,
    pub outcome: Outcome,
    /// The QueueListener that took the job: told [`Settled`] at the end.
    pub reply_to: Recipient<Settled>,
}

/// A job has left this worker's in-flight list (Settler → QueueListener).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Settled {
    pub raw: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = r#"{"session_id": "6f1c1a52-8d0e-4a8e-9c39-0d4f1f7c2b11", "queued_at": "2026-01-17T19:00:00"}"#;

    #[test]
    fn the_apis_payload_parses_unchanged() {
        let job = parse(SEED, 65536).expect("seed payload");
        assert_eq!(
            job.session_id.to_string(),
            "6f1c1a52-8d0e-4a8e-9c39-0d4f1f7c2b11"
        );
        assert_eq!(job.queued_at.as_deref(), Some("2026-01-17T19:00:00"));
        assert_eq!(job.attempt, 0);
        let round: Value = serde_json::from_str(&job.to_json()).unwrap();
        assert_eq!(round, serde_json::from_str::<Value>(SEED).unwrap());
    }

    #[test]
    fn unknown_fields_survive_a_retry() {
        let raw = r#"{"session_id":"6f1c1a52-8d0e-4a8e-9c39-0d4f1f7c2b11","queued_at":"x","source":"ios","n":{"a":1}}"#;
        let job = parse(raw, 65536).unwrap();
        let retried = job.next_attempt("db down", chrono::Utc::now());
        let value: Value = serde_json::from_str(&retried.to_json()).unwrap();
        assert_eq!(value["source"], "ios");
        assert_eq!(value["n"]["a"], 1);
        assert_eq!(value["attempt"], 1);
        assert_eq!(value["last_error"], "db down");
        let again = parse(&retried.to_json(), 65536)
            .unwrap()
            .next_attempt("x", chrono::Utc::now());
        assert_eq!(again.attempt, 2);
        assert_eq!(again.first_failed_at, retried.first_failed_at);
        assert_eq!(again.reset_attempts().attempt, 0);
    }

    #[test]
    fn bad_payloads_are_permanent_errors_that_say_why() {
        let cases = [
            ("not json", "not JSON"),
            ("[1,2]", "not a JSON object"),
            (r#"{"queued_at":"x"}"#, "no session_id"),
            (r#"{"session_id":"test-uuid"}"#, "not a valid uuid"),
            (r#"{"session_id":42}"#, "not a string"),
        ];
        for (raw, reason) in cases {
            let err = parse(raw, 65536).expect_err(raw);
            assert!(!err.is_transient(), "{raw}");
            assert!(err.message.contains(reason), "{raw}: {}", err.message);
        }
        let huge = format!(
            r#"{{"session_id":"{}","pad":"{}"}}"#,
            Uuid::nil(),
            "x".repeat(100)
        );
        assert!(parse(&huge, 64)
            .unwrap_err()
            .message
            .contains("over the 64-byte limit"));
    }
}
