//! Helpers shared by the integration tests: real databases, Redis servers, workers, audio and
//! speech made at test time.
#![allow(dead_code)]

pub mod audio;
pub mod daemon;
pub mod postgres;
pub mod redis_server;
pub mod speech;
pub mod storage;
pub mod tts;
pub mod worker;
