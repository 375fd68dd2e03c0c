//! The load run scripts/load drives (a target of its own, `harness = false, test = false` in
//! Cargo.toml, so a plain `cargo test` leaves it to the script): N real workers on one
//! queue, M sessions of short real speech; throughput, pickup latency, exactly-once processing.
//! Sizes come from LOAD_* variables (see scripts/load).

mod chaos_harness;
mod support;

use chaos_harness::load::{self, LoadPlan};

fn main() {
    let plan = LoadPlan::from_env();
    let report = load::run(&plan);
    report.print(&plan);
    if !report.ok() {
        eprintln!("load run failed: {:?}", report.violations);
        std::process::exit(1);
    }
}
