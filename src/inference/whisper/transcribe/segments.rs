//! A window's sampled tokens split into segments at their timestamp tokens, as openai-whisper's
//! `_split_segments_by_timestamps` (whisper/transcribe.py) splits them.

use super::INPUT_STRIDE;
use crate::inference::whisper::TIME_PRECISION;

/// One segment's tokens and its timestamps (seconds into the window).
#[derive(Debug, PartialEq)]
pub struct TokenPiece<'a> {
    pub tokens: &'a [u32],
    pub start: Option<f64>,
    pub end: Option<f64>,
}

/// A window's tokens split into segments.
#[derive(Debug, PartialEq)]
pub struct TokenSplit<'a> {
    pub pieces: Vec<TokenPiece<'a>>,
    /// Where the next window starts, in mel frames from this one's start; `None`: after it.
    pub seek_frames: Option<usize>,
    pub single_timestamp_ending: bool,
}

/// `_split_segments_by_timestamps`' split of sampled tokens at consecutive timestamp tokens:
/// an unfinished last segment is left for the next window, which starts at its timestamp.
pub fn split_at_timestamps(tokens: &[u32], timestamp_begin: u32) -> TokenSplit<'_> {
    let is_timestamp = |t: u32| t >= timestamp_begin;
    let position = |t: u32| (t - timestamp_begin) as usize;
    let seconds = |t: u32| position(t) as f64 * TIME_PRECISION;
    let single_timestamp_ending = tokens.len() >= 2
        && !is_timestamp(tokens[tokens.len() - 2])
        && is_timestamp(tokens[tokens.len() - 1]);
    let mut slices: Vec<usize> = (1..tokens.len())
        .filter(|&i| is_timestamp(tokens[i - 1]) && is_timestamp(tokens[i]))
        .collect();
    if slices.is_empty() {
        // No complete segment: the whole window is one, up to its last timestamp if any.
        let last = tokens
            .iter()
            .rev()
            .find(|&&t| is_timestamp(t))
            .filter(|&&t| t != timestamp_begin);
        return TokenSplit {
            pieces: vec![TokenPiece {
                tokens,
                start: None,
                end: last.map(|&t| seconds(t)),
            }],
            seek_frames: None,
            single_timestamp_ending,
        };
    }
    if single_timestamp_ending {
        slices.push(tokens.len());
    }
    let mut pieces = Vec::new();
    let mut last_slice = 0;
    for &current in &slices {
        let piece = &tokens[last_slice..current];
        pieces.push(TokenPiece {
            tokens: piece,
            start: piece.first().map(|&t| seconds(t)),
            end: piece.last().map(|&t| seconds(t)),
        });
        last_slice = current;
    }
    let seek_frames =
        (!single_timestamp_ending).then(|| position(tokens[last_slice - 1]) * INPUT_STRIDE);
    TokenSplit {
        pieces,
        seek_frames,
        single_timestamp_ending,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u32 = 50363;

    #[test]
    fn segments_split_at_timestamp_pairs() {
        // <|0.00|> a <|1.00|><|1.00|> b <|2.40|>  → two segments, the window is used up.
        let tokens = [T, 10, T + 50, T + 50, 11, T + 120];
        let split = split_at_timestamps(&tokens, T);
        assert_eq!(split.pieces.len(), 2);
        assert_eq!(
            (split.pieces[0].start, split.pieces[0].end),
            (Some(0.0), Some(1.0))
        );
        assert_eq!(split.pieces[1].tokens, &[T + 50, 11, T + 120]);
        assert!((split.pieces[1].end.unwrap() - 2.4).abs() < 1e-9);
        assert_eq!(split.seek_frames, None);
        assert!(split.single_timestamp_ending);
    }

    #[test]
    fn an_unfinished_segment_is_left_for_the_next_window() {
        // <|0.00|> a <|1.00|><|1.00|> b (cut off) → seek to 1.00 s = 100 frames.
        let tokens = [T, 10, T + 50, T + 50, 11];
        let split = split_at_timestamps(&tokens, T);
        assert_eq!(split.pieces.len(), 1);
        assert_eq!(split.seek_frames, Some(100));
        assert!(!split.single_timestamp_ending);
    }

    #[test]
    fn text_without_pairs_is_one_segment() {
        let tokens = [T, 10, 11, T + 75];
        let split = split_at_timestamps(&tokens, T);
        assert_eq!(split.pieces.len(), 1);
        assert_eq!(
            (split.pieces[0].start, split.pieces[0].end),
            (None, Some(1.5))
        );
        assert_eq!(split.seek_frames, None);
    }
}
