//! Supervision: a Processor that panics mid-job is rebuilt by its SyncArbiter while the other
//! actors keep running and keep their state; the job is retried and succeeds.

mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use lahstats_worker::app::GetWorkers;
use lahstats_worker::stats::reporter::GetStats;
use support::worker::*;

#[test]
fn a_panicking_processor_is_restarted_and_the_job_still_succeeds() {
    let dir = tempdir();
    let config = test_config(dir.path(), "sup-w1", &["--retry-base-delay=0.1"]);
    let script = Arc::new(Script::default());
    let worker = InProcessWorker::start(config.clone(), scripted_factory(script.clone()));
    let mut queue = queue_for(&config);

    // A first job succeeds, so the StatsReporter has state worth keeping.
    let before = register_session(&config, 1);
    queue
        .enqueue(&lahstats_worker::job::JobPayload::new(before).to_json())
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || session_status(
        &config, before
    )
    .0
        == "ready_for_claiming"));

    script.panics.store(1, Ordering::SeqCst);
    let session = register_session(&config, 1);
    queue
        .enqueue(&lahstats_worker::job::JobPayload::new(session).to_json())
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || session_status(&config, session)
            .0
            == "ready_for_claiming"),
        "the job after the panic never succeeded"
    );
    assert_eq!(
        script.calls_for(session).len(),
        2,
        "one panicking attempt, one good one"
    );

    let workers = futures::executor::block_on(worker.supervisor.send(GetWorkers)).unwrap();
    let stats = futures::executor::block_on(workers.stats.send(GetStats)).unwrap();
    assert_eq!(
        stats.succeeded, 2,
        "the StatsReporter kept its count across the restart"
    );
    assert_eq!(stats.retried, 1);
    assert_eq!(stats.received, 3);
    assert_eq!(worker.stop(), 0);
    clean_prefix(&config);
}
