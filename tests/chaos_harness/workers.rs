//! Real `lahstats-worker run` processes: started with their own worker id, killed, signalled
//! and started again, each incarnation logging to a file of its own so every run can be read
//! back afterwards (who processed which session, how long pickup took).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary under test: `LAHSTATS_CHAOS_BIN` (scripts/chaos and scripts/load copy their own
/// build there, since the shared target directory is rebuilt by others), else Cargo's.
pub fn worker_binary() -> PathBuf {
    std::env::var_os("LAHSTATS_CHAOS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_lahstats-worker")))
}

/// The model files: `LAHSTATS_MODELS_DIR`, else the project's `models/`.
pub fn models_dir() -> PathBuf {
    std::env::var_os("LAHSTATS_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("models"))
}

/// What every worker of one run shares.
#[derive(Debug, Clone)]
pub struct FleetSettings {
    pub dir: PathBuf,
    pub redis_url: String,
    pub database_url: String,
    pub key_prefix: String,
    /// Extra environment (retry policy, log level…).
    pub env: Vec<(String, String)>,
}

/// Why a worker process ended, as the harness expected it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Still expected to be running.
    Running,
    /// SIGKILLed by the harness.
    Killed,
    /// Sent SIGTERM: must drain and exit 0.
    Terminated,
}

/// One incarnation of a worker.
pub struct WorkerProcess {
    pub id: String,
    pub child: Child,
    pub log_path: PathBuf,
    pub ending: Ending,
    pub started: Instant,
}

impl WorkerProcess {
    pub fn spawn(settings: &FleetSettings, id: &str, incarnation: usize) -> WorkerProcess {
        let logs = settings.dir.join("logs");
        std::fs::create_dir_all(&logs).expect("log dir");
        let log_path = logs.join(format!("{id}.{incarnation}.log"));
        let log = std::fs::File::create(&log_path).expect("worker log file");
        let err = log.try_clone().expect("worker log file");
        let mut command = Command::new(worker_binary());
        command
            .arg("run")
            .current_dir(&settings.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .env("REDIS_URL", &settings.redis_url)
            .env("DATABASE_URL", &settings.database_url)
            .env("LAHSTATS_KEY_PREFIX", &settings.key_prefix)
            .env("LAHSTATS_WORKER_ID", id)
            .env("LAHSTATS_HEARTBEAT_TTL", "2")
            .env("LAHSTATS_MODELS_DIR", models_dir())
            .env("LAHSTATS_STORAGE_DIR", settings.dir.join("storage"))
            .env(
                "LAHSTATS_SOCKET",
                settings.dir.join(format!("run-{id}")).join("worker.sock"),
            );
        for (key, value) in &settings.env {
            command.env(key, value);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", worker_binary().display()));
        WorkerProcess {
            id: id.to_string(),
            child,
            log_path,
            ending: Ending::Running,
            started: Instant::now(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid; a stale pid at worst yields ESRCH.
        unsafe {
            libc::kill(self.pid(), signal);
        }
    }

    /// The exit status if the process has ended: Some(Some(code)) or Some(None) for a signal.
    pub fn exited(&mut self) -> Option<Option<i32>> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.code()),
            _ => None,
        }
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<Option<i32>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(code) = self.exited() {
                return Some(code);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn has_log(&self, text: &str) -> bool {
        self.log().contains(text)
    }

    /// Waits until the worker listens for jobs with its models loaded; false if it exited or
    /// the time ran out.
    pub fn wait_ready(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let log = self.log();
            if log.contains("Listening for jobs") && log.contains("Models loaded") {
                return true;
            }
            if self.exited().is_some() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// The last lines of the log, for a failure message.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Every log file the run's workers wrote, oldest incarnation first.
pub fn all_logs(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("logs"))
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            (path, text)
        })
        .collect()
}
