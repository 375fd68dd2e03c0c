//! Helpers shared by the integration tests: real audio made at test time, real models.

#![allow(dead_code)]

pub mod tts;
