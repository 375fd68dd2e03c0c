//! Processed audio into the object store, where the app plays it: a WAV file is written (straight
//! into place for a local directory, else into a temporary file that is then uploaded) and its
//! public URL returned. Uploads replace what is there, so a re-run of a session is harmless.

use std::path::Path;

use crate::pcm::Samples;
use crate::storage::Store;

use super::{write_wav, write_wav_clip, AudioError};

const WAV: &str = "audio/wav";

/// Stores `samples` (16 kHz mono) as the WAV file `key`; returns its public URL.
pub fn publish_wav(
    store: &Store,
    key: &str,
    samples: &(impl Samples + ?Sized),
) -> Result<String, AudioError> {
    publish(store, key, |dest| write_wav(samples, dest))
}

/// Stores at most `max_seconds` of `samples` from `start_seconds` as the WAV file `key` (as
/// [`write_wav_clip`] cuts it); returns its public URL.
pub fn publish_wav_clip(
    store: &Store,
    key: &str,
    samples: &(impl Samples + ?Sized),
    start_seconds: f64,
    max_seconds: f64,
) -> Result<String, AudioError> {
    publish(store, key, |dest| {
        write_wav_clip(samples, start_seconds, max_seconds, dest)
    })
}

fn publish(
    store: &Store,
    key: &str,
    write: impl FnOnce(&Path) -> Result<(), AudioError>,
) -> Result<String, AudioError> {
    if let Some(path) = store.local_path(key) {
        write(&path)?;
        return Ok(store.public_url(key));
    }
    let staging = tempfile::Builder::new()
        .prefix("lahstats-upload-")
        .suffix(".wav")
        .tempfile()
        .map_err(|err| AudioError::Write {
            location: format!(
                "a temporary file for {key} (in {})",
                std::env::temp_dir().display()
            ),
            reason: err.to_string(),
        })?;
    write(staging.path())?;
    store.upload_file(key, staging.path(), WAV)?;
    Ok(store.public_url(key))
}
