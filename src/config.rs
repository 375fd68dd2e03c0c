//! The worker's configuration: flags beat environment variables, which beat a `.env` file, which
//! beats the defaults. The defaults run on one machine with nothing configured.

use std::collections::BTreeMap;
use std::path::PathBuf;
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

    /// Delay before the first retry (5s, 500ms, or plain seconds); each further retry waits
    /// twice as long.
    #[arg(
        long,
        env = "LAHSTATS_RETRY_BASE_DELAY",
        default_value = "5s",
        value_parser = parse_duration,
        global = true
    )]
    pub retry_base_delay: Duration,

    /// Times a job may be taken back from a worker that died while holding it (killed, out of
    /// memory, crashed in native code) before it goes to the failed list; 2 means 3 deliveries.
    #[arg(
        long,
        env = "LAHSTATS_MAX_REDELIVERIES",
        default_value_t = 2,
        global = true
    )]
    pub max_redeliveries: u32,

    /// This worker's id in Redis (default: <hostname>-<pid>). Must be unique per live process.
    #[arg(long, env = "LAHSTATS_WORKER_ID", global = true)]
    pub worker_id: Option<String>,

    /// How long a worker's heartbeat lives (at least 1s); a worker silent for longer is presumed
    /// dead and its jobs are requeued.
    #[arg(
        long,
        env = "LAHSTATS_HEARTBEAT_TTL",
        default_value = "30s",
        value_parser = parse_heartbeat_ttl,
        global = true
    )]
    pub heartbeat_ttl: Duration,

    /// How long the job in hand may take to finish after SIGTERM before the worker exits anyway
    /// (the job then goes back on the queue and is taken again).
    #[arg(
        long,
        env = "LAHSTATS_DRAIN_TIMEOUT",
        default_value = "5m",
        value_parser = parse_duration,
        global = true
    )]
    pub drain_timeout: Duration,

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

    /// Longest session accepted, in audio time (4h, 90m, or plain seconds).
    #[arg(
        long,
        env = "LAHSTATS_MAX_AUDIO_SECONDS",
        default_value = "4h",
        value_parser = parse_duration,
        global = true
    )]
    pub max_audio_seconds: Duration,

    /// Unix socket where the daemon answers stats queries.
    #[arg(
        long,
        env = "LAHSTATS_SOCKET",
        default_value = "./data/run/lahstats.sock",
        global = true
    )]
    pub socket: PathBuf,

    /// Time between stats lines while idle (at least 1s).
    #[arg(
        long,
        env = "LAHSTATS_STATS_INTERVAL",
        default_value = "5m",
        value_parser = parse_duration,
        global = true
    )]
    pub stats_interval: Duration,

    /// How often sessions still recording are checked for new chunks, which are analysed as
    /// they arrive so a job has little left to do (0s: not before the job).
    #[arg(
        long,
        env = "LAHSTATS_PREPARE_INTERVAL",
        default_value = "5s",
        value_parser = parse_duration,
        global = true
    )]
    pub prepare_interval: Duration,

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

    /// Number format of Whisper's vocabulary projection on the CPU: `int8` (dynamically
    /// quantized, through models/int8_linear.pt; half a decoding step's time saved) or `f32`
    /// (the reference's numbers).
    #[arg(
        long,
        env = "LAHSTATS_WHISPER_PROJECTION",
        default_value = "int8",
        value_parser = ["int8", "f32"],
        global = true
    )]
    pub whisper_projection: String,

    /// Text put before the first window's prompt to bias Whisper's spellings (e.g.
    /// `speech::SINGLISH_PROMPT`); none by default, as measured on real recordings.
    #[arg(long, env = "LAHSTATS_INITIAL_PROMPT", global = true)]
    pub initial_prompt: Option<String>,

    /// Beams of Whisper's search at temperature 0 (1: greedy decoding, faster and less
    /// accurate).
    #[arg(
        long,
        env = "LAHSTATS_BEAM_SIZE",
        default_value_t = crate::inference::whisper::BEAM_SIZE,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=16),
        global = true
    )]
    pub beam_size: usize,

    /// Process sessions again even when they are already `ready_for_claiming` or their speakers
    /// are claimed (their results and claims are replaced). For an operator's re-run; a single
    /// job can ask for the same with `"force": true` (`failed retry --force`).
    #[arg(
        long,
        env = "LAHSTATS_FORCE_RECLAIM",
        default_value_t = false,
        global = true
    )]
    pub force_reclaim: bool,
}

impl Config {
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

    /// Delay before retry number `retry` (1-based): base × 2^(retry−1), saturating.
    pub fn retry_delay(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        self.retry_base_delay.saturating_mul(factor)
    }

    /// The retry delays as the banner shows them: "5s, 10s, 20s".
    pub fn retry_delays_text(&self) -> String {
        (1..=self.max_retries)
            .map(|n| format!("{}s", trim_float(self.retry_delay(n).as_secs_f64())))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

// ---- sources ----

/// The entries of the `.env` file, found as dotenvy finds it (the current directory or a parent);
/// empty when there is none. Only read: the process environment is never changed, so reading it
/// again on SIGHUP cannot race the libtorch, libpq or FFmpeg threads that read the environment.
/// `Cli::load` gives these entries the lowest priority of the configuration's sources.
pub fn dotenv_entries() -> BTreeMap<String, String> {
    let entries = match dotenvy::dotenv_iter() {
        Ok(entries) => entries,
        Err(err) if err.not_found() => return BTreeMap::new(),
        Err(err) => {
            log::warn!("Ignoring .env: {err}");
            return BTreeMap::new();
        }
    };
    let mut found = BTreeMap::new();
    for entry in entries {
        match entry {
            Ok((key, value)) => {
                found.insert(key, value);
            }
            Err(err) => log::warn!("Ignoring a line of .env: {err}"),
        }
    }
    found
}

// ---- durations ----

/// The longest duration any setting accepts. Far beyond any sensible value, and far below what
/// `Instant + Duration` or a doubling retry delay could overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Parses a duration setting: a human duration (`humantime`: `30s`, `500ms`, `1m30s`, `2h`,
/// `7d`) or a plain number of seconds (`5`, `0.25`, as earlier versions took). Infinite, NaN,
/// negative and overflowing values are rejected with a message saying why, as is anything over
/// a year ([`MAX_DURATION`]).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let duration = if let Ok(seconds) = text.parse::<f64>() {
        if !seconds.is_finite() {
            return Err(format!("{text:?} is not a finite duration"));
        }
        if seconds < 0.0 {
            return Err(format!(
                "{text:?} is negative; a duration must be 0 or more"
            ));
        }
        Duration::try_from_secs_f64(seconds)
            .map_err(|_| format!("{text:?} seconds is too long to represent"))?
    } else {
        humantime::parse_duration(text).map_err(|err| {
            format!("{text:?} is not a duration like 30s, 500ms, 1m30s, 2h or 7d ({err})")
        })?
    };
    if duration > MAX_DURATION {
        return Err(format!(
            "{text:?} is longer than the limit of {} days",
            MAX_DURATION.as_secs() / 86_400
        ));
    }
    Ok(duration)
}

/// A heartbeat TTL: a duration of at least one second (the heartbeat beats every third of it).
fn parse_heartbeat_ttl(text: &str) -> Result<Duration, String> {
    let ttl = parse_duration(text)?;
    if ttl < Duration::from_secs(1) {
        return Err(format!("{text:?} is shorter than the 1s minimum"));
    }
    Ok(ttl)
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

/// A database or Redis location with every password replaced by `***`, for logs, the banner and
/// error messages; the one redactor of the project.
///
/// - `scheme://user:password@host/…`: the credentials run to the *last* `@`, so a password
///   holding `@`, `/`, `:` or `?` is hidden whole (an `@` later in a query may hide a little more
///   than the password; never less).
/// - `password=…` in a query string or a libpq key/value string (`host=db password=secret`,
///   quoted or not) is hidden too.
pub fn mask_url(url: &str) -> String {
    mask_password_parameters(&mask_userinfo(url))
}

fn mask_userinfo(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let Some(at) = rest.rfind('@') else {
        return url.to_string();
    };
    match rest[..at].find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end],
            &rest[..colon],
            &rest[at..]
        ),
        None => url.to_string(),
    }
}

fn mask_password_parameters(text: &str) -> String {
    const KEY: &str = "password=";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(found) = rest.to_ascii_lowercase().find(KEY) {
        let value_start = found + KEY.len();
        out.push_str(&rest[..value_start]);
        out.push_str("***");
        let value = &rest[value_start..];
        let value_len = match value.strip_prefix('\'') {
            // libpq quoting: 'it''s' or 'a\'b'; the value ends at the closing quote.
            Some(quoted) => {
                let mut chars = quoted.char_indices();
                let mut end = quoted.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '\'' => {
                            end = i + 1;
                            break;
                        }
                        _ => {}
                    }
                }
                1 + end
            }
            None => value
                .find(|c: char| c == '&' || c == '#' || c.is_whitespace())
                .unwrap_or(value.len()),
        };
        rest = &value[value_len..];
    }
    out.push_str(rest);
    out
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
        let cases = [
            ("redis://:secret@host:6379/0", "redis://:***@host:6379/0"),
            (
                "postgres://app:pa@ss@db.example/lah",
                "postgres://app:***@db.example/lah",
            ),
            (
                "postgres://app:pa/ss:w@rd@db.example:5432/lah?sslmode=require",
                "postgres://app:***@db.example:5432/lah?sslmode=require",
            ),
            (
                "postgresql://db/lah?user=app&password=s3cr@t&sslmode=require",
                "postgresql://db/lah?user=app&password=***&sslmode=require",
            ),
            (
                r"host=db user=app password='it\'s secret' dbname=lah",
                "host=db user=app password=*** dbname=lah",
            ),
            (
                "host=db PASSWORD=plain dbname=lah",
                "host=db PASSWORD=*** dbname=lah",
            ),
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            ("redis://user@host:6379", "redis://user@host:6379"),
            ("./data/lahstats.db", "./data/lahstats.db"),
        ];
        for (url, masked) in cases {
            assert_eq!(mask_url(url), masked, "{url}");
            for secret in ["secret", "pa@ss", "ss:w", "s3cr", "plain"] {
                assert!(!mask_url(url).contains(secret), "{url}");
            }
        }
    }

    #[test]
    fn retry_delays_double_from_the_base() {
        let config = Wrapper::parse_from(["x", "--retry-base-delay", "5"]).config;
        assert_eq!(config.retry_delays_text(), "5s, 10s, 20s");
        let fast = Wrapper::parse_from(["x", "--retry-base-delay", "0.1", "--max-retries", "2"]);
        assert_eq!(fast.config.retry_delays_text(), "0.1s, 0.2s");
    }

    #[test]
    fn durations_are_human_or_seconds_and_never_infinite_negative_or_huge() {
        let ok = [
            ("5", 5_000),
            ("0.25", 250),
            ("500ms", 500),
            ("1m30s", 90_000),
            ("2h", 7_200_000),
            (" 7d ", 604_800_000),
            ("0", 0),
        ];
        for (text, millis) in ok {
            assert_eq!(
                parse_duration(text).map(|d| d.as_millis()),
                Ok(millis),
                "{text}"
            );
        }
        let refused = [
            ("inf", "not a finite duration"),
            ("NaN", "not a finite duration"),
            ("-1", "negative"),
            ("-5s", "not a duration like"),
            ("1e300", "too long"),
            ("99999999999999999999999s", "not a duration like"),
            ("400d", "longer than the limit of 365 days"),
            ("soon", "not a duration like"),
            ("", "not a duration like"),
        ];
        for (text, reason) in refused {
            let err = parse_duration(text).expect_err(text);
            assert!(err.contains(reason), "{text}: {err}");
        }
        assert!(parse_heartbeat_ttl("500ms")
            .unwrap_err()
            .contains("1s minimum"));
        // At the command line, a bad value is refused before anything runs.
        let err = Wrapper::try_parse_from(["x", "--drain-timeout", "inf"])
            .err()
            .expect("inf refused");
        assert!(err.to_string().contains("not a finite duration"), "{err}");
        let config = Wrapper::parse_from(["x"]).config;
        assert_eq!(config.heartbeat_ttl, Duration::from_secs(30));
        assert_eq!(config.drain_timeout, Duration::from_secs(300));
        assert_eq!(config.max_audio_seconds, Duration::from_secs(4 * 3600));
        assert_eq!(config.max_redeliveries, 2);
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
