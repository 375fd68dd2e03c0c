//! The daemon started while its database is down: it says so, keeps running, and starts work
//! once the database answers; SIGTERM while it waits exits 0.

mod support;

use std::time::Duration;

use support::daemon::{daemon_env, Daemon};
use support::postgres::PrivatePostgres;

#[test]
fn a_worker_started_before_its_database_waits_for_it() {
    let postgres = PrivatePostgres::start_new();
    postgres.stop();

    // SIGTERM while waiting: a clean exit.
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(
        dir.path(),
        &["run"],
        &daemon_env(dir.path(), postgres.url()),
    );
    assert!(
        daemon.wait_for_log("Database unreachable at start", Duration::from_secs(30)),
        "no word of the database being down"
    );
    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(5)), Some(Some(0)));

    // The database comes up while it waits: it migrates and listens.
    let dir = tempfile::tempdir().unwrap();
    let mut env = daemon_env(dir.path(), postgres.url());
    // Its retries are logged at DEBUG: one more try after the first is the event waited for.
    env.push(("RUST_LOG", "info,lahstats_worker::app=debug".to_string()));
    let mut daemon = Daemon::start(dir.path(), &["run"], &env);
    assert!(daemon.wait_for_log("Database unreachable at start", Duration::from_secs(30)));
    assert!(
        daemon.wait_for_log("Database still unreachable", Duration::from_secs(30)),
        "it never tried again"
    );
    assert_eq!(
        daemon.wait_exit(Duration::from_millis(100)),
        None,
        "it gave up"
    );
    postgres.start();
    assert!(
        daemon.wait_for_log("Listening for jobs", Duration::from_secs(60)),
        "never listened after the database came up"
    );
    assert!(daemon.has_log("Applied migrations"));
    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(30)), Some(Some(0)));
}
