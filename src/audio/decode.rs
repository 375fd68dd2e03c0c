//! One audio file to 16 kHz mono `f32`: demux packet by packet, decode, resample in blocks, and
//! tell damaged, empty, over-long and unreachable audio apart.

use ffmpeg_next::codec;
use ffmpeg_next::ffi;
use ffmpeg_next::format::context::Input;
use ffmpeg_next::frame;
use ffmpeg_next::media::Type;
use ffmpeg_next::{Error as FfError, Packet, Rational};

use crate::pcm::SampleSink;

use super::resample::MonoResampler;
use super::source::{open_input, stream_error, Source};
use super::{AudioError, AudioOptions, SAMPLE_RATE};

/// Some codecs emit a little more than the container promises (priming, frame padding); the
/// mid-stream length check allows this much before calling a file over-long.
const LENGTH_SLACK_SECONDS: f64 = 1.0;

/// An isolated damaged packet is dropped like the ffmpeg CLI does; past one in twenty the file is
/// called corrupt rather than silently losing audio.
const MAX_BAD_PACKET_SHARE: usize = 20;

/// How much audio the caller still accepts, and how much came before (for the error message).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LengthLimit {
    pub(crate) max_seconds: f64,
    pub(crate) before_seconds: f64,
}

impl LengthLimit {
    fn too_long(&self, seconds: f64) -> AudioError {
        AudioError::TooLong {
            seconds: self.before_seconds + seconds,
            max: self.max_seconds,
        }
    }

    fn remaining_seconds(&self) -> f64 {
        self.max_seconds - self.before_seconds
    }
}

/// Decodes the audio at `location` (a path under the storage root, an absolute path or an
/// HTTP(S) URL) to 16 kHz mono `f32` samples. A session is decoded by
/// [`super::decode_session`], which holds its audio as 16-bit PCM.
pub fn decode_file(location: &str, opts: &AudioOptions) -> Result<Vec<f32>, AudioError> {
    let mut samples = Vec::new();
    let limit = LengthLimit {
        max_seconds: opts.max_duration_seconds,
        before_seconds: 0.0,
    };
    decode_into(location, opts, limit, &mut samples)?;
    Ok(samples)
}

/// Decodes `location` onto the end of `out` and returns how many samples it added. On error `out`
/// is left as it was.
pub(crate) fn decode_into(
    location: &str,
    opts: &AudioOptions,
    limit: LengthLimit,
    out: &mut dyn SampleSink,
) -> Result<usize, AudioError> {
    let start = out.len();
    let result = decode_stream(location, opts, limit, out);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn decode_stream(
    location: &str,
    opts: &AudioOptions,
    limit: LengthLimit,
    out: &mut dyn SampleSink,
) -> Result<usize, AudioError> {
    let (source, mut input) = open_input(location, opts)?;
    let stream = input
        .streams()
        .best(Type::Audio)
        .ok_or_else(|| AudioError::NoAudioStream {
            location: location.to_string(),
        })?;
    let stream_index = stream.index();
    let declared_seconds = container_seconds(&input);
    if let Some(seconds) = declared_seconds {
        if seconds > limit.remaining_seconds() {
            return Err(limit.too_long(seconds));
        }
    }
    // No reservation from `declared_seconds`: a header may claim hours that are not there (a
    // 1 s FLAC claiming 4 h reserved 0.9 GB before its first packet). `out` grows with what is
    // decoded; large reallocations move pages (mremap) rather than copy them.
    let decoder = open_decoder(location, &stream)?;
    let time_base = stream.time_base();
    let max_samples =
        ((limit.remaining_seconds() + LENGTH_SLACK_SECONDS) * f64::from(SAMPLE_RATE)) as usize;
    let mut state = StreamDecoder::new(location, decoder, time_base, out, max_samples, limit);

    loop {
        let Some(packet) = next_packet(&mut input, location, &source)? else {
            break;
        };
        if packet.stream() == stream_index {
            state.feed(&packet)?;
        }
    }
    check_io_error(location, &source, &input)?;
    let decoded = state.finish()?;
    warn_if_short(location, decoded, declared_seconds);
    Ok(decoded)
}

/// Float PCM (WAV, CAF, AIFF-C) can carry NaN or infinite samples, which FFmpeg passes through
/// and which would turn every model output into NaN: they become silence. Returns how many.
fn silence_non_finite(samples: &mut [f32]) -> usize {
    let mut replaced = 0usize;
    for sample in samples.iter_mut().filter(|s| !s.is_finite()) {
        *sample = 0.0;
        replaced += 1;
    }
    replaced
}

/// The container's stated duration, when it states one.
fn container_seconds(input: &Input) -> Option<f64> {
    let duration = input.duration();
    (duration != ffi::AV_NOPTS_VALUE && duration > 0)
        .then(|| duration as f64 / f64::from(ffi::AV_TIME_BASE))
}

fn open_decoder(
    location: &str,
    stream: &ffmpeg_next::format::stream::Stream,
) -> Result<ffmpeg_next::decoder::Audio, AudioError> {
    let parameters = stream.parameters();
    let codec_name = parameters.id().name().to_string();
    let unsupported = || AudioError::Unsupported {
        location: location.to_string(),
        codec: codec_name.clone(),
    };
    if ffmpeg_next::decoder::find(parameters.id()).is_none() {
        return Err(unsupported());
    }
    let mut context = codec::context::Context::from_parameters(parameters).map_err(|err| {
        AudioError::Corrupt {
            location: location.to_string(),
            reason: format!("unreadable codec parameters: {err}"),
        }
    })?;
    // Decoders use the packet time base to apply the container's trimming of codec padding.
    // SAFETY: setting a plain field on a context that is not open yet.
    unsafe { (*context.as_mut_ptr()).pkt_timebase = stream.time_base().into() };
    context.decoder().audio().map_err(|err| match err {
        FfError::DecoderNotFound => unsupported(),
        other => AudioError::Corrupt {
            location: location.to_string(),
            reason: format!("the {codec_name} decoder rejected the stream: {other}"),
        },
    })
}

/// A network read that failed mid-file can look like a clean end of file to the demuxer; the
/// I/O context still remembers the error.
/// The next packet of the input, or None at its end.
fn next_packet(
    input: &mut Input,
    location: &str,
    source: &Source,
) -> Result<Option<Packet>, AudioError> {
    // A fresh packet each time: `Packet::read` (av_read_frame) does not unref the packet it is
    // given, so reusing one leaked every packet's data and side data but the last.
    let mut packet = Packet::empty();
    match packet.read(input) {
        Ok(()) => Ok(Some(packet)),
        Err(FfError::Eof) => Ok(None),
        Err(err) => Err(stream_error(location.to_string(), source, err)),
    }
}

fn check_io_error(location: &str, source: &Source, input: &Input) -> Result<(), AudioError> {
    // SAFETY: reading the error field of the input's own, still open I/O context.
    let io_error = unsafe {
        let io = (*input.as_ptr()).pb;
        if io.is_null() {
            0
        } else {
            (*io).error
        }
    };
    if io_error < 0 && io_error != ffi::AVERROR_EOF {
        return Err(stream_error(
            location.to_string(),
            source,
            FfError::from(io_error),
        ));
    }
    Ok(())
}

fn warn_if_short(location: &str, decoded: usize, declared_seconds: Option<f64>) {
    let decoded_seconds = decoded as f64 / f64::from(SAMPLE_RATE);
    if let Some(declared) = declared_seconds {
        if decoded_seconds + 0.5 < declared * 0.9 {
            log::warn!(
                "{location}: decoded {decoded_seconds:.1} s of the {declared:.1} s the file declares; \
                 it was probably cut short during upload, keeping what is there"
            );
        }
    }
}

/// The decoder, the resampler and the bookkeeping for one stream.
struct StreamDecoder<'a> {
    location: &'a str,
    decoder: ffmpeg_next::decoder::Audio,
    codec: codec::Id,
    /// The stream's time base, in which packet durations are given.
    time_base: Rational,
    resampler: Option<MonoResampler>,
    frame: frame::Audio,
    /// What the resampler gave for the current frame, before it goes into `out`.
    resampled: Vec<f32>,
    out: &'a mut dyn SampleSink,
    start: usize,
    /// NaN or infinite samples turned into silence so far.
    non_finite: usize,
    max_samples: usize,
    limit: LengthLimit,
    packets: usize,
    bad_packets: usize,
    comfort_noise_packets: usize,
    first_error: Option<String>,
}

impl<'a> StreamDecoder<'a> {
    fn new(
        location: &'a str,
        decoder: ffmpeg_next::decoder::Audio,
        time_base: Rational,
        out: &'a mut dyn SampleSink,
        max_samples: usize,
        limit: LengthLimit,
    ) -> Self {
        let start = out.len();
        StreamDecoder {
            location,
            codec: decoder.id(),
            decoder,
            time_base,
            resampler: None,
            frame: frame::Audio::empty(),
            resampled: Vec::new(),
            out,
            start,
            non_finite: 0,
            max_samples,
            limit,
            packets: 0,
            bad_packets: 0,
            comfort_noise_packets: 0,
            first_error: None,
        }
    }

    fn feed(&mut self, packet: &Packet) -> Result<(), AudioError> {
        self.packets += 1;
        if is_comfort_noise(self.codec, packet) {
            self.comfort_noise_packets += 1;
            return self.fill_gap(packet);
        }
        if let Err(err) = self.decoder.send_packet(packet) {
            self.note_bad_packet(err);
            self.fill_gap(packet)?;
        }
        self.receive_frames()
    }

    /// Silence for as long as a packet that gave no audio lasts, so later audio keeps its time.
    fn fill_gap(&mut self, packet: &Packet) -> Result<(), AudioError> {
        let seconds = seconds_of(packet.duration().max(0), self.time_base);
        match self.resampler.as_mut() {
            Some(resampler) => resampler
                .inject_silence(seconds)
                .map_err(|reason| corrupt(self.location, reason))?,
            // Nothing is buffered yet, so the silence can go straight into the output.
            None => self
                .out
                .extend_silence((seconds * f64::from(SAMPLE_RATE)).round() as usize),
        }
        self.check_length()
    }

    /// Flushes decoder and resampler and returns how many samples the stream produced.
    fn finish(mut self) -> Result<usize, AudioError> {
        // Sending EOF twice is the only way this fails; the decoder has seen it once.
        let _ = self.decoder.send_eof();
        self.receive_frames()?;
        if let Some(resampler) = self.resampler.as_mut() {
            resampler
                .drain(&mut self.resampled)
                .map_err(|reason| corrupt(self.location, reason))?;
            self.emit();
        }
        if self.non_finite > 0 {
            log::warn!(
                "{}: {} samples were NaN or infinite; they are silence now",
                self.location,
                self.non_finite
            );
        }
        let decoded = self.out.len() - self.start;
        let first_error = self.first_error.take().unwrap_or_default();
        if self.bad_packets > 0
            && (decoded == 0 || self.bad_packets > (self.packets / MAX_BAD_PACKET_SHARE).max(1))
        {
            let reason = format!(
                "{} of {} packets failed to decode, first: {first_error}",
                self.bad_packets, self.packets
            );
            return Err(corrupt(self.location, reason));
        }
        if self.bad_packets > 0 {
            log::warn!(
                "{}: dropped {} damaged packet(s) of {} ({first_error}); the rest decoded",
                self.location,
                self.bad_packets,
                self.packets
            );
        }
        if self.comfort_noise_packets > 0 {
            log::debug!(
                "{}: {} AMR comfort-noise frames stood in for by silence",
                self.location,
                self.comfort_noise_packets
            );
        }
        if decoded == 0 {
            return Err(AudioError::Empty {
                location: self.location.to_string(),
            });
        }
        self.check_length()?;
        Ok(decoded)
    }

    fn receive_frames(&mut self) -> Result<(), AudioError> {
        loop {
            match self.decoder.receive_frame(&mut self.frame) {
                Ok(()) => self.resample_frame()?,
                Err(FfError::Eof) => return Ok(()),
                Err(FfError::Other { errno }) if errno == libc::EAGAIN => return Ok(()),
                Err(err) => {
                    self.note_bad_packet(err);
                    return Ok(());
                }
            }
        }
    }

    fn resample_frame(&mut self) -> Result<(), AudioError> {
        if self.frame.samples() == 0 {
            return Ok(());
        }
        // A stream may change rate or layout mid-way (chained Ogg, HE-AAC switching): finish the
        // old resampler's tail and start a new one.
        if let Some(resampler) = self.resampler.as_mut() {
            if !resampler.accepts(&self.frame) {
                resampler
                    .drain(&mut self.resampled)
                    .map_err(|reason| corrupt(self.location, reason))?;
                self.resampler = None;
                self.emit();
            }
        }
        let resampler = match self.resampler.as_mut() {
            Some(resampler) => resampler,
            None => self.resampler.insert(
                MonoResampler::for_frame(&self.frame, self.location)
                    .map_err(|reason| corrupt(self.location, reason))?,
            ),
        };
        resampler
            .push(&self.frame, &mut self.resampled)
            .map_err(|reason| corrupt(self.location, reason))?;
        self.emit();
        self.check_length()
    }

    /// Moves what the resampler gave into `out` (NaN and infinities as silence).
    fn emit(&mut self) {
        self.non_finite += silence_non_finite(&mut self.resampled);
        self.out.extend_from_f32(&self.resampled);
        self.resampled.clear();
    }

    fn check_length(&self) -> Result<(), AudioError> {
        let decoded = self.out.len() - self.start;
        if decoded > self.max_samples {
            return Err(self.limit.too_long(decoded as f64 / f64::from(SAMPLE_RATE)));
        }
        Ok(())
    }

    fn note_bad_packet(&mut self, err: FfError) {
        self.bad_packets += 1;
        if self.first_error.is_none() {
            self.first_error = Some(err.to_string());
        }
    }
}

/// AMR's discontinuous transmission: SID and NO_DATA frames stand for silence between words,
/// and FFmpeg's AMR decoders do not implement them ("dtx mode is not implemented").
fn is_comfort_noise(codec: codec::Id, packet: &Packet) -> bool {
    let Some(&header) = packet.data().and_then(|data| data.first()) else {
        return false;
    };
    let frame_type = (header >> 3) & 0x0f;
    match codec {
        codec::Id::AMR_NB => matches!(frame_type, 8 | 14 | 15),
        codec::Id::AMR_WB => matches!(frame_type, 9 | 14 | 15),
        _ => false,
    }
}

fn corrupt(location: &str, reason: String) -> AudioError {
    AudioError::Corrupt {
        location: location.to_string(),
        reason,
    }
}

/// The duration of the audio at `location` in seconds: the container's own figure, else the
/// audio stream's, else the end of its last packet (WebM from a browser's MediaRecorder states
/// none). Nothing is decoded.
pub fn probe_duration(location: &str, opts: &AudioOptions) -> Result<f64, AudioError> {
    let (source, mut input) = open_input(location, opts)?;
    let stream = input
        .streams()
        .best(Type::Audio)
        .ok_or_else(|| AudioError::NoAudioStream {
            location: location.to_string(),
        })?;
    if let Some(seconds) = container_seconds(&input) {
        return Ok(seconds);
    }
    let (stream_index, time_base) = (stream.index(), stream.time_base());
    if stream.duration() > 0 && stream.duration() != ffi::AV_NOPTS_VALUE {
        return Ok(seconds_of(stream.duration(), time_base));
    }
    let mut first_pts: Option<i64> = None;
    let mut end_pts: Option<i64> = None;
    loop {
        let Some(packet) = next_packet(&mut input, location, &source)? else {
            break;
        };
        if packet.stream() != stream_index {
            continue;
        }
        if let Some(pts) = packet.pts() {
            first_pts = Some(first_pts.map_or(pts, |first| first.min(pts)));
            let end = pts + packet.duration().max(0);
            end_pts = Some(end_pts.map_or(end, |last| last.max(end)));
        }
    }
    check_io_error(location, &source, &input)?;
    // Negative timestamps are codec priming (Opus pre-skip) that decoding drops.
    match (first_pts, end_pts) {
        (Some(first), Some(end)) if end > first.max(0) => {
            Ok(seconds_of(end - first.max(0), time_base))
        }
        _ => Err(AudioError::Empty {
            location: location.to_string(),
        }),
    }
}

fn seconds_of(ticks: i64, time_base: Rational) -> f64 {
    ticks as f64 * f64::from(time_base.numerator()) / f64::from(time_base.denominator())
}
