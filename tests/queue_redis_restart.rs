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
