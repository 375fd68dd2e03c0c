//! Several channels to one that cannot cancel: the average of the channels, unless they are in
//! antiphase (a phone mic or cable that inverts one side: the average of `x` and `−x` is
//! silence) or one of them is dead (the average halves the live one); then the strongest channel
//! alone, with a warning.
//!
//! Decided block by block (one second of audio) before the block is written out: a block whose
//! channels carry sound but whose average keeps less than [`CANCELLED_SHARE`] of their mean
//! energy (a correlation below about −0.8 between equal channels), or one channel quieter than
//! [`DEAD_CHANNEL_SHARE`] of the strongest, switches the rest of the file to the strongest
//! channel so far. Independent channels keep half their energy in the average; ordinary stereo
//! keeps nearly all.

/// Samples per channel in one block (one second at the 16 kHz output rate).
const BLOCK_FRAMES: usize = 16_000;
/// The average keeping less than this share of the channels' mean energy has cancelled.
pub const CANCELLED_SHARE: f64 = 0.1;
/// A channel with less than this share of the strongest one's energy is dead (−30 dB).
pub const DEAD_CHANNEL_SHARE: f64 = 1e-3;
/// Below this mean-square level (−60 dBFS) a block is too quiet to judge.
const QUIET_MEAN_SQUARE: f64 = 1e-6;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Average,
    Channel(usize),
}

/// Interleaved frames of `channels` samples in, mono out, one block at a time.
pub(crate) struct Downmix {
    channels: usize,
    mode: Mode,
    /// Interleaved samples not yet written out (less than a block).
    pending: Vec<f32>,
    /// Energy per channel over everything seen, to pick the strongest.
    energy: Vec<f64>,
    /// Frames written out so far, for the warning.
    frames_out: usize,
    location: String,
}

impl Downmix {
    pub(crate) fn new(channels: usize, location: &str) -> Self {
        Downmix {
            channels: channels.max(1),
            mode: Mode::Average,
            pending: Vec::with_capacity(BLOCK_FRAMES * channels.max(1)),
            energy: vec![0.0; channels.max(1)],
            frames_out: 0,
            location: location.to_string(),
        }
    }

    /// Takes interleaved samples; appends the mono samples of every completed block to `out`.
    pub(crate) fn push(&mut self, interleaved: &[f32], out: &mut Vec<f32>) {
        if self.channels == 1 {
            out.extend_from_slice(interleaved);
            return;
        }
        let block = BLOCK_FRAMES * self.channels;
        let mut rest = interleaved;
        while !rest.is_empty() {
            let take = (block - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() == block {
                self.flush(out);
            }
        }
    }

    /// Writes out what is pending (the end of the stream).
    pub(crate) fn flush(&mut self, out: &mut Vec<f32>) {
        if self.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        self.judge(&pending);
        out.reserve(pending.len() / self.channels);
        match self.mode {
            Mode::Average => {
                let scale = 1.0 / self.channels as f32;
                out.extend(
                    pending
                        .chunks_exact(self.channels)
                        .map(|frame| frame.iter().sum::<f32>() * scale),
                );
            }
            Mode::Channel(channel) => out.extend(
                pending
                    .chunks_exact(self.channels)
                    .map(|frame| frame[channel]),
            ),
        }
        self.frames_out += pending.len() / self.channels;
        self.pending = pending;
        self.pending.clear();
    }

    /// Updates the energies with `block` and switches to one channel if it cancels.
    fn judge(&mut self, block: &[f32]) {
        let frames = (block.len() / self.channels).max(1) as f64;
        let mut energy = vec![0.0f64; self.channels];
        let mut mixed = 0.0f64;
        for frame in block.chunks_exact(self.channels) {
            let mut sum = 0.0f64;
            for (e, &x) in energy.iter_mut().zip(frame) {
                *e += f64::from(x) * f64::from(x);
                sum += f64::from(x);
            }
            let mean = sum / self.channels as f64;
            mixed += mean * mean;
        }
        for (total, e) in self.energy.iter_mut().zip(&energy) {
            *total += e;
        }
        if self.mode != Mode::Average {
            return;
        }
        let mean_energy = energy.iter().sum::<f64>() / self.channels as f64;
        if mean_energy / frames < QUIET_MEAN_SQUARE {
            return;
        }
        let strongest_here = energy.iter().copied().fold(0.0, f64::max);
        let dead = energy
            .iter()
            .any(|&e| e < DEAD_CHANNEL_SHARE * strongest_here);
        let cancelled = mixed < CANCELLED_SHARE * mean_energy;
        if !(dead || cancelled) {
            return;
        }
        let strongest = (0..self.channels)
            .max_by(|&a, &b| self.energy[a].total_cmp(&self.energy[b]))
            .unwrap_or(0);
        self.mode = Mode::Channel(strongest);
        let why = if cancelled {
            format!(
                "its channels are in antiphase (their average keeps {:.1} % of their energy)",
                100.0 * mixed / mean_energy
            )
        } else {
            "one of its channels is silent".to_string()
        };
        log::warn!(
            "{}: {why}; using channel {} of {} alone from {:.1} s of this file on",
            self.location,
            strongest + 1,
            self.channels,
            self.frames_out as f64 / BLOCK_FRAMES as f64
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(seconds: f64) -> Vec<f32> {
        (0..(seconds * 16000.0) as usize)
            .map(|i| 0.5 * (i as f32 * 0.05).sin())
            .collect()
    }

    fn stereo(left: &[f32], right: &[f32]) -> Vec<f32> {
        left.iter().zip(right).flat_map(|(&l, &r)| [l, r]).collect()
    }

    fn mix(left: &[f32], right: &[f32]) -> Vec<f32> {
        let mut downmix = Downmix::new(2, "test");
        let mut out = Vec::new();
        // In odd-sized pieces, as a decoder hands them over.
        for piece in stereo(left, right).chunks(3001) {
            downmix.push(piece, &mut out);
        }
        downmix.flush(&mut out);
        out
    }

    fn rms(x: &[f32]) -> f64 {
        (x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    }

    #[test]
    fn in_phase_stereo_is_averaged() {
        let left = tone(2.5);
        let right: Vec<f32> = left.iter().map(|x| x * 0.8).collect();
        let out = mix(&left, &right);
        assert_eq!(out.len(), left.len());
        assert!((out[100] - 0.9 * left[100]).abs() < 1e-6);
    }

    #[test]
    fn antiphase_keeps_the_stronger_channel() {
        let left = tone(2.5);
        let right: Vec<f32> = left.iter().map(|x| -x * 0.9).collect();
        let out = mix(&left, &right);
        assert_eq!(out.len(), left.len());
        assert!((rms(&out) - rms(&left)).abs() < 1e-6, "{}", rms(&out));
    }

    #[test]
    fn a_dead_channel_is_left_out() {
        let right = tone(1.5);
        let left = vec![0.0; right.len()];
        let out = mix(&left, &right);
        assert!((rms(&out) - rms(&right)).abs() < 1e-6);
    }

    #[test]
    fn silence_is_not_judged() {
        let quiet = vec![0.0f32; 20000];
        let out = mix(&quiet, &quiet);
        assert_eq!(out, quiet);
    }
}
