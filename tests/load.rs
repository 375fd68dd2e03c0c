//! The load run scripts/load drives (ignored by a plain `cargo test`): N real workers on one
//! queue, M sessions of short real speech; throughput, pickup latency, exactly-once processing.
//! Sizes come from LOAD_* variables (see scripts/load).

mod chaos_harness;
mod support;

use chaos_harness::load::{self, LoadPlan};

#[test]
#[ignore = "many minutes long; run by scripts/load"]
fn many_sessions_on_one_queue_each_processed_once() {
    let plan = LoadPlan::from_env();
    let report = load::run(&plan);
    report.print(&plan);
    assert!(report.ok(), "load run failed: {:?}", report.violations);
}
