//! Postgres stopped in the middle of a job: saving the results fails as a transient error, the
//! job waits in the retry set, and once Postgres is back the retry completes — with the full
//! result set and never a partial one.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use support::postgres::PrivatePostgres;
use support::worker::*;

#[test]
fn a_job_interrupted_by_a_postgres_outage_is_retried_and_completes() {
    let postgres = PrivatePostgres::start_new();
    let dir = tempdir();
    let database = format!("--database-url={}", postgres.url());
    let config = test_config(
        dir.path(),
        "pg-outage-w1",
        &[&database, "--retry-base-delay=1"],
    );
    let session = register_session(&config, 2);
    let script = Arc::new(Script::default());
    *script.work.lock().unwrap() = Duration::from_millis(1500);
    let worker = InProcessWorker::start(config.clone(), scripted_factory(script.clone()));

    queue_for(&config)
        .enqueue(&lahstats_worker::job::JobPayload::new(session).to_json())
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || !script
        .calls_for(session)
        .is_empty()));
    // The pipeline is mid-job; the database goes away before the results are saved.
    postgres.stop();
    let stopped = Instant::now();
    let mut queue = queue_for(&config);
    let mut conn = redis(&config);
    assert!(
        wait_until(Duration::from_secs(15), || {
            redis::cmd("ZCARD")
                .arg(&queue.keys.retry)
                .query::<usize>(&mut conn)
                .unwrap()
                == 1
        }),
        "the failed save was not scheduled for a retry"
    );
    println!(
        "retry scheduled {:?} after the outage began",
        stopped.elapsed()
    );
    postgres.start();

    assert!(
        wait_until(Duration::from_secs(30), || {
            std::panic::catch_unwind(|| session_status(&config, session).0 == "ready_for_claiming")
                .unwrap_or(false)
        }),
        "the retried job never completed"
    );
    assert!(
        script.calls_for(session).len() >= 2,
        "it took a second attempt"
    );
    // The full result set: one speaker with its counts (two chunks → lah 2).
    let pool = lahstats_worker::db::connect(&config.database_url).unwrap();
    let mut db = pool.get().unwrap();
    let speakers = lahstats_worker::db::queries::session_results(&mut db, session).unwrap();
    assert_eq!(speakers.len(), 1);
    assert_eq!(speakers[0].3.get("lah"), Some(&2));
    assert!(queue.failed_entries().unwrap().is_empty());
    assert_eq!(worker.stop(), 0);
    clean_prefix(&config);
}
