//! A fleet of worker processes the harness looks after as a process supervisor would (systemd's
//! Restart=always): a worker that ends is started again, under its own id or a new one. Records
//! every way a worker ended, so the checks can tell a drained exit from a crash.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::Rng;

use super::workers::{Ending, FleetSettings, WorkerProcess};

/// How long after a worker became ready a signal is safe (its handlers are installed by then).
const SIGNAL_SAFE_AFTER: Duration = Duration::from_secs(2);
/// How long a supervisor waits before starting a worker that stopped by itself.
const RESTART_DELAY: Duration = Duration::from_millis(1000);

struct Slot {
    base_id: String,
    process: Option<WorkerProcess>,
    incarnations: usize,
    restart_at: Option<Instant>,
    /// The id the next incarnation takes.
    next_id: String,
    ready_since: Option<Instant>,
}

/// What happened to the fleet's processes, for the report.
#[derive(Debug, Default, Clone)]
pub struct FleetEvents {
    pub kills: usize,
    pub sighups: usize,
    pub sigterms: usize,
    /// SIGTERMed workers that exited 0 after draining.
    pub clean_exits: usize,
    pub restarts: usize,
    /// Workers that exited at start (e.g. the database was down for their migrations).
    pub start_refusals: usize,
    /// Anything a correct worker must never do: a crash, a non-zero exit after SIGTERM.
    pub violations: Vec<String>,
}

pub struct Fleet {
    settings: FleetSettings,
    slots: Vec<Slot>,
    pub events: FleetEvents,
}

impl Fleet {
    /// Starts `count` workers `<name>-1…` and waits until each listens with its models loaded.
    pub fn start(settings: FleetSettings, name: &str, count: usize, timeout: Duration) -> Fleet {
        let slots = (1..=count)
            .map(|n| {
                let id = format!("{name}-{n}");
                Slot {
                    base_id: id.clone(),
                    process: None,
                    incarnations: 0,
                    restart_at: Some(Instant::now()),
                    next_id: id,
                    ready_since: None,
                }
            })
            .collect();
        let mut fleet = Fleet {
            settings,
            slots,
            events: FleetEvents::default(),
        };
        fleet.tend();
        for slot in &mut fleet.slots {
            let process = slot.process.as_mut().expect("started");
            assert!(
                process.wait_ready(timeout),
                "worker {} did not become ready:\n{}",
                process.id,
                process.log_tail(30)
            );
            slot.ready_since = Some(Instant::now());
        }
        fleet.events.restarts = 0;
        fleet
    }

    /// Notices ended workers and starts those whose restart is due. `database_up` tells a
    /// refused start (no database for the migrations) from a crash.
    pub fn tend_with(&mut self, database_up: bool) {
        for slot in &mut self.slots {
            if let Some(process) = slot.process.as_mut() {
                if slot.ready_since.is_none() && process.has_log("Listening for jobs") {
                    slot.ready_since = Some(Instant::now());
                }
                if let Some(code) = process.exited() {
                    let ended = ended_as_expected(process, code, slot.ready_since, database_up);
                    match ended {
                        Ok(Some(clean)) => self.events.clean_exits += usize::from(clean),
                        Ok(None) => self.events.start_refusals += 1,
                        Err(violation) => self.events.violations.push(violation),
                    }
                    slot.process = None;
                    slot.ready_since = None;
                    slot.restart_at
                        .get_or_insert(Instant::now() + RESTART_DELAY);
                }
            }
            if slot.process.is_none() && slot.restart_at.is_some_and(|at| Instant::now() >= at) {
                slot.incarnations += 1;
                if slot.incarnations > 1 {
                    self.events.restarts += 1;
                }
                slot.process = Some(WorkerProcess::spawn(
                    &self.settings,
                    &slot.next_id,
                    slot.incarnations,
                ));
                slot.restart_at = None;
            }
        }
    }

    pub fn tend(&mut self) {
        self.tend_with(true);
    }

    /// Ids of the workers running now.
    pub fn running_ids(&self) -> Vec<String> {
        self.slots
            .iter()
            .filter_map(|s| s.process.as_ref().map(|p| p.id.clone()))
            .collect()
    }

    /// Slots whose worker is up and listening long enough to take a signal.
    fn signalable(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&i| {
                let slot = &self.slots[i];
                slot.process
                    .as_ref()
                    .is_some_and(|p| p.ending == Ending::Running)
                    && slot
                        .ready_since
                        .is_some_and(|t| t.elapsed() >= SIGNAL_SAFE_AFTER)
            })
            .collect()
    }

    /// Picks a worker to hit, preferring one whose id is in `busy` (it holds a job).
    fn pick(&self, busy: &[String], rng: &mut StdRng) -> Option<usize> {
        let candidates = self.signalable();
        let busy_ones: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|&i| {
                let id = &self.slots[i].process.as_ref().expect("running").id;
                busy.contains(id)
            })
            .collect();
        let pool = if busy_ones.is_empty() {
            candidates
        } else {
            busy_ones
        };
        (!pool.is_empty()).then(|| pool[rng.gen_range(0..pool.len())])
    }

    /// SIGKILLs a worker (one holding a job when there is one); it comes back after a short
    /// while, half the time under its own id (recovering its in-flight list at start), half the
    /// time under a new one (its old list left to the reaper). Returns the killed id.
    pub fn kill_one(&mut self, busy: &[String], rng: &mut StdRng) -> Option<String> {
        let index = self.pick(busy, rng)?;
        let same_id = rng.gen_bool(0.5);
        let back_after = Duration::from_millis(rng.gen_range(300..2000));
        let slot = &mut self.slots[index];
        let mut process = slot.process.take().expect("running");
        process.ending = Ending::Killed;
        process.signal(libc::SIGKILL);
        let code = process.wait_exit(Duration::from_secs(10));
        assert_eq!(code, Some(None), "{} survived SIGKILL", process.id);
        slot.ready_since = None;
        slot.next_id = if same_id {
            process.id.clone()
        } else {
            format!("{}-r{}", slot.base_id, slot.incarnations)
        };
        slot.restart_at = Some(Instant::now() + back_after);
        self.events.kills += 1;
        Some(process.id.clone())
    }

    /// Sends SIGHUP (reload) or SIGTERM (drain and exit 0; the fleet starts it again) to a
    /// worker, preferring a busy one. Returns its id.
    pub fn signal_one(&mut self, signal: i32, busy: &[String], rng: &mut StdRng) -> Option<String> {
        let index = self.pick(busy, rng)?;
        let process = self.slots[index].process.as_mut().expect("running");
        if signal == libc::SIGTERM {
            process.ending = Ending::Terminated;
            self.events.sigterms += 1;
        } else {
            self.events.sighups += 1;
        }
        process.signal(signal);
        Some(process.id.clone())
    }

    /// SIGTERMs every worker and waits for each to drain and exit 0.
    pub fn stop_all(&mut self, timeout: Duration) {
        for slot in &mut self.slots {
            slot.restart_at = None;
            if let Some(process) = slot.process.as_mut() {
                process.ending = Ending::Terminated;
                process.signal(libc::SIGTERM);
            }
        }
        for slot in &mut self.slots {
            if let Some(mut process) = slot.process.take() {
                match process.wait_exit(timeout) {
                    Some(Some(0)) => {}
                    other => self.events.violations.push(format!(
                        "worker {} did not exit 0 after the final SIGTERM ({other:?}):\n{}",
                        process.id,
                        process.log_tail(20)
                    )),
                }
            }
        }
    }
}

/// Ok(Some(true)) for an exit 0 after SIGTERM, Ok(Some(false)) for an expected death (SIGKILL),
/// Ok(None) for a start refused while the database was down, Err for anything else.
fn ended_as_expected(
    process: &WorkerProcess,
    code: Option<i32>,
    ready_since: Option<Instant>,
    database_up: bool,
) -> Result<Option<bool>, String> {
    match (process.ending, code) {
        (Ending::Terminated, Some(0)) => Ok(Some(true)),
        (Ending::Killed, None) => Ok(Some(false)),
        (Ending::Running, Some(1))
            if ready_since.is_none() && refused_start(process, database_up) =>
        {
            Ok(None)
        }
        (ending, code) => Err(format!(
            "worker {} ended unexpectedly (expected {ending:?}, exit {code:?}):\n{}",
            process.id,
            process.log_tail(20)
        )),
    }
}

/// A worker that could not reach the database for its migrations exits 1 at start; systemd
/// starts it again. That is expected while the database is (or just was) down.
fn refused_start(process: &WorkerProcess, database_up: bool) -> bool {
    let log = process.log();
    !database_up || log.contains("atabase") && !log.contains("Listening for jobs")
}
