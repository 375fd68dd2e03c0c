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
