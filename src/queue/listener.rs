//! QueueListener: owns the Redis connection jobs are taken on. Takes a job only while the
//! pipeline is loaded and the Processor has room, and hands it over; a job it cannot hand over
//! (malformed, held by another worker, or one that keeps killing its workers) goes straight to
//! the Settler. A job stays in hand until the Settler says it has left the in-flight list. Keeps
//! this worker's heartbeat and session locks alive and requeues the jobs of dead workers.

use std::time::{Duration, Instant};

use actix::prelude::*;

use super::client::RedisQueue;
use super::link::Link;
use crate::error::JobError;
use crate::job::{self, Outcome, Process, Settle, Settled, Taken};
use crate::pipeline::PipelineState;
use crate::stats::reporter::{ConnectionState, JobReceived, QueueState, StatsReporter};
use crate::supervise::{guard, Handover, InjectPanic};

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
    /// Times a job may come back from a worker that died holding it before it is failed.
    pub max_redeliveries: u32,
}

/// What outlives a restart of the listener: the jobs in hand and whether intake is open.
pub struct Intake {
    /// Jobs taken and not yet settled: (raw payload, session id).
    in_hand: Vec<(String, Option<String>)>,
    pipeline: PipelineState,
    draining: bool,
    /// Set by a shutdown: intake never reopens.
    closed: bool,
    /// Whether the jobs an earlier process under this id left were requeued (once per process).
    recovered: bool,
    /// A take failed without an answer (timeout, lost connection): Redis may have moved a job
    /// into the in-flight list all the same, so the list is read again once Redis answers.
    take_unanswered: bool,
    /// The keys of a queue left by a reload whose in-flight list still has to be given back.
    leaving: Option<RedisQueue>,
    /// Only the Poll carrying the latest token runs, so one poll loop survives a restart.
    poll_token: u64,
}

impl Default for Intake {
    fn default() -> Intake {
        Intake {
            in_hand: Vec::new(),
            pipeline: PipelineState::Loading,
            draining: false,
            closed: false,
            recovered: false,
            take_unanswered: false,
            leaving: None,
            poll_token: 0,
        }
    }
}

pub struct QueueListener {
    queue: RedisQueue,
    settings: ListenerSettings,
    processor: Recipient<Process>,
    settler: Recipient<Settle>,
    stats: Addr<StatsReporter>,
    intake: Intake,
    handover: Handover<Intake>,
    /// Whether a Poll with the current token is on its way.
    polling: bool,
    link: Link,
    last_heartbeat: Option<Instant>,
    last_reap: Option<Instant>,
}

impl QueueListener {
    /// A listener; `handover` carries the jobs in hand to the listener built after a panic.
    pub fn new(
        queue: RedisQueue,
        settings: ListenerSettings,
        processor: Recipient<Process>,
        settler: Recipient<Settle>,
        stats: Addr<StatsReporter>,
        handover: Handover<Intake>,
    ) -> QueueListener {
        QueueListener {
            queue,
            settings,
            processor,
            settler,
            stats,
            intake: handover.take().unwrap_or_default(),
            handover,
            polling: false,
            link: Link::default(),
            last_heartbeat: None,
            last_reap: None,
        }
    }
}

impl Actor for QueueListener {
    type Context = SyncContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.try_connect() {
            self.recover_once();
            self.keep_alive();
        }
        if self.intake.recovered {
            log::info!("👂 Listening for jobs on {}...", self.queue.keys.processing);
        }
        self.schedule_poll(ctx);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        // After a panic the SyncArbiter builds a new listener: it continues with these jobs.
        self.handover.put(std::mem::take(&mut self.intake));
        log::debug!("QueueListener stopped");
    }
}

// ---- messages ----

/// Take the next job if there is room (the listener sends this to itself in a loop).
#[derive(Message)]
#[rtype(result = "()")]
struct Poll {
    token: u64,
}

/// Periodic upkeep: heartbeat, session locks, reaping dead workers, queue depths.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Tick;

/// Stop taking jobs (first step of a shutdown or reload). Answers the number of jobs in hand.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct StopIntake {
    /// A shutdown closes intake for good: a reload finishing later must not reopen it.
    pub for_good: bool,
}

/// Resume taking jobs after a reload, on a new connection (the old queue's in-flight list is
/// given back first when the names changed).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ResumeIntake {
    pub queue: RedisQueue,
    pub settings: ListenerSettings,
}

/// How many jobs are in hand (taken and not yet settled).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct InHand;

/// Final step of a shutdown: jobs still in hand (the drain timed out) go back to the queue, and
/// the heartbeat is removed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

// ---- handlers ----

impl Handler<Poll> for QueueListener {
    type Result = ();

    fn handle(&mut self, poll: Poll, ctx: &mut Self::Context) {
        if poll.token != self.intake.poll_token {
            return; // a Poll sent before a restart; the current loop carries on
        }
        self.polling = false;
        let me = ctx.address();
        guard("QueueListener", ctx, || self.poll(&me));
        self.schedule_poll(ctx);
    }
}

impl Handler<Tick> for QueueListener {
    type Result = ();

    fn handle(&mut self, _: Tick, ctx: &mut Self::Context) {
        guard("QueueListener", ctx, || {
            if self.link.connected || self.try_connect() {
                self.recover_once();
                self.keep_alive();
            }
        });
        self.schedule_poll(ctx);
    }
}

impl Handler<Settled> for QueueListener {
    type Result = ();

    fn handle(&mut self, settled: Settled, ctx: &mut Self::Context) {
        if let Some(at) = self
            .intake
            .in_hand
            .iter()
            .position(|(raw, _)| *raw == settled.raw)
        {
            self.intake.in_hand.remove(at);
        }
        guard("QueueListener", ctx, || self.report_state());
        self.schedule_poll(ctx);
    }
}

impl Handler<PipelineState> for QueueListener {
    type Result = ();

    fn handle(&mut self, state: PipelineState, ctx: &mut Self::Context) {
        match &state {
            PipelineState::Loaded { .. } if !self.intake.pipeline.is_loaded() => {
                log::info!("▶️  Pipeline loaded: taking jobs");
            }
            PipelineState::NotLoaded { reason } => log::error!(
                "⛔ Not taking jobs: the pipeline is not loaded ({reason}). Jobs stay queued; \
                 `lahstats-worker check` says what is wrong; fix it and send SIGHUP"
            ),
            _ => {}
        }
        self.intake.pipeline = state;
        self.schedule_poll(ctx);
    }
}

impl Handler<StopIntake> for QueueListener {
    type Result = usize;

    fn handle(&mut self, stop: StopIntake, _: &mut Self::Context) -> usize {
        self.intake.closed |= stop.for_good;
        if !self.intake.draining {
            log::info!(
                "⏸️  No longer taking jobs ({} in hand)",
                self.intake.in_hand.len()
            );
        }
        self.intake.draining = true;
        self.intake.in_hand.len()
    }
}

impl Handler<ResumeIntake> for QueueListener {
    type Result = ();

    fn handle(&mut self, resume: ResumeIntake, ctx: &mut Self::Context) {
        if self.intake.closed {
            return;
        }
        guard("QueueListener", ctx, || self.switch_queue(resume));
        self.schedule_poll(ctx);
    }
}

impl Handler<InHand> for QueueListener {
    type Result = usize;

    fn handle(&mut self, _: InHand, _: &mut Self::Context) -> usize {
        self.intake.in_hand.len()
    }
}

impl Handler<Shutdown> for QueueListener {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        self.intake.draining = true;
        self.intake.closed = true;
        guard("QueueListener", ctx, || self.shut_down());
    }
}

impl Handler<InjectPanic> for QueueListener {
    type Result = ();

    fn handle(&mut self, _: InjectPanic, ctx: &mut Self::Context) {
        guard("QueueListener", ctx, || {
            panic!("injected panic (InjectPanic)")
        });
    }
}

// ---- taking jobs ----

impl QueueListener {
    fn may_take(&self) -> bool {
        self.intake.pipeline.is_loaded()
            && !self.intake.draining
            && self.intake.in_hand.len() < self.settings.capacity
    }

    fn schedule_poll(&mut self, ctx: &mut SyncContext<Self>) {
        if !self.polling && self.may_take() {
            self.polling = true;
            self.intake.poll_token = self.intake.poll_token.wrapping_add(1);
            ctx.address().do_send(Poll {
                token: self.intake.poll_token,
            });
        }
    }

    fn poll(&mut self, me: &Addr<Self>) {
        if !self.may_take() {
            return;
        }
        if !self.link.connected && !self.try_connect() {
            // Wait out part of the backoff here; the mailbox stays responsive between polls.
            std::thread::sleep(self.link.wait().min(TAKE_WAIT));
            return;
        }
        self.recover_once();
        if self.intake.take_unanswered {
            self.adopt_unanswered(me);
        }
        match self.queue.take(TAKE_WAIT) {
            Ok(Some(raw)) => self.dispatch(raw, me),
            Ok(None) => {}
            Err(err) => {
                self.intake.take_unanswered |= err.is_connection_lost();
                self.connection_lost(&err);
            }
        }
    }

    /// After a take that got no answer: jobs in this worker's in-flight list that it does not
    /// hold were moved there by that take (only a take puts a job there, and a settled job
    /// leaves the list before it leaves `in_hand`), so they are dispatched as if just taken.
    /// Without this such a job waits, its session "processing", until this worker restarts.
    /// (A job whose settling the Settler gave up on after repeated panics also stays in the
    /// list; it is taken up again here, as it would be after a restart.)
    fn adopt_unanswered(&mut self, me: &Addr<Self>) {
        let entries = match self.queue.inflight_entries() {
            Ok(entries) => entries,
            Err(err) => return self.connection_lost(&err),
        };
        self.intake.take_unanswered = false;
        let mut held: Vec<&str> = self
            .intake
            .in_hand
            .iter()
            .map(|(raw, _)| raw.as_str())
            .collect();
        let mut orphans = Vec::new();
        for raw in entries {
            match held.iter().position(|h| *h == raw) {
                Some(at) => {
                    held.swap_remove(at);
                }
                None => orphans.push(raw),
            }
        }
        for raw in orphans {
            log::warn!("♻️  A job reached this worker's in-flight list without the answer to its take; processing it now");
            self.dispatch(raw, me);
        }
    }

    /// A freshly taken job goes to the Processor, or straight to the Settler when it cannot run.
    fn dispatch(&mut self, raw: String, me: &Addr<Self>) {
        self.stats.do_send(JobReceived);
        let (job, ends_now) = self.examine(raw);
        let session = job.session_id().map(|id| id.to_string());
        self.intake.in_hand.push((job.raw.clone(), session));
        self.report_state();
        let reply_to = me.clone().recipient();
        match ends_now {
            Some(outcome) => self.settler.do_send(Settle {
                job,
                outcome,
                reply_to,
            }),
            None => {
                log_received(&job, self.settings.max_redeliveries);
                self.processor.do_send(Process { job, reply_to });
            }
        }
    }

    /// Reads a job just taken: `None` when it may run, else the outcome it ends with at once —
    /// malformed, taken back from dying workers too often, or held by another worker.
    fn examine(&mut self, raw: String) -> (Taken, Option<Outcome>) {
        let payload = match job::parse(&raw, self.settings.max_payload_bytes) {
            Ok(payload) => payload,
            Err(error) => {
                log::error!("❌ Rejected a malformed job: {error}");
                let job = Taken {
                    raw,
                    payload: None,
                    redeliveries: 0,
                };
                return (job, Some(Outcome::Failed(error)));
            }
        };
        let redeliveries = self.queue.redeliveries(&raw).unwrap_or_else(|err| {
            self.connection_lost(&err);
            0
        });
        let session = payload.session_id.to_string();
        let job = Taken {
            raw,
            payload: Some(payload),
            redeliveries,
        };
        if redeliveries > self.settings.max_redeliveries {
            let error = JobError::permanent(format!(
                "the worker died while processing this job {redeliveries} times (killed, out of \
                 memory, or crashed); it is not delivered again (LAHSTATS_MAX_REDELIVERIES={})",
                self.settings.max_redeliveries
            ));
            log::error!("☠️  Session {session}: {error}");
            return (job, Some(Outcome::Failed(error)));
        }
        match self.queue.lock_session(&session, self.lock_ttl()) {
            Ok(true) => (job, None),
            Ok(false) => {
                log::warn!("👯 Session {session} is already being processed by another worker; dropping this duplicate job");
                (job, Some(Outcome::HeldElsewhere))
            }
            Err(err) => {
                // Can't tell whether someone else holds it; the row-locked check in the
                // database keeps a finished session safe, so run it rather than strand it.
                log::warn!("Could not lock session {session} ({err}); processing it anyway");
                self.connection_lost(&err);
                (job, None)
            }
        }
    }

    /// Requeues what an earlier process under this worker id left in its in-flight list (it died
    /// holding those jobs), once per process and before anything is taken.
    fn recover_once(&mut self) {
        if self.intake.recovered {
            return;
        }
        match self.queue.recover_own_inflight() {
            Ok(0) => {}
            Ok(n) => log::warn!("♻️  Requeued {n} job(s) this worker id held before a restart"),
            Err(err) => return self.connection_lost(&err),
        }
        self.intake.recovered = true;
        log::info!("👂 Listening for jobs on {}...", self.queue.keys.processing);
    }

    /// After a reload: give back what the old queue's in-flight list still holds, then take
    /// jobs from the new one.
    fn switch_queue(&mut self, resume: ResumeIntake) {
        let mut old = std::mem::replace(&mut self.queue, resume.queue);
        if old.keys.inflight() != self.queue.keys.inflight() {
            if old.keys.heartbeat() != self.queue.keys.heartbeat() {
                if let Err(err) = old.clear_heartbeat() {
                    log::debug!("Could not remove the old heartbeat: {err}");
                }
            }
            self.intake.leaving = Some(old);
        }
        self.settings = resume.settings;
        self.link.connected = false;
        self.intake.draining = false;
        self.last_heartbeat = None;
        if self.try_connect() {
            self.keep_alive();
        }
        log::info!("▶️  Taking jobs again from {}", self.queue.keys.processing);
    }

    fn shut_down(&mut self) {
        if !self.intake.in_hand.is_empty() {
            match self.queue.give_back_inflight() {
                Ok(n) => log::warn!(
                    "⚠️  {} job(s) still in hand: {n} went back to {} and will be taken again",
                    self.intake.in_hand.len(),
                    self.queue.keys.processing
                ),
                Err(err) => log::warn!(
                    "⚠️  {} job(s) still in hand stay in {} ({err}); they are requeued once this \
                     worker's heartbeat expires",
                    self.intake.in_hand.len(),
                    self.queue.keys.inflight()
                ),
            }
        }
        if let Err(err) = self.queue.clear_heartbeat() {
            log::warn!("Could not remove this worker's heartbeat: {err}");
        }
        log::info!("QueueListener stopped");
    }
}

/// "Job received", with the delivery when the job comes back from a worker that died.
fn log_received(job: &Taken, max_redeliveries: u32) {
    let (session, attempt) = (job.session_text(), job.attempts());
    if job.redeliveries > 0 {
        log::warn!(
            "📥 Job received: session {session} (attempt {attempt}, delivery {} — the worker \
             holding it died {} time(s); at most {max_redeliveries} redeliveries)",
            job.redeliveries + 1,
            job.redeliveries
        );
    } else {
        log::info!("📥 Job received: session {session} (attempt {attempt})");
    }
    log::debug!("Job payload: {}", job.raw);
}

// ---- upkeep ----

impl QueueListener {
    /// Heartbeat, session locks, reaper, a left queue's in-flight list and depths, each when due.
    fn keep_alive(&mut self) {
        let ttl = self.settings.heartbeat_ttl;
        let due =
            |last: Option<Instant>, every: Duration| last.is_none_or(|t| t.elapsed() >= every);
        if due(self.last_heartbeat, ttl / 3) {
            let sessions: Vec<String> = self
                .intake
                .in_hand
                .iter()
                .filter_map(|(_, s)| s.clone())
                .collect();
            let lock_ttl = self.lock_ttl();
            let beat = self.queue.heartbeat(ttl).and_then(|_| {
                sessions
                    .iter()
                    .try_for_each(|s| self.queue.refresh_lock(s, lock_ttl))
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
        self.give_back_left_queue();
    }

    fn give_back_left_queue(&mut self) {
        let Some(old) = self.intake.leaving.as_mut() else {
            return;
        };
        match old.give_back_inflight() {
            Ok(n) => {
                if n > 0 {
                    log::warn!(
                        "♻️  Gave back {n} job(s) left in {} to {} before taking from {}",
                        old.keys.inflight(),
                        old.keys.processing,
                        self.queue.keys.processing
                    );
                }
                self.intake.leaving = None;
            }
            Err(err) => log::debug!("The old queue's in-flight list waits for Redis: {err}"),
        }
    }

    fn report_state(&mut self) {
        let depths = if self.link.connected {
            self.queue.depths().ok()
        } else {
            None
        };
        self.stats.do_send(QueueState {
            depths,
            in_flight: self.intake.in_hand.len() as u64,
        });
    }

    /// A session lock outlives a missed heartbeat or two, not a dead worker for long.
    fn lock_ttl(&self) -> Duration {
        self.settings.heartbeat_ttl * 2
    }

    fn try_connect(&mut self) -> bool {
        if !self.link.may_try() {
            return false;
        }
        match self
            .queue
            .ensure_connected()
            .and_then(|_| self.queue.ping())
        {
            Ok(()) => {
                if !self.link.connected && self.last_heartbeat.is_some() {
                    // Back after an outage: every worker's heartbeat may have expired meanwhile.
                    // Reap only after one TTL, by when the live ones have beaten again (their
                    // reconnect backoff is capped below a third of the TTL).
                    self.last_reap = Some(Instant::now());
                }
                if self.link.up(self.queue.url()) {
                    self.stats.do_send(ConnectionState::Redis(true));
                }
                true
            }
            Err(err) => {
                self.connection_lost(&err);
                false
            }
        }
    }

    /// A lost connection backs off (under a third of the heartbeat TTL); a refused command is
    /// logged.
    fn connection_lost(&mut self, err: &super::QueueError) {
        if !err.is_connection_lost() {
            return log::error!("Redis refused a command: {err}");
        }
        let cap = MAX_RECONNECT_DELAY.min(self.settings.heartbeat_ttl / 3);
        if self.link.down(err, cap) {
            self.stats.do_send(ConnectionState::Redis(false));
        }
    }
}
