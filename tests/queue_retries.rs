//! Retries: a transiently failing job is attempted 1 + 3 times with delays doubling from the
//! base, waits in the durable retry set in between (session still `processing`), lands in the
//! failed list with its reason, and `failed retry` brings it back to succeed.

mod support;

use std::sync::Arc;
use std::time::Duration;

use lahstats_worker::queue::FailureRecord;
use support::worker::*;

#[test]
fn transient_failures_back_off_then_fail_then_retry_by_hand() {
    let dir = tempdir();
    let config = test_config(dir.path(), "retry-w1", &["--retry-base-delay=0.4"]);
    let script = Arc::new(Script::default());
    let worker = InProcessWorker::start(config.clone(), scripted_factory(script.clone()));
    let session = register_session(&config, 1);
    script.fail_transient.lock().unwrap().insert(session, 4);

    let mut queue = queue_for(&config);
    queue
        .enqueue(&lahstats_worker::job::JobPayload::new(session).to_json())
        .unwrap();

    // Between attempts the app must keep seeing `processing`, not a failure.
    assert!(wait_until(Duration::from_secs(10), || script
        .calls_for(session)
        .len()
        >= 2));
    assert_eq!(session_status(&config, session).0, "processing");

    assert!(
        wait_until(Duration::from_secs(20), || queue
            .failed_entries()
            .unwrap()
            .len()
            == 1),
        "the job never reached the failed list"
    );
    let calls = script.calls_for(session);
    assert_eq!(calls.len(), 4, "1 attempt + 3 retries");
    let gaps: Vec<f64> = calls
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect();
    println!("attempt gaps: {gaps:?} (base 0.4 s)");
    for (gap, expected) in gaps.iter().zip([0.4, 0.8, 1.6]) {
        assert!(
            *gap >= expected && *gap < expected + 0.35,
            "gap {gap:.3}s should be {expected}s (+ at most a polling tick): {gaps:?}"
        );
    }
    let ratios = (gaps[1] / gaps[0], gaps[2] / gaps[0]);
    println!("delay pattern 1 : {:.2} : {:.2}", ratios.0, ratios.1);

    let record: FailureRecord = serde_json::from_str(&queue.failed_entries().unwrap()[0]).unwrap();
    assert_eq!(
        record.session_id.as_deref(),
        Some(session.to_string().as_str())
    );
    assert_eq!(record.attempts, 4);
    assert_eq!(record.error, "scripted transient failure");
    assert_eq!(
        record.error_kind,
        lahstats_worker::error::ErrorKind::Transient
    );
    assert_eq!(record.worker_id, "retry-w1");
    assert!(record.payload["queued_at"].as_str().is_some());
    let (status, _, error) = session_status(&config, session);
    assert_eq!(status, "failed");
    assert_eq!(error.as_deref(), Some("scripted transient failure"));

    // `failed retry <session>` requeues it with attempts reset; this time it succeeds.
    let moved =
        lahstats_worker::cli::failed::retry(&mut queue, Some(&session.to_string()), false).unwrap();
    assert_eq!(moved, 1);
    assert!(wait_until(Duration::from_secs(10), || session_status(
        &config, session
    )
    .0
        == "ready_for_claiming"));
    assert_eq!(script.calls_for(session).len(), 5);
    assert!(queue.failed_entries().unwrap().is_empty());
    assert_eq!(worker.stop(), 0);
    clean_prefix(&config);
}

#[test]
fn a_permanent_error_fails_at_once_without_retries() {
    let dir = tempdir();
    let config = test_config(dir.path(), "retry-w2", &[]);
    let script = Arc::new(Script::default());
    let worker = InProcessWorker::start(config.clone(), scripted_factory(script.clone()));
    // A session the database does not know: permanent.
    let unknown = uuid::Uuid::new_v4();
    let mut queue = queue_for(&config);
    queue
        .enqueue(&lahstats_worker::job::JobPayload::new(unknown).to_json())
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || queue
        .failed_entries()
        .unwrap()
        .len()
        == 1));
    let record: FailureRecord = serde_json::from_str(&queue.failed_entries().unwrap()[0]).unwrap();
    assert_eq!(record.attempts, 1);
    assert_eq!(
        record.error_kind,
        lahstats_worker::error::ErrorKind::Permanent
    );
    assert!(
        record.error.contains(&unknown.to_string()),
        "{}",
        record.error
    );
    assert!(
        script.calls_for(unknown).is_empty(),
        "the pipeline never ran"
    );
    assert_eq!(worker.stop(), 0);
    clean_prefix(&config);
}
