//! Each kind of bad input gives its own clear, permanent error, and durations are probed
//! correctly even where the container states none.

mod support;

use std::path::{Path, PathBuf};

use lahstats_worker::audio::{decode_file, probe_duration, AudioError, AudioOptions};
use lahstats_worker::error::{Classify, ErrorKind};
use support::audio::*;
use tempfile::TempDir;

fn location(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

fn decode_err(path: &Path, opts: &AudioOptions) -> AudioError {
    match decode_file(location(path), opts) {
        Ok(samples) => panic!(
            "{} decoded to {} samples, expected an error",
            path.display(),
            samples.len()
        ),
        Err(err) => {
            assert_eq!(err.kind(), ErrorKind::Permanent, "{err}");
            err
        }
    }
}

/// About 5.4 s of espeak speech as an m4a (moov atom at the end, as phones write it).
fn speech_m4a(dir: &Path) -> (PathBuf, f64) {
    let wav = speech(
        dir,
        "speech.wav",
        "Walao, the queue at the hawker centre so long lah. Never mind, we go somewhere else lor.",
    );
    let seconds = wav_seconds(&wav);
    (
        ffmpeg(&wav, &dir.join("speech.m4a"), &["-c:a", "aac"]),
        seconds,
    )
}

/// The first half of a file, as an interrupted upload leaves it.
fn first_half(path: &Path, dest: PathBuf) -> PathBuf {
    let bytes = std::fs::read(path).expect("read");
    std::fs::write(&dest, &bytes[..bytes.len() / 2]).expect("write");
    dest
}

#[test]
fn a_missing_file_is_not_found_and_names_the_file() {
    let dir = TempDir::new().expect("temp dir");
    let missing = dir.path().join("chunk_0007.m4a");
    let err = decode_err(&missing, &AudioOptions::default());
    assert!(matches!(err, AudioError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("chunk_0007.m4a"), "{err}");
}

#[test]
fn relative_locations_are_read_under_the_storage_root() {
    let dir = TempDir::new().expect("temp dir");
    let chunks = dir.path().join("sessions/abc/chunks");
    std::fs::create_dir_all(&chunks).expect("mkdir");
    tone(
        &chunks,
        "chunk_0000_1700000000.wav",
        440.0,
        1.0,
        16_000,
        0.5,
    );
    let opts = AudioOptions {
        storage_root: dir.path().to_path_buf(),
        ..AudioOptions::default()
    };
    let samples =
        decode_file("sessions/abc/chunks/chunk_0000_1700000000.wav", &opts).expect("decoded");
    assert_eq!(samples.len(), 16_000);
    let err = decode_file("sessions/abc/chunks/chunk_0001.wav", &opts).expect_err("missing");
    assert!(matches!(err, AudioError::NotFound { .. }), "{err:?}");
}

#[test]
fn a_text_file_named_m4a_is_corrupt() {
    let dir = TempDir::new().expect("temp dir");
    let path = dir.path().join("notes.m4a");
    std::fs::write(
        &path,
        "Shopping list: kopi, kaya toast, two half-boiled eggs.\n".repeat(20),
    )
    .expect("write");
    let err = decode_err(&path, &AudioOptions::default());
    // FFmpeg probes the content, not the name: no container recognises it.
    assert!(
        matches!(
            err,
            AudioError::Corrupt { .. } | AudioError::NoAudioStream { .. }
        ),
        "{err:?}"
    );
}

#[test]
fn a_video_without_sound_has_no_audio_stream() {
    let dir = TempDir::new().expect("temp dir");
    let path = dir.path().join("video.mp4");
    run(std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc=d=1",
            "-c:v",
            "mpeg4",
        ])
        .arg(&path));
    let err = decode_err(&path, &AudioOptions::default());
    assert!(matches!(err, AudioError::NoAudioStream { .. }), "{err:?}");
}

#[test]
fn a_truncated_m4a_is_corrupt_unless_its_index_came_first() {
    let dir = TempDir::new().expect("temp dir");
    let (m4a, seconds) = speech_m4a(dir.path());
    // Index (moov) at the end, as phones write it: half the file has no index at all, and FFmpeg
    // refuses to open it ("moov atom not found").
    let err = decode_err(
        &first_half(&m4a, dir.path().join("half.m4a")),
        &AudioOptions::default(),
    );
    assert!(
        matches!(&err, AudioError::Corrupt { reason, .. } if reason.contains("Invalid data")),
        "{err:?}"
    );

    // Index first (faststart): FFmpeg opens it, the demuxer stops at the data's end ("partial
    // file") and only the last, cut frame fails to decode. One bad packet is tolerated like the
    // ffmpeg CLI does, so the part that arrived is kept (with a warning in the log).
    let faststart = ffmpeg(
        &m4a,
        &dir.path().join("faststart.m4a"),
        &["-c", "copy", "-movflags", "+faststart"],
    );
    let half = first_half(&faststart, dir.path().join("half_fs.m4a"));
    let samples =
        decode_file(location(&half), &AudioOptions::default()).expect("the first half decodes");
    let got = support::audio::seconds(&samples);
    assert!(
        got > seconds * 0.35 && got < seconds * 0.6,
        "decoded {got:.2} s of {seconds:.2} s"
    );
}

#[test]
fn a_truncated_mp3_decodes_to_the_part_that_arrived() {
    let dir = TempDir::new().expect("temp dir");
    let wav = speech(
        dir.path(),
        "speech.wav",
        "Walao, the queue at the hawker centre so long lah. Never mind, we go somewhere else lor.",
    );
    let mp3 = ffmpeg(
        &wav,
        &dir.path().join("speech.mp3"),
        &["-c:a", "libmp3lame", "-b:a", "64k"],
    );
    let half = first_half(&mp3, dir.path().join("half.mp3"));
    // MP3 is a plain run of self-contained frames: the demuxer stops at the last whole frame and
    // nothing reports an error, so FFmpeg (and the worker, with a warning) keeps the first half.
    let samples =
        decode_file(location(&half), &AudioOptions::default()).expect("half an mp3 still decodes");
    let (got, full) = (seconds(&samples), wav_seconds(&wav));
    assert!(
        (got - full / 2.0).abs() < 0.3,
        "decoded {got:.2} s of a {full:.2} s recording"
    );
    let reference = sox_reference(&wav);
    let (correlation, _) = envelope_correlation(&samples, &reference[..samples.len()], 5);
    assert!(
        correlation > 0.95,
        "the part that arrived is the start of the speech ({correlation:.3})"
    );
}

#[test]
fn an_m4a_with_scrambled_audio_data_is_corrupt() {
    let dir = TempDir::new().expect("temp dir");
    let (m4a, _) = speech_m4a(dir.path());
    let mut bytes = std::fs::read(&m4a).expect("read");
    // Overwrite the middle half of the mdat payload: the index stays intact, the AAC frames it
    // points at are noise, and the decoder rejects most of them.
    let at = bytes
        .windows(4)
        .position(|w| w == b"mdat")
        .expect("mdat box");
    let size =
        u32::from_be_bytes([bytes[at - 4], bytes[at - 3], bytes[at - 2], bytes[at - 1]]) as usize;
    let (start, end) = (at + 4, at - 4 + size);
    let mut state = 0x2545_f491_u32;
    for byte in &mut bytes[start + (end - start) / 4..start + 3 * (end - start) / 4] {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        *byte = state as u8;
    }
    let path = dir.path().join("scrambled.m4a");
    std::fs::write(&path, bytes).expect("write");
    let err = decode_err(&path, &AudioOptions::default());
    assert!(
        matches!(&err, AudioError::Corrupt { reason, .. } if reason.contains("packets failed to decode")),
        "{err:?}"
    );
}

#[test]
fn an_audio_stream_without_samples_is_empty() {
    let dir = TempDir::new().expect("temp dir");
    let path = dir.path().join("empty.wav");
    run(std::process::Command::new("sox")
        .args(["-n", "-r", "16000", "-c", "1", "-b", "16"])
        .arg(&path)
        .args(["trim", "0", "0"]));
    let err = decode_err(&path, &AudioOptions::default());
    assert!(matches!(err, AudioError::Empty { .. }), "{err:?}");
}

#[test]
fn audio_longer_than_the_limit_is_too_long() {
    let dir = TempDir::new().expect("temp dir");
    let opts = AudioOptions {
        max_duration_seconds: 2.0,
        ..AudioOptions::default()
    };
    let wav = tone(dir.path(), "long.wav", 300.0, 3.0, 16_000, 0.5);
    let err = decode_err(&wav, &opts);
    assert!(
        matches!(err, AudioError::TooLong { seconds, max } if (seconds - 3.0).abs() < 0.01 && max == 2.0),
        "{err:?}"
    );

    // WebM written to a pipe, as a browser's MediaRecorder does, states no duration: the limit
    // is enforced while decoding instead (with a second of slack for codec padding).
    let webm = dir.path().join("streamed.webm");
    let bytes = run(std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(&wav)
        .args(["-t", "3.6", "-c:a", "libopus", "-f", "webm", "-"]));
    std::fs::write(&webm, bytes).expect("write");
    let err = decode_err(
        &webm,
        &AudioOptions {
            max_duration_seconds: 2.0,
            ..AudioOptions::default()
        },
    );
    assert!(
        matches!(err, AudioError::TooLong { seconds, .. } if seconds > 3.0),
        "{err:?}"
    );
    assert!(decode_file(location(&webm), &AudioOptions::default()).is_ok());
}

#[test]
fn durations_are_probed_with_and_without_a_container_duration() {
    let dir = TempDir::new().expect("temp dir");
    let (m4a, seconds) = speech_m4a(dir.path());
    let probed = probe_duration(location(&m4a), &AudioOptions::default()).expect("m4a probed");
    assert!((probed - seconds).abs() < 0.05, "m4a {probed} vs {seconds}");

    let webm = dir.path().join("streamed.webm");
    let bytes = run(std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(&m4a)
        .args(["-c:a", "libopus", "-f", "webm", "-"]));
    std::fs::write(&webm, bytes).expect("write");
    // Without a stated duration the packets are timed instead. A streamed WebM also has no
    // DiscardPadding, so Opus's padding of the last 20 ms frame counts too, in probe and decode.
    let probed = probe_duration(location(&webm), &AudioOptions::default()).expect("webm probed");
    let decoded = support::audio::seconds(
        &decode_file(location(&webm), &AudioOptions::default()).expect("decoded"),
    );
    assert!(
        (probed - decoded).abs() < 0.025,
        "webm without a duration: probed {probed}, decoded {decoded}"
    );
    assert!(
        (probed - seconds).abs() < 0.1,
        "webm without a duration {probed} vs {seconds}"
    );

    let err = probe_duration(
        location(&dir.path().join("nope.m4a")),
        &AudioOptions::default(),
    )
    .expect_err("missing");
    assert!(matches!(err, AudioError::NotFound { .. }), "{err:?}");
}
