//! Rewrites of a window's text proposed from outside (the Singlish corrections and particles),
//! and the forced decoding that judges those that need evidence: the decoder scores the
//! window's text with and without each reading on the window's own audio and context.
//!
//! An insertion (a particle the recogniser may have left out at a clause end: "today later."
//! for "today later leh.") is judged where it is: the decoder is forced through the window's
//! text once, keeping its self-attention cache, and each candidate is scored from the cache cut
//! at the insertion point: the candidate's tokens and the text's next tokens (the clause's
//! punctuation and what follows it), against those next tokens alone. This is the same
//! likelihood comparison as a replacement's, over the part of the text the insertion changes.

use tch::{Device, TchError, Tensor};

use super::{torch_error, AsrSegment, Whisper, Word};
use crate::inference::whisper::model::KvCache;
use crate::inference::InferenceError;

/// Other readings of a stretch of a window's text, proposed from outside (the Singlish
/// corrections): the bytes `range` of the window's text (its words joined as written) may read
/// as any of `replacements`. Without `needs_evidence` the first one is taken; with it, the
/// decoder is forced through the window's text with each reading on the window's audio and
/// the likeliest text wins (the text as decoded on a tie).
///
/// An empty `range` is an insertion at `range.start` (a word boundary: the end of a word's
/// letters, before its punctuation): each replacement is text to insert there (" lah"), always
/// judged on the audio. `prior` is the log-odds given to every replacement before the audio is
/// heard (0: the decoder's likelihood alone decides).
#[derive(Debug, Clone, PartialEq)]
pub struct Rewrite {
    pub range: std::ops::Range<usize>,
    pub replacements: Vec<String>,
    pub needs_evidence: bool,
    pub prior: f64,
}

/// Most tokens after an insertion point that its scoring reads (the clause's punctuation and
/// the first token after it, or <|endoftext|>).
const INSERTION_CONTEXT_TOKENS: usize = 2;

impl Whisper {
    /// Applies the rewrites proposed for the window's text (see [`Rewrite`]).
    pub(super) fn apply_rewrites(
        &self,
        segments: &mut [AsrSegment],
        features: &Tensor,
        initial: &[u32],
        rewrites: &dyn Fn(&str) -> Vec<Rewrite>,
    ) -> Result<(), InferenceError> {
        // The window's text, and where each word is in it: (segment, word, byte range).
        let mut text = String::new();
        let mut places = Vec::new();
        for (s, segment) in segments.iter().enumerate() {
            for (w, word) in segment.words.iter().enumerate() {
                places.push((s, w, text.len()..text.len() + word.word.len()));
                text.push_str(&word.word);
            }
        }
        let (insertions, proposed): (Vec<Rewrite>, Vec<Rewrite>) = rewrites(&text)
            .into_iter()
            .partition(|r| r.range.is_empty());
        if proposed.is_empty() && insertions.is_empty() {
            return Ok(());
        }
        // (segment, word, byte in the word, text inserted there): made before the replacements,
        // which never cover an inserted word (the proposer keeps them apart).
        for (at, inserted) in self.judge_insertions(features, initial, &text, &insertions)? {
            if let Some((s, w, range)) = places.iter().find(|(_, _, r)| r.start < at && at <= r.end)
            {
                segments[*s].words[*w]
                    .word
                    .insert_str(at - range.start, &inserted);
            }
        }
        let mut original_logprob = None;
        // (segment, first word, last word, new text of those words), applied back to front.
        let mut accepted = Vec::new();
        for rewrite in proposed {
            let covered: Vec<&(usize, usize, std::ops::Range<usize>)> = places
                .iter()
                .filter(|(_, _, r)| r.start < rewrite.range.end && rewrite.range.start < r.end)
                .collect();
            let (Some(first), Some(last)) = (covered.first(), covered.last()) else {
                continue;
            };
            if first.0 != last.0 {
                continue; // a phrase across two segments is left as it is
            }
            let mut chosen = rewrite.replacements.first().cloned();
            if rewrite.needs_evidence {
                let original = match original_logprob {
                    Some(value) => value,
                    None => *original_logprob.insert(self.text_logprob(features, initial, &text)?),
                };
                let mut best = (original, None);
                for replacement in &rewrite.replacements {
                    let mut changed = text.clone();
                    changed.replace_range(rewrite.range.clone(), replacement);
                    let logprob = self.text_logprob(features, initial, &changed)? + rewrite.prior;
                    if logprob > best.0 {
                        best = (logprob, Some(replacement.clone()));
                    }
                }
                log::debug!(
                    "whisper: {:?} or {:?}: {:?} (log-likelihood {:.2} against {original:.2})",
                    &text[rewrite.range.clone()],
                    rewrite.replacements,
                    best.1,
                    best.0
                );
                chosen = best.1;
            }
            let Some(replacement) = chosen else {
                continue;
            };
            let span = first.2.start..last.2.end;
            let mut words_text = text[span.clone()].to_string();
            words_text.replace_range(
                rewrite.range.start - span.start..rewrite.range.end - span.start,
                &replacement,
            );
            accepted.push((first.0, first.1, last.1, words_text));
        }
        for (s, first, last, new_text) in accepted.into_iter().rev() {
            let segment = &mut segments[s];
            let words = &segment.words[first..=last];
            let merged = Word {
                word: new_text,
                start: words[0].start,
                end: words[words.len() - 1].end,
                probability: words.iter().map(|w| w.probability).fold(1.0, f64::min),
            };
            segment.words.splice(first..=last, [merged]);
        }
        for segment in segments.iter_mut() {
            segment.text = segment.words.iter().map(|w| w.word.as_str()).collect();
        }
        Ok(())
    }

    /// The insertions the audio supports: for each proposed insertion point, the likeliest of
    /// its candidates when that, with its prior, beats the text as decoded; as (byte in `text`,
    /// inserted text).
    fn judge_insertions(
        &self,
        features: &Tensor,
        initial: &[u32],
        text: &str,
        insertions: &[Rewrite],
    ) -> Result<Vec<(usize, String)>, InferenceError> {
        if insertions.is_empty() {
            return Ok(Vec::new());
        }
        let special = &self.config.special_tokens;
        let mut tokens: Vec<i64> = initial.iter().map(|&t| t as i64).collect();
        tokens.push(special.no_timestamps as i64);
        let text_from = tokens.len();
        let text_tokens = self.tokenizer.encode(text)?;
        tokens.extend(text_tokens.iter().map(|&t| i64::from(t)));
        tokens.push(special.eot as i64);
        if tokens.len() + 8 > self.config.n_text_ctx {
            return Ok(Vec::new());
        }
        let forced = ForcedText::new(self, features, tokens).map_err(torch_error)?;
        // Where each insertion point is among the text's tokens (a pre-token boundary, so the
        // prefix's own tokens begin the text's), and its candidates' tokens.
        let mut sites = Vec::with_capacity(insertions.len());
        for insertion in insertions {
            let prefix = self.tokenizer.encode(&text[..insertion.range.start])?;
            if !text_tokens.starts_with(&prefix) {
                continue;
            }
            let mut candidates = Vec::with_capacity(insertion.replacements.len());
            for replacement in &insertion.replacements {
                candidates.push(self.tokenizer.encode(replacement)?);
            }
            sites.push((insertion, text_from + prefix.len(), candidates));
        }
        // The text's own next tokens at every site, projected onto the vocabulary in one pass.
        let points: Vec<usize> = sites.iter().map(|(_, point, _)| *point).collect();
        let (next, ranges) = forced.next_logprobs(self, &points).map_err(torch_error)?;
        let mut accepted = Vec::new();
        for ((insertion, point, candidates), rows) in sites.iter().zip(ranges) {
            let at = insertion.range.start;
            let next: Vec<&[f32]> = rows.map(|row| next.row(row)).collect();
            let scores = forced
                .insertion_scores(self, *point, candidates, insertion.prior, &next)
                .map_err(torch_error)?;
            let best = scores
                .candidates
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.map(|s| (i, s)))
                .max_by(|a, b| a.1.total_cmp(&b.1));
            log::debug!(
                "whisper: after {:?}: {:?} scored {:?} against {:.2} as decoded",
                &text[at.saturating_sub(12)..at],
                insertion.replacements,
                scores.candidates,
                scores.decoded
            );
            if let Some((i, score)) = best.filter(|&(_, score)| score > scores.decoded) {
                log::debug!(
                    "whisper: inserted {:?} after {:?} ({score:.2} against {:.2})",
                    insertion.replacements[i],
                    &text[at.saturating_sub(12)..at],
                    scores.decoded
                );
                accepted.push((at, insertion.replacements[i].clone()));
            }
        }
        // Back to front, so an earlier insertion's byte offset in its word still holds.
        accepted.sort_by_key(|a| std::cmp::Reverse(a.0));
        Ok(accepted)
    }

    /// Forced decoding: the log-likelihood of `text` (then <|endoftext|>) on the window's audio,
    /// after the window's `initial` tokens (its prompt) and <|notimestamps|>.
    fn text_logprob(
        &self,
        features: &Tensor,
        initial: &[u32],
        text: &str,
    ) -> Result<f64, InferenceError> {
        let special = &self.config.special_tokens;
        let mut tokens: Vec<i64> = initial.iter().map(|&t| t as i64).collect();
        tokens.push(special.no_timestamps as i64);
        let scored_from = tokens.len();
        tokens.extend(self.tokenizer.encode(text)?.into_iter().map(i64::from));
        tokens.push(special.eot as i64);
        let max = self.config.n_text_ctx as i64;
        let logprobs = (|| -> Result<Vec<f32>, TchError> {
            let input = Tensor::f_from_slice(&tokens)?
                .f_view([1, -1])?
                .f_to_device(self.device)?;
            let mut cache = self.model.decoder.new_cache(features)?;
            let hidden = self
                .model
                .decoder
                .forward(&input, &mut cache)?
                .f_select(0, 0)?;
            let logprobs = self
                .model
                .decoder
                .exact_logits(&hidden)?
                .f_log_softmax(-1, tch::Kind::Float)?;
            let targets = Tensor::f_from_slice(&tokens[scored_from..])?
                .f_to_device(self.device)?
                .f_view([-1, 1])?;
            let picked = logprobs
                .f_narrow(0, scored_from as i64 - 1, targets.size()[0])?
                .f_gather(1, &targets, false)?
                .f_view([-1])?
                .f_to_device(Device::Cpu)?;
            Vec::<f32>::try_from(&picked)
        })();
        if tokens.len() as i64 > max {
            return Ok(f64::NEG_INFINITY);
        }
        Ok(logprobs
            .map_err(torch_error)?
            .iter()
            .map(|&l| f64::from(l))
            .sum())
    }
}

/// A text the decoder was forced through once on a window's audio: its tokens, the
/// self-attention cache after them and the final hidden state at every position.
struct ForcedText {
    tokens: Vec<i64>,
    cache: KvCache,
    /// `[n, state]`
    hidden: Tensor,
}

/// The scores of an insertion point's candidates: each candidate's log-likelihood with its
/// prior (`None`: it cannot beat `decoded`, so it was not scored in full), and that of the text's
/// next tokens as decoded.
#[derive(Debug)]
struct InsertionScores {
    candidates: Vec<Option<f64>>,
    decoded: f64,
}

impl ForcedText {
    fn new(whisper: &Whisper, features: &Tensor, tokens: Vec<i64>) -> Result<Self, TchError> {
        let input = Tensor::f_from_slice(&tokens)?
            .f_view([1, -1])?
            .f_to_device(whisper.device)?;
        let mut cache = whisper.model.decoder.new_cache(features)?;
        let hidden = whisper
            .model
            .decoder
            .forward(&input, &mut cache)?
            .f_select(0, 0)?;
        Ok(ForcedText {
            tokens,
            cache,
            hidden,
        })
    }

    /// For each insertion point (a token index of the text), the log-probabilities over the
    /// vocabulary of the text's next [`INSERTION_CONTEXT_TOKENS`] tokens as decoded (fewer at
    /// the text's end): every point's rows in one projection, and which rows are each point's.
    fn next_logprobs(
        &self,
        whisper: &Whisper,
        points: &[usize],
    ) -> Result<(LogprobRows, Vec<std::ops::Range<usize>>), TchError> {
        let mut positions = Vec::new();
        let mut ranges = Vec::with_capacity(points.len());
        for &point in points {
            let count = INSERTION_CONTEXT_TOKENS.min(self.tokens.len() - point);
            ranges.push(positions.len()..positions.len() + count);
            positions.extend((point - 1..point - 1 + count).map(|p| p as i64));
        }
        Ok((LogprobRows::of(whisper, &self.hidden, &positions)?, ranges))
    }

    /// Scores inserting each of `candidates` (tokens) before token `point` of the text: the
    /// candidate's tokens then the next [`INSERTION_CONTEXT_TOKENS`] tokens as decoded, against
    /// those next tokens alone. A candidate whose first token (with `prior`) is already less
    /// likely than the decoded tokens together is not scored further: the rest can only lower it.
    /// `logprobs` are the point's rows of [`ForcedText::next_logprobs`], one per next token.
    fn insertion_scores(
        &self,
        whisper: &Whisper,
        point: usize,
        candidates: &[Vec<u32>],
        prior: f64,
        logprobs: &[&[f32]],
    ) -> Result<InsertionScores, TchError> {
        let next = &self.tokens[point..point + logprobs.len()];
        let at = |row: usize, token: i64| -> f64 { f64::from(logprobs[row][token as usize]) };
        let decoded: f64 = next.iter().enumerate().map(|(row, &t)| at(row, t)).sum();
        let mut scores: Vec<Option<f64>> = candidates
            .iter()
            .map(|c| {
                let first = at(0, i64::from(*c.first()?)) + prior;
                (first > decoded).then_some(first)
            })
            .collect();
        let rows: Vec<usize> = (0..candidates.len())
            .filter(|&i| scores[i].is_some())
            .collect();
        if rows.is_empty() {
            return Ok(InsertionScores {
                candidates: scores,
                decoded,
            });
        }
        // Each surviving candidate's sequence after the insertion point, fed one token a step
        // from the cache cut there (rows padded with <|endoftext|> past their end).
        let sequences: Vec<Vec<i64>> = rows
            .iter()
            .map(|&i| {
                candidates[i]
                    .iter()
                    .map(|&t| i64::from(t))
                    .chain(next.iter().copied())
                    .collect()
            })
            .collect();
        let steps = sequences.iter().map(Vec::len).max().unwrap_or(0);
        let eot = i64::from(whisper.config.special_tokens.eot);
        let mut cache = self
            .cache
            .prefix_for_rows(point as i64, rows.len() as i64)?;
        for step in 0..steps.saturating_sub(1) {
            let input: Vec<i64> = sequences
                .iter()
                .map(|s| *s.get(step).unwrap_or(&eot))
                .collect();
            let input = Tensor::f_from_slice(&input)?
                .f_view([-1, 1])?
                .f_to_device(whisper.device)?;
            let hidden = whisper
                .model
                .decoder
                .forward(&input, &mut cache)?
                .f_select(1, 0)?;
            let all: Vec<i64> = (0..rows.len() as i64).collect();
            let logprobs = LogprobRows::of(whisper, &hidden, &all)?;
            for (row, (&i, sequence)) in rows.iter().zip(&sequences).enumerate() {
                if let (Some(&target), Some(score)) = (sequence.get(step + 1), scores[i].as_mut()) {
                    *score += f64::from(logprobs.row(row)[target as usize]);
                }
            }
        }
        Ok(InsertionScores {
            candidates: scores,
            decoded,
        })
    }
}

/// Log-probabilities over the vocabulary of some rows of a decoder's hidden states, on the CPU
/// in one buffer (`n_vocab` values a row).
struct LogprobRows {
    values: Vec<f32>,
    n_vocab: usize,
}

impl LogprobRows {
    /// The rows `rows` of `hidden` `[n, state]` projected onto the vocabulary exactly and
    /// log-softmaxed (one projection, one copy); none for no rows.
    fn of(whisper: &Whisper, hidden: &Tensor, rows: &[i64]) -> Result<Self, TchError> {
        if rows.is_empty() {
            return Ok(LogprobRows {
                values: Vec::new(),
                n_vocab: 0,
            });
        }
        let index = Tensor::f_from_slice(rows)?.f_to_device(whisper.device)?;
        let logprobs = whisper
            .model
            .decoder
            .exact_logits(&hidden.f_index_select(0, &index)?)?
            .f_log_softmax(-1, tch::Kind::Float)?
            .f_to_device(Device::Cpu)?
            .f_contiguous()?;
        Ok(LogprobRows {
            n_vocab: logprobs.size()[1] as usize,
            values: Vec::<f32>::try_from(&logprobs.f_view([-1])?)?,
        })
    }

    /// Row `i` (in the order the rows were asked for).
    fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.n_vocab..(i + 1) * self.n_vocab]
    }
}
