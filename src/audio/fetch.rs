//! A chunk from the object store, handed to FFmpeg as it downloads: streamed through a custom
//! I/O context, or first spooled to an anonymous temporary file when its container needs
//! seeking — an MP4/M4A whose index (`moov`) comes after the audio (`mdat`), as phones write
//! them, a CAF, an MP3. The bytes are never held in memory whole.

use std::io::{self, Read, Seek, Write};
use std::sync::{Arc, Mutex};

use ffmpeg_next::format::context::{Input, StreamIo};

use crate::storage::{ObjectReader, StorageError, Store};

use super::AudioError;

/// Bytes looked at to decide between streaming and spooling: enough for an MP4's `ftyp` and the
/// headers of the boxes after it.
const PEEK_BYTES: usize = 64 * 1024;
/// FFmpeg's read buffer for a streamed chunk.
const IO_BUFFER_BYTES: usize = 64 * 1024;

/// The storage failure behind a read error FFmpeg reports, kept for the error message: FFmpeg
/// itself only passes on an errno.
#[derive(Debug, Clone, Default)]
pub(crate) struct FailureSlot(Arc<Mutex<Option<StorageError>>>);

impl FailureSlot {
    fn set(&self, err: StorageError) {
        if let Ok(mut slot) = self.0.lock() {
            slot.get_or_insert(err);
        }
    }

    pub(crate) fn take(&self) -> Option<StorageError> {
        self.0.lock().ok().and_then(|mut slot| slot.take())
    }
}

/// Any two slots compare equal: what matters about a source is where it points.
impl PartialEq for FailureSlot {
    fn eq(&self, _: &FailureSlot) -> bool {
        true
    }
}

/// Opens `key` from `store` for demuxing with `options`; read failures land in `failure`.
pub(crate) fn open_stored(
    store: &Store,
    key: &str,
    options: ffmpeg_next::Dictionary<'static>,
    failure: &FailureSlot,
) -> Result<Input, Opening> {
    let mut reader = Recording {
        inner: store.open(key).map_err(|err| Opening::Failed(err.into()))?,
        failure: failure.clone(),
    };
    let peek =
        read_up_to(&mut reader, PEEK_BYTES).map_err(|err| Opening::Failed(read_error(err)))?;
    let name = key.rsplit('/').next().filter(|name| !name.is_empty());
    let io = if needs_seeking(&peek) {
        log::debug!("{key}: the container needs seeking; spooling it to a temporary file");
        let spooling = |err| Opening::Failed(spool_error(key, err));
        let mut file = tempfile::tempfile().map_err(spooling)?;
        file.write_all(&peek).map_err(spooling)?;
        if let Err(err) = io::copy(&mut reader, &mut file) {
            // A failed download says so; anything else is the temporary file's fault.
            return Err(Opening::Failed(match reader.failure.take() {
                Some(storage) => storage.into(),
                None => spool_error(key, err),
            }));
        }
        file.rewind().map_err(spooling)?;
        StreamIo::from_read_seek_with_capacity(file, IO_BUFFER_BYTES)
    } else {
        log::debug!("{key}: streaming it to the decoder");
        StreamIo::from_read_with_capacity(io::Cursor::new(peek).chain(reader), IO_BUFFER_BYTES)
    }
    .map_err(Opening::Ffmpeg)?;
    ffmpeg_next::format::input_from_stream(io, name, Some(options)).map_err(Opening::Ffmpeg)
}

/// Why [`open_stored`] failed: before FFmpeg saw the data, or in FFmpeg.
pub(crate) enum Opening {
    Failed(AudioError),
    Ffmpeg(ffmpeg_next::Error),
}

/// Whether FFmpeg could only read this container by jumping about in it. An ISO media file
/// (MP4, M4A, MOV, 3GP) whose `moov` box does not come before its `mdat` has its index at the
/// end; a CAF may keep its packet table after the audio. Anything undecided within the peek is
/// spooled too: a temporary file always works, a stream only mostly.
pub(crate) fn needs_seeking(head: &[u8]) -> bool {
    if head.starts_with(b"caff") {
        return true;
    }
    // MPEG audio (MP3, ADTS): FFmpeg trims an MP3's encoder padding only when it can seek (a
    // streamed one decoded 12.5 ms longer than the same file from disk).
    if head.starts_with(b"ID3") || matches!(head, [0xFF, second, ..] if second & 0xE0 == 0xE0) {
        return true;
    }
    if head.get(4..8) != Some(b"ftyp") {
        return false;
    }
    let mut offset = 0usize;
    while let Some(header) = head.get(offset..offset + 8) {
        let size = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as u64;
        match &header[4..8] {
            b"moov" => return false,
            b"mdat" => return true,
            _ => {}
        }
        let size = match size {
            // A 64-bit size follows the type.
            1 => match head.get(offset + 8..offset + 16) {
                Some(large) => u64::from_be_bytes(large.try_into().unwrap_or([0; 8])),
                None => return true,
            },
            // The box runs to the end of the file: no moov after it.
            0 => return true,
            size => size,
        };
        if size < 8 {
            return true;
        }
        offset = match usize::try_from(size)
            .ok()
            .and_then(|size| offset.checked_add(size))
        {
            Some(next) => next,
            None => return true,
        };
    }
    true
}

/// The object's reader, noting a storage failure before FFmpeg turns it into an errno.
struct Recording {
    inner: ObjectReader,
    failure: FailureSlot,
}

impl Read for Recording {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let result = self.inner.read(buf);
        if result.is_err() {
            if let Some(err) = self.inner.error() {
                self.failure.set(err.clone());
            }
        }
        result
    }
}

fn read_up_to(reader: &mut impl Read, limit: usize) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(limit);
    reader.take(limit as u64).read_to_end(&mut head)?;
    Ok(head)
}

/// A read error as the storage failure it carries.
fn read_error(err: io::Error) -> AudioError {
    match err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<StorageError>())
    {
        Some(storage) => storage.clone().into(),
        None => AudioError::Unreadable {
            location: "a stored chunk".into(),
            reason: err.to_string(),
        },
    }
}

/// The temporary directory is full or unwritable: the chunk is fine, so this is retried.
fn spool_error(key: &str, err: io::Error) -> AudioError {
    AudioError::Write {
        location: format!(
            "a temporary copy of {key} (in {})",
            std::env::temp_dir().display()
        ),
        reason: err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxes(kinds: &[(&[u8; 4], u32)]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for (kind, size) in kinds {
            bytes.extend_from_slice(&size.to_be_bytes());
            bytes.extend_from_slice(*kind);
            bytes.resize(bytes.len() + *size as usize - 8, 0);
        }
        bytes
    }

    #[test]
    fn an_mp4_with_its_index_first_streams_and_one_with_it_last_spools() {
        let faststart = boxes(&[(b"ftyp", 24), (b"moov", 900), (b"mdat", 5000)]);
        assert!(!needs_seeking(&faststart));
        let phone = boxes(&[(b"ftyp", 24), (b"free", 8), (b"mdat", 5000), (b"moov", 900)]);
        assert!(needs_seeking(&phone));
        // Undecided within what was read: spool.
        assert!(needs_seeking(&phone[..40]));
        assert!(needs_seeking(b"caff\0\x01\0\0"));
        assert!(needs_seeking(b"ID3\x04\0\0"));
        assert!(needs_seeking(&[0xFF, 0xFB, 0x90, 0x64]));
        assert!(!needs_seeking(b"RIFF\x24\0\0\0WAVEfmt "));
        assert!(!needs_seeking(b"OggS\0\x02"));
        assert!(!needs_seeking(b""));
    }
}
