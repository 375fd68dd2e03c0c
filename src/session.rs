//! What one session is made of on its way through the worker: its audio chunks going in,
//! its speakers, segments and word counts coming out, and the stages the app's progress bar shows.

use std::collections::BTreeMap;
use uuid::Uuid;

/// One uploaded audio chunk, in the order the phone recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkRef {
    pub chunk_number: i32,
    /// `audio_chunks.storage_path`: a path under the storage root, an absolute path, or a URL.
    pub storage_path: String,
}

/// Everything the Processor needs to process a session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionInput {
    pub session_id: Uuid,
    /// Ordered by `chunk_number`.
    pub chunks: Vec<ChunkRef>,
    /// What analysing the session while it recorded kept, in step order (empty when it was
    /// not prepared); the pipeline uses the steps whose chunks are still the session's.
    pub prepared: Vec<PreparedStep>,
}

/// One kept step of a session analysed while it recorded (`prepared_steps`): step `step`
/// took in chunk `chunk_number` at `storage_path`; `state` is what it added, as the pipeline
/// encoded it.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedStep {
    pub step: i32,
    pub chunk_number: i32,
    pub storage_path: String,
    pub state: Vec<u8>,
}

/// One speaker found in the session, with what they said.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeakerResult {
    /// `SPEAKER_00`, `SPEAKER_01`, … in order of first appearance.
    pub label: String,
    /// Number of speaker turns.
    pub segment_count: i32,
    /// Talk time in seconds.
    pub total_duration_seconds: f64,
    /// Target word → count, only words said at least once.
    pub word_counts: BTreeMap<String, i32>,
}

/// One stretch of transcript attributed to one speaker.
#[derive(Debug, Clone, PartialEq)]
pub struct TranscriptSegment {
    pub speaker_label: String,
    pub start_seconds: f64,
    pub end_seconds: f64,
    /// The recogniser's text after the Singlish corrections.
    pub text: String,
}

/// The result set of one session, written in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionResults {
    pub session_id: Uuid,
    pub duration_seconds: f64,
    /// Where the joined 16 kHz audio was stored, when it was.
    pub audio_url: Option<String>,
    pub speakers: Vec<SpeakerResult>,
    pub segments: Vec<TranscriptSegment>,
}

/// A short clip of one speaker for the app's claiming screen.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeakerSample {
    pub speaker_label: String,
    pub sample_audio_url: String,
    pub sample_start_time: f64,
}

/// The stages of the original worker, with the share of the progress bar each one covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Concatenating,
    Diarizing,
    Transcribing,
    SavingResults,
    GeneratingSamples,
}

impl Stage {
    pub const ALL: [Stage; 5] = [
        Stage::Concatenating,
        Stage::Diarizing,
        Stage::Transcribing,
        Stage::SavingResults,
        Stage::GeneratingSamples,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Concatenating => "concatenating",
            Stage::Diarizing => "diarizing",
            Stage::Transcribing => "transcribing",
            Stage::SavingResults => "saving_results",
            Stage::GeneratingSamples => "generating_samples",
        }
    }

    /// (start, end) of the stage on the 0–100 progress bar, as the original app weighs them.
    pub fn span(self) -> (i32, i32) {
        match self {
            Stage::Concatenating => (0, 10),
            Stage::Diarizing => (10, 40),
            Stage::Transcribing => (40, 85),
            Stage::SavingResults => (85, 95),
            Stage::GeneratingSamples => (95, 100),
        }
    }

    /// Overall progress when this stage is `percent` % done: start + (end − start) × p / 100.
    pub fn progress(self, percent: u8) -> i32 {
        let (start, end) = self.span();
        start + (end - start) * i32::from(percent.min(100)) / 100
    }
}

/// Session status strings the app knows.
pub mod status {
    pub const RECORDING: &str = "recording";
    pub const PROCESSING: &str = "processing";
    pub const READY_FOR_CLAIMING: &str = "ready_for_claiming";
    pub const FAILED: &str = "failed";
}

/// `SPEAKER_00`-style label for the n-th speaker.
pub fn speaker_label(index: usize) -> String {
    format!("SPEAKER_{index:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_progress_follows_the_original_weights() {
        assert_eq!(Stage::Concatenating.progress(0), 0);
        assert_eq!(Stage::Concatenating.progress(100), 10);
        assert_eq!(Stage::Diarizing.progress(50), 25);
        assert_eq!(Stage::Transcribing.progress(100), 85);
        assert_eq!(Stage::GeneratingSamples.progress(100), 100);
        assert_eq!(speaker_label(3), "SPEAKER_03");
    }
}
