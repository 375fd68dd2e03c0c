//! The decoding loop of `whisper/decoding.py` for a batch of windows: the initial tokens (with
//! an optional prompt after <|startofprev|>), the logit filters `SuppressBlank`,
//! `SuppressTokens` and `ApplyTimestampRules`, greedy or temperature sampling, the no-speech
//! probability at the first step, and the compression ratio that drives the fallback.

use super::model::TextDecoder;
use super::{Config, SpecialTokens, TIME_PRECISION};
use rand::Rng;
use std::io::Write;
use tch::{Kind, TchError, Tensor};

/// One window's decoding at one temperature (`DecodingResult`).
#[derive(Debug, Clone, PartialEq)]
pub struct DecodingResult {
    /// Sampled tokens (text and timestamps), without the initial tokens and <|endoftext|>.
    pub tokens: Vec<u32>,
    pub sum_logprob: f64,
    pub avg_logprob: f64,
    pub no_speech_prob: f64,
    pub temperature: f64,
}

impl DecodingResult {
    /// The result of one decoded `sequence` (initial tokens first): its sampled tokens up to
    /// <|endoftext|>, and the average log-probability over them and the end token.
    pub fn of_sequence(
        sequence: &[u32],
        sample_begin: usize,
        eot: u32,
        sum_logprob: f64,
        no_speech_prob: f64,
        temperature: f64,
    ) -> DecodingResult {
        let sampled = &sequence[sample_begin.min(sequence.len())..];
        let end = sampled
            .iter()
            .position(|&t| t == eot)
            .unwrap_or(sampled.len());
        let tokens = sampled[..end].to_vec();
        DecodingResult {
            avg_logprob: sum_logprob / (tokens.len() + 1) as f64,
            tokens,
            sum_logprob,
            no_speech_prob,
            temperature,
        }
    }
}

/// `SuppressBlank`, `SuppressTokens` and `ApplyTimestampRules`, in the reference's order.
#[derive(Debug, Clone)]
pub struct LogitFilters {
    pub sample_begin: usize,
    pub suppress_blank: Vec<u32>,
    pub suppress_tokens: Vec<u32>,
    pub special: SpecialTokens,
    pub max_initial_timestamp_index: Option<u32>,
}

impl LogitFilters {
    pub fn new(config: &Config, sample_begin: usize, max_initial_timestamp: f64) -> Self {
        let special = &config.special_tokens;
        // `_get_suppress_tokens`: the "-1" set plus the task and context tokens.
        let mut suppress_tokens = config.suppress_tokens.clone();
        suppress_tokens.extend([
            special.transcribe,
            special.translate,
            special.sot,
            special.sot_prev,
            special.sot_lm,
        ]);
        suppress_tokens.extend(special.no_speech);
        suppress_tokens.sort_unstable();
        suppress_tokens.dedup();
        LogitFilters {
            sample_begin,
            suppress_blank: config.suppress_blank.clone(),
            suppress_tokens,
            special: special.clone(),
            max_initial_timestamp_index: Some(
                (max_initial_timestamp / TIME_PRECISION).round() as u32
            ),
        }
    }

    /// Masks `logits` (one row over the vocabulary) given the row's `tokens` so far.
    pub fn apply(&self, logits: &mut [f32], tokens: &[u32]) {
        if tokens.len() == self.sample_begin {
            suppress(logits, &self.suppress_blank);
        }
        suppress(logits, &self.suppress_tokens);
        apply_timestamp_rules(
            logits,
            &tokens[self.sample_begin.min(tokens.len())..],
            &self.special,
            self.max_initial_timestamp_index,
        );
    }
}

fn suppress(logits: &mut [f32], tokens: &[u32]) {
    for &token in tokens {
        if let Some(logit) = logits.get_mut(token as usize) {
            *logit = f32::NEG_INFINITY;
        }
    }
}

fn mask(logits: &mut [f32], range: std::ops::Range<usize>) {
    let end = range.end.min(logits.len());
    let start = range.start.min(end);
    logits[start..end].fill(f32::NEG_INFINITY);
}

/// `ApplyTimestampRules.apply` for one row; `sampled` are the tokens after the initial ones.
pub fn apply_timestamp_rules(
    logits: &mut [f32],
    sampled: &[u32],
    special: &SpecialTokens,
    max_initial_timestamp_index: Option<u32>,
) {
    let timestamp_begin = special.timestamp_begin as usize;
    let is_timestamp = |t: u32| t >= special.timestamp_begin;
    // <|notimestamps|> is the without-timestamps mode, never sampled.
    mask(
        logits,
        special.no_timestamps as usize..special.no_timestamps as usize + 1,
    );

    // Timestamps come in pairs, except directly before <|endoftext|>.
    let last_was_timestamp = sampled.last().is_some_and(|&t| is_timestamp(t));
    let penultimate_was_timestamp = sampled.len() < 2 || is_timestamp(sampled[sampled.len() - 2]);
    if last_was_timestamp {
        if penultimate_was_timestamp {
            mask(logits, timestamp_begin..logits.len()); // has to be a non-timestamp
        } else {
            mask(logits, 0..special.eot as usize); // cannot be normal text
        }
    }
    // Timestamps never decrease, and each segment has a non-zero length.
    if let Some(&last_timestamp) = sampled.iter().rev().find(|&&t| is_timestamp(t)) {
        let timestamp_last = if last_was_timestamp && !penultimate_was_timestamp {
            last_timestamp
        } else {
            last_timestamp + 1
        };
        mask(logits, timestamp_begin..timestamp_last as usize);
    }
    if sampled.is_empty() {
        // The first token is a timestamp, at most `max_initial_timestamp` in.
        mask(logits, 0..timestamp_begin);
        if let Some(index) = max_initial_timestamp_index {
            mask(logits, timestamp_begin + index as usize + 1..logits.len());
        }
    }
    // If the timestamps together are likelier than any text token, sample a timestamp.
    let logprobs = log_softmax(logits);
    let timestamp_logprob = log_sum_exp(&logprobs[timestamp_begin.min(logprobs.len())..]);
    let max_text_token_logprob = logprobs[..timestamp_begin.min(logprobs.len())]
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    if timestamp_logprob > max_text_token_logprob {
        mask(logits, 0..timestamp_begin);
    }
}

fn log_sum_exp(values: &[f32]) -> f32 {
    let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return f32::NEG_INFINITY;
    }
    max + values.iter().map(|v| (v - max).exp()).sum::<f32>().ln()
}

pub fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let total = log_sum_exp(logits);
    logits.iter().map(|l| l - total).collect()
}

/// `compression_ratio`: UTF-8 length over zlib-compressed length; repetitive text compresses well.
pub fn compression_ratio(text: &str) -> f64 {
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return 0.0;
    }
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let compressed = encoder
        .write_all(bytes)
        .and_then(|_| encoder.finish())
        .map(|c| c.len())
        .unwrap_or(1);
    bytes.len() as f64 / compressed.max(1) as f64
}

/// The arg-max at temperature 0, else a draw from softmax(logits / temperature).
fn choose_token(logits: &[f32], temperature: f64, rng: &mut impl Rng) -> u32 {
    if temperature <= 0.0 {
        let best = logits
            .iter()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |best, (i, &l)| {
                if l > best.1 {
                    (i, l)
                } else {
                    best
                }
            });
        return best.0 as u32;
    }
    let scaled: Vec<f32> = logits
        .iter()
        .map(|&l| (l as f64 / temperature) as f32)
        .collect();
    let probs: Vec<f64> = log_softmax(&scaled)
        .iter()
        .map(|&lp| (lp as f64).exp())
        .collect();
    let mut draw = rng.gen::<f64>() * probs.iter().sum::<f64>();
    for (i, p) in probs.iter().enumerate() {
        draw -= p;
        if draw <= 0.0 && *p > 0.0 {
            return i as u32;
        }
    }
    probs.iter().rposition(|&p| p > 0.0).unwrap_or(0) as u32
}

/// The tokens a window's decoding starts from (`DecodingTask._get_initial_tokens`).
pub fn initial_tokens(config: &Config, language: &str, prompt: &[u32]) -> Vec<u32> {
    let special = &config.special_tokens;
    let mut tokens = Vec::new();
    if !prompt.is_empty() {
        let keep = config.n_text_ctx / 2 - 1;
        tokens.push(special.sot_prev);
        tokens.extend(&prompt[prompt.len().saturating_sub(keep)..]);
    }
    tokens.push(special.sot);
    if config.is_multilingual {
        let english = special.languages.get("en").copied();
        tokens.extend(special.languages.get(language).copied().or(english));
        tokens.push(special.transcribe);
    }
    tokens
}

/// Decodes every window of `audio_features` (`[batch, n_audio_ctx, state]`) from the same
/// `initial` tokens at one temperature, dropping windows from the batch as they finish.
pub fn decode_batch(
    decoder: &TextDecoder,
    config: &Config,
    audio_features: &Tensor,
    initial: &[u32],
    temperature: f64,
    max_initial_timestamp: f64,
    rng: &mut impl Rng,
) -> Result<Vec<DecodingResult>, TchError> {
    let special = &config.special_tokens;
    let batch = audio_features.size()[0] as usize;
    let device = audio_features.device();
    let sample_begin = initial.len();
    let sot_index = initial.iter().position(|&t| t == special.sot).unwrap_or(0) as i64;
    let sample_len = config.n_text_ctx / 2;
    let filters = LogitFilters::new(config, sample_begin, max_initial_timestamp);

    let mut cache = decoder.new_cache(audio_features)?;
    let prompt: Vec<i64> = (0..batch)
        .flat_map(|_| initial.iter().map(|&t| t as i64))
        .collect();
    let prompt = Tensor::f_from_slice(&prompt)?
        .f_view([batch as i64, -1])?
        .f_to_device(device)?;
    let hidden = decoder.forward(&prompt, &mut cache)?;
    let no_speech_probs: Vec<f64> = match special.no_speech {
        Some(no_speech) => {
            let probs = decoder
                .logits(&hidden.f_select(1, sot_index)?)?
                .f_softmax(-1, Kind::Float)?;
            Vec::try_from(
                probs
                    .f_select(1, no_speech as i64)?
                    .f_to_kind(Kind::Double)?,
            )?
        }
        None => vec![0.0; batch],
    };
    let mut logits = decoder.logits(&hidden.f_select(1, sample_begin as i64 - 1)?)?;

    let mut sequences: Vec<Vec<u32>> = vec![initial.to_vec(); batch];
    let mut sum_logprobs = vec![0f64; batch];
    let mut active: Vec<usize> = (0..batch).collect();
    // Where a step's time goes, for the DEBUG log.
    let (mut filter_seconds, mut decoder_seconds, mut projection_seconds) = (0f64, 0f64, 0f64);
    let mut steps = 0;
    for _ in 0..sample_len {
        steps += 1;
        let clock = std::time::Instant::now();
        let rows: Vec<Vec<f32>> = Vec::try_from(&logits.f_to_device(tch::Device::Cpu)?)?;
        for (mut row_logits, &row) in rows.into_iter().zip(&active) {
            filters.apply(&mut row_logits, &sequences[row]);
            let next = choose_token(&row_logits, temperature, rng);
            sum_logprobs[row] += log_softmax(&row_logits)[next as usize] as f64;
            sequences[row].push(next);
        }
        let running: Vec<i64> = (0..active.len())
            .filter(|&i| sequences[active[i]].last() != Some(&special.eot))
            .map(|i| i as i64)
            .collect();
        let full = active
            .first()
            .is_some_and(|&r| sequences[r].len() >= config.n_text_ctx);
        if running.is_empty() || full {
            break;
        }
        if running.len() < active.len() {
            cache.select_rows(&running)?;
            active = running.iter().map(|&i| active[i as usize]).collect();
        }
        let last: Vec<i64> = active
            .iter()
            .map(|&r| sequences[r].last().map_or(0, |&t| t as i64))
            .collect();
        let last = Tensor::f_from_slice(&last)?
            .f_view([-1, 1])?
            .f_to_device(device)?;
        filter_seconds += clock.elapsed().as_secs_f64();
        let clock = std::time::Instant::now();
        let hidden = decoder.forward(&last, &mut cache)?.f_select(1, 0)?;
        decoder_seconds += clock.elapsed().as_secs_f64();
        let clock = std::time::Instant::now();
        logits = decoder.logits(&hidden)?;
        projection_seconds += clock.elapsed().as_secs_f64();
    }
    log::debug!(
        "whisper: {steps} steps: logit filters {filter_seconds:.2} s, decoder layers \
         {decoder_seconds:.2} s, vocabulary projection {projection_seconds:.2} s"
    );

    Ok(sequences
        .into_iter()
        .zip(sum_logprobs)
        .zip(no_speech_probs)
        .map(|((sequence, sum_logprob), no_speech_prob)| {
            DecodingResult::of_sequence(
                &sequence,
                sample_begin,
                special.eot,
                sum_logprob,
                no_speech_prob,
                temperature,
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn special() -> SpecialTokens {
        SpecialTokens {
            eot: 50256,
            sot: 50257,
            translate: 50357,
            transcribe: 50358,
            sot_lm: 50359,
            sot_prev: 50360,
            no_speech: Some(50361),
            no_timestamps: 50362,
            timestamp_begin: 50363,
            languages: BTreeMap::new(),
        }
    }

    const VOCAB: usize = 51864;
    const TEXT: u32 = 1000;
    const T: u32 = 50363;

    fn allowed(logits: &[f32]) -> Vec<usize> {
        logits
            .iter()
            .enumerate()
            .filter(|(_, l)| l.is_finite())
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn the_first_token_is_an_early_timestamp() {
        let mut logits = vec![0f32; VOCAB];
        apply_timestamp_rules(&mut logits, &[], &special(), Some(50));
        assert_eq!(
            allowed(&logits),
            (T as usize..=T as usize + 50).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_lone_timestamp_is_followed_by_text_or_its_closing_timestamp() {
        // After "<|0.00|> text <|1.00|>" the segment may close with <|1.00|> or a later one, or
        // end the transcript; text is not allowed.
        let mut logits = vec![0f32; VOCAB];
        logits[TEXT as usize] = 10.0;
        logits[50256] = 20.0; // likelier than all timestamps together, so it survives the last rule
        apply_timestamp_rules(&mut logits, &[T, TEXT, T + 50], &special(), Some(50));
        let allowed = allowed(&logits);
        assert!(!allowed.contains(&(TEXT as usize)));
        assert!(allowed.contains(&50256), "end of text stays allowed");
        assert!(
            allowed.contains(&(T as usize + 50)),
            "the same timestamp may close the pair"
        );
        assert!(
            !allowed.contains(&(T as usize + 49)),
            "timestamps never go back"
        );
        assert!(!allowed.contains(&50362));
    }

    #[test]
    fn a_timestamp_pair_is_followed_by_text_and_time_moves_on() {
        let mut logits = vec![0f32; VOCAB];
        logits[TEXT as usize] = 30.0;
        apply_timestamp_rules(
            &mut logits,
            &[T, TEXT, T + 50, T + 50],
            &special(),
            Some(50),
        );
        let allowed = allowed(&logits);
        assert!(
            allowed.iter().all(|&i| i < T as usize),
            "no timestamp right after a pair"
        );
        assert!(allowed.contains(&(TEXT as usize)));
    }

    #[test]
    fn likely_timestamps_win_over_text() {
        // Text is 0 everywhere; timestamps together outweigh the best text token.
        let mut logits = vec![0f32; VOCAB];
        for l in &mut logits[T as usize + 10..] {
            *l = 1.0;
        }
        apply_timestamp_rules(&mut logits, &[T, TEXT], &special(), Some(50));
        let allowed = allowed(&logits);
        assert!(
            allowed.iter().all(|&i| i > T as usize),
            "{:?}",
            &allowed[..3]
        );
    }

    #[test]
    fn blank_and_non_speech_tokens_are_suppressed() {
        let filters = LogitFilters {
            sample_begin: 1,
            suppress_blank: vec![220, 50256],
            suppress_tokens: vec![7, 8],
            special: special(),
            max_initial_timestamp_index: Some(50),
        };
        let mut first = vec![0f32; VOCAB];
        first[T as usize] = 5.0;
        filters.apply(&mut first, &[50257]);
        assert!(first[220] == f32::NEG_INFINITY && first[50256] == f32::NEG_INFINITY);
        let mut later = vec![0f32; VOCAB];
        later[220] = 20.0;
        filters.apply(&mut later, &[50257, T, TEXT]);
        assert!(later[220].is_finite() && later[7] == f32::NEG_INFINITY);
    }

    #[test]
    fn repetition_compresses_well() {
        let repeated = "lah lah lah lah lah lah lah lah lah lah lah lah lah lah lah lah";
        assert!(compression_ratio(repeated) > super::super::COMPRESSION_RATIO_THRESHOLD);
        let plain = "The quick brown fox jumps over the lazy dog.";
        assert!(compression_ratio(plain) < super::super::COMPRESSION_RATIO_THRESHOLD);
    }

    #[test]
    fn greedy_takes_the_best_token() {
        let mut rng = rand::thread_rng();
        assert_eq!(
            choose_token(&[0.0, 3.0, f32::NEG_INFINITY, 1.0], 0.0, &mut rng),
            1
        );
        for _ in 0..20 {
            assert_ne!(
                choose_token(&[0.0, 3.0, f32::NEG_INFINITY, 1.0], 1.0, &mut rng),
                2
            );
        }
    }
}
