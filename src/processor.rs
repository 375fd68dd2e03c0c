//! Processor: owns the models and the device. Runs one job at a time on its own thread
//! (SyncArbiter): loads the session, marks it processing, runs the pipeline stage by stage with
//! progress, saves the results through the DbWriter, and tells the QueueListener how it ended.

use std::time::Instant;

use actix::prelude::*;
use futures::executor::block_on;

use crate::db::writer::{
    DbWriter, FinishSession, LoadSession, LoadTargetWords, MarkProcessing, ReportProgress,
    SaveResults,
};
use crate::error::JobError;
use crate::job::JobPayload;
use crate::pipeline::{JobOptions, PipelineFactory, SessionPipeline};
use crate::queue::listener::JobDone;
use crate::session::Stage;
use crate::stats::JobSummary;
use crate::supervise::guard;

// ---- state ----

/// Settings the Processor applies to every job.
#[derive(Debug, Clone, Default)]
pub struct ProcessorSettings {
    pub min_speakers: Option<usize>,
    pub max_speakers: Option<usize>,
    /// Replace results even when the session's speakers were claimed.
    pub force_reclaim: bool,
}

pub struct Processor {
    /// The pipeline, or why it could not be built (jobs then fail as transient and wait).
    pipeline: Result<Box<dyn SessionPipeline>, JobError>,
    db: Addr<DbWriter>,
    settings: ProcessorSettings,
}

impl Processor {
    pub fn new(
        factory: &PipelineFactory,
        db: Addr<DbWriter>,
        settings: ProcessorSettings,
    ) -> Processor {
        let pipeline = factory();
        if let Err(err) = &pipeline {
            log::error!("Processor could not load its pipeline: {err}");
        }
        Processor {
            pipeline,
            db,
            settings,
        }
    }
}

impl Actor for Processor {
    type Context = SyncContext<Self>;

    fn started(&mut self, _: &mut Self::Context) {
        log::debug!("Processor started on its own thread");
    }
}

// ---- messages ----

/// Process one job; the outcome goes to `reply_to`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ProcessJob {
    pub raw: String,
    pub payload: JobPayload,
    pub reply_to: Recipient<JobDone>,
}

/// After a reload: new settings and, when the model files or the model choice changed, a new
/// pipeline. The Processor takes it after the job in hand, so that job finishes on the old one.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reload {
    pub factory: Option<PipelineFactory>,
    pub settings: ProcessorSettings,
}

// ---- handlers ----

impl Handler<ProcessJob> for Processor {
    type Result = ();

    fn handle(&mut self, job: ProcessJob, ctx: &mut Self::Context) {
        let outcome = guard("Processor", ctx, || self.process(&job.payload))
            .unwrap_or_else(|| Err(JobError::transient("the processor crashed on this job")));
        job.reply_to.do_send(JobDone {
            raw: job.raw,
            payload: job.payload,
            outcome,
        });
    }
}

impl Handler<Reload> for Processor {
    type Result = ();

    fn handle(&mut self, reload: Reload, _: &mut Self::Context) {
        self.settings = reload.settings;
        if let Some(factory) = reload.factory {
            log::info!("🧠 Reloading models");
            self.pipeline = factory();
            match &self.pipeline {
                Ok(pipeline) => log::info!("🧠 Models reloaded on {}", pipeline.device()),
                Err(err) => log::error!("Reloading the models failed: {err}"),
            }
        }
    }
}

// ---- helpers ----

impl Processor {
    /// The whole job, stage by stage.
    fn process(&mut self, payload: &JobPayload) -> Result<JobSummary, JobError> {
        let started = Instant::now();
        let session_id = payload.session_id;
        let rule = "=".repeat(70);
        log::info!("{rule}");
        log::info!("🎬 Processing session: {session_id}");
        log::info!(
            "   Queued at: {}",
            payload.queued_at.as_deref().unwrap_or("?")
        );
        log::info!("{}", "-".repeat(70));
        log_pickup_latency(payload);

        let input = ask(&self.db, LoadSession { session_id })?;
        ask(&self.db, MarkProcessing { session_id })?;
        let mut target_words = ask(&self.db, LoadTargetWords)?;
        if target_words.is_empty() {
            target_words = crate::singlish::builtin_target_words();
        }
        let options = JobOptions {
            min_speakers: payload.min_speakers.or(self.settings.min_speakers),
            max_speakers: payload.max_speakers.or(self.settings.max_speakers),
            target_words,
        };
        let pipeline = self.pipeline.as_mut().map_err(|err| err.clone())?;
        let db = self.db.clone();
        let mut last_stage = None;
        let mut progress = |stage: Stage, percent: u8| {
            if last_stage != Some(stage) {
                log::info!("⚙️  {session_id}: {}", stage.name());
                last_stage = Some(stage);
            }
            // Progress is for the app's progress bar; a missed update is not worth failing for.
            if let Err(err) = ask(
                &db,
                ReportProgress {
                    session_id,
                    stage,
                    percent,
                },
            ) {
                log::debug!("Progress update skipped: {err}");
            }
        };
        let mut analysis = pipeline.analyze(&input, &options, &mut progress)?;

        let saving = Instant::now();
        progress(Stage::SavingResults, 0);
        ask(
            &self.db,
            SaveResults {
                results: analysis.results.clone(),
                force: self.settings.force_reclaim,
            },
        )?;
        analysis
            .stage_seconds
            .push((Stage::SavingResults, saving.elapsed().as_secs_f64()));

        let sampling = Instant::now();
        progress(Stage::GeneratingSamples, 0);
        let samples = pipeline.write_samples(&analysis, &mut progress)?;
        ask(
            &self.db,
            FinishSession {
                session_id,
                samples,
            },
        )?;
        analysis
            .stage_seconds
            .push((Stage::GeneratingSamples, sampling.elapsed().as_secs_f64()));

        let summary = summarize(&analysis, started.elapsed().as_secs_f64());
        log_success(&summary);
        Ok(summary)
    }
}

/// Sends a message to the DbWriter and waits for its answer (the Processor's thread may block).
fn ask<M, T, E>(db: &Addr<DbWriter>, message: M) -> Result<T, JobError>
where
    M: Message<Result = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Into<JobError> + Send + 'static,
    DbWriter: Handler<M>,
{
    match block_on(db.send(message)) {
        Ok(answer) => answer.map_err(Into::into),
        Err(err) => Err(JobError::transient(format!(
            "the database writer is unavailable: {err}"
        ))),
    }
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

fn summarize(analysis: &crate::pipeline::Analysis, processing_seconds: f64) -> JobSummary {
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

fn log_success(summary: &JobSummary) {
    let rule = "=".repeat(68);
    log::info!("✅ {rule}");
    log::info!("✅ Session {} completed successfully!", summary.session_id);
    log::info!("✅ Duration: {:.1}s", summary.audio_seconds);
    log::info!("✅ Speakers: {}", summary.speakers);
    log::info!("✅ Segments: {}", summary.segments);
    log::info!("✅ Total words: {}", summary.total_words);
    log::info!("✅ Singlish words counted: {}", summary.target_words);
    let stages: Vec<String> = summary
        .stage_seconds
        .iter()
        .map(|(s, t)| format!("{s} {t:.2}s"))
        .collect();
    log::info!("✅ Stages: {}", stages.join(", "));
    if let Some(rtf) = summary.real_time_factor() {
        log::info!(
            "✅ Processing: {:.2}s (real-time factor {rtf:.3})",
            summary.processing_seconds
        );
    }
    log::info!("✅ {rule}");
}
