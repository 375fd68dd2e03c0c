//! TLS to Redis and Postgres with certificates from a CA made by openssl at test time: a
//! TLS-only redis-server (`--port 0 --tls-port …`) and a Postgres that refuses plain
//! connections; the worker processes a session over `rediss://` with `sslmode=verify-full`, and a
//! certificate from another CA is refused with an error that names the setting to fix.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use diesel::Connection;
use support::postgres::{create_database_on, with_database, PrivatePostgres};
use support::storage::{TestCa, TlsRedis, Worker};

/// A Postgres that speaks TLS only, with a certificate from `ca`.
fn tls_postgres(ca: &TestCa) -> PrivatePostgres {
    let (cert, key) = ca.issue_server("postgres");
    let server = PrivatePostgres::start_new();
    server.require_tls(&cert, &key);
    server
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_session_is_processed_over_rediss_with_postgres_verify_full() {
    let certs = tempfile::tempdir().unwrap();
    let ca = TestCa::new(certs.path(), "ca");
    let (cert, key) = ca.issue_server("redis");
    let redis = TlsRedis::start(&cert, &key, &ca.cert());
    let postgres = tls_postgres(&ca);
    let admin = format!(
        "postgres://postgres@localhost:{}/postgres?sslmode=require",
        postgres.port()
    );
    let database = create_database_on(&admin);
    let database_url = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        with_database(&admin, database.name())
            .split('?')
            .next()
            .unwrap(),
        ca.cert().display()
    );
    // Plain connections are refused: whatever the worker does below went over TLS.
    let plain = diesel::PgConnection::establish(&database_url.replace("verify-full", "disable"));
    assert!(plain.is_err(), "the server took a connection without TLS");

    let redis_url = format!("rediss://localhost:{}", redis.port);
    let mut worker = Worker::new(vec![
        ("REDIS_URL", redis_url.clone()),
        ("LAHSTATS_REDIS_CA_CERT", ca.cert().display().to_string()),
        ("DATABASE_URL", database_url),
    ]);
    let session = uuid::Uuid::new_v4();
    let key_path = format!("sessions/{session}/chunks/chunk_0000_20260117190000.wav");
    let speech =
        support::speech::conversation(0.3, &[(0, support::speech::SENTENCES[3], 0.5)], 0.002);
    let storage = Path::new(&worker.var("LAHSTATS_STORAGE_DIR")).join(&key_path);
    lahstats_worker::audio::write_wav(&speech.samples, &storage).unwrap();
    worker.register(session, &[key_path]);

    worker.start();
    let payload = format!(r#"{{"session_id": "{session}", "queued_at": "2026-01-17T19:00:00"}}"#);
    let queue = format!("{}:processing", worker.var("LAHSTATS_KEY_PREFIX"));
    let pushed = redis.cli(&ca.cert(), &["LPUSH", &queue, &payload]);
    assert!(pushed.status.success(), "{}", stderr(&pushed));

    let (status, error) = worker.wait_settled(session, Duration::from_secs(120));
    assert_eq!(status, "ready_for_claiming", "{error:?}");
    let log = worker.log();
    assert!(
        log.iter()
            .any(|l| l.contains("Redis connection established") && l.contains(&redis_url)),
        "{log:#?}"
    );
}

#[test]
fn certificates_from_another_ca_are_refused_with_a_clear_error() {
    let certs = tempfile::tempdir().unwrap();
    let ca = TestCa::new(certs.path(), "ca");
    let other = TestCa::new(certs.path(), "other");
    let (cert, key) = ca.issue_server("redis");
    let redis = TlsRedis::start(&cert, &key, &ca.cert());
    let home = tempfile::tempdir().unwrap();
    let run = |args: &[&str], env: &[(&str, String)]| -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_lahstats-worker"));
        command
            .args(args)
            .current_dir(home.path())
            // No ~/.postgresql/root.crt, nor any CA setting but the ones given.
            .env("HOME", home.path())
            .env_remove("SSL_CERT_FILE")
            .env_remove("LAHSTATS_REDIS_CA_CERT")
            .env_remove("PGSSLROOTCERT")
            .env("REDIS_URL", format!("rediss://localhost:{}", redis.port));
        for (key, value) in env {
            command.env(key, value);
        }
        command.output().expect("run lahstats-worker")
    };
    let path = |ca: &TestCa| ca.cert().display().to_string();

    // Redis: the CA given, the system trust store, SSL_CERT_FILE.
    let trusted = run(
        &["failed", "list"],
        &[("LAHSTATS_REDIS_CA_CERT", path(&ca))],
    );
    assert!(trusted.status.success(), "{}", stderr(&trusted));
    let refused = run(
        &["failed", "list"],
        &[("LAHSTATS_REDIS_CA_CERT", path(&other))],
    );
    assert!(!refused.status.success());
    let message = stderr(&refused);
    assert!(message.contains("certificate was refused"), "{message}");
    assert!(message.contains("LAHSTATS_REDIS_CA_CERT"), "{message}");
    let system = run(&["failed", "list"], &[]);
    assert!(!system.status.success(), "a test CA is in no system store");
    assert!(
        stderr(&system).contains("certificate was refused"),
        "{}",
        stderr(&system)
    );
    let by_flag = run(&["--redis-ca-cert", &path(&ca), "failed", "list"], &[]);
    assert!(by_flag.status.success(), "{}", stderr(&by_flag));
    let bundle = run(&["failed", "list"], &[("SSL_CERT_FILE", path(&ca))]);
    assert!(bundle.status.success(), "{}", stderr(&bundle));
    let wrong_bundle = run(&["failed", "list"], &[("SSL_CERT_FILE", path(&other))]);
    assert!(!wrong_bundle.status.success());
    assert!(
        stderr(&wrong_bundle).contains("SSL_CERT_FILE"),
        "{}",
        stderr(&wrong_bundle)
    );

    // Postgres: sslrootcert=, and the SSL_CERT_FILE fallback of a verify-full URL without it.
    let postgres = tls_postgres(&ca);
    let url = |root: Option<&TestCa>| {
        let base = format!(
            "postgres://postgres@localhost:{}/postgres?sslmode=verify-full",
            postgres.port()
        );
        match root {
            Some(ca) => format!("{base}&sslrootcert={}", ca.cert().display()),
            None => base,
        }
    };
    let migrated = run(&["migrate"], &[("DATABASE_URL", url(Some(&ca)))]);
    assert!(migrated.status.success(), "{}", stderr(&migrated));
    let refused = run(&["migrate"], &[("DATABASE_URL", url(Some(&other)))]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("certificate verify failed"),
        "{}",
        stderr(&refused)
    );
    let fallback = run(
        &["migrate"],
        &[("DATABASE_URL", url(None)), ("SSL_CERT_FILE", path(&ca))],
    );
    assert!(fallback.status.success(), "{}", stderr(&fallback));
    let wrong_fallback = run(
        &["migrate"],
        &[("DATABASE_URL", url(None)), ("SSL_CERT_FILE", path(&other))],
    );
    assert!(!wrong_fallback.status.success());
}
