//! Silero VAD through tch on real espeak-ng speech, silence and sox noise.

mod support;

use lahstats_worker::inference::vad::{SileroVad, SpeechRegion, VadOptions};
use support::speech::{conversation, models_dir, noise, SENTENCES};
use tch::Device;

fn vad() -> SileroVad {
    SileroVad::load(&models_dir(), Device::Cpu).expect("Silero VAD loads")
}

fn speech_seconds(regions: &[SpeechRegion]) -> f64 {
    regions.iter().map(SpeechRegion::duration).sum()
}

#[test]
fn finds_each_utterance_within_a_third_of_a_second() {
    let talk = conversation(
        1.0,
        &[
            (0, SENTENCES[0], 1.5),
            (1, SENTENCES[1], 2.0),
            (2, SENTENCES[2], 1.0),
        ],
        0.002,
    );
    let regions = vad().detect(&talk.samples, &VadOptions::default()).unwrap();
    // Every true utterance starts and ends within 0.3 s of some region's edge, and no region
    // lies outside the utterances.
    for turn in &talk.turns {
        let covering: Vec<&SpeechRegion> = regions
            .iter()
            .filter(|r| r.end > turn.start && r.start < turn.end)
            .collect();
        assert!(
            !covering.is_empty(),
            "no speech found for {turn:?} in {regions:?}"
        );
        let first = covering[0];
        let last = covering[covering.len() - 1];
        assert!(
            (first.start - turn.start).abs() <= 0.3,
            "start of {turn:?} vs {regions:?}"
        );
        assert!(
            (last.end - turn.end).abs() <= 0.3,
            "end of {turn:?} vs {regions:?}"
        );
    }
    for region in &regions {
        let inside = talk
            .turns
            .iter()
            .any(|t| region.start < t.end && region.end > t.start);
        assert!(inside, "speech found in silence: {region:?}");
    }
}

#[test]
fn finds_nothing_in_silence_and_almost_nothing_in_noise() {
    let mut vad = vad();
    let silence = vec![0.0f32; 16_000 * 10];
    assert!(vad
        .detect(&silence, &VadOptions::default())
        .unwrap()
        .is_empty());
    for kind in ["whitenoise", "brownnoise"] {
        let sound = noise(kind, 20.0, 0.3);
        let regions = vad.detect(&sound, &VadOptions::default()).unwrap();
        let share = speech_seconds(&regions) / 20.0;
        assert!(
            share <= 0.02,
            "{kind}: {:.1} % called speech: {regions:?}",
            share * 100.0
        );
    }
}

#[test]
fn chunked_probabilities_match_one_call_per_chunk_boundary() {
    // 70 s crosses the 60 s chunk boundary: state and context must carry over, so speech right
    // after the boundary is found like speech anywhere else.
    let mut samples = vec![0.0f32; 16_000 * 59];
    let talk = conversation(0.0, &[(0, SENTENCES[3], 0.0), (1, SENTENCES[4], 0.0)], 0.0);
    samples.extend(&talk.samples);
    samples.resize(16_000 * 70, 0.0);
    let mut vad = vad();
    let probabilities = vad.frame_probabilities(&samples).unwrap();
    assert_eq!(probabilities.len(), samples.len().div_ceil(512));
    let regions = vad.detect(&samples, &VadOptions::default()).unwrap();
    let found = speech_seconds(&regions);
    let spoken = talk.turns.iter().map(|t| t.end - t.start).sum::<f64>();
    assert!(
        (found - spoken).abs() < 0.8,
        "found {found:.2} s of {spoken:.2} s: {regions:?}"
    );
}
