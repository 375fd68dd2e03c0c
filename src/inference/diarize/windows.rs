//! Sliding windows over the speech regions, and window labels back into turns: inside a
//! region each moment belongs to the window whose centre is nearest, so a change of speaker
//! falls halfway between the centres of two differently labelled windows.

use super::SpeakerTurn;
use crate::inference::vad::{SpeechRegion, SAMPLE_RATE};
use std::borrow::Cow;

/// One window to embed.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// First sample in the (padded) audio.
    pub start_sample: usize,
    /// Which speech region it speaks for.
    pub region: usize,
    /// Its centre in seconds, clamped into its region.
    pub centre: f64,
}

/// All windows, in time order, with the regions they cover.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowPlan {
    pub window_samples: usize,
    pub regions: Vec<SpeechRegion>,
    pub windows: Vec<Window>,
}

/// Windows of `window_seconds` every `step_seconds` inside each speech region, the last one
/// flush with the region's end; a region shorter than a window gets one window centred on it
/// (reaching into the audio around it).
pub fn plan(
    speech: &[SpeechRegion],
    audio_samples: usize,
    window_seconds: f64,
    step_seconds: f64,
) -> WindowPlan {
    let rate = SAMPLE_RATE as f64;
    let window_samples = (window_seconds * rate).round() as usize;
    let step_samples = ((step_seconds * rate).round() as usize).max(1);
    let last_start = audio_samples.max(window_samples) - window_samples;
    let mut windows = Vec::new();
    for (index, region) in speech.iter().enumerate() {
        let start = (region.start * rate).round() as usize;
        let end = ((region.end * rate).round() as usize)
            .min(audio_samples)
            .max(start);
        let mut starts = Vec::new();
        if end - start <= window_samples {
            let centre = (start + end) / 2;
            starts.push(centre.saturating_sub(window_samples / 2).min(last_start));
        } else {
            starts.extend((start..=end - window_samples).step_by(step_samples));
            if starts.last().is_some_and(|&s| s + window_samples < end) {
                starts.push(end - window_samples);
            }
        }
        windows.extend(starts.into_iter().map(|s| Window {
            start_sample: s,
            region: index,
            centre: ((s + window_samples / 2) as f64 / rate).clamp(region.start, region.end),
        }));
    }
    WindowPlan {
        window_samples,
        regions: speech.to_vec(),
        windows,
    }
}

/// The audio, zero-padded to one window when it is shorter than that.
pub fn padded_audio(samples: &[f32], window_samples: usize) -> Cow<'_, [f32]> {
    if samples.len() >= window_samples {
        Cow::Borrowed(samples)
    } else {
        let mut padded = samples.to_vec();
        padded.resize(window_samples, 0.0);
        Cow::Owned(padded)
    }
}

/// Turns from window labels (one per window): within each region, boundaries halfway between
/// the centres of neighbouring windows with different labels.
pub fn turns_from_labels(plan: &WindowPlan, labels: &[usize]) -> Vec<SpeakerTurn> {
    let mut turns = Vec::new();
    let mut i = 0;
    while i < plan.windows.len() {
        let region_index = plan.windows[i].region;
        let region = plan.regions[region_index];
        let mut turn = SpeakerTurn {
            speaker: labels[i],
            start: region.start,
            end: region.end,
        };
        i += 1;
        while i < plan.windows.len() && plan.windows[i].region == region_index {
            if labels[i] != turn.speaker {
                let boundary = (plan.windows[i - 1].centre + plan.windows[i].centre) / 2.0;
                turns.push(SpeakerTurn {
                    end: boundary,
                    ..turn
                });
                turn = SpeakerTurn {
                    speaker: labels[i],
                    start: boundary,
                    end: region.end,
                };
            }
            i += 1;
        }
        turns.push(turn);
    }
    turns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_regions_and_labels_split_halfway() {
        let speech = vec![
            SpeechRegion {
                start: 1.0,
                end: 4.0,
            },
            SpeechRegion {
                start: 5.0,
                end: 5.5,
            },
        ];
        let plan = plan(&speech, 16000 * 6, 1.5, 0.75);
        let starts: Vec<f64> = plan
            .windows
            .iter()
            .map(|w| w.start_sample as f64 / 16000.0)
            .collect();
        // 1.0, 1.75, 2.5 fit; 2.5 + 1.5 = 4.0 is flush. The short region gets a centred window.
        assert_eq!(starts, vec![1.0, 1.75, 2.5, 4.5]);
        let turns = turns_from_labels(&plan, &[0, 0, 1, 1]);
        let expected = [(0, 1.0, 2.875), (1, 2.875, 4.0), (1, 5.0, 5.5)];
        assert_eq!(turns.len(), 3);
        for (turn, (speaker, start, end)) in turns.iter().zip(expected) {
            assert_eq!(turn.speaker, speaker);
            assert!(
                (turn.start - start).abs() < 1e-9 && (turn.end - end).abs() < 1e-9,
                "{turns:?}"
            );
        }
        // Audio shorter than a window: one window from 0 over zero padding.
        let tiny = plan_for_short();
        assert_eq!(tiny.windows[0].start_sample, 0);
        assert_eq!(padded_audio(&[0.5; 100], 24000).len(), 24000);
    }

    fn plan_for_short() -> WindowPlan {
        plan(
            &[SpeechRegion {
                start: 0.1,
                end: 0.9,
            }],
            16000,
            1.5,
            0.75,
        )
    }
}
