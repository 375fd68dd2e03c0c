//! Fuzz `audio::decode_file` with arbitrary bytes uploaded as a session's chunk.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::audio_decode(data));
