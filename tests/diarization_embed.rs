//! GE2E speaker embeddings through tch on espeak-ng voices.

mod support;

use lahstats_worker::inference::embed::SpeakerEncoder;
use support::speech::{models_dir, speak, SENTENCES, VOICES};
use tch::{Device, Kind, Tensor};

/// 1.5 s windows every 0.75 s over a few sentences of one voice.
fn windows_of(voice: usize) -> Vec<Vec<f32>> {
    let audio: Vec<f32> = SENTENCES[voice * 2..voice * 2 + 2]
        .iter()
        .flat_map(|s| speak(VOICES[voice], s))
        .collect();
    audio
        .windows(24_000)
        .step_by(12_000)
        .map(<[f32]>::to_vec)
        .collect()
}

fn mean_cosine(a: &Tensor, b: &Tensor) -> f64 {
    a.matmul(&b.tr()).mean(Kind::Double).double_value(&[])
}

#[test]
fn same_voice_windows_are_closer_than_other_voices() {
    let mut encoder = SpeakerEncoder::load(&models_dir(), Device::Cpu).unwrap();
    let embeddings: Vec<Tensor> = (0..3)
        .map(|v| {
            let windows = windows_of(v);
            let slices: Vec<&[f32]> = windows.iter().map(Vec::as_slice).collect();
            encoder.embed_windows(&slices, 8).unwrap()
        })
        .collect();
    for e in &embeddings {
        assert_eq!(e.size()[1], 256);
        let norms = e.norm_scalaropt_dim(2, [1], false);
        assert!((norms - 1.0).abs().max().double_value(&[]) < 1e-4);
    }
    for a in 0..3 {
        let within = mean_cosine(&embeddings[a], &embeddings[a]);
        for b in (0..3).filter(|&b| b != a) {
            let across = mean_cosine(&embeddings[a], &embeddings[b]);
            println!("voice {a} within {within:.3}, with voice {b} {across:.3}");
            assert!(
                within > across + 0.05,
                "voice {a}: within {within:.3}, with {b}: {across:.3}"
            );
        }
    }
}

#[test]
fn batching_and_mixed_lengths_do_not_change_embeddings() {
    let mut encoder = SpeakerEncoder::load(&models_dir(), Device::Cpu).unwrap();
    let windows = windows_of(1);
    let mut slices: Vec<&[f32]> = windows.iter().map(Vec::as_slice).collect();
    slices.push(&windows[0][..20_000]); // a shorter window in the same call
    let one_by_one = encoder.embed_windows(&slices, 1).unwrap();
    let batched = encoder.embed_windows(&slices, 16).unwrap();
    assert_eq!(batched.size(), vec![slices.len() as i64, 256]);
    let difference = (one_by_one - &batched).abs().max().double_value(&[]);
    assert!(
        difference < 1e-4,
        "batched embeddings differ by {difference}"
    );
    assert!(encoder.embed_windows(&[&windows[0][..100]], 4).is_err());
    assert_eq!(encoder.embed_windows(&[], 4).unwrap().size(), vec![0, 256]);
}
