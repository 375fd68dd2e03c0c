//! Where the recogniser's windows go: consecutive speech regions (Silero VAD) are gathered in
//! time order into windows of at most ~30 s, cut only at the pauses between regions; a region
//! longer than a window is cut inside at its quietest moment (the frame of lowest speech
//! probability in the window's second half), so no window ever ends mid-word where a pause
//! exists. Every second of detected speech lies in exactly one window.

use crate::inference::vad::{SpeechRegion, FRAME_SAMPLES, SAMPLE_RATE};

/// Seconds of one VAD frame.
const FRAME_SECONDS: f64 = FRAME_SAMPLES as f64 / SAMPLE_RATE as f64;

/// Windows `(start, end)` in seconds covering every region of `regions` (sorted, disjoint),
/// each at most `max_seconds` long. `probabilities` are the VAD's per-frame speech
/// probabilities, used to cut regions longer than a window at their quietest frame.
pub fn plan(regions: &[SpeechRegion], probabilities: &[f32], max_seconds: f64) -> Vec<(f64, f64)> {
    let mut windows: Vec<(f64, f64)> = Vec::new();
    let mut current: Option<(f64, f64)> = None;
    for region in regions {
        let (mut start, end) = (region.start, region.end);
        if let Some((window_start, window_end)) = current.take() {
            if end - window_start <= max_seconds {
                current = Some((window_start, end.max(window_end)));
                continue;
            }
            windows.push((window_start, window_end));
        }
        // A region longer than a window: cut it at its quietest frames.
        while end - start > max_seconds {
            let cut = quietest_time(
                probabilities,
                start + max_seconds / 2.0,
                start + max_seconds,
            );
            windows.push((start, cut));
            start = cut;
        }
        current = Some((start, end));
    }
    windows.extend(current);
    windows
}

/// The start time of the frame of lowest speech probability in `[from, to)` (the last such
/// frame on ties, for the longest window); `to` itself when there are no frames there.
fn quietest_time(probabilities: &[f32], from: f64, to: f64) -> f64 {
    let first = (from / FRAME_SECONDS).ceil() as usize;
    let last = ((to / FRAME_SECONDS).floor() as usize).min(probabilities.len());
    (first..last)
        .min_by(|&a, &b| {
            probabilities[a]
                .total_cmp(&probabilities[b])
                .then(b.cmp(&a))
        })
        .map_or(to, |frame| frame as f64 * FRAME_SECONDS)
        .max(from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(start: f64, end: f64) -> SpeechRegion {
        SpeechRegion { start, end }
    }

    #[test]
    fn regions_are_gathered_and_cut_only_between_them() {
        let regions = [
            region(0.5, 8.0),
            region(8.4, 20.0),
            region(21.0, 29.0),
            region(29.5, 40.0),
            region(45.0, 46.0),
        ];
        let windows = plan(&regions, &[], 30.0);
        assert_eq!(windows, vec![(0.5, 29.0), (29.5, 46.0)]);
    }

    #[test]
    fn a_long_region_is_cut_at_its_quietest_frame() {
        // 70 s of speech; probabilities dip at 25 s and at 50 s.
        let frames = (70.0 / FRAME_SECONDS) as usize;
        let mut probabilities = vec![0.9f32; frames];
        let dip = |t: f64| (t / FRAME_SECONDS) as usize;
        probabilities[dip(25.0)] = 0.2;
        probabilities[dip(50.0)] = 0.3;
        let windows = plan(&[region(0.0, 70.0)], &probabilities, 30.0);
        assert_eq!(windows.len(), 3);
        assert!((windows[0].1 - dip(25.0) as f64 * FRAME_SECONDS).abs() < 1e-9);
        assert_eq!(windows[1].0, windows[0].1);
        assert!((windows[1].1 - dip(50.0) as f64 * FRAME_SECONDS).abs() < 1e-9);
        assert_eq!(windows[2], (windows[1].1, 70.0));
        for (start, end) in windows {
            assert!(end - start <= 30.0);
        }
    }

    #[test]
    fn every_second_of_speech_is_in_a_window() {
        let regions: Vec<SpeechRegion> = (0..40)
            .map(|i| region(i as f64 * 3.1, i as f64 * 3.1 + 2.9))
            .collect();
        let windows = plan(&regions, &[], 30.0);
        for r in &regions {
            assert!(
                windows.iter().any(|&(s, e)| s <= r.start && r.end <= e),
                "{r:?}"
            );
        }
        for pair in windows.windows(2) {
            assert!(pair[0].1 <= pair[1].0);
        }
    }
}
