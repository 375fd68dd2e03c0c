//! The stats socket: a Unix socket, owner-only, answering newline-delimited JSON requests
//! (`{"cmd":"stats"}`, `{"cmd":"ping"}`) with one JSON line each. Also the client side used by
//! `lahstats-worker stats`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use actix::Addr;
use serde_json::{json, Value};

use super::reporter::{GetStats, StatsReporter};
use super::StatsSnapshot;

/// Errors of the stats socket, server and client side.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("Another worker is already answering on {0}; give this one its own LAHSTATS_SOCKET")]
    InUse(PathBuf),
    #[error("Cannot create the stats socket {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("No worker answers on {path} ({source}); is the daemon running?")]
    NoDaemon {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("The worker's answer on {path} was not understood: {reason}")]
    BadAnswer { path: PathBuf, reason: String },
}

/// The bound socket; removes its file when dropped.
pub struct StatsSocket {
    path: PathBuf,
    listener: Option<UnixListener>,
}

impl Drop for StatsSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl StatsSocket {
    /// Binds the socket, replacing a stale one (from a killed process), never a live one.
    pub fn bind(path: &Path) -> Result<StatsSocket, SocketError> {
        let create = |source| SocketError::Create {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(create)?;
            // Only the owner may reach the socket's directory.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(create)?;
        }
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(SocketError::InUse(path.to_path_buf()));
            }
            log::warn!("Replacing a stale stats socket at {}", path.display());
            std::fs::remove_file(path).map_err(create)?;
        }
        let listener = UnixListener::bind(path).map_err(create)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(create)?;
        Ok(StatsSocket {
            path: path.to_path_buf(),
            listener: Some(listener),
        })
    }

    /// Answers requests on a thread of its own, asking the StatsReporter for figures.
    pub fn serve(&mut self, stats: Addr<StatsReporter>) -> Result<(), SocketError> {
        let create = |source| SocketError::Create {
            path: self.path.clone(),
            source,
        };
        let Some(listener) = self.listener.take() else {
            return Ok(());
        };
        std::thread::Builder::new()
            .name("stats-socket".into())
            .spawn(move || {
                for stream in listener.incoming().flatten() {
                    let stats = stats.clone();
                    // One thread per client: a slow client can't hold up another.
                    let _ = std::thread::Builder::new()
                        .name("stats-client".into())
                        .spawn(move || answer(stream, &stats));
                }
            })
            .map_err(create)?;
        Ok(())
    }
}

/// Answers every request line of one client.
fn answer(stream: UnixStream, stats: &Addr<StatsReporter>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { return };
        if line.trim().is_empty() {
            continue;
        }
        let reply = match serde_json::from_str::<Value>(&line) {
            Ok(request) => match request.get("cmd").and_then(Value::as_str) {
                Some("ping") => json!({"ok": true, "pong": true}),
                Some("stats") => match futures::executor::block_on(stats.send(GetStats)) {
                    Ok(snapshot) => json!({"ok": true, "stats": snapshot}),
                    Err(err) => json!({"ok": false, "error": format!("stats unavailable: {err}")}),
                },
                _ => {
                    json!({"ok": false, "error": "unknown cmd; use {\"cmd\":\"stats\"} or {\"cmd\":\"ping\"}"})
                }
            },
            Err(err) => json!({"ok": false, "error": format!("request is not JSON: {err}")}),
        };
        if writeln!(writer, "{reply}").is_err() {
            return;
        }
    }
}

/// Sends one request to a running worker and returns its answer.
pub fn request(path: &Path, cmd: &str) -> Result<Value, SocketError> {
    let no_daemon = |source| SocketError::NoDaemon {
        path: path.to_path_buf(),
        source,
    };
    let mut stream = UnixStream::connect(path).map_err(no_daemon)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(no_daemon)?;
    writeln!(stream, "{}", json!({ "cmd": cmd })).map_err(no_daemon)?;
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .map_err(no_daemon)?;
    serde_json::from_str(&line).map_err(|err| SocketError::BadAnswer {
        path: path.to_path_buf(),
        reason: err.to_string(),
    })
}

/// Asks a running worker for its figures.
pub fn fetch_stats(path: &Path) -> Result<StatsSnapshot, SocketError> {
    let answer = request(path, "stats")?;
    let bad = |reason: String| SocketError::BadAnswer {
        path: path.to_path_buf(),
        reason,
    };
    if answer.get("ok") != Some(&Value::Bool(true)) {
        return Err(bad(answer
            .get("error")
            .map(Value::to_string)
            .unwrap_or_default()));
    }
    serde_json::from_value(answer["stats"].clone()).map_err(|err| bad(err.to_string()))
}

/// The figures in Prometheus' text exposition format.
pub fn prometheus(s: &StatsSnapshot) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: f64| {
        out.push_str(&format!(
            "# HELP lahstats_{name} {help}\n# TYPE lahstats_{name} {kind}\nlahstats_{name}{{worker=\"{}\"}} {value}\n",
            s.worker_id
        ));
    };
    metric(
        "jobs_received_total",
        "counter",
        "Jobs taken off the queue.",
        s.received as f64,
    );
    metric(
        "jobs_succeeded_total",
        "counter",
        "Jobs processed successfully.",
        s.succeeded as f64,
    );
    metric(
        "jobs_failed_total",
        "counter",
        "Jobs that failed for good.",
        s.failed as f64,
    );
    metric(
        "jobs_retried_total",
        "counter",
        "Failed attempts scheduled for retry.",
        s.retried as f64,
    );
    metric(
        "jobs_duplicate_total",
        "counter",
        "Duplicate jobs acknowledged without running them.",
        s.duplicates as f64,
    );
    metric(
        "pipeline_loaded",
        "gauge",
        "1 when the models are loaded and jobs are taken.",
        f64::from(u8::from(s.pipeline.starts_with("loaded"))),
    );
    metric(
        "jobs_in_flight",
        "gauge",
        "Jobs in hand.",
        s.in_flight as f64,
    );
    metric(
        "uptime_seconds",
        "gauge",
        "Seconds since the worker started.",
        s.uptime_seconds as f64,
    );
    metric(
        "audio_seconds_total",
        "counter",
        "Seconds of audio processed.",
        s.audio_seconds_processed,
    );
    metric(
        "queue_processing",
        "gauge",
        "Jobs waiting in the queue.",
        s.queue_processing as f64,
    );
    metric(
        "queue_retry",
        "gauge",
        "Jobs waiting for a retry.",
        s.queue_retry as f64,
    );
    metric(
        "queue_failed",
        "gauge",
        "Jobs in the failed list.",
        s.queue_failed as f64,
    );
    metric(
        "redis_up",
        "gauge",
        "1 when Redis is connected.",
        f64::from(u8::from(s.redis_connected)),
    );
    metric(
        "database_up",
        "gauge",
        "1 when the database is reachable.",
        f64::from(u8::from(s.database_connected)),
    );
    if let Some(rtf) = s.rtf_mean {
        metric(
            "real_time_factor_mean",
            "gauge",
            "Mean processing time over audio time.",
            rtf,
        );
    }
    if let Some(rtf) = s.rtf_p95 {
        metric(
            "real_time_factor_p95",
            "gauge",
            "95th percentile real-time factor.",
            rtf,
        );
    }
    out
}
