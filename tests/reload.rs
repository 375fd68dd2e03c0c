//! SIGHUP during a job: the job in hand finishes first, then the new configuration is in effect
//! (here: a different queue name and retry policy), and nothing is lost.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use lahstats_worker::app::Signal;
use support::worker::*;

#[test]
fn sighup_mid_job_finishes_the_job_then_applies_the_new_configuration() {
    let dir = tempdir();
    let before = test_config(dir.path(), "reload-w1", &[]);
    let new_queue = format!("{}:processing-b", before.key_prefix);
    let after = test_config_with_prefix(
        dir.path(),
        "reload-w1",
        &before.key_prefix,
        &[&format!("--queue={new_queue}"), "--max-retries=5"],
    );
    let next_config = Arc::new(Mutex::new(after.clone()));
    let reader = next_config.clone();
    let script = Arc::new(Script::default());
    *script.work.lock().unwrap() = Duration::from_millis(1500);
    let worker = InProcessWorker::start_reloadable(
        before.clone(),
        scripted_factory(script.clone()),
        Arc::new(move || Ok(reader.lock().unwrap().clone())),
    );
    let sessions = register_sessions(&before, 3, 1);

    let mut old_queue = queue_for(&before);
    old_queue
        .enqueue(&lahstats_worker::job::JobPayload::new(sessions[0]).to_json())
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || !script
        .calls_for(sessions[0])
        .is_empty()));
    worker
        .supervisor
        .do_send(Signal(signal_hook::consts::SIGHUP));

    // The job in hand completes.
    assert!(wait_until(Duration::from_secs(10), || session_status(
        &before,
        sessions[0]
    )
    .0
        == "ready_for_claiming"));

    // Now the worker takes jobs from the new queue, and no longer from the old one.
    let mut new_queue_client = queue_for(&after);
    assert_eq!(new_queue_client.keys.processing, new_queue);
    std::thread::sleep(Duration::from_millis(500));
    new_queue_client
        .enqueue(&lahstats_worker::job::JobPayload::new(sessions[1]).to_json())
        .unwrap();
    old_queue
        .enqueue(&lahstats_worker::job::JobPayload::new(sessions[2]).to_json())
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || session_status(
            &after,
            sessions[1]
        )
        .0 == "ready_for_claiming"),
        "the job on the new queue was not processed"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        script.calls_for(sessions[2]).is_empty(),
        "the old queue is no longer read"
    );
    let mut conn = redis(&before);
    let waiting: usize = redis::cmd("LLEN")
        .arg(&old_queue.keys.processing)
        .query(&mut conn)
        .unwrap();
    assert_eq!(
        waiting, 1,
        "the job on the old queue is still there, not lost"
    );
    assert_eq!(worker.stop(), 0);
    clean_prefix(&before);
}
