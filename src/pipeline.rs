//! The processing pipeline as the Processor drives it: what it is given, what it returns, and
//! the stages it reports. The speech pipeline (decode → VAD → diarize → transcribe → correct →
//! count → sample clips) implements it; queue tests may implement it too, to fail on demand.

use std::sync::Arc;

use crate::error::JobError;
use crate::session::{PreparedStep, SessionInput, SessionResults, SpeakerSample, Stage};

/// Per-job settings that come from configuration and the job payload.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobOptions {
    pub min_speakers: Option<usize>,
    pub max_speakers: Option<usize>,
    /// Target words to count (the app's table, else the built-in list).
    pub target_words: Vec<String>,
}

/// What analysing a session produced, before anything is saved.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    pub results: SessionResults,
    /// Wall seconds per stage, in order. Stages may run side by side (diarizing and
    /// transcribing do where there are two cores), so they can add up to more than
    /// `wall_seconds`.
    pub stage_seconds: Vec<(Stage, f64)>,
    /// Wall seconds of the whole analysis.
    pub wall_seconds: f64,
}

/// Reports a stage's progress in percent (0–100).
pub type Progress<'a> = &'a mut dyn FnMut(Stage, u8);

/// One session's processing, start to finish, on the Processor's thread.
pub trait SessionPipeline {
    /// Decodes the session's audio and finds speakers, their words and counts
    /// (stages concatenating, diarizing, transcribing).
    fn analyze(
        &mut self,
        input: &SessionInput,
        options: &JobOptions,
        progress: Progress,
    ) -> Result<Analysis, JobError>;

    /// Publishes the last analysed session's recording (`results.audio_url`) and a sample clip
    /// per speaker (stage generating_samples). A recording the store refuses as larger than its
    /// file size limit clears `results.audio_url` (with a warning) rather than losing the
    /// session's results.
    fn write_samples(
        &mut self,
        analysis: &mut Analysis,
        progress: Progress,
    ) -> Result<Vec<SpeakerSample>, JobError>;

    /// What the pipeline runs on, for the banner and stats ("cpu", "cuda:0").
    fn device(&self) -> String;

    /// Takes in the next chunk of a session that is still recording (`input.chunks`, in
    /// recording order; `input.prepared` is not read) and keeps what that step added in
    /// `store`: the analysis the job's [`SessionPipeline::analyze`] then resumes from
    /// `input.prepared`. One chunk per call, so a job never waits long behind it.
    fn prepare(
        &mut self,
        input: &SessionInput,
        store: &mut dyn PreparedStore,
    ) -> Result<Prepared, JobError> {
        let _ = (input, store);
        Ok(Prepared::Nothing)
    }

    /// Forgets the prepared sessions held in memory other than `recording`.
    fn retain_prepared(&mut self, recording: &[uuid::Uuid]) {
        let _ = recording;
    }
}

/// What one [`SessionPipeline::prepare`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prepared {
    /// Every chunk is taken in (or the pipeline does not prepare).
    Nothing,
    /// Took in chunk `chunk_number` as step `step`; more chunks may be waiting.
    Step { step: i32, chunk_number: i32 },
    /// Another worker kept that step first: this one keeps nothing of the session.
    TakenElsewhere,
    /// The chunk cannot be decoded yet (still uploading, or broken); the job will decide.
    Waiting(String),
}

/// Where [`SessionPipeline::prepare`] finds and keeps a session's steps (`prepared_steps`).
pub trait PreparedStore {
    /// The kept steps in order; `state` left empty unless `states`.
    fn steps(&mut self, states: bool) -> Result<Vec<PreparedStep>, JobError>;
    /// Keeps a step; `false` when that step is kept already (by another worker).
    fn keep(&mut self, step: PreparedStep) -> Result<bool, JobError>;
    /// Forgets the steps from `from` on (their chunks are no longer the session's).
    fn forget_from(&mut self, from: i32) -> Result<(), JobError>;
}

/// Builds a pipeline: called at start, whenever the Processor is restarted, and on SIGHUP.
pub type PipelineFactory =
    Arc<dyn Fn() -> Result<Box<dyn SessionPipeline>, JobError> + Send + Sync>;

/// Whether the Processor can run jobs, announced to the QueueListener (which takes jobs only
/// while the pipeline is loaded) and the StatsReporter (`pipeline:` in `lahstats-worker stats`).
#[derive(Debug, Clone, PartialEq, Eq, actix::Message)]
#[rtype(result = "()")]
pub enum PipelineState {
    /// The models are being loaded.
    Loading,
    /// Ready, on this device.
    Loaded { device: String },
    /// The models could not be loaded (missing or corrupt files, a bad device); jobs stay
    /// queued until a SIGHUP loads them.
    NotLoaded { reason: String },
}

impl PipelineState {
    pub fn is_loaded(&self) -> bool {
        matches!(self, PipelineState::Loaded { .. })
    }
}

impl std::fmt::Display for PipelineState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PipelineState::Loading => f.write_str("loading"),
            PipelineState::Loaded { device } => write!(f, "loaded on {device}"),
            PipelineState::NotLoaded { reason } => write!(f, "not loaded — {reason}"),
        }
    }
}
