//! Test speech with known turns: espeak-ng voices speaking sentences, trimmed and resampled to
//! 16 kHz by sox, joined with gaps over a faint noise floor, so every turn boundary is exact.
#![allow(dead_code)]

use lahstats_worker::inference::diarize::SpeakerTurn;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const SAMPLE_RATE: usize = 16_000;

/// Distinct espeak-ng voices: (espeak-ng arguments).
pub const VOICES: [&[&str]; 4] = [
    &["-v", "en-us+m3", "-p", "40", "-s", "160"],
    &["-v", "en-gb+f2", "-p", "70", "-s", "150"],
    &["-v", "en-gb-scotland+m1", "-p", "25", "-s", "140"],
    &["-v", "en-029+f4", "-p", "55", "-s", "170"],
];

pub const SENTENCES: [&str; 16] = [
    "Did you see the match last night? It went into extra time.",
    "I was stuck at the office until nine, so I only caught the last few minutes.",
    "The hawker centre near my place has the best chicken rice in the whole area.",
    "We should go there on Saturday before the queue gets too long.",
    "My brother is flying back from Melbourne next week for the holidays.",
    "Can you remind me to book the tickets before Friday evening?",
    "The weather has been so hot that I stay indoors most afternoons.",
    "I think the new train line will open sometime early next year.",
    "Honestly, the report took much longer than anyone expected it to.",
    "Let us meet at the coffee shop opposite the library at ten.",
    "She said the project deadline moved again, which is quite annoying.",
    "Remember to bring an umbrella, the forecast says heavy rain later.",
    "The children were playing football in the park until it got dark.",
    "I finally fixed the leaking tap in the kitchen this morning.",
    "Our neighbours are renovating, so there is drilling every single day.",
    "Shall we order some dessert to share after the main course?",
];

/// The models directory, which scripts/prepare-models fills; a clear panic when it is empty.
pub fn models_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    for file in ["silero_vad.pt", "speaker_encoder.pt"] {
        assert!(
            dir.join(file).exists(),
            "{} is missing: run scripts/prepare-models (scripts/test runs it through scripts/setup)",
            dir.join(file).display()
        );
    }
    dir
}

fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn read_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).expect("sox output");
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// One sentence in one voice: 16 kHz mono, leading and trailing silence trimmed.
pub fn speak(voice: &[&str], text: &str) -> Vec<f32> {
    let dir = tempfile::tempdir().expect("temp dir");
    let wav = dir.path().join("speech.wav");
    let raw = dir.path().join("speech.f32");
    run(Command::new("espeak-ng")
        .args(voice)
        .arg("-w")
        .arg(&wav)
        .arg(text));
    run(Command::new("sox")
        .arg(&wav)
        .args([
            "-r",
            "16000",
            "-c",
            "1",
            "-b",
            "32",
            "-e",
            "floating-point",
            "-t",
            "raw",
        ])
        .arg(&raw)
        .args([
            "silence", "1", "0.02", "0.5%", "reverse", "silence", "1", "0.02", "0.5%", "reverse",
        ]));
    read_f32(&raw)
}

/// `seconds` of sox noise ("whitenoise", "brownnoise", "pinknoise") at `volume` (0–1).
pub fn noise(kind: &str, seconds: f64, volume: f64) -> Vec<f32> {
    let dir = tempfile::tempdir().expect("temp dir");
    let raw = dir.path().join("noise.f32");
    run(Command::new("sox")
        .args([
            "-n",
            "-r",
            "16000",
            "-c",
            "1",
            "-b",
            "32",
            "-e",
            "floating-point",
            "-t",
            "raw",
        ])
        .arg(&raw)
        .args([
            "synth",
            &format!("{seconds}"),
            kind,
            "vol",
            &format!("{volume}"),
        ]));
    read_f32(&raw)
}

/// A recording with its true turns.
pub struct Conversation {
    pub samples: Vec<f32>,
    pub turns: Vec<SpeakerTurn>,
}

impl Conversation {
    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / SAMPLE_RATE as f64
    }
}

/// Turns spoken in order: (speaker index into `VOICES`, sentence, silence after it in seconds),
/// after `lead_in` seconds of silence, over brown noise at `noise_volume` (0 for none).
pub fn conversation(lead_in: f64, parts: &[(usize, &str, f64)], noise_volume: f64) -> Conversation {
    let mut samples = vec![0.0; (lead_in * SAMPLE_RATE as f64) as usize];
    let mut turns = Vec::new();
    for &(speaker, text, gap_after) in parts {
        let start = samples.len() as f64 / SAMPLE_RATE as f64;
        samples.extend(speak(VOICES[speaker], text));
        let end = samples.len() as f64 / SAMPLE_RATE as f64;
        turns.push(SpeakerTurn {
            speaker,
            start,
            end,
        });
        samples.extend(std::iter::repeat_n(
            0.0,
            (gap_after * SAMPLE_RATE as f64) as usize,
        ));
    }
    if noise_volume > 0.0 {
        let floor = noise(
            "brownnoise",
            samples.len() as f64 / SAMPLE_RATE as f64 + 0.1,
            noise_volume,
        );
        for (s, n) in samples.iter_mut().zip(floor) {
            *s += n;
        }
    }
    Conversation { samples, turns }
}

/// A back-and-forth between `speakers` voices: `turns` sentences, speakers taking turns in
/// the order 0, 1, …, with varied gaps.
pub fn round_robin(speakers: usize, turns: usize) -> Conversation {
    let gaps = [0.6, 0.9, 0.4, 1.2, 0.7];
    let parts: Vec<(usize, &str, f64)> = (0..turns)
        .map(|i| {
            (
                i % speakers,
                SENTENCES[i % SENTENCES.len()],
                gaps[i % gaps.len()],
            )
        })
        .collect();
    conversation(0.5, &parts, 0.002)
}
