//! Which database `DATABASE_URL` names, the connection type that serves both backends, the
//! pool the Processor and the Settler draw from, and the embedded migrations run at start.

use std::path::{Path, PathBuf};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{self, R2D2Connection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::DbError;

/// Migrations for the app's Postgres database (create-if-missing, never destructive).
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
/// Migrations for the embedded SQLite database.
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// Where the embedded database lives when `DATABASE_URL` is unset.
pub const DEFAULT_SQLITE_PATH: &str = "./data/lahstats.db";

/// How long a pool checkout waits before a dead database becomes a (transient) error.
const DEFAULT_CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);
/// How long SQLite waits on a lock held by another connection before giving up.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 5_000;
/// Any fixed number: the advisory lock that keeps two workers from migrating at once.
const MIGRATION_LOCK_KEY: i64 = 0x1a45_7a75;

/// One connection to either backend; every query function takes `&mut DbConnection`.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Pg(PgConnection),
    Sqlite(SqliteConnection),
}

impl DbConnection {
    /// "postgres" or "sqlite", for log lines.
    pub fn backend_name(&self) -> &'static str {
        match self {
            DbConnection::Pg(_) => "postgres",
            DbConnection::Sqlite(_) => "sqlite",
        }
    }
}

/// The database `DATABASE_URL` points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbTarget {
    /// A libpq URL (`postgres://…` or `postgresql://…`).
    Postgres(String),
    /// A file path, a `file:` URI, or `:memory:`.
    Sqlite(String),
}

impl DbTarget {
    /// Reads `postgres://…`/`postgresql://…` as Postgres; `sqlite://path`, `sqlite:path`, a
    /// plain path or `:memory:` as SQLite; an empty string as the default SQLite file.
    pub fn parse(url: &str) -> Result<DbTarget, DbError> {
        let url = url.trim();
        if url.is_empty() {
            return Ok(DbTarget::Sqlite(DEFAULT_SQLITE_PATH.to_owned()));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DbTarget::Postgres(with_system_roots(
                &with_connect_timeout(url),
            )));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        if path.is_empty() || (path.contains("://") && !path.starts_with("file:")) {
            return Err(DbError::InvalidUrl {
                url: url.to_owned(),
            });
        }
        Ok(DbTarget::Sqlite(path.to_owned()))
    }

    /// "postgres" or "sqlite".
    pub fn backend_name(&self) -> &'static str {
        match self {
            DbTarget::Postgres(_) => "postgres",
            DbTarget::Sqlite(_) => "sqlite",
        }
    }

    /// The target with any password hidden, fit for a log line.
    pub fn redacted(&self) -> String {
        match self {
            DbTarget::Sqlite(path) => format!("sqlite:{path}"),
            DbTarget::Postgres(url) => crate::config::mask_url(url),
        }
    }

    fn is_in_memory(&self) -> bool {
        matches!(self, DbTarget::Sqlite(path) if path == ":memory:" || path.contains("mode=memory"))
    }

    /// Creates the directory an SQLite file will live in.
    fn prepare(&self) -> Result<(), DbError> {
        let DbTarget::Sqlite(path) = self else {
            return Ok(());
        };
        if self.is_in_memory() || path.starts_with("file:") {
            return Ok(());
        }
        match Path::new(path).parent() {
            Some(dir) if !dir.as_os_str().is_empty() => {
                std::fs::create_dir_all(dir).map_err(|source| DbError::DataDirectory {
                    path: PathBuf::from(dir),
                    source,
                })
            }
            _ => Ok(()),
        }
    }
}

/// libpq waits forever on an unroutable host unless told otherwise.
fn with_connect_timeout(url: &str) -> String {
    if url.contains("connect_timeout=") {
        return url.to_owned();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!(
        "{url}{separator}connect_timeout={}",
        DEFAULT_CONNECTION_TIMEOUT.as_secs()
    )
}

/// CA bundles where Debian/Ubuntu, Fedora/RHEL and Alpine/macOS keep the system's trust store.
const SYSTEM_CA_BUNDLES: [&str; 3] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// TLS to Postgres is libpq's: `sslmode=require` encrypts, `verify-ca`/`verify-full` also check
/// the server's certificate, against `sslrootcert=` when given. Without it libpq looks for
/// `~/.postgresql/root.crt` (and libpq before 16 knows no `sslrootcert=system`), which a
/// worker's machine rarely has; so, as for `rediss://`, a verifying URL without a root file of
/// its own is verified against `SSL_CERT_FILE` when set, else the system's CA bundle.
fn with_system_roots(url: &str) -> String {
    let param = |name: &str| {
        url.split_once('?').and_then(|(_, query)| {
            query.split('&').find_map(|pair| {
                let (key, value) = pair.split_once('=')?;
                (key == name).then(|| value.to_string())
            })
        })
    };
    let env = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    let mode = param("sslmode").or_else(|| env("PGSSLMODE"));
    if !matches!(mode.as_deref(), Some("verify-ca" | "verify-full")) {
        return url.to_owned();
    }
    let own_root = std::env::var_os("HOME")
        .map(|home| PathBuf::from(home).join(".postgresql/root.crt"))
        .is_some_and(|path| path.exists());
    if param("sslrootcert").is_some() || env("PGSSLROOTCERT").is_some() || own_root {
        return url.to_owned();
    }
    let bundle = env("SSL_CERT_FILE").or_else(|| {
        SYSTEM_CA_BUNDLES
            .iter()
            .find(|path| Path::new(path).exists())
            .map(|path| path.to_string())
    });
    let Some(bundle) = bundle else {
        return url.to_owned();
    };
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}sslrootcert={}", percent_encode(&bundle))
}

/// A file path as a URI query value (libpq decodes `%XX`).
fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'.' | b'-' | b'_' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// Opens connections for the pool. Unlike diesel's `ConnectionManager<DbConnection>`, which
/// tries every backend in turn and reports only "invalid connection url", it opens the backend
/// the URL names and passes its real error on (so "connection refused" reaches the log).
#[derive(Debug, Clone)]
pub struct DbManager {
    target: DbTarget,
}

impl DbManager {
    pub fn new(target: DbTarget) -> DbManager {
        DbManager { target }
    }

    pub fn target(&self) -> &DbTarget {
        &self.target
    }
}

impl r2d2::ManageConnection for DbManager {
    type Connection = DbConnection;
    type Error = ConnectionError;

    fn connect(&self) -> Result<DbConnection, ConnectionError> {
        match &self.target {
            DbTarget::Postgres(url) => PgConnection::establish(url).map(DbConnection::Pg),
            DbTarget::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(path)?;
                // WAL lets the app's readers and our writer work at once; foreign keys are off
                // by default in SQLite and the cascades depend on them.
                conn.batch_execute(&format!(
                    "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; \
                     PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;"
                ))
                .map_err(ConnectionError::CouldntSetupConfiguration)?;
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), ConnectionError> {
        conn.ping()
            .map_err(ConnectionError::CouldntSetupConfiguration)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        conn.is_broken()
    }
}

/// The pool the Processor and the Settler share.
pub type DbPool = r2d2::Pool<DbManager>;
/// A connection checked out of [`DbPool`].
pub type PooledDbConnection = r2d2::PooledConnection<DbManager>;

/// Pool sizing; the defaults suit the worker's two database users (Processor, Settler).
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_size: u32,
    /// How long a checkout waits for a live connection before failing as transient.
    pub connection_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_size: 4,
            connection_timeout: DEFAULT_CONNECTION_TIMEOUT,
        }
    }
}

/// Pool failures are logged by the caller that hit them; r2d2's own logger would repeat each one
/// at ERROR from its background threads for as long as the database is down.
#[derive(Debug)]
struct QuietErrors;

impl r2d2::HandleError<ConnectionError> for QuietErrors {
    fn handle_error(&self, error: ConnectionError) {
        log::debug!("Database connection attempt failed: {error}");
    }
}

/// A pool for `url` with default settings. Does not connect yet: an unreachable database shows
/// up as [`DbError::Unavailable`] on first use (e.g. [`run_migrations`]), not here.
pub fn connect(url: &str) -> Result<DbPool, DbError> {
    connect_with(url, &PoolSettings::default())
}

/// A pool for `url` with the given settings.
pub fn connect_with(url: &str, settings: &PoolSettings) -> Result<DbPool, DbError> {
    let target = DbTarget::parse(url)?;
    target.prepare()?;
    let in_memory = target.is_in_memory();
    let builder = r2d2::Pool::builder()
        .test_on_check_out(true)
        .connection_timeout(settings.connection_timeout)
        .error_handler(Box::new(QuietErrors));
    // Each connection to `:memory:` is a database of its own: keep exactly one, forever.
    let builder = if in_memory {
        builder
            .max_size(1)
            .min_idle(Some(1))
            .idle_timeout(None)
            .max_lifetime(None)
    } else {
        builder.max_size(settings.max_size.max(1)).min_idle(Some(0))
    };
    log::debug!("Database pool for {}", target.redacted());
    let manager = DbManager::new(target);
    if in_memory {
        builder.build(manager).map_err(DbError::from)
    } else {
        Ok(builder.build_unchecked(manager))
    }
}

/// Applies the embedded migrations of the pool's backend; returns the versions applied now
/// (empty when the schema was already current).
pub fn run_migrations(pool: &DbPool) -> Result<Vec<String>, DbError> {
    let mut conn = pool.get()?;
    let applied = match &mut *conn {
        DbConnection::Pg(pg) => migrate_postgres(pg)?,
        DbConnection::Sqlite(sqlite) => sqlite
            .run_pending_migrations(SQLITE_MIGRATIONS)
            .map(|versions| versions.iter().map(ToString::to_string).collect())
            .map_err(|err| DbError::Migration {
                reason: err.to_string(),
            })?,
    };
    Ok(applied)
}

/// Runs the Postgres migrations under an advisory lock, so workers starting together on the
/// same database take turns instead of racing on CREATE TABLE.
fn migrate_postgres(pg: &mut PgConnection) -> Result<Vec<String>, DbError> {
    pg.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
        .map_err(|source| DbError::Query {
            action: "taking the migration lock",
            source,
        })?;
    let result = pg
        .run_pending_migrations(POSTGRES_MIGRATIONS)
        .map(|versions| versions.iter().map(ToString::to_string).collect())
        .map_err(|err| DbError::Migration {
            reason: err.to_string(),
        });
    let unlocked = pg
        .batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
        .map_err(|source| DbError::Query {
            action: "releasing the migration lock",
            source,
        });
    let applied = result?;
    unlocked?;
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_select_the_backend() {
        let pg = DbTarget::parse("postgres://u:secret@db:5432/app").unwrap();
        assert_eq!(
            pg,
            DbTarget::Postgres("postgres://u:secret@db:5432/app?connect_timeout=2".into())
        );
        assert_eq!(
            pg.redacted(),
            "postgres://u:***@db:5432/app?connect_timeout=2"
        );
        assert_eq!(
            DbTarget::parse("postgresql://h/db?sslmode=require").unwrap(),
            DbTarget::Postgres("postgresql://h/db?sslmode=require&connect_timeout=2".into())
        );
        assert_eq!(
            DbTarget::parse("sqlite://x/y.db").unwrap(),
            DbTarget::Sqlite("x/y.db".into())
        );
        assert_eq!(
            DbTarget::parse("data/a.db").unwrap(),
            DbTarget::Sqlite("data/a.db".into())
        );
        assert_eq!(
            DbTarget::parse(":memory:").unwrap(),
            DbTarget::Sqlite(":memory:".into())
        );
        assert_eq!(
            DbTarget::parse("").unwrap(),
            DbTarget::Sqlite(DEFAULT_SQLITE_PATH.into())
        );
        assert!(matches!(
            DbTarget::parse("mysql://h/db"),
            Err(DbError::InvalidUrl { .. })
        ));
    }

    #[test]
    fn verifying_urls_without_a_root_file_use_the_system_bundle() {
        let given = "postgres://h/db?sslmode=verify-full&sslrootcert=/x/ca.pem";
        assert_eq!(with_system_roots(given), given);
        let plain = "postgres://h/db?sslmode=require";
        assert_eq!(with_system_roots(plain), plain);
        let verify = with_system_roots("postgres://h/db?sslmode=verify-full");
        let own_root = std::env::var_os("HOME")
            .is_some_and(|home| PathBuf::from(home).join(".postgresql/root.crt").exists());
        if std::env::var_os("PGSSLROOTCERT").is_none() && !own_root {
            assert!(verify.contains("&sslrootcert=/"), "{verify}");
        }
        assert_eq!(percent_encode("/a b/c+d.pem"), "/a%20b/c%2Bd.pem");
    }
}
