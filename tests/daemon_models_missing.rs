//! A model file missing: the real daemon stays up but takes nothing from the queue (the job waits
//! there, no retries burnt), says why in its log and on the stats socket (`pipeline: not loaded —
//! …`), `lahstats-worker check` exits 1 naming the file, and once the file is back a SIGHUP loads
//! the models and the waiting job is processed.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::daemon::{daemon_env, register_speech_session, session_status, Daemon};
use support::postgres::fresh_database;
use support::worker::wait_until;

/// `mirror` gets a symlink to every file under `real` but `skip` (a path under `real`).
fn mirror_without(real: &Path, mirror: &Path, skip: &Path) {
    std::fs::create_dir_all(mirror).unwrap();
    for entry in std::fs::read_dir(real).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap();
        if path.is_dir() {
            mirror_without(&path, &mirror.join(name), skip);
        } else if path != skip {
            std::os::unix::fs::symlink(&path, mirror.join(name)).unwrap();
        }
    }
}

fn first_model_file(models: &Path) -> PathBuf {
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(models.join("manifest.json")).unwrap())
            .unwrap();
    PathBuf::from(manifest["models"][0]["file"].as_str().unwrap())
}

#[test]
fn missing_models_stop_intake_until_a_reload_loads_them() {
    let database = fresh_database();
    let dir = tempfile::tempdir().unwrap();
    let real = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let missing = first_model_file(&real);
    let mirror = dir.path().join("models");
    mirror_without(&real, &mirror, &real.join(&missing));
    assert!(!mirror.join(&missing).exists());

    let mut env = daemon_env(dir.path(), database.url.clone());
    env.push(("LAHSTATS_MODELS_DIR", mirror.display().to_string()));
    let prefix = env
        .iter()
        .find(|(k, _)| *k == "LAHSTATS_KEY_PREFIX")
        .unwrap()
        .1
        .clone();
    let session = register_speech_session(&dir.path().join("storage"), &database.url, 2);
    let mut redis = redis::Client::open(support::worker::redis_url())
        .unwrap()
        .get_connection()
        .unwrap();
    let job = lahstats_worker::job::JobPayload::new(session).to_json();
    let _: () = redis::cmd("LPUSH")
        .arg(format!("{prefix}:processing"))
        .arg(&job)
        .query(&mut redis)
        .unwrap();

    let mut daemon = Daemon::start(dir.path(), &["run"], &env);
    let waiting = |redis: &mut redis::Connection| -> usize {
        redis::cmd("LLEN")
            .arg(format!("{prefix}:processing"))
            .query(redis)
            .unwrap()
    };
    // It says the models did not load — or it has taken the job.
    assert!(
        wait_until(Duration::from_secs(60), || daemon
            .has_log("Pipeline not loaded")
            || waiting(&mut redis) == 0),
        "no word of the models"
    );
    // What `lahstats-worker stats --json` prints.
    assert_eq!(waiting(&mut redis), 1, "the job was taken");
    let socket = dir.path().join("run/worker.sock");
    let stats = || {
        lahstats_worker::stats::socket::request(&socket, "stats")
            .map(|answer| answer["stats"].clone())
    };
    assert!(wait_until(Duration::from_secs(10), || stats().is_ok()));
    let file_name = missing.file_name().unwrap().to_string_lossy().to_string();
    let pipeline = stats().unwrap()["pipeline"]
        .as_str()
        .unwrap_or("(none)")
        .to_string();
    assert!(
        pipeline.starts_with("not loaded — ") && pipeline.contains(&file_name),
        "stats say pipeline: {pipeline}"
    );

    let untouched = |redis: &mut redis::Connection| {
        let waiting: usize = redis::cmd("LLEN")
            .arg(format!("{prefix}:processing"))
            .query(redis)
            .unwrap();
        let inflight: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}:processing:inflight:*"))
            .query(redis)
            .unwrap();
        let retrying: usize = redis::cmd("ZCARD")
            .arg(format!("{prefix}:retry"))
            .query(redis)
            .unwrap();
        let failed: usize = redis::cmd("LLEN")
            .arg(format!("{prefix}:failed"))
            .query(redis)
            .unwrap();
        (waiting, inflight.len(), retrying, failed)
    };
    assert_eq!(untouched(&mut redis), (1, 0, 0, 0), "a job was taken");
    assert_eq!(stats().unwrap()["received"], 0);
    assert_eq!(session_status(&database.url, session).0, "processing");

    // `check` names the file and fails; Redis and the database are fine.
    let check = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_lahstats-worker"));
        command.arg("check").current_dir(dir.path());
        for (key, value) in &env {
            command.env(key, value);
        }
        command.output().unwrap()
    };
    let out = check();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    println!("{text}");
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("✘ models") && l.contains(&file_name) && l.contains("missing")),
        "{text}"
    );
    assert!(
        text.contains("✔ redis") && text.contains("✔ database"),
        "{text}"
    );

    // A SIGHUP with the file still missing tries again and still takes nothing.
    daemon.signal(libc::SIGHUP);
    assert!(wait_until(Duration::from_secs(60), || daemon
        .count_log("Pipeline not loaded")
        >= 2));
    assert!(daemon.wait_for_log("Reloaded", Duration::from_secs(30)));
    assert_eq!(untouched(&mut redis), (1, 0, 0, 0));

    // The file comes back; a SIGHUP loads the models and the waiting job is processed.
    std::os::unix::fs::symlink(real.join(&missing), mirror.join(&missing)).unwrap();
    daemon.signal(libc::SIGHUP);
    assert!(daemon.wait_for_log("Pipeline loaded: taking jobs", Duration::from_secs(60)));
    assert!(
        wait_until(Duration::from_secs(120), || session_status(
            &database.url,
            session
        )
        .0 == "ready_for_claiming"),
        "the waiting job was not processed: {:?}",
        session_status(&database.url, session)
    );
    assert_eq!(check().status.code(), Some(0));
    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(30)), Some(Some(0)));
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut redis)
        .unwrap();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL").arg(keys).query(&mut redis).unwrap();
    }
}
