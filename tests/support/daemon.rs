//! Runs the real `lahstats-worker` binary as a child process, with its log lines collected.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The environment of a daemon of its own: the test Redis, `database_url`, a fresh key prefix,
/// and its socket and storage under `dir`.
pub fn daemon_env(dir: &Path, database_url: String) -> Vec<(&'static str, String)> {
    vec![
        ("REDIS_URL", super::worker::redis_url()),
        ("DATABASE_URL", database_url),
        (
            "LAHSTATS_KEY_PREFIX",
            format!("test-{}", uuid::Uuid::new_v4().simple()),
        ),
        (
            "LAHSTATS_SOCKET",
            dir.join("run/worker.sock").display().to_string(),
        ),
        (
            "LAHSTATS_STORAGE_DIR",
            dir.join("storage").display().to_string(),
        ),
    ]
}

/// Registers a session in `database_url` whose one chunk is `turns` sentences of two voices,
/// stored under `storage` as the API stores chunks.
pub fn register_speech_session(storage: &Path, database_url: &str, turns: usize) -> uuid::Uuid {
    let id = uuid::Uuid::new_v4();
    let conversation = super::speech::round_robin(2, turns);
    let storage_path = format!("sessions/{id}/chunks/chunk_0000.wav");
    lahstats_worker::audio::write_wav(&conversation.samples, &storage.join(&storage_path))
        .expect("write the chunk");
    let pool = lahstats_worker::db::connect(database_url).expect("database");
    lahstats_worker::db::run_migrations(&pool).expect("migrations");
    let mut conn = pool.get().expect("connection");
    lahstats_worker::db::queries::register_session(
        &mut conn,
        id,
        uuid::Uuid::nil(),
        &[(0, storage_path, None)],
    )
    .expect("register");
    id
}

/// (status, progress, error_message) of a session, as the app reads them.
pub fn session_status(database_url: &str, id: uuid::Uuid) -> (String, i32, Option<String>) {
    let pool = lahstats_worker::db::connect(database_url).expect("database");
    let mut conn = pool.get().expect("connection");
    lahstats_worker::db::queries::session_status(&mut conn, id).expect("status")
}

pub struct Daemon {
    pub child: Child,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    /// Starts `lahstats-worker <args>` in `dir` with `env`.
    pub fn start(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Daemon {
        let mut command = Command::new(env!("CARGO_BIN_EXE_lahstats-worker"));
        command
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command.env("RUST_LOG", "info");
        command.env(
            "LAHSTATS_MODELS_DIR",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("models"),
        );
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("start lahstats-worker");
        let log = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stderr.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stdout.take().unwrap()),
        ] {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    eprintln!("  | {line}");
                    log.lock().unwrap().push(line);
                }
            });
        }
        Daemon { child, log }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits until a log line contains `text`.
    pub fn wait_for_log(&self, text: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log.lock().unwrap().iter().any(|l| l.contains(text)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn signal(&self, signal: i32) {
        unsafe {
            libc::kill(self.pid(), signal);
        }
    }

    /// Waits for the process to exit; returns its exit code (None if killed by a signal or
    /// still running at the timeout).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<Option<i32>> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status.code());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    pub fn has_log(&self, text: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(text))
    }

    /// How many log lines contain `text`.
    pub fn count_log(&self, text: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(text))
            .count()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
