//! Settler: the one owner of a job's end. Every job taken off the queue ends here, however it
//! ended: results to commit, an error to retry or to fail for good, a duplicate to acknowledge,
//! a job to give back. The outcome is recorded in the database *first* — retried with backoff
//! until it is written, the job staying in this worker's in-flight list (and in hand, so its
//! session lock stays alive) meanwhile — and only then is the job moved in Redis (ack, retry
//! set, failed list, back to the queue), on this actor's one connection. A worker killed between
//! the two steps leaves the job in flight; taken again, the row-locked check in
//! `db::queries::begin_attempt` finds the session finished and the duplicate is acknowledged.
//!
//! It also owns the retry set: due retries go back to the queue (every tick), so a worker that
//! dies while a retry waits loses nothing.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::db::queries::{self, Committed, Marked};
use crate::db::{DbError, DbPool};
use crate::error::{Classify, ErrorKind, JobError};
use crate::job::{Outcome, Settle, Settled};
use crate::queue::{FailureRecord, RedisQueue};
use crate::session::Stage;
use crate::stats::reporter::{ConnectionState, JobEnded, StatsReporter};
use crate::stats::JobSummary;
use crate::supervise::{guard, Handover, InjectPanic};

/// Most retries moved back to the queue in one tick.
const PROMOTE_BATCH: usize = 100;
/// Backoff between attempts to reach the database or Redis: from the first to the last.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Times settling one job may panic before the Settler stops trying (the job stays in flight).
const MAX_SETTLE_PANICS: u32 = 2;

// ---- state ----

/// Retries after ordinary errors: how many, and how long before each.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub base_delay: Duration,
}

impl RetryPolicy {
    /// Delay before retry number `retry` (1-based): base × 2^(retry−1), saturating.
    pub fn delay(&self, retry: u32) -> Duration {
        self.base_delay
            .saturating_mul(2u32.saturating_pow(retry.saturating_sub(1)))
    }
}

/// A job's end on its way: the database step first, then the Redis move.
#[derive(Debug)]
pub struct Pending {
    settle: Settle,
    /// Set once the database step is done: what to do in Redis, and what to report then.
    decided: Option<(RedisMove, Ending)>,
    /// Times settling it panicked.
    panics: u32,
}

/// The job's move in Redis.
#[derive(Debug, Clone)]
enum RedisMove {
    /// Out of the in-flight list; `forget` its redelivery count too.
    Ack { forget: bool },
    /// Into the retry set as `next`, due after `delay`.
    Retry { next: String, delay: Duration },
    /// Onto the failed list.
    Fail(Box<FailureRecord>),
    /// Back to the front of the queue, as taken.
    Release,
}

/// What is logged and counted once the job has left the in-flight list.
#[derive(Debug, Clone)]
enum Ending {
    Succeeded(Box<JobSummary>),
    Retried { attempt: u32, delay: Duration },
    Failed,
    Duplicate,
    Returned,
}

/// One resource's reachability, with backoff while it is down.
#[derive(Debug)]
struct Backoff {
    name: &'static str,
    down_since: Option<Instant>,
    next_try: Instant,
    delay: Duration,
}

impl Backoff {
    fn new(name: &'static str) -> Backoff {
        Backoff {
            name,
            down_since: None,
            next_try: Instant::now(),
            delay: FIRST_BACKOFF,
        }
    }

    fn may_try(&self) -> bool {
        Instant::now() >= self.next_try
    }

    /// Records a failure; true when this begins an outage (worth one log line at ERROR).
    fn failed(&mut self, err: &dyn std::fmt::Display) -> bool {
        let first = self.down_since.is_none();
        if first {
            log::error!(
                "🔌 Settling waits for {}: {err}; the job stays in flight and is retried",
                self.name
            );
            self.down_since = Some(Instant::now());
        } else {
            log::debug!("{} still unreachable: {err}", self.name);
        }
        self.next_try = Instant::now() + self.delay;
        self.delay = (self.delay * 2).min(MAX_BACKOFF);
        first
    }

    /// Records a success; true when this ends an outage.
    fn succeeded(&mut self) -> bool {
        self.delay = FIRST_BACKOFF;
        match self.down_since.take() {
            Some(since) => {
                log::info!(
                    "✅ {} reachable again after {:.1}s; settling resumes",
                    self.name,
                    since.elapsed().as_secs_f64()
                );
                true
            }
            None => false,
        }
    }

    fn reset(&mut self) {
        self.next_try = Instant::now();
    }
}

pub struct Settler {
    queue: RedisQueue,
    pool: DbPool,
    policy: RetryPolicy,
    stats: Addr<StatsReporter>,
    pending: VecDeque<Pending>,
    handover: Handover<VecDeque<Pending>>,
    /// Index in `pending` of the job being settled (so a panic is pinned on it).
    settling: Option<usize>,
    database: Backoff,
    redis: Backoff,
}

impl Settler {
    /// A Settler; `handover` carries the job ends still pending to the Settler built after a
    /// panic.
    pub fn new(
        queue: RedisQueue,
        pool: DbPool,
        policy: RetryPolicy,
        stats: Addr<StatsReporter>,
        handover: Handover<VecDeque<Pending>>,
    ) -> Settler {
        Settler {
            queue,
            pool,
            policy,
            stats,
            pending: handover.take().unwrap_or_default(),
            handover,
            settling: None,
            database: Backoff::new("the database"),
            redis: Backoff::new("Redis"),
        }
    }
}

impl Actor for Settler {
    type Context = SyncContext<Self>;

    fn stopped(&mut self, _: &mut Self::Context) {
        if let Some(at) = self.settling.take() {
            self.give_up_if_it_keeps_panicking(at);
        }
        self.handover.put(std::mem::take(&mut self.pending));
    }
}

// ---- messages ----

/// Promote due retries and try pending job ends again.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Tick;

/// New connection, pool and policy after a reload (sent once nothing is in hand).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reconfigure {
    pub queue: RedisQueue,
    pub pool: DbPool,
    pub policy: RetryPolicy,
}

/// Record what can be recorded, then stop. Answers how many job ends are still pending.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Shutdown;

// ---- handlers ----

impl Handler<Settle> for Settler {
    type Result = ();

    fn handle(&mut self, settle: Settle, ctx: &mut Self::Context) {
        self.pending.push_back(Pending {
            settle,
            decided: None,
            panics: 0,
        });
        guard("Settler", ctx, || self.settle_pending());
    }
}

impl Handler<Tick> for Settler {
    type Result = ();

    fn handle(&mut self, _: Tick, ctx: &mut Self::Context) {
        guard("Settler", ctx, || {
            self.settle_pending();
            self.promote_due_retries();
        });
    }
}

impl Handler<Reconfigure> for Settler {
    type Result = ();

    fn handle(&mut self, change: Reconfigure, _: &mut Self::Context) {
        self.queue = change.queue;
        self.pool = change.pool;
        self.policy = change.policy;
    }
}

impl Handler<Shutdown> for Settler {
    type Result = usize;

    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) -> usize {
        self.database.reset();
        self.redis.reset();
        guard("Settler", ctx, || self.settle_pending());
        if !self.pending.is_empty() {
            log::warn!(
                "⚠️  {} job end(s) could not be recorded (database or Redis unreachable); those \
                 jobs stay in flight and are taken again",
                self.pending.len()
            );
        }
        log::info!("Settler stopped");
        self.pending.len()
    }
}

impl Handler<InjectPanic> for Settler {
    type Result = ();

    fn handle(&mut self, _: InjectPanic, ctx: &mut Self::Context) {
        guard("Settler", ctx, || panic!("injected panic (InjectPanic)"));
    }
}

// ---- settling ----

impl Settler {
    /// Takes every pending job end as far as it can go now.
    fn settle_pending(&mut self) {
        let mut index = 0;
        while index < self.pending.len() {
            self.settling = Some(index);
            let done = self.advance(index);
            self.settling = None;
            if done {
                if let Some(finished) = self.pending.remove(index) {
                    finished.settle.reply_to.do_send(Settled {
                        raw: finished.settle.job.raw,
                    });
                }
            } else {
                index += 1;
            }
        }
    }

    /// The database step (once), then the Redis move; true when the job has left the
    /// in-flight list (or was found gone from it).
    fn advance(&mut self, index: usize) -> bool {
        if self.pending[index].decided.is_none() {
            if !self.database.may_try() {
                return false;
            }
            match self.record_in_database(&self.pending[index].settle) {
                Ok(decision) => {
                    if self.database.succeeded() {
                        self.stats.do_send(ConnectionState::Database(true));
                    }
                    self.pending[index].decided = Some(decision);
                }
                Err(err) => {
                    if self.database.failed(&err) {
                        self.stats.do_send(ConnectionState::Database(false));
                    }
                    return false;
                }
            }
        }
        if !self.redis.may_try() {
            return false;
        }
        let Some((step, ending)) = self.pending[index].decided.clone() else {
            return false;
        };
        match move_in_redis(&mut self.queue, &self.pending[index].settle, &step) {
            Ok(moved) => {
                self.redis.succeeded();
                let settle = &self.pending[index].settle;
                if !moved {
                    log::warn!(
                        "Job for session {} was no longer in this worker's in-flight list; left \
                         to its new owner",
                        settle.job.session_text()
                    );
                }
                self.report(settle, ending);
                true
            }
            Err(err) => {
                self.queue_unreachable(&err);
                false
            }
        }
    }

    /// Writes what the database must know of this ending and decides the Redis move. An error
    /// means try again later (the database is unreachable).
    fn record_in_database(&self, settle: &Settle) -> Result<(RedisMove, Ending), DbError> {
        let job = &settle.job;
        let session = job.session_text();
        match &settle.outcome {
            Outcome::Completed(completed) => {
                let started = Instant::now();
                let mut conn = self.pool.get()?;
                let committed = queries::commit_results(
                    &mut conn,
                    &completed.results,
                    &completed.samples,
                    completed.force,
                )?;
                match committed {
                    Committed::Saved => {
                        let mut summary = completed.summary.clone();
                        summary.stage_seconds.push((
                            Stage::SavingResults.name().to_string(),
                            started.elapsed().as_secs_f64(),
                        ));
                        log::info!(
                            "💾 Session {session} is ready for claiming: {} speakers, {} segments, {} sample clip(s)",
                            completed.results.speakers.len(),
                            completed.results.segments.len(),
                            completed.samples.len()
                        );
                        log_success(&summary);
                        Ok((
                            RedisMove::Ack { forget: true },
                            Ending::Succeeded(Box::new(summary)),
                        ))
                    }
                    Committed::LeftAlone(reason) => {
                        log::warn!(
                            "👯 Session {session}: {reason}, so this run's results were not saved"
                        );
                        Ok((RedisMove::Ack { forget: true }, Ending::Duplicate))
                    }
                }
            }
            Outcome::Failed(error) => self.record_failure(settle, error),
            Outcome::Finished(reason) => {
                log::info!(
                    "👯 Session {session}: {reason}; this duplicate job is acknowledged without \
                     running it again"
                );
                Ok((RedisMove::Ack { forget: true }, Ending::Duplicate))
            }
            Outcome::HeldElsewhere => Ok((RedisMove::Ack { forget: false }, Ending::Duplicate)),
            Outcome::Returned(reason) => {
                log::warn!("↩️  Session {session} goes back to the queue untouched: {reason}");
                Ok((RedisMove::Release, Ending::Returned))
            }
        }
    }

    /// A failed attempt: retried while attempts remain and the error may pass; else the session
    /// is marked `failed` (unless finished or claimed) before the job goes to the failed list.
    fn record_failure(
        &self,
        settle: &Settle,
        error: &JobError,
    ) -> Result<(RedisMove, Ending), DbError> {
        let job = &settle.job;
        let attempts = job.attempts();
        if let Some(payload) = &job.payload {
            if error.is_transient() && attempts <= self.policy.max_retries {
                let next = payload.next_attempt(&error.message, chrono::Utc::now());
                let delay = self.policy.delay(attempts);
                return Ok((
                    RedisMove::Retry {
                        next: next.to_json(),
                        delay,
                    },
                    Ending::Retried {
                        attempt: attempts,
                        delay,
                    },
                ));
            }
            let mut conn = self.pool.get()?;
            match queries::mark_failed(&mut conn, payload.session_id, &error.message) {
                Ok(Marked::Failed) => log::info!(
                    "💾 Session {} marked failed: {}",
                    payload.session_id,
                    error.message
                ),
                Ok(Marked::LeftAlone(reason)) => {
                    log::warn!("Session {} not marked failed: {reason}", payload.session_id)
                }
                Err(err) if err.kind() == ErrorKind::Permanent => {
                    log::warn!("Session {} not marked failed: {err}", payload.session_id)
                }
                Err(err) => return Err(err),
            }
        }
        let first = job.payload.as_ref().and_then(|p| p.first_failed_at.clone());
        let record =
            FailureRecord::new(&job.raw, attempts, error, first, &self.queue.keys.worker_id);
        Ok((RedisMove::Fail(Box::new(record)), Ending::Failed))
    }

    /// Logs and counts a job that has left the in-flight list.
    fn report(&self, settle: &Settle, ending: Ending) {
        let session = settle.job.session_text();
        let event = match ending {
            Ending::Succeeded(summary) => JobEnded::Succeeded(*summary),
            Ending::Retried { attempt, delay } => {
                let error = match &settle.outcome {
                    Outcome::Failed(error) => error.to_string(),
                    _ => String::new(),
                };
                log::warn!(
                    "⏳ Attempt {attempt} for session {session} failed ({error}): retry \
                     {attempt}/{} in {:.1}s",
                    self.policy.max_retries,
                    delay.as_secs_f64()
                );
                JobEnded::Retried
            }
            Ending::Failed => {
                if let Outcome::Failed(error) = &settle.outcome {
                    log::error!(
                        "❌ Session {session} failed for good after {} attempt(s): {error} [{}]",
                        settle.job.attempts(),
                        error.kind
                    );
                }
                JobEnded::Failed
            }
            Ending::Duplicate => JobEnded::Duplicate,
            Ending::Returned => return,
        };
        self.stats.do_send(event);
    }

    fn queue_unreachable(&mut self, err: &crate::queue::QueueError) {
        if err.is_connection_lost() {
            self.redis.failed(err);
        } else {
            // Refused (a script error, say): it would be refused again; try later all the same,
            // loudly, as the job must not be lost.
            log::error!("Redis refused settling a job: {err}");
            self.redis.failed(err);
        }
    }

    fn promote_due_retries(&mut self) {
        if !self.redis.may_try() {
            return;
        }
        match self.queue.promote_due(PROMOTE_BATCH) {
            Ok(0) => {}
            Ok(n) => log::info!(
                "🔁 {n} retry(ies) due: back on {}",
                self.queue.keys.processing
            ),
            Err(err) => log::debug!("Retry promotion skipped: {err}"),
        }
    }

    /// After a panic while settling the job at `at`: try it again, unless it panicked before.
    /// Then it stays in the in-flight list (given back at shutdown, requeued at the next start)
    /// and the listener is told to stop waiting for it.
    fn give_up_if_it_keeps_panicking(&mut self, at: usize) {
        let Some(pending) = self.pending.get_mut(at) else {
            return;
        };
        pending.panics += 1;
        if pending.panics < MAX_SETTLE_PANICS {
            return;
        }
        if let Some(pending) = self.pending.remove(at) {
            log::error!(
                "💥 Settling the job for session {} panicked {} times; it stays in {} and is \
                 taken again after a restart",
                pending.settle.job.session_text(),
                pending.panics,
                self.queue.keys.inflight()
            );
            pending.settle.reply_to.do_send(Settled {
                raw: pending.settle.job.raw,
            });
        }
    }
}

/// Moves the job in Redis; false when it was no longer in this worker's in-flight list.
fn move_in_redis(
    queue: &mut RedisQueue,
    settle: &Settle,
    step: &RedisMove,
) -> Result<bool, crate::queue::QueueError> {
    let raw = &settle.job.raw;
    let session = settle.job.session_id().map(|id| id.to_string());
    let session = session.as_deref();
    match step {
        RedisMove::Ack { forget } => queue.ack(raw, session, *forget),
        RedisMove::Retry { next, delay } => queue.schedule_retry(raw, next, *delay, session),
        RedisMove::Fail(record) => queue.fail(raw, record, session),
        RedisMove::Release => queue.release(raw, session),
    }
}

fn log_success(summary: &JobSummary) {
    let rule = "=".repeat(68);
    log::info!("✅ {rule}");
    log::info!("✅ Session {} completed successfully!", summary.session_id);
    log::info!("✅ Duration: {:.1}s", summary.audio_seconds);
    log::info!("✅ Speakers: {}", summary.speakers);
    log::info!("✅ Segments: {}", summary.segments);
    log::info!("✅ Total words: {}", summary.total_words);
    log::info!("✅ Singlish words counted: {}", summary.target_words);
    let stages: Vec<String> = summary
        .stage_seconds
        .iter()
        .map(|(s, t)| format!("{s} {t:.2}s"))
        .collect();
    log::info!("✅ Stages: {}", stages.join(", "));
    if let Some(rtf) = summary.real_time_factor() {
        log::info!(
            "✅ Processing: {:.2}s (real-time factor {rtf:.3})",
            summary.processing_seconds
        );
    }
    log::info!("✅ {rule}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_the_base_and_never_overflow() {
        let policy = RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_secs(5),
        };
        let delays: Vec<u64> = (1..=3).map(|n| policy.delay(n).as_secs()).collect();
        assert_eq!(delays, vec![5, 10, 20]);
        assert!(policy.delay(200) >= policy.delay(40));
    }
}
