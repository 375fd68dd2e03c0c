//! Test audio made at test time with espeak-ng, sox and the ffmpeg CLI, plus the signal measures
//! the audio tests compare decoded output with (energy envelopes, tone frequencies, levels).
#![allow(dead_code)] // each test binary uses its own subset of these helpers

use std::path::{Path, PathBuf};
use std::process::Command;

pub const RATE: f64 = 16_000.0;

/// Runs a tool and panics with its stderr when it fails.
pub fn run(command: &mut Command) -> Vec<u8> {
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("cannot start {command:?}: {err}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Speech from espeak-ng (22.05 kHz mono WAV).
pub fn speech(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    run(Command::new("espeak-ng")
        .args(["-v", "en", "-w"])
        .arg(&path)
        .arg(text));
    path
}

/// A sine tone from sox at `rate` Hz, mono, with peak amplitude `amplitude`.
pub fn tone(
    dir: &Path,
    name: &str,
    frequency: f64,
    seconds: f64,
    rate: u32,
    amplitude: f64,
) -> PathBuf {
    let path = dir.join(name);
    run(Command::new("sox")
        .args(["-n", "-r", &rate.to_string(), "-c", "1", "-b", "16"])
        .arg(&path)
        .args([
            "synth",
            &seconds.to_string(),
            "sine",
            &frequency.to_string(),
            "vol",
            &amplitude.to_string(),
        ]));
    path
}

/// Digital silence from sox at `rate` Hz, mono.
pub fn silence(dir: &Path, name: &str, seconds: f64, rate: u32) -> PathBuf {
    let path = dir.join(name);
    run(Command::new("sox")
        .args(["-n", "-r", &rate.to_string(), "-c", "1", "-b", "16"])
        .arg(&path)
        .args(["trim", "0", &seconds.to_string()]));
    path
}

/// Joins WAV files of the same rate and channel count end to end with sox.
pub fn concat(dest: &Path, parts: &[PathBuf]) -> PathBuf {
    run(Command::new("sox").args(parts).arg(dest));
    dest.to_path_buf()
}

/// Duration of a WAV file in seconds, as sox reads its header.
pub fn wav_seconds(path: &Path) -> f64 {
    let out = run(Command::new("soxi").arg("-D").arg(path));
    String::from_utf8_lossy(&out)
        .trim()
        .parse()
        .expect("soxi prints a number")
}

/// Converts `src` with the ffmpeg CLI: `ffmpeg -i src ARGS dest`.
pub fn ffmpeg(src: &Path, dest: &Path, args: &[&str]) -> PathBuf {
    run(Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
        .arg(src)
        .args(args)
        .arg(dest));
    dest.to_path_buf()
}

/// Whether this ffmpeg build has the named encoder.
pub fn has_encoder(name: &str) -> bool {
    let out = run(Command::new("ffmpeg").args(["-hide_banner", "-encoders"]));
    String::from_utf8_lossy(&out)
        .lines()
        .any(|line| line.split_whitespace().nth(1) == Some(name))
}

/// AMR-NB in a 3GP file, as older phones record. FFmpeg here has no AMR encoder
/// (libopencore_amrnb is not enabled), so sox (which links libopencore-amrnb) encodes the AMR
/// and the ffmpeg CLI only remuxes it into 3GP.
pub fn amr_3gp(src: &Path, dir: &Path, name: &str) -> PathBuf {
    let narrowband = dir.join(format!("{name}.8k.wav"));
    run(Command::new("sox")
        .arg(src)
        .args(["-r", "8000", "-c", "1"])
        .arg(&narrowband));
    let amr = dir.join(format!("{name}.amr"));
    run(Command::new("sox")
        .arg(&narrowband)
        .args(["-t", "amr-nb"])
        .arg(&amr));
    ffmpeg(&amr, &dir.join(format!("{name}.3gp")), &["-c:a", "copy"])
}

/// An independent 16 kHz mono reference of `src`, resampled by sox rather than FFmpeg.
pub fn sox_reference(src: &Path) -> Vec<f32> {
    let raw = run(Command::new("sox").arg(src).args([
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
        "-",
    ]));
    raw.chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

pub fn seconds(samples: &[f32]) -> f64 {
    samples.len() as f64 / RATE
}

/// The samples between two times (clamped to the signal).
pub fn span(samples: &[f32], from: f64, to: f64) -> &[f32] {
    let start = ((from * RATE) as usize).min(samples.len());
    let end = ((to * RATE) as usize).clamp(start, samples.len());
    &samples[start..end]
}

pub fn rms(samples: &[f32]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    (samples
        .iter()
        .map(|&s| f64::from(s) * f64::from(s))
        .sum::<f64>()
        / samples.len() as f64)
        .sqrt()
}

/// RMS energy per 20 ms frame.
pub fn envelope(samples: &[f32]) -> Vec<f64> {
    samples.chunks(320).map(rms).collect()
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mean_a = a.iter().sum::<f64>() / n as f64;
    let mean_b = b.iter().sum::<f64>() / n as f64;
    let cov: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - mean_a) * (y - mean_b))
        .sum();
    let var_a: f64 = a.iter().map(|x| (x - mean_a).powi(2)).sum();
    let var_b: f64 = b.iter().map(|y| (y - mean_b).powi(2)).sum();
    cov / (var_a.sqrt() * var_b.sqrt())
}

/// The best Pearson correlation of two energy envelopes over shifts of up to `max_lag` frames,
/// and the shift (in frames, positive when `decoded` lags) where it is reached.
pub fn envelope_correlation(decoded: &[f32], reference: &[f32], max_lag: usize) -> (f64, isize) {
    let (dec, refe) = (envelope(decoded), envelope(reference));
    let mut best = (f64::MIN, 0isize);
    for lag in 0..=max_lag {
        let forward = pearson(&dec[lag.min(dec.len())..], &refe);
        let backward = pearson(&dec, &refe[lag.min(refe.len())..]);
        if forward > best.0 {
            best = (forward, lag as isize);
        }
        if backward > best.0 {
            best = (backward, -(lag as isize));
        }
    }
    best
}

/// Power of one frequency in a block (Goertzel), normalised by the block length.
pub fn tone_power(samples: &[f32], frequency: f64) -> f64 {
    let omega = 2.0 * std::f64::consts::PI * frequency / RATE;
    let coeff = 2.0 * omega.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (samples.len() as f64).powi(2)
}

/// The strongest frequency between 50 Hz and 4 kHz, in 5 Hz steps.
pub fn dominant_frequency(samples: &[f32]) -> f64 {
    (10..=800)
        .map(|step| f64::from(step) * 5.0)
        .map(|f| (f, tone_power(samples, f)))
        .fold(
            (0.0, f64::MIN),
            |best, next| if next.1 > best.1 { next } else { best },
        )
        .0
}
