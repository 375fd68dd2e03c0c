//! Decoding every format a phone produces to 16 kHz mono, checked against an independent sox
//! rendering of the same source: length, where the speech and silence are, and a tone's pitch
//! and level. Also the stereo downmix and the WAV writers.

mod support;

use std::path::{Path, PathBuf};

use lahstats_worker::audio::{decode_file, write_wav, write_wav_clip, AudioOptions, SAMPLE_RATE};
use support::audio::*;
use tempfile::TempDir;

/// Speech, a second of silence, more speech, a short pause, then a 1 kHz tone at 0.3 peak: one
/// 22.05 kHz mono recording, and that recording as a 44.1 kHz stereo s16 WAV (both channels equal).
struct SourceRecording {
    dir: TempDir,
    stereo_wav: PathBuf,
    reference: Vec<f32>,
    first_speech: (f64, f64),
    gap: (f64, f64),
    tone: (f64, f64),
}

const TONE_HZ: f64 = 1000.0;
const TONE_PEAK: f64 = 0.3;

fn source_recording() -> SourceRecording {
    let dir = TempDir::new().expect("temp dir");
    let d = dir.path();
    let first = speech(
        d,
        "first.wav",
        "Walao, the queue at the hawker centre so long lah.",
    );
    let gap = silence(d, "gap.wav", 1.0, 22_050);
    let second = speech(d, "second.wav", "Never mind, we go somewhere else lor.");
    let pause = silence(d, "pause.wav", 0.5, 22_050);
    let tone_part = tone(d, "tone.wav", TONE_HZ, 1.0, 22_050, TONE_PEAK);
    let first_len = wav_seconds(&first);
    let second_len = wav_seconds(&second);
    let mono = concat(&d.join("mono.wav"), &[first, gap, second, pause, tone_part]);
    // sox copies the mono channel into both at full level (ffmpeg's upmix would lower it 3 dB).
    let stereo_wav = d.join("source.wav");
    run(std::process::Command::new("sox")
        .arg(&mono)
        .args(["-r", "44100", "-c", "2", "-b", "16"])
        .arg(&stereo_wav));
    let reference = sox_reference(&mono);
    let tone_start = first_len + 1.0 + second_len + 0.5;
    SourceRecording {
        reference,
        stereo_wav,
        first_speech: (0.0, first_len),
        gap: (first_len, first_len + 1.0),
        tone: (tone_start, tone_start + 1.0),
        dir,
    }
}

fn decode(path: &Path) -> Vec<f32> {
    let location = path.to_str().expect("utf-8 temp path");
    decode_file(location, &AudioOptions::default())
        .unwrap_or_else(|err| panic!("{location}: {err}"))
}

/// The decoded audio has the source's length, its speech and silence where the source has them,
/// and the tone at the right pitch (which only holds if the samples really are at 16 kHz).
fn assert_matches_source(
    decoded: &[f32],
    src: &SourceRecording,
    length_tolerance: f64,
    min_correlation: f64,
) {
    let (decoded_len, source_len) = (seconds(decoded), seconds(&src.reference));
    assert!(
        (decoded_len - source_len).abs() <= length_tolerance,
        "decoded {decoded_len:.3} s, source {source_len:.3} s"
    );

    let (correlation, lag) = envelope_correlation(decoded, &src.reference, 5);
    assert!(
        correlation >= min_correlation,
        "energy envelope correlation {correlation:.3} (lag {lag} frames)"
    );
    assert!(
        lag.abs() <= 2,
        "decoded audio is shifted by {lag} frames of 20 ms"
    );

    let speech_level = rms(span(decoded, src.first_speech.0, src.first_speech.1));
    let gap_level = rms(span(decoded, src.gap.0 + 0.1, src.gap.1 - 0.1));
    assert!(
        gap_level < speech_level * 0.05,
        "silence {gap_level:.4} vs speech {speech_level:.4}"
    );

    let tone = span(decoded, src.tone.0 + 0.1, src.tone.1 - 0.1);
    let pitch = dominant_frequency(tone);
    assert!(
        (pitch - TONE_HZ).abs() <= 10.0,
        "tone decoded at {pitch} Hz"
    );
    let expected_rms = TONE_PEAK / 2f64.sqrt();
    let tone_rms = rms(tone);
    eprintln!(
        "length {decoded_len:.3} s vs {source_len:.3} s, envelope r={correlation:.3} lag={lag}, \
         silence/speech {:.4}, tone {pitch} Hz at {:.3} of the expected level",
        gap_level / speech_level,
        tone_rms / expected_rms
    );
    assert!(
        (tone_rms / expected_rms - 1.0).abs() < 0.2,
        "tone level {tone_rms:.4}, expected {expected_rms:.4}"
    );
}

#[test]
fn wav_s16_44k_stereo_decodes_to_the_source() {
    let src = source_recording();
    let decoded = decode(&src.stereo_wav);
    assert_matches_source(&decoded, &src, 0.01, 0.98);
}

#[test]
fn m4a_aac_decodes_to_the_source() {
    let src = source_recording();
    let path = ffmpeg(
        &src.stereo_wav,
        &src.dir.path().join("a.m4a"),
        &["-c:a", "aac", "-b:a", "96k"],
    );
    assert_matches_source(&decode(&path), &src, 0.05, 0.95);
}

#[test]
fn webm_opus_decodes_to_the_source() {
    let src = source_recording();
    let path = ffmpeg(
        &src.stereo_wav,
        &src.dir.path().join("a.webm"),
        &["-c:a", "libopus", "-b:a", "48k"],
    );
    assert_matches_source(&decode(&path), &src, 0.05, 0.95);
}

#[test]
fn ogg_opus_decodes_to_the_source() {
    let src = source_recording();
    let path = ffmpeg(
        &src.stereo_wav,
        &src.dir.path().join("a.ogg"),
        &["-c:a", "libopus", "-b:a", "48k"],
    );
    assert_matches_source(&decode(&path), &src, 0.05, 0.95);
}

#[test]
fn mp3_decodes_to_the_source() {
    assert!(
        has_encoder("libmp3lame"),
        "this ffmpeg has no libmp3lame encoder"
    );
    let src = source_recording();
    let path = ffmpeg(
        &src.stereo_wav,
        &src.dir.path().join("a.mp3"),
        &["-c:a", "libmp3lame", "-b:a", "96k"],
    );
    assert_matches_source(&decode(&path), &src, 0.05, 0.95);
}

#[test]
fn amr_nb_in_3gp_decodes_to_the_source() {
    let src = source_recording();
    let path = amr_3gp(&src.stereo_wav, src.dir.path(), "a");
    // AMR-NB at 4.75 kbit/s is a speech codec at 8 kHz: frames are 20 ms and the tone's level is
    // only roughly kept, hence the looser figures.
    assert_matches_source(&decode(&path), &src, 0.05, 0.9);
}

#[test]
fn flac_decodes_to_the_source() {
    let src = source_recording();
    let path = ffmpeg(
        &src.stereo_wav,
        &src.dir.path().join("a.flac"),
        &["-c:a", "flac"],
    );
    assert_matches_source(&decode(&path), &src, 0.01, 0.98);
}

#[test]
fn a_tone_only_in_the_left_channel_comes_out_at_its_own_level() {
    let dir = TempDir::new().expect("temp dir");
    let left = tone(dir.path(), "left.wav", 440.0, 2.0, 48_000, 0.8);
    let quiet = silence(dir.path(), "right.wav", 2.0, 48_000);
    let stereo = dir.path().join("left_only.wav");
    run(std::process::Command::new("sox")
        .arg("-M")
        .arg(&left)
        .arg(&quiet)
        .arg(&stereo));

    let decoded = decode(&stereo);
    assert!(
        (seconds(&decoded) - 2.0).abs() < 0.01,
        "decoded {} s",
        seconds(&decoded)
    );
    let middle = span(&decoded, 0.2, 1.8);
    assert!((dominant_frequency(middle) - 440.0).abs() <= 5.0);
    // A dead channel is left out of the downmix (averaging would halve the live one): the
    // left channel's 0.8 peak comes through as it is.
    let expected_rms = 0.8 / 2f64.sqrt();
    assert!(
        (rms(middle) / expected_rms - 1.0).abs() < 0.02,
        "rms {} expected {expected_rms}",
        rms(middle)
    );
    let peak = middle.iter().fold(0f32, |m, s| m.max(s.abs()));
    assert!((f64::from(peak) - 0.8).abs() < 0.02, "peak {peak}");
}

#[test]
fn wav_clip_is_written_with_at_most_the_asked_length_and_the_right_content() {
    let src = source_recording();
    let decoded = decode(&src.stereo_wav);
    let dest = src
        .dir
        .path()
        .join("processed/nested/speaker_SPEAKER_00_sample.wav");

    // A 5 s clip starting 0.5 s before the tone: the audio ends first, so it is shorter.
    let start = src.tone.0 - 0.5;
    write_wav_clip(&decoded, start, 5.0, &dest).expect("clip written");
    let clip = decode(&dest);
    let expected = seconds(&decoded) - start;
    assert!(
        (seconds(&clip) - expected).abs() < 0.002,
        "clip {} s, expected {expected}",
        seconds(&clip)
    );
    assert!(
        rms(span(&clip, 0.0, 0.4)) < 0.01,
        "the clip starts in the pause"
    );
    assert!((dominant_frequency(span(&clip, 0.6, 1.4)) - TONE_HZ).abs() <= 5.0);

    // A clip shorter than the audio left is cut at exactly max_seconds, sample for sample.
    write_wav_clip(&decoded, src.first_speech.0, 1.25, &dest).expect("clip overwritten");
    let clip = decode(&dest);
    assert_eq!(clip.len(), (1.25 * f64::from(SAMPLE_RATE)) as usize);
    let max_error = clip
        .iter()
        .zip(&decoded)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        max_error <= 1.0 / 32_000.0,
        "16-bit round trip error {max_error}"
    );

    let entries: Vec<_> = std::fs::read_dir(dest.parent().expect("parent"))
        .expect("dir")
        .collect();
    assert_eq!(entries.len(), 1, "no partial files are left behind");

    let past_the_end = write_wav_clip(&decoded, seconds(&decoded) + 1.0, 5.0, &dest);
    assert!(
        past_the_end.is_err(),
        "a clip past the end of the audio is refused"
    );
}

#[test]
fn full_audio_wav_round_trips() {
    let src = source_recording();
    let decoded = decode(&src.stereo_wav);
    let dest = src.dir.path().join("full_audio.wav");
    write_wav(&decoded, &dest).expect("written");
    let header_seconds = wav_seconds(&dest);
    assert!(
        (header_seconds - seconds(&decoded)).abs() < 1e-4,
        "sox reads {header_seconds} s from the header"
    );
    let again = decode(&dest);
    assert_eq!(again.len(), decoded.len());
    assert_matches_source(&again, &src, 0.01, 0.98);
}
