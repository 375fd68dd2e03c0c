//! The checks after a chaos run: every session final exactly once with the clean run's results,
//! nothing left in Redis, nothing unexpected in the logs; and the report that says so.

use std::collections::HashMap;
use std::path::Path;

use uuid::Uuid;

use super::servers::ChaosRedis;
use super::sessions::{ResultSet, Sessions};
use super::workers::all_logs;

/// What a chaos run did and found.
#[derive(Debug, Default, Clone)]
pub struct ChaosReport {
    pub seed: u64,
    pub sessions: usize,
    pub ready: usize,
    /// Submitted sessions that never reached a final state.
    pub lost: usize,
    pub failed: usize,
    pub duplicate_result_sets: usize,
    /// Results that differ from the clean run's for the same audio (not duplicates).
    pub mismatched_results: usize,
    /// Sessions whose processing completed more than once (a redelivery after a fault).
    pub reprocessed: usize,
    pub kills: usize,
    pub redis_outages: usize,
    pub postgres_outages: usize,
    pub sighups: usize,
    pub sigterms: usize,
    pub clean_exits: usize,
    pub start_refusals: usize,
    pub violations: Vec<String>,
    pub clean_run_seconds: f64,
    pub elapsed_seconds: f64,
}

impl ChaosReport {
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }

    pub fn print(&self) {
        let survived = |n: usize| if self.ok() { n } else { 0 };
        println!("chaos: ---------------------------------------------");
        println!("chaos: seed                    {}", self.seed);
        println!("chaos: sessions                {}", self.sessions);
        println!("chaos: ready_for_claiming      {}", self.ready);
        println!("chaos: lost                    {}", self.lost);
        println!("chaos: failed                  {}", self.failed);
        println!(
            "chaos: duplicate result sets   {}",
            self.duplicate_result_sets
        );
        println!(
            "chaos: results unlike clean run {}",
            self.mismatched_results
        );
        println!(
            "chaos: processed more than once {} (redelivered after a fault; results idempotent)",
            self.reprocessed
        );
        println!("chaos: kills survived          {}", survived(self.kills));
        println!(
            "chaos: Redis outages survived  {}",
            survived(self.redis_outages)
        );
        println!(
            "chaos: Postgres outages survived {}",
            survived(self.postgres_outages)
        );
        println!(
            "chaos: signals sent            {} (SIGHUP {}, SIGTERM {}; {} drained exits 0)",
            self.sighups + self.sigterms,
            self.sighups,
            self.sigterms,
            self.clean_exits
        );
        println!("chaos: starts refused (db down) {}", self.start_refusals);
        println!(
            "chaos: clean run               {:.1}s",
            self.clean_run_seconds
        );
        println!(
            "chaos: whole run               {:.1}s",
            self.elapsed_seconds
        );
        if self.ok() {
            println!("chaos: PASSED");
        } else {
            println!("chaos: FAILED, {} violation(s):", self.violations.len());
            for violation in &self.violations {
                println!("chaos: VIOLATION {violation}");
            }
        }
    }
}

/// Jobs anywhere in the queue's lists: waiting, in flight, retrying or failed.
pub fn queue_residue(redis: &ChaosRedis, prefix: &str) -> Option<usize> {
    let (waiting, inflight, retry, failed) = queue_lists(redis, prefix)?;
    Some(waiting + inflight.values().sum::<usize>() + retry + failed.len())
}

/// (waiting, in-flight per worker key, retry set size, failed entries).
type QueueLists = (usize, HashMap<String, usize>, usize, Vec<String>);

fn queue_lists(redis: &ChaosRedis, prefix: &str) -> Option<QueueLists> {
    let mut conn = redis.connection()?;
    let processing = format!("{prefix}:processing");
    let waiting: usize = redis::cmd("LLEN").arg(&processing).query(&mut conn).ok()?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{processing}:inflight:*"))
        .query(&mut conn)
        .ok()?;
    let mut inflight = HashMap::new();
    for key in keys {
        let n: usize = redis::cmd("LLEN").arg(&key).query(&mut conn).ok()?;
        inflight.insert(key, n);
    }
    let retry: usize = redis::cmd("ZCARD")
        .arg(format!("{prefix}:retry"))
        .query(&mut conn)
        .ok()?;
    let failed: Vec<String> = redis::cmd("LRANGE")
        .arg(format!("{prefix}:failed"))
        .arg(0)
        .arg(-1)
        .query(&mut conn)
        .ok()?;
    Some((waiting, inflight, retry, failed))
}

/// Checks the database, Redis and the logs after the run.
pub fn check(
    sessions: &Sessions,
    redis: &ChaosRedis,
    prefix: &str,
    dir: &Path,
    submitted: &HashMap<Uuid, usize>,
    baseline: &[ResultSet],
) -> ChaosReport {
    let mut report = ChaosReport {
        sessions: submitted.len(),
        ..ChaosReport::default()
    };
    check_sessions(sessions, submitted, baseline, &mut report);
    check_queue(redis, prefix, &mut report);
    check_logs(dir, submitted, &mut report);
    report
}

fn check_sessions(
    sessions: &Sessions,
    submitted: &HashMap<Uuid, usize>,
    baseline: &[ResultSet],
    report: &mut ChaosReport,
) {
    let statuses = match sessions.statuses() {
        Ok(statuses) => statuses,
        Err(err) => {
            report
                .violations
                .push(format!("cannot read the sessions: {err}"));
            return;
        }
    };
    for (id, clip) in submitted {
        match statuses.get(id).map(String::as_str) {
            Some("ready_for_claiming") => report.ready += 1,
            Some("failed") => {
                report.failed += 1;
                report.violations.push(format!("session {id} failed"));
                continue;
            }
            other => {
                report.lost += 1;
                report
                    .violations
                    .push(format!("session {id} lost: status {other:?}"));
                continue;
            }
        }
        let expected = &baseline[*clip];
        let (speakers, words, segments) = match sessions.raw_row_counts(*id) {
            Ok(counts) => counts,
            Err(err) => {
                report.violations.push(format!("session {id}: {err}"));
                continue;
            }
        };
        let expected_words: usize = expected.speakers.iter().map(|s| s.3.len()).sum();
        let duplicated = speakers as usize > expected.speakers.len()
            || words as usize > expected_words
            || segments as usize > expected.transcript_segments;
        if duplicated {
            report.duplicate_result_sets += 1;
            report.violations.push(format!(
                "session {id}: duplicate results ({speakers} speakers, {words} word counts, {segments} segments; clean run {}, {expected_words}, {})",
                expected.speakers.len(),
                expected.transcript_segments
            ));
            continue;
        }
        match sessions.results(*id) {
            Ok(found) if &found == expected => {}
            Ok(found) => {
                report.mismatched_results += 1;
                report.violations.push(format!(
                    "session {id} (clip {clip}): results differ from the clean run:\n  found    {found:?}\n  expected {expected:?}"
                ));
            }
            Err(err) => report.violations.push(format!("session {id}: {err}")),
        }
    }
}

fn check_queue(redis: &ChaosRedis, prefix: &str, report: &mut ChaosReport) {
    let Some((waiting, inflight, retry, failed)) = queue_lists(redis, prefix) else {
        report
            .violations
            .push("cannot read the queue's lists from Redis".into());
        return;
    };
    if waiting > 0 {
        report.violations.push(format!(
            "{waiting} job(s) still waiting in {prefix}:processing"
        ));
    }
    for (key, n) in inflight.iter().filter(|(_, n)| **n > 0) {
        report.violations.push(format!("{n} job(s) left in {key}"));
    }
    if retry > 0 {
        report
            .violations
            .push(format!("{retry} job(s) left in the retry set"));
    }
    for entry in failed {
        report
            .violations
            .push(format!("unexpected failed-list entry: {entry}"));
    }
}

/// Counts completions per session in every worker log, and flags panics.
fn check_logs(dir: &Path, submitted: &HashMap<Uuid, usize>, report: &mut ChaosReport) {
    let mut completions: HashMap<Uuid, usize> = HashMap::new();
    for (path, text) in all_logs(dir) {
        for line in text.lines() {
            if let Some(id) = line
                .split("Session ")
                .nth(1)
                .and_then(|rest| rest.strip_suffix(" completed successfully!"))
                .and_then(|id| Uuid::parse_str(id).ok())
            {
                *completions.entry(id).or_default() += 1;
            }
            if line.contains("panicked") {
                report
                    .violations
                    .push(format!("panic in {}: {line}", path.display()));
            }
        }
    }
    report.reprocessed = submitted
        .keys()
        .filter(|id| completions.get(id).copied().unwrap_or(0) > 1)
        .count();
}
