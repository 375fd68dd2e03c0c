//! lahstats-worker: takes finished LahStats recordings off a Redis queue, finds who spoke when,
//! transcribes them, counts each speaker's Singlish words and writes the results into the app's
//! database. See README.md for the whole picture and `../shared/DESIGN.md` for the architecture.

pub mod app;
pub mod audio;
pub mod cli;
pub mod commands;
pub mod config;
pub mod db;
pub mod error;
pub mod inference;
pub mod job;
pub mod logging;
pub mod pcm;
pub mod pipeline;
pub mod processor;
pub mod queue;
pub mod session;
pub mod settle;
pub mod singlish;
pub mod speech;
pub mod stats;
pub mod storage;
pub mod supervise;
pub mod tls;
pub mod watcher;

/// The worker's version, as Cargo knows it.
pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}
