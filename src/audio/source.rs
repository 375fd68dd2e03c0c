//! Where a chunk's bytes come from (a key in the configured object store, a file under the
//! storage root, an absolute path, or an HTTP(S) URL), opening it with FFmpeg, and turning
//! FFmpeg's error codes into [`AudioError`]s.

use std::path::PathBuf;

use ffmpeg_next::format::context::Input;
use ffmpeg_next::{Dictionary, Error as FfError};

use super::fetch::{open_stored, FailureSlot, Opening};
use super::{ensure_ffmpeg, AudioError, AudioOptions};

/// A chunk location, resolved.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Source {
    Local(PathBuf),
    Remote(String),
    /// A key in a remote object store (Supabase Storage, S3), with the storage failure that
    /// ended its download, if one did.
    Stored {
        key: String,
        failure: FailureSlot,
    },
}

impl Source {
    /// `http(s)://` is fetched with FFmpeg's own protocols; `file://` and plain paths are local;
    /// relative ones are keys in the configured store (files under the storage root when the
    /// store is a local directory or none is configured).
    pub(crate) fn resolve(location: &str, opts: &AudioOptions) -> Source {
        let lower = location.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            return Source::Remote(location.to_string());
        }
        let path = PathBuf::from(location.strip_prefix("file://").unwrap_or(location));
        if path.is_absolute() {
            return Source::Local(path);
        }
        match &opts.store {
            Some(store) => match store.local_path(location) {
                Some(path) => Source::Local(path),
                None => Source::Stored {
                    key: location.to_string(),
                    failure: FailureSlot::default(),
                },
            },
            None => Source::Local(opts.storage_root.join(path)),
        }
    }

    pub(crate) fn is_remote(&self) -> bool {
        matches!(self, Source::Remote(_) | Source::Stored { .. })
    }
}

/// Opens `location` for demuxing, with its streams probed.
pub(crate) fn open_input(
    location: &str,
    opts: &AudioOptions,
) -> Result<(Source, Input), AudioError> {
    ensure_ffmpeg();
    let source = Source::resolve(location, opts);
    let (url, options) = match &source {
        Source::Local(path) => {
            check_local_file(location, path)?;
            // `file:` keeps FFmpeg from reading a colon in a file name as a protocol name.
            (format!("file:{}", path.display()), local_options())
        }
        Source::Remote(url) => (url.clone(), remote_options(opts)),
        Source::Stored { key, failure } => {
            let store = opts
                .store
                .as_deref()
                .ok_or_else(|| AudioError::Unreadable {
                    location: location.to_string(),
                    reason: "no object store is configured".into(),
                })?;
            let input = match open_stored(store, key, stored_options(), failure) {
                Ok(input) => input,
                Err(Opening::Failed(err)) => return Err(err),
                Err(Opening::Ffmpeg(err)) => return Err(open_error(location, &source, err)),
            };
            return Ok((source, input));
        }
    };
    let input = ffmpeg_next::format::input_with_dictionary(&url, options)
        .map_err(|err| open_error(location, &source, err))?;
    Ok((source, input))
}

fn check_local_file(location: &str, path: &std::path::Path) -> Result<(), AudioError> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(_) => Err(AudioError::Unreadable {
            location: location.to_string(),
            reason: format!("{} is not a regular file", path.display()),
        }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Err(AudioError::NotFound {
            location: location.to_string(),
        }),
        Err(err) => Err(AudioError::Unreadable {
            location: location.to_string(),
            reason: err.to_string(),
        }),
    }
}

/// The containers a recording may come in: what phones, browsers and recorders write. Playlist
/// and reference formats (HLS, ffconcat, ...) are left out: an uploaded chunk that is a playlist
/// would otherwise make FFmpeg read other files (another session's chunks) or URLs as its audio.
const AUDIO_DEMUXERS: &str = "mov,matroska,webm,ogg,wav,w64,mp3,aac,flac,amr,amrnb,amrwb,caf,\
                              aiff,au,asf,avi,mpegts,ac3,eac3,loas,wv,ape";

/// Local files may only be read as plain files, and only as audio containers: a crafted
/// playlist cannot make FFmpeg fetch anything else.
fn local_options() -> Dictionary<'static> {
    let mut options = Dictionary::new();
    options.set("protocol_whitelist", "file");
    options.set("format_whitelist", AUDIO_DEMUXERS);
    options
}

/// A stored chunk reaches FFmpeg through our own reader: no protocol may be opened at all, and
/// only audio containers are probed.
fn stored_options() -> Dictionary<'static> {
    let mut options = Dictionary::new();
    options.set("protocol_whitelist", "none");
    options.set("format_whitelist", AUDIO_DEMUXERS);
    options
}

/// Timeouts and headers for FFmpeg's HTTP protocol; the storage servers need nothing else.
fn remote_options(opts: &AudioOptions) -> Dictionary<'static> {
    let timeout_micros = (opts.http_timeout_seconds.max(1) * 1_000_000).to_string();
    let mut options = Dictionary::new();
    options.set("protocol_whitelist", "http,https,tcp,tls");
    options.set("format_whitelist", AUDIO_DEMUXERS);
    // rw_timeout bounds every read and write; tcp's `timeout` also bounds the connect.
    options.set("rw_timeout", &timeout_micros);
    options.set("timeout", &timeout_micros);
    // FFmpeg does not check HTTPS certificates unless asked to.
    options.set("tls_verify", "1");
    let headers: String = opts
        .http_headers
        .iter()
        // A CR or LF would let a value smuggle in further headers; such a header is dropped.
        .filter(|(name, value)| !name.contains(['\r', '\n']) && !value.contains(['\r', '\n']))
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    if !headers.is_empty() {
        options.set("headers", &headers);
    }
    options
}

/// The error for a file FFmpeg could not open.
fn open_error(location: &str, source: &Source, err: FfError) -> AudioError {
    let location = location.to_string();
    match err {
        FfError::Other { errno } if errno == libc::ENOENT => AudioError::NotFound { location },
        FfError::Other { errno } if errno == libc::EACCES || errno == libc::EPERM => {
            AudioError::Unreadable {
                location,
                reason: err.to_string(),
            }
        }
        FfError::StreamNotFound => AudioError::NoAudioStream { location },
        FfError::DecoderNotFound => AudioError::Unsupported {
            location,
            codec: "unknown".into(),
        },
        FfError::DemuxerNotFound => AudioError::Corrupt {
            location,
            reason: "not a recognised audio container".into(),
        },
        _ => stream_error(location, source, err),
    }
}

/// The error for a failure while opening or reading: network trouble for remote sources,
/// damaged data otherwise.
pub(crate) fn stream_error(location: String, source: &Source, err: FfError) -> AudioError {
    // FFmpeg only saw an errno; the download's own failure says what happened.
    if let Source::Stored { failure, .. } = source {
        if let Some(storage) = failure.take() {
            return storage.into();
        }
    }
    match err {
        FfError::HttpNotFound => AudioError::NotFound { location },
        FfError::HttpUnauthorized | FfError::HttpForbidden => AudioError::Refused {
            location,
            reason: err.to_string(),
        },
        FfError::HttpBadRequest | FfError::HttpOther4xx => AudioError::Refused {
            location,
            reason: err.to_string(),
        },
        FfError::HttpServerError => AudioError::Network {
            location,
            reason: err.to_string(),
        },
        FfError::Other { errno } if errno == libc::ETIMEDOUT => AudioError::Timeout { location },
        FfError::Other { errno } if source.is_remote() && is_network_errno(errno) => {
            AudioError::Network {
                location,
                reason: err.to_string(),
            }
        }
        FfError::Exit => AudioError::Timeout { location },
        _ => AudioError::Corrupt {
            location,
            reason: err.to_string(),
        },
    }
}

/// Errno values FFmpeg's network protocols report for trouble that may pass.
fn is_network_errno(errno: i32) -> bool {
    [
        libc::EIO,
        libc::ECONNREFUSED,
        libc::ECONNRESET,
        libc::ECONNABORTED,
        libc::EHOSTUNREACH,
        libc::ENETUNREACH,
        libc::ENETDOWN,
        libc::EPIPE,
        libc::EAGAIN,
        libc::ENOTCONN,
    ]
    .contains(&errno)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_under_the_storage_root_unless_absolute_or_remote() {
        let opts = AudioOptions {
            storage_root: PathBuf::from("/srv/storage"),
            ..AudioOptions::default()
        };
        assert_eq!(
            Source::resolve("sessions/a/chunks/chunk_0000.m4a", &opts),
            Source::Local(PathBuf::from(
                "/srv/storage/sessions/a/chunks/chunk_0000.m4a"
            ))
        );
        assert_eq!(
            Source::resolve("/tmp/x.wav", &opts),
            Source::Local(PathBuf::from("/tmp/x.wav"))
        );
        assert_eq!(
            Source::resolve("file:///tmp/x.wav", &opts),
            Source::Local(PathBuf::from("/tmp/x.wav"))
        );
        assert!(Source::resolve("HTTPS://host/x.m4a", &opts).is_remote());
    }

    #[test]
    fn relative_locations_are_keys_in_the_configured_store() {
        let local = AudioOptions {
            store: Some(std::sync::Arc::new(crate::storage::Store::local(
                "/srv/chunks",
            ))),
            ..AudioOptions::default()
        };
        assert_eq!(
            Source::resolve("sessions/a/chunks/chunk_0000_1.m4a", &local),
            Source::Local(PathBuf::from(
                "/srv/chunks/sessions/a/chunks/chunk_0000_1.m4a"
            ))
        );
        let store = crate::storage::Store::supabase("https://p.supabase.co/storage/v1", "b", "k");
        let remote = AudioOptions {
            store: Some(std::sync::Arc::new(store.expect("store"))),
            ..AudioOptions::default()
        };
        assert!(matches!(
            Source::resolve("sessions/a/chunks/chunk_0000_1.m4a", &remote),
            Source::Stored { key, .. } if key == "sessions/a/chunks/chunk_0000_1.m4a"
        ));
        assert_eq!(
            Source::resolve("/tmp/x.wav", &remote),
            Source::Local(PathBuf::from("/tmp/x.wav"))
        );
        assert!(matches!(
            Source::resolve("https://cdn/x.m4a", &remote),
            Source::Remote(_)
        ));
    }

    #[test]
    fn server_errors_are_transient_and_missing_objects_permanent() {
        let remote = Source::Remote("http://h/x".into());
        assert!(matches!(
            stream_error("x".into(), &remote, FfError::HttpServerError),
            AudioError::Network { .. }
        ));
        assert!(matches!(
            stream_error("x".into(), &remote, FfError::HttpNotFound),
            AudioError::NotFound { .. }
        ));
        let refused = FfError::Other {
            errno: libc::ECONNREFUSED,
        };
        assert!(matches!(
            stream_error("x".into(), &remote, refused),
            AudioError::Network { .. }
        ));
        let local = Source::Local(PathBuf::from("/x"));
        assert!(matches!(
            stream_error("x".into(), &local, FfError::InvalidData),
            AudioError::Corrupt { .. }
        ));
    }
}
