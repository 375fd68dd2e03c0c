//! Object stores and TLS servers for the storage tests: the real Supabase Storage server and the
//! S3 server (moto) that scripts/test starts, certificates from a CA made with openssl at test
//! time, a TLS-only Redis, and a worker daemon wired to them. Uploads and downloads here use
//! curl, a client independent of the worker's own.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use lahstats_worker::db::schema::{session_speakers, sessions};
use lahstats_worker::db::sql_types::DbUuid;

use super::daemon::Daemon;

/// A name no other test or run uses.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

fn required_env(name: &str, started_by: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| {
        panic!("{name} is not set: scripts/test starts {started_by} and sets it (run scripts/test, or start it yourself and export {name})")
    })
}

/// Runs curl with `args`; returns (HTTP status, body).
pub fn curl(args: &[&str]) -> (u16, Vec<u8>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let body = dir.path().join("body");
    let output = Command::new("curl")
        .args(["-sS", "-o"])
        .arg(&body)
        .args(["-w", "%{http_code}"])
        .args(args)
        .output()
        .expect("run curl");
    assert!(
        output.status.success(),
        "curl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let status = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("HTTP status from curl");
    (status, std::fs::read(&body).unwrap_or_default())
}

/// The real Supabase Storage server (tests/fixtures/supabase-storage/start-storage), at the
/// root of its URL as the fixture serves it (the hosted one is under /storage/v1).
pub struct Supabase {
    pub url: String,
    pub service_key: String,
    pub anon_key: String,
}

pub fn supabase() -> Supabase {
    let server = "the Supabase Storage server (tests/fixtures/supabase-storage/start-storage)";
    Supabase {
        url: required_env("LAHSTATS_TEST_SUPABASE_URL", server),
        service_key: required_env("LAHSTATS_TEST_SUPABASE_SERVICE_KEY", server),
        anon_key: required_env("LAHSTATS_TEST_SUPABASE_ANON_KEY", server),
    }
}

impl Supabase {
    fn auth(&self) -> [String; 4] {
        [
            "-H".into(),
            format!("Authorization: Bearer {}", self.service_key),
            "-H".into(),
            format!("apikey: {}", self.service_key),
        ]
    }

    /// Creates a bucket, public (as the app's is) or not.
    pub fn create_bucket(&self, name: &str, public: bool) {
        self.create_bucket_with(format!(r#"{{"name":"{name}","public":{public}}}"#));
    }

    /// Creates a public bucket that refuses files larger than `bytes`.
    pub fn create_bucket_with_size_limit(&self, name: &str, bytes: u64) {
        let body = format!(r#"{{"name":"{name}","public":true,"file_size_limit":{bytes}}}"#);
        self.create_bucket_with(body);
    }

    /// `POST /bucket` with `body` (JSON) as the service role.
    fn create_bucket_with(&self, body: String) {
        let auth = self.auth();
        let mut args: Vec<&str> = auth.iter().map(String::as_str).collect();
        let url = format!("{}/bucket", self.url);
        args.extend(["-X", "POST", "-H", "content-type: application/json", "-d"]);
        args.extend([body.as_str(), url.as_str()]);
        let (status, reply) = curl(&args);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
    }

    /// Uploads `file` to `bucket` at `key` as the app's API does: `POST /object/<bucket>/<key>`
    /// with the service-role key.
    pub fn upload(&self, bucket: &str, key: &str, file: &Path, content_type: &str) {
        let url = format!("{}/object/{bucket}/{key}", self.url);
        let data = format!("@{}", file.display());
        let content = format!("content-type: {content_type}");
        let auth = self.auth();
        let mut args: Vec<&str> = auth.iter().map(String::as_str).collect();
        args.extend(["-X", "POST", "-H", &content, "--data-binary", &data, &url]);
        let (status, reply) = curl(&args);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
    }

    /// The environment that points a worker at `bucket` on this server.
    pub fn worker_env(&self, bucket: &str) -> Vec<(&'static str, String)> {
        vec![
            ("SUPABASE_STORAGE_URL", self.url.clone()),
            ("SUPABASE_SERVICE_ROLE_KEY", self.service_key.clone()),
            ("STORAGE_BUCKET", bucket.to_string()),
        ]
    }
}

/// The S3 server (moto) scripts/test starts; it takes any credentials.
pub struct S3 {
    pub endpoint: String,
}

pub fn s3() -> S3 {
    S3 {
        endpoint: required_env("LAHSTATS_TEST_S3_ENDPOINT", "an S3 server (moto)"),
    }
}

impl S3 {
    /// Creates a bucket anyone may read objects from (as an app's public bucket).
    pub fn create_public_bucket(&self, bucket: &str) {
        let url = format!("{}/{bucket}", self.endpoint);
        let (status, reply) = curl(&["-X", "PUT", &url]);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
        let policy = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{bucket}/*"}}]}}"#
        );
        let policy_url = format!("{url}?policy");
        let (status, reply) = curl(&[
            "-X",
            "PUT",
            "-H",
            "content-type: application/json",
            "--data-binary",
            &policy,
            &policy_url,
        ]);
        assert!(status < 300, "{}", String::from_utf8_lossy(&reply));
    }

    /// The standard AWS variables for this server (a worker, or the test process before it
    /// builds a store).
    pub fn aws_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "lahstats-test".into()),
            ("AWS_SECRET_ACCESS_KEY", "lahstats-test-secret".into()),
        ]
    }
}

/// Two chunks of two voices, one sentence each: an M4A with its index at the end (as phones
/// write them: the worker must spool it) and one with its index first (streamed).
pub fn two_chunks(dir: &Path) -> [PathBuf; 2] {
    let sentences = super::speech::SENTENCES;
    let first = super::speech::conversation(0.3, &[(0, sentences[0], 0.5)], 0.002);
    let second = super::speech::conversation(0.3, &[(1, sentences[9], 0.5)], 0.002);
    let mut made = Vec::new();
    for (name, conversation, extra) in [
        ("chunk0", first, &[][..]),
        ("chunk1", second, &["-movflags", "+faststart"][..]),
    ] {
        let wav = dir.join(format!("{name}.wav"));
        lahstats_worker::audio::write_wav(&conversation.samples, &wav).expect("wav");
        let m4a = dir.join(format!("{name}.m4a"));
        let mut args = vec!["-c:a", "aac", "-b:a", "64k"];
        args.extend_from_slice(extra);
        super::audio::ffmpeg(&wav, &m4a, &args);
        made.push(m4a);
    }
    [made[0].clone(), made[1].clone()]
}

/// A worker daemon on its own SQLite database, key prefix and socket, plus `extra` settings.
pub struct Worker {
    pub dir: tempfile::TempDir,
    pub env: Vec<(&'static str, String)>,
    pub daemon: Option<Daemon>,
}

impl Worker {
    pub fn new(extra: Vec<(&'static str, String)>) -> Worker {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("worker.db").display().to_string();
        let mut env = super::daemon::daemon_env(dir.path(), db);
        env.push(("LAHSTATS_RETRY_BASE_DELAY", "1".into()));
        // Which chunks were streamed and which spooled, and every upload.
        env.push((
            "RUST_LOG",
            "info,lahstats_worker::audio::fetch=debug,lahstats_worker::storage=debug".into(),
        ));
        for (key, value) in extra {
            env.retain(|(k, _)| *k != key);
            env.push((key, value));
        }
        Worker {
            dir,
            env,
            daemon: None,
        }
    }

    pub fn var(&self, key: &str) -> String {
        self.env
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    fn pool(&self) -> lahstats_worker::db::DbPool {
        let pool = lahstats_worker::db::connect(&self.var("DATABASE_URL")).expect("database");
        lahstats_worker::db::run_migrations(&pool).expect("migrations");
        pool
    }

    /// Registers a session with chunks at `keys`, in order, as the API does.
    pub fn register(&self, session: uuid::Uuid, keys: &[String]) {
        let chunks: Vec<(i32, String, Option<f64>)> = keys
            .iter()
            .enumerate()
            .map(|(number, key)| (number as i32, key.clone(), None))
            .collect();
        let mut conn = self.pool().get().expect("connection");
        lahstats_worker::db::queries::register_session(
            &mut conn,
            session,
            uuid::Uuid::nil(),
            &chunks,
        )
        .expect("register session");
    }

    /// The API's LPUSH of a finished recording.
    pub fn push(&self, session: uuid::Uuid) {
        let payload =
            format!(r#"{{"session_id": "{session}", "queued_at": "2026-01-17T19:00:00"}}"#);
        let mut conn = redis::Client::open(self.var("REDIS_URL"))
            .expect("redis url")
            .get_connection()
            .expect("redis");
        let _: () = redis::cmd("LPUSH")
            .arg(format!("{}:processing", self.var("LAHSTATS_KEY_PREFIX")))
            .arg(payload)
            .query(&mut conn)
            .expect("LPUSH");
    }

    /// Starts `lahstats-worker run` and waits until it takes jobs.
    pub fn start(&mut self) {
        let daemon = Daemon::start(self.dir.path(), &["run"], &self.env);
        assert!(
            daemon.wait_for_log("Listening for jobs", Duration::from_secs(60)),
            "the worker never listened"
        );
        self.daemon = Some(daemon);
    }

    pub fn run_cli(&self, args: &[&str]) -> std::process::Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_lahstats-worker"));
        command.args(args).current_dir(self.dir.path());
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command.output().expect("run lahstats-worker")
    }

    /// (status, error_message) as the app reads them.
    pub fn status(&self, session: uuid::Uuid) -> (String, Option<String>) {
        let mut conn = self.pool().get().expect("connection");
        let (status, _, error) =
            lahstats_worker::db::queries::session_status(&mut conn, session).expect("status");
        (status, error)
    }

    /// Waits until the session is ready or failed; returns the final status.
    pub fn wait_settled(&self, session: uuid::Uuid, timeout: Duration) -> (String, Option<String>) {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.status(session);
            if status.0 == "ready_for_claiming" || status.0 == "failed" || Instant::now() > deadline
            {
                return status;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `sessions.audio_url` and each speaker's `sample_audio_url`.
    /// The session's `audio_url` and every `sample_audio_url` are `public(file)` for their
    /// file under `processed/`, and each fetched from there decodes: full_audio.wav longer
    /// than 5 s, each sample 0.2–5 s.
    pub fn assert_processed_files_play(
        &self,
        session: uuid::Uuid,
        public: impl Fn(&str) -> String,
    ) {
        let (audio_url, samples) = self.urls(session);
        assert_eq!(
            audio_url.as_deref(),
            Some(public("full_audio.wav").as_str())
        );
        let full = fetch_and_decode(&public("full_audio.wav"));
        assert!(full > 5.0, "full_audio.wav holds {full:.1} s");
        assert!(!samples.is_empty());
        for (label, url) in samples {
            let expected = public(&format!("speaker_{label}_sample.wav"));
            assert_eq!(url.as_deref(), Some(expected.as_str()));
            let seconds = fetch_and_decode(&expected);
            assert!(seconds > 0.2 && seconds <= 5.01, "{label}: {seconds:.2} s");
        }
    }

    pub fn urls(&self, session: uuid::Uuid) -> (Option<String>, Vec<(String, Option<String>)>) {
        let mut conn = self.pool().get().expect("connection");
        let audio_url: Option<String> = sessions::table
            .find(DbUuid(session))
            .select(sessions::audio_url)
            .first(&mut *conn)
            .expect("session row");
        let samples: Vec<(String, Option<String>)> = session_speakers::table
            .filter(session_speakers::session_id.eq(DbUuid(session)))
            .select((
                session_speakers::speaker_label,
                session_speakers::sample_audio_url,
            ))
            .order(session_speakers::speaker_label)
            .load(&mut *conn)
            .expect("speaker rows");
        (audio_url, samples)
    }

    /// The records in the failed list, as JSON.
    pub fn failed_records(&self) -> Vec<serde_json::Value> {
        let mut conn = redis::Client::open(self.var("REDIS_URL"))
            .expect("redis url")
            .get_connection()
            .expect("redis");
        let entries: Vec<String> = redis::cmd("LRANGE")
            .arg(format!("{}:failed", self.var("LAHSTATS_KEY_PREFIX")))
            .arg(0)
            .arg(-1)
            .query(&mut conn)
            .expect("LRANGE");
        entries
            .iter()
            .map(|entry| serde_json::from_str(entry).expect("failure record"))
            .collect()
    }

    pub fn log(&self) -> Vec<String> {
        match &self.daemon {
            Some(daemon) => daemon.log.lock().unwrap().clone(),
            None => Vec::new(),
        }
    }
}

/// Fetches `url` with no credentials, as the app's screens do, and decodes it; returns the
/// seconds of audio.
pub fn fetch_and_decode(url: &str) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let (status, body) = curl(&[url]);
    assert_eq!(status, 200, "GET {url}: {}", String::from_utf8_lossy(&body));
    let file = dir.path().join("fetched.wav");
    std::fs::write(&file, &body).expect("write");
    let samples = lahstats_worker::audio::decode_file(
        &file.display().to_string(),
        &lahstats_worker::audio::AudioOptions::default(),
    )
    .unwrap_or_else(|err| panic!("{url} does not decode: {err}"));
    samples.len() as f64 / 16_000.0
}

/// A certificate authority made with openssl for one test, and certificates it issues.
pub struct TestCa {
    pub dir: PathBuf,
    pub name: String,
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

impl TestCa {
    pub fn new(dir: &Path, name: &str) -> TestCa {
        let subject = format!("/CN=lahstats test CA {name}");
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &subject,
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.crt"),
            ],
        );
        TestCa {
            dir: dir.to_path_buf(),
            name: name.to_string(),
        }
    }

    pub fn cert(&self) -> PathBuf {
        self.dir.join(format!("{}.crt", self.name))
    }

    /// A server certificate for localhost and 127.0.0.1: (certificate, key).
    pub fn issue_server(&self, server: &str) -> (PathBuf, PathBuf) {
        let (key, csr, crt) = (
            format!("{server}.key"),
            format!("{server}.csr"),
            format!("{server}.crt"),
        );
        openssl(
            &self.dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-keyout",
                &key,
                "-out",
                &csr,
            ],
        );
        let ext = self.dir.join(format!("{server}.ext"));
        std::fs::write(&ext, "subjectAltName=DNS:localhost,IP:127.0.0.1\n").expect("ext");
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &format!("{}.crt", self.name),
                "-CAkey",
                &format!("{}.key", self.name),
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &crt,
                "-extfile",
                &ext.display().to_string(),
            ],
        );
        (self.dir.join(crt), self.dir.join(key))
    }
}

/// A redis-server that speaks only TLS (`--port 0 --tls-port …`).
pub struct TlsRedis {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl TlsRedis {
    pub fn start(cert: &Path, key: &Path, ca: &Path) -> TlsRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let dir = tempfile::tempdir().expect("tempdir");
        let child = Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--tls-cert-file")
            .arg(cert)
            .arg("--tls-key-file")
            .arg(key)
            .arg("--tls-ca-cert-file")
            .arg(ca)
            .args(["--tls-auth-clients", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server");
        let server = TlsRedis {
            port,
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the TLS Redis did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// `redis-cli` over TLS, trusting `ca`.
    pub fn cli(&self, ca: &Path, args: &[&str]) -> std::process::Output {
        Command::new("redis-cli")
            .args(["--tls", "--cacert"])
            .arg(ca)
            .args(["-h", "localhost", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli")
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
