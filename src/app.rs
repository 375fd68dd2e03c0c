//! The daemon: starts the five actors under a Supervisor in one actix System, forwards signals
//! to it, and carries a shutdown down the tree: stop taking jobs → let the job in hand finish
//! (bounded by the drain timeout) → record what is pending → final stats → exit 0.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::config::Config;
use crate::db::writer::DbWriter;
use crate::db::DbPool;
use crate::error::JobError;
use crate::pipeline::PipelineFactory;
use crate::processor::{Processor, ProcessorSettings};
use crate::queue::listener::{self, ListenerSettings, QueueListener};
use crate::queue::retry::{self, RetryPolicy, RetryScheduler};
use crate::queue::{Keys, RedisQueue};
use crate::stats::reporter::{self as stats, StatsReporter};
use crate::stats::socket::StatsSocket;

/// Jobs one Processor thread holds at once.
const PROCESSOR_CAPACITY: usize = 1;
/// Threads the DbWriter runs: one, so SQLite never sees two writers at once.
const DB_WRITER_THREADS: usize = 1;

// ---- state ----

/// Addresses of the running actors.
#[derive(Clone)]
pub struct Workers {
    pub listener: Addr<QueueListener>,
    pub retry: Addr<RetryScheduler>,
    pub processor: Addr<Processor>,
    pub db: Addr<DbWriter>,
    pub stats: Addr<StatsReporter>,
}

/// How to reload: read the configuration again, and build a pipeline for it.
#[derive(Clone)]
pub struct Reloading {
    /// Reads `.env`, the environment and the original flags again.
    pub config: Arc<dyn Fn() -> Result<Config, String> + Send + Sync>,
    /// A pipeline factory for a configuration (the models it names, on its device).
    pub pipeline: Arc<dyn Fn(&Config) -> PipelineFactory + Send + Sync>,
}

pub struct Supervisor {
    config: Config,
    workers: Workers,
    reloading: Reloading,
    /// What the Processor's and DbWriter's factories build from after a restart.
    current_factory: Shared<PipelineFactory>,
    current_pool: Shared<DbPool>,
    /// Set once a shutdown has begun.
    draining_since: Option<Instant>,
    reload_in_progress: bool,
}

/// A value a SyncArbiter factory reads each time it rebuilds its actor.
type Shared<T> = Arc<Mutex<T>>;

fn read<T: Clone>(shared: &Shared<T>) -> T {
    // A poisoned lock still holds the last value written, which is what we want.
    shared
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
        .clone()
}

fn write<T>(shared: &Shared<T>, value: T) {
    *shared.lock().unwrap_or_else(|poison| poison.into_inner()) = value;
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Upkeep for the sync actors: heartbeat/reaper (each acts only when due) and retry
        // promotion, which a tenth of a second keeps close to the retry's due time.
        let tick = Duration::from_millis(100);
        ctx.run_interval(tick, |act, _| {
            act.workers.listener.do_send(listener::Tick);
            act.workers.retry.do_send(retry::Tick);
        });
    }
}

// ---- messages ----

/// A Unix signal arrived.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Signal(pub i32);

/// Begin a graceful shutdown (what SIGTERM does).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stop;

/// A reload finished; this is the configuration now in effect.
#[derive(Message)]
#[rtype(result = "()")]
struct Reloaded(Config);

/// The running actors' addresses (for tests and tools).
#[derive(Message)]
#[rtype(result = "Workers")]
pub struct GetWorkers;

// ---- handlers ----

impl Handler<Signal> for Supervisor {
    type Result = ();

    fn handle(&mut self, Signal(signal): Signal, ctx: &mut Context<Self>) {
        use signal_hook::consts::*;
        match signal {
            SIGTERM | SIGINT if self.draining_since.is_some() => {
                if signal == SIGINT {
                    log::warn!("📥 Second SIGINT: exiting now; the job in hand stays in Redis and will be taken again");
                    std::process::exit(130);
                }
                log::info!("Shutdown already under way");
            }
            SIGTERM | SIGINT => {
                let name = if signal == SIGTERM {
                    "SIGTERM"
                } else {
                    "SIGINT"
                };
                log::info!("📥 Received {name}, initiating graceful shutdown...");
                self.begin_shutdown(ctx);
            }
            SIGHUP => {
                log::info!("📥 Received SIGHUP, reloading the configuration...");
                self.begin_reload(ctx);
            }
            SIGUSR1 => self.workers.stats.do_send(stats::LogStats),
            other => log::debug!("Ignoring signal {other}"),
        }
    }
}

impl Handler<Stop> for Supervisor {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        if self.draining_since.is_none() {
            self.begin_shutdown(ctx);
        }
    }
}

impl Handler<Reloaded> for Supervisor {
    type Result = ();

    fn handle(&mut self, Reloaded(config): Reloaded, _: &mut Context<Self>) {
        self.config = config;
        self.reload_in_progress = false;
        log::info!(
            "🔄 Reloaded: queue {}, database {}",
            self.config.processing_queue(),
            crate::config::mask_url(&self.config.database_url)
        );
    }
}

impl Handler<GetWorkers> for Supervisor {
    type Result = MessageResult<GetWorkers>;

    fn handle(&mut self, _: GetWorkers, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.workers.clone())
    }
}

// ---- helpers ----

impl Supervisor {
    fn begin_shutdown(&mut self, _: &mut Context<Self>) {
        self.draining_since = Some(Instant::now());
        let workers = self.workers.clone();
        let drain_timeout = self.config.drain_timeout();
        actix::spawn(async move {
            drain(&workers, drain_timeout).await;
            let _ = workers.listener.send(listener::Shutdown).await;
            log::info!("Processor stopped");
            let _ = workers.retry.send(retry::Shutdown).await;
            let _ = workers.db.send(crate::db::writer::Shutdown).await;
            let _ = workers.stats.send(stats::FinalSummary).await;
            System::current().stop_with_code(0);
        });
    }
}

impl Supervisor {
    /// Reload: finish the job in hand, then reconnect the database and Redis, reload the models
    /// if their files or the choice of model changed, and take jobs again under the new settings.
    fn begin_reload(&mut self, ctx: &mut Context<Self>) {
        if self.draining_since.is_some() || self.reload_in_progress {
            return log::warn!("A shutdown or reload is already under way; SIGHUP ignored");
        }
        let new = match (self.reloading.config)() {
            Ok(config) => config,
            Err(err) => return log::error!("Reload refused, configuration unchanged: {err}"),
        };
        self.reload_in_progress = true;
        let factory = (models_signature(&new) != models_signature(&self.config)).then(|| {
            let factory = (self.reloading.pipeline)(&new);
            write(&self.current_factory, factory.clone());
            factory
        });
        let db_changed = new.database_url != self.config.database_url;
        let (workers, current_pool, supervisor) = (
            self.workers.clone(),
            self.current_pool.clone(),
            ctx.address(),
        );
        actix::spawn(async move {
            let mut in_hand = workers
                .listener
                .send(listener::StopIntake { for_good: false })
                .await
                .unwrap_or(0);
            while in_hand > 0 {
                actix_rt::time::sleep(Duration::from_millis(100)).await;
                in_hand = workers.listener.send(listener::InHand).await.unwrap_or(0);
            }
            if db_changed {
                match crate::db::connect(&new.database_url)
                    .and_then(|pool| crate::db::run_migrations(&pool).map(|_| pool))
                {
                    Ok(pool) => {
                        write(&current_pool, pool.clone());
                        let _ = workers.db.send(crate::db::writer::Reconnect { pool }).await;
                    }
                    Err(err) => log::error!("Keeping the old database: the new one failed: {err}"),
                }
            }
            let settings = processor_settings(&new);
            let _ = workers
                .processor
                .send(crate::processor::Reload { factory, settings })
                .await;
            let keys = Keys::from_config(&new);
            let queue = RedisQueue::new(&new.redis_url, keys.clone());
            let _ = workers
                .retry
                .send(retry::Reconfigure {
                    queue,
                    policy: retry_policy(&new),
                })
                .await;
            let queue = RedisQueue::new(&new.redis_url, keys);
            let _ = workers
                .listener
                .send(listener::ResumeIntake {
                    queue,
                    settings: listener_settings(&new),
                })
                .await;
            supervisor.do_send(Reloaded(new));
        });
    }
}

/// What decides whether the models must be loaded again: where they are, which Whisper, the
/// device, and the manifest's size and time (scripts/prepare-models rewrites it).
fn models_signature(config: &Config) -> String {
    let manifest = std::fs::metadata(config.models_dir.join("manifest.json"))
        .ok()
        .map(|m| format!("{}:{:?}", m.len(), m.modified().ok()));
    format!(
        "{}|{}|{}|{manifest:?}",
        config.models_dir.display(),
        config.whisper_model,
        config.device
    )
}

/// Waits until the job in hand is finished, or the drain timeout has passed.
async fn drain(workers: &Workers, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let mut in_hand = workers
        .listener
        .send(listener::StopIntake { for_good: true })
        .await
        .unwrap_or(0);
    if in_hand > 0 {
        log::info!(
            "⏳ Waiting for current job to complete (up to {:.0}s)...",
            timeout.as_secs_f64()
        );
    }
    while in_hand > 0 {
        if Instant::now() >= deadline {
            log::warn!("⚠️  Drain timeout reached with {in_hand} job(s) in hand");
            return;
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
        in_hand = workers.listener.send(listener::InHand).await.unwrap_or(0);
    }
}

/// Starts the actors under a Supervisor; call inside a running actix System.
pub fn start(
    config: Config,
    pool: DbPool,
    reloading: Reloading,
    device: String,
) -> Addr<Supervisor> {
    let current_factory = Arc::new(Mutex::new((reloading.pipeline)(&config)));
    let current_pool = Arc::new(Mutex::new(pool));
    let workers = start_workers(&config, &current_pool, &current_factory, device);
    Supervisor {
        config,
        workers,
        reloading,
        current_factory,
        current_pool,
        draining_since: None,
        reload_in_progress: false,
    }
    .start()
}

/// Starts the five actors.
fn start_workers(
    config: &Config,
    pool: &Shared<DbPool>,
    factory: &Shared<PipelineFactory>,
    device: String,
) -> Workers {
    let keys = Keys::from_config(config);
    let stats = StatsReporter::new(
        keys.worker_id.clone(),
        device,
        Duration::from_secs_f64(config.stats_interval.max(1.0)),
    )
    .start();
    let db = {
        let pool = pool.clone();
        SyncArbiter::start(DB_WRITER_THREADS, move || DbWriter::new(read(&pool)))
    };
    let processor = {
        let (db, settings, factory) = (db.clone(), processor_settings(config), factory.clone());
        SyncArbiter::start(1, move || {
            Processor::new(&read(&factory), db.clone(), settings.clone())
        })
    };
    let retry = {
        let (queue, policy) = (
            RedisQueue::new(&config.redis_url, keys.clone()),
            retry_policy(config),
        );
        let (db, stats) = (db.clone(), stats.clone());
        // The factory runs again only after a panic; a fresh connection is right then.
        let url = config.redis_url.clone();
        let keys = keys.clone();
        let first = std::sync::Mutex::new(Some(queue));
        SyncArbiter::start(1, move || {
            let queue = first
                .lock()
                .ok()
                .and_then(|mut q| q.take())
                .unwrap_or_else(|| RedisQueue::new(&url, keys.clone()));
            RetryScheduler::new(queue, policy.clone(), db.clone(), stats.clone())
        })
    };
    let listener = {
        let settings = listener_settings(config);
        let (processor, retry, stats) = (processor.clone(), retry.clone(), stats.clone());
        let (url, keys) = (config.redis_url.clone(), keys.clone());
        SyncArbiter::start(1, move || {
            QueueListener::new(
                RedisQueue::new(&url, keys.clone()),
                settings.clone(),
                processor.clone(),
                retry.clone(),
                stats.clone(),
            )
        })
    };
    Workers {
        listener,
        retry,
        processor,
        db,
        stats,
    }
}

fn processor_settings(config: &Config) -> ProcessorSettings {
    ProcessorSettings {
        min_speakers: config.min_speakers,
        max_speakers: config.max_speakers,
        force_reclaim: config.force_reclaim,
    }
}

pub fn retry_policy(config: &Config) -> RetryPolicy {
    RetryPolicy {
        max_retries: config.max_retries,
        base_delay: Duration::from_secs_f64(config.retry_base_delay.max(0.0)),
    }
}

fn listener_settings(config: &Config) -> ListenerSettings {
    ListenerSettings {
        capacity: PROCESSOR_CAPACITY,
        heartbeat_ttl: config.heartbeat_ttl(),
        max_payload_bytes: config.max_payload_bytes,
    }
}

/// Runs the daemon until a shutdown completes; returns the process exit code.
pub fn run(config: Config, reloading: Reloading, device: String) -> Result<i32, JobError> {
    let mut signals = catch_signals()?;
    crate::logging::banner(&config, &device);
    let Some(pool) = wait_for_database(&config, &mut signals)? else {
        log::info!("👋 Stopped before the database came up");
        return Ok(0);
    };
    // Bound before anything starts, so a second daemon on the same socket refuses at once.
    let mut socket =
        StatsSocket::bind(&config.socket).map_err(|err| JobError::permanent(err.to_string()))?;
    let runner = System::new();
    let (supervisor, socket) = runner.block_on(async move {
        let supervisor = start(config, pool, reloading, device);
        let served = match supervisor.send(GetWorkers).await {
            Ok(workers) => {
                workers
                    .stats
                    .do_send(stats::ConnectionState::Database(true));
                socket
                    .serve(workers.stats)
                    .map(|_| socket)
                    .map_err(|e| e.to_string())
            }
            Err(err) => Err(err.to_string()),
        };
        (supervisor, served)
    });
    let socket = socket.map_err(JobError::permanent)?;
    forward_signals(signals, supervisor)?;
    let code = runner
        .run_with_code()
        .map_err(|err| JobError::permanent(format!("the actor system failed: {err}")))?;
    drop(socket);
    Ok(code)
}

/// Takes over SIGTERM, SIGINT, SIGHUP and SIGUSR1 (so none of them can kill the process with
/// its default action while the actors start); nothing is lost: signals wait until forwarded.
/// Connects and migrates, waiting with backoff while the database is unreachable (a worker
/// started before its database keeps running instead of exiting); `None` when SIGTERM or SIGINT
/// comes first. Other signals while waiting are ignored. A permanent error (bad URL, a failed
/// migration) is returned.
fn wait_for_database(
    config: &Config,
    signals: &mut signal_hook::iterator::Signals,
) -> Result<Option<DbPool>, JobError> {
    use crate::error::{Classify, ErrorKind};
    let mut delay = Duration::from_millis(500);
    let mut announced = false;
    loop {
        let attempt = crate::db::connect(&config.database_url)
            .and_then(|pool| crate::db::run_migrations(&pool).map(|applied| (pool, applied)));
        match attempt {
            Ok((pool, applied)) => {
                if applied.is_empty() {
                    log::info!("🗄️  Database schema is up to date");
                } else {
                    log::info!("🗄️  Applied migrations: {}", applied.join(", "));
                }
                return Ok(Some(pool));
            }
            Err(err) if err.kind() == ErrorKind::Transient => {
                if announced {
                    log::debug!("Database still unreachable: {err}");
                } else {
                    log::error!("🔌 Database unreachable at start: {err}; waiting for it");
                    announced = true;
                }
            }
            Err(err) => return Err(err.into()),
        }
        let until = Instant::now() + delay;
        while Instant::now() < until {
            let stop = signals.pending().any(|signal| {
                signal == signal_hook::consts::SIGTERM || signal == signal_hook::consts::SIGINT
            });
            if stop {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

fn catch_signals() -> Result<signal_hook::iterator::Signals, JobError> {
    use signal_hook::consts::*;
    signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP, SIGUSR1])
        .map_err(|err| JobError::permanent(format!("cannot listen for signals: {err}")))
}

/// Delivers the caught signals to the Supervisor from a thread of their own.
fn forward_signals(
    mut signals: signal_hook::iterator::Signals,
    supervisor: Addr<Supervisor>,
) -> Result<(), JobError> {
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                supervisor.do_send(Signal(signal));
            }
        })
        .map_err(|err| JobError::permanent(format!("cannot start the signal thread: {err}")))?;
    Ok(())
}
