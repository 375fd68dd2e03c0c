//! Three workers on one queue, 500 jobs: every job processed exactly once, nothing left in any
//! in-flight list.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::worker::*;

#[test]
fn three_workers_process_every_job_exactly_once() {
    const JOBS: usize = 500;
    let dir = tempdir();
    let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    let configs: Vec<_> = (0..3)
        .map(|i| test_config_with_prefix(dir.path(), &format!("many-w{i}"), &prefix, &[]))
        .collect();
    let sessions = register_sessions(&configs[0], JOBS, 1);
    let script = Arc::new(Script::default());
    let workers: Vec<_> = configs
        .iter()
        .map(|c| InProcessWorker::start(c.clone(), scripted_factory(script.clone())))
        .collect();

    let started = Instant::now();
    let mut queue = queue_for(&configs[0]);
    for session in &sessions {
        queue
            .enqueue(&lahstats_worker::job::JobPayload::new(*session).to_json())
            .unwrap();
    }
    assert!(
        wait_until(Duration::from_secs(120), || script
            .completed
            .lock()
            .unwrap()
            .len()
            >= JOBS),
        "only {} of {JOBS} jobs completed",
        script.completed.lock().unwrap().len()
    );
    let elapsed = started.elapsed();
    // Stopped, a worker takes nothing more: a duplicate would be counted below or left waiting.
    for worker in workers {
        assert_eq!(worker.stop(), 0);
    }
    let mut per_session: BTreeMap<uuid::Uuid, usize> = BTreeMap::new();
    for session in script.completed.lock().unwrap().iter() {
        *per_session.entry(*session).or_default() += 1;
    }
    assert_eq!(per_session.len(), JOBS, "every session processed");
    assert!(
        per_session.values().all(|n| *n == 1),
        "a session was processed twice"
    );
    println!(
        "{JOBS} jobs, 3 workers: {:.1} jobs/s, each exactly once",
        JOBS as f64 / elapsed.as_secs_f64()
    );

    let mut conn = redis(&configs[0]);
    for config in &configs {
        let inflight: usize = redis::cmd("LLEN")
            .arg(queue_for(config).keys.inflight())
            .query(&mut conn)
            .unwrap();
        assert_eq!(inflight, 0);
    }
    let depth: usize = redis::cmd("LLEN")
        .arg(&queue.keys.processing)
        .query(&mut conn)
        .unwrap();
    assert_eq!(depth, 0);
    clean_prefix(&configs[0]);
}
