//! Live statistics: the StatsReporter actor that counts what happens to jobs, and the figures
//! it reports (log lines, the shutdown summary, and the answer to `lahstats-worker stats`).

pub mod reporter;
pub mod snapshot;
pub mod socket;

pub use reporter::StatsReporter;
pub use snapshot::{JobSummary, QueueDepths, StatsSnapshot};
