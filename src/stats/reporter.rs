//! StatsReporter: owns the counters. Every actor sends it events; it answers snapshots and logs
//! a line after each job, every few minutes while idle, and the summary block at shutdown. It
//! runs under `actix::Supervisor`: after a panic it is restarted with its counters.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::snapshot::{format_uptime, JobSummary, QueueDepths, StatsSnapshot};
use crate::pipeline::PipelineState;
use crate::supervise::{guard_async, InjectPanic};

// ---- state ----

pub struct StatsReporter {
    started: Instant,
    snapshot: StatsSnapshot,
    /// Real-time factors of successful jobs (for mean and p95).
    rtfs: Vec<f64>,
    /// Sum of seconds and count per stage.
    stage_totals: BTreeMap<String, (f64, u64)>,
    stage_order: Vec<String>,
    idle_interval: Duration,
    last_line: Instant,
}

impl StatsReporter {
    pub fn new(worker_id: String, device: String, idle_interval: Duration) -> StatsReporter {
        StatsReporter {
            started: Instant::now(),
            snapshot: StatsSnapshot {
                version: crate::version().to_string(),
                worker_id,
                device,
                pipeline: PipelineState::Loading.to_string(),
                ..StatsSnapshot::default()
            },
            rtfs: Vec::new(),
            stage_totals: BTreeMap::new(),
            stage_order: Vec::new(),
            idle_interval,
            last_line: Instant::now(),
        }
    }

    fn current(&self) -> StatsSnapshot {
        let mut snapshot = self.snapshot.clone();
        snapshot.uptime_seconds = self.started.elapsed().as_secs();
        let finished = snapshot.succeeded + snapshot.failed;
        snapshot.success_rate =
            (finished > 0).then(|| 100.0 * snapshot.succeeded as f64 / finished as f64);
        if !self.rtfs.is_empty() {
            snapshot.rtf_mean = Some(self.rtfs.iter().sum::<f64>() / self.rtfs.len() as f64);
            let mut sorted = self.rtfs.clone();
            sorted.sort_by(f64::total_cmp);
            let rank = ((sorted.len() as f64) * 0.95).ceil() as usize;
            snapshot.rtf_p95 = Some(sorted[rank.clamp(1, sorted.len()) - 1]);
        }
        snapshot.stage_seconds_mean = self
            .stage_order
            .iter()
            .filter_map(|stage| {
                let (total, count) = self.stage_totals.get(stage)?;
                Some((stage.clone(), total / *count as f64))
            })
            .collect();
        snapshot
    }

    fn log_line(&mut self) {
        self.last_line = Instant::now();
        log::info!("{}", self.current().one_line());
    }
}

impl Supervised for StatsReporter {
    fn restarting(&mut self, _: &mut Context<Self>) {
        log::warn!("StatsReporter restarted; its counters are kept");
    }
}

impl Actor for StatsReporter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // While idle, a line every few minutes shows the worker is alive and what it has done.
        let tick = self
            .idle_interval
            .min(Duration::from_secs(60))
            .max(Duration::from_millis(100));
        ctx.run_interval(tick, |act, _| {
            if act.last_line.elapsed() >= act.idle_interval {
                act.log_line();
            }
        });
    }
}

// ---- messages ----

/// A job was taken off the queue.
#[derive(Message)]
#[rtype(result = "()")]
pub struct JobReceived;

/// How a job taken off the queue ended (for this attempt).
#[derive(Message)]
#[rtype(result = "()")]
pub enum JobEnded {
    Succeeded(JobSummary),
    /// Failed; another attempt is scheduled.
    Retried,
    /// Failed for good.
    Failed,
    /// A duplicate job: the session was already finished or claimed, or another worker held
    /// it; acknowledged without running it.
    Duplicate,
}

/// A connection came or went.
#[derive(Message)]
#[rtype(result = "()")]
pub enum ConnectionState {
    Redis(bool),
    Database(bool),
}

/// The queue's sizes and this worker's jobs in hand.
#[derive(Message)]
#[rtype(result = "()")]
pub struct QueueState {
    pub depths: Option<QueueDepths>,
    pub in_flight: u64,
}

/// Ask for the current figures.
#[derive(Message)]
#[rtype(result = "StatsSnapshot")]
pub struct GetStats;

/// Log the one-line summary now (SIGUSR1).
#[derive(Message)]
#[rtype(result = "()")]
pub struct LogStats;

/// Log the summary block the original printed at shutdown.
#[derive(Message)]
#[rtype(result = "()")]
pub struct FinalSummary;

// ---- handlers ----

impl Handler<JobReceived> for StatsReporter {
    type Result = ();
    fn handle(&mut self, _: JobReceived, _: &mut Context<Self>) {
        self.snapshot.received += 1;
    }
}

impl Handler<JobEnded> for StatsReporter {
    type Result = ();
    fn handle(&mut self, ended: JobEnded, ctx: &mut Context<Self>) {
        guard_async("StatsReporter", ctx, || self.count(ended));
    }
}

impl Handler<PipelineState> for StatsReporter {
    type Result = ();
    fn handle(&mut self, state: PipelineState, _: &mut Context<Self>) {
        self.snapshot.pipeline = state.to_string();
    }
}

impl Handler<InjectPanic> for StatsReporter {
    type Result = ();
    fn handle(&mut self, _: InjectPanic, ctx: &mut Context<Self>) {
        guard_async("StatsReporter", ctx, || {
            panic!("injected panic (InjectPanic)")
        });
    }
}

impl StatsReporter {
    fn count(&mut self, ended: JobEnded) {
        match ended {
            JobEnded::Succeeded(summary) => {
                self.snapshot.succeeded += 1;
                self.snapshot.audio_seconds_processed += summary.audio_seconds;
                if let Some(rtf) = summary.real_time_factor() {
                    self.rtfs.push(rtf);
                }
                for (stage, seconds) in &summary.stage_seconds {
                    if !self.stage_order.contains(stage) {
                        self.stage_order.push(stage.clone());
                    }
                    let entry = self.stage_totals.entry(stage.clone()).or_insert((0.0, 0));
                    entry.0 += seconds;
                    entry.1 += 1;
                }
            }
            JobEnded::Retried => self.snapshot.retried += 1,
            JobEnded::Failed => self.snapshot.failed += 1,
            JobEnded::Duplicate => self.snapshot.duplicates += 1,
        }
        self.log_line();
    }
}

impl Handler<ConnectionState> for StatsReporter {
    type Result = ();
    fn handle(&mut self, state: ConnectionState, _: &mut Context<Self>) {
        match state {
            ConnectionState::Redis(up) => self.snapshot.redis_connected = up,
            ConnectionState::Database(up) => self.snapshot.database_connected = up,
        }
    }
}

impl Handler<QueueState> for StatsReporter {
    type Result = ();
    fn handle(&mut self, state: QueueState, _: &mut Context<Self>) {
        self.snapshot.in_flight = state.in_flight;
        if let Some(depths) = state.depths {
            self.snapshot.queue_processing = depths.processing;
            self.snapshot.queue_retry = depths.retry;
            self.snapshot.queue_failed = depths.failed;
        }
    }
}

impl Handler<GetStats> for StatsReporter {
    type Result = MessageResult<GetStats>;
    fn handle(&mut self, _: GetStats, ctx: &mut Context<Self>) -> Self::Result {
        let current = guard_async("StatsReporter", ctx, || self.current());
        MessageResult(current.unwrap_or_else(|| self.snapshot.clone()))
    }
}

impl Handler<LogStats> for StatsReporter {
    type Result = ();
    fn handle(&mut self, _: LogStats, ctx: &mut Context<Self>) {
        guard_async("StatsReporter", ctx, || self.log_line());
    }
}

impl Handler<FinalSummary> for StatsReporter {
    type Result = ();
    fn handle(&mut self, _: FinalSummary, ctx: &mut Context<Self>) {
        guard_async("StatsReporter", ctx, || self.final_summary());
    }
}

impl StatsReporter {
    fn final_summary(&mut self) {
        let s = self.current();
        let rule = "=".repeat(70);
        log::info!("{rule}");
        log::info!("🛑 Worker Shutdown Complete");
        log::info!("{rule}");
        log::info!("📊 Final Stats:");
        log::info!("   Total Jobs: {}", s.received);
        log::info!("   Succeeded: {}", s.succeeded);
        log::info!("   Failed: {}", s.failed);
        log::info!("   Retried: {}", s.retried);
        if let Some(rate) = s.success_rate {
            log::info!("   Success Rate: {rate:.1}%");
        }
        log::info!("   Audio Processed: {:.1}s", s.audio_seconds_processed);
        log::info!("   Uptime: {}", format_uptime(s.uptime_seconds));
        log::info!("{rule}");
    }
}
