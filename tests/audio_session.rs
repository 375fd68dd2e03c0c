//! A session's chunks joined in chunk order, undecodable chunks skipped and reported, and chunks
//! fetched over HTTP from a small server started by the test (headers, 5xx, timeouts).

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lahstats_worker::audio::{decode_file, decode_session, AudioError, AudioOptions};
use lahstats_worker::error::{Classify, ErrorKind};
use lahstats_worker::pcm::Samples;
use lahstats_worker::session::ChunkRef;
use support::audio::*;
use tempfile::TempDir;

/// A storage root holding one session's chunks, written in different formats.
struct Storage {
    root: TempDir,
}

impl Storage {
    fn new() -> Self {
        Storage {
            root: TempDir::new().expect("temp dir"),
        }
    }

    fn opts(&self) -> AudioOptions {
        AudioOptions {
            storage_root: self.root.path().to_path_buf(),
            ..AudioOptions::default()
        }
    }

    /// Encodes `wav` as `chunk_NNNN.ext` under the session folder and returns its storage path.
    fn chunk(&self, number: i32, wav: &Path, ext: &str, codec_args: &[&str]) -> ChunkRef {
        let relative = format!("sessions/s1/chunks/chunk_{number:04}_1700000000.{ext}");
        let dest = self.root.path().join(&relative);
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        ffmpeg(wav, &dest, codec_args);
        ChunkRef {
            chunk_number: number,
            storage_path: relative,
        }
    }

    fn garbage_chunk(&self, number: i32) -> ChunkRef {
        let relative = format!("sessions/s1/chunks/chunk_{number:04}_1700000000.m4a");
        let dest = self.root.path().join(&relative);
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        std::fs::write(&dest, "upload interrupted: 502 Bad Gateway\n".repeat(50)).expect("write");
        ChunkRef {
            chunk_number: number,
            storage_path: relative,
        }
    }

    fn tone(&self, name: &str, frequency: f64) -> std::path::PathBuf {
        tone(self.root.path(), name, frequency, 1.0, 44_100, 0.5)
    }

    fn silence(&self, name: &str) -> std::path::PathBuf {
        silence(self.root.path(), name, 1.0, 44_100)
    }
}

/// The session's 16-bit samples as `f32`, as the models read them.
fn as_f32(samples: &[i16]) -> Vec<f32> {
    samples.to_f32(0..samples.len())
}

fn assert_second_is_tone(samples: &[i16], second: f64, frequency: f64) {
    let pitch = dominant_frequency(span(&as_f32(samples), second + 0.1, second + 0.9));
    assert!(
        (pitch - frequency).abs() <= 5.0,
        "second {second}: {pitch} Hz, expected {frequency} Hz"
    );
}

fn assert_second_is_silent(samples: &[i16], second: f64) {
    let level = rms(span(&as_f32(samples), second + 0.1, second + 0.9));
    assert!(level < 0.001, "second {second}: rms {level}");
}

#[test]
fn chunks_join_in_chunk_order_whatever_order_they_are_listed_in() {
    let storage = Storage::new();
    let a440 = storage.tone("a440.wav", 440.0);
    let quiet = storage.silence("quiet.wav");
    let a880 = storage.tone("a880.wav", 880.0);
    let chunk0 = storage.chunk(0, &a440, "m4a", &["-c:a", "aac"]);
    let chunk1 = storage.chunk(1, &quiet, "webm", &["-c:a", "libopus"]);
    let chunk2 = storage.chunk(2, &a880, "mp3", &["-c:a", "libmp3lame"]);

    let audio =
        decode_session(&[chunk2, chunk0, chunk1], &storage.opts()).expect("session decodes");
    assert!(audio.skipped.is_empty(), "{:?}", audio.skipped);
    assert!(
        (audio.duration_seconds() - 3.0).abs() < 0.05,
        "{} s",
        audio.duration_seconds()
    );
    let numbers: Vec<i32> = audio.chunk_offsets.iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers, [0, 1, 2]);
    for ((_, start), expected) in audio.chunk_offsets.iter().zip([0.0, 1.0, 2.0]) {
        assert!(
            (start - expected).abs() < 0.03,
            "offsets {:?}",
            audio.chunk_offsets
        );
    }
    assert_second_is_tone(&audio.samples, 0.0, 440.0);
    assert_second_is_silent(&audio.samples, 1.0);
    assert_second_is_tone(&audio.samples, 2.0, 880.0);
}

#[test]
fn a_corrupt_chunk_in_the_middle_is_skipped_and_reported() {
    let storage = Storage::new();
    let chunk0 = storage.chunk(
        0,
        &storage.tone("a440.wav", 440.0),
        "ogg",
        &["-c:a", "libopus"],
    );
    let chunk1 = storage.garbage_chunk(1);
    let chunk2 = storage.chunk(
        2,
        &storage.tone("a880.wav", 880.0),
        "flac",
        &["-c:a", "flac"],
    );

    let audio =
        decode_session(&[chunk0, chunk1, chunk2], &storage.opts()).expect("session decodes");
    assert_eq!(audio.skipped.len(), 1);
    assert_eq!(audio.skipped[0].0, 1);
    assert!(
        audio.skipped[0].1.contains("chunk_0001"),
        "{}",
        audio.skipped[0].1
    );
    let numbers: Vec<i32> = audio.chunk_offsets.iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers, [0, 2]);
    assert!(
        (audio.chunk_offsets[1].1 - 1.0).abs() < 0.03,
        "{:?}",
        audio.chunk_offsets
    );
    assert!((audio.duration_seconds() - 2.0).abs() < 0.05);
    assert_second_is_tone(&audio.samples, 0.0, 440.0);
    assert_second_is_tone(&audio.samples, 1.0, 880.0);
}

#[test]
fn a_session_with_no_decodable_chunk_fails() {
    let storage = Storage::new();
    let missing = ChunkRef {
        chunk_number: 1,
        storage_path: "sessions/s1/chunks/gone.m4a".into(),
    };
    let err = decode_session(&[storage.garbage_chunk(0), missing], &storage.opts())
        .expect_err("nothing decodes");
    assert!(
        matches!(err, AudioError::NoDecodableChunks { chunks: 2 }),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::Permanent);

    let err = decode_session(&[], &storage.opts()).expect_err("no chunks");
    assert!(
        matches!(err, AudioError::NoDecodableChunks { chunks: 0 }),
        "{err:?}"
    );
}

#[test]
fn the_length_limit_applies_to_the_whole_session() {
    let storage = Storage::new();
    let tone = storage.tone("a440.wav", 440.0);
    let chunks: Vec<ChunkRef> = (0..3)
        .map(|n| storage.chunk(n, &tone, "wav", &[]))
        .collect();
    let opts = AudioOptions {
        max_duration_seconds: 2.5,
        ..storage.opts()
    };
    let err = decode_session(&chunks, &opts).expect_err("three seconds is over the limit");
    assert!(
        matches!(err, AudioError::TooLong { seconds, max } if (seconds - 3.0).abs() < 0.01 && max == 2.5),
        "{err:?}"
    );
}

/// What the test server answers.
#[derive(Clone)]
enum Reply {
    /// The file, honouring `Range` requests (FFmpeg seeks to an m4a's index at the end).
    File(Arc<Vec<u8>>),
    Status(u16, &'static str),
    /// Reads the request and never answers.
    Silent,
    /// Promises the whole file, sends its first half and hangs up.
    Truncated(Arc<Vec<u8>>),
}

/// A one-file HTTP/1.1 server on 127.0.0.1 that records every request head it receives.
struct TestServer {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

impl TestServer {
    fn start(reply: Reply) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (reply, seen) = (reply.clone(), Arc::clone(&seen));
                std::thread::spawn(move || answer(stream, &reply, &seen));
            }
        });
        TestServer { port, requests }
    }

    fn url(&self, name: &str) -> String {
        format!(
            "http://127.0.0.1:{}/storage/v1/object/public/audio-chunks/{name}",
            self.port
        )
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("lock").clone()
    }
}

fn answer(mut stream: TcpStream, reply: &Reply, seen: &Mutex<Vec<String>>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    seen.lock().expect("lock").push(head.clone());
    // Write errors are ignored: FFmpeg hangs up as soon as it has what it wants.
    let _ = match reply {
        Reply::Silent => {
            std::thread::sleep(Duration::from_secs(5));
            Ok(())
        }
        Reply::Status(code, text) => {
            write!(
                stream,
                "HTTP/1.1 {code} {text}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
        }
        Reply::File(bytes) => send_file(&mut stream, &head, bytes),
        Reply::Truncated(bytes) => write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            bytes.len()
        )
        .and_then(|()| stream.write_all(&bytes[..bytes.len() / 2])),
    };
}

fn send_file(stream: &mut TcpStream, head: &str, bytes: &[u8]) -> std::io::Result<()> {
    let total = bytes.len();
    let range = head
        .lines()
        .find_map(|line| line.strip_prefix("Range: bytes="))
        .and_then(|spec| spec.split_once('-'))
        .map(|(from, to)| {
            let from: usize = from.trim().parse().unwrap_or(0);
            let to: usize = to.trim().parse().unwrap_or(total - 1).min(total - 1);
            (from, to)
        });
    let (status, from, to) = match range {
        Some((from, to)) if from < total => ("206 Partial Content", from, to),
        Some(_) => return write!(stream, "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{total}\r\nConnection: close\r\n\r\n"),
        None => ("200 OK", 0, total - 1),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: audio/mp4\r\nContent-Length: {}\r\nAccept-Ranges: bytes\r\n\
         Content-Range: bytes {from}-{to}/{total}\r\nConnection: close\r\n\r\n",
        to + 1 - from
    )?;
    stream.write_all(&bytes[from..=to])
}

#[test]
fn a_chunk_is_fetched_over_http_with_the_configured_headers() {
    let dir = TempDir::new().expect("temp dir");
    let wav = speech(dir.path(), "speech.wav", "Eh, you coming for makan or not?");
    // Long and dense enough (about 1 MB) that FFmpeg must seek to the index at the end of the
    // file with a Range request rather than finding it in what it has already read.
    let m4a = ffmpeg(
        &wav,
        &dir.path().join("speech.m4a"),
        &[
            "-af",
            "aloop=loop=9:size=1000000",
            "-ac",
            "2",
            "-ar",
            "48000",
            "-c:a",
            "aac",
            "-b:a",
            "320k",
        ],
    );
    let server = TestServer::start(Reply::File(Arc::new(std::fs::read(&m4a).expect("read"))));
    let opts = AudioOptions {
        http_headers: vec![
            ("apikey".into(), "service-key-123".into()),
            ("Authorization".into(), "Bearer service-key-123".into()),
        ],
        ..AudioOptions::default()
    };

    let remote = decode_file(&server.url("sessions/s1/chunks/chunk_0000.m4a"), &opts)
        .expect("decoded over http");
    let local = decode_file(m4a.to_str().expect("utf-8"), &AudioOptions::default())
        .expect("decoded locally");
    assert_eq!(remote, local, "the same bytes decode to the same samples");

    let requests = server.requests();
    // The m4a's index is at the end, so FFmpeg reads, seeks there with a Range request and back.
    assert!(requests.len() >= 2, "{requests:?}");
    assert!(
        requests.iter().any(|r| r.contains("Range: bytes=")),
        "{requests:?}"
    );
    for request in &requests {
        assert!(
            request.starts_with(
                "GET /storage/v1/object/public/audio-chunks/sessions/s1/chunks/chunk_0000.m4a"
            ),
            "{request}"
        );
        assert!(request.contains("apikey: service-key-123\r\n"), "{request}");
        assert!(
            request.contains("Authorization: Bearer service-key-123\r\n"),
            "{request}"
        );
    }
}

#[test]
fn a_server_error_is_a_transient_network_error() {
    let server = TestServer::start(Reply::Status(503, "Service Unavailable"));
    let err = decode_file(&server.url("chunk.m4a"), &AudioOptions::default()).expect_err("503");
    assert!(matches!(err, AudioError::Network { .. }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Transient);
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn a_missing_object_is_permanent_and_a_refused_connection_transient() {
    let server = TestServer::start(Reply::Status(404, "Not Found"));
    let err = decode_file(&server.url("chunk.m4a"), &AudioOptions::default()).expect_err("404");
    assert!(matches!(err, AudioError::NotFound { .. }), "{err:?}");

    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let err = decode_file(
        &format!("http://127.0.0.1:{port}/chunk.m4a"),
        &AudioOptions::default(),
    )
    .expect_err("refused");
    assert!(matches!(err, AudioError::Network { .. }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Transient);
}

#[test]
fn a_server_that_never_answers_times_out() {
    let server = TestServer::start(Reply::Silent);
    let opts = AudioOptions {
        http_timeout_seconds: 1,
        ..AudioOptions::default()
    };
    let started = Instant::now();
    let err = decode_file(&server.url("chunk.m4a"), &opts).expect_err("timeout");
    let waited = started.elapsed();
    assert!(matches!(err, AudioError::Timeout { .. }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Transient);
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "waited {waited:?}"
    );
}

#[test]
fn network_trouble_fails_the_session_instead_of_skipping_the_chunk() {
    let storage = Storage::new();
    let chunk0 = storage.chunk(0, &storage.tone("a440.wav", 440.0), "m4a", &["-c:a", "aac"]);
    let server = TestServer::start(Reply::Status(502, "Bad Gateway"));
    let chunk1 = ChunkRef {
        chunk_number: 1,
        storage_path: server.url("chunk_0001.m4a"),
    };
    let err = decode_session(&[chunk0, chunk1], &storage.opts()).expect_err("transient");
    assert!(matches!(err, AudioError::Network { .. }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Transient);
}

#[test]
fn a_download_cut_off_mid_file_is_a_transient_network_error() {
    let dir = TempDir::new().expect("temp dir");
    let wav = tone(dir.path(), "tone.wav", 440.0, 3.0, 44_100, 0.5);
    let server = TestServer::start(Reply::Truncated(Arc::new(
        std::fs::read(&wav).expect("read"),
    )));
    // The server promised more bytes than it sent: the audio may be fine, the transfer was not.
    let err = decode_file(&server.url("chunk.wav"), &AudioOptions::default()).expect_err("cut off");
    assert!(matches!(err, AudioError::Network { .. }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Transient);
}
