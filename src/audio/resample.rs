//! swresample from whatever a decoder produces to 16 kHz `f32` (the channels kept), then a
//! downmix to mono that cannot cancel (`downmix.rs`), written into the caller's buffer.
//!
//! This talks to libswresample directly because ffmpeg-next's wrapper sizes its output frame by
//! the input's sample count, which cannot hold the output when upsampling (8 kHz AMR → 16 kHz),
//! and uses the pre-5.1 channel-mask API that loses unusual channel orders.

use std::ptr;

use ffmpeg_next::ffi;
use ffmpeg_next::frame;

use super::downmix::Downmix;
use super::SAMPLE_RATE;

/// The input side of a resampler: a decoded frame's sample format, channel layout and rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct InputShape {
    format: i32,
    channels: i32,
    layout_mask: u64,
    rate: i32,
}

/// One swresample context converting one input shape to 16 kHz `f32` (interleaved, the
/// input's channels), and the downmix of those channels to mono.
pub(crate) struct MonoResampler {
    context: *mut ffi::SwrContext,
    shape: InputShape,
    /// Interleaved output of swresample before the downmix.
    interleaved: Vec<f32>,
    downmix: Downmix,
}

impl Drop for MonoResampler {
    fn drop(&mut self) {
        // SAFETY: `context` was allocated by swr_alloc_set_opts2 and is freed only here.
        unsafe { ffi::swr_free(&mut self.context) };
    }
}

impl MonoResampler {
    /// A resampler for frames shaped like `frame` of the file at `location` (for warnings).
    pub(crate) fn for_frame(frame: &frame::Audio, location: &str) -> Result<Self, String> {
        let shape = shape_of(frame);
        // SAFETY: every pointer passed is either valid for the call or checked before use.
        unsafe {
            let mut in_layout = input_layout(frame);
            // The same channels out: the downmix to mono is ours (see `downmix.rs`).
            let mut out_layout: ffi::AVChannelLayout = std::mem::zeroed();
            if ffi::av_channel_layout_copy(&mut out_layout, &in_layout) < 0 {
                ffi::av_channel_layout_default(&mut out_layout, in_layout.nb_channels.max(1));
            }
            let channels = out_layout.nb_channels.max(1) as usize;
            let mut context = ptr::null_mut();
            let status = ffi::swr_alloc_set_opts2(
                &mut context,
                &mut out_layout,
                ffi::AVSampleFormat::AV_SAMPLE_FMT_FLT,
                SAMPLE_RATE as i32,
                &mut in_layout,
                std::mem::transmute::<i32, ffi::AVSampleFormat>(shape.format),
                shape.rate,
                0,
                ptr::null_mut(),
            );
            ffi::av_channel_layout_uninit(&mut in_layout);
            ffi::av_channel_layout_uninit(&mut out_layout);
            if status < 0 || context.is_null() {
                return Err(format!(
                    "cannot set up the resampler: {}",
                    ffmpeg_next::Error::from(status)
                ));
            }
            // Owned from here on, so every early return below frees the context.
            let resampler = MonoResampler {
                context,
                shape,
                interleaved: Vec::new(),
                downmix: Downmix::new(channels, location),
            };
            let status = ffi::swr_init(resampler.context);
            if status < 0 {
                return Err(format!(
                    "cannot start the resampler: {}",
                    ffmpeg_next::Error::from(status)
                ));
            }
            Ok(resampler)
        }
    }

    /// Whether `frame` can go through this resampler, or its shape changed mid-stream.
    pub(crate) fn accepts(&self, frame: &frame::Audio) -> bool {
        shape_of(frame) == self.shape
    }

    /// Resamples `frame` and appends what comes out to `out`.
    pub(crate) fn push(&mut self, frame: &frame::Audio, out: &mut Vec<f32>) -> Result<(), String> {
        let in_count = frame.samples() as i32;
        // SAFETY: the frame's extended_data holds `in_count` samples per plane in the frame's
        // own format, which is the shape this context was built for (checked by the caller).
        unsafe {
            let data = (*frame.as_ptr()).extended_data as *mut *const u8;
            self.convert(data, in_count, out).map(|_| ())
        }
    }

    /// Feeds `seconds` of silence in place of audio that could not be decoded, so what follows
    /// keeps its place in time. It comes out with the next push or drain.
    pub(crate) fn inject_silence(&mut self, seconds: f64) -> Result<(), String> {
        let count = (seconds * f64::from(self.shape.rate)).round() as i32;
        if count <= 0 {
            return Ok(());
        }
        // SAFETY: the context is initialised; swresample buffers the silence internally.
        let status = unsafe { ffi::swr_inject_silence(self.context, count) };
        if status < 0 {
            return Err(format!(
                "resampler failed: {}",
                ffmpeg_next::Error::from(status)
            ));
        }
        Ok(())
    }

    /// Appends what the resampler and the downmix still hold (filter delay, a part block) to
    /// `out`.
    pub(crate) fn drain(&mut self, out: &mut Vec<f32>) -> Result<(), String> {
        loop {
            // SAFETY: a null input with count 0 asks swresample to flush.
            let written = unsafe { self.convert(ptr::null_mut(), 0, out)? };
            if written == 0 {
                self.downmix.flush(out);
                return Ok(());
            }
        }
    }

    /// Converts `in_count` input samples per channel, downmixes them onto `out` and returns
    /// how many samples per channel swresample wrote.
    unsafe fn convert(
        &mut self,
        input: *mut *const u8,
        in_count: i32,
        out: &mut Vec<f32>,
    ) -> Result<usize, String> {
        let capacity = ffi::swr_get_out_samples(self.context, in_count);
        if capacity < 0 {
            return Err(format!(
                "resampler failed: {}",
                ffmpeg_next::Error::from(capacity)
            ));
        }
        if capacity == 0 && in_count == 0 {
            return Ok(0);
        }
        let channels = self.shape_channels();
        self.interleaved.clear();
        self.interleaved.reserve(capacity as usize * channels);
        // Packed f32: one plane of interleaved channels, written into the scratch buffer.
        let mut target = self.interleaved.as_mut_ptr().cast::<u8>();
        let written = ffi::swr_convert(self.context, &mut target, capacity, input, in_count);
        if written < 0 {
            return Err(format!(
                "resampler failed: {}",
                ffmpeg_next::Error::from(written)
            ));
        }
        self.interleaved.set_len(written as usize * channels);
        self.downmix.push(&self.interleaved, out);
        Ok(written as usize)
    }

    fn shape_channels(&self) -> usize {
        self.shape.channels.max(1) as usize
    }
}

fn shape_of(frame: &frame::Audio) -> InputShape {
    // SAFETY: reading plain fields of a valid frame.
    unsafe {
        let raw = &*frame.as_ptr();
        let native = raw.ch_layout.order == ffi::AVChannelOrder::AV_CHANNEL_ORDER_NATIVE;
        InputShape {
            format: raw.format,
            channels: raw.ch_layout.nb_channels,
            layout_mask: if native { raw.ch_layout.u.mask } else { 0 },
            rate: raw.sample_rate,
        }
    }
}

/// The frame's channel layout, or the default one for its channel count when the file left the
/// layout unspecified (common in WAV files).
unsafe fn input_layout(frame: &frame::Audio) -> ffi::AVChannelLayout {
    let raw = &*frame.as_ptr();
    let mut layout: ffi::AVChannelLayout = std::mem::zeroed();
    if raw.ch_layout.order == ffi::AVChannelOrder::AV_CHANNEL_ORDER_UNSPEC
        || ffi::av_channel_layout_copy(&mut layout, &raw.ch_layout) < 0
    {
        ffi::av_channel_layout_default(&mut layout, raw.ch_layout.nb_channels.max(1));
    }
    layout
}
