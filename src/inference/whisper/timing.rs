//! Word-level timestamps, ported from openai-whisper's `whisper/timing.py`: the decoder reads
//! the window's text once more with the cross-attention weights of its alignment heads kept;
//! those are normalised per token, smoothed in time by a median filter, averaged over the heads,
//! and dynamic time warping finds the monotonic path of tokens through the audio frames. A
//! word starts where the path first reaches its first token.
//!
//! Names follow the reference: [`median_filter`], [`dtw`] with [`backtrace`],
//! [`find_alignment`], [`merge_punctuations`], [`add_word_timestamps`].

use super::model::TextDecoder;
use super::tokenizer::WhisperTokenizer;
use super::{Config, N_SAMPLES_PER_TOKEN, SAMPLE_RATE};
use crate::inference::InferenceError;
use tch::{Kind, Tensor};

/// `medfilt_width` of `find_alignment`.
pub const MEDFILT_WIDTH: i64 = 7;
/// `qk_scale` of `find_alignment`.
pub const QK_SCALE: f64 = 1.0;
/// Punctuation joined to the word after it (`prepend_punctuations`).
pub const PREPEND_PUNCTUATIONS: &str = "\"'\u{201c}\u{bf}([{-";
/// Punctuation joined to the word before it (`append_punctuations`).
pub const APPEND_PUNCTUATIONS: &str =
    "\"'.\u{3002},\u{ff0c}!\u{ff01}?\u{ff1f}:\u{ff1a}\u{201d})]}\u{3001}";
/// Audio positions of the decoder's cross-attention per second (one per 20 ms).
pub const TOKENS_PER_SECOND: f64 = SAMPLE_RATE as f64 / N_SAMPLES_PER_TOKEN as f64;

/// One word with its tokens, times (seconds into the window) and mean token probability.
#[derive(Debug, Clone, PartialEq)]
pub struct WordTiming {
    pub word: String,
    pub tokens: Vec<u32>,
    pub start: f64,
    pub end: f64,
    pub probability: f64,
}

/// `median_filter` along the last axis of `x` (any shape), with reflected edges: each value
/// becomes the median of the `filter_width` (odd) values around it. The reference sorts an
/// unfolded copy (`x.unfold(-1, w, 1).sort()`): for the cross-attention weights of a window
/// that is `w` copies of them plus 64-bit indices, about 85 MB at the peak of a transcription;
/// here each row is filtered in place of that, on a copy of `filter_width` values at a time.
pub fn median_filter(x: &Tensor, filter_width: i64) -> Result<Tensor, tch::TchError> {
    let pad_width = (filter_width / 2) as usize;
    let shape = x.size();
    let width = *shape.last().unwrap_or(&0) as usize;
    if width <= pad_width {
        return Ok(x.shallow_clone()); // F.pad's reflect mode needs more than pad_width
    }
    let values = Vec::<f32>::try_from(x.f_to_kind(tch::Kind::Float)?.f_reshape([-1])?)?;
    let mut filtered = Vec::with_capacity(values.len());
    let mut window = Vec::with_capacity(2 * pad_width + 1);
    for row in values.chunks(width) {
        // Index `i - pad_width + k` of the row reflected at both ends, as F.pad(mode="reflect").
        let reflected = |at: isize| {
            let last = width as isize - 1;
            let at = if at < 0 { -at } else { at };
            row[(if at > last { 2 * last - at } else { at }) as usize]
        };
        for i in 0..width {
            window.clear();
            window.extend(
                (0..=2 * pad_width)
                    .map(|k| reflected(i as isize + k as isize - pad_width as isize)),
            );
            window.sort_unstable_by(f32::total_cmp);
            filtered.push(window[pad_width]);
        }
    }
    Tensor::f_from_slice(&filtered)?
        .f_reshape(shape.as_slice())?
        .f_to_kind(x.kind())?
        .f_to_device(x.device())
}

/// `backtrace` of the reference: the path through `trace` (`(n + 1) × (m + 1)`, 0 diagonal,
/// 1 up, 2 left) from the end to the start, as (text indices, time indices).
pub fn backtrace(trace: &mut [Vec<u8>]) -> (Vec<usize>, Vec<usize>) {
    let (mut i, mut j) = (trace.len() - 1, trace[0].len() - 1);
    trace[0].iter_mut().for_each(|t| *t = 2);
    trace.iter_mut().for_each(|row| row[0] = 1);
    let mut path = Vec::new();
    while i > 0 || j > 0 {
        path.push((i - 1, j - 1));
        match trace[i][j] {
            0 => {
                i -= 1;
                j -= 1;
            }
            1 => i -= 1,
            _ => j -= 1,
        }
    }
    path.reverse();
    path.into_iter().unzip()
}

/// `dtw_cpu`: the cheapest monotonic path through `x` (`n` rows × `m` columns, row-major).
pub fn dtw(x: &[f32], n: usize, m: usize) -> (Vec<usize>, Vec<usize>) {
    let mut cost = vec![vec![f32::INFINITY; m + 1]; n + 1];
    let mut trace = vec![vec![u8::MAX; m + 1]; n + 1];
    cost[0][0] = 0.0;
    for j in 1..=m {
        for i in 1..=n {
            let (c0, c1, c2) = (cost[i - 1][j - 1], cost[i - 1][j], cost[i][j - 1]);
            let (c, t) = if c0 < c1 && c0 < c2 {
                (c0, 0)
            } else if c1 < c0 && c1 < c2 {
                (c1, 1)
            } else {
                (c2, 2)
            };
            cost[i][j] = x[(i - 1) * m + (j - 1)] + c;
            trace[i][j] = t;
        }
    }
    backtrace(&mut trace)
}

/// `find_alignment`: the words of `text_tokens` (text only) with their times in the window.
/// `audio_features` is the window's encoder output `[1, n_audio_ctx, state]`, `sot_sequence`
/// the tokens before the text (<|startoftranscript|>, and the language and task of a
/// multilingual model), `num_frames` the window's content in mel frames.
pub fn find_alignment(
    decoder: &TextDecoder,
    config: &Config,
    tokenizer: &WhisperTokenizer,
    audio_features: &Tensor,
    sot_sequence: &[u32],
    text_tokens: &[u32],
    num_frames: usize,
) -> Result<Vec<WordTiming>, InferenceError> {
    if text_tokens.is_empty() {
        return Ok(Vec::new());
    }
    let special = &config.special_tokens;
    let device = audio_features.device();
    let mut tokens: Vec<i64> = sot_sequence.iter().map(|&t| t as i64).collect();
    tokens.push(special.no_timestamps as i64);
    tokens.extend(text_tokens.iter().map(|&t| t as i64));
    tokens.push(special.eot as i64);
    let heads = config.alignment_heads();
    let layers: Vec<usize> = heads.iter().map(|&(layer, _)| layer).collect();
    let torch = super::transcribe::torch_error;
    let input = Tensor::f_from_slice(&tokens)
        .and_then(|t| t.f_view([1, -1]))
        .and_then(|t| t.f_to_device(device))
        .map_err(torch)?;
    let (hidden, qks) = decoder
        .forward_with_cross_qk(&input, audio_features, &layers)
        .map_err(torch)?;

    // The probability of each text token, for the words' probabilities.
    let sot_len = sot_sequence.len() as i64;
    let logits = decoder
        .exact_logits(&hidden.f_select(0, 0).map_err(torch)?)
        .map_err(torch)?;
    let sampled = logits
        .f_narrow(0, sot_len, text_tokens.len() as i64)
        .and_then(|l| l.f_narrow(1, 0, special.eot as i64))
        .and_then(|l| l.f_softmax(-1, Kind::Float))
        .map_err(torch)?;
    let index = Tensor::f_from_slice(&text_tokens.iter().map(|&t| t as i64).collect::<Vec<_>>())
        .and_then(|i| i.f_to_device(device))
        .and_then(|i| i.f_view([-1, 1]))
        .map_err(torch)?;
    let token_probs: Vec<f32> = sampled
        .f_gather(1, &index, false)
        .and_then(|p| p.f_view([-1]))
        .and_then(|p| p.f_to_device(tch::Device::Cpu))
        .and_then(|p| Vec::<f32>::try_from(&p))
        .map_err(torch)?;

    // heads × tokens × frames
    let per_head: Vec<Tensor> = heads
        .iter()
        .filter_map(|&(layer, head)| {
            qks.get(layer)
                .and_then(|qk| qk.as_ref())
                .map(|qk| qk.select(0, 0).select(0, head as i64))
        })
        .collect();
    let audio_positions = ((num_frames / 2) as i64).max(1);
    let matrix = (|| -> Result<Tensor, tch::TchError> {
        let weights = Tensor::f_stack(&per_head, 0)?
            .f_narrow(2, 0, audio_positions)?
            .f_mul_scalar(QK_SCALE)?
            .f_softmax(-1, Kind::Float)?;
        let (std, mean) = weights.f_std_mean_dim([-2i64].as_slice(), false, true)?;
        let weights = weights.f_sub(&mean)?.f_div(&std)?;
        let weights = median_filter(&weights, MEDFILT_WIDTH)?;
        let matrix = weights.f_mean_dim(Some([0i64].as_slice()), false, Kind::Float)?;
        let rows = matrix.size()[0];
        matrix
            .f_narrow(0, sot_len, rows - sot_len - 1)?
            .f_neg()?
            .f_contiguous()?
            .f_to_device(tch::Device::Cpu)
    })()
    .map_err(torch)?;
    let (n, m) = (matrix.size()[0] as usize, matrix.size()[1] as usize);
    let values: Vec<f32> = Vec::try_from(matrix.f_view([-1]).map_err(torch)?).map_err(torch)?;
    let (text_indices, time_indices) = dtw(&values, n, m);

    let mut with_eot = text_tokens.to_vec();
    with_eot.push(special.eot);
    let (words, word_tokens) = tokenizer.split_to_word_tokens(&with_eot)?;
    if word_tokens.len() <= 1 {
        return Ok(Vec::new());
    }
    let mut boundaries = vec![0usize];
    for tokens in &word_tokens[..word_tokens.len() - 1] {
        boundaries.push(boundaries.last().copied().unwrap_or(0) + tokens.len());
    }
    // The time at which the path first reaches each token.
    let jump_times: Vec<f64> = (0..text_indices.len())
        .filter(|&k| k == 0 || text_indices[k] != text_indices[k - 1])
        .map(|k| time_indices[k] as f64 / TOKENS_PER_SECOND)
        .collect();
    let time_at = |b: usize| {
        jump_times
            .get(b)
            .or(jump_times.last())
            .copied()
            .unwrap_or(0.0)
    };
    Ok(words
        .into_iter()
        .zip(word_tokens)
        .zip(boundaries.windows(2))
        .map(|((word, tokens), bounds)| {
            let (i, j) = (bounds[0], bounds[1]);
            let probs = &token_probs[i.min(token_probs.len())..j.min(token_probs.len())];
            WordTiming {
                word,
                tokens,
                start: time_at(i),
                end: time_at(j),
                probability: probs.iter().map(|&p| f64::from(p)).sum::<f64>()
                    / probs.len().max(1) as f64,
            }
        })
        .collect())
}

/// `merge_punctuations`: opening marks join the next word and closing marks the previous one,
/// leaving empty entries where they were.
pub fn merge_punctuations(alignment: &mut [WordTiming], prepended: &str, appended: &str) {
    if alignment.len() < 2 {
        return;
    }
    let (mut i, mut j) = (alignment.len() as isize - 2, alignment.len() - 1);
    while i >= 0 {
        let previous = alignment[i as usize].clone();
        let trimmed = previous.word.trim();
        if previous.word.starts_with(' ') && !trimmed.is_empty() && prepended.contains(trimmed) {
            let following = &mut alignment[j];
            following.word = previous.word.clone() + &following.word;
            following.tokens = [previous.tokens.clone(), following.tokens.clone()].concat();
            alignment[i as usize].word.clear();
            alignment[i as usize].tokens.clear();
        } else {
            j = i as usize;
        }
        i -= 1;
    }
    let (mut i, mut j) = (0, 1);
    while j < alignment.len() {
        let following = alignment[j].clone();
        let previous = &alignment[i];
        if !previous.word.ends_with(' ')
            && !following.word.is_empty()
            && appended.contains(following.word.as_str())
        {
            let previous = &mut alignment[i];
            previous.word.push_str(&following.word);
            previous.tokens.extend(&following.tokens);
            alignment[j].word.clear();
            alignment[j].tokens.clear();
        } else {
            i = j;
        }
        j += 1;
    }
}

/// A word of a transcript with its times (seconds, session time once placed).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Word {
    /// As the recogniser wrote it, with its leading space and punctuation.
    pub word: String,
    pub start: f64,
    pub end: f64,
    /// Mean probability of its tokens.
    pub probability: f64,
}

/// A segment as `add_word_timestamps` needs it: its text tokens, times and words.
pub trait TimedSegment {
    fn text_tokens(&self, eot: u32) -> Vec<u32>;
    fn start(&self) -> f64;
    fn end(&self) -> f64;
    fn set_start(&mut self, start: f64);
    fn set_end(&mut self, end: f64);
    fn set_words(&mut self, words: Vec<Word>);
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// `add_word_timestamps`' placement of `alignment` (from [`find_alignment`] over the text
/// tokens of all `segments`, in order) onto the segments: word times offset by `time_offset`,
/// over-long words at sentence and segment boundaries cut to twice the median word length,
/// punctuation merged, and segment times moved to their words'. Returns the new
/// `last_speech_timestamp`.
pub fn add_word_timestamps<S: TimedSegment>(
    segments: &mut [S],
    mut alignment: Vec<WordTiming>,
    eot: u32,
    time_offset: f64,
    mut last_speech_timestamp: f64,
) -> f64 {
    let mut durations: Vec<f64> = alignment
        .iter()
        .map(|t| t.end - t.start)
        .filter(|&d| d != 0.0)
        .collect();
    let median_duration = median(&mut durations).min(0.7);
    let max_duration = median_duration * 2.0;
    if !durations.is_empty() {
        const SENTENCE_END_MARKS: &str = ".\u{3002}!\u{ff01}?\u{ff1f}";
        let is_mark = |w: &str| !w.is_empty() && SENTENCE_END_MARKS.contains(w);
        for i in 1..alignment.len() {
            if alignment[i].end - alignment[i].start > max_duration {
                if is_mark(&alignment[i].word) {
                    alignment[i].end = alignment[i].start + max_duration;
                } else if is_mark(&alignment[i - 1].word) {
                    alignment[i].start = alignment[i].end - max_duration;
                }
            }
        }
    }
    merge_punctuations(&mut alignment, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS);

    let mut word_index = 0;
    for segment in segments.iter_mut() {
        let text_tokens = segment.text_tokens(eot);
        let mut saved_tokens = 0;
        let mut words: Vec<Word> = Vec::new();
        while word_index < alignment.len() && saved_tokens < text_tokens.len() {
            let timing = &alignment[word_index];
            if !timing.word.is_empty() {
                words.push(Word {
                    word: timing.word.clone(),
                    start: round2(time_offset + timing.start),
                    end: round2(time_offset + timing.end),
                    probability: timing.probability,
                });
            }
            saved_tokens += timing.tokens.len();
            word_index += 1;
        }
        if let (Some(first), Some(last)) = (words.first().cloned(), words.last().cloned()) {
            // The first and second word after a pause are not longer than twice the median.
            let second_end = words.get(1).map(|w| w.end);
            if first.end - last_speech_timestamp > median_duration * 4.0
                && (first.end - first.start > max_duration
                    || second_end.is_some_and(|e| e - first.start > max_duration * 2.0))
            {
                if words.len() > 1 && words[1].end - words[1].start > max_duration {
                    let boundary = (words[1].end / 2.0).max(words[1].end - max_duration);
                    words[0].end = boundary;
                    words[1].start = boundary;
                }
                words[0].start = (words[0].end - max_duration).max(0.0);
            }
            // The segment-level start is preferred when the first word is too long.
            if segment.start() < words[0].end && segment.start() - 0.5 > words[0].start {
                words[0].start = (words[0].end - median_duration)
                    .min(segment.start())
                    .max(0.0);
            } else {
                segment.set_start(words[0].start);
            }
            // The segment-level end is preferred when the last word is too long.
            let n = words.len() - 1;
            if segment.end() > words[n].start && segment.end() + 0.5 < words[n].end {
                words[n].end = (words[n].start + median_duration).max(segment.end());
            } else {
                segment.set_end(words[n].end);
            }
            let _ = last;
            last_speech_timestamp = segment.end();
        }
        segment.set_words(words);
    }
    last_speech_timestamp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtw_follows_the_cheap_diagonal() {
        // 3 tokens over 6 frames, cheapest along two frames per token.
        let mut x = vec![1.0f32; 18];
        for (token, frames) in [(0, [0, 1]), (1, [2, 3]), (2, [4, 5])] {
            for f in frames {
                x[token * 6 + f] = -1.0;
            }
        }
        let (text, time) = dtw(&x, 3, 6);
        assert_eq!(text, vec![0, 0, 1, 1, 2, 2]);
        assert_eq!(time, vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn median_filter_removes_a_spike_and_keeps_edges() {
        // Reflected edges, as F.pad(mode="reflect"): [3, 1, 2, …, 6, 7] is read as
        // [1, 3, 1, 2, …, 6, 7, 6], so the first median is of (1, 3, 1) and the last of (6, 7, 6).
        let x = Tensor::from_slice(&[3.0f32, 1.0, 2.0, 9.0, 4.0, 5.0, 6.0, 7.0]).view([1, 8]);
        let y: Vec<f32> = Vec::try_from(median_filter(&x, 3).unwrap().view([-1])).unwrap();
        assert_eq!(y, vec![1.0, 2.0, 2.0, 4.0, 5.0, 5.0, 6.0, 6.0]);
        // Too short to reflect: left as it is.
        let short = Tensor::from_slice(&[1.0f32]).view([1, 1]);
        let y: Vec<f32> = Vec::try_from(median_filter(&short, 3).unwrap().view([-1])).unwrap();
        assert_eq!(y, vec![1.0]);
    }

    #[test]
    fn median_filter_matches_the_references_unfold_and_sort() {
        let x = Tensor::randn([2, 3, 50], (tch::Kind::Float, tch::Device::Cpu));
        let padded = x.reshape([-1, 1, 50]).reflection_pad1d([3, 3]);
        let (sorted, _) = padded.unfold(-1, 7, 1).sort(-1, false);
        let reference = sorted.select(-1, 3).reshape([2, 3, 50]);
        let ours = median_filter(&x, 7).unwrap();
        assert_eq!(ours.size(), vec![2, 3, 50]);
        assert!(ours.equal(&reference));
    }

    fn timing(word: &str, start: f64, end: f64) -> WordTiming {
        WordTiming {
            word: word.into(),
            tokens: vec![1],
            start,
            end,
            probability: 1.0,
        }
    }

    #[test]
    fn punctuation_joins_its_word() {
        let mut words = vec![
            timing(" \"", 0.0, 0.1),
            timing("Hello", 0.1, 0.5),
            timing(",", 0.5, 0.6),
            timing(" world", 0.6, 1.0),
            timing(".", 1.0, 1.1),
        ];
        merge_punctuations(&mut words, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS);
        let texts: Vec<&str> = words.iter().map(|w| w.word.as_str()).collect();
        assert_eq!(texts, vec!["", " \"Hello,", "", " world.", ""]);
        assert_eq!(words[1].tokens.len(), 3);
    }
}
