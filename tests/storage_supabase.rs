//! Against the real Supabase Storage server (the open-source server behind the app's storage;
//! scripts/test starts it): a session whose chunks were uploaded at the app's paths is processed,
//! its `full_audio.wav` and sample clips are public URLs that fetch and decode; a missing chunk
//! fails the session at once; errors name the bucket, key and setting, never the key material.

mod support;

use std::io::Read;
use std::time::Duration;

use lahstats_worker::error::{Classify, ErrorKind};
use lahstats_worker::storage::{StorageError, Store};
use support::storage::{curl, fetch_and_decode, supabase, two_chunks, unique, Worker};

#[test]
fn chunks_at_the_apps_paths_are_processed_and_the_processed_files_play() {
    let server = supabase();
    let bucket = unique("chunks");
    server.create_bucket(&bucket, true);
    let audio = tempfile::tempdir().unwrap();
    let chunks = two_chunks(audio.path());

    let mut worker = Worker::new(server.worker_env(&bucket));
    let session = uuid::Uuid::new_v4();
    let keys: Vec<String> = chunks
        .iter()
        .enumerate()
        .map(|(n, _)| format!("sessions/{session}/chunks/chunk_{n:04}_20260117190{n}00.m4a"))
        .collect();
    for (key, file) in keys.iter().zip(&chunks) {
        server.upload(&bucket, key, file, "audio/mp4");
    }
    worker.register(session, &keys);
    let missing = uuid::Uuid::new_v4();
    let missing_key = format!("sessions/{missing}/chunks/chunk_0000_20260117190000.m4a");
    worker.register(missing, std::slice::from_ref(&missing_key));

    worker.start();
    worker.push(missing);
    worker.push(session);

    // The missing chunk: failed at once, with the bucket, the key and the setting to check.
    let (status, error) = worker.wait_settled(missing, Duration::from_secs(60));
    assert_eq!(status, "failed");
    let error = error.unwrap_or_default();
    for part in [bucket.as_str(), missing_key.as_str(), "STORAGE_BUCKET"] {
        assert!(error.contains(part), "{error}");
    }
    let (status, error) = worker.wait_settled(session, Duration::from_secs(240));
    assert_eq!(status, "ready_for_claiming", "{error:?}");
    let failed = worker.failed_records();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["attempts"], 1, "no retries: {failed:?}");
    assert_eq!(failed[0]["error_kind"], "permanent", "{failed:?}");

    // One chunk was spooled (index at the end), the other streamed.
    let log = worker.log();
    let spooled = log
        .iter()
        .any(|l| l.contains(&keys[0]) && l.contains("spooling"));
    let streamed = log
        .iter()
        .any(|l| l.contains(&keys[1]) && l.contains("streaming"));
    assert!(spooled && streamed, "{log:#?}");
    assert!(
        !log.iter().any(|l| l.contains(&server.service_key)),
        "the service key reached the log"
    );

    // The processed files are where the app looks, and play from their public URLs.
    let public = |file: &str| {
        format!(
            "{}/object/public/{bucket}/sessions/{session}/processed/{file}",
            server.url
        )
    };
    worker.assert_processed_files_play(session, public);
}

/// A bucket whose file size limit the session's recording exceeds (Supabase's default is 50 MB,
/// about 27 minutes of 16 kHz WAV): the session is still saved, counts and speaker clips and
/// all, with no `audio_url` and a warning that names the limit; nothing is retried or failed.
#[test]
fn a_recording_over_the_buckets_size_limit_still_saves_the_sessions_results() {
    let server = supabase();
    let bucket = unique("small");
    // Speaker clips are at most 5 s: 160 044 bytes of WAV and a header.
    let limit: u64 = 170_000;
    server.create_bucket_with_size_limit(&bucket, limit);
    let audio = tempfile::tempdir().unwrap();
    let chunks = two_chunks(audio.path());
    let seconds: f64 = chunks
        .iter()
        .map(|c| {
            let samples =
                lahstats_worker::audio::decode_file(c.to_str().unwrap(), &Default::default())
                    .expect("chunk decodes");
            samples.len() as f64 / 16_000.0
        })
        .sum();
    assert!(
        seconds * 32_000.0 > limit as f64 * 1.1,
        "the recipe's {seconds:.1} s must make a recording over the {limit}-byte limit"
    );

    let mut worker = Worker::new(server.worker_env(&bucket));
    let session = uuid::Uuid::new_v4();
    let keys: Vec<String> = (0..chunks.len())
        .map(|n| format!("sessions/{session}/chunks/chunk_{n:04}.m4a"))
        .collect();
    for (key, file) in keys.iter().zip(&chunks) {
        server.upload(&bucket, key, file, "audio/mp4");
    }
    worker.register(session, &keys);
    worker.start();
    worker.push(session);

    let (status, error) = worker.wait_settled(session, Duration::from_secs(240));
    assert_eq!(status, "ready_for_claiming", "{error:?}");
    assert!(worker.failed_records().is_empty());
    let (audio_url, samples) = worker.urls(session);
    assert_eq!(
        audio_url, None,
        "no recording was stored, so none is offered"
    );
    assert!(!samples.is_empty(), "the speakers were saved");
    for (label, url) in samples {
        let url = url.unwrap_or_else(|| panic!("{label} has no sample clip"));
        let clip = fetch_and_decode(&url);
        assert!(clip > 0.2 && clip <= 5.01, "{label}: {clip:.2} s");
    }
    let log = worker.log();
    assert!(
        log.iter().any(|l| l.contains("WARN")
            && l.contains("without its recording")
            && l.contains(&bucket)
            && l.contains("file size limit")),
        "{log:#?}"
    );
}

#[test]
fn storage_failures_are_classified_and_name_bucket_key_and_setting() {
    let server = supabase();
    let bucket = unique("errors");
    server.create_bucket(&bucket, false);
    let store = Store::supabase(&server.url, &bucket, &server.service_key).unwrap();

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
        "STORAGE_BUCKET",
    ] {
        assert!(text.contains(part), "{text}");
    }

    let nowhere = Store::supabase(&server.url, "no-such-bucket", &server.service_key).unwrap();
    let err = nowhere.open("sessions/x/a.m4a").unwrap_err();
    assert!(
        matches!(err, StorageError::BucketNotFound { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("no-such-bucket"), "{err}");
    assert_eq!(err.kind(), ErrorKind::Permanent);

    // A key the server does not accept: refused, permanent, and the key is not in the message.
    let forged = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.not-the-signature";
    let refused_store = Store::supabase(&server.url, &bucket, forged).unwrap();
    let refused = refused_store.open("sessions/x/a.m4a").unwrap_err();
    assert!(
        matches!(refused, StorageError::AccessDenied { .. }),
        "{refused:?}"
    );
    assert_eq!(refused.kind(), ErrorKind::Permanent);
    let text = refused.to_string();
    assert!(text.contains("SUPABASE_SERVICE_ROLE_KEY"), "{text}");
    assert!(!text.contains("not-the-signature"), "{text}");
    // The anon key may not write to the bucket either.
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), b"RIFF").unwrap();
    let anon = Store::supabase(&server.url, &bucket, &server.anon_key).unwrap();
    let err = anon
        .upload_file("sessions/x/processed/a.wav", file.path(), "audio/wav")
        .unwrap_err();
    assert!(matches!(err, StorageError::AccessDenied { .. }), "{err:?}");

    // Nothing listening: transient.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = Store::supabase(&format!("http://127.0.0.1:{port}"), &bucket, "k").unwrap();
    let err = down.open("sessions/x/a.m4a").unwrap_err();
    assert!(matches!(err, StorageError::Unavailable { .. }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Transient);
}

#[test]
fn uploads_replace_and_downloads_stream_the_same_bytes() {
    let server = supabase();
    let bucket = unique("roundtrip");
    server.create_bucket(&bucket, true);
    let store = Store::supabase(&server.url, &bucket, &server.service_key).unwrap();
    let key = "sessions/s1/processed/full_audio.wav";
    let dir = tempfile::tempdir().unwrap();
    // 3 MB of varied bytes: many network pieces, none of them all alike.
    let first: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let second: Vec<u8> = first.iter().rev().copied().collect();
    for bytes in [&first, &second] {
        let file = dir.path().join("upload.bin");
        std::fs::write(&file, bytes).unwrap();
        store.upload_file(key, &file, "audio/wav").unwrap();
    }
    let mut reader = store.open(key).unwrap();
    assert_eq!(reader.size, Some(second.len() as u64));
    let mut read = Vec::new();
    reader.read_to_end(&mut read).unwrap();
    assert!(read == second, "the second upload replaced the first");
    let (status, body) = curl(&[&store.public_url(key)]);
    assert_eq!(status, 200);
    assert!(body == second);
}

#[test]
fn every_container_a_phone_or_browser_uploads_decodes_from_the_store_as_from_disk() {
    let server = supabase();
    let bucket = unique("formats");
    server.create_bucket(&bucket, false);
    let store =
        std::sync::Arc::new(Store::supabase(&server.url, &bucket, &server.service_key).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let wav = support::audio::tone(dir.path(), "tone.wav", 440.0, 2.0, 44_100, 0.5);
    let stored = lahstats_worker::audio::AudioOptions {
        store: Some(store.clone()),
        ..Default::default()
    };
    // Streamed (WAV, WebM, Ogg) and spooled (MP3, M4A with its index last, CAF).
    let formats: [(&str, &[&str]); 6] = [
        ("wav", &[]),
        ("webm", &["-c:a", "libopus"]),
        ("ogg", &["-c:a", "libvorbis"]),
        ("mp3", &["-c:a", "libmp3lame"]),
        ("m4a", &["-c:a", "aac"]),
        ("caf", &["-c:a", "alac"]),
    ];
    for (ext, args) in formats {
        let file = support::audio::ffmpeg(&wav, &dir.path().join(format!("chunk.{ext}")), args);
        let key = format!("sessions/s1/chunks/chunk_0000_1.{ext}");
        store
            .upload_file(&key, &file, lahstats_worker::storage::content_type_for(ext))
            .unwrap();
        let local =
            lahstats_worker::audio::decode_file(&file.display().to_string(), &Default::default())
                .unwrap();
        let remote = lahstats_worker::audio::decode_file(&key, &stored)
            .unwrap_or_else(|err| panic!("{ext}: {err}"));
        let differing = remote.iter().zip(&local).filter(|(a, b)| a != b).count();
        assert!(
            remote == local,
            "{ext}: the same bytes decode to the same samples ({} vs {} samples, {differing} differ)",
            remote.len(),
            local.len()
        );
    }
}
