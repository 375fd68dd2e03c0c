//! Speech made at test time with espeak-ng (and sox), word error rates, and the Whisper model
//! directory (converted on first use by `scripts/models/whisper.py`).

use std::path::{Path, PathBuf};

/// Conversational passages: espeak's voice is hard for tiny.en, and context helps it.
pub const PASSAGES: [&str; 5] = [
    "Good morning everyone. Thank you for coming to the meeting today. We have a lot to talk about, so let us get started with the first item on the list.",
    "Last week the team finished the new version of the app. It is faster than the old one, and people say it is much easier to use.",
    "I went to the market on Saturday with my sister. We bought some fruit, a loaf of bread and a bunch of fresh flowers for our mother.",
    "The weather has been very hot this month, so remember to drink plenty of water and stay out of the sun in the middle of the day.",
    "We counted 23 boats in the harbour this morning, and the captain said that 4 more would arrive before lunch.",
];

use std::process::Command;

/// The project's root (where `scripts/` and `models/` are).
pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The virtualenv's python: `LAHSTATS_PYTHON`, else `.venv/bin/python` in the project.
pub fn python() -> PathBuf {
    std::env::var_os("LAHSTATS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join(".venv/bin/python"))
}

/// `models/whisper-tiny.en`, made by the conversion script if it is not there yet.
pub fn whisper_model_dir() -> PathBuf {
    let root = project_root();
    let dir = root.join("models/whisper-tiny.en");
    if !dir.join("model.safetensors").exists() {
        let status = Command::new(python())
            .arg(root.join("scripts/models/whisper.py"))
            .arg("--out")
            .arg(root.join("models"))
            .status()
            .expect("run scripts/models/whisper.py with the virtualenv's python");
        assert!(status.success(), "converting Whisper tiny.en failed");
    }
    dir
}

/// `text` spoken by espeak-ng (US English, `words_per_minute`), as 16 kHz mono f32 samples.
pub fn speak(text: &str, words_per_minute: u32, dir: &Path) -> Vec<f32> {
    let wav = dir.join(format!("speech-{}.wav", std::process::id()));
    let raw = dir.join(format!("speech-{}.f32", std::process::id()));
    let status = Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", &words_per_minute.to_string(), "-w"])
        .arg(&wav)
        .arg(text)
        .status()
        .expect("espeak-ng is installed");
    assert!(status.success(), "espeak-ng failed");
    let status = Command::new("sox")
        .arg(&wav)
        .args([
            "-r",
            "16000",
            "-c",
            "1",
            "-e",
            "floating-point",
            "-b",
            "32",
            "-t",
            "raw",
        ])
        .arg(&raw)
        .status()
        .expect("sox is installed");
    assert!(status.success(), "sox failed");
    read_f32(&raw)
}

pub fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .expect("read raw samples")
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// The samples of a 16 kHz mono WAV (any sample format sox reads), as f32 in [-1, 1].
pub fn read_wav(path: &Path) -> Vec<f32> {
    let raw = path.with_extension("read.f32");
    let status = Command::new("sox")
        .arg(path)
        .args(["-e", "floating-point", "-b", "32", "-t", "raw"])
        .arg(&raw)
        .status()
        .expect("sox is installed");
    assert!(status.success(), "sox failed");
    read_f32(&raw)
}

pub fn write_f32(path: &Path, samples: &[f32]) {
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    std::fs::write(path, bytes).expect("write raw samples");
}

/// `seconds` of silence at 16 kHz.
pub fn silence(seconds: f64) -> Vec<f32> {
    vec![0.0; (seconds * 16000.0) as usize]
}

/// Lower-case words without punctuation ("forty-two" → "forty two").
pub fn normalized_words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' {
                c
            } else {
                ' '
            }
        })
        .collect::<String>()
        .split_whitespace()
        .map(|w| w.trim_matches('\'').to_string())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Word error rate of `hypothesis` against `reference`: word edit distance / reference words.
pub fn wer(reference: &str, hypothesis: &str) -> f64 {
    let reference = normalized_words(reference);
    let hypothesis = normalized_words(hypothesis);
    let mut previous: Vec<usize> = (0..=hypothesis.len()).collect();
    for (i, r) in reference.iter().enumerate() {
        let mut current = vec![i + 1; hypothesis.len() + 1];
        for (j, h) in hypothesis.iter().enumerate() {
            let substitution = previous[j] + usize::from(r != h);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[hypothesis.len()] as f64 / reference.len().max(1) as f64
}

/// `samples` as a 16 kHz mono 16-bit WAV file at `path` (what faster-whisper and `analyze` read).
pub fn write_wav(samples: &[f32], path: &Path) {
    let raw = path.with_extension("f32");
    write_f32(&raw, samples);
    // -R: repeatable dither. sox dithers the conversion to 16 bits with random noise by default,
    // and tiny.en's reading of the same speech can flip on it (pipeline_transcript's "twenty one"
    // heard as "twenty, when" in one fresh-clone run of three).
    let status = Command::new("sox")
        .args([
            "-R",
            "-t",
            "raw",
            "-r",
            "16000",
            "-c",
            "1",
            "-e",
            "floating-point",
            "-b",
            "32",
        ])
        .arg(&raw)
        .args(["-b", "16", "-e", "signed-integer"])
        .arg(path)
        .status()
        .expect("sox is installed");
    assert!(status.success(), "sox failed");
}
