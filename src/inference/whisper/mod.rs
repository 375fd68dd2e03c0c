//! Whisper speech recognition on tch: the model's configuration and the audio and decoding
//! constants, named as in OpenAI's reference (`whisper/model.py`, `audio.py`, `decoding.py`,
//! `transcribe.py`, `timing.py`); the network in `model.rs`, the log-mel front end in
//! `audio.rs`, the decoding loop in `decode.rs`, the options in `options.rs`, the seek loop in
//! `transcribe.rs`, the checks against invented text in `guards.rs` and word timestamps in
//! `timing.rs`.

pub mod audio;
pub mod beam;
pub mod decode;
pub mod guards;
pub mod model;
pub mod options;
pub mod timing;
pub mod tokenizer;
pub mod transcribe;

pub use model::Precision;
pub use options::TranscriptionOptions;
pub use timing::Word;
pub use transcribe::{AsrSegment, DecoderContext, Rewrite, Whisper};

use serde::Deserialize;
use std::collections::BTreeMap;

/// `config.json` beside the weights, written by `scripts/models/whisper.py`. The names are
/// `ModelDimensions` of `whisper/model.py`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Config {
    pub n_mels: usize,
    pub n_audio_ctx: usize,
    pub n_audio_state: usize,
    pub n_audio_head: usize,
    pub n_audio_layer: usize,
    pub n_text_ctx: usize,
    pub n_text_state: usize,
    pub n_text_head: usize,
    pub n_text_layer: usize,
    pub n_vocab: usize,
    /// `is_multilingual`: language and task tokens follow <|startoftranscript|>.
    pub is_multilingual: bool,
    pub special_tokens: SpecialTokens,
    /// `suppress_tokens` "-1": the non-speech symbols the model must never emit.
    pub suppress_tokens: Vec<u32>,
    /// `SuppressBlank`: tokens that may not open a transcript (" " and <|endoftext|>).
    pub suppress_blank: Vec<u32>,
    /// `(layer, head)` of the decoder's cross-attention heads that follow the audio in time
    /// (`_ALIGNMENT_HEADS` of openai-whisper's `__init__.py`); empty: every head of the second
    /// half of the layers, the reference's default.
    #[serde(default)]
    pub alignment_heads: Vec<(usize, usize)>,
}

impl Config {
    /// The alignment heads, or the reference's default when the file names none.
    pub fn alignment_heads(&self) -> Vec<(usize, usize)> {
        if !self.alignment_heads.is_empty() {
            return self.alignment_heads.clone();
        }
        (self.n_text_layer / 2..self.n_text_layer)
            .flat_map(|layer| (0..self.n_text_head).map(move |head| (layer, head)))
            .collect()
    }
}

/// Ids of the special tokens, read from the tokenizer by the conversion script.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SpecialTokens {
    pub eot: u32,
    pub sot: u32,
    pub translate: u32,
    pub transcribe: u32,
    pub sot_lm: u32,
    pub sot_prev: u32,
    /// <|nocaptions|> (<|nospeech|> in large-v3).
    pub no_speech: Option<u32>,
    pub no_timestamps: u32,
    /// <|0.00|>; <|t|> is `timestamp_begin + t / TIME_PRECISION`.
    pub timestamp_begin: u32,
    pub languages: BTreeMap<String, u32>,
}

// Audio parameters (`whisper/audio.py`).
pub const SAMPLE_RATE: usize = 16000;
pub const N_FFT: usize = 400;
pub const HOP_LENGTH: usize = 160;
pub const CHUNK_LENGTH: usize = 30;
pub const N_SAMPLES: usize = CHUNK_LENGTH * SAMPLE_RATE; // 480000 samples in a 30-second chunk
pub const N_FRAMES: usize = N_SAMPLES / HOP_LENGTH; // 3000 frames in a mel spectrogram input
pub const N_SAMPLES_PER_TOKEN: usize = HOP_LENGTH * 2; // the initial convolutions have stride 2
pub const TIME_PRECISION: f64 = N_SAMPLES_PER_TOKEN as f64 / SAMPLE_RATE as f64; // 0.02 s

// Decoding parameters (`transcribe.py` defaults).
pub const NO_SPEECH_THRESHOLD: f64 = 0.6;
pub const LOGPROB_THRESHOLD: f64 = -1.0;
/// Beams at temperature 0: 1, greedy decoding, as measured on real speech in our pipeline.
/// faster-whisper's `transcribe()` uses 5, and there it lowers tiny.en's WER (AMI excerpts
/// 0.578 → 0.512, NSC clips 0.527 → 0.503); our beam search gives faster-whisper's transcripts
/// (tests/whisper_parity.rs), but after our VAD clips and guards 5 beams measured worse than
/// greedy on the same files (AMI 0.513 → 0.553, NSC 0.506 → 0.533: likelier, not truer, texts
/// on these recordings) at 2-3× the decoding time. `LAHSTATS_BEAM_SIZE` sets it.
pub const BEAM_SIZE: usize = 1;
pub const TEMPERATURES: [f64; 6] = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0];
pub const COMPRESSION_RATIO_THRESHOLD: f64 = 2.4;
/// `max_initial_timestamp`: the first timestamp is at most 1 s into the window.
pub const MAX_INITIAL_TIMESTAMP: f64 = 1.0;
/// Above this temperature the previous text no longer conditions the next window.
pub const PROMPT_RESET_TEMPERATURE: f64 = 0.5;

// Tokenizer dependent bits.
pub const SOT_TOKEN: &str = "<|startoftranscript|>";
pub const TRANSCRIBE_TOKEN: &str = "<|transcribe|>";
pub const TRANSLATE_TOKEN: &str = "<|translate|>";
pub const NO_TIMESTAMPS_TOKEN: &str = "<|notimestamps|>";
pub const EOT_TOKEN: &str = "<|endoftext|>";
pub const NO_SPEECH_TOKEN: &str = "<|nocaptions|>";
