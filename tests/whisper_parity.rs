//! Parity of our Whisper with faster-whisper (CTranslate2) on the same weights, greedy decoding
//! and beam search (5 beams), the same seek loop: the word error rate between the two
//! transcripts must stay under 5 % with each. Audio is espeak-ng speech made at test time (no PyPI package we found ships
//! real recorded English speech). The speed comparison is `--ignored` (run it in release).
//!
//! The assertion is on windows decoded without the text before (`condition_on_previous_text`
//! off on both sides). Conditioned on it, the minute's second window opens on a near tie
//! ("The weather…" / "We have been…" / "We can't wait…"): faster-whisper 1.2.1 with
//! CTranslate2 4.8.5 gave three different transcripts of the same file in five runs, 4.7.1 and
//! 4.6.0 a fourth, and since each window is the next one's prompt one flipped token changes the
//! rest of the minute (CI saw 20 % between two correct decoders). That WER is printed, not
//! asserted; the prompted seek loop is tested on its own in `whisper_recognition.rs`.

mod support;

use lahstats_worker::inference::whisper::{TranscriptionOptions, Whisper};
use std::path::{Path, PathBuf};
use std::process::Command;
use support::tts::{
    project_root, python, read_wav, silence, speak, wer, whisper_model_dir, PASSAGES,
};
use tch::Device;

/// faster-whisper's `(text, seconds)` per file, from `scripts/asr-parity`; `condition`:
/// whether each window is prompted with the text before.
fn faster_whisper(files: &[PathBuf], beam_size: usize, condition: bool) -> Vec<(String, f64)> {
    let mut command = Command::new(python());
    command
        .arg(project_root().join("scripts/asr-parity"))
        .args([
            "--compute-type",
            "float32",
            "--beam-size",
            &beam_size.to_string(),
        ]);
    if !condition {
        command.arg("--no-condition-on-previous-text");
    }
    let output = command
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

/// Ours on each file, as faster-whisper's defaults (no word timestamps, which move the seek;
/// no clips), with the beams and `condition_on_previous_text` as given.
fn ours(
    whisper: &mut Whisper,
    files: &[PathBuf],
    beam_size: usize,
    condition: bool,
) -> Vec<String> {
    let opts = TranscriptionOptions {
        word_timestamps: false,
        beam_size,
        condition_on_previous_text: condition,
        ..TranscriptionOptions::default()
    };
    files
        .iter()
        .map(|file| {
            // The very samples faster-whisper decodes (the 16-bit WAV, not the f32 it came
            // from): a near tie flips on quantisation noise.
            let segments = whisper
                .transcribe(&read_wav(file), &opts)
                .expect("transcribes");
            segments.iter().map(|s| s.text.as_str()).collect()
        })
        .collect()
}

/// The WER between faster-whisper's and our transcripts of all the files, each printed.
fn compared(theirs: &[(String, f64)], ours: &[String], label: &str) -> f64 {
    for ((text, _), our_text) in theirs.iter().zip(ours) {
        eprintln!("faster-whisper: {text}\nours:           {our_text}");
    }
    let reference: Vec<&str> = theirs.iter().map(|(t, _)| t.as_str()).collect();
    let error_rate = wer(&reference.join(" "), &ours.join(" "));
    eprintln!(
        "WER ours vs faster-whisper (float32, {label}): {:.2} %",
        error_rate * 100.0
    );
    let spoken = PASSAGES.join(" ");
    eprintln!(
        "WER vs the text spoken, first {} files: ours {:.2} %, faster-whisper {:.2} %",
        PASSAGES.len(),
        wer(&spoken, &ours[..PASSAGES.len()].join(" ")) * 100.0,
        wer(&spoken, &reference[..PASSAGES.len()].join(" ")) * 100.0
    );
    error_rate
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
    let mut whisper = Whisper::load(&whisper_model_dir(), Device::Cpu).expect("loads");
    let prompted = compared(
        &faster_whisper(&files, 1, true),
        &ours(&mut whisper, &files, 1, true),
        "greedy, each window prompted with the text before; not asserted",
    );
    let greedy = compared(
        &faster_whisper(&files, 1, false),
        &ours(&mut whisper, &files, 1, false),
        "greedy, windows unprompted",
    );
    let beam = compared(
        &faster_whisper(&files, 5, false),
        &ours(&mut whisper, &files, 5, false),
        "5 beams, windows unprompted",
    );
    eprintln!(
        "greedy prompted {:.2} %, greedy unprompted {:.2} %, 5 beams unprompted {:.2} %",
        prompted * 100.0,
        greedy * 100.0,
        beam * 100.0
    );
    assert!(
        greedy <= 0.05,
        "WER against faster-whisper, greedy: {greedy:.3} above 5 %"
    );
    assert!(
        beam <= 0.05,
        "WER against faster-whisper, 5 beams: {beam:.3} above 5 %"
    );
}
