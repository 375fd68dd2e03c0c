//! Audio in and out: a session's uploaded chunks (any container and codec a phone produces, from
//! local storage or over HTTP(S)) decoded with FFmpeg, downmixed and resampled to 16 kHz mono
//! `f32`, joined in chunk order; and 16 kHz WAV files written back out (the joined audio and the
//! per-speaker sample clips for the app's claiming screen).
//!
//! Decoding streams: packets are read and decoded one at a time and resampled in blocks straight
//! into the output buffer, so memory grows with the decoded output only. Every failure is one
//! [`AudioError`] that says which file and what to do, classified for the retry logic: damaged or
//! unusable audio is permanent, network trouble is transient.

mod clip;
mod decode;
mod downmix;
mod fetch;
mod publish;
mod resample;
mod session;
mod source;

use std::path::PathBuf;
use std::sync::{Arc, Once};

use crate::error::{Classify, ErrorKind};
use crate::storage::{StorageError, Store};

pub use clip::{write_wav, write_wav_clip};
pub use decode::{decode_file, probe_duration};
pub use publish::{publish_wav, publish_wav_clip};
pub use session::{decode_session, SessionAudio};

/// Every decoded sample comes out at this rate, mono: what the VAD, embedder and Whisper expect.
pub const SAMPLE_RATE: u32 = 16_000;

/// Where chunks live and how far the decoder goes for them.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioOptions {
    /// Relative chunk paths (`audio_chunks.storage_path`) are resolved under this directory
    /// when no store is given.
    pub storage_root: PathBuf,
    /// The object store relative chunk paths are keys in (Supabase Storage, S3, a directory).
    pub store: Option<Arc<Store>>,
    /// Longest audio accepted, per file and for a whole session, in seconds.
    pub max_duration_seconds: f64,
    /// Extra request headers for HTTP(S) chunks, e.g. `("apikey", key)` for Supabase storage.
    pub http_headers: Vec<(String, String)>,
    /// How long a connection or a single read may stall before the download counts as timed out.
    pub http_timeout_seconds: u64,
}

impl Default for AudioOptions {
    fn default() -> Self {
        AudioOptions {
            storage_root: PathBuf::from("./data/storage"),
            store: None,
            max_duration_seconds: 4.0 * 3600.0,
            http_headers: Vec::new(),
            http_timeout_seconds: 30,
        }
    }
}

/// Why audio could not be read or written.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AudioError {
    #[error("Audio file {location} does not exist; check the chunk's storage_path and the storage root.")]
    NotFound { location: String },

    #[error("Audio file {location} cannot be read: {reason}. Check its permissions and that it is a regular file.")]
    Unreadable { location: String, reason: String },

    #[error("The server refused to hand out {location} ({reason}); check the storage URL and the configured HTTP headers or key.")]
    Refused { location: String, reason: String },

    #[error("{location} contains no audio stream (is it a video-only or non-media file?); upload the recording again.")]
    NoAudioStream { location: String },

    #[error("Audio file {location} is corrupt or truncated ({reason}); the upload is damaged and must be recorded or uploaded again.")]
    Corrupt { location: String, reason: String },

    #[error("Audio file {location} decodes to no samples at all; the recording is empty.")]
    Empty { location: String },

    #[error("The audio lasts {seconds:.1} s, longer than the {max:.1} s limit; raise max_duration_seconds or split the session.")]
    TooLong { seconds: f64, max: f64 },

    #[error("Audio file {location} uses codec {codec}, which this FFmpeg build cannot decode; convert it or install an FFmpeg with that decoder.")]
    Unsupported { location: String, codec: String },

    #[error("None of the session's {chunks} audio chunks could be decoded; see the warnings above for each chunk.")]
    NoDecodableChunks { chunks: usize },

    #[error("Downloading {location} failed ({reason}); the job will be retried.")]
    Network { location: String, reason: String },

    #[error("Downloading {location} timed out; the job will be retried.")]
    Timeout { location: String },

    #[error("Writing the WAV file {location} failed: {reason}. Check that the directory is writable and the disk has room.")]
    Write { location: String, reason: String },

    /// Reading a chunk from, or storing a processed file in, the object store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl Classify for AudioError {
    fn kind(&self) -> ErrorKind {
        match self {
            AudioError::Network { .. } | AudioError::Timeout { .. } => ErrorKind::Transient,
            // A full disk or an unwritable directory may clear up on its own; the audio is fine.
            AudioError::Write { .. } => ErrorKind::Transient,
            AudioError::Storage(err) => err.kind(),
            AudioError::NotFound { .. }
            | AudioError::Unreadable { .. }
            | AudioError::Refused { .. }
            | AudioError::NoAudioStream { .. }
            | AudioError::Corrupt { .. }
            | AudioError::Empty { .. }
            | AudioError::TooLong { .. }
            | AudioError::Unsupported { .. }
            | AudioError::NoDecodableChunks { .. } => ErrorKind::Permanent,
        }
    }
}

/// Initialises FFmpeg once per process and keeps its own console chatter to real errors.
pub(crate) fn ensure_ffmpeg() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        // `init` only registers error strings and devices on FFmpeg 5; it cannot fail there.
        if let Err(err) = ffmpeg_next::init() {
            log::error!("FFmpeg initialisation reported an error: {err}");
        }
        ffmpeg_next::format::network::init();
        ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Error);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_values() {
        let opts = AudioOptions::default();
        assert_eq!(opts.storage_root, PathBuf::from("./data/storage"));
        assert_eq!(opts.max_duration_seconds, 14_400.0);
        assert_eq!(opts.http_timeout_seconds, 30);
        assert!(opts.http_headers.is_empty());
    }

    #[test]
    fn network_trouble_is_transient_and_bad_audio_permanent() {
        let timeout = AudioError::Timeout {
            location: "http://x/a.m4a".into(),
        };
        let corrupt = AudioError::Corrupt {
            location: "a.m4a".into(),
            reason: "moov atom not found".into(),
        };
        assert_eq!(timeout.kind(), ErrorKind::Transient);
        assert_eq!(corrupt.kind(), ErrorKind::Permanent);
        let job: crate::error::JobError = corrupt.into();
        assert!(!job.is_transient());
        assert!(job.message.contains("a.m4a"));
    }
}
