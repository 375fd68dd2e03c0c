//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod worker;
pub mod redis_server;
pub mod daemon;
