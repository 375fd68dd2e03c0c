//! Who spoke when on espeak-ng conversations with known turns, 30–120 s long: speaker counts
//! from two to five voices, label order, the speaker bounds, the diarization error rate,
//! `dominant_speaker`, and silence. (Real speech is measured by scripts/score on the AMI
//! excerpts; these cover what those cannot: known counts and exact turns.)

mod support;

use lahstats_worker::inference::diarize::der::diarization_error;
use lahstats_worker::inference::diarize::{
    to_rttm, Diarization, DiarizeOptions, Diarizer, SpeakerTurn,
};
use support::speech::{conversation, models_dir, round_robin, Conversation};
use tch::Device;

fn diarizer() -> Diarizer {
    Diarizer::load(&models_dir(), Device::Cpu).expect("models load")
}

fn diarize(diarizer: &mut Diarizer, talk: &Conversation, opts: &DiarizeOptions) -> Diarization {
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

/// `voices` voices taking `turns` turns, counted right, numbered in order of first appearance,
/// with a low DER (espeak-ng voices, exact turns: most of the error is the turns' edges).
fn counted_right(voices: usize, turns: usize) {
    let talk = round_robin(voices, turns);
    assert!(
        (30.0..=120.0).contains(&talk.seconds()),
        "{} s",
        talk.seconds()
    );
    let result = diarize(&mut diarizer(), &talk, &DiarizeOptions::default());
    assert_eq!(result.num_speakers, voices, "{:?}", result.turns);
    first_appearance_order(&result.turns);
    let der = diarization_error(&talk.turns, &result.turns).der();
    assert!(der < 0.15, "DER {der:.3}");
}

#[test]
fn two_voices_are_two_speakers() {
    counted_right(2, 8);
}

#[test]
fn three_voices_are_three_speakers() {
    counted_right(3, 12);
}

#[test]
fn four_voices_are_four_speakers() {
    counted_right(4, 16);
}

#[test]
fn five_voices_are_five_speakers() {
    counted_right(5, 20);
}

#[test]
fn speaker_bounds_are_respected() {
    let talk = round_robin(3, 9);
    let mut diarizer = diarizer();
    let at_most_two = DiarizeOptions {
        max_speakers: Some(2),
        ..DiarizeOptions::default()
    };
    assert!(diarize(&mut diarizer, &talk, &at_most_two).num_speakers <= 2);
    // Four asked of three voices: the clustering makes four, but a speaker the audio does not
    // hold may win no frame in the reconstruction, so three or four come out, never more.
    let exactly_four = DiarizeOptions {
        min_speakers: Some(4),
        max_speakers: Some(4),
        ..DiarizeOptions::default()
    };
    let four = diarize(&mut diarizer, &talk, &exactly_four).num_speakers;
    assert!((3..=4).contains(&four), "{four}");
    // Two asked of two voices: two.
    let two = round_robin(2, 8);
    let exactly_two = DiarizeOptions {
        min_speakers: Some(2),
        max_speakers: Some(2),
        ..DiarizeOptions::default()
    };
    assert_eq!(diarize(&mut diarizer, &two, &exactly_two).num_speakers, 2);
}

#[test]
fn each_turn_has_its_speaker_as_the_dominant_one() {
    let talk = round_robin(2, 8);
    let result = diarize(&mut diarizer(), &talk, &DiarizeOptions::default());
    // Map true speakers to found ones by the first turn of each.
    let found_for = |truth: usize| {
        let turn = talk.turns.iter().find(|t| t.speaker == truth).unwrap();
        result.dominant_speaker(turn.start, turn.end)
    };
    let (a, b) = (found_for(0), found_for(1));
    assert!(a.is_some() && b.is_some() && a != b, "{a:?} {b:?}");
    for turn in &talk.turns {
        let expected = if turn.speaker == 0 { a } else { b };
        // The middle second of the turn, as a word inside it would be.
        let middle = (turn.start + turn.end) / 2.0;
        assert_eq!(
            result.dominant_speaker(middle - 0.5, middle + 0.5),
            expected,
            "{turn:?}"
        );
    }
    // Before anyone speaks (the lead-in is 0.5 s of silence), nobody dominates.
    assert_eq!(result.dominant_speaker(0.0, 0.1), None);
}

#[test]
fn silence_and_tiny_audio_give_no_speakers() {
    let mut diarizer = diarizer();
    let empty = diarizer
        .diarize(&[0.0f32; 0][..], &DiarizeOptions::default())
        .unwrap();
    assert_eq!((empty.num_speakers, empty.turns.len()), (0, 0));
    assert_eq!(empty.dominant_speaker(0.0, 1.0), None);
    let silence = diarizer
        .diarize(&vec![0.0; 16_000 * 5], &DiarizeOptions::default())
        .unwrap();
    assert_eq!(silence.num_speakers, 0);
    assert!(silence.speech.is_empty());
    // One short utterance in a short recording: one speaker.
    let talk = conversation(0.2, &[(0, "Okay lah, see you tomorrow then.", 0.3)], 0.0);
    let short = diarizer
        .diarize(&talk.samples, &DiarizeOptions::default())
        .unwrap();
    assert_eq!(short.num_speakers, 1, "{short:?}");
}

#[test]
fn nonsense_options_are_refused() {
    let bad = DiarizeOptions {
        step_seconds: 0.0,
        ..DiarizeOptions::default()
    };
    assert!(diarizer().diarize(&[0.0f32; 16_000][..], &bad).is_err());
}
