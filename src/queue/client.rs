//! A Redis connection that knows the queue's keys and scripts. Each actor that talks to Redis
//! owns one (the QueueListener takes jobs on its own; the Settler moves every job's end on its
//! own); it connects lazily and drops a broken connection so the next call reconnects.

use std::time::Duration;

use redis::{Client, Connection, Script};

use super::keys::Keys;
use super::record::FailureRecord;
use super::QueueError;
use crate::stats::QueueDepths;

/// How long to wait for Redis to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a command may take to answer; longer than the 1 s BLMOVE wait.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a job's redelivery count is kept after its last change, in seconds.
const REDELIVERY_MEMORY_SECONDS: u64 = 7 * 24 * 3600;

/// The Lua scripts, loaded once per connection holder.
struct Scripts {
    ack: Script,
    schedule_retry: Script,
    fail: Script,
    promote_due: Script,
    reap: Script,
    release: Script,
    redeliveries: Script,
    refresh_lock: Script,
    requeue_failed: Script,
}

impl Scripts {
    fn new() -> Scripts {
        Scripts {
            ack: Script::new(include_str!("lua/ack.lua")),
            schedule_retry: Script::new(include_str!("lua/schedule_retry.lua")),
            fail: Script::new(include_str!("lua/fail.lua")),
            promote_due: Script::new(include_str!("lua/promote_due.lua")),
            reap: Script::new(include_str!("lua/reap.lua")),
            release: Script::new(include_str!("lua/release.lua")),
            redeliveries: Script::new(include_str!("lua/redeliveries.lua")),
            refresh_lock: Script::new(include_str!("lua/refresh_lock.lua")),
            requeue_failed: Script::new(include_str!("lua/requeue_failed.lua")),
        }
    }
}

/// The queue as one worker sees it.
pub struct RedisQueue {
    url: String,
    client: Option<Client>,
    connection: Option<Connection>,
    scripts: Scripts,
    pub keys: Keys,
}

impl RedisQueue {
    pub fn new(url: &str, keys: Keys) -> RedisQueue {
        RedisQueue {
            url: url.to_string(),
            client: None,
            connection: None,
            scripts: Scripts::new(),
            keys,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn is_connected(&self) -> bool {
        self.connection.is_some()
    }

    /// Connects now if not connected; answers whether Redis is reachable.
    pub fn ensure_connected(&mut self) -> Result<(), QueueError> {
        self.connection().map(|_| ())
    }

    fn connection(&mut self) -> Result<&mut Connection, QueueError> {
        if self.connection.is_none() {
            let connect = |source| QueueError::Connect {
                url: crate::config::mask_url(&self.url),
                source,
            };
            let client = match self.client.take() {
                Some(client) => client,
                None => crate::tls::redis_client(&self.url).map_err(connect)?,
            };
            let connection =
                crate::tls::redis_connect(&client, CONNECT_TIMEOUT).map_err(connect)?;
            connection
                .set_read_timeout(Some(READ_TIMEOUT))
                .map_err(connect)?;
            connection
                .set_write_timeout(Some(READ_TIMEOUT))
                .map_err(connect)?;
            self.client = Some(client);
            self.connection = Some(connection);
        }
        self.connection.as_mut().ok_or(QueueError::Disconnected)
    }

    /// Runs one Redis step; a lost connection is dropped so the next step reconnects.
    fn run<T>(
        &mut self,
        command: &'static str,
        step: impl FnOnce(&mut Connection, &Scripts) -> redis::RedisResult<T>,
    ) -> Result<T, QueueError> {
        self.connection()?;
        let (connection, scripts) = match self.connection.as_mut() {
            Some(connection) => (connection, &self.scripts),
            None => return Err(QueueError::Disconnected),
        };
        let result =
            step(connection, scripts).map_err(|source| QueueError::Command { command, source });
        if let Err(err) = &result {
            if err.is_connection_lost() {
                self.connection = None;
            }
        }
        result
    }

    pub fn ping(&mut self) -> Result<(), QueueError> {
        self.run("PING", |c, _| redis::cmd("PING").query::<String>(c))
            .map(|_| ())
    }

    /// Waits up to `wait` for a job and moves it atomically into this worker's in-flight list.
    pub fn take(&mut self, wait: Duration) -> Result<Option<String>, QueueError> {
        let (from, to) = (self.keys.processing.clone(), self.keys.inflight());
        self.run("BLMOVE", |c, _| {
            redis::cmd("BLMOVE")
                .arg(&from)
                .arg(&to)
                .arg("RIGHT")
                .arg("LEFT")
                .arg(wait.as_secs_f64())
                .query(c)
        })
    }

    /// How many times `raw` was taken back from a worker that died holding it.
    pub fn redeliveries(&mut self, raw: &str) -> Result<u32, QueueError> {
        let prefix = self.keys.redelivered_prefix();
        self.run("redeliveries", |c, s| {
            s.redeliveries.arg(&prefix).arg(raw).invoke::<u32>(c)
        })
    }

    /// Drops a finished job from the in-flight list and releases its session lock. `forget`
    /// also drops its redelivery count (not for a duplicate of a job another worker holds).
    pub fn ack(
        &mut self,
        raw: &str,
        session_id: Option<&str>,
        forget: bool,
    ) -> Result<bool, QueueError> {
        let (inflight, lock) = (self.keys.inflight(), self.lock_key(session_id));
        let worker = self.keys.worker_id.clone();
        let counts = if forget {
            self.keys.redelivered_prefix()
        } else {
            String::new()
        };
        self.run("ack", |c, s| {
            s.ack
                .key(&inflight)
                .key(&lock)
                .arg(raw)
                .arg(&worker)
                .arg(&counts)
                .invoke::<i64>(c)
        })
        .map(|removed| removed > 0)
    }

    /// Puts one job back at the front of the queue as it was taken (not a redelivery).
    pub fn release(&mut self, raw: &str, session_id: Option<&str>) -> Result<bool, QueueError> {
        let (inflight, processing) = (self.keys.inflight(), self.keys.processing.clone());
        let lock = self.lock_key(session_id);
        let worker = self.keys.worker_id.clone();
        self.run("release", |c, s| {
            s.release
                .key(&inflight)
                .key(&processing)
                .key(&lock)
                .arg(raw)
                .arg(&worker)
                .invoke::<i64>(c)
        })
        .map(|moved| moved > 0)
    }

    /// Moves a failed job into the retry set, due `delay` from now, as `next_payload`.
    pub fn schedule_retry(
        &mut self,
        raw: &str,
        next_payload: &str,
        delay: Duration,
        session_id: Option<&str>,
    ) -> Result<bool, QueueError> {
        let due_ms = now_ms().saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
        let (inflight, retry) = (self.keys.inflight(), self.keys.retry.clone());
        let lock = self.lock_key(session_id);
        let worker = self.keys.worker_id.clone();
        let counts = self.keys.redelivered_prefix();
        self.run("schedule_retry", |c, s| {
            s.schedule_retry
                .key(&inflight)
                .key(&retry)
                .key(&lock)
                .arg(raw)
                .arg(next_payload)
                .arg(due_ms)
                .arg(&worker)
                .arg(&counts)
                .arg(REDELIVERY_MEMORY_SECONDS)
                .invoke::<i64>(c)
        })
        .map(|moved| moved > 0)
    }

    /// Moves a job from the in-flight list onto the failed list as `record`.
    pub fn fail(
        &mut self,
        raw: &str,
        record: &FailureRecord,
        session_id: Option<&str>,
    ) -> Result<bool, QueueError> {
        let (inflight, failed) = (self.keys.inflight(), self.keys.failed.clone());
        let lock = self.lock_key(session_id);
        let worker = self.keys.worker_id.clone();
        let record = record.to_json();
        let counts = self.keys.redelivered_prefix();
        self.run("fail", |c, s| {
            s.fail
                .key(&inflight)
                .key(&failed)
                .key(&lock)
                .arg(raw)
                .arg(&record)
                .arg(&worker)
                .arg(&counts)
                .invoke::<i64>(c)
        })
        .map(|moved| moved > 0)
    }

    /// Moves up to `limit` retries that are due back onto the queue.
    pub fn promote_due(&mut self, limit: usize) -> Result<usize, QueueError> {
        let (retry, processing) = (self.keys.retry.clone(), self.keys.processing.clone());
        self.run("promote_due", |c, s| {
            s.promote_due
                .key(&retry)
                .key(&processing)
                .arg(now_ms())
                .arg(limit)
                .invoke::<usize>(c)
        })
    }

    /// Says this worker is alive for `ttl` more and registers it with the reaper.
    pub fn heartbeat(&mut self, ttl: Duration) -> Result<(), QueueError> {
        let (key, workers, id) = (
            self.keys.heartbeat(),
            self.keys.workers.clone(),
            self.keys.worker_id.clone(),
        );
        self.run("heartbeat", |c, _| {
            redis::pipe()
                .atomic()
                .cmd("SET")
                .arg(&key)
                .arg(crate::job::api_timestamp(chrono::Utc::now()))
                .arg("PX")
                .arg(ttl.as_millis() as u64)
                .ignore()
                .cmd("SADD")
                .arg(&workers)
                .arg(&id)
                .ignore()
                .query::<()>(c)
        })
    }

    /// Removes this worker's heartbeat, so anything left in its in-flight list is reaped at once.
    pub fn clear_heartbeat(&mut self) -> Result<(), QueueError> {
        let key = self.keys.heartbeat();
        self.run("DEL", |c, _| redis::cmd("DEL").arg(&key).query::<()>(c))
    }

    /// Requeues the in-flight jobs of every registered worker whose heartbeat has expired, each
    /// counted as a redelivery. Returns how many jobs went back to the queue.
    pub fn reap_dead_workers(&mut self) -> Result<usize, QueueError> {
        let workers_key = self.keys.workers.clone();
        let workers: Vec<String> = self.run("SMEMBERS", |c, _| {
            redis::cmd("SMEMBERS").arg(&workers_key).query(c)
        })?;
        let mut requeued = 0;
        let me = self.keys.worker_id.clone();
        for worker in workers.iter().filter(|w| **w != me) {
            let moved = self.requeue_inflight_of(worker, true, true)?;
            if moved > 0 {
                log::warn!("♻️  Requeued {moved} job(s) left by dead worker {worker}");
                requeued += moved;
            }
        }
        Ok(requeued)
    }

    /// Puts jobs left in this worker's own in-flight list by an earlier process with the same
    /// id (which died holding them: each counts as a redelivery) back on the queue and releases
    /// their session locks. Only called at start, before anything is taken.
    pub fn recover_own_inflight(&mut self) -> Result<usize, QueueError> {
        let me = self.keys.worker_id.clone();
        self.requeue_inflight_of(&me, false, true)
    }

    /// Gives every job in this worker's in-flight list back to the front of the queue, not
    /// counted as redeliveries: a drain that timed out, or a reload leaving these keys.
    pub fn give_back_inflight(&mut self) -> Result<usize, QueueError> {
        let me = self.keys.worker_id.clone();
        self.requeue_inflight_of(&me, false, false)
    }

    /// The jobs in this worker's in-flight list.
    pub fn inflight_entries(&mut self) -> Result<Vec<String>, QueueError> {
        let key = self.keys.inflight();
        self.run("LRANGE", |c, _| {
            redis::cmd("LRANGE").arg(&key).arg(0).arg(-1).query(c)
        })
    }

    /// Runs the reap script for one worker's in-flight list; returns the jobs moved (-1: the
    /// worker turned out to be alive).
    fn requeue_inflight_of(
        &mut self,
        worker: &str,
        only_if_dead: bool,
        count: bool,
    ) -> Result<usize, QueueError> {
        let keys = (
            self.keys.heartbeat_of(worker),
            self.keys.inflight_of(worker),
            self.keys.processing.clone(),
            self.keys.workers.clone(),
            self.keys.lock_prefix(),
            self.keys.redelivered_prefix(),
        );
        let flag = |on: bool| if on { "1" } else { "0" };
        let moved: i64 = self.run("reap", |c, s| {
            s.reap
                .key(&keys.0)
                .key(&keys.1)
                .key(&keys.2)
                .key(&keys.3)
                .arg(worker)
                .arg(&keys.4)
                .arg(flag(only_if_dead))
                .arg(&keys.5)
                .arg(REDELIVERY_MEMORY_SECONDS)
                .arg(flag(count))
                .invoke(c)
        })?;
        Ok(usize::try_from(moved).unwrap_or(0))
    }

    /// Takes the per-session lock (or confirms this worker already holds it).
    pub fn lock_session(&mut self, session_id: &str, ttl: Duration) -> Result<bool, QueueError> {
        let (key, worker) = (self.keys.lock(session_id), self.keys.worker_id.clone());
        self.run("SET NX", |c, _| {
            let taken: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg(&worker)
                .arg("NX")
                .arg("PX")
                .arg(ttl.as_millis() as u64)
                .query(c)?;
            if taken.is_some() {
                return Ok(true);
            }
            let holder: Option<String> = redis::cmd("GET").arg(&key).query(c)?;
            Ok(holder.as_deref() == Some(worker.as_str()))
        })
    }

    /// Extends the session lock while the job is being worked on.
    pub fn refresh_lock(&mut self, session_id: &str, ttl: Duration) -> Result<(), QueueError> {
        let (key, worker) = (self.keys.lock(session_id), self.keys.worker_id.clone());
        self.run("refresh_lock", |c, s| {
            s.refresh_lock
                .key(&key)
                .arg(&worker)
                .arg(ttl.as_millis() as u64)
                .invoke::<i64>(c)
        })
        .map(|_| ())
    }

    /// LPUSHes a job exactly as the API does.
    pub fn enqueue(&mut self, payload: &str) -> Result<(), QueueError> {
        let key = self.keys.processing.clone();
        self.run("LPUSH", |c, _| {
            redis::cmd("LPUSH").arg(&key).arg(payload).query::<()>(c)
        })
    }

    pub fn depths(&mut self) -> Result<QueueDepths, QueueError> {
        let keys = (
            self.keys.processing.clone(),
            self.keys.retry.clone(),
            self.keys.failed.clone(),
        );
        self.run("LLEN", |c, _| {
            let (processing, retry, failed): (u64, u64, u64) = redis::pipe()
                .cmd("LLEN")
                .arg(&keys.0)
                .cmd("ZCARD")
                .arg(&keys.1)
                .cmd("LLEN")
                .arg(&keys.2)
                .query(c)?;
            Ok(QueueDepths {
                processing,
                retry,
                failed,
            })
        })
    }

    /// Every entry of the failed list, newest first, as stored.
    pub fn failed_entries(&mut self) -> Result<Vec<String>, QueueError> {
        let key = self.keys.failed.clone();
        self.run("LRANGE", |c, _| {
            redis::cmd("LRANGE").arg(&key).arg(0).arg(-1).query(c)
        })
    }

    /// Moves one failed entry back onto the queue as `payload`, atomically.
    pub fn requeue_failed(&mut self, entry: &str, payload: &str) -> Result<bool, QueueError> {
        let (failed, processing) = (self.keys.failed.clone(), self.keys.processing.clone());
        self.run("requeue_failed", |c, s| {
            s.requeue_failed
                .key(&failed)
                .key(&processing)
                .arg(entry)
                .arg(payload)
                .invoke::<i64>(c)
        })
        .map(|moved| moved > 0)
    }

    /// Deletes one failed entry.
    pub fn remove_failed(&mut self, entry: &str) -> Result<bool, QueueError> {
        let key = self.keys.failed.clone();
        self.run("LREM", |c, _| {
            redis::cmd("LREM")
                .arg(&key)
                .arg(1)
                .arg(entry)
                .query::<i64>(c)
        })
        .map(|removed| removed > 0)
    }

    fn lock_key(&self, session_id: Option<&str>) -> String {
        // A job without a readable session has no lock; this key never exists.
        self.keys.lock(session_id.unwrap_or("-"))
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
