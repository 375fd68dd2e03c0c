//! scripts/lahstatsd: LSB status codes (0 running, 3 stopped), a refused double start, and a
//! stop that waits for the worker to exit.

mod support;

use std::path::Path;
use std::process::Command;

fn lahstatsd(dir: &Path, prefix: &str, action: &str) -> (i32, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/lahstatsd");
    let out = Command::new(script)
        .arg(action)
        .env("LAHSTATS_BINARY", env!("CARGO_BIN_EXE_lahstats-worker"))
        .env("LAHSTATS_RUN_DIR", dir.join("run"))
        .env("LAHSTATS_LOG_DIR", dir.join("log"))
        .env("LAHSTATS_SOCKET", dir.join("run/worker.sock"))
        .env("LAHSTATS_KEY_PREFIX", prefix)
        .env("REDIS_URL", support::worker::redis_url())
        .env("DATABASE_URL", dir.join("worker.db"))
        .env(
            "LAHSTATS_MODELS_DIR",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("models"),
        )
        .env("LAHSTATS_DRAIN_TIMEOUT", "10")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn status_codes_double_start_and_stop() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    let d = dir.path();
    assert_eq!(lahstatsd(d, &prefix, "status").0, 3, "stopped before start");
    let (code, text) = lahstatsd(d, &prefix, "start");
    assert_eq!(code, 0, "{text}");
    let (code, text) = lahstatsd(d, &prefix, "status");
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("running (pid"));
    let (code, text) = lahstatsd(d, &prefix, "start");
    assert_ne!(code, 0, "a second start is refused");
    assert!(text.contains("already running"), "{text}");
    let (code, text) = lahstatsd(d, &prefix, "reload");
    assert_eq!(code, 0, "{text}");
    let (code, text) = lahstatsd(d, &prefix, "stop");
    assert_eq!(code, 0, "{text}");
    assert_eq!(lahstatsd(d, &prefix, "status").0, 3, "stopped after stop");
    let log = std::fs::read_to_string(d.join("log/lahstats-worker.log")).unwrap();
    for line in [
        "Listening for jobs",
        "Received SIGHUP",
        "Received SIGTERM",
        "Worker Shutdown Complete",
    ] {
        assert!(log.contains(line), "log lacks {line:?}");
    }
}
