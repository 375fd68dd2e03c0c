//! Embeddings: one CAM++ speaker embedding (`models/campplus.pt`, made by
//! `scripts/models/campplus.py`; Kaldi fbank front end inside) per local turn: each stretch of
//! a window where one local speaker talks without a break.
//!
//! pyannote 3.1 embeds each (window, local speaker) once, running the whole window through its
//! embedding network with statistics pooling weighted by that speaker's frames, frames of
//! overlap left out (`embedding_exclude_overlap`). Two changes here, both measured:
//! - The speaker's own samples are cut out of the window (the frames where it speaks alone, or
//!   all of the turn's frames when those are too few) and joined, and CAM++ runs on those: the
//!   issue's Python trial found this better than both zeroing the other samples and pooling only
//!   the speaker's frames. CAM++ costs time in proportion to its input, so embedding every
//!   speaker's own part costs about one pass over the window's speech.
//! - One embedding per *turn* rather than per local speaker: segmentation-3.0 sometimes gives two
//!   voices that take turns in a window the same local speaker (two of flite's CMU ARCTIC voices
//!   in 10 s of alternating sentences; AMI ES2003b's two speakers in its first window), and one
//!   embedding of both voices pulls the clustering towards one speaker. A pause between turns is
//!   where such a merge shows, so each turn is embedded and clustered on its own.

use super::segmentation::{LocalActivity, FRAMES_PER_WINDOW, FRAME_SAMPLES, FRAME_STEP_SAMPLES};
use crate::inference::device::torch_error;
use crate::inference::InferenceError;
use std::path::Path;
use tch::{CModule, Device, Kind, Tensor};

/// The model file under the models directory.
pub const MODEL_FILE: &str = "campplus.pt";
/// Size of one embedding.
pub const EMBEDDING_SIZE: usize = 192;
/// The samples a frame stands for when a speaker's audio is cut out: the middle `FRAME_STEP`
/// of its receptive field, so consecutive frames tile the audio without overlap.
const FRAME_CENTRE_OFFSET: usize = (FRAME_SAMPLES - FRAME_STEP_SAMPLES) / 2;

/// One local speaker's turn inside one window (a run of frames where it talks without a
/// break), with its embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalTurn {
    pub window: usize,
    /// Local speaker index (0–2).
    pub speaker: usize,
    /// Frames `[first, past)` of the window.
    pub first: usize,
    pub past: usize,
    /// Frames of the turn where this speaker talks alone.
    pub clean_frames: usize,
    /// L2-normalised, `EMBEDDING_SIZE` long; `None` when the turn is too short to embed.
    pub vector: Option<Vec<f32>>,
}

/// CAM++ loaded on a device.
pub struct SpeakerEmbedding {
    module: CModule,
    device: Device,
}

impl SpeakerEmbedding {
    pub fn load(models_dir: &Path, device: Device) -> Result<Self, InferenceError> {
        Ok(SpeakerEmbedding {
            module: crate::inference::load_torchscript(models_dir, MODEL_FILE, device)?,
            device,
        })
    }

    /// The L2-normalised embedding of `samples` (16 kHz mono, at least 400).
    ///
    /// Call it with the TorchScript graph optimiser off (`Diarizer::diarize` does): with it on,
    /// every new input length is profiled and re-optimised, 5–10× slower per call.
    pub fn embed(&mut self, samples: &[f32]) -> Result<Vec<f32>, InferenceError> {
        if samples.len() < 400 {
            return Err(InferenceError::InvalidInput(format!(
                "{} samples are too few for a speaker embedding (at least 400, 25 ms)",
                samples.len()
            )));
        }
        let _no_grad = tch::no_grad_guard();
        let input = Tensor::from_slice(samples)
            .view([1, samples.len() as i64])
            .to_device(self.device);
        let output = self
            .module
            .forward_ts(&[input])
            .map_err(torch_error)?
            .to_kind(Kind::Float)
            .to_device(Device::Cpu)
            .view([-1]);
        let mut vector = Vec::<f32>::try_from(output)?;
        if vector.len() != EMBEDDING_SIZE {
            return Err(InferenceError::ModelInvalid {
                path: MODEL_FILE.into(),
                reason: format!(
                    "{} values per embedding, expected {EMBEDDING_SIZE}",
                    vector.len()
                ),
            });
        }
        normalize(&mut vector);
        Ok(vector)
    }

    /// Every local speaker's turns in every window, each embedded when it has at least
    /// `min_frames` frames of speech: of the frames where the speaker talks alone when there are
    /// `min_frames` of those, else of all the turn's frames.
    pub fn embed_local_turns(
        &mut self,
        samples: &[f32],
        activity: &LocalActivity,
        min_frames: usize,
    ) -> Result<Vec<LocalTurn>, InferenceError> {
        let mut turns = Vec::new();
        let mut own = Vec::new();
        for window in 0..activity.windows() {
            let start = activity.window_starts[window] + FRAME_CENTRE_OFFSET;
            for speaker in 0..super::powerset::LOCAL_SPEAKERS {
                let active: Vec<bool> = (0..FRAMES_PER_WINDOW)
                    .map(|f| activity.active(window, f, speaker))
                    .collect();
                for (first, past) in runs(&active) {
                    let clean: Vec<bool> = (0..FRAMES_PER_WINDOW)
                        .map(|f| (first..past).contains(&f) && activity.alone(window, f, speaker))
                        .collect();
                    let clean_frames = clean.iter().filter(|&&c| c).count();
                    let frames = if clean_frames >= min_frames {
                        clean
                    } else {
                        active
                            .iter()
                            .enumerate()
                            .map(|(f, &a)| a && (first..past).contains(&f))
                            .collect()
                    };
                    own.clear();
                    for (from, to) in runs(&frames) {
                        let from = (start + from * FRAME_STEP_SAMPLES).min(samples.len());
                        let to = (start + to * FRAME_STEP_SAMPLES).min(samples.len());
                        own.extend_from_slice(&samples[from..to]);
                    }
                    // Too short (or only the zero padding past the end of a short recording).
                    let vector = if own.len() >= (min_frames * FRAME_STEP_SAMPLES).max(400) {
                        Some(self.embed(&own)?)
                    } else {
                        None
                    };
                    turns.push(LocalTurn {
                        window,
                        speaker,
                        first,
                        past,
                        clean_frames,
                        vector,
                    });
                }
            }
        }
        Ok(turns)
    }
}

/// `[start, end)` of each run of `true`.
pub(super) fn runs(flags: &[bool]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, &flag) in flags.iter().enumerate() {
        match (flag, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, flags.len()));
    }
    out
}

/// Scales `vector` to unit length (left alone when it is all zeros).
pub(super) fn normalize(vector: &mut [f32]) {
    let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|v| *v /= norm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_half_open_ranges_of_true() {
        assert_eq!(
            runs(&[true, true, false, true, false, false, true]),
            vec![(0, 2), (3, 4), (6, 7)]
        );
        assert!(runs(&[false, false]).is_empty());
    }
}
