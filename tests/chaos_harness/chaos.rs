//! The chaos run: real workers on a private Redis and Postgres process real sessions while the
//! harness kills workers, restarts Redis, stops Postgres and sends SIGHUP and SIGTERM at random
//! moments. A clean run of the same audio first gives the results every session must end with.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use super::fleet::Fleet;
use super::servers::{ChaosPostgres, ChaosRedis, RedisStop};
use super::sessions::{make_clips, Clip, ResultSet, Sessions, CONVERSATIONS};
use super::verify::{self, ChaosReport};
use super::workers::FleetSettings;

/// How big a run is and which faults it injects.
#[derive(Debug, Clone)]
pub struct ChaosPlan {
    pub workers: usize,
    /// Distinct conversations (each processed once in the clean run).
    pub clips: usize,
    pub sessions: usize,
    pub kills: usize,
    pub redis_restarts: usize,
    pub postgres_outages: usize,
    pub sighups: usize,
    pub sigterms: usize,
    /// A session is submitted this often while the faults go on.
    pub submit_every: Duration,
    /// Seconds between two faults, drawn from this range.
    pub fault_gap: (f64, f64),
    /// The whole run, set-up included, gives up after this.
    pub deadline: Duration,
    pub seed: u64,
}

impl ChaosPlan {
    /// `defaults` with any of CHAOS_WORKERS, CHAOS_CLIPS, CHAOS_SESSIONS, CHAOS_KILLS,
    /// CHAOS_REDIS_RESTARTS, CHAOS_POSTGRES_OUTAGES, CHAOS_SIGHUPS, CHAOS_SIGTERMS,
    /// CHAOS_DEADLINE_SECS and CHAOS_SEED from the environment.
    pub fn from_env(defaults: ChaosPlan) -> ChaosPlan {
        let var = |name: &str, default: usize| -> usize {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        ChaosPlan {
            workers: var("CHAOS_WORKERS", defaults.workers).max(1),
            clips: var("CHAOS_CLIPS", defaults.clips).clamp(1, CONVERSATIONS.len()),
            sessions: var("CHAOS_SESSIONS", defaults.sessions),
            kills: var("CHAOS_KILLS", defaults.kills),
            redis_restarts: var("CHAOS_REDIS_RESTARTS", defaults.redis_restarts),
            postgres_outages: var("CHAOS_POSTGRES_OUTAGES", defaults.postgres_outages),
            sighups: var("CHAOS_SIGHUPS", defaults.sighups),
            sigterms: var("CHAOS_SIGTERMS", defaults.sigterms),
            deadline: Duration::from_secs(var(
                "CHAOS_DEADLINE_SECS",
                defaults.deadline.as_secs() as usize,
            ) as u64),
            seed: std::env::var("CHAOS_SEED")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(defaults.seed),
            ..defaults
        }
    }
}

/// A fresh seed from the clock, for runs that do not ask for one.
pub fn clock_seed() -> u64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0) as u64
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Kill,
    RedisRestart,
    PostgresOutage,
    Sighup,
    Sigterm,
}

/// Everything a run holds; dropped at the end, which stops the servers and any worker left.
struct Run {
    plan: ChaosPlan,
    root: tempfile::TempDir,
    redis: ChaosRedis,
    postgres: ChaosPostgres,
    prefix: String,
    sessions: Sessions,
    fleet: Fleet,
    rng: StdRng,
    redis_outages: usize,
    postgres_outages: usize,
}

/// Runs the plan and checks the outcome.
pub fn run(plan: ChaosPlan) -> ChaosReport {
    let started = Instant::now();
    println!("chaos: {plan:?}");
    let root = tempfile::Builder::new()
        .prefix("lahstats-chaos-")
        .tempdir()
        .expect("tempdir");
    let redis = ChaosRedis::start(&root.path().join("redis"));
    let postgres = ChaosPostgres::start();
    let prefix = format!("chaos-{}", &Uuid::new_v4().simple().to_string()[..8]);
    let sessions = Sessions::new(
        &root.path().join("storage"),
        &postgres.url(),
        &redis.url(),
        &prefix,
    );
    let clips = make_clips(
        &root.path().join("clips"),
        &CONVERSATIONS,
        plan.clips,
        0.6,
        (3.0, 6.0),
    );
    let settings = FleetSettings {
        dir: root.path().to_path_buf(),
        redis_url: redis.url(),
        database_url: postgres.url(),
        key_prefix: prefix.clone(),
        env: chaos_env(),
    };
    let fleet = Fleet::start(settings, "chaos", plan.workers, Duration::from_secs(120));
    println!(
        "chaos: {} workers ready on redis {} and postgres {} after {:.1}s",
        plan.workers,
        redis.url(),
        postgres.url(),
        started.elapsed().as_secs_f64()
    );
    let mut run = Run {
        rng: StdRng::seed_from_u64(plan.seed),
        plan,
        root,
        redis,
        postgres,
        prefix,
        sessions,
        fleet,
        redis_outages: 0,
        postgres_outages: 0,
    };
    let clean_started = Instant::now();
    let baseline = run.clean_run(&clips, started);
    let clean_seconds = clean_started.elapsed().as_secs_f64();
    let submitted = run.chaos(&clips, started);
    run.settle(&submitted, started);
    run.fleet.stop_all(Duration::from_secs(90));
    let mut report = verify::check(
        &run.sessions,
        &run.redis,
        &run.prefix,
        run.root.path(),
        &submitted,
        &baseline,
    );
    report.kills = run.fleet.events.kills;
    report.sighups = run.fleet.events.sighups;
    report.sigterms = run.fleet.events.sigterms;
    report.clean_exits = run.fleet.events.clean_exits;
    report.start_refusals = run.fleet.events.start_refusals;
    report.redis_outages = run.redis_outages;
    report.postgres_outages = run.postgres_outages;
    report
        .violations
        .extend(run.fleet.events.violations.clone());
    report.clean_run_seconds = clean_seconds;
    report.elapsed_seconds = started.elapsed().as_secs_f64();
    report.seed = run.plan.seed;
    if !report.ok() || std::env::var_os("CHAOS_KEEP").is_some() {
        let kept = run.root.keep();
        println!("chaos: run directory kept at {}", kept.display());
    }
    report
}

/// The workers' settings for a chaos run: many quick retries, so a fault near a retry's due
/// time does not exhaust them; as many redeliveries, since kills aim at workers holding a job
/// and a session may be hit more than twice by chance (the bound itself is
/// tests/daemon_poison.rs's); and one inference thread each (several workers share the cores).
fn chaos_env() -> Vec<(String, String)> {
    [
        ("LAHSTATS_MAX_RETRIES", "8"),
        ("LAHSTATS_MAX_REDELIVERIES", "8"),
        ("LAHSTATS_RETRY_BASE_DELAY", "0.5"),
        ("LAHSTATS_DRAIN_TIMEOUT", "60"),
        ("OMP_NUM_THREADS", "1"),
        ("RUST_LOG", "info,lahstats_worker::processor=debug"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

impl Run {
    fn left(&self, started: Instant) -> Duration {
        self.plan.deadline.saturating_sub(started.elapsed())
    }

    /// Each clip once, no faults: the results every later session of that clip must match.
    fn clean_run(&mut self, clips: &[Clip], started: Instant) -> Vec<ResultSet> {
        let ids: Vec<Uuid> = clips.iter().map(|_| Uuid::new_v4()).collect();
        for (id, clip) in ids.iter().zip(clips) {
            self.sessions
                .register(*id, clip)
                .expect("register a clean-run session");
            self.sessions
                .enqueue(*id)
                .expect("enqueue a clean-run session");
        }
        let deadline = Instant::now() + self.left(started);
        loop {
            self.fleet.tend();
            let statuses = self.sessions.statuses().unwrap_or_default();
            let done = ids
                .iter()
                .filter(|id| statuses.get(id).map(String::as_str) == Some("ready_for_claiming"))
                .count();
            if done == ids.len() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the clean run did not finish: {statuses:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let baseline: Vec<ResultSet> = ids
            .iter()
            .map(|id| self.sessions.results(*id).expect("clean-run results"))
            .collect();
        for (i, set) in baseline.iter().enumerate() {
            println!(
                "chaos: clean run, clip {i} ({:.1}s): {} speakers, {} transcript segments, counts {:?}",
                clips[i].seconds,
                set.speakers.len(),
                set.transcript_segments,
                set.speakers.iter().map(|s| &s.3).collect::<Vec<_>>()
            );
        }
        baseline
    }

    /// Submits the sessions while firing the faults in a random order at random moments.
    /// Returns every submitted session with its clip.
    fn chaos(&mut self, clips: &[Clip], started: Instant) -> HashMap<Uuid, usize> {
        let mut faults = Vec::new();
        for (fault, count) in [
            (Fault::Kill, self.plan.kills),
            (Fault::RedisRestart, self.plan.redis_restarts),
            (Fault::PostgresOutage, self.plan.postgres_outages),
            (Fault::Sighup, self.plan.sighups),
            (Fault::Sigterm, self.plan.sigterms),
        ] {
            faults.extend(std::iter::repeat_n(fault, count));
        }
        faults.shuffle(&mut self.rng);
        let mut faults = faults.into_iter();
        let mut submitted = HashMap::new();
        let mut next_submit = Instant::now();
        let mut next_fault = Instant::now() + self.fault_gap();
        let mut pending_fault = faults.next();
        while submitted.len() < self.plan.sessions || pending_fault.is_some() {
            assert!(
                self.left(started) > Duration::ZERO,
                "chaos deadline passed while injecting faults"
            );
            self.fleet.tend_with(self.postgres.is_up());
            if submitted.len() < self.plan.sessions && Instant::now() >= next_submit {
                let clip = submitted.len() % clips.len();
                let id = Uuid::new_v4();
                // The API cannot register or push during an outage either; try again later.
                if self.sessions.register(id, &clips[clip]).is_ok() {
                    while self.sessions.enqueue(id).is_err() {
                        self.pause(Duration::from_millis(200));
                    }
                    submitted.insert(id, clip);
                    next_submit = Instant::now() + self.plan.submit_every;
                }
            }
            if let Some(fault) = pending_fault {
                if Instant::now() >= next_fault && self.inject(fault) {
                    pending_fault = faults.next();
                    next_fault = Instant::now() + self.fault_gap();
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        submitted
    }

    fn fault_gap(&mut self) -> Duration {
        let (low, high) = self.plan.fault_gap;
        Duration::from_secs_f64(self.rng.gen_range(low..=high))
    }

    /// Fires one fault; false when it cannot be fired now (no worker up to hit).
    fn inject(&mut self, fault: Fault) -> bool {
        let busy = self.busy_workers();
        let at = chrono::Local::now().format("%H:%M:%S%.3f");
        match fault {
            Fault::Kill => match self.fleet.kill_one(&busy, &mut self.rng) {
                Some(id) => println!("chaos: {at} SIGKILL {id}"),
                None => return false,
            },
            Fault::Sighup | Fault::Sigterm => {
                let signal = if fault == Fault::Sighup {
                    libc::SIGHUP
                } else {
                    libc::SIGTERM
                };
                match self.fleet.signal_one(signal, &busy, &mut self.rng) {
                    Some(id) => println!("chaos: {at} {fault:?} {id}"),
                    None => return false,
                }
            }
            Fault::RedisRestart => {
                let how = if self.rng.gen_bool(0.5) {
                    RedisStop::Shutdown
                } else {
                    RedisStop::Crash
                };
                let down = Duration::from_millis(self.rng.gen_range(1000..3000));
                println!("chaos: {at} Redis {how:?}, down for {down:?}");
                self.redis.stop(how);
                self.pause(down);
                self.redis.start_again();
                self.redis_outages += 1;
            }
            Fault::PostgresOutage => {
                let down = Duration::from_millis(self.rng.gen_range(1000..4000));
                println!("chaos: {at} Postgres stopped for {down:?}");
                self.postgres.stop();
                self.pause(down);
                self.postgres.start_again();
                self.postgres_outages += 1;
            }
        }
        true
    }

    /// Ids of the workers holding a job now (empty when Redis is down).
    fn busy_workers(&self) -> Vec<String> {
        let Some(mut conn) = self.redis.connection() else {
            return Vec::new();
        };
        self.fleet
            .running_ids()
            .into_iter()
            .filter(|id| {
                let key = format!("{}:processing:inflight:{id}", self.prefix);
                redis::cmd("LLEN")
                    .arg(key)
                    .query::<usize>(&mut conn)
                    .is_ok_and(|n| n > 0)
            })
            .collect()
    }

    /// Waits `duration` while still looking after the fleet.
    fn pause(&mut self, duration: Duration) {
        let until = Instant::now() + duration;
        while Instant::now() < until {
            self.fleet.tend_with(self.postgres.is_up());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until every session is final and the queue's lists are empty, or the deadline.
    fn settle(&mut self, submitted: &HashMap<Uuid, usize>, started: Instant) {
        let mut last_print = Instant::now();
        while self.left(started) > Duration::ZERO {
            self.fleet.tend();
            let statuses = self.sessions.statuses().unwrap_or_default();
            let open = submitted
                .keys()
                .filter(|id| {
                    !matches!(
                        statuses.get(id).map(String::as_str),
                        Some("ready_for_claiming") | Some("failed")
                    )
                })
                .count();
            let queued = verify::queue_residue(&self.redis, &self.prefix).unwrap_or(usize::MAX);
            if open == 0 && queued == 0 {
                return;
            }
            if last_print.elapsed() > Duration::from_secs(10) {
                println!("chaos: waiting for {open} session(s), {queued} job(s) in Redis");
                last_print = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        println!("chaos: deadline reached before every session settled");
    }
}
