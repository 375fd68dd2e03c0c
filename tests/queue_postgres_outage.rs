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

    assert!(wait_until(Duration::from_secs(5), || stats().database_connected));
    queue_for(&config)
        .enqueue(&lahstats_worker::job::JobPayload::new(session).to_json())
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || !script
        .calls_for(session)
        .is_empty()));
    // The pipeline is mid-job; the database goes away before the results are committed.
    postgres.stop();
    let stopped = Instant::now();
    assert!(
        wait_until(Duration::from_secs(20), || !stats().database_connected),
        "the Settler never reported the database down"
    );
    println!(
        "commit refused {:?} after the outage began",
        stopped.elapsed()
    );
    let queue = queue_for(&config);
    let mut conn = redis(&config);
    let len = |conn: &mut redis::Connection, key: &str| -> usize {
        redis::cmd("LLEN").arg(key).query(conn).unwrap()
    };
    assert_eq!(len(&mut conn, &queue.keys.inflight()), 1, "still in flight");
    let retrying: usize = redis::cmd("ZCARD")
        .arg(&queue.keys.retry)
        .query(&mut conn)
        .unwrap();
    assert_eq!(retrying, 0, "not turned into a retry");
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
