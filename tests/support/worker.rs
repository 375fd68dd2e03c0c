//! Runs a real worker (all five actors, real Redis, real SQLite) inside the test process, on a
//! thread with its own actix System, with a pipeline the test scripts: it succeeds, fails
//! transiently, or panics on demand, and records every session it processes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix::prelude::*;
use clap::Parser;
use lahstats_worker::app::{self, Supervisor};
use lahstats_worker::config::Config;
use lahstats_worker::error::JobError;
use lahstats_worker::pipeline::{Analysis, JobOptions, PipelineFactory, Progress, SessionPipeline};
use lahstats_worker::queue::{Keys, RedisQueue};
use lahstats_worker::session::*;

/// The Redis the tests use (scripts/test exports it).
pub fn redis_url() -> String {
    std::env::var("LAHSTATS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    config: Config,
}

/// A configuration of its own for one test: its own key prefix, SQLite file and worker id.
pub fn test_config(dir: &std::path::Path, worker: &str, extra: &[&str]) -> Config {
    let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    test_config_with_prefix(dir, worker, &prefix, extra)
}

pub fn test_config_with_prefix(
    dir: &std::path::Path,
    worker: &str,
    prefix: &str,
    extra: &[&str],
) -> Config {
    let db = dir.join("lahstats.db");
    let mut args = vec![
        "test".to_string(),
        format!("--redis-url={}", redis_url()),
        format!("--database-url={}", db.display()),
        format!("--key-prefix={prefix}"),
        format!("--worker-id={worker}"),
        format!("--storage-dir={}", dir.join("storage").display()),
        format!("--socket={}", dir.join(format!("{worker}.sock")).display()),
        "--heartbeat-ttl=2".to_string(),
        "--retry-base-delay=0.2".to_string(),
        "--drain-timeout=10".to_string(),
    ];
    // A flag given by the test replaces the default one.
    let flag_name = |arg: &str| arg.split('=').next().unwrap_or(arg).to_string();
    args.retain(|arg| !extra.iter().any(|e| flag_name(e) == flag_name(arg)));
    args.extend(extra.iter().map(|s| s.to_string()));
    Flags::parse_from(args).config
}

/// What the scripted pipeline does for each call, shared with the test.
#[derive(Default)]
pub struct Script {
    /// Transient failures still to produce, per session (None key: every session).
    pub fail_transient: Mutex<BTreeMap<uuid::Uuid, usize>>,
    /// Panics still to produce (any session).
    pub panics: AtomicUsize,
    /// How long each analysis takes.
    pub work: Mutex<Duration>,
    /// Every call: (session, when it started).
    pub calls: Mutex<Vec<(uuid::Uuid, Instant)>>,
    /// Sessions fully processed (samples written), in order.
    pub completed: Mutex<Vec<uuid::Uuid>>,
    /// Sessions whose analysis returned a scripted failure, in order.
    pub failed: Mutex<Vec<uuid::Uuid>>,
}

impl Script {
    pub fn calls_for(&self, session: uuid::Uuid) -> Vec<Instant> {
        let calls = self.calls.lock().unwrap();
        calls
            .iter()
            .filter(|(s, _)| *s == session)
            .map(|(_, t)| *t)
            .collect()
    }
}

/// A pipeline that produces one fixed speaker per session and fails when the script says so.
pub struct ScriptedPipeline {
    script: Arc<Script>,
}

impl SessionPipeline for ScriptedPipeline {
    fn analyze(
        &mut self,
        input: &SessionInput,
        _: &JobOptions,
        progress: Progress,
    ) -> Result<Analysis, JobError> {
        self.script
            .calls
            .lock()
            .unwrap()
            .push((input.session_id, Instant::now()));
        if self
            .script
            .panics
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            panic!("scripted panic for {}", input.session_id);
        }
        for stage in [Stage::Concatenating, Stage::Diarizing, Stage::Transcribing] {
            progress(stage, 0);
            progress(stage, 100);
        }
        std::thread::sleep(*self.script.work.lock().unwrap());
        {
            // After the work, as a real failure would come (a test can stop the database while
            // the pipeline works, so the failure is settled with the database down).
            let mut failures = self.script.fail_transient.lock().unwrap();
            if let Some(left) = failures.get_mut(&input.session_id) {
                if *left > 0 {
                    *left -= 1;
                    self.script.failed.lock().unwrap().push(input.session_id);
                    return Err(JobError::transient("scripted transient failure"));
                }
            }
        }
        let mut counts = BTreeMap::new();
        counts.insert("lah".to_string(), input.chunks.len() as i32);
        Ok(Analysis {
            results: SessionResults {
                session_id: input.session_id,
                duration_seconds: 1.0,
                audio_url: None,
                speakers: vec![SpeakerResult {
                    label: speaker_label(0),
                    segment_count: 1,
                    total_duration_seconds: 1.0,
                    word_counts: counts,
                }],
                segments: vec![TranscriptSegment {
                    speaker_label: speaker_label(0),
                    start_seconds: 0.0,
                    end_seconds: 1.0,
                    text: "ok lah".into(),
                }],
            },
            stage_seconds: vec![],
            wall_seconds: 0.0,
        })
    }

    fn write_samples(
        &mut self,
        analysis: &mut Analysis,
        progress: Progress,
    ) -> Result<Vec<SpeakerSample>, JobError> {
        progress(Stage::GeneratingSamples, 100);
        self.script
            .completed
            .lock()
            .unwrap()
            .push(analysis.results.session_id);
        Ok(vec![])
    }

    fn device(&self) -> String {
        "scripted".into()
    }
}

pub fn scripted_factory(script: Arc<Script>) -> PipelineFactory {
    Arc::new(move || {
        Ok(Box::new(ScriptedPipeline {
            script: script.clone(),
        }) as Box<dyn SessionPipeline>)
    })
}

/// A worker running in this process.
pub struct InProcessWorker {
    pub supervisor: Addr<Supervisor>,
    thread: Option<JoinHandle<i32>>,
}

impl InProcessWorker {
    pub fn start(config: Config, factory: PipelineFactory) -> InProcessWorker {
        let fixed = config.clone();
        Self::start_reloadable(config, factory, Arc::new(move || Ok(fixed.clone())))
    }

    /// A worker whose SIGHUP reload reads its configuration from `reload_config`.
    pub fn start_reloadable(
        config: Config,
        factory: PipelineFactory,
        reload_config: Arc<dyn Fn() -> Result<Config, String> + Send + Sync>,
    ) -> InProcessWorker {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let pool = lahstats_worker::db::connect(&config.database_url).expect("database");
            lahstats_worker::db::run_migrations(&pool).expect("migrations");
            let runner = System::new();
            let reloading = app::Reloading {
                config: reload_config,
                pipeline: Arc::new(move |_: &Config| factory.clone()),
            };
            let supervisor = runner
                .block_on(async move { app::start(config, pool, reloading, "scripted".into()) });
            tx.send(supervisor).expect("send address");
            runner.run_with_code().expect("system")
        });
        let supervisor = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("worker started");
        InProcessWorker {
            supervisor,
            thread: Some(thread),
        }
    }

    /// Graceful stop (what SIGTERM does); returns the exit code.
    pub fn stop(mut self) -> i32 {
        self.supervisor.do_send(app::Stop);
        self.thread
            .take()
            .expect("running")
            .join()
            .expect("worker thread")
    }
}

/// A queue client with the test's keys (for pushing jobs and reading lists).
pub fn queue_for(config: &Config) -> RedisQueue {
    RedisQueue::new(&config.redis_url, Keys::from_config(config))
}

pub fn redis(config: &Config) -> redis::Connection {
    redis::Client::open(config.redis_url.as_str())
        .unwrap()
        .get_connection()
        .unwrap()
}

/// Polls `check` until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    check()
}

/// Deletes every key of a test prefix.
pub fn clean_prefix(config: &Config) {
    let mut conn = redis(config);
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", config.key_prefix))
        .query(&mut conn)
        .unwrap();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL").arg(keys).query(&mut conn).unwrap();
    }
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

#[allow(dead_code)]
pub fn path(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

/// Registers sessions with `chunks` (fake-path) chunks each, as `submit` would.
pub fn register_sessions(config: &Config, count: usize, chunks: usize) -> Vec<uuid::Uuid> {
    let pool = lahstats_worker::db::connect(&config.database_url).expect("database");
    lahstats_worker::db::run_migrations(&pool).expect("migrations");
    let mut conn = pool.get().expect("connection");
    (0..count)
        .map(|_| {
            let id = uuid::Uuid::new_v4();
            let chunk_rows: Vec<(i32, String, Option<f64>)> = (0..chunks)
                .map(|i| {
                    (
                        i as i32,
                        format!("sessions/{id}/chunks/chunk_{i:04}.m4a"),
                        Some(30.0),
                    )
                })
                .collect();
            lahstats_worker::db::queries::register_session(
                &mut conn,
                id,
                uuid::Uuid::nil(),
                &chunk_rows,
            )
            .expect("register session");
            id
        })
        .collect()
}

pub fn register_session(config: &Config, chunks: usize) -> uuid::Uuid {
    register_sessions(config, 1, chunks)[0]
}

/// (status, progress, error_message) as the app would read them.
pub fn session_status(config: &Config, session: uuid::Uuid) -> (String, i32, Option<String>) {
    let pool = lahstats_worker::db::connect(&config.database_url).expect("database");
    let mut conn = pool.get().expect("connection");
    lahstats_worker::db::queries::session_status(&mut conn, session).expect("status")
}
