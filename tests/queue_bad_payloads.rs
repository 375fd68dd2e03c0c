//! Malformed jobs — not JSON, no session_id, a bad uuid, a 10 MB payload — each reach the failed
//! list within a second with the raw payload and the reason, and the worker carries on with the
//! next valid job.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use lahstats_worker::queue::FailureRecord;
use support::worker::*;

#[test]
fn malformed_jobs_fail_at_once_and_the_worker_carries_on() {
    let dir = tempdir();
    let config = test_config(dir.path(), "bad-w1", &[]);
    let script = Arc::new(Script::default());
    let worker = InProcessWorker::start(config.clone(), scripted_factory(script.clone()));
    let mut queue = queue_for(&config);

    let huge = format!(
        r#"{{"session_id":"{}","pad":"{}"}}"#,
        uuid::Uuid::new_v4(),
        "x".repeat(10 << 20)
    );
    let cases: Vec<(String, &str)> = vec![
        ("this is not json".into(), "not JSON"),
        (
            r#"{"queued_at": "2026-01-17T19:00:00"}"#.into(),
            "no session_id",
        ),
        (
            r#"{"session_id": "test-uuid", "queued_at": "2026-01-17T19:00:00"}"#.into(),
            "not a valid uuid",
        ),
        (huge, "over the 65536-byte limit"),
    ];
    for (i, (raw, reason)) in cases.iter().enumerate() {
        let pushed = Instant::now();
        queue.enqueue(raw).unwrap();
        assert!(
            wait_until(Duration::from_secs(1), || queue
                .failed_entries()
                .unwrap()
                .len()
                == i + 1),
            "case {i} ({reason}) did not reach the failed list within a second"
        );
        println!(
            "case {i} ({reason}): failed list after {:?}",
            pushed.elapsed()
        );
        let newest: FailureRecord =
            serde_json::from_str(&queue.failed_entries().unwrap()[0]).unwrap();
        assert!(
            newest.error.contains(reason),
            "{} should say {reason}",
            newest.error
        );
        assert_eq!(
            newest.error_kind,
            lahstats_worker::error::ErrorKind::Permanent
        );
        assert_eq!(newest.attempts, 1);
        // The raw payload is kept (as JSON when it was JSON, else as the string).
        match &newest.payload {
            serde_json::Value::String(s) => assert_eq!(s, raw),
            other => assert_eq!(
                other,
                &serde_json::from_str::<serde_json::Value>(raw).unwrap()
            ),
        }
    }
    // Nothing is left in flight, and a valid job right after is processed.
    let session = register_session(&config, 1);
    queue
        .enqueue(&lahstats_worker::job::JobPayload::new(session).to_json())
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || session_status(
        &config, session
    )
    .0
        == "ready_for_claiming"));
    let mut conn = redis(&config);
    let inflight: usize = redis::cmd("LLEN")
        .arg(queue.keys.inflight())
        .query(&mut conn)
        .unwrap();
    assert_eq!(inflight, 0);
    assert_eq!(worker.stop(), 0);
    clean_prefix(&config);
}
