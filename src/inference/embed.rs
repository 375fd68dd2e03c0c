//! Speaker embeddings with Resemblyzer's GE2E encoder: 16 kHz waveform windows in, one
//! L2-normalised 256-d embedding per window out. The mel front end lives inside
//! `models/speaker_encoder.pt` (scripts/models/speaker_encoder.py), so windows go in as samples.

use super::device::{torch_error, use_half};
use super::InferenceError;
use std::collections::BTreeMap;
use std::path::Path;
use tch::{CModule, Device, Kind, Tensor};

/// The model file under the models directory.
pub const MODEL_FILE: &str = "speaker_encoder.pt";
/// Size of one embedding.
pub const EMBEDDING_SIZE: i64 = 256;

/// The GE2E speaker encoder loaded on a device (half precision on CUDA).
pub struct SpeakerEncoder {
    module: CModule,
    device: Device,
}

impl SpeakerEncoder {
    /// Loads `speaker_encoder.pt` from the models directory onto the device.
    pub fn load(models_dir: &Path, device: Device) -> Result<Self, InferenceError> {
        let mut module = super::load_torchscript(models_dir, MODEL_FILE, device)?;
        if use_half(device) {
            // The module keeps its STFT and mel in float32 itself and casts for the LSTM.
            module.to(device, Kind::Half, false);
        }
        Ok(SpeakerEncoder { module, device })
    }

    /// Embeddings of the windows, `[windows.len(), 256]` float32 on the CPU, in the windows'
    /// order. Windows of equal length share batches of up to `batch_size`.
    pub fn embed_windows(
        &mut self,
        windows: &[&[f32]],
        batch_size: usize,
    ) -> Result<Tensor, InferenceError> {
        if windows.is_empty() {
            return Ok(Tensor::zeros(
                [0, EMBEDDING_SIZE],
                (Kind::Float, Device::Cpu),
            ));
        }
        if let Some(short) = windows.iter().position(|w| w.len() < 400) {
            return Err(InferenceError::InvalidInput(format!(
                "window {short} has {} samples; speaker embeddings need at least 400 (25 ms)",
                windows[short].len()
            )));
        }
        let _no_grad = tch::no_grad_guard();
        let batch_size = batch_size.max(1);
        // Windows are batched by length; the results go back in the caller's order.
        let mut by_length: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (index, window) in windows.iter().enumerate() {
            by_length.entry(window.len()).or_default().push(index);
        }
        let mut rows: Vec<(usize, Tensor)> = Vec::with_capacity(windows.len());
        for (length, indices) in by_length {
            for batch in indices.chunks(batch_size) {
                let mut flat = Vec::with_capacity(batch.len() * length);
                for &index in batch {
                    flat.extend_from_slice(windows[index]);
                }
                let input = Tensor::from_slice(&flat)
                    .view([batch.len() as i64, length as i64])
                    .to_device(self.device);
                let embeddings = self
                    .module
                    .forward_ts(&[input])
                    .map_err(torch_error)?
                    .to_kind(Kind::Float)
                    .to_device(Device::Cpu);
                for (row, &index) in batch.iter().enumerate() {
                    rows.push((index, embeddings.get(row as i64)));
                }
            }
        }
        rows.sort_by_key(|(index, _)| *index);
        let ordered: Vec<Tensor> = rows.into_iter().map(|(_, row)| row).collect();
        Ok(Tensor::f_stack(&ordered, 0)?)
    }
}
