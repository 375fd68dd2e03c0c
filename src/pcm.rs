//! Audio samples as the pipeline holds and reads them. A session's audio is held once, as 16-bit
//! PCM (`Vec<i16>`: 2 bytes a sample, half of `f32`; a 2-hour recording is 230 MB), and each
//! model reads the stretch it needs as `f32` in [-1, 1). This is what the reference
//! implementations do: openai-whisper's `load_audio` and faster-whisper's `decode_audio` both
//! have FFmpeg write 16-bit samples and divide them by 32768.
//!
//! [`Samples`] is what a reader takes (a `Vec<i16>` or, in tests and for short clips, `f32`
//! samples); [`SampleSink`] is what a decoder appends to.

use std::ops::Range;

/// Full scale of 16-bit PCM: `i16` sample `s` is `s / 32768` as `f32`.
const FULL_SCALE: f32 = 32768.0;

/// The `i16` nearest to `sample * 32768`, clipped to the 16-bit range (as libswresample's
/// float → s16 conversion); NaN becomes 0.
pub fn to_i16(sample: f32) -> i16 {
    // `as` saturates and maps NaN to 0.
    (sample * FULL_SCALE).round() as i16
}

/// The `f32` value of a 16-bit sample, in [-1, 1).
pub fn to_f32(sample: i16) -> f32 {
    f32::from(sample) / FULL_SCALE
}

/// 16 kHz mono audio that can be read as `f32`, a stretch at a time.
pub trait Samples {
    /// Number of samples.
    fn len(&self) -> usize;

    /// Appends the samples in `range` (which must lie within `0..len()`) to `out` as `f32`.
    fn extend_f32(&self, range: Range<usize>, out: &mut Vec<f32>);

    /// Appends the samples in `range` to `out` as 16-bit PCM (as [`to_i16`] converts).
    fn extend_i16(&self, range: Range<usize>, out: &mut Vec<i16>);

    /// Whether there are no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The samples in `range` as `f32` (a copy; `range` must lie within `0..len()`).
    fn to_f32(&self, range: Range<usize>) -> Vec<f32> {
        let mut out = Vec::with_capacity(range.len());
        self.extend_f32(range, &mut out);
        out
    }
}

impl Samples for [f32] {
    fn len(&self) -> usize {
        <[f32]>::len(self)
    }

    fn extend_f32(&self, range: Range<usize>, out: &mut Vec<f32>) {
        out.extend_from_slice(&self[range]);
    }

    fn extend_i16(&self, range: Range<usize>, out: &mut Vec<i16>) {
        out.extend(self[range].iter().map(|&s| to_i16(s)));
    }
}

impl Samples for [i16] {
    fn len(&self) -> usize {
        <[i16]>::len(self)
    }

    fn extend_f32(&self, range: Range<usize>, out: &mut Vec<f32>) {
        out.extend(self[range].iter().map(|&s| to_f32(s)));
    }

    fn extend_i16(&self, range: Range<usize>, out: &mut Vec<i16>) {
        out.extend_from_slice(&self[range]);
    }
}

impl<T> Samples for Vec<T>
where
    [T]: Samples,
{
    fn len(&self) -> usize {
        self.as_slice().len()
    }

    fn extend_f32(&self, range: Range<usize>, out: &mut Vec<f32>) {
        self.as_slice().extend_f32(range, out);
    }

    fn extend_i16(&self, range: Range<usize>, out: &mut Vec<i16>) {
        self.as_slice().extend_i16(range, out);
    }
}

/// Where a decoder appends 16 kHz mono samples, given as `f32`.
pub trait SampleSink {
    /// Number of samples held.
    fn len(&self) -> usize;

    /// Whether no samples are held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `samples` (converted to 16-bit, clipped, for an `i16` sink).
    fn extend_from_f32(&mut self, samples: &[f32]);

    /// Appends `count` samples of silence.
    fn extend_silence(&mut self, count: usize);

    /// Drops every sample past the first `len`.
    fn truncate(&mut self, len: usize);
}

impl SampleSink for Vec<f32> {
    fn len(&self) -> usize {
        Vec::len(self)
    }

    fn extend_from_f32(&mut self, samples: &[f32]) {
        self.extend_from_slice(samples);
    }

    fn extend_silence(&mut self, count: usize) {
        self.resize(Vec::len(self) + count, 0.0);
    }

    fn truncate(&mut self, len: usize) {
        Vec::truncate(self, len);
    }
}

impl SampleSink for Vec<i16> {
    fn len(&self) -> usize {
        Vec::len(self)
    }

    fn extend_from_f32(&mut self, samples: &[f32]) {
        self.extend(samples.iter().map(|&s| to_i16(s)));
    }

    fn extend_silence(&mut self, count: usize) {
        self.resize(Vec::len(self) + count, 0);
    }

    fn truncate(&mut self, len: usize) {
        Vec::truncate(self, len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixteen_bit_round_trip_is_within_half_a_step_and_clips_at_full_scale() {
        let values = [0.0f32, 0.5, -0.5, 0.999, -1.0, 1e-5, -3e-5];
        let mut held: Vec<i16> = Vec::new();
        held.extend_from_f32(&values);
        let back = held.to_f32(0..values.len());
        for (v, b) in values.iter().zip(&back) {
            assert!(
                (v - b).abs() <= 0.5 / 32768.0 + f32::EPSILON,
                "{v} came back {b}"
            );
        }
        held.clear();
        held.extend_from_f32(&[1.5, -1.5, 1.0, f32::NAN]);
        assert_eq!(held, vec![i16::MAX, i16::MIN, i16::MAX, 0]);
    }

    #[test]
    fn both_kinds_read_the_same_stretch() {
        let floats: Vec<f32> = (0..100).map(|i| (i as f32 - 50.0) / 64.0).collect();
        let mut shorts: Vec<i16> = Vec::new();
        shorts.extend_from_f32(&floats);
        assert_eq!(Samples::len(&shorts), 100);
        assert_eq!(floats.to_f32(10..20), shorts.to_f32(10..20));
        let mut again = Vec::new();
        floats.extend_i16(10..20, &mut again);
        assert_eq!(
            again,
            shorts[10..20],
            "f32 read as 16-bit is what the sink holds"
        );
        again.clear();
        shorts.extend_i16(10..20, &mut again);
        assert_eq!(again, shorts[10..20]);
        shorts.extend_silence(5);
        assert_eq!(shorts.to_f32(100..105), vec![0.0; 5]);
        SampleSink::truncate(&mut shorts, 3);
        assert_eq!(shorts, vec![-25600, -25088, -24576]);
    }
}
