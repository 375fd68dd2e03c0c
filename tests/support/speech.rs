//! Test speech with known turns: synthetic voices speaking sentences, trimmed and resampled to
//! 16 kHz by sox, joined with gaps over a faint noise floor, so every turn boundary is exact.
//!
//! Two sets of voices. `VOICES` are espeak-ng voices: formant synthesis, one "speaker" under
//! pitch and speed settings, so a speaker-embedding network hears them as near-identical (CAM++
//! cosine 0.6–0.8 between them, against 0.3–0.4 between real people) and segmentation-3.0 does
//! not tell them apart within a window (`VOICES` are the most distinct ones found). `PEOPLE`
//! are voices as distinct as people: four of
//! flite's voices, each built from one CMU ARCTIC speaker's recordings (awb, rms, slt, kal),
//! and one espeak-ng voice (CAM++ cosine 0.3–0.6 between them, 0.84–0.94 within one) — what the
//! diarization tests use.
#![allow(dead_code)]

use lahstats_worker::inference::diarize::SpeakerTurn;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const SAMPLE_RATE: usize = 16_000;

/// espeak-ng voices (espeak-ng arguments), distinct to the ear. The first three are the three
/// of 20 espeak-ng variants tried that CAM++ hears as the most different (cosine at most 0.51
/// between them, 0.95–0.96 within one), so a three-voice espeak-ng conversation
/// (tests/pipeline_singlish.rs) is three speakers to the diarization too.
pub const VOICES: [&[&str]; 4] = [
    &["-v", "en-us+klatt", "-p", "40", "-s", "160"],
    &["-v", "en-029+f4", "-p", "55", "-s", "170"],
    &["-v", "en+iven3", "-s", "150"],
    &["-v", "en-gb+f2", "-p", "70", "-s", "150"],
];

/// A synthetic voice.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Voice {
    /// espeak-ng with these arguments.
    Espeak(&'static [&'static str]),
    /// flite's voice of this name.
    Flite(&'static str),
}

/// Five voices as distinct as different people (see the module comment). The closest pair,
/// awb and rms (CAM++ cosine 0.59 at 16 kHz, 0.61 after 8 kHz μ-law), is split between the
/// first three and the last two, so only the five-voice conversations hold both.
pub const PEOPLE: [Voice; 5] = [
    Voice::Flite("awb"),
    Voice::Flite("slt"),
    Voice::Espeak(&["-v", "en-029+f4", "-p", "55", "-s", "170"]),
    Voice::Flite("kal16"),
    Voice::Flite("rms"),
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
    for file in ["silero_vad.pt", "segmentation-3.0.pt", "campplus.pt"] {
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

/// One sentence in one espeak-ng voice: 16 kHz mono, leading and trailing silence trimmed.
pub fn speak(voice: &'static [&'static str], text: &str) -> Vec<f32> {
    say(Voice::Espeak(voice), text)
}

/// One sentence in one voice: 16 kHz mono, leading and trailing silence trimmed.
pub fn say(voice: Voice, text: &str) -> Vec<f32> {
    let dir = tempfile::tempdir().expect("temp dir");
    let wav = dir.path().join("speech.wav");
    let raw = dir.path().join("speech.f32");
    match voice {
        Voice::Espeak(args) => run(Command::new("espeak-ng")
            .args(args)
            .arg("-w")
            .arg(&wav)
            .arg(text)),
        Voice::Flite(name) => run(Command::new("flite")
            .args(["-voice", name, "-t", text, "-o"])
            .arg(&wav)),
    }
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
    let voices: Vec<Voice> = VOICES.iter().map(|&v| Voice::Espeak(v)).collect();
    conversation_of(&voices, lead_in, parts, noise_volume)
}

/// `conversation` with speaker indices into `voices`.
pub fn conversation_of(
    voices: &[Voice],
    lead_in: f64,
    parts: &[(usize, &str, f64)],
    noise_volume: f64,
) -> Conversation {
    let mut samples = vec![0.0; (lead_in * SAMPLE_RATE as f64) as usize];
    let mut turns = Vec::new();
    for &(speaker, text, gap_after) in parts {
        let start = samples.len() as f64 / SAMPLE_RATE as f64;
        samples.extend(say(voices[speaker], text));
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

/// A back-and-forth between `speakers` of `PEOPLE`: `turns` sentences, speakers taking turns
/// in the order 0, 1, …, with varied gaps.
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
    conversation_of(&PEOPLE, 0.5, &parts, 0.002)
}
