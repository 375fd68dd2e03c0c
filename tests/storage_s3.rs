//! Against a real S3 server (moto's, from PyPI; scripts/test starts it): `submit` uploads a
//! session's chunks at the app's paths under the bucket's prefix, the worker processes it and its
//! processed files are public URLs that fetch and decode; a missing chunk fails the session at
//! once; missing buckets and objects are permanent, an unreachable server transient; large files
//! go up in parts.

mod support;

use std::io::Read;
use std::time::Duration;

use lahstats_worker::error::{Classify, ErrorKind};
use lahstats_worker::storage::{StorageError, Store};
use support::storage::{curl, s3, two_chunks, unique, Worker};

#[test]
fn a_submitted_session_is_processed_and_its_processed_files_play() {
    let server = s3();
    let bucket = unique("lahstats");
    server.create_public_bucket(&bucket);
    let mut env = server.aws_env();
    env.push(("LAHSTATS_STORAGE_URL", format!("s3://{bucket}/app")));
    let mut worker = Worker::new(env);
    let audio = tempfile::tempdir().unwrap();
    let chunks = two_chunks(audio.path());

    // `submit` stores the chunks as the API does and queues the session.
    let files: Vec<String> = chunks.iter().map(|c| c.display().to_string()).collect();
    let mut args = vec!["submit"];
    args.extend(files.iter().map(String::as_str));
    let submitted = worker.run_cli(&args);
    assert!(
        submitted.status.success(),
        "{}",
        String::from_utf8_lossy(&submitted.stderr)
    );
    let session: uuid::Uuid = String::from_utf8_lossy(&submitted.stdout)
        .trim()
        .parse()
        .expect("submit prints the session id");
    for (number, file) in chunks.iter().enumerate() {
        // At the app's path, under the prefix, with the bytes given.
        let listing = curl(&[&format!(
            "{}/{bucket}?list-type=2&prefix=app/sessions/{session}/chunks/chunk_{number:04}_",
            server.endpoint
        )]);
        let text = String::from_utf8_lossy(&listing.1).to_string();
        let key = text
            .split("<Key>")
            .nth(1)
            .and_then(|rest| rest.split("</Key>").next())
            .unwrap_or_else(|| panic!("chunk {number} is not in the bucket: {text}"));
        assert!(key.ends_with(".m4a"), "{key}");
        let (status, body) = curl(&[&format!("{}/{bucket}/{key}", server.endpoint)]);
        assert_eq!(status, 200);
        assert!(body == std::fs::read(file).unwrap(), "{key} holds the file");
    }

    let missing = uuid::Uuid::new_v4();
    let missing_key = format!("sessions/{missing}/chunks/chunk_0000_20260117190000.m4a");
    worker.register(missing, std::slice::from_ref(&missing_key));
    worker.start();
    worker.push(missing);

    let (status, error) = worker.wait_settled(missing, Duration::from_secs(60));
    assert_eq!(status, "failed");
    let error = error.unwrap_or_default();
    for part in [
        bucket.as_str(),
        missing_key.as_str(),
        "LAHSTATS_STORAGE_URL",
    ] {
        assert!(error.contains(part), "{error}");
    }
    let (status, error) = worker.wait_settled(session, Duration::from_secs(240));
    assert_eq!(status, "ready_for_claiming", "{error:?}");
    let failed = worker.failed_records();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["attempts"], 1, "no retries: {failed:?}");
    assert!(
        !worker
            .log()
            .iter()
            .any(|l| l.contains("lahstats-test-secret")),
        "the secret key reached the log"
    );

    // Public URLs: the bucket's path-style URL under the endpoint, prefix included.
    let public = |file: &str| {
        format!(
            "{}/{bucket}/app/sessions/{session}/processed/{file}",
            server.endpoint
        )
    };
    worker.assert_processed_files_play(session, public);
}

/// A store on the test's S3 server (its settings given, not taken from the environment).
fn s3_store(url: &str) -> Result<Store, StorageError> {
    s3_store_at(url, &s3().endpoint)
}

fn s3_store_at(url: &str, endpoint: &str) -> Result<Store, StorageError> {
    let mut vars = s3().aws_env();
    vars.retain(|(key, _)| *key != "AWS_ENDPOINT_URL");
    vars.push(("AWS_ENDPOINT_URL", endpoint.to_string()));
    Store::s3_with(url, vars.iter().map(|(k, v)| (*k, v.as_str())))
}

#[test]
fn missing_objects_and_buckets_are_permanent_and_an_unreachable_server_transient() {
    let bucket = unique("errors");
    s3().create_public_bucket(&bucket);
    let store = s3_store(&format!("s3://{bucket}")).unwrap();
    let missing = store
        .open("sessions/x/chunks/chunk_0000_1.m4a")
        .unwrap_err();
    assert!(
        matches!(missing, StorageError::NotFound { .. }),
        "{missing:?}"
    );
    assert_eq!(missing.kind(), ErrorKind::Permanent);
    let text = missing.to_string();
    for part in [
        bucket.as_str(),
        "sessions/x/chunks/chunk_0000_1.m4a",
        "LAHSTATS_STORAGE_URL",
    ] {
        assert!(text.contains(part), "{text}");
    }
    assert!(!text.contains("lahstats-test-secret"), "{text}");

    let nowhere = s3_store("s3://no-such-bucket-lahstats").unwrap();
    let err = nowhere.open("sessions/x/a.m4a").unwrap_err();
    assert!(
        matches!(err, StorageError::BucketNotFound { .. }),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::Permanent);

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = s3_store_at(
        &format!("s3://{bucket}"),
        &format!("http://127.0.0.1:{port}"),
    )
    .unwrap();
    let err = down.open("sessions/x/a.m4a").unwrap_err();
    assert!(matches!(err, StorageError::Unavailable { .. }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Transient);
}

#[test]
fn large_files_go_up_in_parts_and_come_back_whole() {
    let bucket = unique("parts");
    s3().create_public_bucket(&bucket);
    let store = s3_store(&format!("s3://{bucket}/nested/prefix")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = "sessions/s1/processed/full_audio.wav";
    // 20 MB: three parts of the multipart upload.
    let big: Vec<u8> = (0..20_000_000u32).map(|i| (i * 13 % 251) as u8).collect();
    let small = b"a short file replaces the long one".to_vec();
    for bytes in [&big, &small, &big] {
        let file = dir.path().join("upload.bin");
        std::fs::write(&file, bytes).unwrap();
        store.upload_file(key, &file, "audio/wav").unwrap();
        let mut read = Vec::new();
        store.open(key).unwrap().read_to_end(&mut read).unwrap();
        assert!(
            &read == bytes,
            "{} bytes back for {}",
            read.len(),
            bytes.len()
        );
    }
    let url = store.public_url(key);
    assert!(
        url.ends_with(&format!("/{bucket}/nested/prefix/{key}")),
        "{url}"
    );
}
