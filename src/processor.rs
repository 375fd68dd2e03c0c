//! Processor: owns the models and the device. Runs one job at a time on its own thread
//! (SyncArbiter): checks the session under a row lock and marks it `processing` (or leaves a
//! finished or claimed one alone), runs the pipeline stage by stage with progress, writes the
//! sample clips, and hands the outcome to the Settler, which records it. It tells the
//! QueueListener and the StatsReporter whether its pipeline is loaded: a pipeline that cannot
//! load (missing or corrupt models) stops intake until a reload (SIGHUP) loads it.

use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::db::queries::{self, Begin};
use crate::db::{DbError, DbPool};
use crate::error::JobError;
use crate::job::{Completed, JobPayload, Outcome, Process, Settle, Taken};
use crate::pipeline::{
    Analysis, JobOptions, PipelineFactory, PipelineState, Prepared, PreparedStore, SessionPipeline,
};
use crate::session::{PreparedStep, SessionInput, SpeakerSample, Stage};
use crate::stats::JobSummary;
use crate::supervise::{guard, panic_message, InjectPanic};

/// After a failed progress update, how long to skip the next ones (each would wait for the pool).
const PROGRESS_PAUSE: Duration = Duration::from_secs(5);

// ---- state ----

/// Settings the Processor applies to every job.
#[derive(Debug, Clone, Default)]
pub struct ProcessorSettings {
    pub min_speakers: Option<usize>,
    pub max_speakers: Option<usize>,
    /// Process finished or claimed sessions again (every job as if `"force": true`).
    pub force_reclaim: bool,
}

pub struct Processor {
    /// Builds the pipeline (again on SIGHUP when it did not load).
    factory: PipelineFactory,
    /// The pipeline, or why it could not be built (intake is stopped meanwhile).
    pipeline: Result<Box<dyn SessionPipeline>, JobError>,
    pool: DbPool,
    settings: ProcessorSettings,
    settler: Recipient<Settle>,
    /// Told whether the pipeline is loaded: the QueueListener and the StatsReporter.
    watchers: Vec<Recipient<PipelineState>>,
}

impl Processor {
    /// Loads the pipeline here, on the Processor's own thread.
    pub fn new(
        factory: PipelineFactory,
        pool: DbPool,
        settings: ProcessorSettings,
        settler: Recipient<Settle>,
        watchers: Vec<Recipient<PipelineState>>,
    ) -> Processor {
        let mut processor = Processor {
            factory,
            pipeline: Err(JobError::transient("not loaded yet")),
            pool,
            settings,
            settler,
            watchers,
        };
        processor.load();
        processor
    }
}

impl Actor for Processor {
    type Context = SyncContext<Self>;

    fn started(&mut self, _: &mut Self::Context) {
        log::debug!("Processor started on its own thread");
    }
}

// ---- messages ----

/// After a reload: new settings, a new pool when the database changed, and a new pipeline
/// factory when the model files or the model choice changed. A pipeline that did not load is
/// loaded again in any case. The Processor takes this after the job in hand.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reload {
    pub factory: Option<PipelineFactory>,
    pub pool: Option<DbPool>,
    pub settings: ProcessorSettings,
}

/// Take in the next chunk of a session that is still recording (see `speech::incremental`),
/// if there is one. Answers whether there may be more to take in now.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Prepare;

// ---- handlers ----

impl Handler<Process> for Processor {
    type Result = ();

    fn handle(&mut self, Process { job, reply_to }: Process, ctx: &mut Self::Context) {
        let outcome = guard("Processor", ctx, || self.process(&job)).unwrap_or_else(|| {
            Outcome::Failed(JobError::transient(
                "the processor panicked on this job and was restarted",
            ))
        });
        self.settler.do_send(Settle {
            job,
            outcome,
            reply_to,
        });
    }
}

impl Handler<Prepare> for Processor {
    type Result = bool;

    fn handle(&mut self, _: Prepare, ctx: &mut Self::Context) -> bool {
        guard("Processor", ctx, || self.prepare_next()).unwrap_or(false)
    }
}

impl Handler<Reload> for Processor {
    type Result = ();

    fn handle(&mut self, reload: Reload, _: &mut Self::Context) {
        self.settings = reload.settings;
        if let Some(pool) = reload.pool {
            self.pool = pool;
        }
        match reload.factory {
            Some(factory) => {
                log::info!("🧠 Reloading models");
                self.factory = factory;
                self.load();
            }
            None if self.pipeline.is_err() => {
                log::info!("🧠 Loading the models again (they did not load before)");
                self.load();
            }
            None => {}
        }
    }
}

impl Handler<InjectPanic> for Processor {
    type Result = ();

    fn handle(&mut self, _: InjectPanic, ctx: &mut Self::Context) {
        guard("Processor", ctx, || panic!("injected panic (InjectPanic)"));
    }
}

// ---- the job ----

impl Processor {
    /// Builds the pipeline and says how that went.
    fn load(&mut self) {
        self.announce(PipelineState::Loading);
        let factory = self.factory.clone();
        self.pipeline = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || factory()))
            .unwrap_or_else(|panic| {
                Err(JobError::permanent(format!(
                    "loading the pipeline panicked: {}",
                    panic_message(&panic)
                )))
            });
        let state = match &self.pipeline {
            Ok(pipeline) => PipelineState::Loaded {
                device: pipeline.device(),
            },
            Err(err) => {
                log::error!("🧠 Pipeline not loaded — {err}");
                PipelineState::NotLoaded {
                    reason: err.to_string(),
                }
            }
        };
        self.announce(state);
    }

    fn announce(&self, state: PipelineState) {
        for watcher in &self.watchers {
            watcher.do_send(state.clone());
        }
    }

    /// One delivery of a job: the row-locked check, then the pipeline, stage by stage.
    fn process(&mut self, job: &Taken) -> Outcome {
        let Some(payload) = &job.payload else {
            return Outcome::Failed(JobError::permanent("the job has no valid payload"));
        };
        if let Err(err) = &self.pipeline {
            return Outcome::Returned(format!("the pipeline is not loaded: {err}"));
        }
        let started = Instant::now();
        let force = payload.force || self.settings.force_reclaim;
        let begun = self
            .pool
            .get()
            .map_err(DbError::from)
            .and_then(|mut conn| queries::begin_attempt(&mut conn, payload.session_id, force));
        let input = match begun {
            Ok(Begin::Started(input)) => input,
            Ok(Begin::LeftAlone(reason)) => return Outcome::Finished(reason.to_string()),
            Err(err) => return Outcome::Failed(err.into()),
        };
        let input = self.with_prepared(input);
        log_start(payload);
        let analysed = self
            .options(payload)
            .and_then(|options| self.run_pipeline(&input, &options));
        match analysed {
            Ok((analysis, samples)) => {
                let summary = summarize(&analysis, started.elapsed().as_secs_f64());
                Outcome::Completed(Box::new(Completed {
                    results: analysis.results,
                    samples,
                    summary,
                    force,
                }))
            }
            Err(err) => Outcome::Failed(err),
        }
    }

    /// The job's settings: its own speaker bounds, else the configuration's; the app's target
    /// words, else the built-in list.
    fn options(&self, payload: &JobPayload) -> Result<JobOptions, JobError> {
        let mut target_words = self
            .pool
            .get()
            .map_err(DbError::from)
            .and_then(|mut conn| queries::active_target_words(&mut conn))?;
        if target_words.is_empty() {
            target_words = crate::singlish::builtin_target_words();
        }
        Ok(JobOptions {
            min_speakers: payload.min_speakers.or(self.settings.min_speakers),
            max_speakers: payload.max_speakers.or(self.settings.max_speakers),
            target_words,
        })
    }

    /// Analysis, then the sample clips and the joined audio, written (uploaded) before anything
    /// is committed: the Settler commits results, sample URLs and status together. Progress
    /// goes to the app's bar as it comes.
    fn run_pipeline(
        &mut self,
        input: &SessionInput,
        options: &JobOptions,
    ) -> Result<(Analysis, Vec<SpeakerSample>), JobError> {
        let pipeline = self.pipeline.as_mut().map_err(|err| err.clone())?;
        let (pool, session_id) = (&self.pool, input.session_id);
        let mut last_stage = None;
        let mut paused_until: Option<Instant> = None;
        let mut progress = |stage: Stage, percent: u8| {
            if last_stage != Some(stage) {
                log::info!("⚙️  {session_id}: {}", stage.name());
                last_stage = Some(stage);
            }
            if paused_until.is_some_and(|until| Instant::now() < until) {
                return;
            }
            // Progress is for the app's progress bar; a missed update is not worth failing for.
            let written = pool
                .get()
                .map_err(DbError::from)
                .and_then(|mut conn| queries::set_progress(&mut conn, session_id, stage, percent));
            if let Err(err) = written {
                log::debug!("Progress update skipped: {err}");
                paused_until = Some(Instant::now() + PROGRESS_PAUSE);
            }
        };
        let mut analysis = pipeline.analyze(input, options, &mut progress)?;
        progress(Stage::SavingResults, 0);
        let sampling = Instant::now();
        let samples = pipeline.write_samples(&mut analysis, &mut progress)?;
        analysis
            .stage_seconds
            .push((Stage::GeneratingSamples, sampling.elapsed().as_secs_f64()));
        Ok((analysis, samples))
    }
}

// ---- sessions that are still recording ----

impl Processor {
    /// Takes in one new chunk of the first recording session that has one; whether there may
    /// be more now.
    fn prepare_next(&mut self) -> bool {
        let Ok(pipeline) = self.pipeline.as_mut() else {
            return false;
        };
        let recording = match self
            .pool
            .get()
            .map_err(DbError::from)
            .and_then(|mut conn| crate::db::prepared::recording_sessions(&mut conn))
        {
            Ok(recording) => recording,
            Err(err) => {
                log::debug!("Preparing recording sessions skipped: {err}");
                return false;
            }
        };
        pipeline.retain_prepared(&recording);
        for session_id in recording {
            let input = self
                .pool
                .get()
                .map_err(DbError::from)
                .and_then(|mut conn| queries::load_session(&mut conn, session_id));
            let input = match input {
                Ok(input) => input,
                Err(err) => {
                    log::debug!("{session_id}: not prepared: {err}");
                    continue;
                }
            };
            let mut store = DbPreparedStore {
                pool: &self.pool,
                session_id,
            };
            match pipeline.prepare(&input, &mut store) {
                Ok(Prepared::Nothing) => continue,
                Ok(Prepared::Waiting(reason)) => {
                    log::debug!("{session_id}: a chunk is not ready to prepare: {reason}");
                }
                Ok(Prepared::Step { .. } | Prepared::TakenElsewhere) => return true,
                Err(err) => {
                    log::warn!("{session_id}: preparing it failed, the job will do it: {err}")
                }
            }
        }
        false
    }

    /// `input` with the steps kept while the session recorded; none when they cannot be read
    /// (the job then does all the work).
    fn with_prepared(&self, mut input: SessionInput) -> SessionInput {
        let read = self.pool.get().map_err(DbError::from).and_then(|mut conn| {
            crate::db::prepared::prepared_steps(&mut conn, input.session_id, true)
        });
        match read {
            Ok(steps) => input.prepared = steps,
            Err(err) => log::warn!(
                "{}: the steps prepared while it recorded cannot be read, all is done now: {err}",
                input.session_id
            ),
        }
        input
    }
}

/// `prepared_steps` of one session, on the Processor's pool.
struct DbPreparedStore<'a> {
    pool: &'a DbPool,
    session_id: uuid::Uuid,
}

impl PreparedStore for DbPreparedStore<'_> {
    fn steps(&mut self, states: bool) -> Result<Vec<PreparedStep>, JobError> {
        let mut conn = self.pool.get().map_err(DbError::from)?;
        Ok(crate::db::prepared::prepared_steps(
            &mut conn,
            self.session_id,
            states,
        )?)
    }

    fn keep(&mut self, step: PreparedStep) -> Result<bool, JobError> {
        let mut conn = self.pool.get().map_err(DbError::from)?;
        Ok(crate::db::prepared::keep_prepared_step(
            &mut conn,
            self.session_id,
            &step,
        )?)
    }

    fn forget_from(&mut self, from: i32) -> Result<(), JobError> {
        let mut conn = self.pool.get().map_err(DbError::from)?;
        crate::db::prepared::forget_prepared_steps(&mut conn, self.session_id, from)?;
        Ok(())
    }
}

/// The banner of a job's log: which session, queued when.
fn log_start(payload: &JobPayload) {
    let rule = "=".repeat(70);
    log::info!("{rule}");
    log::info!("🎬 Processing session: {}", payload.session_id);
    log::info!(
        "   Queued at: {}",
        payload.queued_at.as_deref().unwrap_or("?")
    );
    log::info!("{}", "-".repeat(70));
    log_pickup_latency(payload);
}

/// When the enqueuer stamped the job (`enqueued_at_ms`, an extra field load tests add), how long
/// it waited before processing started; scripts/load reads this line.
fn log_pickup_latency(payload: &JobPayload) {
    if let Some(enqueued_ms) = payload
        .extra
        .get("enqueued_at_ms")
        .and_then(serde_json::Value::as_i64)
    {
        let latency_ms = chrono::Utc::now().timestamp_millis() - enqueued_ms;
        log::debug!(
            "⏱️  Session {} picked up {latency_ms} ms after it was enqueued",
            payload.session_id
        );
    }
}

fn summarize(analysis: &Analysis, processing_seconds: f64) -> JobSummary {
    let results = &analysis.results;
    JobSummary {
        session_id: results.session_id.to_string(),
        audio_seconds: results.duration_seconds,
        speakers: results.speakers.len(),
        segments: results.segments.len(),
        total_words: results
            .segments
            .iter()
            .map(|s| s.text.split_whitespace().count())
            .sum(),
        target_words: results
            .speakers
            .iter()
            .flat_map(|s| s.word_counts.values())
            .map(|n| *n as usize)
            .sum(),
        stage_seconds: analysis
            .stage_seconds
            .iter()
            .map(|(stage, seconds)| (stage.name().to_string(), *seconds))
            .collect(),
        processing_seconds,
    }
}
