//! Beam search at temperature 0: `BeamSearchDecoder` and `MaximumLikelihoodRanker` of
//! `whisper/decoding.py` (openai-whisper), for one window. faster-whisper decodes with it by
//! default (`beam_size=5`, `patience=1`); greedy decoding keeps only the likeliest token at each
//! step and cannot take back a first word that a later one shows was wrong.
//!
//! Each step extends every live beam by its `beam_size + 1` likeliest tokens (after the same
//! logit filters as greedy decoding), ranks all those sequences by their summed log-probability
//! and keeps the best `beam_size` that do not end; ending ones are finished candidates, up to
//! `round(beam_size × patience)` of them. Decoding stops when that many have finished or the
//! text context is full; then unfinished beams fill the candidates up to `beam_size`, and the
//! candidate with the highest log-probability per token wins.

use super::decode::{log_softmax, DecodingResult, LogitFilters};
use super::model::TextDecoder;
use super::Config;
use std::collections::HashMap;
use tch::{Kind, TchError, Tensor};

/// How a window is beam-searched (faster-whisper's names).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BeamOptions {
    /// Beams kept at each step (≥ 2; 1 is greedy decoding).
    pub beam_size: usize,
    /// Finished candidates waited for, as a multiple of `beam_size` (the reference's
    /// "patience", 1.0 in both references by default).
    pub patience: f64,
    /// The first timestamp of the window is at most this many seconds in.
    pub max_initial_timestamp: f64,
}

/// A sequence's tokens (the initial ones included) and its summed log-probability.
type Hypothesis = (Vec<u32>, f64);

/// Beam-searches one window: `audio_features` `[1, n_audio_ctx, state]`, from the `initial`
/// tokens. The result is the winning candidate, at temperature 0, with the no-speech
/// probability of the first step.
pub fn decode_beam(
    decoder: &TextDecoder,
    config: &Config,
    audio_features: &Tensor,
    initial: &[u32],
    opts: &BeamOptions,
) -> Result<DecodingResult, TchError> {
    let special = &config.special_tokens;
    let device = audio_features.device();
    let beam_size = opts.beam_size.max(1);
    let max_candidates = ((beam_size as f64 * opts.patience).round() as usize).max(1);
    let sample_begin = initial.len();
    let sot_index = initial.iter().position(|&t| t == special.sot).unwrap_or(0) as i64;
    let filters = LogitFilters::new(config, sample_begin, opts.max_initial_timestamp);

    let mut cache = decoder.new_cache(audio_features)?;
    let prompt: Vec<i64> = initial.iter().map(|&t| t as i64).collect();
    let prompt = Tensor::f_from_slice(&prompt)?
        .f_view([1, -1])?
        .f_to_device(device)?;
    let hidden = decoder.forward(&prompt, &mut cache)?;
    let no_speech_prob = match special.no_speech {
        Some(no_speech) => decoder
            .logits(&hidden.f_select(1, sot_index)?)?
            .f_softmax(-1, Kind::Float)?
            .f_select(1, no_speech as i64)?
            .f_double_value(&[0])?,
        None => 0.0,
    };
    let mut logits = decoder.logits(&hidden.f_select(1, sample_begin as i64 - 1)?)?;

    // One live beam to begin with: the reference starts from `beam_size` identical copies,
    // whose candidates coincide.
    let mut beams: Vec<Hypothesis> = vec![(initial.to_vec(), 0.0)];
    let mut finished: Vec<Hypothesis> = Vec::new();
    let sample_len = config.n_text_ctx / 2;
    while beams[0].0.len() < config.n_text_ctx && beams[0].0.len() - sample_begin < sample_len {
        let rows: Vec<Vec<f32>> = Vec::try_from(&logits.f_to_device(tch::Device::Cpu)?)?;
        let (next, newly_finished) = step(rows, &beams, &filters, special.eot, beam_size);
        for candidate in newly_finished {
            if finished.len() >= max_candidates {
                break;
            }
            finished.push(candidate);
        }
        if finished.len() >= max_candidates || next.is_empty() {
            beams = next.into_iter().map(|(h, _)| h).collect();
            break;
        }
        let sources: Vec<i64> = next.iter().map(|(_, source)| *source as i64).collect();
        if sources.len() as i64 == cache.rows() {
            cache.select_self_rows(&sources)?;
        } else {
            cache.select_rows(&sources)?;
        }
        beams = next.into_iter().map(|(h, _)| h).collect();
        let last: Vec<i64> = beams
            .iter()
            .map(|(tokens, _)| tokens.last().map_or(0, |&t| t as i64))
            .collect();
        let last = Tensor::f_from_slice(&last)?
            .f_view([-1, 1])?
            .f_to_device(device)?;
        let hidden = decoder.forward(&last, &mut cache)?.f_select(1, 0)?;
        logits = decoder.logits(&hidden)?;
    }
    // Too few finished: the live beams, likeliest first, count as ended here.
    let mut live = beams;
    live.sort_by(|a, b| b.1.total_cmp(&a.1));
    for hypothesis in live {
        if finished.len() >= beam_size {
            break;
        }
        finished.push(hypothesis);
    }
    Ok(best(finished, sample_begin, special.eot, no_speech_prob))
}

/// One step of `BeamSearchDecoder.update`: every beam's `beam_size + 1` likeliest next tokens
/// (after `filters`), ranked together by summed log-probability; the best `beam_size` that do
/// not end on `eot` go on, each with the index of the beam it extends; those ending on `eot`
/// ranked above the last kept one are returned as finished, best first.
fn step(
    rows: Vec<Vec<f32>>,
    beams: &[Hypothesis],
    filters: &LogitFilters,
    eot: u32,
    beam_size: usize,
) -> (Vec<(Hypothesis, usize)>, Vec<Hypothesis>) {
    let mut scores: HashMap<Vec<u32>, (f64, usize)> = HashMap::new();
    for (source, (mut row, (tokens, sum))) in rows.into_iter().zip(beams).enumerate() {
        filters.apply(&mut row, tokens);
        let logprobs = log_softmax(&row);
        for token in top_k(&logprobs, beam_size + 1) {
            let mut sequence = tokens.clone();
            sequence.push(token as u32);
            let score = sum + logprobs[token] as f64;
            scores.entry(sequence).or_insert((score, source));
        }
    }
    let mut ranked: Vec<(Vec<u32>, (f64, usize))> = scores.into_iter().collect();
    // Ties broken by the tokens, so the same audio always gives the same text.
    ranked.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0).then_with(|| a.0.cmp(&b.0)));
    let mut next = Vec::with_capacity(beam_size);
    let mut finished = Vec::new();
    for (sequence, (score, source)) in ranked {
        if sequence.last() == Some(&eot) {
            finished.push((sequence, score));
        } else {
            next.push(((sequence, score), source));
            if next.len() == beam_size {
                break;
            }
        }
    }
    (next, finished)
}

/// Indices of the `k` highest finite values, highest first.
fn top_k(values: &[f32], k: usize) -> Vec<usize> {
    let mut indices: Vec<usize> = (0..values.len())
        .filter(|&i| values[i].is_finite())
        .collect();
    let k = k.min(indices.len());
    if k == 0 {
        return indices;
    }
    indices.select_nth_unstable_by(k - 1, |&a, &b| values[b].total_cmp(&values[a]));
    indices.truncate(k);
    indices.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    indices
}

/// `MaximumLikelihoodRanker` without a length penalty: the candidate with the highest summed
/// log-probability per sampled token (the end token not counted) wins.
fn best(
    candidates: Vec<Hypothesis>,
    sample_begin: usize,
    eot: u32,
    no_speech_prob: f64,
) -> DecodingResult {
    let results = candidates.into_iter().map(|(sequence, sum_logprob)| {
        DecodingResult::of_sequence(
            &sequence,
            sample_begin,
            eot,
            sum_logprob,
            no_speech_prob,
            0.0,
        )
    });
    results
        .max_by(|a, b| {
            let score = |r: &DecodingResult| r.sum_logprob / r.tokens.len().max(1) as f64;
            score(a).total_cmp(&score(b))
        })
        .unwrap_or(DecodingResult {
            tokens: Vec::new(),
            sum_logprob: 0.0,
            avg_logprob: 0.0,
            no_speech_prob,
            temperature: 0.0,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_gives_the_highest_finite_values_highest_first() {
        let values = [0.1, f32::NEG_INFINITY, 0.7, 0.3, 0.7, -2.0];
        assert_eq!(top_k(&values, 3), vec![2, 4, 3]);
        assert_eq!(top_k(&values, 10), vec![2, 4, 3, 0, 5]);
        assert!(top_k(&[f32::NEG_INFINITY], 2).is_empty());
    }

    #[test]
    fn the_likeliest_per_token_candidate_wins() {
        // Initial tokens [9]; end token 0. A long candidate with a low total but a high
        // per-token log-probability beats a short one with a higher total.
        let candidates = vec![
            (vec![9, 1, 0], -1.0),          // -1.0 per token
            (vec![9, 1, 2, 3, 4, 0], -2.0), // -0.5 per token
        ];
        let result = best(candidates, 1, 0, 0.1);
        assert_eq!(result.tokens, vec![1, 2, 3, 4]);
        assert_eq!(result.sum_logprob, -2.0);
        assert!((result.avg_logprob + 0.4).abs() < 1e-9);
        assert_eq!(result.no_speech_prob, 0.1);
    }
}
