//! The log-mel front end, exactly as `whisper/audio.py`'s `log_mel_spectrogram`: STFT (n_fft
//! 400, hop 160, Hann window, centred with reflection), power, slaney mel filters (stored in the
//! weights file), log10, floor at max − 8, then (x + 4) / 4; and `pad_or_trim` to 3000 frames.

use super::{HOP_LENGTH, N_FFT, N_FRAMES, N_SAMPLES};
use tch::{Device, Kind, TchError, Tensor};

/// `log_mel_spectrogram(audio, n_mels, padding)` for a batch: `audio` is `[batch, samples]`
/// f32, `filters` `[n_mels, 1 + n_fft / 2]`; returns `[batch, n_mels, samples / hop]`, each row
/// normalised by its own maximum as the reference normalises each call.
pub fn log_mel_spectrogram(audio: &Tensor, filters: &Tensor) -> Result<Tensor, TchError> {
    let window = Tensor::f_hann_window(N_FFT as i64, (Kind::Float, audio.device()))?;
    // `torch.stft(center=True)`: reflect n_fft / 2 samples at both ends, then frame.
    let half = (N_FFT / 2) as i64;
    let audio = audio
        .f_unsqueeze(1)?
        .f_reflection_pad1d([half, half])?
        .f_squeeze_dim(1)?;
    let stft = audio.f_stft(
        N_FFT as i64,
        HOP_LENGTH as i64,
        None::<i64>,
        Some(&window),
        false,
        true,
        true,
        false,
    )?;
    let frames = stft.size().last().copied().unwrap_or(0);
    // The reference drops the last frame: `stft[..., :-1]`.
    let magnitudes = stft.f_narrow(-1, 0, frames - 1)?.f_abs()?.f_square()?;
    let mel_spec = filters.f_matmul(&magnitudes)?;
    let log_spec = mel_spec.f_clamp_min(1e-10)?.f_log10()?;
    let floor = log_spec.f_amax([1, 2], true)?.f_sub_scalar(8.0)?;
    let log_spec = log_spec.f_maximum(&floor)?;
    log_spec.f_add_scalar(4.0)?.f_div_scalar(4.0)
}

/// The mel input of each window as `transcribe.py` makes it for audio of at most 30 s: the
/// spectrogram of the samples followed by 30 s of silence, its content frames kept and the
/// rest of the 3000 frames zeroed (`pad_or_trim`). Returns `[batch, n_mels, 3000]` and each
/// window's content frame count.
pub fn window_mels(
    windows: &[&[f32]],
    filters: &Tensor,
    device: Device,
) -> Result<(Tensor, Vec<usize>), TchError> {
    let padded_len = N_SAMPLES + N_SAMPLES;
    let mut padded = vec![0f32; windows.len() * padded_len];
    for (row, window) in padded.chunks_mut(padded_len).zip(windows) {
        let len = window.len().min(N_SAMPLES);
        row[..len].copy_from_slice(&window[..len]);
    }
    let audio = Tensor::f_from_slice(&padded)?
        .f_view([windows.len() as i64, padded_len as i64])?
        .f_to_device(device)?;
    let mel = log_mel_spectrogram(&audio, filters)?.f_narrow(2, 0, N_FRAMES as i64)?;
    let content_frames: Vec<usize> = windows
        .iter()
        .map(|w| w.len().min(N_SAMPLES) / HOP_LENGTH)
        .collect();
    let frame_index = Tensor::f_arange(N_FRAMES as i64, (Kind::Int64, device))?;
    let limits: Vec<i64> = content_frames.iter().map(|&n| n as i64).collect();
    let limits = Tensor::f_from_slice(&limits)?
        .f_to_device(device)?
        .f_view([-1, 1, 1])?;
    let keep = frame_index.f_view([1, 1, -1])?.f_lt_tensor(&limits)?;
    let mel = mel.f_mul(&keep.f_to_kind(Kind::Float)?)?;
    Ok((mel, content_frames))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    /// Our spectrogram of a chirp with noise against OpenAI's, computed by the conversion
    /// script with torch in the project's virtualenv.
    #[test]
    fn spectrogram_matches_the_reference() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let python = std::env::var("LAHSTATS_PYTHON")
            .unwrap_or_else(|_| root.join(".venv/bin/python").display().to_string());
        let dir = tempfile::tempdir().expect("temp dir");
        let samples: Vec<f32> = (0..16000 * 3)
            .map(|i| {
                let t = i as f32 / 16000.0;
                0.3 * (2.0 * std::f32::consts::PI * (200.0 + 900.0 * t) * t).sin()
                    + 0.01 * ((i * 7919 % 1000) as f32 / 1000.0 - 0.5)
            })
            .collect();
        let input = dir.path().join("samples.f32");
        let output = dir.path().join("mel.f32");
        let filters_path = dir.path().join("filters.f32");
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        std::fs::write(&input, bytes).expect("write samples");
        let status = Command::new(&python)
            .arg(root.join("scripts/models/whisper.py"))
            .arg("--reference-mel")
            .args([&input, &output])
            .arg("--filters-out")
            .arg(&filters_path)
            .status()
            .expect("run the virtualenv's python (set LAHSTATS_PYTHON if it is elsewhere)");
        assert!(status.success(), "reference spectrogram failed");
        let read = |path: &Path| -> Vec<f32> {
            std::fs::read(path)
                .expect("read")
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        };
        let filters = Tensor::from_slice(&read(&filters_path)).view([80, 201]);
        let expected = read(&output);
        let audio = Tensor::from_slice(&samples).unsqueeze(0);
        let ours = log_mel_spectrogram(&audio, &filters).expect("spectrogram");
        assert_eq!(ours.size(), vec![1, 80, 300]);
        let ours: Vec<f32> = Vec::try_from(ours.flatten(0, -1)).expect("to vec");
        assert_eq!(ours.len(), expected.len());
        let worst = ours
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            worst < 1e-4,
            "largest difference from the reference: {worst}"
        );
    }

    #[test]
    fn windows_are_zero_after_their_content() {
        let filters = Tensor::ones([80, 201], (Kind::Float, Device::Cpu))
            .f_mul_scalar(0.01)
            .unwrap();
        let tone: Vec<f32> = (0..16000).map(|i| (i as f32 * 0.1).sin()).collect();
        let (mel, content) = window_mels(&[&tone, &tone[..8000]], &filters, Device::Cpu).unwrap();
        assert_eq!(mel.size(), vec![2, 80, 3000]);
        assert_eq!(content, vec![100, 50]);
        let tail = mel.narrow(2, 100, 2900).abs().max().double_value(&[]);
        assert_eq!(tail, 0.0);
        let head = mel.narrow(2, 0, 50).abs().min().double_value(&[]);
        assert!(head > 0.0);
    }
}
