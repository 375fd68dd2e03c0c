//! Speech to text with the seek loop of `transcribe.py` (as faster-whisper's
//! `generate_segments` runs it): the audio is walked through windows of at most 30 s that never
//! cross the end of a clip (`clip_timestamps`: the speech pipeline cuts clips at pauses), each
//! window decoded with temperature fallback and prompted with the text before it, cut into
//! segments at its timestamp pairs, given word timestamps from the alignment heads
//! (`timing.rs`), and the next window starts where the last complete segment (or word) ended.
//! The checks against invented text are in `guards.rs`.

use super::audio::window_mels;
use super::beam::{decode_beam, BeamOptions};
use super::decode::{compression_ratio, decode_batch, initial_tokens, DecodingResult};
use super::guards::{self, Attempt};
use super::model::{Precision, WhisperModel};
use super::options::TranscriptionOptions;
use super::timing::{add_word_timestamps, find_alignment, TimedSegment, Word};
use super::tokenizer::WhisperTokenizer;
use super::{Config, HOP_LENGTH, N_FRAMES, SAMPLE_RATE};
use crate::inference::InferenceError;
use crate::pcm::Samples;

mod rewrite;
mod segments;

use rand::SeedableRng;
pub use rewrite::Rewrite;
use segments::split_at_timestamps;
use std::path::Path;
use tch::{Device, TchError, Tensor};

/// One stretch of speech and its text; times in seconds from the start of the audio.
#[derive(Debug, Clone, PartialEq)]
pub struct AsrSegment {
    pub start: f64,
    pub end: f64,
    pub text: String,
    /// Its tokens as decoded (text and timestamps), what conditions the next window.
    pub tokens: Vec<u32>,
    pub avg_logprob: f64,
    pub no_speech_prob: f64,
    pub compression_ratio: f64,
    pub temperature: f64,
    /// Its words with their times (with `word_timestamps`), after the guards.
    pub words: Vec<Word>,
}

impl TimedSegment for AsrSegment {
    fn text_tokens(&self, eot: u32) -> Vec<u32> {
        self.tokens.iter().copied().filter(|&t| t < eot).collect()
    }
    fn start(&self) -> f64 {
        self.start
    }
    fn end(&self) -> f64 {
        self.end
    }
    fn set_start(&mut self, start: f64) {
        self.start = start;
    }
    fn set_end(&mut self, end: f64) {
        self.end = end;
    }
    fn set_words(&mut self, words: Vec<Word>) {
        self.words = words;
    }
}

/// What a transcription carries from one clip to the next: the tokens that prompt the next
/// window (faster-whisper's `all_tokens`, from `prompt_reset_since`), how many of them are the
/// initial prompt, and where the last word ended (seconds). Saved with a session prepared
/// while it records, so the rest is decoded as if in one call.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DecoderContext {
    all_tokens: Vec<u32>,
    initial_prompt_len: usize,
    prompt_reset_since: usize,
    last_speech_timestamp: f64,
    /// How far the temperature-fallback sampler (ChaCha12 from [`SAMPLING_SEED`]) has gone, in
    /// 32-bit words: the sampling of a transcription resumed goes on as if in one call.
    sampled_words: u128,
}

/// A loaded Whisper model with its tokenizer, on one device.
pub struct Whisper {
    pub config: Config,
    model: WhisperModel,
    tokenizer: WhisperTokenizer,
    device: Device,
    rng: rand_chacha::ChaCha12Rng,
}

/// Seed of the sampling at temperatures above 0, the same for every transcription.
const SAMPLING_SEED: u64 = 0;

/// The reference's `input_stride`: mel frames per output token position.
const INPUT_STRIDE: usize = N_FRAMES / 1500;
/// Mel frames per second.
const FRAMES_PER_SECOND: f64 = SAMPLE_RATE as f64 / HOP_LENGTH as f64;

/// A tch failure, with CUDA's out-of-memory told apart (a retry may find memory free).
pub(crate) fn torch_error(err: TchError) -> InferenceError {
    let message = err.to_string();
    if message.contains("out of memory") {
        InferenceError::OutOfMemory(message)
    } else {
        InferenceError::Torch(err)
    }
}

impl Whisper {
    /// Loads `model.safetensors`, `config.json` and `tokenizer.json` from `model_dir` (made by
    /// `scripts/models/whisper.py`), in the precision that is fastest on `device`.
    pub fn load(model_dir: &Path, device: Device) -> Result<Whisper, InferenceError> {
        Whisper::load_with(model_dir, device, Precision::auto(device))
    }

    /// [`Whisper::load`] in a chosen precision (f32 reproduces the reference's numbers).
    pub fn load_with(
        model_dir: &Path,
        device: Device,
        precision: Precision,
    ) -> Result<Whisper, InferenceError> {
        let config_path = model_dir.join("config.json");
        let text =
            std::fs::read_to_string(&config_path).map_err(|_| InferenceError::ModelMissing {
                path: config_path.clone(),
            })?;
        let config: Config =
            serde_json::from_str(&text).map_err(|err| InferenceError::ModelInvalid {
                path: config_path.clone(),
                reason: err.to_string(),
            })?;
        let model = WhisperModel::load(
            &model_dir.join("model.safetensors"),
            &config,
            device,
            precision,
        )?;
        let tokenizer = WhisperTokenizer::from_file(
            &model_dir.join("tokenizer.json"),
            config.special_tokens.eot,
        )?;
        Ok(Whisper {
            config,
            model,
            tokenizer,
            device,
            rng: rand_chacha::ChaCha12Rng::seed_from_u64(SAMPLING_SEED),
        })
    }

    /// Decodes with the vocabulary projection in int8 (see `model::Int8Projection`), quantized
    /// by the TorchScript helper at `helper_path`; whether it applies (f32 on the CPU).
    pub fn quantize_projection(&mut self, helper_path: &Path) -> Result<bool, InferenceError> {
        let first_special = i64::from(self.config.special_tokens.eot);
        self.model
            .decoder
            .quantize_projection(helper_path, first_special)
    }

    /// The tokenizer of the model.
    pub fn tokenizer(&self) -> &WhisperTokenizer {
        &self.tokenizer
    }

    /// Transcribes 16 kHz mono `samples` (any length): the segments in time order, each with
    /// its words when `opts.word_timestamps`.
    pub fn transcribe(
        &mut self,
        samples: &(impl Samples + ?Sized),
        opts: &TranscriptionOptions,
    ) -> Result<Vec<AsrSegment>, InferenceError> {
        self.transcribe_with_progress(samples, opts, &mut |_| {})
    }

    /// [`Whisper::transcribe`], telling `progress` after each window how far it got (seconds).
    pub fn transcribe_with_progress(
        &mut self,
        samples: &(impl Samples + ?Sized),
        opts: &TranscriptionOptions,
        progress: &mut dyn FnMut(f64),
    ) -> Result<Vec<AsrSegment>, InferenceError> {
        self.transcribe_with(samples, opts, progress, &|_| Vec::new())
    }

    /// [`Whisper::transcribe_with_progress`], with each window's text offered to `rewrites`
    /// (with word timestamps): a [`Rewrite`] that needs evidence is applied only when the
    /// decoder, forced through both texts on the window's audio in the window's own context,
    /// finds the rewritten one at least as likely.
    pub fn transcribe_with(
        &mut self,
        samples: &(impl Samples + ?Sized),
        opts: &TranscriptionOptions,
        progress: &mut dyn FnMut(f64),
        rewrites: &dyn Fn(&str) -> Vec<Rewrite>,
    ) -> Result<Vec<AsrSegment>, InferenceError> {
        let mut context = self.start_context(opts)?;
        self.transcribe_resuming(samples, opts, &mut context, progress, rewrites)
    }

    /// The decoding context a transcription starts from: the initial prompt, nothing heard.
    pub fn start_context(
        &self,
        opts: &TranscriptionOptions,
    ) -> Result<DecoderContext, InferenceError> {
        let all_tokens = self.initial_prompt_tokens(opts)?;
        Ok(DecoderContext {
            initial_prompt_len: all_tokens.len(),
            all_tokens,
            prompt_reset_since: 0,
            last_speech_timestamp: 0.0,
            sampled_words: 0,
        })
    }

    /// [`Whisper::transcribe_with`] of `opts.clip_timestamps`, going on from `context` (what
    /// earlier clips of the same audio left) and leaving it as the next clips need it: a
    /// recording transcribed clip by clip as it grows gets the words it gets in one call.
    /// The temperature-fallback sampler starts from the same seed for every transcription and
    /// its position is part of the context, so the same audio gives the same words whatever
    /// this model decoded before, in one call or resumed from a saved context (a job taken
    /// again after a crash, by another worker, must count the same words).
    pub fn transcribe_resuming(
        &mut self,
        samples: &(impl Samples + ?Sized),
        opts: &TranscriptionOptions,
        context: &mut DecoderContext,
        progress: &mut dyn FnMut(f64),
        rewrites: &dyn Fn(&str) -> Vec<Rewrite>,
    ) -> Result<Vec<AsrSegment>, InferenceError> {
        let _no_grad = tch::no_grad_guard();
        let content_frames = samples.len() / HOP_LENGTH;
        // The sampling goes on where the context's last call left it.
        self.rng = rand_chacha::ChaCha12Rng::seed_from_u64(SAMPLING_SEED);
        self.rng.set_word_pos(context.sampled_words);
        let words =
            self.transcribe_clips(samples, content_frames, opts, context, progress, rewrites);
        context.sampled_words = self.rng.get_word_pos();
        words
    }

    /// The clips of [`Whisper::transcribe_resuming`], the sampler set.
    fn transcribe_clips(
        &mut self,
        samples: &(impl Samples + ?Sized),
        content_frames: usize,
        opts: &TranscriptionOptions,
        context: &mut DecoderContext,
        progress: &mut dyn FnMut(f64),
        rewrites: &dyn Fn(&str) -> Vec<Rewrite>,
    ) -> Result<Vec<AsrSegment>, InferenceError> {
        let DecoderContext {
            all_tokens,
            initial_prompt_len,
            prompt_reset_since,
            last_speech_timestamp,
            ..
        } = context;
        let initial_prompt_len = *initial_prompt_len;
        let mut segments = Vec::new();
        for (clip_start, clip_end) in seek_clips(&opts.clip_timestamps, content_frames) {
            let mut seek = clip_start;
            while seek < clip_end {
                let time_offset = seek as f64 / FRAMES_PER_SECOND;
                let segment_size = N_FRAMES.min(clip_end - seek);
                let speech = guards::speech_within(
                    &opts.speech_regions,
                    time_offset,
                    (seek + segment_size) as f64 / FRAMES_PER_SECOND,
                );
                if speech < guards::MIN_SPEECH_TO_DECODE_SECONDS {
                    seek += segment_size; // no speech left here to transcribe
                    continue;
                }
                let audio = samples.to_f32(seek * HOP_LENGTH..(seek + segment_size) * HOP_LENGTH);
                let (mel, _) = window_mels(&[&audio], &self.model.mel_filters, self.device)
                    .map_err(torch_error)?;
                let features = self.encode(&mel)?;
                let prompt = if opts.condition_on_previous_text {
                    &all_tokens[*prompt_reset_since..]
                } else {
                    &[]
                };
                let initial = initial_tokens(&self.config, &opts.language, prompt);
                let attempt = self.decode_with_fallback(&features, &initial, opts)?;
                if guards::should_skip(&attempt.result, opts) {
                    seek += segment_size; // fast-forward to the next window
                    continue;
                }
                let previous_seek = seek;
                let (mut current, next_seek, single_timestamp_ending) =
                    self.split_segments_by_timestamps(&attempt, time_offset, segment_size, seek)?;
                seek = next_seek;
                if opts.word_timestamps && !current.is_empty() {
                    let aligning = std::time::Instant::now();
                    let sot_sequence = initial_tokens(&self.config, &opts.language, &[]);
                    *last_speech_timestamp = self.align_words(
                        &mut current,
                        &features,
                        &sot_sequence,
                        (time_offset, segment_size),
                        *last_speech_timestamp,
                    )?;
                    if !single_timestamp_ending {
                        let last_word_end = current.iter().rev().find_map(|s| s.words.last());
                        if let Some(word) = last_word_end.filter(|w| w.end > time_offset) {
                            seek = (word.end * FRAMES_PER_SECOND).round() as usize;
                        }
                    }
                    self.apply_word_guards(&mut current, opts)?;
                    let rewriting = std::time::Instant::now();
                    let own_context = &all_tokens[(*prompt_reset_since).max(initial_prompt_len)..];
                    let evidence_context = if opts.condition_on_previous_text {
                        initial_tokens(&self.config, &opts.language, own_context)
                    } else {
                        sot_sequence.clone()
                    };
                    self.apply_rewrites(&mut current, &features, &evidence_context, rewrites)?;
                    log::debug!(
                        "whisper: window at {time_offset:.2} s: word alignment {:.2} s, \
                         corrections and particles judged on the audio {:.2} s",
                        (rewriting - aligning).as_secs_f64(),
                        rewriting.elapsed().as_secs_f64()
                    );
                }
                // Always move on, whatever the timestamps said.
                seek = seek.max(previous_seek + 1);
                for segment in current {
                    if segment.start == segment.end || segment.text.trim().is_empty() {
                        continue;
                    }
                    all_tokens.extend(&segment.tokens);
                    segments.push(segment);
                }
                if !opts.condition_on_previous_text
                    || attempt.result.temperature > opts.prompt_reset_on_temperature
                {
                    *prompt_reset_since = all_tokens.len();
                }
                progress(seek as f64 / FRAMES_PER_SECOND);
            }
        }
        Ok(segments)
    }

    /// Word timestamps for the window's segments (`add_word_timestamps` after `find_alignment`
    /// over the alignment heads, as openai-whisper's timing.py), the window being
    /// `(time_offset seconds, segment_size mel frames)`; returns the new last speech timestamp.
    fn align_words(
        &self,
        segments: &mut [AsrSegment],
        features: &Tensor,
        sot_sequence: &[u32],
        (time_offset, segment_size): (f64, usize),
        last_speech_timestamp: f64,
    ) -> Result<f64, InferenceError> {
        let eot = self.config.special_tokens.eot;
        let text_tokens: Vec<u32> = segments.iter().flat_map(|s| s.text_tokens(eot)).collect();
        let alignment = find_alignment(
            &self.model.decoder,
            &self.config,
            &self.tokenizer,
            features,
            sot_sequence,
            &text_tokens,
            segment_size,
        )?;
        Ok(add_word_timestamps(
            segments,
            alignment,
            eot,
            time_offset,
            last_speech_timestamp,
        ))
    }

    fn initial_prompt_tokens(
        &self,
        opts: &TranscriptionOptions,
    ) -> Result<Vec<u32>, InferenceError> {
        match &opts.initial_prompt {
            Some(prompt) => self.tokenizer.encode(&format!(" {}", prompt.trim())),
            None => Ok(Vec::new()),
        }
    }

    /// The encoder's output for `mel` `[batch, n_mels, 3000]`, in the model's number format.
    fn encode(&self, mel: &Tensor) -> Result<Tensor, InferenceError> {
        let started = std::time::Instant::now();
        let mel = mel.f_to_kind(self.model.kind).map_err(torch_error)?;
        let features = self.model.encoder.forward(&mel).map_err(torch_error)?;
        log::debug!(
            "whisper: encoded a window in {:.2} s",
            started.elapsed().as_secs_f64()
        );
        Ok(features)
    }

    /// `generate_with_fallback` for one window: decoded at each temperature in turn until an
    /// attempt passes the thresholds; when none does, faster-whisper's choice among them
    /// ([`guards::choose_after_fallback`]).
    fn decode_with_fallback(
        &mut self,
        features: &Tensor,
        initial: &[u32],
        opts: &TranscriptionOptions,
    ) -> Result<Attempt, InferenceError> {
        let temperatures = if opts.temperatures.is_empty() {
            vec![0.0]
        } else {
            opts.temperatures.clone()
        };
        let mut attempts = Vec::new();
        for &temperature in &temperatures {
            let started = std::time::Instant::now();
            let result = self.decode_at(features, initial, temperature, opts)?;
            let text = self.tokenizer.decode(&result.tokens)?;
            let attempt = Attempt {
                compression_ratio: compression_ratio(text.trim()),
                result,
                text,
            };
            log::debug!(
                "whisper: decoded at temperature {temperature} in {:.2} s: {} tokens, avg \
                 log-prob {:.2}, compression ratio {:.2}, no-speech {:.2}",
                started.elapsed().as_secs_f64(),
                attempt.result.tokens.len(),
                attempt.result.avg_logprob,
                attempt.compression_ratio,
                attempt.result.no_speech_prob
            );
            if !guards::needs_fallback(&attempt, opts) {
                return Ok(attempt);
            }
            attempts.push(attempt);
        }
        let last = temperatures.last().copied().unwrap_or(0.0);
        let mut chosen = guards::choose_after_fallback(attempts, opts)
            .expect("at least one temperature was tried");
        chosen.result.temperature = last; // for the prompt reset, as faster-whisper does
        Ok(chosen)
    }

    /// One decoding of a window at `temperature`: a beam search at 0 when `opts.beam_size` > 1,
    /// else greedy (at 0) or one sampled draw.
    fn decode_at(
        &mut self,
        features: &Tensor,
        initial: &[u32],
        temperature: f64,
        opts: &TranscriptionOptions,
    ) -> Result<DecodingResult, InferenceError> {
        let _one_thread = SingleThreaded::new();
        if temperature <= 0.0 && opts.beam_size > 1 {
            let beam = BeamOptions {
                beam_size: opts.beam_size,
                patience: opts.patience,
                max_initial_timestamp: opts.max_initial_timestamp,
            };
            return decode_beam(&self.model.decoder, &self.config, features, initial, &beam)
                .map_err(torch_error);
        }
        Ok(decode_batch(
            &self.model.decoder,
            &self.config,
            features,
            initial,
            temperature,
            opts.max_initial_timestamp,
            &mut self.rng,
        )
        .map_err(torch_error)?
        .remove(0))
    }

    /// `_split_segments_by_timestamps`: the window's segments (session times), where the next
    /// window starts, and whether the text ended on a single timestamp (nothing left unsaid).
    fn split_segments_by_timestamps(
        &self,
        attempt: &Attempt,
        time_offset: f64,
        segment_size: usize,
        seek: usize,
    ) -> Result<(Vec<AsrSegment>, usize, bool), InferenceError> {
        let timestamp_begin = self.config.special_tokens.timestamp_begin;
        let split = split_at_timestamps(&attempt.result.tokens, timestamp_begin);
        let segment_duration = segment_size as f64 / FRAMES_PER_SECOND;
        let mut segments = Vec::new();
        for piece in &split.pieces {
            let start = time_offset + piece.start.unwrap_or(0.0);
            let end = time_offset + piece.end.unwrap_or(segment_duration).min(segment_duration);
            segments.push(AsrSegment {
                start,
                end,
                text: self.tokenizer.decode(piece.tokens)?,
                tokens: piece.tokens.to_vec(),
                avg_logprob: attempt.result.avg_logprob,
                no_speech_prob: attempt.result.no_speech_prob,
                compression_ratio: attempt.compression_ratio,
                temperature: attempt.result.temperature,
                words: Vec::new(),
            });
        }
        let next_seek = match split.seek_frames {
            Some(frames) => seek + frames,
            None => seek + segment_size,
        };
        Ok((segments, next_seek, split.single_timestamp_ending))
    }

    /// Drops words outside detected speech and repeated loops from the window's segments, and
    /// rewrites a segment's text (and the tokens that prompt the next window) from the words
    /// kept when any went.
    fn apply_word_guards(
        &self,
        segments: &mut [AsrSegment],
        opts: &TranscriptionOptions,
    ) -> Result<(), InferenceError> {
        let all: Vec<(usize, Word)> = segments
            .iter()
            .enumerate()
            .flat_map(|(i, s)| s.words.iter().cloned().map(move |w| (i, w)))
            .collect();
        let words: Vec<Word> = all.iter().map(|(_, w)| w.clone()).collect();
        let anomalous: Vec<bool> = segments
            .iter()
            .map(|s| {
                guards::is_segment_anomaly(&s.words)
                    && guards::copies_prompt(&s.words, opts.initial_prompt.as_deref())
            })
            .collect();
        let mut keep = vec![false; all.len()];
        for index in guards::without_loops(&words) {
            keep[index] = guards::inside_speech(&words[index], &opts.speech_regions)
                && !anomalous[all[index].0];
        }
        for (index, segment) in segments.iter_mut().enumerate() {
            let kept: Vec<Word> = all
                .iter()
                .zip(&keep)
                .filter(|((owner, _), &k)| *owner == index && k)
                .map(|((_, w), _)| w.clone())
                .collect();
            if kept.len() == segment.words.len() {
                continue;
            }
            let dropped: String = segment
                .words
                .iter()
                .filter(|w| !kept.contains(w))
                .map(|w| w.word.as_str())
                .collect();
            log::debug!(
                "whisper: dropped{dropped:?} at {:.2}-{:.2} s (outside speech, a loop or a copy of the prompt)",
                segment.start,
                segment.end
            );
            segment.text = kept.iter().map(|w| w.word.as_str()).collect();
            segment.tokens = self.tokenizer.encode(&segment.text)?;
            if let (Some(first), Some(last)) = (kept.first(), kept.last()) {
                segment.start = first.start;
                segment.end = last.end;
            }
            segment.words = kept;
        }
        Ok(())
    }
}

/// Runs libtorch on one intra-op thread while it lives, then restores the thread count. A
/// decoding step is ~100 small operations: splitting each across threads costs more in
/// synchronisation than it saves, and when the cores are shared with other processes the
/// threads' barriers wait for descheduled peers (measured on 2 shared cores: a 129 s
/// conversation decoded in 15.7 s on two threads, 2.4 s on one).
struct SingleThreaded {
    previous: i32,
}

impl SingleThreaded {
    fn new() -> Self {
        let previous = tch::get_num_threads();
        tch::set_num_threads(1);
        SingleThreaded { previous }
    }
}

impl Drop for SingleThreaded {
    fn drop(&mut self) {
        tch::set_num_threads(self.previous);
    }
}

/// The `(start, end)` mel frames of each clip, within the audio (`clip_timestamps`; empty:
/// the whole audio).
fn seek_clips(clip_timestamps: &[(f64, f64)], content_frames: usize) -> Vec<(usize, usize)> {
    if clip_timestamps.is_empty() {
        return vec![(0, content_frames)];
    }
    clip_timestamps
        .iter()
        .map(|&(start, end)| {
            let frame =
                |t: f64| ((t.max(0.0) * FRAMES_PER_SECOND).round() as usize).min(content_frames);
            (frame(start), frame(end))
        })
        .filter(|(start, end)| start < end)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clips_become_frames_within_the_audio() {
        assert_eq!(seek_clips(&[], 500), vec![(0, 500)]);
        assert_eq!(
            seek_clips(&[(0.5, 2.0), (3.0, 9.0), (7.0, 7.0)], 600),
            vec![(50, 200), (300, 600)]
        );
    }
}
