//! The command line: `run` (the daemon) and the tools around it. Flags beat environment
//! variables, which beat `.env`, which beats the defaults.

pub mod failed;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgAction, CommandFactory, Parser, Subcommand, ValueEnum};

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

impl Cli {
    /// The command line with its sources in order: flags beat environment variables, which beat
    /// the `.env` file, which beats the defaults. Builds a new value on each call (SIGHUP calls
    /// it again to reload) and never changes the process environment.
    pub fn load() -> Result<Cli, clap::Error> {
        Cli::load_from(
            std::env::args_os().collect(),
            &crate::config::dotenv_entries(),
            |key| std::env::var_os(key).is_some(),
        )
    }

    /// [`Cli::load`] with the arguments, the `.env` entries and the test "is this variable set in
    /// the environment" given. Each `.env` entry for a setting that neither a flag nor the
    /// environment gives becomes that setting's flag.
    pub fn load_from(
        mut args: Vec<OsString>,
        dotenv: &BTreeMap<String, String>,
        in_environment: impl Fn(&str) -> bool,
    ) -> Result<Cli, clap::Error> {
        let command = Cli::command();
        let mut from_dotenv = Vec::new();
        for arg in command.get_arguments() {
            let (Some(env), Some(long)) = (arg.get_env(), arg.get_long()) else {
                continue;
            };
            let env = env.to_string_lossy();
            let Some(value) = dotenv.get(env.as_ref()) else {
                continue;
            };
            let flag = format!("--{long}");
            let given = args.iter().skip(1).any(|a| {
                let a = a.to_string_lossy();
                a == flag || a.starts_with(&format!("{flag}="))
            });
            if given || in_environment(&env) {
                continue;
            }
            match arg.get_action() {
                ArgAction::SetTrue => {
                    let falsey = ["", "0", "false", "no", "off", "n", "f"];
                    if !falsey.contains(&value.trim().to_ascii_lowercase().as_str()) {
                        from_dotenv.push(OsString::from(flag));
                    }
                }
                _ => from_dotenv.push(OsString::from(format!("{flag}={value}"))),
            }
        }
        let at = args.len().min(1);
        args.splice(at..at, from_dotenv);
        Cli::try_parse_from(args)
    }
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
        /// Record instead, as the phone does: the session is `recording` while the files are
        /// uploaded one by one as its chunks, this long apart (e.g. 30s), so a worker prepares
        /// them as they arrive; the last one is followed at once by the end of the recording
        /// and the job.
        #[arg(long, value_parser = crate::config::parse_duration)]
        record: Option<std::time::Duration>,
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
    /// Check what the daemon needs before it can work: the model files (against
    /// models/manifest.json), Redis and the database. Exits 1, naming what is wrong, if any is not
    /// right.
    Check,
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
        /// Process the session even if it is already `ready_for_claiming` or claimed, replacing
        /// its results and claims (the job carries `"force": true`).
        #[arg(long)]
        force: bool,
    },
    /// Delete failed jobs.
    Purge {
        /// Only those whose last failure is older than this (30s, 15m, 12h, 7d, 2weeks).
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

#[cfg(test)]
mod tests {
    use super::*;

    fn load(args: &[&str], dotenv: &[(&str, &str)], env: &[&str]) -> Result<Cli, clap::Error> {
        let args = args.iter().map(OsString::from).collect();
        let dotenv = dotenv
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Cli::load_from(args, &dotenv, |key| env.contains(&key))
    }

    #[test]
    fn dotenv_is_the_last_source_and_the_environment_is_left_alone() {
        let dotenv = [
            ("LAHSTATS_MAX_RETRIES", "7"),
            ("LAHSTATS_HEARTBEAT_TTL", "45s"),
            ("LAHSTATS_FORCE_RECLAIM", "true"),
            ("LAHSTATS_QUEUE", "from-dotenv"),
            ("SOMETHING_ELSE", "ignored"),
        ];
        let cli = load(&["lahstats-worker", "run"], &dotenv, &[]).unwrap();
        assert_eq!(cli.config.max_retries, 7);
        assert_eq!(cli.config.heartbeat_ttl, std::time::Duration::from_secs(45));
        assert!(cli.config.force_reclaim);
        assert_eq!(cli.config.queue.as_deref(), Some("from-dotenv"));
        // Nothing was written into the process environment.
        for (key, _) in dotenv {
            assert!(std::env::var_os(key).is_none(), "{key} was set");
        }

        // A flag beats .env; a variable set in the environment beats it too (and then clap
        // reads the environment itself).
        let cli = load(
            &["lahstats-worker", "--max-retries=2", "run"],
            &dotenv,
            &["LAHSTATS_QUEUE"],
        )
        .unwrap();
        assert_eq!(cli.config.max_retries, 2);
        assert_eq!(cli.config.queue, None);
        let cli = load(
            &["lahstats-worker", "run"],
            &[("LAHSTATS_FORCE_RECLAIM", "false")],
            &[],
        )
        .unwrap();
        assert!(!cli.config.force_reclaim);
        assert!(matches!(cli.command, Command::Run));
    }

    #[test]
    fn a_bad_duration_in_dotenv_is_refused_naming_it() {
        let err = load(
            &["lahstats-worker", "run"],
            &[("LAHSTATS_DRAIN_TIMEOUT", "inf")],
            &[],
        )
        .expect_err("refused");
        let text = err.to_string();
        assert!(
            text.contains("--drain-timeout") && text.contains("not a finite duration"),
            "{text}"
        );
    }
}
