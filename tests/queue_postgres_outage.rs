//! Postgres stopped in the middle of a job: the pipeline finishes, and its results wait in the
//! Settler — the job still in this worker's in-flight list, nowhere else — until Postgres is
//! back; then they are committed once, with the full result set, without running the pipeline
//! again.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use lahstats_worker::app::GetWorkers;
use lahstats_worker::stats::reporter::GetStats;
use support::postgres::PrivatePostgres;
use support::worker::*;

#[test]
fn results_finished_during_a_postgres_outage_are_committed_once_it_is_back() {
    let postgres = PrivatePostgres::start_new();
    let dir = tempdir();
    let database = format!("--database-url={}", postgres.url());
    let config = test_config(dir.path(), "pg-outage-w1", &[&database]);
    let session = register_session(&config, 2);
    let script = Arc::new(Script::default());
    *script.work.lock().unwrap() = Duration::from_millis(1500);
    let worker = InProcessWorker::start(config.clone(), scripted_factory(script.clone()));
    let stats = || {
        let workers = futures::executor::block_on(worker.supervisor.send(GetWorkers)).unwrap();
        futures::executor::block_on(workers.stats.send(GetStats)).unwrap()
    };

    queue_for(&config)
        .enqueue(&lahstats_worker::job::JobPayload::new(session).to_json())
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || !script
        .calls_for(session)
        .is_empty()));
    let was_up = stats().database_connected;
    // The pipeline is mid-job; the database goes away before the results are committed.
    postgres.stop();
    let stopped = Instant::now();
    let queue = queue_for(&config);
    let mut conn = redis(&config);
    let retrying = |conn: &mut redis::Connection| -> usize {
        redis::cmd("ZCARD")
            .arg(&queue.keys.retry)
            .query(conn)
            .unwrap()
    };
    // The Settler says it waits for the database — or the job went back for a retry.
    assert!(
        wait_until(Duration::from_secs(20), || (was_up
            && !stats().database_connected)
            || retrying(&mut conn) > 0),
        "the job's end was never attempted"
    );
    println!(
        "commit refused {:?} after the outage began",
        stopped.elapsed()
    );
    let len = |conn: &mut redis::Connection, key: &str| -> usize {
        redis::cmd("LLEN").arg(key).query(conn).unwrap()
    };
    assert_eq!(
        retrying(&mut conn),
        0,
        "turned into a retry: the pipeline would run again"
    );
    assert_eq!(len(&mut conn, &queue.keys.inflight()), 1, "still in flight");
    assert_eq!(len(&mut conn, &queue.keys.failed), 0);
    postgres.start();

    assert!(
        wait_until(Duration::from_secs(30), || stats().succeeded == 1),
        "the results were never committed"
    );
    assert_eq!(session_status(&config, session).0, "ready_for_claiming");
    assert_eq!(script.calls_for(session).len(), 1, "the pipeline ran once");
    assert!(stats().database_connected);
    // The full result set: one speaker with its counts (two chunks → lah 2).
    let pool = lahstats_worker::db::connect(&config.database_url).unwrap();
    let mut db = pool.get().unwrap();
    let speakers = lahstats_worker::db::queries::session_results(&mut db, session).unwrap();
    assert_eq!(speakers.len(), 1);
    assert_eq!(speakers[0].3.get("lah"), Some(&2));
    assert_eq!(len(&mut conn, &queue.keys.inflight()), 0);
    assert_eq!(worker.stop(), 0);
    clean_prefix(&config);
}

/// The last attempt fails while Postgres is down: the session's `failed` status is written once
/// Postgres is back, and only then does the job reach the failed list (database first); in
/// between it stays in flight, so nothing says "failed" that the app cannot see.
#[test]
fn a_final_failure_during_a_postgres_outage_is_written_once_it_is_back() {
    let postgres = PrivatePostgres::start_new();
    let dir = tempdir();
    let database = format!("--database-url={}", postgres.url());
    // No retries: the first failure is the final one.
    let config = test_config(dir.path(), "pg-fail-w1", &[&database, "--max-retries=0"]);
    let session = register_session(&config, 1);
    let script = Arc::new(Script::default());
    *script.work.lock().unwrap() = Duration::from_millis(1500);
    script.fail_transient.lock().unwrap().insert(session, 1);
    let worker = InProcessWorker::start(config.clone(), scripted_factory(script.clone()));
    let stats = || {
        let workers = futures::executor::block_on(worker.supervisor.send(GetWorkers)).unwrap();
        futures::executor::block_on(workers.stats.send(GetStats)).unwrap()
    };
    let mut queue = queue_for(&config);
    let mut conn = redis(&config);
    let inflight = |conn: &mut redis::Connection| -> usize {
        redis::cmd("LLEN")
            .arg(queue_for(&config).keys.inflight())
            .query(conn)
            .unwrap()
    };

    queue
        .enqueue(&lahstats_worker::job::JobPayload::new(session).to_json())
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || !script
        .calls_for(session)
        .is_empty()));
    let was_up = stats().database_connected;
    postgres.stop();

    // The attempt fails with the database down; then either the Settler says it is waiting for
    // the database, or the job is already on the failed list.
    assert!(
        wait_until(Duration::from_secs(10), || script
            .failed
            .lock()
            .unwrap()
            .contains(&session)),
        "the pipeline never failed"
    );
    assert!(
        wait_until(Duration::from_secs(20), || (was_up
            && !stats().database_connected)
            || !queue.failed_entries().unwrap().is_empty()),
        "the final failure was never settled"
    );
    assert!(
        queue.failed_entries().unwrap().is_empty(),
        "the job reached the failed list while the session could not be marked failed"
    );
    assert_eq!(inflight(&mut conn), 1, "the job waits in flight");

    postgres.start();
    assert!(
        wait_until(Duration::from_secs(30), || {
            std::panic::catch_unwind(|| session_status(&config, session).0 == "failed")
                .unwrap_or(false)
        }),
        "the session's failure was never written"
    );
    let (_, _, error) = session_status(&config, session);
    assert_eq!(error.as_deref(), Some("scripted transient failure"));
    assert!(wait_until(Duration::from_secs(10), || stats().failed == 1));
    assert_eq!(queue.failed_entries().unwrap().len(), 1);
    assert_eq!(inflight(&mut conn), 0);
    assert_eq!(script.calls_for(session).len(), 1);
    assert_eq!(worker.stop(), 0);
    clean_prefix(&config);
}
