//! What each fuzz target asserts about one input, shared by the fuzz targets (nightly, libFuzzer)
//! and `tests/fuzz_regressions.rs` (stable, which replays the corpus and every regression input),
//! so a crasher found once stays a test for good.
// Each fuzz target uses half of these.
#![allow(dead_code)]

use std::path::Path;

use lahstats_worker::audio::{decode_file, AudioOptions, SAMPLE_RATE};
use lahstats_worker::error::{Classify, ErrorKind, JobError};
use lahstats_worker::job::{self, JobPayload};
use lahstats_worker::queue::FailureRecord;

/// The worker's default payload limit.
const MAX_PAYLOAD_BYTES: usize = 65_536;

/// `job::parse` never panics; a payload it accepts re-serialises and re-parses to itself, and
/// so do the payloads made from it for a retry and for `failed retry`; attempts never go
/// backwards. A `FailureRecord` of any raw payload round-trips through its JSON.
pub fn job_payload(data: &[u8]) {
    // Redis hands the worker bytes; it reads them as text.
    let raw = String::from_utf8_lossy(data);
    match job::parse(&raw, MAX_PAYLOAD_BYTES) {
        Ok(payload) => check_accepted(&raw, &payload),
        Err(error) => {
            assert!(
                !error.is_transient(),
                "a bad payload must fail for good: {error}"
            );
            assert!(!error.message.is_empty());
        }
    }
    check_failure_record(&raw);
}

fn reparse(payload: &JobPayload, what: &str) -> JobPayload {
    let json = payload.to_json();
    assert!(!json.is_empty(), "{what} serialised to nothing");
    job::parse(&json, usize::MAX)
        .unwrap_or_else(|err| panic!("{what} {json} does not parse again: {err}"))
}

fn check_accepted(raw: &str, payload: &JobPayload) {
    assert_eq!(&reparse(payload, "an accepted payload"), payload);
    assert_eq!(
        job::loose_session_id(raw).and_then(|id| uuid::Uuid::parse_str(&id).ok()),
        Some(payload.session_id),
        "the failed list's session id must be the one the job ran as"
    );
    let now = chrono::Utc::now();
    let retried = payload.next_attempt("database down", now);
    assert_eq!(&reparse(&retried, "a retried payload"), &retried);
    assert!(
        retried.attempt >= payload.attempt,
        "attempts went backwards: {} after {}",
        retried.attempt,
        payload.attempt
    );
    assert_eq!(retried.session_id, payload.session_id);
    assert_eq!(
        retried.extra, payload.extra,
        "unknown fields must survive a retry"
    );
    let reset = retried.reset_attempts();
    assert_eq!(reset.attempt, 0);
    assert_eq!(&reparse(&reset, "a reset payload"), &reset);
}

fn check_failure_record(raw: &str) {
    let error = JobError::permanent("fuzzed failure");
    let record = FailureRecord::new(raw, 4, &error, None, "fuzz-worker");
    let json = record.to_json();
    assert!(!json.is_empty(), "a failure record serialised to nothing");
    let back: FailureRecord = serde_json::from_str(&json)
        .unwrap_or_else(|err| panic!("failure record {json} does not parse again: {err}"));
    assert_eq!(back, record);
    if let Some(job) = record.job_to_retry() {
        assert_eq!(job.attempt, 0);
        assert_eq!(&reparse(&job, "a job retried from the failed list"), &job);
    }
}

/// `decode_file` on arbitrary bytes uploaded as a chunk never panics; it answers samples (some,
/// finite, within the length limit) or an `AudioError` that fails the job for good (a local file
/// is never worth a retry).
pub fn audio_decode(data: &[u8]) {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(dir.path().join("chunk_0000"), data).expect("write the chunk");
    audio_decode_file(dir.path(), "chunk_0000");
}

/// The same check on a chunk already on disk under `storage_root`.
pub fn audio_decode_file(storage_root: &Path, location: &str) {
    let options = AudioOptions {
        storage_root: storage_root.to_path_buf(),
        ..AudioOptions::default()
    };
    match decode_file(location, &options) {
        Ok(samples) => {
            assert!(!samples.is_empty(), "Ok with no samples (should be Empty)");
            let limit = (options.max_duration_seconds + 1.0) * f64::from(SAMPLE_RATE);
            assert!(samples.len() as f64 <= limit, "more samples than the limit");
            if let Some(bad) = samples.iter().position(|s| !s.is_finite()) {
                panic!("sample {bad} of {} is {}", samples.len(), samples[bad]);
            }
        }
        Err(error) => {
            assert_eq!(
                error.kind(),
                ErrorKind::Permanent,
                "a local chunk's error must be permanent: {error}"
            );
            assert!(!error.to_string().is_empty());
        }
    }
}
