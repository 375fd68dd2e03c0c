//! Supervision: each actor — QueueListener, Processor, Settler, StatsReporter and the Supervisor
//! itself — is restarted after a panic, the others keep running and keep their state, and the
//! next job is processed. The Processor panics the way a bug in the pipeline would (mid-job);
//! the others get `InjectPanic` inside a handler, with a job in hand where one can be.

mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use lahstats_worker::app::{GetWorkers, Workers};
use lahstats_worker::job::JobPayload;
use lahstats_worker::stats::reporter::GetStats;
use lahstats_worker::stats::StatsSnapshot;
use lahstats_worker::supervise::InjectPanic;
use support::worker::*;

struct Run {
    _dir: tempfile::TempDir,
    config: lahstats_worker::config::Config,
    script: Arc<Script>,
    worker: InProcessWorker,
}

impl Run {
    fn start(name: &str) -> Run {
        let dir = tempdir();
        let config = test_config(dir.path(), name, &["--retry-base-delay=0.1"]);
        let script = Arc::new(Script::default());
        let worker = InProcessWorker::start(config.clone(), scripted_factory(script.clone()));
        Run {
            _dir: dir,
            config,
            script,
            worker,
        }
    }

    fn workers(&self) -> Workers {
        futures::executor::block_on(self.worker.supervisor.send(GetWorkers)).unwrap()
    }

    fn stats(&self) -> StatsSnapshot {
        futures::executor::block_on(self.workers().stats.send(GetStats)).unwrap()
    }

    fn submit(&self) -> uuid::Uuid {
        let session = register_session(&self.config, 1);
        queue_for(&self.config)
            .enqueue(&JobPayload::new(session).to_json())
            .unwrap();
        session
    }

    /// Waits until `n` jobs have succeeded (settled: committed and acked).
    fn wait_succeeded(&self, n: u64, what: &str) {
        assert!(
            wait_until(Duration::from_secs(15), || self.stats().succeeded >= n),
            "{what}: only {} job(s) succeeded",
            self.stats().succeeded
        );
    }

    fn in_flight(&self) -> usize {
        redis::cmd("LLEN")
            .arg(queue_for(&self.config).keys.inflight())
            .query(&mut redis(&self.config))
            .unwrap()
    }

    fn stop(self) {
        assert_eq!(self.worker.stop(), 0, "a clean shutdown after the restart");
        clean_prefix(&self.config);
    }
}

#[test]
fn a_panicking_processor_is_restarted_and_the_job_still_succeeds() {
    let run = Run::start("sup-processor");
    let before = run.submit();
    run.wait_succeeded(1, "before the panic");

    run.script.panics.store(1, Ordering::SeqCst);
    let session = run.submit();
    run.wait_succeeded(2, "the job after the panic");
    assert_eq!(session_status(&run.config, session).0, "ready_for_claiming");
    assert_eq!(
        run.script.calls_for(session).len(),
        2,
        "one panicking attempt, one good one"
    );
    assert_eq!(run.script.calls_for(before).len(), 1);
    let stats = run.stats();
    assert_eq!(
        (stats.succeeded, stats.retried, stats.received),
        (2, 1, 3),
        "the StatsReporter kept its counts across the Processor's restart"
    );
    run.stop();
}

#[test]
fn a_panicking_listener_is_restarted_with_its_job_in_hand() {
    let run = Run::start("sup-listener");
    *run.script.work.lock().unwrap() = Duration::from_millis(800);
    let in_hand = run.submit();
    assert!(wait_until(Duration::from_secs(5), || !run
        .script
        .calls_for(in_hand)
        .is_empty()));
    run.workers().listener.do_send(InjectPanic);

    // The job in hand is settled through the restarted listener, and not taken again.
    run.wait_succeeded(1, "the job in hand during the panic");
    assert_eq!(run.in_flight(), 0);
    let next = run.submit();
    run.wait_succeeded(2, "the next job");
    assert_eq!(session_status(&run.config, next).0, "ready_for_claiming");
    assert_eq!(run.script.calls_for(in_hand).len(), 1, "taken again");
    assert_eq!(run.stats().received, 2);
    run.stop();
}

#[test]
fn a_panicking_settler_is_restarted_and_the_next_jobs_are_settled() {
    let run = Run::start("sup-settler");
    *run.script.work.lock().unwrap() = Duration::from_millis(500);
    let first = run.submit();
    assert!(wait_until(Duration::from_secs(5), || !run
        .script
        .calls_for(first)
        .is_empty()));
    // Panics while the Processor works: the job's end reaches the restarted Settler.
    run.workers().settler.do_send(InjectPanic);
    run.wait_succeeded(1, "the job being processed during the panic");
    // The next job fails once: its retry is the Settler's to schedule and to bring back.
    let next = register_session(&run.config, 1);
    run.script.fail_transient.lock().unwrap().insert(next, 1);
    queue_for(&run.config)
        .enqueue(&JobPayload::new(next).to_json())
        .unwrap();
    run.wait_succeeded(2, "the next job, through a retry");
    assert_eq!(session_status(&run.config, next).0, "ready_for_claiming");
    assert_eq!(run.script.calls_for(next).len(), 2);
    assert_eq!(run.in_flight(), 0);
    run.stop();
}

#[test]
fn a_panicking_stats_reporter_is_restarted_with_its_counts() {
    let run = Run::start("sup-stats");
    run.submit();
    run.wait_succeeded(1, "before the panic");
    run.workers().stats.do_send(InjectPanic);
    let next = run.submit();
    run.wait_succeeded(2, "the next job");
    assert_eq!(session_status(&run.config, next).0, "ready_for_claiming");
    let stats = run.stats();
    assert_eq!(
        (stats.received, stats.succeeded),
        (2, 2),
        "counts kept across its restart"
    );
    run.stop();
}

#[test]
fn a_panicking_supervisor_is_restarted_and_still_supervises() {
    let run = Run::start("sup-supervisor");
    run.submit();
    run.wait_succeeded(1, "before the panic");
    run.worker.supervisor.do_send(InjectPanic);
    // Its ticks drive the listener's heartbeat and the retry promotion: a retry proves them.
    run.script.panics.store(1, Ordering::SeqCst);
    let next = run.submit();
    run.wait_succeeded(2, "the next job (through a retry)");
    assert_eq!(run.script.calls_for(next).len(), 2);
    run.stop();
}
