//! How to transcribe: one options struct, named as faster-whisper's `TranscriptionOptions`
//! (`faster_whisper/transcribe.py`), with `transcribe()`'s defaults. Decoding is a beam search at
//! temperature 0 (greedy with `beam_size` 1) and sampled above it (one draw; faster-whisper
//! draws `best_of` 5).

use super::timing::{APPEND_PUNCTUATIONS, PREPEND_PUNCTUATIONS};
use super::{
    BEAM_SIZE, COMPRESSION_RATIO_THRESHOLD, LOGPROB_THRESHOLD, MAX_INITIAL_TIMESTAMP,
    NO_SPEECH_THRESHOLD, PROMPT_RESET_TEMPERATURE, TEMPERATURES,
};

/// The options of [`Whisper::transcribe`](super::Whisper::transcribe).
#[derive(Debug, Clone, PartialEq)]
pub struct TranscriptionOptions {
    /// Language of multilingual models (English-only models have no language token).
    pub language: String,
    /// Tried in order while a result fails the thresholds.
    pub temperatures: Vec<f64>,
    /// Beams of the search at temperature 0 (`beam.rs`); 1 decodes greedily.
    pub beam_size: usize,
    /// Finished candidates the beam search waits for, as a multiple of `beam_size`.
    pub patience: f64,
    /// An average log-probability below this asks for the next temperature.
    pub log_prob_threshold: Option<f64>,
    /// A window whose no-speech probability is above this (and log-probability low) is silence.
    pub no_speech_threshold: Option<f64>,
    /// A text whose zlib compression ratio is above this (repetition) asks for the next
    /// temperature; when every temperature is above it, the likeliest attempt is kept (as
    /// faster-whisper does) and loops in it are cut by the word guards.
    pub compression_ratio_threshold: Option<f64>,
    /// The text decoded so far is the next window's prompt (after <|startofprev|>).
    pub condition_on_previous_text: bool,
    /// A window decoded above this temperature starts the prompt afresh.
    pub prompt_reset_on_temperature: f64,
    /// Text put before the first window's prompt (e.g. the vocabulary to expect).
    pub initial_prompt: Option<String>,
    /// The first timestamp of a window is at most this many seconds in.
    pub max_initial_timestamp: f64,
    /// Word-level timestamps from the alignment heads (see `timing.rs`).
    pub word_timestamps: bool,
    pub prepend_punctuations: String,
    pub append_punctuations: String,
    /// `(start, end)` seconds of the stretches to transcribe, in order (empty: all the audio);
    /// no window crosses the end of one, so they are where windows may be cut.
    pub clip_timestamps: Vec<(f64, f64)>,
    /// Ours: `(start, end)` seconds of detected speech; a word whose time (widened by
    /// [`SPEECH_TOLERANCE_SECONDS`](super::guards::SPEECH_TOLERANCE_SECONDS)) touches none is
    /// dropped as text Whisper made up in silence. Empty: no such check.
    pub speech_regions: Vec<(f64, f64)>,
}

impl Default for TranscriptionOptions {
    fn default() -> Self {
        TranscriptionOptions {
            language: "en".into(),
            temperatures: TEMPERATURES.to_vec(),
            beam_size: BEAM_SIZE,
            patience: 1.0,
            log_prob_threshold: Some(LOGPROB_THRESHOLD),
            no_speech_threshold: Some(NO_SPEECH_THRESHOLD),
            compression_ratio_threshold: Some(COMPRESSION_RATIO_THRESHOLD),
            condition_on_previous_text: true,
            prompt_reset_on_temperature: PROMPT_RESET_TEMPERATURE,
            initial_prompt: None,
            max_initial_timestamp: MAX_INITIAL_TIMESTAMP,
            word_timestamps: true,
            prepend_punctuations: PREPEND_PUNCTUATIONS.into(),
            append_punctuations: APPEND_PUNCTUATIONS.into(),
            clip_timestamps: Vec::new(),
            speech_regions: Vec::new(),
        }
    }
}
