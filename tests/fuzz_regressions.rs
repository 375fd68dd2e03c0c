//! Replays every seed-corpus input (`fuzz/corpus/<target>/`) and every kept crasher
//! (`tests/fuzz_regressions/<target>/`) through the fuzz targets' own checks (`fuzz/checks.rs`) on
//! the stable toolchain, so scripts/test guards what fuzzing found without nightly.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<PathBuf> = [
        root.join("fuzz/corpus").join(target),
        root.join("tests/fuzz_regressions").join(target),
    ]
    .iter()
    .filter_map(|dir| std::fs::read_dir(dir).ok())
    .flatten()
    .filter_map(Result::ok)
    .map(|entry| entry.path())
    .filter(|path| path.is_file())
    .collect();
    files.sort();
    files
}

/// Runs `check` on every input of `target`; names each one that fails.
fn replay(target: &str, minimum: usize, check: fn(&[u8])) {
    let files = inputs(target);
    assert!(
        files.len() >= minimum,
        "{target}: expected at least {minimum} corpus files, found {}",
        files.len()
    );
    let failures: Vec<String> = files
        .iter()
        .filter_map(|path| {
            let data = std::fs::read(path).expect("read a corpus file");
            std::panic::catch_unwind(|| check(&data))
                .err()
                .map(|_| path.display().to_string())
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{target} inputs that fail: {failures:#?}"
    );
}

#[test]
fn job_payload_corpus_and_regressions_hold() {
    replay("job_payload", 5, checks::job_payload);
}

#[test]
fn audio_decode_corpus_and_regressions_hold() {
    replay("audio_decode", 10, checks::audio_decode);
}

/// The seed corpus is real audio: every file decodes to samples.
#[test]
fn every_audio_seed_decodes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/audio_decode");
    for entry in std::fs::read_dir(&root).expect("audio seed corpus") {
        let path = entry.expect("corpus entry").path();
        let samples = lahstats_worker::audio::decode_file(
            &path.display().to_string(),
            &lahstats_worker::audio::AudioOptions::default(),
        )
        .unwrap_or_else(|err| panic!("{} does not decode: {err}", path.display()));
        assert!(
            samples.len() > 1000,
            "{}: {} samples",
            path.display(),
            samples.len()
        );
    }
}

/// An uploaded chunk that is a playlist (HLS, ffconcat) pointing at other files on the worker's
/// disk (another session's recording) must not decode as their audio. Found while building the
/// audio_decode target: FFmpeg's HLS demuxer read any local .mp3/.m4a it was pointed at.
#[test]
fn a_playlist_chunk_cannot_pull_in_other_files() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let other = dir.path().join("other_session");
    std::fs::create_dir_all(&other).expect("other session's directory");
    let secret = other.join("chunk_0000.mp3");
    let made = std::process::Command::new("ffmpeg")
        .args([
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=300:duration=2",
        ])
        .arg(&secret)
        .status()
        .expect("run ffmpeg");
    assert!(made.success());
    let uploads = dir.path().join("uploads");
    std::fs::create_dir_all(&uploads).expect("uploads directory");
    std::fs::copy(&secret, uploads.join("sibling.mp3")).expect("a sibling file");
    let hls = |segment: &str| {
        format!("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:2,\n{segment}\n#EXT-X-ENDLIST\n")
    };
    let playlists = [
        ("hls_absolute", hls(&secret.display().to_string())),
        ("hls_relative", hls("../other_session/chunk_0000.mp3")),
        (
            "ffconcat_sibling",
            "ffconcat version 1.0\nfile sibling.mp3\n".to_string(),
        ),
    ];
    let options = lahstats_worker::audio::AudioOptions {
        storage_root: dir.path().to_path_buf(),
        ..Default::default()
    };
    for (name, text) in playlists {
        std::fs::write(uploads.join(name), text).expect("write the playlist");
        let decoded = lahstats_worker::audio::decode_file(&format!("uploads/{name}"), &options);
        assert!(
            decoded.is_err(),
            "{name}: a playlist chunk decoded {} samples of another file",
            decoded.map(|s| s.len()).unwrap_or(0)
        );
        checks::audio_decode_file(dir.path(), &format!("uploads/{name}"));
    }
}
