//! Each word to its speaker, and the transcript as runs of one speaker's words in time order.
//!
//! [`speaker_at`] is the one place a word meets the diarization: the speaker the diarization
//! marks dominant over the word's time (`Diarization::dominant_speaker`: in overlap, the one
//! with the highest aggregated activation), else the turn nearest to it.

use crate::inference::diarize::{Diarization, SpeakerTurn};
use crate::inference::whisper::Word;

/// A word with no turn under it goes to a turn at most this far away (seconds): word times and
/// turn edges each miss by a frame or two, and a turn's first word often starts just before it.
pub const NEAREST_TURN_TOLERANCE_SECONDS: f64 = 0.5;
/// A pause this long between two words of the same speaker starts a new segment.
pub const SEGMENT_PAUSE_SECONDS: f64 = 2.0;

/// A word of the transcript with its speaker.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeakerWord {
    pub word: Word,
    pub speaker: usize,
}

/// The speaker who said the word at `start`–`end` seconds: the one the diarization marks
/// dominant there, else the speaker of the turn overlapping it most or nearest to it within
/// [`NEAREST_TURN_TOLERANCE_SECONDS`]; `None` when there is no such turn.
pub fn speaker_at(diarization: &Diarization, start: f64, end: f64) -> Option<usize> {
    diarization.dominant_speaker(start, end).or_else(|| {
        largest_overlap(
            &diarization.turns,
            start,
            end,
            NEAREST_TURN_TOLERANCE_SECONDS,
        )
    })
}

/// The speaker of the turn overlapping `start`–`end` most; when none overlaps, of the nearest
/// turn within `tolerance` seconds.
pub fn largest_overlap(
    turns: &[SpeakerTurn],
    start: f64,
    end: f64,
    tolerance: f64,
) -> Option<usize> {
    let overlap = |t: &SpeakerTurn| end.min(t.end) - start.max(t.start);
    let distance = |t: &SpeakerTurn| (t.start - end).max(start - t.end).max(0.0);
    let best = turns
        .iter()
        .filter(|t| overlap(t) > 0.0)
        .max_by(|a, b| overlap(a).total_cmp(&overlap(b)));
    best.or_else(|| {
        turns
            .iter()
            .filter(|t| distance(t) <= tolerance)
            .min_by(|a, b| distance(a).total_cmp(&distance(b)))
    })
    .map(|t| t.speaker)
}

/// Gives every word a speaker. A word the diarization leaves without one (no turn near it, e.g.
/// a short reply it missed) goes to the nearest turn at any distance, or to speaker 0 when
/// there are no turns at all: a word heard is never dropped for want of a speaker.
pub fn assign(words: Vec<Word>, diarization: &Diarization) -> Vec<SpeakerWord> {
    words
        .into_iter()
        .map(|word| {
            let speaker = speaker_at(diarization, word.start, word.end)
                .or_else(|| {
                    largest_overlap(&diarization.turns, word.start, word.end, f64::INFINITY)
                })
                .unwrap_or(0);
            SpeakerWord { word, speaker }
        })
        .collect()
}

/// One run of a speaker's consecutive words.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub speaker: usize,
    pub start: f64,
    pub end: f64,
    /// The words joined as the recogniser wrote them, trimmed.
    pub text: String,
}

/// The transcript as runs of one speaker's consecutive words (`words` in time order); a run
/// also ends at a pause of [`SEGMENT_PAUSE_SECONDS`].
pub fn runs(words: &[SpeakerWord]) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    for w in words {
        match runs.last_mut() {
            Some(run)
                if run.speaker == w.speaker && w.word.start - run.end < SEGMENT_PAUSE_SECONDS =>
            {
                run.text.push_str(&w.word.word);
                run.end = run.end.max(w.word.end);
            }
            _ => runs.push(Run {
                speaker: w.speaker,
                start: w.word.start,
                end: w.word.end,
                text: w.word.word.clone(),
            }),
        }
    }
    for run in &mut runs {
        run.text = run.text.trim().to_string();
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(speaker: usize, start: f64, end: f64) -> SpeakerTurn {
        SpeakerTurn {
            speaker,
            start,
            end,
        }
    }

    fn word(text: &str, start: f64, end: f64) -> Word {
        Word {
            word: format!(" {text}"),
            start,
            end,
            probability: 0.9,
        }
    }

    fn diarization(turns: Vec<SpeakerTurn>) -> Diarization {
        Diarization {
            speech: vec![],
            num_speakers: turns.iter().map(|t| t.speaker + 1).max().unwrap_or(0),
            turns,
            // No frame-wise activity: the turns alone decide.
            activity: Default::default(),
        }
    }

    #[test]
    fn the_most_overlapping_turn_wins_and_near_misses_go_to_the_nearest() {
        let d = diarization(vec![
            turn(0, 0.0, 2.0),
            turn(1, 1.8, 4.0),
            turn(0, 6.0, 7.0),
        ]);
        assert_eq!(speaker_at(&d, 1.0, 1.5), Some(0));
        assert_eq!(speaker_at(&d, 1.7, 2.5), Some(1));
        assert_eq!(speaker_at(&d, 4.2, 4.4), Some(1));
        assert_eq!(speaker_at(&d, 5.7, 5.9), Some(0));
        assert_eq!(speaker_at(&d, 4.8, 5.0), None);
        let assigned = assign(vec![word("far", 4.8, 5.0)], &d);
        assert_eq!(
            assigned[0].speaker, 1,
            "nothing is dropped: the nearest turn takes it"
        );
    }

    #[test]
    fn runs_follow_the_conversation() {
        let d = diarization(vec![
            turn(0, 0.0, 2.0),
            turn(1, 2.0, 4.0),
            turn(0, 4.0, 9.0),
        ]);
        let words = vec![
            word("Hello", 0.1, 0.5),
            word("there.", 0.6, 1.0),
            word("Hi", 2.2, 2.5),
            word("lah.", 2.6, 2.9),
            word("Shall", 4.1, 4.4),
            word("we?", 4.5, 4.8),
            word("Later.", 7.5, 8.0),
        ];
        let runs = runs(&assign(words, &d));
        let texts: Vec<(usize, &str)> = runs.iter().map(|r| (r.speaker, r.text.as_str())).collect();
        assert_eq!(
            texts,
            vec![
                (0, "Hello there."),
                (1, "Hi lah."),
                (0, "Shall we?"),
                (0, "Later.")
            ]
        );
        assert_eq!((runs[1].start, runs[1].end), (2.2, 2.9));
    }
}
