//! A job that kills its worker — `kill -9` in the middle of the job, what an OOM kill or a
//! segfault in FFmpeg or libtorch does — is not delivered for ever: up to five kills, the real
//! daemon restarted after each (under the same worker id, as systemd restarts it, and under a new
//! one, found by the reaper), on a real Redis and Postgres. The job runs at most three times, then
//! goes to the failed list and its session is marked `failed` with a reason saying the worker
//! died; the worker that did so stays up.

mod support;

use std::time::{Duration, Instant};

use support::daemon::{register_speech_session, session_status, Daemon};
use support::postgres::fresh_database;
use support::worker::redis_url;

#[test]
fn a_job_that_keeps_killing_its_worker_fails_after_three_deliveries() {
    let database = fresh_database();
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    let session = register_speech_session(&dir.path().join("storage"), &database.url, 8);
    let env = |worker: &str, incarnation: usize| {
        vec![
            ("REDIS_URL", redis_url()),
            ("DATABASE_URL", database.url.clone()),
            ("LAHSTATS_KEY_PREFIX", prefix.clone()),
            ("LAHSTATS_WORKER_ID", worker.to_string()),
            ("LAHSTATS_HEARTBEAT_TTL", "2".to_string()),
            (
                "LAHSTATS_SOCKET",
                dir.path()
                    .join(format!("run-{incarnation}/worker.sock"))
                    .display()
                    .to_string(),
            ),
            (
                "LAHSTATS_STORAGE_DIR",
                dir.path().join("storage").display().to_string(),
            ),
        ]
    };
    let mut redis = redis::Client::open(redis_url())
        .unwrap()
        .get_connection()
        .unwrap();
    let payload = format!(r#"{{"session_id": "{session}", "queued_at": "2026-01-17T19:00:00"}}"#);
    let _: () = redis::cmd("LPUSH")
        .arg(format!("{prefix}:processing"))
        .arg(&payload)
        .query(&mut redis)
        .unwrap();

    // Restarted under the same id (its own restart requeues the job) and under the other (the
    // reaper requeues it once the dead one's heartbeat expires).
    let ids = [
        "poison-a", "poison-a", "poison-b", "poison-b", "poison-a", "poison-a",
    ];
    let started = format!("Processing session: {session}");
    let mut daemons: Vec<Daemon> = Vec::new();
    let mut kills = 0;
    for (incarnation, id) in ids.iter().enumerate() {
        let daemon = Daemon::start(dir.path(), &["run"], &env(id, incarnation));
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut killed = false;
        let mut polls = 0;
        while Instant::now() < deadline {
            if daemon.has_log(&started) {
                daemon.signal(libc::SIGKILL);
                kills += 1;
                killed = true;
                break;
            }
            polls += 1;
            if polls % 25 == 0 && session_status(&database.url, session).0 == "failed" {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        daemons.push(daemon);
        if !killed || kills == 5 {
            break;
        }
    }

    let (status, _, error) = session_status(&database.url, session);
    let runs: usize = daemons.iter().map(|d| d.count_log(&started)).sum();
    println!("kills {kills}, pipeline runs {runs}, status {status}, error {error:?}");
    assert_eq!(
        status, "failed",
        "after {kills} kills the job is still going"
    );
    assert!(runs <= 3, "the job ran {runs} times");
    assert_eq!(kills, 3);
    let error = error.unwrap_or_default();
    assert!(
        error.contains("the worker died while processing this job 3 times"),
        "{error}"
    );

    let failed: Vec<String> = redis::cmd("LRANGE")
        .arg(format!("{prefix}:failed"))
        .arg(0)
        .arg(-1)
        .query(&mut redis)
        .unwrap();
    assert_eq!(failed.len(), 1);
    let record: lahstats_worker::queue::FailureRecord = serde_json::from_str(&failed[0]).unwrap();
    assert_eq!(record.session_id, Some(session.to_string()));
    assert_eq!(record.error, error);
    assert_eq!(
        record.error_kind,
        lahstats_worker::error::ErrorKind::Permanent
    );
    // The payload on the failed list is the API's, unchanged.
    assert_eq!(
        record.payload,
        serde_json::from_str::<serde_json::Value>(&payload).unwrap()
    );
    for key in [
        "processing",
        "processing:inflight:poison-a",
        "processing:inflight:poison-b",
    ] {
        let left: usize = redis::cmd("LLEN")
            .arg(format!("{prefix}:{key}"))
            .query(&mut redis)
            .unwrap();
        assert_eq!(left, 0, "{key}");
    }

    // The worker that failed the job is up and stops cleanly.
    let last = daemons.last_mut().unwrap();
    assert!(last.has_log("it is not delivered again"), "it said why");
    last.signal(libc::SIGTERM);
    assert_eq!(last.wait_exit(Duration::from_secs(30)), Some(Some(0)));
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut redis)
        .unwrap();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL").arg(keys).query(&mut redis).unwrap();
    }
}
