//! The one place that knows the names of the worker's Redis keys.

use crate::config::Config;

/// Key names for one queue prefix and one worker.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
    /// The list the API LPUSHes jobs onto; workers take from the right.
    pub processing: String,
    /// Jobs that failed for good, as failure records.
    pub failed: String,
    /// Sorted set of jobs waiting for their next attempt, scored by due time (ms).
    pub retry: String,
    /// Set of worker ids that have registered, for the reaper.
    pub workers: String,
    pub worker_id: String,
}

impl Keys {
    pub fn from_config(config: &Config) -> Keys {
        Keys::new(
            &config.key_prefix,
            config.processing_queue(),
            config.failed_queue(),
            config.worker_id(),
        )
    }

    pub fn new(prefix: &str, processing: String, failed: String, worker_id: String) -> Keys {
        Keys {
            prefix: prefix.to_string(),
            retry: format!("{prefix}:retry"),
            workers: format!("{prefix}:workers"),
            processing,
            failed,
            worker_id,
        }
    }

    /// The in-flight list of a worker: jobs it has taken and not yet finished.
    pub fn inflight_of(&self, worker: &str) -> String {
        format!("{}:inflight:{worker}", self.processing)
    }

    pub fn inflight(&self) -> String {
        self.inflight_of(&self.worker_id)
    }

    /// A worker's heartbeat key: the worker is alive while it exists.
    pub fn heartbeat_of(&self, worker: &str) -> String {
        format!("{}:worker:{worker}", self.prefix)
    }

    pub fn heartbeat(&self) -> String {
        self.heartbeat_of(&self.worker_id)
    }

    /// Prefix of the per-session locks (the session id follows).
    pub fn lock_prefix(&self) -> String {
        format!("{}:lock:", self.prefix)
    }

    pub fn lock(&self, session_id: &str) -> String {
        format!("{}{session_id}", self.lock_prefix())
    }

    /// Prefix of the redelivery counts: how many times a job was taken back from a worker that
    /// died holding it. The sha1 of the raw job follows (computed in the Lua scripts).
    pub fn redelivered_prefix(&self) -> String {
        format!("{}:redelivered:", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_match_the_api() {
        let keys = Keys::new(
            "lahstats",
            "lahstats:processing".into(),
            "lahstats:failed".into(),
            "w1".into(),
        );
        assert_eq!(keys.inflight(), "lahstats:processing:inflight:w1");
        assert_eq!(keys.heartbeat(), "lahstats:worker:w1");
        assert_eq!(keys.retry, "lahstats:retry");
        assert_eq!(keys.workers, "lahstats:workers");
        assert_eq!(keys.lock("abc"), "lahstats:lock:abc");
        assert_eq!(keys.redelivered_prefix(), "lahstats:redelivered:");
    }
}
