//! Parity of our Whisper with faster-whisper (CTranslate2) on the same weights, greedy
//! decoding, the same seek loop: the word error rate between the two transcripts must
//! stay under 5 %. Audio is espeak-ng speech made at test time (no PyPI package we found ships
//! real recorded English speech). The speed comparison is `--ignored` (run it in release).

mod support;

use lahstats_worker::inference::whisper::{TranscriptionOptions, Whisper};
use std::path::{Path, PathBuf};
use std::process::Command;
use support::tts::{
    project_root, python, read_f32, silence, speak, wer, whisper_model_dir, PASSAGES,
};
use tch::Device;

/// faster-whisper's `(text, seconds)` per file, from `scripts/asr-parity`.
fn faster_whisper(files: &[PathBuf], compute_type: &str) -> Vec<(String, f64)> {
    let output = Command::new(python())
        .arg(project_root().join("scripts/asr-parity"))
        .args(["--compute-type", compute_type, "--beam-size", "1"])
        .args(files)
        .output()
        .expect("run scripts/asr-parity with the virtualenv's python");
    assert!(
        output.status.success(),
        "asr-parity failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).expect("JSON line");
            (
                value["text"].as_str().unwrap_or_default().to_string(),
                value["seconds"].as_f64().unwrap_or(0.0),
            )
        })
        .collect()
}

/// `samples` as `dir/name.wav` (faster-whisper decodes it with PyAV).
fn write_wav(dir: &Path, name: &str, samples: &[f32]) -> PathBuf {
    let wav = dir.join(format!("{name}.wav"));
    support::tts::write_wav(samples, &wav);
    wav
}

/// A minute of speech: the passages at two speeds with pauses between them.
fn one_minute(dir: &Path) -> Vec<f32> {
    let mut samples = Vec::new();
    for (i, passage) in PASSAGES.iter().cycle().enumerate() {
        if samples.len() >= 60 * 16000 {
            break;
        }
        samples.extend(speak(passage, 150 + 10 * (i as u32 % 2), dir));
        samples.extend(silence(1.0));
    }
    samples
}

#[test]
fn our_transcripts_match_faster_whisper() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut files = Vec::new();
    for (i, passage) in PASSAGES.iter().enumerate() {
        files.push(write_wav(
            dir.path(),
            &format!("passage{i}"),
            &speak(passage, 160, dir.path()),
        ));
    }
    files.push(write_wav(dir.path(), "minute", &one_minute(dir.path())));
    let theirs = faster_whisper(&files, "float32");
    let mut whisper = Whisper::load(&whisper_model_dir(), Device::Cpu).expect("loads");
    let mut ours = Vec::new();
    for file in &files {
        let samples = read_f32(&file.with_extension("f32"));
        // faster-whisper's defaults: no word timestamps (they move the seek), no clips.
        let opts = TranscriptionOptions {
            word_timestamps: false,
            ..TranscriptionOptions::default()
        };
        let segments = whisper.transcribe(&samples, &opts).expect("transcribes");
        ours.push(segments.iter().map(|s| s.text.as_str()).collect::<String>());
    }
    for ((text, _), our_text) in theirs.iter().zip(&ours) {
        eprintln!("faster-whisper: {text}\nours:           {our_text}");
    }
    let reference: Vec<&str> = theirs.iter().map(|(t, _)| t.as_str()).collect();
    let error_rate = wer(&reference.join(" "), &ours.join(" "));
    eprintln!(
        "WER ours vs faster-whisper (float32, beam 1): {:.2} %",
        error_rate * 100.0
    );
    let spoken = PASSAGES.join(" ");
    eprintln!(
        "WER vs the text spoken, first {} files: ours {:.2} %, faster-whisper {:.2} %",
        PASSAGES.len(),
        wer(&spoken, &ours[..PASSAGES.len()].join(" ")) * 100.0,
        wer(&spoken, &reference[..PASSAGES.len()].join(" ")) * 100.0
    );
    assert!(
        error_rate <= 0.05,
        "WER against faster-whisper {error_rate:.3} above 5 %"
    );
}
