//! Segmentation: pyannote's segmentation-3.0 (`models/segmentation-3.0.pt`, made by
//! `scripts/models/segmentation.py`) on sliding 10 s windows, each window's output turned into
//! the activity of up to 3 local speakers per frame (see `powerset`). "Local": speaker 0 of one
//! window has nothing to do with speaker 0 of the next; the clustering links them.
//!
//! Port of the sliding-window inference of pyannote-audio's `Inference` (`core/inference.py`)
//! as `SpeakerDiarization.get_segmentations` uses it, except that the last window is aligned
//! with the end of the audio instead of zero-padded past it.

use super::powerset::{self, CLASSES, LOCAL_SPEAKERS};
use crate::inference::device::torch_error;
use crate::inference::InferenceError;
use crate::pcm::Samples;
use std::path::Path;
use tch::{CModule, Device, Kind, Tensor};

/// The model file under the models directory.
pub const MODEL_FILE: &str = "segmentation-3.0.pt";
/// Samples per window (10 s at 16 kHz), the length the model was trained on.
pub const WINDOW_SAMPLES: usize = 160_000;
/// Output frames per window.
pub const FRAMES_PER_WINDOW: usize = 589;
/// Samples between consecutive frames (16.875 ms).
pub const FRAME_STEP_SAMPLES: usize = 270;
/// Samples one frame sees (its receptive field, 61.9 ms): frame `i` of a window starting at
/// sample `s` covers `[s + 270 i, s + 270 i + 991)`.
pub const FRAME_SAMPLES: usize = 991;

/// The local speakers' activity in every window: `[windows, 589, 3]` of 0/1, row-major.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LocalActivity {
    /// First sample of each window; every window is `WINDOW_SAMPLES` long (the one window of
    /// a shorter recording is zero-padded).
    pub window_starts: Vec<usize>,
    activity: Vec<u8>,
}

impl LocalActivity {
    pub fn windows(&self) -> usize {
        self.window_starts.len()
    }

    /// Drops the windows before `from`.
    pub fn keep_from(&mut self, from: usize) {
        let from = from.min(self.windows());
        self.window_starts.drain(..from);
        self.activity
            .drain(..from * FRAMES_PER_WINDOW * LOCAL_SPEAKERS);
    }

    /// `other`'s windows after these.
    pub fn append(&mut self, other: LocalActivity) {
        self.window_starts.extend(other.window_starts);
        self.activity.extend(other.activity);
    }

    /// The 3 local speakers' activity in `frame` of `window`.
    pub fn frame(&self, window: usize, frame: usize) -> &[u8] {
        let at = (window * FRAMES_PER_WINDOW + frame) * LOCAL_SPEAKERS;
        &self.activity[at..at + LOCAL_SPEAKERS]
    }

    /// Whether local `speaker` of `window` is active in `frame`.
    pub fn active(&self, window: usize, frame: usize, speaker: usize) -> bool {
        self.frame(window, frame)[speaker] != 0
    }

    /// Whether local `speaker` is the only one active in `frame` (no overlap).
    pub fn alone(&self, window: usize, frame: usize, speaker: usize) -> bool {
        let frame = self.frame(window, frame);
        frame[speaker] != 0 && frame.iter().map(|&a| usize::from(a)).sum::<usize>() == 1
    }

    /// Index of the global output frame (on the grid of frames starting at sample 0) where
    /// `window`'s first frame falls.
    pub fn first_frame(&self, window: usize) -> usize {
        (self.window_starts[window] + FRAME_STEP_SAMPLES / 2) / FRAME_STEP_SAMPLES
    }
}

/// Where the windows start: every `step` samples while a whole window fits, then one window
/// ending at the last sample if the regular ones stop short of it. A recording shorter than a
/// window gets one window at 0. No window for no samples.
pub fn window_starts(total_samples: usize, step: usize) -> Vec<usize> {
    if total_samples == 0 {
        return Vec::new();
    }
    if total_samples <= WINDOW_SAMPLES {
        return vec![0];
    }
    let last = total_samples - WINDOW_SAMPLES;
    let mut starts: Vec<usize> = (0..=last).step_by(step.max(1)).collect();
    if starts.last() != Some(&last) {
        starts.push(last);
    }
    starts
}

/// segmentation-3.0 loaded on a device.
pub struct Segmentation {
    module: CModule,
    device: Device,
}

impl Segmentation {
    pub fn load(models_dir: &Path, device: Device) -> Result<Self, InferenceError> {
        Ok(Segmentation {
            module: crate::inference::load_torchscript(models_dir, MODEL_FILE, device)?,
            device,
        })
    }

    /// Runs the model on the windows starting at `window_starts` (samples; see
    /// [`window_starts`]) over `samples` (16 kHz mono), `batch` windows per forward pass, and
    /// keeps each frame's local speakers. Only one batch of windows is copied at a time.
    pub fn segment_windows(
        &mut self,
        samples: &(impl Samples + ?Sized),
        window_starts: Vec<usize>,
        batch: usize,
    ) -> Result<LocalActivity, InferenceError> {
        let mut activity =
            Vec::with_capacity(window_starts.len() * FRAMES_PER_WINDOW * LOCAL_SPEAKERS);
        let _no_grad = tch::no_grad_guard();
        let mut input = Vec::new();
        for starts in window_starts.chunks(batch.max(1)) {
            input.clear();
            for &start in starts {
                let end = (start + WINDOW_SAMPLES).min(samples.len());
                samples.extend_f32(start..end, &mut input);
                input.resize(input.len() + WINDOW_SAMPLES - (end - start), 0.0);
            }
            let windows = Tensor::from_slice(&input)
                .view([starts.len() as i64, 1, WINDOW_SAMPLES as i64])
                .to_device(self.device);
            let log_probs = self
                .module
                .forward_ts(&[windows])
                .map_err(torch_error)?
                .to_kind(Kind::Float)
                .to_device(Device::Cpu)
                .contiguous();
            let expected = [
                starts.len() as i64,
                FRAMES_PER_WINDOW as i64,
                CLASSES as i64,
            ];
            if log_probs.size() != expected {
                return Err(InferenceError::ModelInvalid {
                    path: MODEL_FILE.into(),
                    reason: format!("output shape {:?}, expected {expected:?}", log_probs.size()),
                });
            }
            let log_probs = Vec::<f32>::try_from(log_probs.view([-1]))?;
            powerset::to_local_speakers(&log_probs, &mut activity);
        }
        Ok(LocalActivity {
            window_starts,
            activity,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_the_recording_to_its_last_sample() {
        assert!(window_starts(0, 80_000).is_empty());
        assert_eq!(window_starts(50_000, 80_000), vec![0]);
        assert_eq!(window_starts(160_000, 80_000), vec![0]);
        assert_eq!(
            window_starts(400_000, 80_000),
            vec![0, 80_000, 160_000, 240_000]
        );
        assert_eq!(
            window_starts(410_000, 80_000),
            vec![0, 80_000, 160_000, 240_000, 250_000]
        );
    }
}
