//! The figures the StatsReporter hands out, and how they read as text.

use serde::{Deserialize, Serialize};

/// Sizes of the queue's lists, for stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueDepths {
    pub processing: u64,
    pub retry: u64,
    pub failed: u64,
}

/// What one successful job did, for the log and the counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobSummary {
    pub session_id: String,
    pub audio_seconds: f64,
    pub speakers: usize,
    pub segments: usize,
    pub total_words: usize,
    /// Target-word occurrences counted, all speakers together.
    pub target_words: usize,
    /// Wall seconds per stage, in stage order (stage name, seconds).
    pub stage_seconds: Vec<(String, f64)>,
    pub processing_seconds: f64,
}

impl JobSummary {
    /// Processing time over audio time.
    pub fn real_time_factor(&self) -> Option<f64> {
        (self.audio_seconds > 0.0).then(|| self.processing_seconds / self.audio_seconds)
    }
}

/// Everything `lahstats-worker stats --json` prints. Fields an older worker does not send read
/// as their defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StatsSnapshot {
    pub version: String,
    pub worker_id: String,
    pub device: String,
    /// `loaded on cpu`, `loading`, or `not loaded — <reason>` (intake is stopped then).
    pub pipeline: String,
    pub uptime_seconds: u64,
    pub received: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub retried: u64,
    pub duplicates: u64,
    pub in_flight: u64,
    /// Succeeded over finished (succeeded + failed), in percent.
    pub success_rate: Option<f64>,
    pub audio_seconds_processed: f64,
    pub rtf_mean: Option<f64>,
    pub rtf_p95: Option<f64>,
    /// Mean wall seconds per stage over successful jobs.
    pub stage_seconds_mean: Vec<(String, f64)>,
    pub queue_processing: u64,
    pub queue_retry: u64,
    pub queue_failed: u64,
    pub redis_connected: bool,
    pub database_connected: bool,
}

/// `0h 15m 32s`, as the original printed uptime.
pub fn format_uptime(seconds: u64) -> String {
    format!(
        "{}h {}m {}s",
        seconds / 3600,
        seconds % 3600 / 60,
        seconds % 60
    )
}

impl StatsSnapshot {
    /// The one-line summary logged after each job and while idle.
    pub fn one_line(&self) -> String {
        let pipeline = if self.pipeline.starts_with("not loaded") {
            format!(" — pipeline: {}", self.pipeline)
        } else {
            String::new()
        };
        format!(
            "📊 Stats: {} succeeded, {} failed, {} retried, {} total, {} in flight, queue {} / retry {} / failed {}{pipeline}",
            self.succeeded,
            self.failed,
            self.retried,
            self.received,
            self.in_flight,
            self.queue_processing,
            self.queue_retry,
            self.queue_failed
        )
    }

    /// The readable table `lahstats-worker stats` prints.
    pub fn table(&self) -> String {
        let optional = |v: Option<f64>, unit: &str| match v {
            Some(v) => format!("{v:.3}{unit}"),
            None => "-".to_string(),
        };
        let state = |up: bool| if up { "connected" } else { "DISCONNECTED" };
        let mut rows = vec![
            ("Worker", self.worker_id.clone()),
            ("Version", self.version.clone()),
            ("Device", self.device.clone()),
            ("Pipeline", self.pipeline.clone()),
            ("Uptime", format_uptime(self.uptime_seconds)),
            ("Jobs received", self.received.to_string()),
            ("Succeeded", self.succeeded.to_string()),
            ("Failed", self.failed.to_string()),
            ("Retried", self.retried.to_string()),
            ("Duplicates skipped", self.duplicates.to_string()),
            ("In flight", self.in_flight.to_string()),
            ("Success rate", optional(self.success_rate, " %")),
            (
                "Audio processed",
                format!("{:.1} s", self.audio_seconds_processed),
            ),
            ("Real-time factor (mean)", optional(self.rtf_mean, "")),
            ("Real-time factor (p95)", optional(self.rtf_p95, "")),
            ("Queue: processing", self.queue_processing.to_string()),
            ("Queue: retry", self.queue_retry.to_string()),
            ("Queue: failed", self.queue_failed.to_string()),
            ("Redis", state(self.redis_connected).to_string()),
            ("Database", state(self.database_connected).to_string()),
        ];
        for (stage, seconds) in &self.stage_seconds_mean {
            rows.push(("Stage (mean s)", format!("{stage}: {seconds:.2}")));
        }
        let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
        rows.iter()
            .map(|(name, value)| format!("{name:<width$}  {value}\n"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_reads_like_the_original() {
        assert_eq!(format_uptime(15 * 60 + 32), "0h 15m 32s");
        assert_eq!(format_uptime(3 * 3600 + 5), "3h 0m 5s");
    }
}
