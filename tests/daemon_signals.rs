//! The real daemon: prints its banner and starts listening; SIGTERM while idle exits 0 within
//! two seconds, each actor saying it stopped, with the final statistics.

mod support;

use std::time::{Duration, Instant};

use support::daemon::{daemon_env, Daemon};

#[test]
fn sigterm_while_idle_exits_zero_within_two_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(
        dir.path(),
        &["run"],
        &daemon_env(
            dir.path(),
            dir.path().join("worker.db").display().to_string(),
        ),
    );
    assert!(
        daemon.wait_for_log("Listening for jobs", Duration::from_secs(60)),
        "never listened"
    );
    for banner_line in [
        "LahStats ML Processing Worker",
        "Processing Queue:",
        "Retry Delays: 5s, 10s, 20s",
        "Redis URL:",
    ] {
        assert!(daemon.has_log(banner_line), "banner lacks {banner_line:?}");
    }
    assert!(daemon.wait_for_log("Redis connection established", Duration::from_secs(5)));

    let sent = Instant::now();
    daemon.signal(libc::SIGTERM);
    let code = daemon
        .wait_exit(Duration::from_secs(2))
        .expect("still running 2 s after SIGTERM");
    println!("exited {code:?} {:?} after SIGTERM", sent.elapsed());
    assert_eq!(code, Some(0));
    for line in [
        "Received SIGTERM",
        "QueueListener stopped",
        "Settler stopped",
        "Processor stopped",
        "Worker Shutdown Complete",
    ] {
        assert!(daemon.has_log(line), "log lacks {line:?}");
    }
    assert!(
        !dir.path().join("run/worker.sock").exists(),
        "socket removed on exit"
    );
}
