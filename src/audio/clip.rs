//! 16 kHz mono 16-bit PCM WAV files, encoded and muxed with FFmpeg: the session's joined audio and
//! the short per-speaker clips the app plays on its claiming screen.

use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};

use ffmpeg_next::codec;
use ffmpeg_next::ffi;
use ffmpeg_next::format::context::Output;
use ffmpeg_next::format::sample::Type as SampleLayout;
use ffmpeg_next::format::Sample;
use ffmpeg_next::{frame, Packet, Rational};

use crate::pcm::Samples;

use super::{ensure_ffmpeg, AudioError, SAMPLE_RATE};

/// Samples handed to the encoder per frame.
const FRAME_SAMPLES: usize = 4096;

/// Writes at most `max_seconds` of `samples` starting at `start_seconds` to `dest` as a WAV file.
/// A clip that would start past the end of the audio is an error.
pub fn write_wav_clip(
    samples: &(impl Samples + ?Sized),
    start_seconds: f64,
    max_seconds: f64,
    dest: &Path,
) -> Result<(), AudioError> {
    let rate = f64::from(SAMPLE_RATE);
    let start = ((start_seconds.max(0.0) * rate).round() as usize).min(samples.len());
    let end = start
        .saturating_add((max_seconds.max(0.0) * rate).round() as usize)
        .min(samples.len());
    if start >= end {
        return Err(write_error(
            dest,
            format!(
                "the clip from {start_seconds:.2} s for {max_seconds:.2} s holds no audio (the audio lasts {:.2} s)",
                samples.len() as f64 / rate
            ),
        ));
    }
    write_range(samples, start..end, dest)
}

/// Writes `samples` (16 kHz mono) to `dest` as a 16-bit PCM WAV file. Parent directories are
/// created; the file appears under its name only once complete.
pub fn write_wav(samples: &(impl Samples + ?Sized), dest: &Path) -> Result<(), AudioError> {
    write_range(samples, 0..samples.len(), dest)
}

/// Writes `samples[range]` as [`write_wav`] writes the whole.
fn write_range(
    samples: &(impl Samples + ?Sized),
    range: Range<usize>,
    dest: &Path,
) -> Result<(), AudioError> {
    ensure_ffmpeg();
    if let Some(parent) = dest
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        fs::create_dir_all(parent).map_err(|err| write_error(dest, err.to_string()))?;
    }
    let partial = partial_path(dest);
    let result = encode_to(samples, range, &partial).and_then(|()| {
        fs::rename(&partial, dest).map_err(|err| write_error(dest, err.to_string()))
    });
    if result.is_err() {
        // Best effort: the partial file may not exist if opening it was what failed.
        let _ = fs::remove_file(&partial);
    }
    result
}

/// A hidden name beside `dest`, so the rename is atomic on the same file system.
fn partial_path(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "audio.wav".into());
    dest.with_file_name(format!(".{name}.partial-{}", std::process::id()))
}

fn write_error(dest: &Path, reason: String) -> AudioError {
    AudioError::Write {
        location: dest.display().to_string(),
        reason,
    }
}

fn encode_to(
    samples: &(impl Samples + ?Sized),
    range: Range<usize>,
    path: &Path,
) -> Result<(), AudioError> {
    let fail = |step: &str, err: ffmpeg_next::Error| write_error(path, format!("{step}: {err}"));
    let mut output = ffmpeg_next::format::output_as(path, "wav")
        .map_err(|err| fail("creating the file", err))?;
    let mut encoder = open_pcm_encoder().map_err(|err| fail("opening the PCM encoder", err))?;
    {
        let mut stream = output
            .add_stream(encoder.codec())
            .map_err(|err| fail("adding the audio stream", err))?;
        stream.set_parameters(&encoder);
        stream.set_time_base(encoder.time_base());
    }
    output
        .write_header()
        .map_err(|err| fail("writing the header", err))?;
    let stream_time_base = output
        .stream(0)
        .map(|stream| stream.time_base())
        .unwrap_or_else(|| encoder.time_base());
    let mut muxer = Muxer {
        output: &mut output,
        encoder: &mut encoder,
        stream_time_base,
    };

    let mut block = Vec::with_capacity(FRAME_SAMPLES);
    for (index, from) in range.clone().step_by(FRAME_SAMPLES).enumerate() {
        block.clear();
        samples.extend_i16(from..(from + FRAME_SAMPLES).min(range.end), &mut block);
        let frame = pcm_frame(&block, (index * FRAME_SAMPLES) as i64)
            .map_err(|err| fail("allocating a frame", err))?;
        muxer
            .encoder
            .send_frame(&frame)
            .map_err(|err| fail("encoding", err))?;
        muxer
            .write_packets()
            .map_err(|err| fail("writing audio", err))?;
    }
    muxer
        .encoder
        .send_eof()
        .map_err(|err| fail("finishing the encoder", err))?;
    muxer
        .write_packets()
        .map_err(|err| fail("writing audio", err))?;
    output
        .write_trailer()
        .map_err(|err| fail("writing the trailer", err))?;
    Ok(())
}

fn open_pcm_encoder() -> Result<ffmpeg_next::encoder::Audio, ffmpeg_next::Error> {
    let codec = ffmpeg_next::encoder::find(codec::Id::PCM_S16LE)
        .ok_or(ffmpeg_next::Error::EncoderNotFound)?;
    let mut encoder = codec::context::Context::new_with_codec(codec)
        .encoder()
        .audio()?;
    encoder.set_rate(SAMPLE_RATE as i32);
    encoder.set_format(Sample::I16(SampleLayout::Packed));
    encoder.set_time_base(Rational::new(1, SAMPLE_RATE as i32));
    // SAFETY: filling the channel layout of a context that is not open yet.
    unsafe { ffi::av_channel_layout_default(&mut (*encoder.as_mut_ptr()).ch_layout, 1) };
    encoder.open_as(codec)
}

/// One packed s16 mono frame holding `block`, stamped at sample `pts`.
fn pcm_frame(block: &[i16], pts: i64) -> Result<frame::Audio, ffmpeg_next::Error> {
    let mut frame = frame::Audio::empty();
    // SAFETY: the fields are set before av_frame_get_buffer sizes the buffer from them.
    unsafe {
        let raw = frame.as_mut_ptr();
        (*raw).format = ffi::AVSampleFormat::AV_SAMPLE_FMT_S16 as i32;
        (*raw).nb_samples = block.len() as i32;
        (*raw).sample_rate = SAMPLE_RATE as i32;
        ffi::av_channel_layout_default(&mut (*raw).ch_layout, 1);
        let status = ffi::av_frame_get_buffer(raw, 0);
        if status < 0 {
            return Err(ffmpeg_next::Error::from(status));
        }
    }
    frame.set_pts(Some(pts));
    let bytes = frame.data_mut(0);
    // f32 samples were scaled by 32768 (`pcm::to_i16`), as FFmpeg reads s16 back: a round
    // trip only rounds, and 16-bit samples are written as they are held.
    for (sample, target) in block.iter().zip(bytes.chunks_exact_mut(2)) {
        target.copy_from_slice(&sample.to_le_bytes());
    }
    Ok(frame)
}

/// The open output and encoder, moving encoded packets into the file.
struct Muxer<'a> {
    output: &'a mut Output,
    encoder: &'a mut ffmpeg_next::encoder::Audio,
    stream_time_base: Rational,
}

impl Muxer<'_> {
    fn write_packets(&mut self) -> Result<(), ffmpeg_next::Error> {
        let mut packet = Packet::empty();
        loop {
            match self.encoder.receive_packet(&mut packet) {
                Ok(()) => {
                    packet.set_stream(0);
                    packet.rescale_ts(self.encoder.time_base(), self.stream_time_base);
                    packet.write_interleaved(self.output)?;
                }
                Err(ffmpeg_next::Error::Eof) => return Ok(()),
                Err(ffmpeg_next::Error::Other { errno }) if errno == libc::EAGAIN => return Ok(()),
                Err(err) => return Err(err),
            }
        }
    }
}
