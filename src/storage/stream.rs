//! The bridge between the asynchronous storage clients (reqwest, object_store on tokio) and the
//! blocking world of the Processor's thread and FFmpeg: one small runtime on a thread of its own,
//! `block_on` for single requests, and [`ObjectReader`], an object's bytes as a `std::io::Read`.

use std::future::Future;
use std::io::{self, Read};
use std::sync::OnceLock;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

use super::StorageError;

/// Body pieces buffered between the network and the reader. Pieces are what the connection
/// hands over (typically 8–64 KiB), so a download holds well under a megabyte at any time.
const PIECES_IN_FLIGHT: usize = 8;

/// The storage clients' runtime: one worker thread, started on first use and kept for the life
/// of the process (dropping a runtime from inside another one's context would panic).
fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("lahstats-storage")
            .enable_all()
            .build()
            .expect("the storage runtime starts (it needs one thread and a timer)")
    })
}

/// Runs `future` on the storage runtime and waits for it. Callable from any thread, also from
/// inside another runtime (actix's), since the wait is a plain blocking one.
pub(crate) fn block_on<T, F>(future: F) -> T
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handle = runtime().spawn(future);
    match futures::executor::block_on(handle) {
        Ok(value) => value,
        // The task panicked: pass the panic on to the caller, as a direct call would have.
        Err(err) => std::panic::resume_unwind(err.into_panic()),
    }
}

/// An object's bytes as they arrive, readable with `std::io::Read`. A failure mid-way surfaces
/// as an `io::Error` wrapping the [`StorageError`], which [`ObjectReader::error`] also keeps.
pub struct ObjectReader {
    pieces: mpsc::Receiver<Result<Bytes, StorageError>>,
    current: Bytes,
    error: Option<StorageError>,
    finished: bool,
    /// The object's size in bytes, when the server said.
    pub size: Option<u64>,
}

impl ObjectReader {
    /// Streams `body` through a bounded channel: the network side waits while the reader is
    /// behind, so nothing is held twice and a dropped reader stops the download.
    pub(crate) fn spawn<S>(body: S, size: Option<u64>) -> ObjectReader
    where
        S: Stream<Item = Result<Bytes, StorageError>> + Send + 'static,
    {
        let (sender, pieces) = mpsc::channel(PIECES_IN_FLIGHT);
        runtime().spawn(async move {
            let mut body = std::pin::pin!(body);
            while let Some(piece) = body.next().await {
                let failed = piece.is_err();
                if sender.send(piece).await.is_err() || failed {
                    return;
                }
            }
        });
        ObjectReader {
            pieces,
            current: Bytes::new(),
            error: None,
            finished: false,
            size,
        }
    }

    /// The storage failure that ended the stream early, if one did.
    pub fn error(&self) -> Option<&StorageError> {
        self.error.as_ref()
    }
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(err) = &self.error {
            return Err(io::Error::other(err.clone()));
        }
        while self.current.is_empty() && !self.finished {
            match futures::executor::block_on(self.pieces.recv()) {
                Some(Ok(piece)) => self.current = piece,
                Some(Err(err)) => {
                    self.error = Some(err.clone());
                    return Err(io::Error::other(err));
                }
                None => self.finished = true,
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

impl std::fmt::Debug for ObjectReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectReader")
            .field("size", &self.size)
            .field("finished", &self.finished)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_are_read_in_order_and_a_failure_is_kept() {
        let pieces: Vec<Result<Bytes, StorageError>> = vec![
            Ok(Bytes::from_static(b"hello ")),
            Ok(Bytes::from_static(b"world")),
        ];
        let mut reader = ObjectReader::spawn(futures::stream::iter(pieces), Some(11));
        let mut text = String::new();
        reader.read_to_string(&mut text).expect("read");
        assert_eq!(text, "hello world");

        let failure = StorageError::Timeout {
            store: "S3",
            endpoint: "http://x".into(),
            bucket: "b".into(),
            key: "k".into(),
        };
        let pieces = vec![Ok(Bytes::from_static(b"abc")), Err(failure.clone())];
        let mut reader = ObjectReader::spawn(futures::stream::iter(pieces), None);
        let mut bytes = Vec::new();
        let err = reader.read_to_end(&mut bytes).expect_err("cut off");
        assert_eq!(bytes, b"abc");
        assert!(err.to_string().contains("did not answer in time"), "{err}");
        assert_eq!(reader.error(), Some(&failure));
    }

    #[test]
    fn block_on_works_inside_another_runtime() {
        let outer = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let value = outer.block_on(async { block_on(async { 6 * 7 }) });
        assert_eq!(value, 42);
    }
}
