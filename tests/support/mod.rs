//! Helpers shared by the integration tests: real databases, Redis servers, workers and audio
//! made at test time.
#![allow(dead_code)]

pub mod audio;
pub mod daemon;
pub mod postgres;
pub mod redis_server;
pub mod worker;
