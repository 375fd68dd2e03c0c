//! Who spoke when on espeak-ng conversations with known turns: speaker counts, boundaries,
//! label order, bounds, and the diarization error rate.

mod support;

use lahstats_worker::inference::diarize::der::diarization_error;
use lahstats_worker::inference::diarize::{
    to_rttm, Diarization, DiarizeOptions, Diarizer, SpeakerTurn,
};
use support::speech::{conversation, models_dir, round_robin, Conversation, SENTENCES, VOICES};
use tch::Device;

fn diarize(talk: &Conversation, opts: &DiarizeOptions) -> Diarization {
    let mut diarizer = Diarizer::load(&models_dir(), Device::Cpu).expect("models load");
    let result = diarizer
        .diarize(&talk.samples, opts)
        .expect("diarization runs");
    let der = diarization_error(&talk.turns, &result.turns);
    println!(
        "{:.1} s, {} true speakers → {} found, DER {:.3} (missed {:.2} s, false alarm {:.2} s, confusion {:.2} s)",
        talk.seconds(),
        distinct_speakers(&talk.turns),
        result.num_speakers,
        der.der(),
        der.missed,
        der.false_alarm,
        der.confusion
    );
    print!("{}", to_rttm(&result, "test"));
    result
}

fn distinct_speakers(turns: &[SpeakerTurn]) -> usize {
    let mut ids: Vec<usize> = turns.iter().map(|t| t.speaker).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.len()
}

fn der_of(talk: &Conversation, result: &Diarization) -> f64 {
    diarization_error(&talk.turns, &result.turns).der()
}

/// Each true turn start has a hypothesis speaker change (or turn start) within `tolerance`.
fn boundaries_within(truth: &[SpeakerTurn], found: &[SpeakerTurn], tolerance: f64) {
    for turn in truth.iter().skip(1) {
        let near = found
            .iter()
            .any(|f| (f.start - turn.start).abs() <= tolerance);
        assert!(
            near,
            "no turn starts within {tolerance} s of {turn:?}: {found:?}"
        );
    }
}

/// Speakers are numbered in order of first appearance.
fn first_appearance_order(found: &[SpeakerTurn]) {
    let mut next = 0;
    for turn in found {
        assert!(
            turn.speaker <= next,
            "speaker {} appears before {next}: {found:?}",
            turn.speaker
        );
        next = next.max(turn.speaker + 1);
    }
}

#[test]
fn two_voices_are_two_speakers() {
    let talk = round_robin(2, 10);
    let result = diarize(&talk, &DiarizeOptions::default());
    assert_eq!(result.num_speakers, 2);
    first_appearance_order(&result.turns);
    boundaries_within(&talk.turns, &result.turns, 0.5);
    assert!(der_of(&talk, &result) < 0.10);
}

#[test]
fn three_voices_are_three_speakers() {
    let talk = round_robin(3, 12);
    let result = diarize(&talk, &DiarizeOptions::default());
    assert_eq!(result.num_speakers, 3);
    first_appearance_order(&result.turns);
    boundaries_within(&talk.turns, &result.turns, 0.5);
    assert!(der_of(&talk, &result) < 0.10);
}

#[test]
fn one_voice_is_one_speaker() {
    for voice in 0..VOICES.len() {
        let parts: Vec<(usize, &str, f64)> = SENTENCES[voice * 3..voice * 3 + 6]
            .iter()
            .map(|s| (voice, *s, 0.8))
            .collect();
        let talk = conversation(0.5, &parts, 0.002);
        let result = diarize(&talk, &DiarizeOptions::default());
        assert_eq!(result.num_speakers, 1, "voice {voice}: {:?}", result.turns);
        assert!(result.turns.iter().all(|t| t.speaker == 0));
    }
}

#[test]
fn every_pair_of_voices_is_two_speakers() {
    for (a, b) in [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)] {
        let parts: Vec<(usize, &str, f64)> = (0..8)
            .map(|i| {
                (
                    if i % 2 == 0 { a } else { b },
                    SENTENCES[(i + 3 * a) % 16],
                    0.7,
                )
            })
            .collect();
        let talk = conversation(0.3, &parts, 0.002);
        let result = diarize(&talk, &DiarizeOptions::default());
        assert_eq!(
            result.num_speakers, 2,
            "voices {a} and {b}: {:?}",
            result.turns
        );
        assert!(der_of(&talk, &result) < 0.15);
    }
}

#[test]
fn speaker_bounds_are_respected() {
    let talk = round_robin(3, 9);
    let at_most_two = DiarizeOptions {
        max_speakers: Some(2),
        ..DiarizeOptions::default()
    };
    assert!(diarize(&talk, &at_most_two).num_speakers <= 2);
    let exactly_four = DiarizeOptions {
        min_speakers: Some(4),
        max_speakers: Some(4),
        ..DiarizeOptions::default()
    };
    assert_eq!(diarize(&talk, &exactly_four).num_speakers, 4);
}

#[test]
fn silence_and_tiny_audio_give_no_speakers() {
    let mut diarizer = Diarizer::load(&models_dir(), Device::Cpu).unwrap();
    let empty = diarizer.diarize(&[], &DiarizeOptions::default()).unwrap();
    assert_eq!((empty.num_speakers, empty.turns.len()), (0, 0));
    let silence = diarizer
        .diarize(&vec![0.0; 16_000 * 5], &DiarizeOptions::default())
        .unwrap();
    assert_eq!(silence.num_speakers, 0);
    // One short utterance: shorter than a window, still one speaker.
    let talk = conversation(0.2, &[(0, "Okay lah.", 0.2)], 0.0);
    let short = diarizer
        .diarize(&talk.samples, &DiarizeOptions::default())
        .unwrap();
    assert_eq!(short.num_speakers, 1, "{short:?}");
}
