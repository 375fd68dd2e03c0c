//! Proof under fault and load: real `lahstats-worker run` processes on a private Redis and a
//! private Postgres, real speech, and a harness that kills, restarts and signals them (chaos) or
//! floods them with sessions (load), then checks that every session was processed exactly once.
//! Used by `tests/chaos_short.rs` (in scripts/test), `tests/chaos.rs` (scripts/chaos) and
//! `tests/load.rs` (scripts/load).
#![allow(dead_code)]

pub mod chaos;
pub mod fleet;
pub mod load;
pub mod servers;
pub mod sessions;
pub mod verify;
pub mod workers;
