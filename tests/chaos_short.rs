//! The short chaos run scripts/test runs: two real workers on a private Redis and Postgres
//! process six real two-voice sessions while one worker is SIGKILLed, Redis is restarted and
//! Postgres is stopped and started; every session must end `ready_for_claiming` exactly once with
//! the clean run's results, and nothing may be left in Redis. scripts/chaos runs the long form.

mod chaos_harness;
mod support;

use std::time::Duration;

use chaos_harness::chaos::{self, ChaosPlan};

#[test]
fn six_sessions_survive_a_kill_a_redis_restart_and_a_postgres_outage() {
    let plan = ChaosPlan {
        workers: 2,
        clips: 2,
        sessions: 6,
        kills: 1,
        redis_restarts: 1,
        postgres_outages: 1,
        sighups: 0,
        sigterms: 0,
        submit_every: Duration::from_millis(1500),
        fault_gap: (2.0, 4.0),
        deadline: Duration::from_secs(110),
        seed: chaos::clock_seed(),
    };
    let report = chaos::run(plan);
    report.print();
    assert!(report.ok(), "chaos violations: {:#?}", report.violations);
    assert_eq!((report.sessions, report.ready, report.lost), (6, 6, 0));
    assert_eq!(report.duplicate_result_sets, 0);
    assert_eq!(
        (report.kills, report.redis_outages, report.postgres_outages),
        (1, 1, 1),
        "every fault was injected"
    );
}
