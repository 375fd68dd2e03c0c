//! Helpers shared by the integration tests: real databases made at test time.
#![allow(dead_code)]

pub mod postgres;
