//! The daemon: starts the actors under a Supervisor in one actix System, forwards signals to
//! it, and carries a shutdown down the tree: stop taking jobs → let the job in hand finish and
//! be settled (bounded by the drain timeout) → record what is pending → give back what is still
//! in hand → final stats → exit 0.
//!
//! A job travels one way: QueueListener → Processor → Settler, each wired to the next with a
//! `Recipient` (the messages live in `crate::job`), so none of `queue`, `processor`, `settle`
//! imports another; only this module knows them all.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::config::Config;
use crate::db::DbPool;
use crate::error::JobError;
use crate::pipeline::{PipelineFactory, PipelineState};
use crate::processor::{self, Processor, ProcessorSettings};
use crate::queue::listener::{self, ListenerSettings, QueueListener};
use crate::queue::{Keys, RedisQueue};
use crate::settle::{self, RetryPolicy, Settler};
use crate::stats::reporter::{self as stats, StatsReporter};
use crate::stats::socket::StatsSocket;
use crate::supervise::{guard_async, Handover, InjectPanic};
use crate::watcher::{ChunkWatcher, StopWatching};

/// Jobs one Processor thread holds at once.
const PROCESSOR_CAPACITY: usize = 1;

// ---- state ----

/// Addresses of the running actors.
#[derive(Clone)]
pub struct Workers {
    pub listener: Addr<QueueListener>,
    pub processor: Addr<Processor>,
    pub settler: Addr<Settler>,
    pub stats: Addr<StatsReporter>,
    /// Asks the Processor to prepare recording sessions; `None` with `--prepare-interval 0s`.
    pub watcher: Option<Addr<ChunkWatcher>>,
}

/// How to reload: read the configuration again, and build a pipeline for it.
#[derive(Clone)]
pub struct Reloading {
    /// Reads `.env`, the environment and the original flags again, into a new value.
    pub config: Arc<dyn Fn() -> Result<Config, String> + Send + Sync>,
    /// A pipeline factory for a configuration (the models it names, on its device).
    pub pipeline: Arc<dyn Fn(&Config) -> PipelineFactory + Send + Sync>,
}

pub struct Supervisor {
    config: Config,
    workers: Workers,
    reloading: Reloading,
    /// What the sync actors' factories build from after a restart.
    shared: SharedState,
    /// The Processor's pipeline, as it last said (forwarded to the QueueListener).
    pipeline: PipelineState,
    /// Set once a shutdown has begun.
    draining_since: Option<Instant>,
    reload_in_progress: bool,
}

/// The values a SyncArbiter factory reads each time it rebuilds its actor after a panic (a
/// reload replaces them).
#[derive(Clone)]
struct SharedState {
    config: Shared<Config>,
    factory: Shared<PipelineFactory>,
    pool: Shared<DbPool>,
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
        // Upkeep for the sync actors: heartbeat/reaper (each acts only when due), pending job
        // ends and retry promotion, which a tenth of a second keeps close to the due time.
        let tick = Duration::from_millis(100);
        ctx.run_interval(tick, |act, _| {
            act.workers.listener.do_send(listener::Tick);
            act.workers.settler.do_send(settle::Tick);
        });
    }
}

impl Supervised for Supervisor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        log::warn!("Supervisor restarted; the actors it supervises kept running");
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
                self.begin_shutdown();
            }
            SIGHUP => {
                log::info!("📥 Received SIGHUP, reloading the configuration...");
                let me = ctx.address();
                guard_async("Supervisor", ctx, || self.begin_reload(me));
            }
            SIGUSR1 => self.workers.stats.do_send(stats::LogStats),
            other => log::debug!("Ignoring signal {other}"),
        }
    }
}

impl Handler<Stop> for Supervisor {
    type Result = ();

    fn handle(&mut self, _: Stop, _: &mut Context<Self>) {
        if self.draining_since.is_none() {
            self.begin_shutdown();
        }
    }
}

impl Handler<PipelineState> for Supervisor {
    type Result = ();

    fn handle(&mut self, state: PipelineState, _: &mut Context<Self>) {
        self.pipeline = state.clone();
        self.workers.listener.do_send(state);
    }
}

impl Handler<Reloaded> for Supervisor {
    type Result = ();

    fn handle(&mut self, Reloaded(config): Reloaded, _: &mut Context<Self>) {
        self.config = config;
        self.reload_in_progress = false;
        log::info!(
            "🔄 Reloaded: queue {}, database {}, pipeline {}",
            self.config.processing_queue(),
            crate::config::mask_url(&self.config.database_url),
            self.pipeline
        );
    }
}

impl Handler<GetWorkers> for Supervisor {
    type Result = MessageResult<GetWorkers>;

    fn handle(&mut self, _: GetWorkers, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.workers.clone())
    }
}

impl Handler<InjectPanic> for Supervisor {
    type Result = ();

    fn handle(&mut self, _: InjectPanic, ctx: &mut Context<Self>) {
        guard_async("Supervisor", ctx, || panic!("injected panic (InjectPanic)"));
    }
}

// ---- shutdown and reload ----

impl Supervisor {
    fn begin_shutdown(&mut self) {
        self.draining_since = Some(Instant::now());
        let workers = self.workers.clone();
        let drain_timeout = self.config.drain_timeout;
        if let Some(watcher) = &workers.watcher {
            watcher.do_send(StopWatching);
        }
        actix::spawn(async move {
            drain(&workers, drain_timeout).await;
            // Job ends still pending get a last chance; whatever is still in hand then (the
            // drain timed out) goes back to the queue.
            let _ = workers.settler.send(settle::Shutdown).await;
            let _ = workers.listener.send(listener::Shutdown).await;
            log::info!("Processor stopped");
            let _ = workers.stats.send(stats::FinalSummary).await;
            System::current().stop_with_code(0);
        });
    }

    /// Reload: stop intake and wait until every job in hand is settled, then switch to the new
    /// database, Redis keys and settings (giving back what the old queue's in-flight list still
    /// holds), reload the models if their files or the choice of model changed — or if they did
    /// not load before — and take jobs again.
    fn begin_reload(&mut self, supervisor: Addr<Supervisor>) {
        if self.draining_since.is_some() || self.reload_in_progress {
            return log::warn!("A shutdown or reload is already under way; SIGHUP ignored");
        }
        let new = match (self.reloading.config)() {
            Ok(config) => config,
            Err(err) => return log::error!("Reload refused, configuration unchanged: {err}"),
        };
        self.reload_in_progress = true;
        let factory = (pipeline_signature(&new) != pipeline_signature(&self.config)).then(|| {
            let factory = (self.reloading.pipeline)(&new);
            write(&self.shared.factory, factory.clone());
            factory
        });
        let db_changed = new.database_url != self.config.database_url;
        let (workers, shared) = (self.workers.clone(), self.shared.clone());
        actix::spawn(async move {
            wait_until_settled(&workers).await;
            let pool = if db_changed {
                connect_new_database(&new, &shared)
            } else {
                None
            };
            write(&shared.config, new.clone());
            apply(&workers, &shared, &new, factory, pool).await;
            supervisor.do_send(Reloaded(new));
        });
    }
}

/// Stops intake for a reload and waits until every job in hand is settled.
async fn wait_until_settled(workers: &Workers) {
    let mut in_hand = workers
        .listener
        .send(listener::StopIntake { for_good: false })
        .await
        .unwrap_or(0);
    while in_hand > 0 {
        actix_rt::time::sleep(Duration::from_millis(100)).await;
        in_hand = workers.listener.send(listener::InHand).await.unwrap_or(0);
    }
}

/// The reloaded configuration's database, connected and migrated; `None` (the old one stays)
/// when that fails.
fn connect_new_database(new: &Config, shared: &SharedState) -> Option<DbPool> {
    match crate::db::connect(&new.database_url)
        .and_then(|pool| crate::db::run_migrations(&pool).map(|_| pool))
    {
        Ok(pool) => {
            write(&shared.pool, pool.clone());
            Some(pool)
        }
        Err(err) => {
            log::error!("Keeping the old database: the new one failed: {err}");
            None
        }
    }
}

/// Hands the new configuration to the Settler, the Processor (which loads the models again
/// when `factory` is new or they had not loaded) and last the QueueListener, which takes jobs
/// again.
async fn apply(
    workers: &Workers,
    shared: &SharedState,
    new: &Config,
    factory: Option<PipelineFactory>,
    pool: Option<DbPool>,
) {
    crate::tls::set_redis_ca_file(new.redis_ca_cert.clone());
    let keys = Keys::from_config(new);
    let _ = workers
        .settler
        .send(settle::Reconfigure {
            queue: RedisQueue::new(&new.redis_url, keys.clone()),
            pool: read(&shared.pool),
            policy: retry_policy(new),
        })
        .await;
    let _ = workers
        .processor
        .send(processor::Reload {
            factory,
            pool,
            settings: processor_settings(new),
        })
        .await;
    let _ = workers
        .listener
        .send(listener::ResumeIntake {
            queue: RedisQueue::new(&new.redis_url, keys),
            settings: listener_settings(new),
        })
        .await;
}

/// What decides whether the pipeline must be built again: where the models are, which Whisper,
/// the device, the manifest's size and time (scripts/prepare-models rewrites it), and the object
/// store the pipeline reads chunks from and publishes processed files to. Compared in memory
/// only: it holds the storage key and is never logged.
fn pipeline_signature(config: &Config) -> String {
    let manifest = std::fs::metadata(config.models_dir.join("manifest.json"))
        .ok()
        .map(|m| format!("{}:{:?}", m.len(), m.modified().ok()));
    let store = (
        &config.storage_dir,
        &config.storage_url,
        &config.supabase_url,
        &config.supabase_storage_url,
        config
            .supabase_service_role_key
            .as_ref()
            .map(|key| key.expose()),
        &config.storage_bucket,
        &config.public_url_base,
    );
    format!(
        "{}|{}|{}|{}|{manifest:?}|{store:?}",
        config.models_dir.display(),
        config.whisper_model,
        config.whisper_projection,
        config.device
    )
}

/// Waits until every job in hand is finished and settled, or the drain timeout has passed.
async fn drain(workers: &Workers, timeout: Duration) {
    let deadline = Instant::now().checked_add(timeout);
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
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            log::warn!("⚠️  Drain timeout reached with {in_hand} job(s) in hand");
            return;
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
        in_hand = workers.listener.send(listener::InHand).await.unwrap_or(0);
    }
}

// ---- start ----

/// Starts the actors under a Supervisor (itself restarted after a panic); call inside a running
/// actix System.
pub fn start(
    config: Config,
    pool: DbPool,
    reloading: Reloading,
    device: String,
) -> Addr<Supervisor> {
    actix::Supervisor::start(move |ctx: &mut Context<Supervisor>| {
        let shared = SharedState {
            factory: Arc::new(Mutex::new((reloading.pipeline)(&config))),
            pool: Arc::new(Mutex::new(pool)),
            config: Arc::new(Mutex::new(config.clone())),
        };
        let workers = start_workers(&shared, device, ctx.address().recipient());
        // The pool it was given is connected and migrated.
        workers
            .stats
            .do_send(stats::ConnectionState::Database(true));
        Supervisor {
            config,
            workers,
            reloading,
            shared,
            pipeline: PipelineState::Loading,
            draining_since: None,
            reload_in_progress: false,
        }
    })
}

/// Starts the four workers, each rebuilt from `shared` after a panic. The Processor reports its
/// pipeline to `supervisor` (which passes it to the listener) and to the StatsReporter.
fn start_workers(
    shared: &SharedState,
    device: String,
    supervisor: Recipient<PipelineState>,
) -> Workers {
    let config = read(&shared.config);
    let stats = {
        let (worker, every) = (
            config.worker_id(),
            config.stats_interval.max(Duration::from_secs(1)),
        );
        actix::Supervisor::start(move |_| StatsReporter::new(worker, device, every))
    };
    let settler = {
        let (shared, stats, handover) = (shared.clone(), stats.clone(), Handover::default());
        SyncArbiter::start(1, move || {
            let config = read(&shared.config);
            Settler::new(
                RedisQueue::new(&config.redis_url, Keys::from_config(&config)),
                read(&shared.pool),
                retry_policy(&config),
                stats.clone(),
                handover.clone(),
            )
        })
    };
    let processor = {
        let (shared, settler) = (shared.clone(), settler.clone().recipient());
        let watchers = vec![supervisor, stats.clone().recipient()];
        SyncArbiter::start(1, move || {
            Processor::new(
                read(&shared.factory),
                read(&shared.pool),
                processor_settings(&read(&shared.config)),
                settler.clone(),
                watchers.clone(),
            )
        })
    };
    let listener = {
        let (shared, stats, handover) = (shared.clone(), stats.clone(), Handover::default());
        let (processor, settler) = (processor.clone().recipient(), settler.clone().recipient());
        SyncArbiter::start(1, move || {
            let config = read(&shared.config);
            QueueListener::new(
                RedisQueue::new(&config.redis_url, Keys::from_config(&config)),
                listener_settings(&config),
                processor.clone(),
                settler.clone(),
                stats.clone(),
                handover.clone(),
            )
        })
    };
    let watcher = (!config.prepare_interval.is_zero()).then(|| {
        let (processor, every) = (processor.clone().recipient(), config.prepare_interval);
        actix::Supervisor::start(move |_| ChunkWatcher::new(processor.clone(), every))
    });
    Workers {
        listener,
        processor,
        settler,
        stats,
        watcher,
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
        base_delay: config.retry_base_delay,
    }
}

fn listener_settings(config: &Config) -> ListenerSettings {
    ListenerSettings {
        capacity: PROCESSOR_CAPACITY,
        heartbeat_ttl: config.heartbeat_ttl,
        max_payload_bytes: config.max_payload_bytes,
        max_redeliveries: config.max_redeliveries,
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
            Ok(workers) => socket
                .serve(workers.stats)
                .map(|_| socket)
                .map_err(|e| e.to_string()),
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
