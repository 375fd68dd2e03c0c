//! TLS for the worker's Redis connections: `rediss://` URLs (the managed services — Upstash,
//! ElastiCache, Redis Cloud — speak nothing else) through the redis crate's rustls support. The
//! server's certificate is verified against the CA file `LAHSTATS_REDIS_CA_CERT` when set, else
//! the system's trust store (or the bundle `SSL_CERT_FILE` names). Postgres TLS is libpq's own
//! (`sslmode=`, `sslrootcert=` in `DATABASE_URL`; see `db::connection`).

use std::path::PathBuf;
use std::sync::{Once, RwLock};
use std::time::Duration;

use redis::{Client, Connection, ErrorKind, RedisError, RedisResult};

/// The setting naming the CA file for `rediss://` servers (`--redis-ca-cert`), as messages name it.
pub const REDIS_CA_ENV: &str = "LAHSTATS_REDIS_CA_CERT";

/// The CA file every Redis client of the process verifies `rediss://` servers against: set from
/// the configuration at start and on reload (never through the process environment, which
/// libtorch, libpq and FFmpeg threads may be reading).
static REDIS_CA_FILE: RwLock<Option<PathBuf>> = RwLock::new(None);

/// Sets the CA file for `rediss://` servers (`None`: the system's trust store).
pub fn set_redis_ca_file(file: Option<PathBuf>) {
    *REDIS_CA_FILE
        .write()
        .unwrap_or_else(|poison| poison.into_inner()) = file.filter(|f| !f.as_os_str().is_empty());
}

/// Makes rustls use one crypto provider for the whole process (aws-lc-rs, the one the storage
/// clients use), whatever else the dependency graph enables.
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Fails only when a provider is installed already, which is as good.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}

/// The CA file set for `rediss://` servers, if any.
pub fn redis_ca_file() -> Option<PathBuf> {
    REDIS_CA_FILE
        .read()
        .unwrap_or_else(|poison| poison.into_inner())
        .clone()
}

/// A client for the Redis at `url`. For `rediss://` the server's certificate must chain to the
/// CA file set by [`set_redis_ca_file`] when set, else to the system's trust store (or `SSL_CERT_FILE`).
pub fn redis_client(url: &str) -> RedisResult<Client> {
    install_crypto_provider();
    let tls = url
        .get(..9)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("rediss://"));
    let ca_file = if tls { redis_ca_file() } else { None };
    let Some(ca_file) = ca_file else {
        return Client::open(url);
    };
    let pem = std::fs::read(&ca_file).map_err(|err| {
        RedisError::from((
            ErrorKind::InvalidClientConfig,
            "the CA file for rediss:// cannot be read",
            format!("{REDIS_CA_ENV}={}: {err}", ca_file.display()),
        ))
    })?;
    Client::build_with_tls(
        url,
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem),
        },
    )
}

/// Connects `client`, waiting at most `timeout`. A certificate the trust settings do not cover
/// comes back as an error that says so and names the settings to fix.
pub fn redis_connect(client: &Client, timeout: Duration) -> RedisResult<Connection> {
    client
        .get_connection_with_timeout(timeout)
        .map_err(explain_tls_failure)
}

/// Rewrites a TLS handshake failure into an error naming the trust settings.
fn explain_tls_failure(err: RedisError) -> RedisError {
    let text = crate::error::error_chain(&err);
    let certificate = [
        "certificate",
        "UnknownIssuer",
        "NotValidForName",
        "BadSignature",
    ]
    .iter()
    .any(|needle| text.contains(needle));
    if !certificate {
        return err;
    }
    let trusted = match redis_ca_file() {
        Some(file) => format!("the CA in {REDIS_CA_ENV}={}", file.display()),
        None => match std::env::var_os("SSL_CERT_FILE").filter(|v| !v.is_empty()) {
            Some(file) => format!("the CAs in SSL_CERT_FILE={}", PathBuf::from(file).display()),
            None => "the system's trust store".to_string(),
        },
    };
    RedisError::from((
        ErrorKind::Io,
        "TLS certificate refused",
        format!(
            "the Redis server's certificate was refused ({text}): it must be issued for the \
             host in REDIS_URL and chain to {trusted}; set {REDIS_CA_ENV} to the PEM file of the \
             CA that signed it"
        ),
    ))
}
