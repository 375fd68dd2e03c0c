//! Whisper tiny.en on speech made at test time with espeak-ng: recognition against the text
//! spoken, silence, batching, a prompt, and a 70 s recording through `transcribe_long`.

mod support;

use lahstats_worker::inference::whisper::{DecodeOptions, Whisper};
use support::tts::{silence, speak, wer, whisper_model_dir, PASSAGES};
use tch::Device;

/// Short isolated sentences, numbers spoken as words and a tongue twister: much harder.
const SENTENCES: [&str; 6] = [
    "The quick brown fox jumps over the lazy dog.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "We counted twenty three boats in the harbour this morning.",
    "My phone number is five five five, one two three four.",
    "The meeting starts at nine o'clock on Monday.",
    "She sells sea shells by the sea shore.",
];

fn load() -> Whisper {
    Whisper::load(&whisper_model_dir(), Device::Cpu).expect("Whisper tiny.en loads")
}

#[test]
fn espeak_passages_are_recognised_in_one_batch() {
    let dir = tempfile::tempdir().expect("temp dir");
    let audio: Vec<Vec<f32>> = PASSAGES.iter().map(|s| speak(s, 150, dir.path())).collect();
    let windows: Vec<&[f32]> = audio.iter().map(|a| a.as_slice()).collect();
    let mut whisper = load();
    let opts = DecodeOptions {
        max_batch: 4,
        ..DecodeOptions::default()
    };
    let transcripts = whisper
        .transcribe_batch(&windows, &opts)
        .expect("transcribes");
    assert_eq!(transcripts.len(), PASSAGES.len());
    let reference = PASSAGES.join(" ");
    let hypothesis: Vec<&str> = transcripts.iter().map(|t| t.text.as_str()).collect();
    let error_rate = wer(&reference, &hypothesis.join(" "));
    for (sentence, transcript) in PASSAGES.iter().zip(&transcripts) {
        eprintln!("{sentence}\n  → {:?}", transcript.text);
        for segment in &transcript.segments {
            assert!(
                segment.start < segment.end && segment.end <= 30.0,
                "{segment:?}"
            );
        }
    }
    eprintln!("WER against the text spoken: {:.1} %", error_rate * 100.0);
    assert!(error_rate <= 0.15, "WER {error_rate:.3} above 15 %");
}

#[test]
fn short_sentences_are_recognised_and_batching_changes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let audio: Vec<Vec<f32>> = SENTENCES[..3]
        .iter()
        .map(|s| speak(s, 170, dir.path()))
        .collect();
    let windows: Vec<&[f32]> = audio.iter().map(|a| a.as_slice()).collect();
    let mut whisper = load();
    let one = DecodeOptions {
        max_batch: 1,
        ..DecodeOptions::default()
    };
    let many = DecodeOptions {
        max_batch: 3,
        ..DecodeOptions::default()
    };
    let alone: Vec<String> = whisper
        .transcribe_batch(&windows, &one)
        .unwrap()
        .into_iter()
        .map(|t| t.text)
        .collect();
    let batched: Vec<String> = whisper
        .transcribe_batch(&windows, &many)
        .unwrap()
        .into_iter()
        .map(|t| t.text)
        .collect();
    assert_eq!(alone, batched);
    let error_rate = wer(&SENTENCES[..3].join(" "), &alone.join(" "));
    eprintln!(
        "WER on short espeak sentences: {:.1} % ({alone:?})",
        error_rate * 100.0
    );
    assert!(
        error_rate <= 0.5,
        "WER {error_rate:.3}: recognition is broken, not just espeak"
    );
}

#[test]
fn silence_gives_no_text() {
    let quiet = silence(10.0);
    // A faint hum is not speech either.
    let hum: Vec<f32> = (0..16000 * 5)
        .map(|i| 0.001 * (i as f32 * 0.0393).sin())
        .collect();
    let mut whisper = load();
    let transcripts = whisper
        .transcribe_batch(&[&quiet, &hum], &DecodeOptions::default())
        .expect("transcribes");
    for transcript in &transcripts {
        assert!(transcript.segments.is_empty(), "{transcript:?}");
        assert_eq!(transcript.text, "");
    }
}

#[test]
fn an_initial_prompt_keeps_recognition_working() {
    let dir = tempfile::tempdir().expect("temp dir");
    let audio = speak(PASSAGES[0], 150, dir.path());
    let mut whisper = load();
    let opts = DecodeOptions {
        initial_prompt: Some("Singlish words: lah, lor, leh, walao, shiok, sia.".into()),
        ..DecodeOptions::default()
    };
    let transcript = whisper
        .transcribe_batch(&[&audio], &opts)
        .expect("transcribes")
        .remove(0);
    eprintln!("with a prompt: {:?}", transcript.text);
    assert!(
        wer(PASSAGES[0], &transcript.text) <= 0.15,
        "{:?}",
        transcript.text
    );
}

#[test]
fn a_seventy_second_recording_is_transcribed_window_by_window() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut samples = Vec::new();
    let mut spoken = Vec::new();
    let mut round = 0;
    while samples.len() < 70 * 16000 {
        let sentence = PASSAGES[round % PASSAGES.len()];
        samples.extend(speak(sentence, 150, dir.path()));
        samples.extend(silence(0.8));
        spoken.push(sentence);
        round += 1;
    }
    let seconds = samples.len() as f64 / 16000.0;
    let mut whisper = load();
    let segments = whisper
        .transcribe_long(&samples, &DecodeOptions::default())
        .expect("transcribes");
    let text: Vec<&str> = segments.iter().map(|s| s.text.as_str()).collect();
    let error_rate = wer(&spoken.join(" "), &text.join(" "));
    eprintln!(
        "{seconds:.1} s, {} segments, WER {:.1} %",
        segments.len(),
        error_rate * 100.0
    );
    for pair in segments.windows(2) {
        assert!(
            pair[0].start <= pair[1].start,
            "segments out of order: {pair:?}"
        );
    }
    let last = segments.last().expect("segments");
    assert!(
        last.end > seconds - 10.0 && last.end <= seconds + 1.0,
        "last segment ends at {}",
        last.end
    );
    assert!(error_rate <= 0.15, "WER {error_rate:.3} above 15 %");
}
