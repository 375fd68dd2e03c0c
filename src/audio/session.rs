//! A whole session's audio: its chunks decoded in chunk order and joined into one 16 kHz stream.

use crate::error::{Classify, ErrorKind};
use crate::session::ChunkRef;

use super::decode::{decode_into, LengthLimit};
use super::{AudioError, AudioOptions, SAMPLE_RATE};

/// The joined audio of a session and what went into it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SessionAudio {
    /// 16 kHz mono samples of every decodable chunk, in chunk order, as 16-bit PCM (half the
    /// memory of `f32`; read them through `crate::pcm::Samples`).
    pub samples: Vec<i16>,
    /// `(chunk_number, start in seconds)` of each chunk that made it into `samples`.
    pub chunk_offsets: Vec<(i32, f64)>,
    /// Each chunk that made it into `samples`, with the samples it decoded to.
    pub chunk_samples: Vec<(ChunkRef, std::ops::Range<usize>)>,
    /// `(chunk_number, why)` for each chunk left out because it could not be decoded.
    pub skipped: Vec<(i32, String)>,
}

impl SessionAudio {
    /// Length of the joined audio in seconds.
    pub fn duration_seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(SAMPLE_RATE)
    }
}

/// Decodes the session's chunks in `chunk_number` order and joins them.
///
/// As in the original worker, a chunk that cannot be decoded (missing, corrupt, empty, no audio)
/// is skipped with a warning and listed in `skipped`. Network trouble is not skipped: it fails
/// the session with a transient error so the job is retried with every chunk; nor is an object
/// store's failure (missing object or bucket, refused access), which fails it at once. Audio longer than
/// `max_duration_seconds` in total fails the session. No chunks, or none decodable, is an error.
pub fn decode_session(
    chunks: &[ChunkRef],
    opts: &AudioOptions,
) -> Result<SessionAudio, AudioError> {
    let mut ordered: Vec<&ChunkRef> = chunks.iter().collect();
    ordered.sort_by_key(|chunk| chunk.chunk_number);

    let mut audio = SessionAudio::default();
    for chunk in ordered {
        let start_seconds = audio.duration_seconds();
        let limit = LengthLimit {
            max_seconds: opts.max_duration_seconds,
            before_seconds: start_seconds,
        };
        let first = audio.samples.len();
        match decode_into(&chunk.storage_path, opts, limit, &mut audio.samples) {
            Ok(_) => {
                audio
                    .chunk_offsets
                    .push((chunk.chunk_number, start_seconds));
                audio
                    .chunk_samples
                    .push((chunk.clone(), first..audio.samples.len()));
            }
            Err(err) if must_fail_session(&err) => return Err(err),
            Err(err) => {
                log::warn!(
                    "Skipping chunk {} of the session: {err}",
                    chunk.chunk_number
                );
                audio.skipped.push((chunk.chunk_number, err.to_string()));
            }
        }
    }
    if audio.chunk_offsets.is_empty() {
        return Err(AudioError::NoDecodableChunks {
            chunks: chunks.len(),
        });
    }
    Ok(audio)
}

/// Errors that say nothing about the chunk itself, so skipping it would lose audio for good. A
/// chunk the app recorded but the object store does not have (or will not hand out) is one:
/// the session's audio is incomplete, and the message says which bucket, key and setting.
fn must_fail_session(err: &AudioError) -> bool {
    err.kind() == ErrorKind::Transient
        || matches!(err, AudioError::TooLong { .. } | AudioError::Storage(_))
}
