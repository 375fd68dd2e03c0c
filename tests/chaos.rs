//! The long chaos run scripts/chaos drives (a target of its own, `harness = false, test = false`
//! in Cargo.toml, so a plain `cargo test` leaves it to the script): three real workers,
//! many real sessions, SIGKILLs, Redis restarts and crashes, Postgres outages, SIGHUP and
//! SIGTERM at random moments. Sizes and the seed come from CHAOS_* variables (see scripts/chaos).

mod chaos_harness;
mod support;

use std::time::Duration;

use chaos_harness::chaos::{self, ChaosPlan};

fn main() {
    let plan = ChaosPlan::from_env(ChaosPlan {
        workers: 3,
        clips: 4,
        sessions: 30,
        kills: 4,
        redis_restarts: 2,
        postgres_outages: 2,
        sighups: 2,
        sigterms: 2,
        submit_every: Duration::from_millis(2000),
        fault_gap: (3.0, 8.0),
        deadline: Duration::from_secs(900),
        seed: chaos::clock_seed(),
    });
    let report = chaos::run(plan);
    report.print();
    if !report.ok() {
        eprintln!("{} chaos violation(s)", report.violations.len());
        std::process::exit(1);
    }
}
