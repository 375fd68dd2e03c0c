//! Rewrites of a window's text proposed from outside (the Singlish corrections), and the forced
//! decoding that judges those that need evidence: the decoder scores the window's text with and
//! without each reading on the window's own audio and context.

use tch::{Device, TchError, Tensor};

use super::{torch_error, AsrSegment, Whisper, Word};
use crate::inference::InferenceError;

/// Other readings of a stretch of a window's text, proposed from outside (the Singlish
/// corrections): the bytes `range` of the window's text (its words joined as written) may read
/// as any of `replacements`. Without `needs_evidence` the first one is taken; with it, the
/// decoder is forced through the window's text with each reading on the window's audio and
/// the likeliest text wins (the text as decoded on a tie).
#[derive(Debug, Clone, PartialEq)]
pub struct Rewrite {
    pub range: std::ops::Range<usize>,
    pub replacements: Vec<String>,
    pub needs_evidence: bool,
}

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
        let proposed = rewrites(&text);
        if proposed.is_empty() {
            return Ok(());
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
                    let logprob = self.text_logprob(features, initial, &changed)?;
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
            segment.text = segment.words.iter().map(|w| w.word.as_str()).collect();
        }
        Ok(())
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
                .logits(&hidden)?
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
