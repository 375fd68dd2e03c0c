//! A directory as the object store: the embedded default, and what a single machine needs.
//! Keys are paths under the root; an upload lands under its name only once complete.

use std::path::{Path, PathBuf};

use futures::stream;
use tokio::io::AsyncReadExt;

use super::stream::ObjectReader;
use super::StorageError;

/// Bytes read from a file per piece when it is opened as a stream.
const PIECE_BYTES: usize = 64 * 1024;

pub(crate) struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub(crate) fn new(root: PathBuf) -> LocalStore {
        LocalStore { root }
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Where `key` lives on disk.
    pub(crate) fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    fn io_error(&self, key: &str, err: impl std::fmt::Display) -> StorageError {
        StorageError::LocalIo {
            root: self.root.display().to_string(),
            key: key.to_string(),
            reason: err.to_string(),
        }
    }

    /// The file at `key` as a stream of bytes.
    pub(crate) fn open(&self, key: &str) -> Result<ObjectReader, StorageError> {
        let path = self.path(key);
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(StorageError::NotFound {
                    store: "local storage",
                    bucket: self.root.display().to_string(),
                    key: key.to_string(),
                    setting: "LAHSTATS_STORAGE_DIR",
                })
            }
            Err(err) => return Err(self.io_error(key, err)),
        };
        let size = file.metadata().ok().map(|meta| meta.len());
        let failure = (self.root.display().to_string(), key.to_string());
        let file = tokio::fs::File::from_std(file);
        let pieces = stream::unfold(Some(file), move |file| {
            let failure = failure.clone();
            async move {
                let mut file = file?;
                let mut piece = vec![0u8; PIECE_BYTES];
                match file.read(&mut piece).await {
                    Ok(0) => None,
                    Ok(read) => {
                        piece.truncate(read);
                        Some((Ok(bytes::Bytes::from(piece)), Some(file)))
                    }
                    Err(err) => Some((
                        Err(StorageError::LocalIo {
                            root: failure.0,
                            key: failure.1,
                            reason: err.to_string(),
                        }),
                        None,
                    )),
                }
            }
        });
        Ok(ObjectReader::spawn(pieces, size))
    }

    /// Copies `file` to `key`: into a hidden name beside it first, then renamed, so a reader
    /// never sees half a file and a re-run replaces the old one.
    pub(crate) fn upload(&self, key: &str, file: &Path) -> Result<(), StorageError> {
        let dest = self.path(key);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|err| self.io_error(key, err))?;
        }
        if same_file(file, &dest) {
            return Ok(());
        }
        let name = dest
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let partial = dest.with_file_name(format!(".{name}.partial-{}", std::process::id()));
        let result = std::fs::copy(file, &partial)
            .and_then(|_| std::fs::rename(&partial, &dest))
            .map_err(|err| self.io_error(key, err));
        if result.is_err() {
            // Best effort: the partial file may not exist if the copy never started.
            let _ = std::fs::remove_file(&partial);
        }
        result
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
