//! The long chaos run scripts/chaos drives (ignored by a plain `cargo test`): three real workers,
//! many real sessions, SIGKILLs, Redis restarts and crashes, Postgres outages, SIGHUP and
//! SIGTERM at random moments. Sizes and the seed come from CHAOS_* variables (see scripts/chaos).

mod chaos_harness;
mod support;

use std::time::Duration;

use chaos_harness::chaos::{self, ChaosPlan};

#[test]
#[ignore = "minutes long; run by scripts/chaos"]
fn sessions_survive_random_kills_outages_and_signals() {
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
    assert!(
        report.ok(),
        "{} chaos violation(s)",
        report.violations.len()
    );
}
