//! `lahstats-worker`: the daemon and its tools. See `lahstats-worker --help`.

use std::process::ExitCode;

use lahstats_worker::cli::{Cli, Command, FailedAction};
use lahstats_worker::config::Config;
use lahstats_worker::queue::{Keys, RedisQueue};

fn main() -> ExitCode {
    let dotenv = lahstats_worker::config::dotenv_entries();
    lahstats_worker::logging::init_with(dotenv.get("RUST_LOG").map(String::as_str));
    let cli = match Cli::load_from(std::env::args_os().collect(), &dotenv, |key| {
        std::env::var_os(key).is_some()
    }) {
        Ok(cli) => cli,
        Err(err) => err.exit(),
    };
    lahstats_worker::inference::limit_onednn_primitive_cache(cli.config.torch_threads);
    lahstats_worker::tls::set_redis_ca_file(cli.config.redis_ca_cert.clone());
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("lahstats-worker: {message}");
            ExitCode::from(1)
        }
    }
}

fn dispatch(cli: Cli) -> Result<u8, String> {
    let config = cli.config;
    match cli.command {
        Command::Run => lahstats_worker::commands::run(config),
        Command::Analyze {
            files,
            format,
            num_speakers,
        } => lahstats_worker::commands::analyze(&config, &files, format, num_speakers),
        Command::Submit {
            files,
            session_id,
            wait,
            record,
        } => lahstats_worker::commands::submit(&config, &files, session_id, wait, record),
        Command::Stats { json, prometheus } => {
            lahstats_worker::commands::stats(&config, json, prometheus)
        }
        Command::Failed { action } => failed(&config, action),
        Command::Migrate => lahstats_worker::commands::migrate(&config),
        Command::Check => lahstats_worker::commands::check(&config),
        Command::Models { .. } => lahstats_worker::commands::models_check(&config),
    }
}

fn failed(config: &Config, action: FailedAction) -> Result<u8, String> {
    use lahstats_worker::cli::failed;
    let mut queue = RedisQueue::new(&config.redis_url, Keys::from_config(config));
    let result = match action {
        FailedAction::List { json } => failed::list(&mut queue, json).map(|_| ()),
        FailedAction::Retry {
            session_id, force, ..
        } => failed::retry(&mut queue, session_id.as_deref(), force)
            .map(|n| println!("{n} job(s) requeued onto {}", queue.keys.processing)),
        FailedAction::Purge { older_than } => {
            failed::purge(&mut queue, older_than).map(|n| println!("{n} failed job(s) deleted"))
        }
    };
    result.map(|_| 0).map_err(|err| err.to_string())
}
