//! A take whose answer never arrives: Redis moved the job into the worker's in-flight list, the
//! worker saw only a dropped connection. Once Redis answers again the worker finds the job it
//! does not hold there and processes it, instead of leaving it until a restart.

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::worker::*;

#[test]
fn a_job_moved_by_an_unanswered_take_is_processed() {
    let dir = tempdir();
    let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    let config = test_config_with_prefix(dir.path(), "unanswered", &prefix, &[]);
    let sessions = register_sessions(&config, 2, 1);
    let script = Arc::new(Script::default());
    let worker = InProcessWorker::start(config.clone(), scripted_factory(script.clone()));
    let queue = queue_for(&config);
    let mut redis = redis(&config);
    // A normal job first: the worker is up and taking.
    let first = lahstats_worker::job::JobPayload::new(sessions[0]).to_json();
    redis::cmd("LPUSH")
        .arg(&queue.keys.processing)
        .arg(&first)
        .query::<()>(&mut redis)
        .unwrap();
    assert!(wait_until(Duration::from_secs(30), || script
        .completed
        .lock()
        .unwrap()
        .contains(&sessions[0])));
    // What a BLMOVE whose reply was lost leaves: the job in this worker's in-flight list...
    let second = lahstats_worker::job::JobPayload::new(sessions[1]).to_json();
    redis::cmd("LPUSH")
        .arg(queue.keys.inflight())
        .arg(&second)
        .query::<()>(&mut redis)
        .unwrap();
    // ...and the worker's connection gone while it waits in BLMOVE.
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .arg("SKIPME")
        .arg("yes")
        .query::<i64>(&mut redis)
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || script
            .completed
            .lock()
            .unwrap()
            .contains(&sessions[1])),
        "the job left in the in-flight list was not processed"
    );
    let left: Vec<String> = redis::cmd("LRANGE")
        .arg(queue.keys.inflight())
        .arg(0)
        .arg(-1)
        .query(&mut redis)
        .unwrap();
    assert!(left.is_empty(), "left in flight: {left:?}");
    assert_eq!(worker.stop(), 0);
    let completed = script.completed.lock().unwrap().clone();
    assert_eq!(
        completed.iter().filter(|s| **s == sessions[1]).count(),
        1,
        "processed once"
    );
    clean_prefix(&config);
}
