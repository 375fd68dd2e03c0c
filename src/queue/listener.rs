//! QueueListener: owns the Redis connection jobs are taken on. Takes a job only when the
//! Processor has room, hands it over, and acks it once its outcome is recorded. Keeps this
//! worker's heartbeat and session locks alive and requeues the jobs of dead workers.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::client::RedisQueue;
use super::retry::{HandleFailure, RetryScheduler};
use crate::error::JobError;
use crate::job::{self, JobPayload};
use crate::processor::{ProcessJob, Processor};
use crate::stats::reporter::{ConnectionState, JobEnded, JobReceived, QueueState, StatsReporter};
use crate::stats::JobSummary;

/// How long one BLMOVE waits for a job; short so a shutdown is noticed promptly.
const TAKE_WAIT: Duration = Duration::from_secs(1);
/// Longest pause between reconnection attempts while Redis is down (and at most a third of the
/// heartbeat TTL, so every live worker is back and beating before anyone reaps).
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(10);

// ---- state ----

/// Limits and timings the listener works to.
#[derive(Debug, Clone)]
pub struct ListenerSettings {
    /// Jobs the Processor can hold at once.
    pub capacity: usize,
    pub heartbeat_ttl: Duration,
    pub max_payload_bytes: usize,
}

pub struct QueueListener {
    queue: RedisQueue,
    settings: ListenerSettings,
    processor: Addr<Processor>,
    retry: Addr<RetryScheduler>,
    stats: Addr<StatsReporter>,
    /// Jobs handed to the Processor: raw payload → session id.
    in_hand: HashMap<String, String>,
    /// Outcomes recorded while Redis was unreachable, acked once it is back.
    pending_acks: Vec<(String, Option<String>)>,
    /// Whether a Poll message is on its way (so only one loop runs).
    polling: bool,
    draining: bool,
    /// Set by a shutdown: intake never reopens.
    closed: bool,
    connected: bool,
    /// Whether the current outage has been logged (once per outage, not once per attempt).
    announced_down: bool,
    reconnect_delay: Duration,
    next_reconnect: Instant,
    last_heartbeat: Option<Instant>,
    last_reap: Option<Instant>,
}

impl QueueListener {
    pub fn new(
        queue: RedisQueue,
        settings: ListenerSettings,
        processor: Addr<Processor>,
        retry: Addr<RetryScheduler>,
        stats: Addr<StatsReporter>,
    ) -> QueueListener {
        QueueListener {
            queue,
            settings,
            processor,
            retry,
            stats,
            in_hand: HashMap::new(),
            pending_acks: Vec::new(),
            polling: false,
            draining: false,
            closed: false,
            connected: false,
            announced_down: false,
            reconnect_delay: Duration::from_millis(250),
            next_reconnect: Instant::now(),
            last_heartbeat: None,
            last_reap: None,
        }
    }
}

impl Actor for QueueListener {
    type Context = SyncContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.try_connect() {
            match self.queue.recover_own_inflight() {
                Ok(0) => {}
                Ok(n) => log::warn!("♻️  Requeued {n} job(s) this worker id held before a restart"),
                Err(err) => self.connection_lost(&err),
            }
            self.keep_alive();
        }
        log::info!("👂 Listening for jobs on {}...", self.queue.keys.processing);
        self.schedule_poll(ctx);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        log::debug!("QueueListener stopped");
    }
}

// ---- messages ----

/// Take the next job if there is room (the listener sends this to itself in a loop).
#[derive(Message)]
#[rtype(result = "()")]
struct Poll;

/// Periodic upkeep: heartbeat, session locks, reaping dead workers, queue depths.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Tick;

/// The Processor finished a job (either way).
#[derive(Message)]
#[rtype(result = "()")]
pub struct JobDone {
    pub raw: String,
    pub payload: JobPayload,
    pub outcome: Result<JobSummary, JobError>,
}

/// Stop taking jobs (first step of a shutdown or reload). Answers the number of jobs in hand.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct StopIntake {
    /// A shutdown closes intake for good: a reload finishing later must not reopen it.
    pub for_good: bool,
}

/// Resume taking jobs after a reload, on a new connection.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ResumeIntake {
    pub queue: RedisQueue,
    pub settings: ListenerSettings,
}

/// How many jobs are in hand.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct InHand;

/// Final step of a shutdown. With nothing in hand the heartbeat is removed; with a job still in
/// hand (drain timed out) the heartbeat is removed too, so the job is requeued at once.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

// ---- handlers ----

impl Handler<Poll> for QueueListener {
    type Result = ();

    fn handle(&mut self, _: Poll, ctx: &mut Self::Context) {
        self.polling = false;
        if self.draining || self.in_hand.len() >= self.settings.capacity {
            return;
        }
        if !self.connected && !self.try_connect() {
            // Wait out part of the backoff here; the mailbox stays responsive between polls.
            let wait = self
                .next_reconnect
                .saturating_duration_since(Instant::now());
            std::thread::sleep(wait.min(TAKE_WAIT));
            return self.schedule_poll(ctx);
        }
        match self.queue.take(TAKE_WAIT) {
            Ok(Some(raw)) => self.dispatch(raw, ctx),
            Ok(None) => {}
            Err(err) => self.connection_lost(&err),
        }
        self.schedule_poll(ctx);
    }
}

impl Handler<Tick> for QueueListener {
    type Result = ();

    fn handle(&mut self, _: Tick, ctx: &mut Self::Context) {
        if self.connected || self.try_connect() {
            self.keep_alive();
        }
        self.schedule_poll(ctx);
    }
}

impl Handler<JobDone> for QueueListener {
    type Result = ();

    fn handle(&mut self, done: JobDone, ctx: &mut Self::Context) {
        let session = done.payload.session_id.to_string();
        self.in_hand.remove(&done.raw);
        match done.outcome {
            Ok(summary) => {
                self.ack_or_keep(done.raw, Some(session));
                self.stats.do_send(JobEnded::Succeeded(summary));
            }
            Err(error) => self.retry.do_send(HandleFailure {
                raw: done.raw,
                payload: Some(done.payload),
                error,
            }),
        }
        self.report_state();
        self.schedule_poll(ctx);
    }
}

impl Handler<StopIntake> for QueueListener {
    type Result = usize;

    fn handle(&mut self, stop: StopIntake, _: &mut Self::Context) -> usize {
        self.closed |= stop.for_good;
        if !self.draining {
            log::info!("⏸️  No longer taking jobs ({} in hand)", self.in_hand.len());
        }
        self.draining = true;
        self.in_hand.len()
    }
}

impl Handler<ResumeIntake> for QueueListener {
    type Result = ();

    fn handle(&mut self, resume: ResumeIntake, ctx: &mut Self::Context) {
        if self.closed {
            return;
        }
        self.queue = resume.queue;
        self.settings = resume.settings;
        self.connected = false;
        self.draining = false;
        if self.try_connect() {
            self.keep_alive();
        }
        log::info!("▶️  Taking jobs again from {}", self.queue.keys.processing);
        self.schedule_poll(ctx);
    }
}

impl Handler<InHand> for QueueListener {
    type Result = usize;

    fn handle(&mut self, _: InHand, _: &mut Self::Context) -> usize {
        self.in_hand.len()
    }
}

impl Handler<Shutdown> for QueueListener {
    type Result = ();

    fn handle(&mut self, _: Shutdown, _: &mut Self::Context) {
        self.draining = true;
        self.flush_pending_acks();
        if !self.in_hand.is_empty() {
            log::warn!(
                "⚠️  {} job(s) still in hand stay in {} and will be taken again",
                self.in_hand.len(),
                self.queue.keys.inflight()
            );
        }
        if let Err(err) = self.queue.clear_heartbeat() {
            log::warn!("Could not remove this worker's heartbeat: {err}");
        }
        log::info!("QueueListener stopped");
    }
}

// ---- helpers ----

impl QueueListener {
    fn schedule_poll(&mut self, ctx: &mut SyncContext<Self>) {
        if !self.polling && !self.draining && self.in_hand.len() < self.settings.capacity {
            self.polling = true;
            ctx.address().do_send(Poll);
        }
    }

    /// Hands a freshly taken job to the Processor, or settles it at once if it can't be run.
    fn dispatch(&mut self, raw: String, ctx: &mut SyncContext<Self>) {
        self.stats.do_send(JobReceived);
        let payload = match job::parse(&raw, self.settings.max_payload_bytes) {
            Ok(payload) => payload,
            Err(error) => {
                log::error!("❌ Rejected a malformed job: {error}");
                self.retry.do_send(HandleFailure {
                    raw,
                    payload: None,
                    error,
                });
                return;
            }
        };
        let session = payload.session_id.to_string();
        match self.queue.lock_session(&session, self.lock_ttl()) {
            Ok(true) => {}
            Ok(false) => {
                log::warn!("👯 Session {session} is already being processed by another worker; dropping this duplicate job");
                self.ack_or_keep(raw, None);
                self.stats.do_send(JobEnded::Duplicate);
                return;
            }
            Err(err) => {
                // Can't tell whether someone else holds it. Processing is idempotent, so run it
                // rather than strand the job in our in-flight list.
                log::warn!("Could not lock session {session} ({err}); processing it anyway");
                self.connection_lost(&err);
            }
        }
        log::info!(
            "📥 Job received: session {session} (attempt {})",
            payload.attempt + 1
        );
        log::debug!("Job payload: {raw}");
        self.in_hand.insert(raw.clone(), session);
        self.processor.do_send(ProcessJob {
            raw,
            payload,
            reply_to: ctx.address().recipient(),
        });
        self.report_state();
    }

    fn ack_or_keep(&mut self, raw: String, session: Option<String>) {
        self.pending_acks.push((raw, session));
        self.flush_pending_acks();
    }

    fn flush_pending_acks(&mut self) {
        while let Some((raw, session)) = self.pending_acks.pop() {
            if let Err(err) = self.queue.ack(&raw, session.as_deref()) {
                self.pending_acks.push((raw, session));
                self.connection_lost(&err);
                return;
            }
        }
    }

    /// Heartbeat, session locks, reaper and depths, each when due.
    fn keep_alive(&mut self) {
        let ttl = self.settings.heartbeat_ttl;
        let due =
            |last: Option<Instant>, every: Duration| last.is_none_or(|t| t.elapsed() >= every);
        if due(self.last_heartbeat, ttl / 3) {
            let sessions: Vec<String> = self.in_hand.values().cloned().collect();
            let beat = self.queue.heartbeat(ttl).and_then(|_| {
                sessions
                    .iter()
                    .try_for_each(|s| self.queue.refresh_lock(s, self.lock_ttl()))
            });
            match beat {
                Ok(()) => self.last_heartbeat = Some(Instant::now()),
                Err(err) => return self.connection_lost(&err),
            }
            self.report_state();
        }
        if due(self.last_reap, ttl) {
            match self.queue.reap_dead_workers() {
                Ok(_) => self.last_reap = Some(Instant::now()),
                Err(err) => return self.connection_lost(&err),
            }
        }
        self.flush_pending_acks();
    }

    fn report_state(&mut self) {
        let depths = if self.connected {
            self.queue.depths().ok()
        } else {
            None
        };
        self.stats.do_send(QueueState {
            depths,
            in_flight: self.in_hand.len() as u64,
        });
    }

    /// A session lock outlives a missed heartbeat or two, not a dead worker for long.
    fn lock_ttl(&self) -> Duration {
        self.settings.heartbeat_ttl * 2
    }

    fn try_connect(&mut self) -> bool {
        if Instant::now() < self.next_reconnect {
            return false;
        }
        match self
            .queue
            .ensure_connected()
            .and_then(|_| self.queue.ping())
        {
            Ok(()) => {
                if !self.connected && self.last_heartbeat.is_some() {
                    // Back after an outage: every worker's heartbeat may have expired meanwhile.
                    // Reap only after one TTL, by when the live ones have beaten again (their
                    // reconnect backoff is capped below a third of the TTL).
                    self.last_reap = Some(Instant::now());
                }
                if !self.connected {
                    self.announced_down = false;
                    log::info!(
                        "✅ Redis connection established ({})",
                        crate::config::mask_url(self.queue.url())
                    );
                    self.stats.do_send(ConnectionState::Redis(true));
                }
                self.connected = true;
                self.reconnect_delay = Duration::from_millis(250);
                true
            }
            Err(err) => {
                self.connection_lost(&err);
                false
            }
        }
    }

    /// Logs a lost connection once per outage and backs off before the next attempt.
    fn connection_lost(&mut self, err: &super::QueueError) {
        if !err.is_connection_lost() {
            log::error!("Redis refused a command: {err}");
            return;
        }
        if self.announced_down {
            log::debug!("Redis still unreachable: {err}");
        } else {
            log::error!("🔌 Lost the Redis connection: {err}; reconnecting with backoff");
            self.stats.do_send(ConnectionState::Redis(false));
            self.announced_down = true;
        }
        self.connected = false;
        self.next_reconnect = Instant::now() + self.reconnect_delay;
        self.reconnect_delay = (self.reconnect_delay * 2)
            .min(MAX_RECONNECT_DELAY)
            .min(self.settings.heartbeat_ttl / 3);
    }
}
