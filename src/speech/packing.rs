//! Attribution by construction: each speaker's turns are packed, in time order, into windows of
//! at most ~30 s of that speaker's audio alone (short silences between turns), so every word the
//! recogniser finds in a window belongs to that speaker. A turn is only cut across windows when
//! it is longer than a window. Short turns ride along with the same
//! speaker's other turns instead of being transcribed (or lost) on their own, and the number of
//! windows stays close to the audio's length / 30 s — what a plain transcription would encode.

use crate::audio::SAMPLE_RATE;

/// One stretch of a speaker's turn placed in a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Piece {
    /// Where the stretch is in the session (seconds).
    pub source_start: f64,
    pub source_end: f64,
    /// Where it starts in the window (seconds).
    pub window_offset: f64,
}

/// Audio of one speaker to transcribe as one Whisper window.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeakerWindow {
    pub speaker: usize,
    pub pieces: Vec<Piece>,
    pub samples: Vec<f32>,
}

/// A speaker turn as packing needs it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Turn {
    pub speaker: usize,
    pub start: f64,
    pub end: f64,
}

/// Packs each speaker's turns into windows of at most `max_seconds`, with `gap_seconds` of
/// silence between turns. Windows come out speaker by speaker, each in time order.
pub fn pack(
    samples: &[f32],
    turns: &[Turn],
    max_seconds: f64,
    gap_seconds: f64,
) -> Vec<SpeakerWindow> {
    let rate = f64::from(SAMPLE_RATE);
    let total = samples.len() as f64 / rate;
    let speakers = turns.iter().map(|t| t.speaker + 1).max().unwrap_or(0);
    let mut windows = Vec::new();
    for speaker in 0..speakers {
        let mut current = SpeakerWindow {
            speaker,
            pieces: Vec::new(),
            samples: Vec::new(),
        };
        let mut own: Vec<&Turn> = turns.iter().filter(|t| t.speaker == speaker).collect();
        own.sort_by(|a, b| a.start.total_cmp(&b.start));
        for turn in own {
            let (mut start, end) = (turn.start.clamp(0.0, total), turn.end.clamp(0.0, total));
            while end - start > 1e-3 {
                let used = current.samples.len() as f64 / rate;
                let gap = if current.pieces.is_empty() {
                    0.0
                } else {
                    gap_seconds
                };
                let room = max_seconds - used - gap;
                // A turn that would fit a fresh window is not cut in two: Whisper misreads
                // words cut at a window's edge, and a window opening mid-sentence invites it
                // to invent an opening.
                let fits_fresh = end - start <= max_seconds;
                if room < 0.5f64.min(end - start)
                    || (fits_fresh && room < end - start && !current.pieces.is_empty())
                {
                    windows.push(std::mem::replace(
                        &mut current,
                        SpeakerWindow {
                            speaker,
                            pieces: Vec::new(),
                            samples: Vec::new(),
                        },
                    ));
                    continue;
                }
                let piece_end = end.min(start + room);
                current
                    .samples
                    .extend(std::iter::repeat_n(0.0, (gap * rate) as usize));
                let offset = current.samples.len() as f64 / rate;
                let (from, to) = (
                    (start * rate) as usize,
                    ((piece_end * rate) as usize).min(samples.len()),
                );
                current.samples.extend_from_slice(&samples[from..to]);
                current.pieces.push(Piece {
                    source_start: start,
                    source_end: piece_end,
                    window_offset: offset,
                });
                start = piece_end;
            }
        }
        if !current.pieces.is_empty() {
            windows.push(current);
        }
    }
    windows
}

impl SpeakerWindow {
    /// Maps a time in the window back to the session's time (a time in a gap goes to the
    /// nearest piece edge).
    pub fn to_source_time(&self, t: f64) -> f64 {
        let mut best = self.pieces.first().map_or(0.0, |p| p.source_start);
        for piece in &self.pieces {
            let length = piece.source_end - piece.source_start;
            if t < piece.window_offset {
                return best.max(piece.source_start.min(best));
            }
            if t <= piece.window_offset + length {
                return piece.source_start + (t - piece.window_offset);
            }
            best = piece.source_end;
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seconds(n: f64) -> Vec<f32> {
        (0..(n * 16_000.0) as usize).map(|i| i as f32).collect()
    }

    #[test]
    fn each_window_holds_one_speakers_turns_in_order() {
        let audio = seconds(20.0);
        let turns = [
            Turn {
                speaker: 0,
                start: 0.0,
                end: 2.0,
            },
            Turn {
                speaker: 1,
                start: 2.0,
                end: 3.0,
            },
            Turn {
                speaker: 0,
                start: 3.0,
                end: 3.4,
            },
            Turn {
                speaker: 1,
                start: 3.4,
                end: 6.0,
            },
        ];
        let windows = pack(&audio, &turns, 29.0, 0.3);
        assert_eq!(windows.len(), 2);
        assert_eq!(windows[0].speaker, 0);
        assert_eq!(windows[0].pieces.len(), 2);
        assert!((windows[0].pieces[1].window_offset - 2.3).abs() < 1e-3);
        // The samples of the second piece are the session's samples at 3.0 s.
        let at = (2.3 * 16_000.0) as usize;
        assert_eq!(windows[0].samples[at], (3.0 * 16_000.0) as f32);
        assert!((windows[0].to_source_time(2.5) - 3.2).abs() < 1e-3);
        assert!((windows[0].to_source_time(1.0) - 1.0).abs() < 1e-3);
        assert_eq!(windows[1].speaker, 1);
    }

    #[test]
    fn long_turns_are_split_across_windows_of_at_most_the_limit() {
        let audio = seconds(70.0);
        let turns = [Turn {
            speaker: 0,
            start: 0.0,
            end: 70.0,
        }];
        let windows = pack(&audio, &turns, 29.0, 0.3);
        assert_eq!(windows.len(), 3);
        for window in &windows {
            assert!(window.samples.len() as f64 / 16_000.0 <= 29.0 + 1e-6);
        }
        assert!((windows[2].to_source_time(0.0) - 58.0).abs() < 1e-3);
    }
}
