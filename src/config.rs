//! The worker's configuration: flags beat environment variables, which beat a `.env` file, which
//! beats the defaults. The defaults run on one machine with nothing configured.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use clap::Args;

/// Everything the daemon and its subcommands can be told. Each field is a flag and an
/// environment variable; `Config::load` also reads `.env`.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Redis holding the job queue.
    #[arg(
        long,
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        global = true
    )]
    pub redis_url: String,

    /// The app's database: postgres://… (production) or a SQLite file path / sqlite://… .
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "./data/lahstats.db",
        global = true
    )]
    pub database_url: String,

    /// Directory holding the model files made by scripts/prepare-models.
    #[arg(
        long,
        env = "LAHSTATS_MODELS_DIR",
        default_value = "./models",
        global = true
    )]
    pub models_dir: PathBuf,

    /// Inference device: auto (CUDA when present, else CPU), cpu, cuda, cuda:N.
    #[arg(long, env = "LAHSTATS_DEVICE", default_value = "auto", global = true)]
    pub device: String,

    /// libtorch threads for inference (0: libtorch's default, one per core). One is fastest on a
    /// small machine shared with other work: two threads spend their time waiting on each other.
    #[arg(
        long,
        env = "LAHSTATS_TORCH_THREADS",
        default_value_t = 1,
        global = true
    )]
    pub torch_threads: usize,

    /// Prefix of every Redis key the worker uses (tests give each run its own).
    #[arg(
        long,
        env = "LAHSTATS_KEY_PREFIX",
        default_value = "lahstats",
        global = true
    )]
    pub key_prefix: String,

    /// The list the API pushes jobs onto (default: <prefix>:processing).
    #[arg(long, env = "LAHSTATS_QUEUE", global = true)]
    pub queue: Option<String>,

    /// The list failed jobs end up in (default: <prefix>:failed).
    #[arg(long, env = "LAHSTATS_FAILED_QUEUE", global = true)]
    pub failed_queue: Option<String>,

    /// Retries after the first attempt before a job goes to the failed list.
    #[arg(long, env = "LAHSTATS_MAX_RETRIES", default_value_t = 3, global = true)]
    pub max_retries: u32,

    /// Delay before the first retry in seconds; each further retry waits twice as long.
    #[arg(
        long,
        env = "LAHSTATS_RETRY_BASE_DELAY",
        default_value_t = 5.0,
        global = true
    )]
    pub retry_base_delay: f64,

    /// This worker's id in Redis (default: <hostname>-<pid>). Must be unique per live process.
    #[arg(long, env = "LAHSTATS_WORKER_ID", global = true)]
    pub worker_id: Option<String>,

    /// Seconds a worker's heartbeat lives; a worker silent for longer is presumed dead and its
    /// jobs are requeued.
    #[arg(
        long,
        env = "LAHSTATS_HEARTBEAT_TTL",
        default_value_t = 30.0,
        global = true
    )]
    pub heartbeat_ttl: f64,

    /// Seconds the job in hand may take to finish after SIGTERM before the worker exits anyway
    /// (the job then stays in Redis and is taken again).
    #[arg(
        long,
        env = "LAHSTATS_DRAIN_TIMEOUT",
        default_value_t = 300.0,
        global = true
    )]
    pub drain_timeout: f64,

    /// Largest job payload accepted, in bytes; larger ones go straight to the failed list.
    #[arg(
        long,
        env = "LAHSTATS_MAX_PAYLOAD_BYTES",
        default_value_t = 65_536,
        global = true
    )]
    pub max_payload_bytes: usize,

    /// The local store, used when neither LAHSTATS_STORAGE_URL nor SUPABASE_URL is set: root
    /// directory of relative chunk paths, and where processed files (samples) are written.
    #[arg(
        long,
        env = "LAHSTATS_STORAGE_DIR",
        default_value = "./data/storage",
        global = true
    )]
    pub storage_dir: PathBuf,

    /// Object storage for chunks and processed files: s3://<bucket>[/<prefix>] for any
    /// S3-compatible service (credentials, region and endpoint from the standard AWS_* variables:
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL, AWS_ALLOW_HTTP).
    /// Unset: Supabase Storage when SUPABASE_URL is set, else the local storage directory.
    #[arg(long, env = "LAHSTATS_STORAGE_URL", global = true)]
    pub storage_url: Option<String>,

    /// The app's Supabase project URL (https://<project>.supabase.co): chunks are downloaded from
    /// and processed files uploaded to its Storage API.
    #[arg(long, env = "SUPABASE_URL", global = true)]
    pub supabase_url: Option<String>,

    /// The Supabase Storage API base (default: $SUPABASE_URL/storage/v1).
    #[arg(long, env = "SUPABASE_STORAGE_URL", global = true)]
    pub supabase_storage_url: Option<String>,

    /// The Supabase service-role key, sent as `Authorization: Bearer` and `apikey`. Prefer the
    /// environment or .env to the flag (a flag shows in the process list); never logged.
    #[arg(
        long,
        env = "SUPABASE_SERVICE_ROLE_KEY",
        hide_env_values = true,
        global = true
    )]
    pub supabase_service_role_key: Option<Secret>,

    /// The Supabase Storage bucket holding the app's chunks and processed files.
    #[arg(
        long,
        env = "STORAGE_BUCKET",
        default_value = "audio-chunks",
        global = true
    )]
    pub storage_bucket: String,

    /// Public URLs of processed files become <base>/<storage path> (default: the store's own:
    /// Supabase's /object/public/ URL, the S3 bucket's URL, the storage path for the local
    /// directory).
    #[arg(long, env = "LAHSTATS_PUBLIC_URL_BASE", global = true)]
    pub public_url_base: Option<String>,

    /// A PEM file of the CA(s) a rediss:// server's certificate must chain to, instead of the
    /// system's trust store (or the file SSL_CERT_FILE names).
    #[arg(long, env = "LAHSTATS_REDIS_CA_CERT", global = true)]
    pub redis_ca_cert: Option<PathBuf>,

    /// Longest session accepted, in seconds of audio.
    #[arg(
        long,
        env = "LAHSTATS_MAX_AUDIO_SECONDS",
        default_value_t = 14_400.0,
        global = true
    )]
    pub max_audio_seconds: f64,

    /// Unix socket where the daemon answers stats queries.
    #[arg(
        long,
        env = "LAHSTATS_SOCKET",
        default_value = "./data/run/lahstats.sock",
        global = true
    )]
    pub socket: PathBuf,

    /// Seconds between stats lines while idle.
    #[arg(
        long,
        env = "LAHSTATS_STATS_INTERVAL",
        default_value_t = 300.0,
        global = true
    )]
    pub stats_interval: f64,

    /// Fewest speakers to look for (default: estimated from the audio).
    #[arg(long, env = "LAHSTATS_MIN_SPEAKERS", global = true)]
    pub min_speakers: Option<usize>,

    /// Most speakers to look for (default: estimated from the audio).
    #[arg(long, env = "LAHSTATS_MAX_SPEAKERS", global = true)]
    pub max_speakers: Option<usize>,

    /// Whisper model directory name under the models directory.
    #[arg(
        long,
        env = "LAHSTATS_WHISPER_MODEL",
        default_value = "whisper-tiny.en",
        global = true
    )]
    pub whisper_model: String,

    /// Text that biases Whisper towards the Singlish vocabulary ("" turns it off).
    #[arg(long, env = "LAHSTATS_INITIAL_PROMPT", global = true)]
    pub initial_prompt: Option<String>,

    /// Replace results even when users have already claimed the session's speakers.
    #[arg(
        long,
        env = "LAHSTATS_FORCE_RECLAIM",
        default_value_t = false,
        global = true
    )]
    pub force_reclaim: bool,
}

impl Config {
    /// Reads `.env` (when present) into the environment without overriding variables the
    /// process was started with. Called again on SIGHUP, so a changed `.env` takes effect.
    pub fn load_dotenv() {
        // The environment as the process got it: .env never overrides these, on any reload.
        static STARTED_WITH: OnceLock<HashSet<String>> = OnceLock::new();
        let started_with = STARTED_WITH.get_or_init(|| std::env::vars().map(|(k, _)| k).collect());
        let entries = match dotenvy::dotenv_iter() {
            Ok(entries) => entries,
            Err(err) if err.not_found() => return,
            Err(err) => return log::warn!("Ignoring .env: {err}"),
        };
        for entry in entries {
            match entry {
                Ok((key, value)) if !started_with.contains(&key) => std::env::set_var(key, value),
                Ok(_) => {}
                Err(err) => log::warn!("Ignoring a line of .env: {err}"),
            }
        }
    }

    pub fn processing_queue(&self) -> String {
        self.queue
            .clone()
            .unwrap_or_else(|| format!("{}:processing", self.key_prefix))
    }

    pub fn failed_queue(&self) -> String {
        self.failed_queue
            .clone()
            .unwrap_or_else(|| format!("{}:failed", self.key_prefix))
    }

    pub fn worker_id(&self) -> String {
        self.worker_id.clone().unwrap_or_else(default_worker_id)
    }

    /// Delay before retry number `attempt` (1-based): base × 2^(attempt−1).
    pub fn retry_delay(&self, attempt: u32) -> Duration {
        let factor = 2f64.powi(attempt.saturating_sub(1) as i32);
        Duration::from_secs_f64((self.retry_base_delay * factor).max(0.0))
    }

    pub fn heartbeat_ttl(&self) -> Duration {
        Duration::from_secs_f64(self.heartbeat_ttl.max(0.5))
    }

    pub fn drain_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.drain_timeout.max(0.0))
    }

    /// The retry delays as the banner shows them: "5s, 10s, 20s".
    pub fn retry_delays_text(&self) -> String {
        (1..=self.max_retries)
            .map(|n| format!("{}s", trim_float(self.retry_delay(n).as_secs_f64())))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A credential from the configuration: its Debug output is `***`, so printing a `Config`
/// cannot leak it. [`Secret::expose`] hands the value to the one client that sends it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(value: &str) -> Result<Secret, Self::Err> {
        Ok(Secret(value.to_string()))
    }
}

/// `<hostname>-<pid>`: unique per live process on a host.
fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "worker".to_string());
    format!("{host}-{}", std::process::id())
}

fn trim_float(value: f64) -> String {
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A URL with its password replaced by `***`, for logs and the banner.
pub fn mask_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let credentials = &authority[..at];
            match credentials.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &credentials[..colon],
                    &rest[at..]
                ),
                None => url.to_string(),
            }
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        config: Config,
    }

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            mask_url("redis://:secret@host:6379/0"),
            "redis://:***@host:6379/0"
        );
        assert_eq!(
            mask_url("postgres://app:pa@ss@db.example/lah"),
            "postgres://app:***@db.example/lah"
        );
        assert_eq!(mask_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(mask_url("./data/lahstats.db"), "./data/lahstats.db");
    }

    #[test]
    fn retry_delays_double_from_the_base() {
        let config = Wrapper::parse_from(["x", "--retry-base-delay", "5"]).config;
        assert_eq!(config.retry_delays_text(), "5s, 10s, 20s");
        let fast = Wrapper::parse_from(["x", "--retry-base-delay", "0.1", "--max-retries", "2"]);
        assert_eq!(fast.config.retry_delays_text(), "0.1s, 0.2s");
    }

    #[test]
    fn flags_beat_defaults_and_names_follow_the_prefix() {
        let config = Wrapper::parse_from(["x", "--key-prefix", "t1"]).config;
        assert_eq!(config.processing_queue(), "t1:processing");
        assert_eq!(config.failed_queue(), "t1:failed");
        let named = Wrapper::parse_from(["x", "--queue", "q", "--failed-queue", "f"]).config;
        assert_eq!(named.processing_queue(), "q");
        assert_eq!(named.failed_queue(), "f");
    }
}
