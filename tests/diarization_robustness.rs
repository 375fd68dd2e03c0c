//! What a phone recording throws at the diarization (voices from `support::speech::PEOPLE`): the same conversation as WAV, M4A (AAC),
//! MP3 and 8 kHz μ-law telephone audio (decoded by the worker's own ffmpeg decoder) gives the
//! same speaker count; two voices talking over each other for most of their turns are two
//! speakers, with overlap found; one voice for five minutes is one speaker.

mod support;

use lahstats_worker::audio::{decode_file, AudioOptions};
use lahstats_worker::inference::diarize::der::diarization_error;
use lahstats_worker::inference::diarize::{DiarizeOptions, Diarizer, SpeakerTurn};
use support::audio::{ffmpeg, has_encoder};
use support::speech::{models_dir, round_robin, say, PEOPLE, SENTENCES};
use support::tts::write_wav;
use tch::Device;

fn diarizer() -> Diarizer {
    Diarizer::load(&models_dir(), Device::Cpu).expect("models load")
}

#[test]
fn every_format_a_phone_uploads_gives_the_same_count() {
    let talk = round_robin(3, 9);
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("talk.wav");
    write_wav(&talk.samples, &wav);
    let mut files = vec![
        ("wav", wav.clone()),
        (
            "m4a",
            ffmpeg(
                &wav,
                &dir.path().join("talk.m4a"),
                &["-c:a", "aac", "-b:a", "64k"],
            ),
        ),
        (
            "telephone",
            ffmpeg(
                &wav,
                &dir.path().join("talk-8k.wav"),
                &["-ar", "8000", "-c:a", "pcm_mulaw"],
            ),
        ),
    ];
    assert!(
        has_encoder("libmp3lame"),
        "this ffmpeg has no MP3 encoder (Debian's ffmpeg has libmp3lame)"
    );
    files.push((
        "mp3",
        ffmpeg(
            &wav,
            &dir.path().join("talk.mp3"),
            &["-c:a", "libmp3lame", "-b:a", "64k"],
        ),
    ));
    let mut diarizer = diarizer();
    for (format, path) in files {
        let samples = decode_file(&path.to_string_lossy(), &AudioOptions::default())
            .unwrap_or_else(|e| panic!("{format}: {e}"));
        let result = diarizer
            .diarize(&samples, &DiarizeOptions::default())
            .unwrap();
        let der = diarization_error(&talk.turns, &result.turns).der();
        println!("{format}: {} speakers, DER {der:.3}", result.num_speakers);
        assert_eq!(result.num_speakers, 3, "{format}: {:?}", result.turns);
        assert!(der < 0.2, "{format}: DER {der:.3}");
    }
}

#[test]
fn two_voices_talking_over_each_other_are_two_speakers() {
    // Eight exchanges: one voice starts a sentence, the other starts its own 0.8 s later, so
    // the two overlap for most of each turn; who starts first alternates.
    let mut samples = vec![0.0f32; 8_000];
    let mut truth = Vec::new();
    for i in 0..8 {
        let (first, second) = if i % 2 == 0 { (0, 1) } else { (1, 0) };
        let a = say(PEOPLE[first], SENTENCES[i]);
        let b = say(PEOPLE[second], SENTENCES[(i + 7) % SENTENCES.len()]);
        let start = samples.len();
        let lag = 12_800;
        let end = (start + a.len()).max(start + lag + b.len());
        samples.resize(end, 0.0);
        for (k, v) in a.iter().enumerate() {
            samples[start + k] += v * 0.7;
        }
        for (k, v) in b.iter().enumerate() {
            samples[start + lag + k] += v * 0.7;
        }
        let at = |s: usize| s as f64 / 16_000.0;
        truth.push(SpeakerTurn {
            speaker: first,
            start: at(start),
            end: at(start + a.len()),
        });
        truth.push(SpeakerTurn {
            speaker: second,
            start: at(start + lag),
            end: at(start + lag + b.len()),
        });
        samples.resize(samples.len() + 9_600, 0.0);
    }
    let overlap: f64 = truth
        .chunks(2)
        .map(|p| (p[0].end.min(p[1].end) - p[1].start).max(0.0))
        .sum();
    let speech: f64 = truth.iter().map(SpeakerTurn::duration).sum::<f64>() - overlap;
    assert!(
        overlap > 0.5 * speech / 2.0,
        "the test audio overlaps too little"
    );
    let result = diarizer()
        .diarize(&samples, &DiarizeOptions::default())
        .unwrap();
    let found_overlap = overlapped_seconds(&result.turns);
    let der = diarization_error(&truth, &result.turns);
    println!(
        "{:.1} s, {overlap:.1} s of it overlapped: {} speakers, {found_overlap:.1} s overlap found, \
         DER {:.3} (missed {:.1} s, false alarm {:.1} s, confusion {:.1} s)",
        samples.len() as f64 / 16_000.0,
        result.num_speakers,
        der.der(),
        der.missed,
        der.false_alarm,
        der.confusion
    );
    assert_eq!(result.num_speakers, 2, "{:?}", result.turns);
    assert!(
        found_overlap > 0.25 * overlap,
        "only {found_overlap:.1} s of {overlap:.1} s overlap found"
    );
}

/// Seconds where two or more turns overlap.
fn overlapped_seconds(turns: &[SpeakerTurn]) -> f64 {
    let mut total = 0.0;
    for (i, a) in turns.iter().enumerate() {
        for b in &turns[i + 1..] {
            if a.speaker != b.speaker {
                total += (a.end.min(b.end) - a.start.max(b.start)).max(0.0);
            }
        }
    }
    total
}

#[test]
fn one_voice_for_five_minutes_is_one_speaker() {
    let mut samples = vec![0.0f32; 8_000];
    let mut i = 0;
    while samples.len() < 300 * 16_000 {
        samples.extend(say(PEOPLE[2], SENTENCES[i % SENTENCES.len()]));
        samples.resize(samples.len() + [4_800, 11_200, 8_000][i % 3], 0.0);
        i += 1;
    }
    let result = diarizer()
        .diarize(&samples, &DiarizeOptions::default())
        .unwrap();
    println!(
        "{:.0} s of one voice: {} speakers, {} turns",
        samples.len() as f64 / 16_000.0,
        result.num_speakers,
        result.turns.len()
    );
    assert_eq!(result.num_speakers, 1);
}
