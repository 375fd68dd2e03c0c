//! Whisper tiny.en on speech made at test time with espeak-ng: recognition against the text
//! spoken, word timestamps against where each sentence was said, clips, silence, a prompt, and
//! a 70 s recording through the seek loop.

mod support;

use lahstats_worker::inference::whisper::{TranscriptionOptions, Whisper};
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

/// The passages one after another with `gap` seconds of silence between them, and where each
/// one is (seconds).
fn passages_with_pauses(gap: f64, dir: &std::path::Path) -> (Vec<f32>, Vec<(f64, f64)>) {
    let mut samples = silence(0.5);
    let mut spans = Vec::new();
    for passage in PASSAGES {
        let start = samples.len() as f64 / 16000.0;
        samples.extend(speak(passage, 150, dir));
        spans.push((start, samples.len() as f64 / 16000.0));
        samples.extend(silence(gap));
    }
    (samples, spans)
}

#[test]
fn passages_are_recognised_and_each_word_is_timed_inside_its_passage() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (samples, spans) = passages_with_pauses(2.0, dir.path());
    let mut whisper = load();
    let opts = TranscriptionOptions {
        clip_timestamps: spans.iter().map(|&(s, e)| (s - 0.2, e + 0.2)).collect(),
        ..TranscriptionOptions::default()
    };
    let segments = whisper.transcribe(&samples, &opts).expect("transcribes");
    let words: Vec<_> = segments.iter().flat_map(|s| s.words.clone()).collect();
    let text: String = words.iter().map(|w| w.word.as_str()).collect();
    let error_rate = wer(&PASSAGES.join(" "), &text);
    eprintln!(
        "{text}\nWER against the text spoken: {:.1} %",
        error_rate * 100.0
    );
    assert!(error_rate <= 0.15, "WER {error_rate:.3} above 15 %");
    // Each passage's words are timed inside it (a word's times are good to a few frames).
    let mut per_passage = vec![Vec::new(); spans.len()];
    for word in &words {
        let home = spans
            .iter()
            .position(|&(s, e)| word.start >= s - 0.3 && word.end <= e + 0.3);
        let Some(home) = home else {
            panic!("{word:?} lies outside every passage {spans:?}");
        };
        per_passage[home].push(word.word.as_str());
        assert!(word.start <= word.end, "{word:?}");
    }
    for (passage, heard) in PASSAGES.iter().zip(&per_passage) {
        let heard: String = heard.concat();
        assert!(
            wer(passage, &heard) <= 0.25,
            "{passage:?} heard as {heard:?}"
        );
    }
    for pair in words.windows(2) {
        assert!(
            pair[0].start <= pair[1].start + 1e-9,
            "words out of order: {pair:?}"
        );
    }
}

#[test]
fn short_sentences_are_recognised_and_the_same_audio_gives_the_same_words() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut samples = Vec::new();
    for sentence in &SENTENCES[..3] {
        samples.extend(speak(sentence, 170, dir.path()));
        samples.extend(silence(1.0));
    }
    let mut whisper = load();
    let opts = TranscriptionOptions::default();
    let text = |segments: Vec<lahstats_worker::inference::whisper::AsrSegment>| -> String {
        segments.iter().map(|s| s.text.as_str()).collect()
    };
    let first = text(whisper.transcribe(&samples, &opts).unwrap());
    let again = text(whisper.transcribe(&samples, &opts).unwrap());
    assert_eq!(first, again);
    let error_rate = wer(&SENTENCES[..3].join(" "), &first);
    eprintln!(
        "WER on short espeak sentences: {:.1} % ({first:?})",
        error_rate * 100.0
    );
    assert!(
        error_rate <= 0.5,
        "WER {error_rate:.3}: recognition is broken, not just espeak"
    );
}

/// The decoder keeps the cross-attention keys and values of the last audio it was given (a
/// window's decoding, alignment and forced scoring share them): another recording in between
/// must not leak into the next one, and going back must give exactly the words of before.
#[test]
fn a_recording_in_between_changes_nothing_of_the_next() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut one = speak(SENTENCES[0], 170, dir.path());
    one.extend(silence(1.0));
    let mut other = speak(SENTENCES[4], 150, dir.path());
    other.extend(silence(1.0));
    let opts = TranscriptionOptions::default();
    let mut whisper = load();
    let first = whisper.transcribe(&one, &opts).unwrap();
    let between = whisper.transcribe(&other, &opts).unwrap();
    let again = whisper.transcribe(&one, &opts).unwrap();
    let fresh = load().transcribe(&other, &opts).unwrap();
    assert!(!first.is_empty() && !between.is_empty());
    assert_eq!(first, again, "the same audio after another recording");
    assert_eq!(
        between, fresh,
        "a recording after another, against a fresh model"
    );
    assert_ne!(first, between);
}

#[test]
fn silence_gives_no_text() {
    let quiet = silence(10.0);
    // A faint hum is not speech either.
    let hum: Vec<f32> = (0..16000 * 5)
        .map(|i| 0.001 * (i as f32 * 0.0393).sin())
        .collect();
    let mut whisper = load();
    for audio in [&quiet, &hum] {
        let segments = whisper
            .transcribe(audio, &TranscriptionOptions::default())
            .expect("transcribes");
        assert!(segments.is_empty(), "{segments:?}");
    }
}

#[test]
fn words_outside_the_given_speech_are_dropped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (samples, spans) = passages_with_pauses(1.0, dir.path());
    let mut whisper = load();
    // Tell the guard only the first two passages are speech.
    let opts = TranscriptionOptions {
        speech_regions: spans[..2].to_vec(),
        ..TranscriptionOptions::default()
    };
    let segments = whisper.transcribe(&samples, &opts).expect("transcribes");
    let words: Vec<_> = segments.iter().flat_map(|s| s.words.clone()).collect();
    assert!(!words.is_empty());
    for word in &words {
        assert!(word.end <= spans[1].1 + 0.3, "{word:?} kept outside speech");
    }
    let text: String = segments.iter().map(|s| s.text.as_str()).collect();
    assert!(wer(&PASSAGES[..2].join(" "), &text) <= 0.2, "{text:?}");
}

#[test]
fn an_initial_prompt_keeps_recognition_working() {
    let dir = tempfile::tempdir().expect("temp dir");
    let audio = speak(PASSAGES[0], 150, dir.path());
    let mut whisper = load();
    let opts = TranscriptionOptions {
        initial_prompt: Some("Singlish words: lah, lor, leh, walao, shiok, sia.".into()),
        ..TranscriptionOptions::default()
    };
    let text: String = whisper
        .transcribe(&audio, &opts)
        .expect("transcribes")
        .iter()
        .map(|s| s.text.as_str())
        .collect();
    eprintln!("with a prompt: {text:?}");
    assert!(wer(PASSAGES[0], &text) <= 0.15, "{text:?}");
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
        .transcribe(&samples, &TranscriptionOptions::default())
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

/// The int8 vocabulary projection (models/int8_linear.pt) hears the passages as f32 does: the
/// same words, or within a word or two where a near tie between two tokens flips.
#[test]
fn the_int8_projection_hears_what_f32_hears() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (samples, spans) = passages_with_pauses(1.0, dir.path());
    let opts = TranscriptionOptions {
        clip_timestamps: spans.iter().map(|&(s, e)| (s - 0.2, e + 0.2)).collect(),
        ..TranscriptionOptions::default()
    };
    let text = |whisper: &mut Whisper| -> String {
        let segments = whisper.transcribe(&samples, &opts).expect("transcribes");
        segments.iter().map(|s| s.text.as_str()).collect()
    };
    let f32_text = text(&mut load());
    let mut int8 = load();
    let helper = whisper_model_dir().parent().unwrap().join("int8_linear.pt");
    assert!(
        int8.quantize_projection(&helper)
            .expect("the int8 helper loads"),
        "int8 applies on the CPU"
    );
    let int8_text = text(&mut int8);
    eprintln!("f32:  {f32_text}\nint8: {int8_text}");
    let words = f32_text.split_whitespace().count();
    let difference = wer(&f32_text, &int8_text);
    assert!(
        difference * words as f64 <= 2.0,
        "int8 differs from f32 in {:.1} of {words} words",
        difference * words as f64
    );
    assert!(wer(&PASSAGES.join(" "), &int8_text) <= 0.15);
}
