//! Logging set-up (env_logger, `RUST_LOG` respected, INFO by default) and the start-up banner.

use std::io::Write;

use crate::config::{mask_url, Config};

/// Starts env_logger with the original worker's line format: time, level, target, message; the
/// filter is `RUST_LOG`, else `info`.
pub fn init() {
    init_with(None);
}

/// [`init`], with `dotenv_filter` (`RUST_LOG` from `.env`) between `RUST_LOG` and `info`.
pub fn init_with(dotenv_filter: Option<&str>) {
    let env = env_logger::Env::default().default_filter_or(dotenv_filter.unwrap_or("info"));
    let _ = env_logger::Builder::from_env(env)
        .format(|buf, record| {
            writeln!(
                buf,
                "{} [{}] {}: {}",
                chrono::Local::now().format("%Y-%m-%d %H:%M:%S"),
                record.level(),
                record.target(),
                record.args()
            )
        })
        .try_init();
}

/// The banner printed at start: what this worker will do and with what.
pub fn banner(config: &Config, device: &str) {
    let rule = "=".repeat(70);
    log::info!("{rule}");
    log::info!("🚀 LahStats ML Processing Worker v{}", crate::version());
    log::info!("{rule}");
    log::info!("🆔 Worker ID: {}", config.worker_id());
    log::info!("📋 Processing Queue: {}", config.processing_queue());
    log::info!("📋 Failed Queue: {}", config.failed_queue());
    log::info!("🔄 Max Retries: {}", config.max_retries);
    log::info!("⏱️  Retry Delays: {}", config.retry_delays_text());
    log::info!(
        "☠️  Max Redeliveries: {} (a job whose worker died holding it)",
        config.max_redeliveries
    );
    log::info!(
        "💓 Heartbeat TTL: {}, drain timeout: {}",
        humantime::format_duration(config.heartbeat_ttl),
        humantime::format_duration(config.drain_timeout)
    );
    log::info!("🔌 Redis URL: {}", mask_url(&config.redis_url));
    log::info!("🗄️  Database: {}", mask_url(&config.database_url));
    log::info!("🧠 Models: {} on {device}", config.models_dir.display());
    log::info!("📁 Storage: {}", crate::storage::describe_config(config));
    if config.prepare_interval.is_zero() {
        log::info!("🎙️  Sessions still recording: left until their job");
    } else {
        log::info!(
            "🎙️  Sessions still recording: new chunks taken in every {}",
            humantime::format_duration(config.prepare_interval)
        );
    }
    log::info!("🔧 Stats socket: {}", config.socket.display());
    log::info!("{rule}");
}
