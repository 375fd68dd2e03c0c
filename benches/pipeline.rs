//! `cargo bench --bench pipeline [-- FILE]`: the whole speech pipeline on one recording, timed in
//! process (models loaded once, then one analysis), printing its JSON with `stage_seconds`.
//! Without FILE it takes the conversation `scripts/bench` made under target/bench/ (run that
//! first); `scripts/bench` is the comparison with faster-whisper.

use clap::Parser;
use lahstats_worker::cli::{Cli, Format};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The newest target/bench/conversation-*.wav.
fn bench_conversation() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("conversation-") && name.ends_with(".wav"))
        })
        .max_by_key(|path| path.metadata().and_then(|m| m.modified()).ok())
}

fn main() {
    lahstats_worker::logging::init();
    // `cargo bench` passes `--bench`; any other argument is the recording.
    let file = std::env::args()
        .skip(1)
        .find(|arg| !arg.starts_with("--"))
        .map(PathBuf::from)
        .or_else(bench_conversation);
    let Some(file) = file else {
        eprintln!("pipeline bench: no recording; run scripts/bench once or pass FILE");
        std::process::exit(2);
    };
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let cli = Cli::parse_from([
        "lahstats-worker".into(),
        "--models-dir".into(),
        models.display().to_string(),
        "analyze".into(),
        file.display().to_string(),
    ]);
    let began = Instant::now();
    match lahstats_worker::speech::analyze_files(&cli.config, &[file], Format::Json, None) {
        Ok(_) => eprintln!(
            "pipeline bench: {:.2} s with model load",
            began.elapsed().as_secs_f64()
        ),
        Err(message) => {
            eprintln!("pipeline bench: {message}");
            std::process::exit(1);
        }
    }
}
