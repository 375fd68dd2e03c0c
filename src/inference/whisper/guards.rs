//! Every check that keeps Whisper from inventing text, in one place:
//! - temperature fallback on the compression ratio and the average log-probability, and the
//!   choice among the attempts when every temperature fails (faster-whisper's
//!   `generate_with_fallback`): the likeliest attempt that is not too repetitive, else the
//!   likeliest of all (speech that repeats itself is kept; the loop check below cuts loops);
//! - the no-speech skip (`transcribe.py`): likely silence, unless the text is confident;
//! - words that fall outside detected speech are dropped (Whisper writes text into silence);
//! - repeated n-gram loops ("kya kya kya kya", a sentence three times over) keep their first
//!   occurrence only;
//! - a segment that copies the initial prompt and scores as anomalous by the reference's
//!   `is_segment_anomaly` (the decoder went on from its prompt after the speech ended) is
//!   dropped.

use super::decode::DecodingResult;
use super::options::TranscriptionOptions;
use super::timing::Word;

/// How far a word's times may lie outside detected speech and still count as inside it: word
/// times from the alignment heads are good to a few frames, and the VAD pads speech by 30 ms.
pub const SPEECH_TOLERANCE_SECONDS: f64 = 0.2;
/// A word n-gram repeated back to back this many times is a loop (n ≥ 2). Read speech repeats a
/// phrase twice at most in passing ("very very", "you know, you know"); decoding loops go on.
pub const LOOP_MIN_REPEATS: usize = 3;
/// A single word repeated back to back this many times is a loop ("lah lah lah" is Singlish).
pub const LOOP_MIN_REPEATS_ONE_WORD: usize = 4;
/// Longest n-gram looked at for loops (in words).
pub const LOOP_MAX_NGRAM: usize = 12;

/// One decoding attempt with the figures the fallback judges it by.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub result: DecodingResult,
    pub text: String,
    pub compression_ratio: f64,
}

/// `needs_fallback` of `decode_with_fallback`: too repetitive or too unlikely, unless it is
/// silence (then the no-speech skip decides).
pub fn needs_fallback(attempt: &Attempt, opts: &TranscriptionOptions) -> bool {
    let too_repetitive = opts
        .compression_ratio_threshold
        .is_some_and(|limit| attempt.compression_ratio > limit);
    let too_unlikely = opts
        .log_prob_threshold
        .is_some_and(|limit| attempt.result.avg_logprob < limit);
    let silence = opts
        .no_speech_threshold
        .is_some_and(|limit| attempt.result.no_speech_prob > limit);
    (too_repetitive || too_unlikely) && !(silence && too_unlikely)
}

/// When every temperature failed: the likeliest attempt the decoder believes (average
/// log-probability at or above `log_prob_threshold`; every such attempt failed for repeating
/// itself), else faster-whisper's choice (`generate_with_fallback`: `max(
/// below_cr_threshold_results or all_results, key=avg_logprob)`, the likeliest attempt that is
/// not too repetitive, or the likeliest of all).
///
/// The first rule departs from faster-whisper, which would keep an attempt the decoder itself
/// finds unlikely (one sentence read 24 times: a 4-token attempt at average -3.3 sampled at
/// temperature 0.8 won over the confident -0.18 of the window's 90 tokens, and five sentences
/// were lost). Text that repeats itself is often what was said ("ok lah ok lah"); what is a
/// decoding loop is cut later, word by word, by [`without_loops`], while an unlikely text has no
/// such repair. `None` only when there are no attempts.
pub fn choose_after_fallback(
    attempts: Vec<Attempt>,
    opts: &TranscriptionOptions,
) -> Option<Attempt> {
    let limit = opts.compression_ratio_threshold.unwrap_or(f64::INFINITY);
    let believed = opts.log_prob_threshold.unwrap_or(f64::NEG_INFINITY);
    let likeliest =
        |a: &Attempt, b: &Attempt| a.result.avg_logprob.total_cmp(&b.result.avg_logprob);
    let (likely, unlikely): (Vec<Attempt>, Vec<Attempt>) = attempts
        .into_iter()
        .partition(|a| a.result.avg_logprob >= believed);
    if !likely.is_empty() {
        return likely.into_iter().max_by(likeliest);
    }
    let (below, above): (Vec<Attempt>, Vec<Attempt>) = unlikely
        .into_iter()
        .partition(|a| a.compression_ratio <= limit);
    if below.is_empty() { above } else { below }
        .into_iter()
        .max_by(likeliest)
}

/// The no-speech skip of `transcribe.py`: likely silence, unless the text is confident.
pub fn should_skip(result: &DecodingResult, opts: &TranscriptionOptions) -> bool {
    let Some(threshold) = opts.no_speech_threshold else {
        return false;
    };
    let confident = opts
        .log_prob_threshold
        .is_some_and(|limit| result.avg_logprob > limit);
    result.no_speech_prob > threshold && !confident
}

/// Whether a word (session seconds) touches detected speech; true when no regions are given.
pub fn inside_speech(word: &Word, regions: &[(f64, f64)]) -> bool {
    if regions.is_empty() {
        return true;
    }
    let (start, end) = (
        word.start - SPEECH_TOLERANCE_SECONDS,
        word.end + SPEECH_TOLERANCE_SECONDS,
    );
    // Regions are sorted: find the first that ends after the word starts.
    let first = regions.partition_point(|&(_, region_end)| region_end < start);
    regions
        .get(first)
        .is_some_and(|&(region_start, _)| region_start <= end)
}

/// A stretch holding less detected speech than this (seconds) is not decoded: Silero VAD itself
/// drops speech shorter than 250 ms, so what is left is the tail of a word already written.
pub const MIN_SPEECH_TO_DECODE_SECONDS: f64 = 0.25;

/// Seconds of detected speech between `start` and `end` (all of it when no regions are given).
pub fn speech_within(regions: &[(f64, f64)], start: f64, end: f64) -> f64 {
    if regions.is_empty() {
        return end - start;
    }
    regions
        .iter()
        .map(|&(s, e)| (e.min(end) - s.max(start)).max(0.0))
        .sum()
}

/// `word_anomaly_score` of the reference's `hallucination_silence_threshold` check: a word is
/// anomalous when improbable (< 0.15), very short (< 0.133 s) or very long (> 2 s).
pub fn word_anomaly_score(word: &Word) -> f64 {
    let duration = word.end - word.start;
    let mut score = 0.0;
    if word.probability < 0.15 {
        score += 1.0;
    }
    if duration < 0.133 {
        score += (0.133 - duration) * 15.0;
    }
    if duration > 2.0 {
        score += duration - 2.0;
    }
    score
}

/// `is_segment_anomaly`: the first eight words (punctuation aside) of a segment score as
/// hallucinated text does. Our word probabilities come from the alignment pass, which reads the
/// text without the prompt, so text the prompt led the decoder to (a copy of the prompt after
/// the speech ends) scores as anomalous.
pub fn is_segment_anomaly(words: &[Word]) -> bool {
    const PUNCTUATION: &str =
        "\"'\u{201c}\u{bf}([{-\"'.\u{3002},\u{ff0c}!\u{ff01}?\u{ff1f}:\u{ff1a}\u{201d})]}\u{3001}";
    let words: Vec<&Word> = words
        .iter()
        .filter(|w| !PUNCTUATION.contains(w.word.as_str()))
        .take(8)
        .collect();
    if words.is_empty() {
        return false;
    }
    let score: f64 = words.iter().map(|w| word_anomaly_score(w)).sum();
    score >= 3.0 || score + 0.01 >= words.len() as f64
}

/// Whether most of `words` (at least half) are words of the initial prompt.
pub fn copies_prompt(words: &[Word], prompt: Option<&str>) -> bool {
    let Some(prompt) = prompt else {
        return false;
    };
    let key = |w: &str| -> String {
        w.chars()
            .filter(|c| c.is_alphanumeric() || *c == '\'')
            .flat_map(char::to_lowercase)
            .collect()
    };
    let prompt_words: std::collections::HashSet<String> =
        prompt.split_whitespace().map(key).collect();
    let keys: Vec<String> = words
        .iter()
        .map(|w| key(&w.word))
        .filter(|k| !k.is_empty())
        .collect();
    !keys.is_empty() && 2 * keys.iter().filter(|k| prompt_words.contains(*k)).count() >= keys.len()
}

fn normalised(word: &Word) -> String {
    word.word
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '\'')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Indices of the words to keep once back-to-back repeats of an n-gram are cut to its first
/// occurrence (loops as [`LOOP_MIN_REPEATS`] defines them; words compared without case and
/// punctuation).
pub fn without_loops(words: &[Word]) -> Vec<usize> {
    let keys: Vec<String> = words.iter().map(normalised).collect();
    let mut keep = Vec::with_capacity(words.len());
    let mut at = 0;
    'scan: while at < keys.len() {
        for n in 1..=LOOP_MAX_NGRAM.min((keys.len() - at) / 2) {
            let gram = &keys[at..at + n];
            if gram.iter().all(|k| k.is_empty()) {
                continue;
            }
            let mut repeats = 1;
            while at + (repeats + 1) * n <= keys.len()
                && keys[at + repeats * n..at + (repeats + 1) * n] == *gram
            {
                repeats += 1;
            }
            let needed = if n == 1 {
                LOOP_MIN_REPEATS_ONE_WORD
            } else {
                LOOP_MIN_REPEATS
            };
            if repeats >= needed {
                keep.extend(at..at + n);
                at += repeats * n;
                continue 'scan;
            }
        }
        keep.push(at);
        at += 1;
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<Word> {
        text.split_whitespace()
            .enumerate()
            .map(|(i, w)| Word {
                word: format!(" {w}"),
                start: i as f64,
                end: i as f64 + 0.5,
                probability: 1.0,
            })
            .collect()
    }

    fn kept(text: &str) -> String {
        let all = words(text);
        without_loops(&all)
            .into_iter()
            .map(|i| all[i].word.trim().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn loops_keep_their_first_occurrence() {
        assert_eq!(kept("so lor kya kya kya kya kya ok"), "so lor kya ok");
        assert_eq!(
            kept("They all call me a yanki. They all call me a yanki. They all call me a yanki."),
            "They all call me a yanki."
        );
        assert_eq!(kept("one, one, one, one, one"), "one,");
    }

    #[test]
    fn ordinary_repetition_stays() {
        for text in [
            "lah lah lah you know lah",
            "very very good",
            "you know you know it is fine",
            "the cat and the dog",
        ] {
            assert_eq!(kept(text), text);
        }
    }

    fn attempt(avg_logprob: f64, compression_ratio: f64) -> Attempt {
        Attempt {
            result: DecodingResult {
                tokens: Vec::new(),
                sum_logprob: avg_logprob,
                avg_logprob,
                no_speech_prob: 0.0,
                temperature: 0.0,
            },
            text: String::new(),
            compression_ratio,
        }
    }

    #[test]
    fn after_fallback_the_likeliest_attempt_the_decoder_believes_is_kept() {
        let opts = TranscriptionOptions::default(); // ratio limit 2.4, log-prob limit -1
                                                    // Believed but repetitive beats unlikely but varied.
        let attempts = vec![attempt(-0.2, 3.0), attempt(-1.5, 2.0), attempt(-1.2, 2.3)];
        let chosen = choose_after_fallback(attempts, &opts).unwrap();
        assert_eq!(chosen.result.avg_logprob, -0.2);
        // None believed: the likeliest below the ratio limit, as faster-whisper.
        let attempts = vec![attempt(-1.1, 3.0), attempt(-1.5, 2.0), attempt(-1.2, 2.3)];
        let chosen = choose_after_fallback(attempts, &opts).unwrap();
        assert_eq!(chosen.result.avg_logprob, -1.2);
    }

    #[test]
    fn after_fallback_repetitive_text_is_kept_when_every_attempt_repeats_itself() {
        let opts = TranscriptionOptions::default();
        let attempts = vec![attempt(-0.9, 3.1), attempt(-0.3, 2.9), attempt(-1.4, 4.0)];
        let chosen = choose_after_fallback(attempts, &opts).unwrap();
        assert_eq!(chosen.result.avg_logprob, -0.3);
        assert!(choose_after_fallback(Vec::new(), &opts).is_none());
    }

    #[test]
    fn speech_is_measured_inside_a_stretch() {
        let regions = [(1.0, 2.0), (5.0, 6.0)];
        assert!((speech_within(&regions, 1.5, 5.5) - 1.0).abs() < 1e-9);
        assert_eq!(speech_within(&regions, 2.5, 4.5), 0.0);
        assert_eq!(speech_within(&[], 2.5, 4.5), 2.0);
    }

    #[test]
    fn words_in_silence_are_outside_speech() {
        let regions = [(1.0, 2.0), (5.0, 6.0)];
        let word = |start: f64, end: f64| Word {
            word: " x".into(),
            start,
            end,
            probability: 1.0,
        };
        assert!(inside_speech(&word(1.5, 1.8), &regions));
        assert!(inside_speech(&word(2.1, 2.4), &regions));
        assert!(!inside_speech(&word(3.0, 3.5), &regions));
        assert!(inside_speech(&word(4.5, 4.85), &regions));
        assert!(!inside_speech(&word(7.0, 7.5), &regions));
        assert!(inside_speech(&word(7.0, 7.5), &[]));
    }
}
