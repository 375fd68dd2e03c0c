//! Speech activity with Silero VAD: speech probabilities for every 512-sample frame of 16 kHz
//! audio, turned into speech regions exactly as silero-vad's `get_speech_timestamps` does.
//!
//! `models/silero_vad.pt` (scripts/models/silero_vad.py) is Silero's own network wrapped so one
//! call takes a whole chunk of frames: the stateless front end runs on all of them in one batch
//! and only the LSTM cell steps frame by frame, carrying its state (and 64 samples of context)
//! from chunk to chunk. That gives the per-frame loop's probabilities at a fraction of its cost.

mod timestamps;

use super::device::torch_error;
use super::InferenceError;
use crate::pcm::Samples;
use std::path::Path;
use std::time::Instant;
use tch::{CModule, Device, IValue, Kind, Tensor};

pub use timestamps::speech_regions;

/// Silero's sample rate and frame size.
pub const SAMPLE_RATE: usize = 16_000;
pub const FRAME_SAMPLES: usize = 512;
const CONTEXT_SAMPLES: i64 = 64;
const STATE_SIZE: i64 = 128;
/// Frames per call: 60 s of audio, a batch big enough to amortise the call and small enough
/// that the front end's activations stay in the tens of megabytes.
const FRAMES_PER_CALL: usize = 1875;
/// The model file under the models directory.
pub const MODEL_FILE: &str = "silero_vad.pt";

/// A stretch of speech, in seconds from the start of the audio.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpeechRegion {
    pub start: f64,
    pub end: f64,
}

impl SpeechRegion {
    pub fn duration(&self) -> f64 {
        self.end - self.start
    }
}

/// `get_speech_timestamps`' parameters, with its defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct VadOptions {
    /// A frame whose probability reaches this starts (or continues) speech.
    pub threshold: f32,
    /// Inside speech, a frame below this counts as silence (silero: threshold − 0.15).
    pub neg_threshold: f32,
    /// Speech shorter than this is dropped.
    pub min_speech_ms: u32,
    /// Silence must last this long to end a region.
    pub min_silence_ms: u32,
    /// Regions are widened by this much on each side (less where two regions nearly touch).
    pub speech_pad_ms: u32,
}

impl Default for VadOptions {
    fn default() -> Self {
        VadOptions::with_threshold(0.5)
    }
}

impl VadOptions {
    /// The defaults around another threshold, with silero's neg_threshold = max(t − 0.15, 0.01).
    pub fn with_threshold(threshold: f32) -> Self {
        VadOptions {
            threshold,
            neg_threshold: (threshold - 0.15).max(0.01),
            min_speech_ms: 250,
            min_silence_ms: 100,
            speech_pad_ms: 30,
        }
    }
}

/// Silero VAD of a recording as it grows: the speech probability of every frame so far and
/// the model's context and state after the last one (empty: zeros, nothing heard yet).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VadStream {
    /// One per 512-sample frame from the recording's start.
    pub probabilities: Vec<f32>,
    context: Vec<f32>,
    state: Vec<f32>,
}

impl VadStream {
    /// Samples the probabilities cover (a zero-padded last frame counts whole).
    pub fn samples_done(&self) -> usize {
        self.probabilities.len() * FRAME_SAMPLES
    }

    /// The frames from `frame` on, with the state after them: what a step added.
    pub fn since(&self, frame: usize) -> VadStream {
        VadStream {
            probabilities: self.probabilities[frame.min(self.probabilities.len())..].to_vec(),
            context: self.context.clone(),
            state: self.state.clone(),
        }
    }

    /// `later`'s frames after these, and its state.
    pub fn append(&mut self, later: VadStream) {
        self.probabilities.extend(later.probabilities);
        self.context = later.context;
        self.state = later.state;
    }
}

/// Silero VAD loaded on a device.
pub struct SileroVad {
    module: CModule,
    device: Device,
}

impl SileroVad {
    /// Loads `silero_vad.pt` from the models directory onto the device.
    pub fn load(models_dir: &Path, device: Device) -> Result<Self, InferenceError> {
        let module = super::load_torchscript(models_dir, MODEL_FILE, device)?;
        Ok(SileroVad { module, device })
    }

    /// The speech probability of every 512-sample frame (the last one zero-padded).
    pub fn frame_probabilities(
        &mut self,
        samples: &(impl Samples + ?Sized),
    ) -> Result<Vec<f32>, InferenceError> {
        let mut stream = VadStream::default();
        self.advance(&mut stream, samples, true)?;
        Ok(stream.probabilities)
    }

    /// Goes on with `stream` over `samples` (the whole recording so far; only the frames from
    /// `stream.samples_done()` are read): every whole frame, and with `last` the zero-padded
    /// rest. The model carries its state from frame to frame, so a recording fed as it grows
    /// gets the probabilities it gets in one call.
    pub fn advance(
        &mut self,
        stream: &mut VadStream,
        samples: &(impl Samples + ?Sized),
        last: bool,
    ) -> Result<(), InferenceError> {
        let _no_grad = tch::no_grad_guard();
        let options = (Kind::Float, self.device);
        let restore = |values: &[f32], shape: &[i64]| {
            if values.is_empty() {
                Tensor::zeros(shape, options)
            } else {
                Tensor::from_slice(values)
                    .view(shape)
                    .to_device(self.device)
            }
        };
        let mut context = restore(&stream.context, &[CONTEXT_SAMPLES]);
        let mut state = restore(&stream.state, &[2, STATE_SIZE]);
        let end = if last {
            samples.len()
        } else {
            samples.len() / FRAME_SAMPLES * FRAME_SAMPLES
        };
        let mut chunk = Vec::with_capacity(FRAMES_PER_CALL * FRAME_SAMPLES);
        let mut from = stream.samples_done();
        while from < end {
            chunk.clear();
            samples.extend_f32(
                from..(from + FRAMES_PER_CALL * FRAME_SAMPLES).min(end),
                &mut chunk,
            );
            from += chunk.len();
            let mut input = Tensor::from_slice(&chunk);
            let padding = (FRAME_SAMPLES - chunk.len() % FRAME_SAMPLES) % FRAME_SAMPLES;
            if padding > 0 {
                input = input
                    .f_constant_pad_nd([0, padding as i64])
                    .map_err(torch_error)?;
            }
            let inputs = [
                IValue::Tensor(input.to_device(self.device)),
                IValue::Tensor(context),
                IValue::Tensor(state),
            ];
            let output = self.module.forward_is(&inputs).map_err(torch_error)?;
            let (probs, next_context, next_state) = unpack_output(output)?;
            stream
                .probabilities
                .extend(Vec::<f32>::try_from(probs.to_device(Device::Cpu))?);
            context = next_context;
            state = next_state;
        }
        stream.context = Vec::<f32>::try_from(context.to_device(Device::Cpu).view([-1]))?;
        stream.state = Vec::<f32>::try_from(state.to_device(Device::Cpu).view([-1]))?;
        Ok(())
    }

    /// Speech regions of 16 kHz mono audio.
    pub fn detect(
        &mut self,
        samples: &(impl Samples + ?Sized),
        opts: &VadOptions,
    ) -> Result<Vec<SpeechRegion>, InferenceError> {
        let started = Instant::now();
        let probabilities = self.frame_probabilities(samples)?;
        let regions = speech_regions(&probabilities, samples.len(), opts);
        log::debug!(
            "vad: {:.1} s of audio, {} speech regions in {:.2} s",
            samples.len() as f64 / SAMPLE_RATE as f64,
            regions.len(),
            started.elapsed().as_secs_f64()
        );
        Ok(regions)
    }
}

fn unpack_output(output: IValue) -> Result<(Tensor, Tensor, Tensor), InferenceError> {
    let invalid = || InferenceError::ModelInvalid {
        path: MODEL_FILE.into(),
        reason:
            "its forward must return (probabilities, context, state); rerun scripts/prepare-models"
                .into(),
    };
    match output {
        IValue::Tuple(values) if values.len() == 3 => {
            let mut tensors = values.into_iter().map(|value| match value {
                IValue::Tensor(tensor) => Ok(tensor),
                _ => Err(invalid()),
            });
            let mut next = || tensors.next().unwrap_or_else(|| Err(invalid()));
            Ok((next()?, next()?, next()?))
        }
        _ => Err(invalid()),
    }
}
