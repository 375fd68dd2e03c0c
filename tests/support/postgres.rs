//! Real Postgres for the integration tests: a throwaway database on the shared server, or a
//! private server of our own that a test may stop and start again.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

/// The shared server the tests may create databases on.
pub fn server_url() -> String {
    std::env::var("LAHSTATS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// `url` with its database name replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_part = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{host_part}/{database}?{query}"),
        None => format!("{host_part}/{database}"),
    }
}

/// A database created for one test; dropped (even with connections still open) on Drop.
pub struct TempDatabase {
    pub url: String,
    admin_url: String,
    name: String,
}

impl TempDatabase {
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        match PgConnection::establish(&self.admin_url) {
            Ok(mut admin) => {
                let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
                if let Err(err) = admin.batch_execute(&sql) {
                    eprintln!("could not drop test database {}: {err}", self.name);
                }
            }
            Err(err) => eprintln!("could not drop test database {}: {err}", self.name),
        }
    }
}

/// A new, empty, uniquely named database on the server at `LAHSTATS_TEST_POSTGRES_URL`.
pub fn fresh_database() -> TempDatabase {
    create_database_on(&server_url())
}

/// A new, empty, uniquely named database on the server `admin_url` points at.
pub fn create_database_on(admin_url: &str) -> TempDatabase {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "lahstats_test_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        uuid::Uuid::new_v4()
            .simple()
            .to_string()
            .get(..8)
            .unwrap_or("x")
    );
    let mut admin = PgConnection::establish(admin_url)
        .unwrap_or_else(|err| panic!("test Postgres at {admin_url} is not reachable: {err}"));
    admin
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .expect("create test database");
    TempDatabase {
        url: with_database(admin_url, &name),
        admin_url: admin_url.to_owned(),
        name,
    }
}

/// A Postgres server of our own in a temporary directory, on a free port, that a test may stop
/// and start (to play a database outage). Stopped and deleted on Drop.
pub struct PrivatePostgres {
    bin: PathBuf,
    root: tempfile::TempDir,
    port: u16,
}

impl PrivatePostgres {
    /// initdb + pg_ctl start. As root, the server runs as the `postgres` OS user.
    pub fn start_new() -> PrivatePostgres {
        let bin = postgres_bin_dir();
        let root = tempfile::Builder::new()
            .prefix("lahstats-pg-")
            .tempdir()
            .expect("tempdir");
        if running_as_root() {
            chown_to_postgres(root.path());
        }
        let port = free_port();
        let server = PrivatePostgres { bin, root, port };
        let data = server.data_dir();
        server.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        server.start();
        server
    }

    /// Admin URL of the server's `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Fast shutdown: open connections are cut, as when a database server goes away.
    pub fn stop(&self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data_dir(), "-m", "fast", "-w", "stop"],
        );
    }

    /// Starts the server again on the same port and waits until it accepts connections.
    pub fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.root.path().display()
        );
        let log = self.root.path().join("server.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir(),
                "-o",
                &options,
                "-l",
                &log.to_string_lossy(),
                "-w",
                "start",
            ],
        );
    }

    /// Restarts the server speaking TLS only (`ssl = on`, `hostssl` rules) with `cert` and
    /// `key`: a connection without TLS is refused.
    pub fn require_tls(&self, cert: &Path, key: &Path) {
        let root = self.root.path();
        std::fs::copy(cert, root.join("server.crt")).expect("copy certificate");
        std::fs::copy(key, root.join("server.key")).expect("copy key");
        std::fs::set_permissions(
            root.join("server.key"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .expect("key permissions");
        if running_as_root() {
            chown_to_postgres(&root.join("server.crt"));
            chown_to_postgres(&root.join("server.key"));
        }
        let data = PathBuf::from(self.data_dir());
        let mut conf = std::fs::read_to_string(data.join("postgresql.conf")).expect("conf");
        conf.push_str(&format!(
            "\nssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
            root.join("server.crt").display(),
            root.join("server.key").display()
        ));
        std::fs::write(data.join("postgresql.conf"), conf).expect("write conf");
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n\
             hostnossl all all all reject\n",
        )
        .expect("write pg_hba.conf");
        self.stop();
        self.start();
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    fn data_dir(&self) -> String {
        self.root.path().join("data").to_string_lossy().into_owned()
    }

    fn run(&self, program: &str, args: &[&str]) {
        let program = self.bin.join(program);
        let mut command = if running_as_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&program);
            command
        } else {
            Command::new(&program)
        };
        let output = command
            .args(args)
            .current_dir(self.root.path())
            .output()
            .expect("run postgres tool");
        assert!(
            output.status.success(),
            "{} {:?} failed: {}{}",
            program.display(),
            args,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        // Ignore the outcome: the server may already be stopped.
        let program = self.bin.join("pg_ctl");
        let data = self.data_dir();
        let args = ["-D", data.as_str(), "-m", "immediate", "-w", "stop"];
        let _ = if running_as_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&program)
                .args(args)
                .output()
        } else {
            Command::new(&program).args(args).output()
        };
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin`.
fn postgres_bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("Postgres server binaries under /usr/lib/postgresql")
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("pg_ctl").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().expect("a Postgres version with pg_ctl").1
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn chown_to_postgres(path: &Path) {
    let id = |flag: &str| -> u32 {
        let output = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("id postgres");
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .expect("numeric id of postgres")
    };
    std::os::unix::fs::chown(path, Some(id("-u")), Some(id("-g")))
        .expect("chown tempdir to postgres");
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// A test database on either backend: a fresh Postgres database, or an SQLite file in a
/// temporary directory.
pub enum TestDb {
    Postgres(TempDatabase),
    Sqlite {
        _dir: tempfile::TempDir,
        path: String,
    },
}

impl TestDb {
    pub fn postgres() -> TestDb {
        TestDb::Postgres(fresh_database())
    }

    pub fn sqlite() -> TestDb {
        let dir = tempfile::Builder::new()
            .prefix("lahstats-sqlite-")
            .tempdir()
            .expect("tempdir");
        let path = dir
            .path()
            .join("nested")
            .join("lahstats.db")
            .to_string_lossy()
            .into_owned();
        TestDb::Sqlite { _dir: dir, path }
    }

    /// Both backends, for tests that must hold on each.
    pub fn both() -> [TestDb; 2] {
        [TestDb::postgres(), TestDb::sqlite()]
    }

    pub fn url(&self) -> String {
        match self {
            TestDb::Postgres(db) => db.url.clone(),
            TestDb::Sqlite { path, .. } => format!("sqlite://{path}"),
        }
    }

    pub fn backend(&self) -> &'static str {
        match self {
            TestDb::Postgres(_) => "postgres",
            TestDb::Sqlite { .. } => "sqlite",
        }
    }

    /// A pool on this database with the migrations applied.
    pub fn migrated_pool(&self) -> lahstats_worker::db::DbPool {
        let pool = lahstats_worker::db::connect(&self.url()).expect("pool");
        lahstats_worker::db::run_migrations(&pool).expect("migrations");
        pool
    }
}
