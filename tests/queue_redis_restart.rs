//! Redis restarted mid-run: the worker notices, reconnects with backoff, and processes every job
//! enqueued before the outage, while it reconnects, and after.

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::redis_server::PrivateRedis;
use support::worker::*;

#[test]
fn every_job_survives_a_redis_restart() {
    let mut server = PrivateRedis::start();
    let dir = tempdir();
    let redis_flag = format!("--redis-url={}", server.url());
    let config = test_config(dir.path(), "restart-w1", &[&redis_flag]);
    let sessions = register_sessions(&config, 9, 1);
    let script = Arc::new(Script::default());
    *script.work.lock().unwrap() = Duration::from_millis(200);
    let worker = InProcessWorker::start(config.clone(), scripted_factory(script.clone()));

    let push = |ids: &[uuid::Uuid]| {
        let mut queue = queue_for(&config);
        for id in ids {
            queue
                .enqueue(&lahstats_worker::job::JobPayload::new(*id).to_json())
                .unwrap();
        }
    };
    push(&sessions[0..3]);
    assert!(wait_until(Duration::from_secs(5), || !script
        .completed
        .lock()
        .unwrap()
        .is_empty()));

    server.stop();
    std::thread::sleep(Duration::from_secs(2));
    server.restart();
    // Enqueued while the worker is still backing off from the outage.
    push(&sessions[3..6]);
    std::thread::sleep(Duration::from_secs(1));
    push(&sessions[6..9]);

    assert!(
        wait_until(Duration::from_secs(30), || {
            sessions
                .iter()
                .all(|s| session_status(&config, *s).0 == "ready_for_claiming")
        }),
        "not every job was processed after the restart"
    );
    let completed = script.completed.lock().unwrap().clone();
    for session in &sessions {
        assert!(completed.contains(session), "{session} never completed");
    }
    assert_eq!(worker.stop(), 0);
}

/// Redis down for longer than the heartbeat TTL while two workers are each mid-job: every
/// heartbeat has expired when Redis returns, yet the first worker back must not take the other's
/// job for a dead worker's (it did, and the session was processed twice).
#[test]
fn a_long_outage_does_not_make_live_workers_look_dead() {
    let mut server = PrivateRedis::start();
    let dir = tempdir();
    let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    let redis_flag = format!("--redis-url={}", server.url());
    let configs: Vec<_> = (0..2)
        .map(|i| {
            test_config_with_prefix(dir.path(), &format!("outage-w{i}"), &prefix, &[&redis_flag])
        })
        .collect();
    let sessions = register_sessions(&configs[0], 2, 1);
    let script = Arc::new(Script::default());
    *script.work.lock().unwrap() = Duration::from_secs(8);
    let workers: Vec<_> = configs
        .iter()
        .map(|c| InProcessWorker::start(c.clone(), scripted_factory(script.clone())))
        .collect();
    let mut queue = queue_for(&configs[0]);
    for id in &sessions {
        queue
            .enqueue(&lahstats_worker::job::JobPayload::new(*id).to_json())
            .unwrap();
    }
    assert!(
        wait_until(Duration::from_secs(10), || script
            .calls
            .lock()
            .unwrap()
            .len()
            == 2),
        "both workers should have taken a job"
    );

    // 5 s down: past the 2 s heartbeat TTL and the 4 s session lock.
    server.stop();
    std::thread::sleep(Duration::from_secs(5));
    server.restart();

    assert!(
        wait_until(Duration::from_secs(40), || {
            sessions
                .iter()
                .all(|s| session_status(&configs[0], *s).0 == "ready_for_claiming")
        }),
        "not every job was processed after the outage"
    );
    // A job wrongly requeued would wait in the queue, or be taken again before the workers
    // stop; stopped, they take nothing more.
    for worker in workers {
        assert_eq!(worker.stop(), 0);
    }
    for session in &sessions {
        assert_eq!(
            script.calls_for(*session).len(),
            1,
            "{session} was processed more than once"
        );
    }
    let waiting: usize = redis::cmd("LLEN")
        .arg(&queue.keys.processing)
        .query(&mut redis(&configs[0]))
        .unwrap();
    assert_eq!(waiting, 0, "a live worker's job was requeued");
}
