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

/// SIGHUP builds a new configuration from `.env` as it is now (never writing it into the
/// environment): a renamed queue takes effect; a value that does not parse is refused with the
/// configuration unchanged and the daemon still up.
#[test]
fn sighup_reads_the_changed_dotenv_into_a_new_configuration() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), "LAHSTATS_MAX_RETRIES=3\n").unwrap();
    let env = daemon_env(
        dir.path(),
        dir.path().join("worker.db").display().to_string(),
    );
    let prefix = env
        .iter()
        .find(|(key, _)| *key == "LAHSTATS_KEY_PREFIX")
        .map(|(_, value)| value.clone())
        .unwrap();
    let mut daemon = Daemon::start(dir.path(), &["run"], &env);
    assert!(daemon.wait_for_log("Listening for jobs", Duration::from_secs(60)));

    std::fs::write(
        dir.path().join(".env"),
        format!("LAHSTATS_QUEUE={prefix}:renamed\nLAHSTATS_DRAIN_TIMEOUT=90s\n"),
    )
    .unwrap();
    daemon.signal(libc::SIGHUP);
    assert!(
        daemon.wait_for_log(
            &format!("Reloaded: queue {prefix}:renamed"),
            Duration::from_secs(30)
        ),
        "the changed .env was not read"
    );
    assert!(daemon.wait_for_log(
        &format!("Taking jobs again from {prefix}:renamed"),
        Duration::from_secs(10)
    ));

    std::fs::write(dir.path().join(".env"), "LAHSTATS_DRAIN_TIMEOUT=inf\n").unwrap();
    daemon.signal(libc::SIGHUP);
    assert!(daemon.wait_for_log("Reload refused", Duration::from_secs(10)));
    assert!(daemon.has_log("not a finite duration"));
    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(30)), Some(Some(0)));
}
