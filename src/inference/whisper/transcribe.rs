//! Speech to text with `transcribe.py`'s logic: windows of at most 30 s decoded in batches with
//! temperature fallback and no-speech detection, and long audio walked through 30 s windows,
//! seeking to the last timestamp and prompting each window with the text before it.

use super::audio::{long_mel, mel_segment, window_mels};
use super::decode::{
    compression_ratio, decode_batch, initial_tokens, DecodeOptions, DecodingResult,
};
use super::model::{Precision, WhisperModel};
use super::tokenizer::WhisperTokenizer;
use super::{
    Config, HOP_LENGTH, N_FRAMES, N_SAMPLES, PROMPT_RESET_TEMPERATURE, SAMPLE_RATE, TIME_PRECISION,
};
use crate::inference::InferenceError;
use rand::SeedableRng;
use std::path::Path;
use tch::{Device, TchError, Tensor};

/// One stretch of speech and its text; times in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct AsrSegment {
    pub start: f64,
    pub end: f64,
    pub text: String,
    pub avg_logprob: f64,
    pub no_speech_prob: f64,
}

/// What was said in one window; segment times are relative to the window's start.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WindowTranscript {
    pub segments: Vec<AsrSegment>,
    pub text: String,
}

/// A loaded Whisper model with its tokenizer, on one device.
pub struct Whisper {
    pub config: Config,
    model: WhisperModel,
    tokenizer: WhisperTokenizer,
    device: Device,
    rng: rand::rngs::StdRng,
}

/// Seed of the sampling at temperatures above 0, reset for every transcription.
const SAMPLING_SEED: u64 = 0;
/// A window whose text keeps stopping early is decoded at most this many times (each time from
/// its last timestamp on); the last time keeps its unfinished tail.
const MAX_ROUNDS_PER_WINDOW: usize = 8;

/// The reference's `input_stride`: mel frames per output token position.
const INPUT_STRIDE: usize = N_FRAMES / 1500;

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
            rng: rand::rngs::StdRng::seed_from_u64(SAMPLING_SEED),
        })
    }

    /// Transcribes windows of 16 kHz mono audio, each at most 30 s, `opts.max_batch` at a time.
    /// As the reference does within one 30 s window: when the text stops at a timestamp before
    /// the window's end (the model closed its last segment early), what follows that timestamp
    /// is transcribed again in the next round, batched with the other windows' rests.
    pub fn transcribe_batch(
        &mut self,
        windows: &[&[f32]],
        opts: &DecodeOptions,
    ) -> Result<Vec<WindowTranscript>, InferenceError> {
        if let Some((index, window)) = windows
            .iter()
            .enumerate()
            .find(|(_, w)| w.len() > N_SAMPLES)
        {
            let seconds = window.len() as f64 / SAMPLE_RATE as f64;
            return Err(InferenceError::WindowTooLong { index, seconds });
        }
        let _no_grad = tch::no_grad_guard();
        // Temperature fallback samples: start every call from the same seed, so the same audio
        // gives the same words whatever this model decoded before (a job taken again after a
        // crash, by another worker, must count the same words).
        self.rng = rand::rngs::StdRng::seed_from_u64(SAMPLING_SEED);
        let prompt = self.initial_prompt_tokens(opts)?;
        let initial = initial_tokens(&self.config, &opts.language, &prompt);
        let mut segments: Vec<Vec<AsrSegment>> = vec![Vec::new(); windows.len()];
        // (window, first sample not yet transcribed)
        let mut pending: Vec<(usize, usize)> = (0..windows.len()).map(|w| (w, 0)).collect();
        for round in 0..MAX_ROUNDS_PER_WINDOW {
            let last_round = round + 1 == MAX_ROUNDS_PER_WINDOW;
            let mut rests = Vec::new();
            for chunk in pending.chunks(opts.max_batch.max(1)) {
                let audio: Vec<&[f32]> =
                    chunk.iter().map(|&(w, from)| &windows[w][from..]).collect();
                let (mel, content_frames) =
                    window_mels(&audio, &self.model.mel_filters, self.device)
                        .map_err(torch_error)?;
                let results = self.decode_with_fallback(&mel, &initial, opts)?;
                for ((&(w, from), result), frames) in chunk.iter().zip(&results).zip(content_frames)
                {
                    if should_skip(result, opts) {
                        continue;
                    }
                    let offset = from as f64 / SAMPLE_RATE as f64;
                    let duration = (frames * HOP_LENGTH) as f64 / SAMPLE_RATE as f64;
                    let (found, consumed) =
                        self.segments_of(result, offset, duration, last_round)?;
                    segments[w].extend(found.into_iter().map(|(segment, _)| segment));
                    if let Some(used) = consumed {
                        let next = from + used.max(1) * HOP_LENGTH;
                        if next < windows[w].len() {
                            rests.push((w, next));
                        }
                    }
                }
            }
            if rests.is_empty() {
                break;
            }
            log::debug!(
                "whisper: {} window(s) ended early; transcribing their rest ({:?} s)",
                rests.len(),
                rests
                    .iter()
                    .map(|&(w, from)| (windows[w].len() - from) as f64 / SAMPLE_RATE as f64)
                    .collect::<Vec<_>>()
            );
            pending = rests;
        }
        Ok(segments
            .into_iter()
            .map(|segments| {
                let text = segments.iter().map(|s| s.text.as_str()).collect::<String>();
                WindowTranscript { segments, text }
            })
            .collect())
    }

    /// Transcribes audio of any length as `transcribe()` does: one mel spectrogram for the whole
    /// recording, 30 s windows, each starting where the previous one's last timestamp ended.
    pub fn transcribe_long(
        &mut self,
        samples: &[f32],
        opts: &DecodeOptions,
    ) -> Result<Vec<AsrSegment>, InferenceError> {
        let _no_grad = tch::no_grad_guard();
        self.rng = rand::rngs::StdRng::seed_from_u64(SAMPLING_SEED);
        let (mel, content_frames) =
            long_mel(samples, &self.model.mel_filters, self.device).map_err(torch_error)?;
        let mut all_tokens = self.initial_prompt_tokens(opts)?;
        let mut prompt_reset_since = 0;
        let mut segments = Vec::new();
        let mut seek = 0;
        while seek < content_frames {
            let time_offset = (seek * HOP_LENGTH) as f64 / SAMPLE_RATE as f64;
            let segment_size = N_FRAMES.min(content_frames - seek);
            let segment_duration = (segment_size * HOP_LENGTH) as f64 / SAMPLE_RATE as f64;
            let mel_window = mel_segment(&mel, seek, segment_size)
                .and_then(|m| m.f_unsqueeze(0))
                .map_err(torch_error)?;
            let prompt = if opts.condition_on_previous_text {
                &all_tokens[prompt_reset_since..]
            } else {
                &[]
            };
            let initial = initial_tokens(&self.config, &opts.language, prompt);
            let result = self
                .decode_with_fallback(&mel_window, &initial, opts)?
                .remove(0);
            if should_skip(&result, opts) {
                seek += segment_size; // fast-forward to the next window
                continue;
            }
            let (window_segments, consumed) =
                self.segments_of(&result, time_offset, segment_duration, false)?;
            seek += consumed.map_or(segment_size, |frames| frames.max(1));
            for (segment, tokens) in window_segments {
                all_tokens.extend(tokens);
                segments.push(segment);
            }
            if !opts.condition_on_previous_text || result.temperature > PROMPT_RESET_TEMPERATURE {
                prompt_reset_since = all_tokens.len();
            }
        }
        Ok(segments)
    }

    fn initial_prompt_tokens(&self, opts: &DecodeOptions) -> Result<Vec<u32>, InferenceError> {
        match &opts.initial_prompt {
            Some(prompt) => self.tokenizer.encode(&format!(" {}", prompt.trim())),
            None => Ok(Vec::new()),
        }
    }

    /// `decode_with_fallback` for a batch of mel windows: windows whose result is too
    /// repetitive or too unlikely are decoded again, together, at the next temperature.
    fn decode_with_fallback(
        &mut self,
        mel: &Tensor,
        initial: &[u32],
        opts: &DecodeOptions,
    ) -> Result<Vec<DecodingResult>, InferenceError> {
        let started = std::time::Instant::now();
        let mel = mel.f_to_kind(self.model.kind).map_err(torch_error)?;
        let audio_features = self.model.encoder.forward(&mel).map_err(torch_error)?;
        let batch = audio_features.size()[0] as usize;
        log::debug!(
            "whisper: encoded {batch} window(s) in {:.2} s",
            started.elapsed().as_secs_f64()
        );
        let mut results: Vec<Option<DecodingResult>> = vec![None; batch];
        let mut pending: Vec<usize> = (0..batch).collect();
        let temperatures = if opts.temperatures.is_empty() {
            vec![0.0]
        } else {
            opts.temperatures.clone()
        };
        for (step, &temperature) in temperatures.iter().enumerate() {
            let rows: Vec<i64> = pending.iter().map(|&r| r as i64).collect();
            let features = if pending.len() == batch {
                audio_features.shallow_clone()
            } else {
                let index = Tensor::f_from_slice(&rows).and_then(|i| i.f_to_device(self.device));
                index
                    .and_then(|i| audio_features.f_index_select(0, &i))
                    .map_err(torch_error)?
            };
            let started = std::time::Instant::now();
            let _one_thread = SingleThreaded::new();
            let decoded = decode_batch(
                &self.model.decoder,
                &self.config,
                &features,
                initial,
                temperature,
                &mut self.rng,
            )
            .map_err(torch_error)?;
            log::debug!(
                "whisper: decoded {} window(s) at temperature {temperature} in {:.2} s, {} tokens",
                rows.len(),
                started.elapsed().as_secs_f64(),
                decoded.iter().map(|d| d.tokens.len()).sum::<usize>()
            );
            let last_try = step + 1 == temperatures.len();
            let mut still_pending = Vec::new();
            for (row, result) in pending.iter().copied().zip(decoded) {
                let text = self.tokenizer.decode(&result.tokens)?;
                if last_try || !needs_fallback(&result, &text, opts) {
                    results[row] = Some(result);
                } else {
                    still_pending.push(row);
                }
            }
            pending = still_pending;
            if pending.is_empty() {
                break;
            }
        }
        Ok(results.into_iter().flatten().collect())
    }

    /// The segments of one window's tokens, split at consecutive timestamps as `transcribe.py`
    /// does, and the frames they consume (`None`: the whole window). With `keep_tail` the text
    /// after the last complete segment becomes a segment ending at the window's end (a window
    /// decoded once); without it that text is left for the next window (long audio).
    fn segments_of(
        &self,
        result: &DecodingResult,
        time_offset: f64,
        segment_duration: f64,
        keep_tail: bool,
    ) -> Result<WindowSegments, InferenceError> {
        let mut segments = Vec::new();
        let mut consumed = None;
        for piece in split_at_timestamps(
            &result.tokens,
            self.config.special_tokens.timestamp_begin,
            keep_tail,
        ) {
            let text = self.tokenizer.decode(piece.tokens)?;
            consumed = piece.seek_frames;
            let start = time_offset + piece.start.unwrap_or(0.0);
            let end = time_offset + piece.end.unwrap_or(segment_duration).min(segment_duration);
            if start >= end || text.trim().is_empty() {
                continue; // instantaneous or empty: the reference clears these
            }
            let segment = AsrSegment {
                start,
                end,
                text,
                avg_logprob: result.avg_logprob,
                no_speech_prob: result.no_speech_prob,
            };
            segments.push((segment, piece.tokens.to_vec()));
        }
        Ok((segments, consumed))
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

/// A window's segments with their tokens, and the mel frames they consumed (`None`: all).
type WindowSegments = (Vec<(AsrSegment, Vec<u32>)>, Option<usize>);

/// `needs_fallback` of `decode_with_fallback`.
fn needs_fallback(result: &DecodingResult, text: &str, opts: &DecodeOptions) -> bool {
    let too_repetitive = opts
        .compression_ratio_threshold
        .is_some_and(|limit| compression_ratio(text) > limit);
    let too_unlikely = opts
        .logprob_threshold
        .is_some_and(|limit| result.avg_logprob < limit);
    let silence = opts
        .no_speech_threshold
        .is_some_and(|limit| result.no_speech_prob > limit);
    (too_repetitive || too_unlikely) && !(silence && too_unlikely)
}

/// The no-speech skip of `transcribe.py`: likely silence, unless the text is confident.
fn should_skip(result: &DecodingResult, opts: &DecodeOptions) -> bool {
    let Some(threshold) = opts.no_speech_threshold else {
        return false;
    };
    let confident = opts
        .logprob_threshold
        .is_some_and(|limit| result.avg_logprob > limit);
    result.no_speech_prob > threshold && !confident
}

/// One segment's tokens and its timestamps (seconds into the window).
#[derive(Debug, PartialEq)]
pub struct TokenPiece<'a> {
    pub tokens: &'a [u32],
    pub start: Option<f64>,
    pub end: Option<f64>,
    /// Where the next window starts, in mel frames, when this is the last piece.
    pub seek_frames: Option<usize>,
}

/// `transcribe.py`'s split of sampled tokens at consecutive timestamp tokens.
pub fn split_at_timestamps(
    tokens: &[u32],
    timestamp_begin: u32,
    keep_tail: bool,
) -> Vec<TokenPiece<'_>> {
    let is_timestamp = |t: u32| t >= timestamp_begin;
    let position = |t: u32| (t - timestamp_begin) as usize;
    let seconds = |t: u32| position(t) as f64 * TIME_PRECISION;
    let single_timestamp_ending = tokens.len() >= 2
        && !is_timestamp(tokens[tokens.len() - 2])
        && is_timestamp(tokens[tokens.len() - 1]);
    let mut slices: Vec<usize> = (1..tokens.len())
        .filter(|&i| is_timestamp(tokens[i - 1]) && is_timestamp(tokens[i]))
        .collect();
    let mut pieces = Vec::new();
    if slices.is_empty() {
        // No complete segment: the whole window is one, up to its last timestamp if any.
        let last = tokens
            .iter()
            .rev()
            .find(|&&t| is_timestamp(t) && t != timestamp_begin);
        pieces.push(TokenPiece {
            tokens,
            start: None,
            end: last.map(|&t| seconds(t)),
            seek_frames: None,
        });
        return pieces;
    }
    if single_timestamp_ending {
        slices.push(tokens.len());
    }
    let mut last_slice = 0;
    for &current in &slices {
        let piece = &tokens[last_slice..current];
        pieces.push(TokenPiece {
            tokens: piece,
            start: piece.first().map(|&t| seconds(t)),
            end: piece.last().map(|&t| seconds(t)),
            seek_frames: None,
        });
        last_slice = current;
    }
    if !single_timestamp_ending {
        let seek_frames = Some(position(tokens[last_slice - 1]) * INPUT_STRIDE);
        let tail = &tokens[last_slice..];
        if keep_tail && tail.iter().any(|&t| !is_timestamp(t)) {
            let start = seconds(tokens[last_slice - 1]);
            pieces.push(TokenPiece {
                tokens: tail,
                start: Some(start),
                end: None,
                seek_frames: None,
            });
        } else if let Some(last) = pieces.last_mut() {
            last.seek_frames = seek_frames;
        }
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u32 = 50363;

    #[test]
    fn segments_split_at_timestamp_pairs() {
        // <|0.00|> a <|1.00|><|1.00|> b <|2.40|>  → two segments, the window is used up.
        let tokens = [T, 10, T + 50, T + 50, 11, T + 120];
        let pieces = split_at_timestamps(&tokens, T, false);
        assert_eq!(pieces.len(), 2);
        assert_eq!((pieces[0].start, pieces[0].end), (Some(0.0), Some(1.0)));
        assert_eq!(pieces[1].tokens, &[T + 50, 11, T + 120]);
        assert!((pieces[1].end.unwrap() - 2.4).abs() < 1e-9);
        assert_eq!(pieces[1].seek_frames, None);
    }

    #[test]
    fn an_unfinished_segment_is_left_for_the_next_window() {
        // <|0.00|> a <|1.00|><|1.00|> b (cut off) → seek to 1.00 s = 100 frames.
        let tokens = [T, 10, T + 50, T + 50, 11];
        let pieces = split_at_timestamps(&tokens, T, false);
        assert_eq!(pieces.len(), 1);
        assert_eq!(pieces[0].seek_frames, Some(100));
        let kept = split_at_timestamps(&tokens, T, true);
        assert_eq!(kept.len(), 2);
        assert_eq!((kept[1].start, kept[1].end), (Some(1.0), None));
    }

    #[test]
    fn text_without_pairs_is_one_segment() {
        let tokens = [T, 10, 11, T + 75];
        let pieces = split_at_timestamps(&tokens, T, false);
        assert_eq!(pieces.len(), 1);
        assert_eq!((pieces[0].start, pieces[0].end), (None, Some(1.5)));
    }
}
