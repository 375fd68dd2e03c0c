//! The servers a chaos or load run owns: a Redis of its own (append-only, fsync always, so a
//! restart or a crash keeps every acknowledged write) and a private Postgres cluster, both on
//! free ports on 127.0.0.1 and never the machine's shared servers.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::postgres::PrivatePostgres;

/// How a Redis outage begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisStop {
    /// `SHUTDOWN`: a clean stop, as an operator's restart.
    Shutdown,
    /// SIGKILL: a crash; the append-only file (fsync always) still holds every write.
    Crash,
}

/// A redis-server on a free port whose data lives in `dir`.
pub struct ChaosRedis {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl ChaosRedis {
    pub fn start(dir: &Path) -> ChaosRedis {
        std::fs::create_dir_all(dir).expect("redis dir");
        let mut redis = ChaosRedis {
            port: free_port(),
            dir: dir.to_path_buf(),
            child: None,
        };
        redis.start_again();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn is_up(&self) -> bool {
        self.child.is_some()
    }

    /// Starts the server on the same port with the same data; waits until it answers PING.
    pub fn start_again(&mut self) {
        let log = self.dir.join("redis.log");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let client = redis::Client::open(self.url()).expect("redis url");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_millis(500)) {
                // LOADING is an error reply: wait until the append-only file is read back.
                if redis::cmd("PING").query::<String>(&mut conn).is_ok() {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "the chaos run's redis-server on port {} did not start",
            self.port
        );
    }

    pub fn stop(&mut self, how: RedisStop) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        match how {
            RedisStop::Shutdown => {
                let _ = Command::new("redis-cli")
                    .args(["-p", &self.port.to_string(), "shutdown"])
                    .output();
            }
            RedisStop::Crash => {
                let _ = child.kill();
            }
        }
        let _ = child.wait();
    }

    /// A connection for the harness's own checks (None while the server is down).
    pub fn connection(&self) -> Option<redis::Connection> {
        let client = redis::Client::open(self.url()).ok()?;
        let conn = client
            .get_connection_with_timeout(Duration::from_secs(1))
            .ok()?;
        conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        Some(conn)
    }
}

impl Drop for ChaosRedis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The private Postgres and whether it is up right now.
pub struct ChaosPostgres {
    server: PrivatePostgres,
    up: bool,
}

impl ChaosPostgres {
    pub fn start() -> ChaosPostgres {
        ChaosPostgres {
            server: PrivatePostgres::start_new(),
            up: true,
        }
    }

    /// The workers' DATABASE_URL: the cluster's own `postgres` database.
    pub fn url(&self) -> String {
        self.server.url()
    }

    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Fast shutdown: every open connection is cut, as when the database goes away.
    pub fn stop(&mut self) {
        self.server.stop();
        self.up = false;
    }

    pub fn start_again(&mut self) {
        self.server.start();
        self.up = true;
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}
