//! Fuzz `job::parse`, the retry and reset payloads, and `FailureRecord` round trips.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::job_payload(data));
