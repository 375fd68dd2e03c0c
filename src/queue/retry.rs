//! RetryScheduler: owns the retry set. A failed attempt moves atomically from the in-flight list
//! into the retry set (due base × 2^n later) or, when attempts are used up or the error is
//! permanent, onto the failed list, and the session is marked failed. Due retries go back to
//! the queue. All of it lives in Redis, so a restart loses no retry.

use std::time::Duration;

use actix::prelude::*;

use super::client::RedisQueue;
use super::record::FailureRecord;
use crate::db::writer::{DbWriter, MarkFailed};
use crate::error::JobError;
use crate::job::JobPayload;
use crate::stats::reporter::{JobEnded, StatsReporter};

/// Most retries moved back to the queue in one tick.
const PROMOTE_BATCH: usize = 100;

// ---- state ----

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub base_delay: Duration,
}

impl RetryPolicy {
    /// Delay before retry number `retry` (1-based): base × 2^(retry−1).
    pub fn delay(&self, retry: u32) -> Duration {
        self.base_delay * 2u32.saturating_pow(retry.saturating_sub(1))
    }
}

pub struct RetryScheduler {
    queue: RedisQueue,
    policy: RetryPolicy,
    db: Addr<DbWriter>,
    stats: Addr<StatsReporter>,
    /// Failures not yet recorded in Redis (it was unreachable); tried again every tick.
    pending: Vec<HandleFailure>,
}

impl RetryScheduler {
    pub fn new(
        queue: RedisQueue,
        policy: RetryPolicy,
        db: Addr<DbWriter>,
        stats: Addr<StatsReporter>,
    ) -> RetryScheduler {
        RetryScheduler {
            queue,
            policy,
            db,
            stats,
            pending: Vec::new(),
        }
    }
}

impl Actor for RetryScheduler {
    type Context = SyncContext<Self>;
}

// ---- messages ----

/// A job's attempt failed: schedule its retry or fail it for good.
#[derive(Message)]
#[rtype(result = "()")]
pub struct HandleFailure {
    /// The payload exactly as it was taken (it is removed from the in-flight list by value).
    pub raw: String,
    /// The parsed payload, when it could be parsed.
    pub payload: Option<JobPayload>,
    pub error: JobError,
}

/// Move due retries back to the queue and record failures Redis missed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Tick;

/// New connection and policy after a reload.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reconfigure {
    pub queue: RedisQueue,
    pub policy: RetryPolicy,
}

/// Record what can be recorded, then stop.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

// ---- handlers ----

impl Handler<HandleFailure> for RetryScheduler {
    type Result = ();

    fn handle(&mut self, failure: HandleFailure, _: &mut Self::Context) {
        if !self.settle(&failure) {
            self.pending.push(failure);
        }
    }
}

impl Handler<Tick> for RetryScheduler {
    type Result = ();

    fn handle(&mut self, _: Tick, _: &mut Self::Context) {
        let pending = std::mem::take(&mut self.pending);
        for failure in pending {
            if !self.settle(&failure) {
                self.pending.push(failure);
            }
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
}

impl Handler<Reconfigure> for RetryScheduler {
    type Result = ();

    fn handle(&mut self, change: Reconfigure, _: &mut Self::Context) {
        self.queue = change.queue;
        self.policy = change.policy;
    }
}

impl Handler<Shutdown> for RetryScheduler {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        <Self as Handler<Tick>>::handle(self, Tick, ctx);
        if !self.pending.is_empty() {
            log::warn!(
                "⚠️  {} failed job(s) could not be recorded (Redis unreachable); they stay in the in-flight list and will be taken again",
                self.pending.len()
            );
        }
        log::info!("RetryScheduler stopped");
    }
}

// ---- helpers ----

impl RetryScheduler {
    /// Records one failure in Redis; false when Redis could not be reached (try again later).
    fn settle(&mut self, failure: &HandleFailure) -> bool {
        let attempts = failure
            .payload
            .as_ref()
            .map_or(0, |p| p.attempt)
            .saturating_add(1);
        let session = failure.payload.as_ref().map(|p| p.session_id.to_string());
        let retryable = failure.error.is_transient() && attempts <= self.policy.max_retries;
        let now = chrono::Utc::now();
        let result = match (&failure.payload, retryable) {
            (Some(payload), true) => {
                let next = payload.next_attempt(&failure.error.message, now);
                let delay = self.policy.delay(attempts);
                self.queue
                    .schedule_retry(&failure.raw, &next.to_json(), delay, session.as_deref())
                    .map(|moved| (moved, Some(delay)))
            }
            _ => {
                let first = failure
                    .payload
                    .as_ref()
                    .and_then(|p| p.first_failed_at.clone());
                let record = FailureRecord::new(
                    &failure.raw,
                    attempts,
                    &failure.error,
                    first,
                    &self.queue.keys.worker_id,
                );
                self.queue
                    .fail(&failure.raw, &record, session.as_deref())
                    .map(|moved| (moved, None))
            }
        };
        match result {
            Ok((false, _)) => {
                log::warn!("Job for session {session:?} was no longer in this worker's in-flight list; left to its new owner");
                true
            }
            Ok((true, Some(delay))) => {
                log::warn!(
                    "⏳ Attempt {attempts} for session {} failed ({}): retry {attempts}/{} in {:.1}s",
                    session.as_deref().unwrap_or("?"),
                    failure.error,
                    self.policy.max_retries,
                    delay.as_secs_f64()
                );
                self.stats.do_send(JobEnded::Retried);
                true
            }
            Ok((true, None)) => {
                log::error!(
                    "❌ Session {} failed for good after {attempts} attempt(s): {} [{}]",
                    session.as_deref().unwrap_or("(no valid session_id)"),
                    failure.error,
                    failure.error.kind
                );
                if let Some(payload) = &failure.payload {
                    self.db.do_send(MarkFailed {
                        session_id: payload.session_id,
                        error: failure.error.message.clone(),
                    });
                }
                self.stats.do_send(JobEnded::Failed);
                true
            }
            Err(err) => {
                log::warn!("Could not record a failed attempt in Redis ({err}); will try again");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_the_base() {
        let policy = RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_secs(5),
        };
        let delays: Vec<u64> = (1..=3).map(|n| policy.delay(n).as_secs()).collect();
        assert_eq!(delays, vec![5, 10, 20]);
    }
}
