//! The command line: `run` (the daemon) and the tools around it. Flags beat environment
//! variables, which beat `.env`, which beats the defaults.

pub mod failed;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::Config;

#[derive(Debug, Parser)]
#[command(
    name = "lahstats-worker",
    version,
    about = "LahStats processing worker: who said lah how many times"
)]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the worker daemon in the foreground (scripts/lahstatsd daemonises it).
    Run,
    /// Run the pipeline on local audio files: no Redis, no database.
    Analyze {
        /// Audio files, joined in the order given.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Exactly this many speakers.
        #[arg(long)]
        num_speakers: Option<usize>,
    },
    /// Register a session with its audio and enqueue it, as the API does when a recording ends.
    Submit {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Use this session id instead of a new one.
        #[arg(long)]
        session_id: Option<uuid::Uuid>,
        /// Follow the session's progress and print its results.
        #[arg(long)]
        wait: bool,
    },
    /// Ask the running daemon for its statistics over its Unix socket.
    Stats {
        #[arg(long)]
        json: bool,
        #[arg(long)]
        prometheus: bool,
    },
    /// Inspect and requeue jobs that failed for good.
    Failed {
        #[command(subcommand)]
        action: FailedAction,
    },
    /// Apply the database migrations and exit.
    Migrate,
    /// Check the model files.
    Models {
        #[command(subcommand)]
        action: ModelsAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum FailedAction {
    /// List the failed jobs.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Put failed jobs back on the queue with their attempts reset.
    Retry {
        /// The session whose failed job to retry.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        session_id: Option<String>,
        /// Retry every failed job.
        #[arg(long)]
        all: bool,
    },
    /// Delete failed jobs.
    Purge {
        /// Only those whose last failure is older than this (30s, 15m, 12h, 7d).
        #[arg(long, value_parser = failed::parse_age)]
        older_than: Option<std::time::Duration>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ModelsAction {
    /// Verify the model files against the manifest and print the device.
    Check,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
    Rttm,
}
