//! Frame probabilities → speech regions: silero-vad's `get_speech_timestamps_from_probs`
//! (utils_vad.py, 6.2.3) line for line, with its default unlimited `max_speech_duration_s`.

use super::{SpeechRegion, VadOptions, FRAME_SAMPLES, SAMPLE_RATE};

/// Speech regions from per-frame speech probabilities of `audio_samples` samples of audio.
pub fn speech_regions(
    probabilities: &[f32],
    audio_samples: usize,
    opts: &VadOptions,
) -> Vec<SpeechRegion> {
    let rate = SAMPLE_RATE as f64;
    let min_speech_samples = rate * f64::from(opts.min_speech_ms) / 1000.0;
    let min_silence_samples = rate * f64::from(opts.min_silence_ms) / 1000.0;
    let pad_samples = rate * f64::from(opts.speech_pad_ms) / 1000.0;
    let audio_length = audio_samples as i64;

    let mut speeches = raw_speeches(
        probabilities,
        audio_length,
        opts,
        min_speech_samples,
        min_silence_samples,
    );
    pad_speeches(&mut speeches, audio_length, pad_samples);
    speeches
        .into_iter()
        .map(|(start, end)| SpeechRegion {
            start: start as f64 / rate,
            end: end as f64 / rate,
        })
        .collect()
}

/// The hysteresis pass: (start, end) sample pairs before padding.
fn raw_speeches(
    probabilities: &[f32],
    audio_length: i64,
    opts: &VadOptions,
    min_speech_samples: f64,
    min_silence_samples: f64,
) -> Vec<(i64, i64)> {
    let mut speeches = Vec::new();
    // Some(start) while triggered; silero's `current_speech` dict.
    let mut current_start: Option<i64> = None;
    // silero's `temp_end`: where the silence now being tolerated began.
    let mut temp_end: Option<i64> = None;
    for (i, &prob) in probabilities.iter().enumerate() {
        let cur_sample = (FRAME_SAMPLES * i) as i64;
        if prob >= opts.threshold && temp_end.is_some() {
            temp_end = None;
        }
        if prob >= opts.threshold && current_start.is_none() {
            current_start = Some(cur_sample);
            continue;
        }
        if let (true, Some(start)) = (prob < opts.neg_threshold, current_start) {
            let silence_start = *temp_end.get_or_insert(cur_sample);
            if ((cur_sample - silence_start) as f64) < min_silence_samples {
                continue;
            }
            if (silence_start - start) as f64 > min_speech_samples {
                speeches.push((start, silence_start));
            }
            current_start = None;
            temp_end = None;
        }
    }
    if let Some(start) = current_start {
        if (audio_length - start) as f64 > min_speech_samples {
            speeches.push((start, audio_length));
        }
    }
    speeches
}

/// Widens each region by the pad, splitting the gap where two regions are closer than 2 pads.
fn pad_speeches(speeches: &mut [(i64, i64)], audio_length: i64, pad_samples: f64) {
    let count = speeches.len();
    for i in 0..count {
        if i == 0 {
            speeches[i].0 = (speeches[i].0 as f64 - pad_samples).max(0.0) as i64;
        }
        if i != count - 1 {
            let silence = speeches[i + 1].0 - speeches[i].1;
            if (silence as f64) < 2.0 * pad_samples {
                speeches[i].1 += silence.div_euclid(2);
                speeches[i + 1].0 = (speeches[i + 1].0 - silence.div_euclid(2)).max(0);
            } else {
                speeches[i].1 = ((speeches[i].1 as f64 + pad_samples) as i64).min(audio_length);
                speeches[i + 1].0 = ((speeches[i + 1].0 as f64 - pad_samples) as i64).max(0);
            }
        } else {
            speeches[i].1 = ((speeches[i].1 as f64 + pad_samples) as i64).min(audio_length);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(pattern: &[(f32, usize)]) -> Vec<f32> {
        pattern
            .iter()
            .flat_map(|&(p, n)| std::iter::repeat_n(p, n))
            .collect()
    }

    #[test]
    fn hysteresis_padding_and_minimums_follow_silero() {
        let opts = VadOptions::default();
        // 10 silent frames, 20 speech, 2 frames at 0.4 (between the thresholds: still speech),
        // 10 speech, 10 silent (320 ms ≥ 100 ms ends it), 5 speech (160 ms < 250 ms: dropped), 10 silent.
        let probs = frames(&[
            (0.1, 10),
            (0.9, 20),
            (0.4, 2),
            (0.9, 10),
            (0.1, 10),
            (0.9, 5),
            (0.1, 10),
        ]);
        let regions = speech_regions(&probs, probs.len() * FRAME_SAMPLES, &opts);
        assert_eq!(regions.len(), 1, "{regions:?}");
        let start = (10 * 512 - 480) as f64 / 16000.0;
        let end = ((10 + 32) * 512 + 480) as f64 / 16000.0;
        assert!((regions[0].start - start).abs() < 1e-9 && (regions[0].end - end).abs() < 1e-9);
    }

    #[test]
    fn close_regions_split_the_gap_and_open_speech_runs_to_the_end() {
        let opts = VadOptions {
            min_silence_ms: 30,
            ..VadOptions::default()
        };
        // Speech, 2 silent frames (64 ms ≥ 30 ms ends the region), speech to the end.
        let probs = frames(&[(0.9, 20), (0.1, 2), (0.9, 20)]);
        let audio = probs.len() * FRAME_SAMPLES - 100;
        let regions = speech_regions(&probs, audio, &opts);
        assert_eq!(regions.len(), 2, "{regions:?}");
        // The 1024-sample gap is ≥ 2 × 480 pad samples: each side padded by 480.
        assert!((regions[0].end - (20 * 512 + 480) as f64 / 16000.0).abs() < 1e-9);
        assert!((regions[1].start - (22 * 512 - 480) as f64 / 16000.0).abs() < 1e-9);
        assert!((regions[1].end - audio as f64 / 16000.0).abs() < 1e-9);
        assert!(speech_regions(&frames(&[(0.1, 50)]), 50 * 512, &opts).is_empty());
    }
}
