//! The load run: N workers on one queue, M sessions of short real speech fed so that a set number
//! are in the system at once (the workers' count by default, so pickup latency measures the
//! worker, not a backlog; 0 pushes everything at once). Reports throughput, pickup latency (LPUSH
//! → processing start, from `enqueued_at_ms` in the payload and the worker's DEBUG line) and
//! whether every session was processed exactly once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::BigInt;
use uuid::Uuid;

use super::fleet::Fleet;
use super::servers::{ChaosPostgres, ChaosRedis};
use super::sessions::{make_clips, Clip, Sessions, SHORT_EXCHANGES};
use super::verify::queue_residue;
use super::workers::{all_logs, FleetSettings};

#[derive(Debug, Clone)]
pub struct LoadPlan {
    pub workers: usize,
    pub sessions: usize,
    pub clips: usize,
    /// Every session is 1 s of silence: no speech to recognise, so what is measured is the
    /// queue, the database and the worker's own overhead.
    pub silent: bool,
    /// Sessions in the system (pushed, not yet final) at once; 0 pushes all at the start.
    pub concurrency: usize,
    /// Feeding stops after this; sessions in hand then get two more minutes.
    pub deadline: Duration,
}

impl LoadPlan {
    /// LOAD_WORKERS (3), LOAD_SESSIONS (1000), LOAD_CLIPS (4), LOAD_CONCURRENCY (workers),
    /// LOAD_DEADLINE_SECS (3600), LOAD_SILENT (unset).
    pub fn from_env() -> LoadPlan {
        let var = |name: &str, default: usize| -> usize {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        let workers = var("LOAD_WORKERS", 3).max(1);
        LoadPlan {
            workers,
            sessions: var("LOAD_SESSIONS", 1000),
            clips: var("LOAD_CLIPS", 4).clamp(1, SHORT_EXCHANGES.len()),
            silent: std::env::var_os("LOAD_SILENT").is_some_and(|v| !v.is_empty() && v != "0"),
            concurrency: var("LOAD_CONCURRENCY", workers),
            deadline: Duration::from_secs(var("LOAD_DEADLINE_SECS", 3600) as u64),
        }
    }
}

#[derive(Debug, Default)]
pub struct LoadReport {
    pub pushed: usize,
    pub completed: usize,
    pub failed: usize,
    pub seconds: f64,
    pub throughput: f64,
    pub latency_ms: Vec<i64>,
    pub mean_processing_seconds: f64,
    pub violations: Vec<String>,
    pub hit_deadline: bool,
}

impl LoadReport {
    pub fn ok(&self) -> bool {
        self.violations.is_empty() && !self.hit_deadline
    }

    pub fn print(&self, plan: &LoadPlan) {
        let percentile = |p: f64| -> i64 {
            if self.latency_ms.is_empty() {
                return -1;
            }
            let rank = ((p * self.latency_ms.len() as f64).ceil() as usize).max(1);
            self.latency_ms[rank.min(self.latency_ms.len()) - 1]
        };
        println!("load: ---------------------------------------------");
        println!(
            "load: workers {}, sessions {}{}, concurrency {}",
            plan.workers,
            plan.sessions,
            if plan.silent { " (1 s silent)" } else { "" },
            if plan.concurrency == 0 {
                "all at once".to_string()
            } else {
                plan.concurrency.to_string()
            }
        );
        println!("load: pushed                  {}", self.pushed);
        println!("load: completed               {}", self.completed);
        println!("load: failed                  {}", self.failed);
        println!("load: wall time               {:.1}s", self.seconds);
        println!(
            "load: throughput              {:.3} sessions/s",
            self.throughput
        );
        println!(
            "load: pickup latency          p50 {} ms, p99 {} ms, max {} ms ({} samples)",
            percentile(0.50),
            percentile(0.99),
            self.latency_ms.last().copied().unwrap_or(-1),
            self.latency_ms.len()
        );
        println!(
            "load: processing per session  {:.2}s mean",
            self.mean_processing_seconds
        );
        println!(
            "load: exactly once            {}",
            if self.violations.is_empty() {
                "yes"
            } else {
                "NO"
            }
        );
        if self.hit_deadline {
            println!("load: stopped at the deadline before every session was done");
        }
        for violation in self.violations.iter().take(20) {
            println!("load: VIOLATION {violation}");
        }
    }
}

/// Sessions in a final state, on a connection kept open for the polling.
fn final_count(pg: &mut PgConnection) -> Option<usize> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    diesel::sql_query(
        "SELECT count(*) AS n FROM sessions WHERE status IN ('ready_for_claiming', 'failed')",
    )
    .get_result::<Row>(pg)
    .ok()
    .map(|row| row.n as usize)
}

pub fn run(plan: &LoadPlan) -> LoadReport {
    let root = tempfile::Builder::new()
        .prefix("lahstats-load-")
        .tempdir()
        .expect("tempdir");
    let redis = ChaosRedis::start(&root.path().join("redis"));
    let postgres = ChaosPostgres::start();
    let prefix = format!("load-{}", &Uuid::new_v4().simple().to_string()[..8]);
    let sessions = Sessions::new(
        &root.path().join("storage"),
        &postgres.url(),
        &redis.url(),
        &prefix,
    );
    let clips = if plan.silent {
        vec![silent_clip(&root.path().join("clips"))]
    } else {
        make_clips(
            &root.path().join("clips"),
            &SHORT_EXCHANGES,
            plan.clips,
            0.2,
            (0.8, 2.5),
        )
    };
    let ids: Vec<Uuid> = (0..plan.sessions).map(|_| Uuid::new_v4()).collect();
    for (i, id) in ids.iter().enumerate() {
        sessions
            .register(*id, &clips[i % clips.len()])
            .expect("register");
    }
    let settings = FleetSettings {
        dir: root.path().to_path_buf(),
        redis_url: redis.url(),
        database_url: postgres.url(),
        key_prefix: prefix.clone(),
        env: vec![
            ("OMP_NUM_THREADS".into(), "1".into()),
            (
                "RUST_LOG".into(),
                "info,lahstats_worker::processor=debug".into(),
            ),
        ],
    };
    let mut fleet = Fleet::start(settings, "load", plan.workers, Duration::from_secs(120));
    println!(
        "load: {} workers ready; {} sessions registered over {} clips ({:?} s)",
        plan.workers,
        plan.sessions,
        clips.len(),
        clips
            .iter()
            .map(|c| (c.seconds * 100.0).round() / 100.0)
            .collect::<Vec<_>>()
    );
    let mut pg = PgConnection::establish(&postgres.url()).expect("postgres for polling");
    let started = Instant::now();
    let mut pushed = 0;
    let mut done = 0;
    let mut last_print = Instant::now();
    let mut report = LoadReport::default();
    let feeding_ends = started + plan.deadline;
    let mut drain_until = None;
    while done < pushed || pushed < ids.len() {
        fleet.tend();
        done = final_count(&mut pg).unwrap_or(done);
        let room = if plan.concurrency == 0 {
            ids.len()
        } else {
            plan.concurrency.saturating_sub(pushed - done)
        };
        if Instant::now() < feeding_ends {
            for id in ids.iter().skip(pushed).take(room) {
                sessions.enqueue(*id).expect("LPUSH");
                pushed += 1;
            }
        } else {
            report.hit_deadline = pushed < ids.len() || done < pushed;
            let until = *drain_until.get_or_insert(Instant::now() + Duration::from_secs(120));
            if Instant::now() >= until || done >= pushed {
                break;
            }
        }
        if last_print.elapsed() > Duration::from_secs(30) {
            println!(
                "load: {done}/{} done after {:.0}s ({:.3}/s)",
                ids.len(),
                started.elapsed().as_secs_f64(),
                done as f64 / started.elapsed().as_secs_f64()
            );
            last_print = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    report.seconds = started.elapsed().as_secs_f64();
    report.pushed = pushed;
    fleet.stop_all(Duration::from_secs(120));
    report.violations.extend(fleet.events.violations.clone());
    let statuses = sessions.statuses().unwrap_or_default();
    let pushed_ids = &ids[..pushed];
    report.completed = pushed_ids
        .iter()
        .filter(|id| statuses.get(id).map(String::as_str) == Some("ready_for_claiming"))
        .count();
    report.failed = pushed_ids
        .iter()
        .filter(|id| statuses.get(id).map(String::as_str) == Some("failed"))
        .count();
    report.throughput = report.completed as f64 / report.seconds.max(1e-9);
    read_logs(root.path(), pushed_ids, &mut report);
    if !report.hit_deadline {
        match queue_residue(&redis, &prefix) {
            Some(0) => {}
            other => report
                .violations
                .push(format!("jobs left in Redis after the run: {other:?}")),
        }
    }
    if std::env::var_os("LOAD_KEEP").is_some() {
        println!("load: run directory kept at {}", root.keep().display());
    }
    report
}

/// One second of 16 kHz silence as a WAV chunk.
fn silent_clip(dir: &std::path::Path) -> Clip {
    std::fs::create_dir_all(dir).expect("clip dir");
    let path = dir.join("silence.wav");
    let status = std::process::Command::new("sox")
        .args(["-n", "-r", "16000", "-c", "1", "-b", "16"])
        .arg(&path)
        .args(["trim", "0", "1"])
        .status()
        .expect("sox is installed");
    assert!(status.success(), "sox could not make {}", path.display());
    Clip { path, seconds: 1.0 }
}

/// Pickup latencies, processing times and per-session processing counts from the workers' logs.
fn read_logs(dir: &std::path::Path, pushed: &[Uuid], report: &mut LoadReport) {
    let mut started: HashMap<Uuid, usize> = HashMap::new();
    let mut completed: HashMap<Uuid, usize> = HashMap::new();
    let mut processing_seconds = Vec::new();
    for (_, text) in all_logs(dir) {
        for line in text.lines() {
            if let Some(id) = field_after(line, "Processing session: ") {
                *started.entry(id).or_default() += 1;
            } else if let Some(rest) = line.split("✅ Session ").nth(1) {
                if let Some(id) = rest
                    .strip_suffix(" completed successfully!")
                    .and_then(|id| Uuid::parse_str(id).ok())
                {
                    *completed.entry(id).or_default() += 1;
                }
            } else if let Some(rest) = line.split(" picked up ").nth(1) {
                if let Some(ms) = rest.split(" ms").next().and_then(|n| n.parse().ok()) {
                    report.latency_ms.push(ms);
                }
            } else if let Some(rest) = line.split("✅ Processing: ").nth(1) {
                if let Some(s) = rest.split('s').next().and_then(|n| n.parse::<f64>().ok()) {
                    processing_seconds.push(s);
                }
            }
        }
    }
    report.latency_ms.sort_unstable();
    report.mean_processing_seconds =
        processing_seconds.iter().sum::<f64>() / processing_seconds.len().max(1) as f64;
    for id in pushed {
        let (s, c) = (
            started.get(id).copied().unwrap_or(0),
            completed.get(id).copied().unwrap_or(0),
        );
        if (s, c) != (1, 1) && !report.hit_deadline {
            report.violations.push(format!(
                "session {id} started {s} time(s), completed {c} time(s)"
            ));
        }
    }
}

fn field_after(line: &str, marker: &str) -> Option<Uuid> {
    let rest = line.split(marker).nth(1)?;
    Uuid::parse_str(rest.trim()).ok()
}
