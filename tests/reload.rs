//! SIGHUP during a job: the job in hand finishes and is settled first, then the new
//! configuration is in effect (here: a different queue name and retry policy), and nothing is
//! lost — not even a job whose end could not be recorded in Redis before the switch.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use lahstats_worker::app::{GetWorkers, Signal};
use lahstats_worker::job::JobPayload;
use lahstats_worker::stats::reporter::GetStats;
use support::redis_server::PrivateRedis;
use support::worker::*;

fn llen(config: &lahstats_worker::config::Config, key: &str) -> usize {
    redis::cmd("LLEN")
        .arg(key)
        .query(&mut redis(config))
        .unwrap()
}

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
        .enqueue(&JobPayload::new(sessions[0]).to_json())
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || !script
        .calls_for(sessions[0])
        .is_empty()));
    worker
        .supervisor
        .do_send(Signal(signal_hook::consts::SIGHUP));
    // One job on each queue, at once: only the new queue's is ever taken.
    old_queue
        .enqueue(&JobPayload::new(sessions[2]).to_json())
        .unwrap();
    let mut new_queue_client = queue_for(&after);
    assert_eq!(new_queue_client.keys.processing, new_queue);
    new_queue_client
        .enqueue(&JobPayload::new(sessions[1]).to_json())
        .unwrap();

    // The job in hand completes, then the one on the new queue.
    assert!(wait_until(Duration::from_secs(10), || session_status(
        &before,
        sessions[0]
    )
    .0
        == "ready_for_claiming"));
    assert!(
        wait_until(Duration::from_secs(10), || session_status(
            &after,
            sessions[1]
        )
        .0 == "ready_for_claiming"),
        "the job on the new queue was not processed"
    );
    // Stopped, the worker can take nothing more: what it never took is still where it was.
    assert_eq!(worker.stop(), 0);
    assert!(
        script.calls_for(sessions[2]).is_empty(),
        "the old queue is no longer read"
    );
    assert_eq!(
        llen(&before, &old_queue.keys.processing),
        1,
        "the job on the old queue is still there, not lost"
    );
    assert_eq!(llen(&before, &old_queue.keys.inflight()), 0);
    assert_eq!(llen(&after, &new_queue_client.keys.inflight()), 0);
    clean_prefix(&before);
}

/// The job in hand finishes while Redis is down, so its ack cannot be recorded; SIGHUP renames
/// the queue meanwhile. The reload waits for the job to be settled on the old queue's keys (the
/// old in-flight list is drained first), so once Redis is back nothing is stranded there.
#[test]
fn a_reload_renaming_the_queue_strands_nothing_in_the_old_in_flight_list() {
    let mut server = PrivateRedis::start();
    let dir = tempdir();
    let redis_flag = format!("--redis-url={}", server.url());
    let before = test_config(dir.path(), "rename-w1", &[&redis_flag]);
    let after = test_config_with_prefix(
        dir.path(),
        "rename-w1",
        &before.key_prefix,
        &[
            &redis_flag,
            &format!("--queue={}:processing-renamed", before.key_prefix),
        ],
    );
    let script = Arc::new(Script::default());
    *script.work.lock().unwrap() = Duration::from_millis(1000);
    let reloaded = after.clone();
    let worker = InProcessWorker::start_reloadable(
        before.clone(),
        scripted_factory(script.clone()),
        Arc::new(move || Ok(reloaded.clone())),
    );
    let stats = || {
        let workers = futures::executor::block_on(worker.supervisor.send(GetWorkers)).unwrap();
        futures::executor::block_on(workers.stats.send(GetStats)).unwrap()
    };
    let sessions = register_sessions(&before, 2, 1);
    let old_keys = queue_for(&before).keys;
    queue_for(&before)
        .enqueue(&JobPayload::new(sessions[0]).to_json())
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || !script
        .calls_for(sessions[0])
        .is_empty()));

    // Redis goes away while the job works; it completes (committed to the database) with no
    // Redis to record its end in; then SIGHUP renames the queue.
    server.stop();
    assert!(wait_until(Duration::from_secs(10), || session_status(
        &before,
        sessions[0]
    )
    .0
        == "ready_for_claiming"));
    worker
        .supervisor
        .do_send(Signal(signal_hook::consts::SIGHUP));
    // Redis stays down a while longer: long enough for a reload that does not wait for the
    // job's end to switch queues first.
    std::thread::sleep(Duration::from_secs(2));
    server.restart();

    // The job's end is recorded, the worker moves to the new queue and takes from it.
    assert!(
        wait_until(Duration::from_secs(20), || stats().succeeded == 1),
        "the job's end was never recorded"
    );
    queue_for(&after)
        .enqueue(&JobPayload::new(sessions[1]).to_json())
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || stats().succeeded == 2),
        "the renamed queue was never read"
    );
    assert_eq!(worker.stop(), 0);
    assert_eq!(
        llen(&before, &old_keys.inflight()),
        0,
        "a job was stranded in the old queue's in-flight list"
    );
    assert_eq!(llen(&before, &old_keys.processing), 0);
    assert_eq!(script.calls_for(sessions[0]).len(), 1);
}
