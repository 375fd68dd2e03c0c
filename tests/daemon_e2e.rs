//! The real daemon end to end, with the real pipeline on real (synthetic) speech: the seed's
//! exact LPUSH is processed; stats over the socket reflect it; the socket is owner-only; a second
//! daemon refuses; SIGTERM mid-job lets the job finish and exits 0; a worker killed with SIGKILL
//! mid-job leaves its job to another worker, which runs the pipeline on it exactly once more.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use support::daemon::Daemon;
use support::speech;
use support::worker::redis_url;

/// A session registered in the database with one chunk of real speech under the storage root.
struct Env {
    dir: tempfile::TempDir,
    prefix: String,
}

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
            prefix: format!("test-{}", uuid::Uuid::new_v4().simple()),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn vars(&self, worker: &str) -> Vec<(&'static str, String)> {
        vec![
            ("REDIS_URL", redis_url()),
            ("DATABASE_URL", self.path("worker.db").display().to_string()),
            ("LAHSTATS_KEY_PREFIX", self.prefix.clone()),
            ("LAHSTATS_WORKER_ID", worker.to_string()),
            ("LAHSTATS_HEARTBEAT_TTL", "2".to_string()),
            (
                "LAHSTATS_SOCKET",
                self.path(&format!("run-{worker}/worker.sock"))
                    .display()
                    .to_string(),
            ),
            (
                "LAHSTATS_STORAGE_DIR",
                self.path("storage").display().to_string(),
            ),
        ]
    }

    /// Registers a session whose one chunk is `turns` sentences of two voices.
    fn session(&self, turns: usize) -> uuid::Uuid {
        let id = uuid::Uuid::new_v4();
        let conversation = speech::round_robin(2, turns);
        let storage_path = format!("sessions/{id}/chunks/chunk_0000.wav");
        lahstats_worker::audio::write_wav(
            &conversation.samples,
            &self.path("storage").join(&storage_path),
        )
        .unwrap();
        let pool =
            lahstats_worker::db::connect(&self.path("worker.db").display().to_string()).unwrap();
        lahstats_worker::db::run_migrations(&pool).unwrap();
        let mut conn = pool.get().unwrap();
        lahstats_worker::db::queries::register_session(
            &mut conn,
            id,
            uuid::Uuid::nil(),
            &[(0, storage_path, None)],
        )
        .unwrap();
        id
    }

    fn status(&self, id: uuid::Uuid) -> (String, i32, Option<String>) {
        let pool =
            lahstats_worker::db::connect(&self.path("worker.db").display().to_string()).unwrap();
        let mut conn = pool.get().unwrap();
        lahstats_worker::db::queries::session_status(&mut conn, id).unwrap()
    }

    fn speaker_rows(&self, id: uuid::Uuid) -> usize {
        let pool =
            lahstats_worker::db::connect(&self.path("worker.db").display().to_string()).unwrap();
        let mut conn = pool.get().unwrap();
        lahstats_worker::db::queries::session_results(&mut conn, id)
            .unwrap()
            .len()
    }

    fn wait_ready(&self, id: uuid::Uuid, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.status(id).0.as_str() {
                "ready_for_claiming" => return true,
                "failed" => panic!("session failed: {:?}", self.status(id)),
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        false
    }

    /// The seed's command, word for word but for the queue name (this test's own prefix).
    fn seed_lpush(&self, id: uuid::Uuid) {
        let url = redis_url();
        let payload = format!(r#"{{"session_id": "{id}", "queued_at": "2026-01-17T19:00:00"}}"#);
        let out = Command::new("redis-cli")
            .args([
                "-u",
                &url,
                "LPUSH",
                &format!("{}:processing", self.prefix),
                &payload,
            ])
            .output()
            .unwrap();
        assert!(out.status.success());
    }

    fn cli(&self, args: &[&str], worker: &str) -> std::process::Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_lahstats-worker"));
        command.args(args).current_dir(self.dir.path());
        for (k, v) in self.vars(worker) {
            command.env(k, v);
        }
        command.output().unwrap()
    }
}

fn start(env: &Env, worker: &str) -> Daemon {
    let daemon = Daemon::start(env.dir.path(), &["run"], &env.vars(worker));
    assert!(
        daemon.wait_for_log("Listening for jobs", Duration::from_secs(60)),
        "{worker} never listened"
    );
    assert!(
        daemon.wait_for_log("Models loaded", Duration::from_secs(60)),
        "{worker} never loaded its models"
    );
    daemon
}

#[test]
fn seed_command_stats_socket_and_sigterm_mid_job() {
    let env = Env::new();
    let mut daemon = start(&env, "e2e-a");

    // 1. The seed's LPUSH for an existing session is processed.
    let first = env.session(4);
    env.seed_lpush(first);
    assert!(
        env.wait_ready(first, Duration::from_secs(120)),
        "seed job not processed"
    );
    assert!(env.speaker_rows(first) >= 1);

    // 2. Stats over the socket reflect it; the socket is owner-only in an owner-only directory.
    let socket = env.path("run-e2e-a/worker.sock");
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    let dir_mode = std::fs::metadata(socket.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!((mode, dir_mode), (0o600, 0o700));
    let out = env.cli(&["stats", "--json"], "e2e-a");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["received"], 1);
    assert_eq!(stats["succeeded"], 1);
    assert!(stats["audio_seconds_processed"].as_f64().unwrap() > 5.0);
    let table = env.cli(&["stats"], "e2e-a");
    assert!(String::from_utf8_lossy(&table.stdout).contains("Succeeded"));
    let prom =
        String::from_utf8_lossy(&env.cli(&["stats", "--prometheus"], "e2e-a").stdout).to_string();
    assert!(
        prom.contains("lahstats_jobs_succeeded_total{worker=\"e2e-a\"} 1"),
        "{prom}"
    );

    // 3. A second daemon on the same socket refuses to start.
    let second = env.cli(&["run"], "e2e-a");
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("already answering"));

    // 4. SIGTERM mid-job: the job finishes, then the daemon exits 0 and removes its socket.
    let second_job = env.session(8);
    env.seed_lpush(second_job);
    assert!(daemon.wait_for_log(
        &format!("Processing session: {second_job}"),
        Duration::from_secs(30)
    ));
    daemon.signal(libc::SIGTERM);
    let code = daemon.wait_exit(Duration::from_secs(120)).expect("exited");
    assert_eq!(code, Some(0));
    assert_eq!(
        env.status(second_job).0,
        "ready_for_claiming",
        "the job in hand finished first"
    );
    assert!(!socket.exists());

    // 5. No daemon answering: a clear error.
    let none = env.cli(&["stats"], "e2e-a");
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("is the daemon running?"));
}

#[test]
fn sigkill_mid_job_the_job_is_taken_again_and_saved_once() {
    let env = Env::new();
    let mut first = start(&env, "e2e-kill-a");
    let session = env.session(10);
    env.seed_lpush(session);
    assert!(first.wait_for_log(
        &format!("Processing session: {session}"),
        Duration::from_secs(30)
    ));
    // Killed once the pipeline is under way.
    assert!(first.wait_for_log(&format!("{session}: diarizing"), Duration::from_secs(30)));
    first.signal(libc::SIGKILL);
    assert_eq!(
        first.wait_exit(Duration::from_secs(5)),
        Some(None),
        "killed by a signal"
    );
    assert_ne!(
        env.status(session).0,
        "ready_for_claiming",
        "killed before it finished"
    );
    // The stale socket of the killed worker is replaced by the next one on the same path.
    let stale = env.path("run-e2e-kill-a/worker.sock");
    assert!(stale.exists());
    let mut replacement = start(&env, "e2e-kill-a-restarted");
    let restarted_on_same_socket = Daemon::start(env.dir.path(), &["run"], &env.vars("e2e-kill-a"));
    assert!(restarted_on_same_socket
        .wait_for_log("Replacing a stale stats socket", Duration::from_secs(30)));

    // Another worker (after the dead one's 2 s heartbeat expires) requeues and finishes it.
    assert!(
        env.wait_ready(session, Duration::from_secs(120)),
        "the killed worker's job was lost"
    );
    assert!(
        replacement.has_log("Requeued") || restarted_on_same_socket.has_log("Requeued"),
        "the job came back through the reaper or a restart"
    );
    assert!(env.speaker_rows(session) >= 1);
    // Both survivors drain and exit: after that nothing can run the pipeline again, so the
    // runs counted in their logs are all there will ever be.
    let mut restarted_on_same_socket = restarted_on_same_socket;
    for daemon in [&mut replacement, &mut restarted_on_same_socket] {
        daemon.signal(libc::SIGTERM);
        assert_eq!(daemon.wait_exit(Duration::from_secs(60)), Some(Some(0)));
    }
    let count = |daemon: &Daemon, text: &str| {
        daemon
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|line| line.contains(text))
            .count()
    };
    let runs = [&first, &replacement, &restarted_on_same_socket]
        .iter()
        .map(|d| count(d, &format!("Processing session: {session}")))
        .sum::<usize>();
    let completions = [&replacement, &restarted_on_same_socket]
        .iter()
        .map(|d| count(d, &format!("Session {session} completed successfully")))
        .sum::<usize>();
    assert_eq!(
        (runs, completions),
        (2, 1),
        "the pipeline ran on the session once before the kill and once after, saving once"
    );
    let mut conn = redis::Client::open(redis_url())
        .unwrap()
        .get_connection()
        .unwrap();
    for worker in ["e2e-kill-a", "e2e-kill-a-restarted"] {
        let inflight: usize = redis::cmd("LLEN")
            .arg(format!("{}:processing:inflight:{worker}", env.prefix))
            .query(&mut conn)
            .unwrap();
        assert_eq!(inflight, 0, "{worker} still holds a job");
    }
    let waiting: usize = redis::cmd("LLEN")
        .arg(format!("{}:processing", env.prefix))
        .query(&mut conn)
        .unwrap();
    assert_eq!(waiting, 0, "a copy of the job is still waiting");
}
