//! Who spoke when, overlap included: the pipeline pyannote 3.1 made the field's reference, on
//! offline weights.
//!
//! 1. **Segmentation** (`segmentation`): pyannote's segmentation-3.0 on 10 s windows every
//!    `step_seconds`: per 16.875 ms frame, which of up to 3 *local* speakers talk (2 at once at
//!    most), decoded from the model's **powerset** classes (`powerset`).
//! 2. **Embeddings** (`embeddings`): one CAM++ embedding per local turn (a local speaker's
//!    stretch of speech without a break in one window) or, for a long turn, per 1.5 s piece of
//!    it, of that speaker's own samples.
//! 3. **Clustering** (`clustering`): average-linkage agglomerative clustering of the embeddings
//!    into global speakers, the count estimated (or bounded by `min/max_speakers`).
//! 4. **Reconstruction** (`reconstruction`): per frame, the estimated number of speakers, given
//!    to the global speakers most active there; then turns (overlapping across speakers),
//!    speakers numbered in order of first appearance.
//!
//! Every tuned constant is in `tuning`, with the data it was tuned on. Also RTTM output and the
//! diarization error rate (`der`) to measure it.
//!
//! Memory: the segmentation keeps 3 bytes per frame per window and the reconstruction a byte
//! per frame per speaker (about 4 MB for 2 hours); audio is only read through slices, and the
//! largest copy is one batch of windows or one local speaker's samples of one window.

mod clustering;
pub mod der;
mod embeddings;
mod powerset;
mod reconstruction;
mod segmentation;
pub mod tuning;

pub use reconstruction::SpeakerActivity;

use super::vad::{SpeechRegion, SAMPLE_RATE};
use super::InferenceError;
use crate::pcm::Samples;
use crate::session::speaker_label;
use clustering::ClusteringOptions;
use embeddings::{LocalTurn, SpeakerEmbedding};
use segmentation::{LocalActivity, Segmentation, FRAME_STEP_SAMPLES, WINDOW_SAMPLES};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;
use tch::Device;

/// How audio is diarized.
#[derive(Debug, Clone, PartialEq)]
pub struct DiarizeOptions {
    /// The clustering makes at least this many speakers (when there are that many embeddings);
    /// a speaker forced beyond what the audio holds may win no frame in the reconstruction, so
    /// the result can still have fewer.
    pub min_speakers: Option<usize>,
    /// At most this many speakers.
    pub max_speakers: Option<usize>,
    /// Hop between the 10 s segmentation windows, 0.1–10 s.
    pub step_seconds: f64,
    /// Average-linkage merge threshold, cosine distance (see `tuning::CLUSTERING_THRESHOLD`).
    pub clustering_threshold: f64,
    /// Segmentation windows per forward pass.
    pub batch_size: usize,
}

impl Default for DiarizeOptions {
    fn default() -> Self {
        DiarizeOptions {
            min_speakers: None,
            max_speakers: None,
            step_seconds: tuning::STEP_SECONDS,
            clustering_threshold: tuning::CLUSTERING_THRESHOLD,
            batch_size: 8,
        }
    }
}

/// One speaker talking from `start` to `end` seconds. Turns of different speakers may overlap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpeakerTurn {
    /// 0, 1, 2, … in order of first appearance.
    pub speaker: usize,
    pub start: f64,
    pub end: f64,
}

impl SpeakerTurn {
    pub fn duration(&self) -> f64 {
        self.end - self.start
    }

    /// `SPEAKER_00`-style label.
    pub fn label(&self) -> String {
        speaker_label(self.speaker)
    }
}

/// The result: where speech is, who spoke when, and how many speakers there were.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Diarization {
    /// Where anyone speaks (the union of the turns).
    pub speech: Vec<SpeechRegion>,
    /// Every speaker's turns, ordered by start; different speakers' turns may overlap.
    pub turns: Vec<SpeakerTurn>,
    pub num_speakers: usize,
    /// Per frame, each speaker's activation where active (for `dominant_speaker`).
    pub activity: SpeakerActivity,
}

impl Diarization {
    /// The speaker the diarization marks dominant over `[start, end]` seconds: the active
    /// speaker with the highest aggregated activation there (in overlap, the one more windows
    /// heard). When no speaker is active inside the interval, frames up to
    /// `tuning::DOMINANT_TOLERANCE_SECONDS` either side count; `None` when none is active there
    /// either, or when `start > end`.
    pub fn dominant_speaker(&self, start: f64, end: f64) -> Option<usize> {
        self.activity
            .dominant(start, end, tuning::DOMINANT_TOLERANCE_SECONDS)
    }
}

/// segmentation-3.0 and CAM++, loaded once.
pub struct Diarizer {
    segmentation: Segmentation,
    embedding: SpeakerEmbedding,
}

/// Turns the TorchScript graph optimiser off for its lifetime (CAM++ gets inputs of a new
/// length on nearly every call; re-optimising for each costs far more than it saves), and back
/// on (libtorch's default) after.
struct GraphOptimizerOff;

impl GraphOptimizerOff {
    fn new() -> Self {
        tch::jit::set_graph_executor_optimize(false);
        GraphOptimizerOff
    }
}

impl Drop for GraphOptimizerOff {
    fn drop(&mut self) {
        tch::jit::set_graph_executor_optimize(true);
    }
}

impl Diarizer {
    /// Loads `segmentation-3.0.pt` and `campplus.pt` from the models directory onto the device.
    pub fn load(models_dir: &Path, device: Device) -> Result<Self, InferenceError> {
        Ok(Diarizer {
            segmentation: Segmentation::load(models_dir, device)?,
            embedding: SpeakerEmbedding::load(models_dir, device)?,
        })
    }

    /// Diarizes 16 kHz mono audio.
    pub fn diarize(
        &mut self,
        samples: &(impl Samples + ?Sized),
        opts: &DiarizeOptions,
    ) -> Result<Diarization, InferenceError> {
        let mut evidence = LocalEvidence::default();
        self.gather(&mut evidence, samples, opts, true)?;
        self.conclude(&evidence, samples.len(), opts)
    }

    /// Segments and embeds the windows of `samples` (the whole recording so far) that
    /// `evidence` lacks: while the recording grows (`last` false) only the windows of the
    /// regular grid that lie wholly inside it, which more audio cannot change; with `last`,
    /// all of `segmentation::window_starts` for its full length. Fed as it grows, a recording
    /// gets the evidence it gets in one call.
    pub fn gather(
        &mut self,
        evidence: &mut LocalEvidence,
        samples: &(impl Samples + ?Sized),
        opts: &DiarizeOptions,
        last: bool,
    ) -> Result<(), InferenceError> {
        check_options(opts)?;
        let _optimizer_off = GraphOptimizerOff::new();
        let started = Instant::now();
        let step = (opts.step_seconds * SAMPLE_RATE as f64).round() as usize;
        let done = evidence.activity.windows();
        let starts: Vec<usize> = if last {
            segmentation::window_starts(samples.len(), step)
                .into_iter()
                .skip(done)
                .collect()
        } else {
            (done..)
                .map(|k| k * step)
                .take_while(|&start| start + WINDOW_SAMPLES <= samples.len())
                .collect()
        };
        if starts.is_empty() {
            return Ok(());
        }
        let activity = self
            .segmentation
            .segment_windows(samples, starts, opts.batch_size)?;
        let segmented = Instant::now();
        let turns = self.embedding.embed_local_turns(
            samples,
            &activity,
            frames_for(tuning::MIN_EMBEDDING_SECONDS),
            frames_for(tuning::PIECE_SECONDS),
        )?;
        log::debug!(
            "diarize: {} window(s) segmented in {:.2} s, {} local turns embedded in {:.2} s",
            activity.windows(),
            (segmented - started).as_secs_f64(),
            turns.len(),
            segmented.elapsed().as_secs_f64()
        );
        evidence
            .turns
            .extend(turns.into_iter().map(|turn| LocalTurn {
                window: turn.window + done,
                ..turn
            }));
        evidence.activity.append(activity);
        Ok(())
    }

    /// Who spoke when in a recording of `total_samples` whose windows `evidence` holds: the
    /// embeddings clustered into global speakers, then each frame's speakers reconstructed.
    pub fn conclude(
        &self,
        evidence: &LocalEvidence,
        total_samples: usize,
        opts: &DiarizeOptions,
    ) -> Result<Diarization, InferenceError> {
        check_options(opts)?;
        let started = Instant::now();
        let LocalEvidence { activity, turns } = evidence;
        let seconds_of =
            |frames: usize| frames as f64 * FRAME_STEP_SAMPLES as f64 / SAMPLE_RATE as f64;
        let embedded_turns: Vec<&LocalTurn> = turns.iter().filter(|t| t.vector.is_some()).collect();
        let vectors: Vec<&[f32]> = embedded_turns
            .iter()
            .filter_map(|t| t.vector.as_deref())
            .collect();
        let weights: Vec<f64> = embedded_turns
            .iter()
            .map(|t| seconds_of(t.clean_frames))
            .collect();
        let train: Vec<usize> = (0..embedded_turns.len())
            .filter(|&i| weights[i] >= tuning::MIN_CLUSTERING_SECONDS)
            .collect();
        let clusters = clustering::cluster(
            &vectors,
            &weights,
            &train,
            &ClusteringOptions {
                threshold: opts.clustering_threshold,
                min_speaker_weight: tuning::MIN_SPEAKER_SECONDS,
                min_speakers: opts.min_speakers,
                max_speakers: opts.max_speakers,
                max_embeddings: tuning::MAX_CLUSTERED_EMBEDDINGS,
            },
        )?;
        let clustered = Instant::now();

        let turn_speakers = reconstruction::turn_speakers(turns, &clusters.assignment);
        let activity = reconstruction::reconstruct(
            activity,
            turns,
            &turn_speakers,
            clusters.centroids.len(),
            total_samples,
        );
        let duration = total_samples as f64 / SAMPLE_RATE as f64;
        let diarization = Diarization {
            speech: activity.speech(duration),
            turns: activity.turns(duration),
            num_speakers: activity.speakers(),
            activity,
        };
        if let Some(min) = opts
            .min_speakers
            .filter(|&min| diarization.num_speakers < min)
        {
            log::warn!(
                "diarize: {} speaker(s) found where at least {min} were asked for: the audio \
                 holds no frames for the others",
                diarization.num_speakers
            );
        }
        log::debug!(
            "diarize: {duration:.1} s audio: {} local turns, {} embedded ({} clustered), \
             clustering {:.3} s, reconstruction {:.3} s → {} speakers, {} turns",
            turns.len(),
            vectors.len(),
            train.len().min(tuning::MAX_CLUSTERED_EMBEDDINGS),
            (clustered - started).as_secs_f64(),
            clustered.elapsed().as_secs_f64(),
            diarization.num_speakers,
            diarization.turns.len()
        );
        Ok(diarization)
    }
}

/// What the windows segmented so far hold: each window's local speakers per frame, and their
/// local turns with embeddings (`LocalTurn::window` indexes `activity`'s windows). The whole
/// of what the clustering and the reconstruction need, so it can be kept while a session
/// records and concluded when it ends.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LocalEvidence {
    pub activity: LocalActivity,
    pub turns: Vec<LocalTurn>,
}

impl LocalEvidence {
    /// Windows segmented so far.
    pub fn windows(&self) -> usize {
        self.activity.windows()
    }

    /// The first sample a window not yet segmented may read, on the grid of `opts`.
    pub fn next_window_start(&self, opts: &DiarizeOptions) -> usize {
        self.windows() * (opts.step_seconds * SAMPLE_RATE as f64).round() as usize
    }

    /// `other`'s windows and turns after these.
    pub fn append(&mut self, other: LocalEvidence) {
        let done = self.windows();
        self.turns
            .extend(other.turns.into_iter().map(|turn| LocalTurn {
                window: turn.window + done,
                ..turn
            }));
        self.activity.append(other.activity);
    }

    /// The windows and turns from window `from` on (window indices from 0), to be saved as
    /// what one step added.
    pub fn since(&self, from: usize) -> LocalEvidence {
        let mut activity = self.activity.clone();
        activity.keep_from(from);
        LocalEvidence {
            activity,
            turns: self
                .turns
                .iter()
                .filter(|turn| turn.window >= from)
                .map(|turn| LocalTurn {
                    window: turn.window - from,
                    ..turn.clone()
                })
                .collect(),
        }
    }
}

/// Frames of segmentation output in `seconds`.
fn frames_for(seconds: f64) -> usize {
    (seconds * SAMPLE_RATE as f64 / FRAME_STEP_SAMPLES as f64).round() as usize
}

/// Options that make no sense are refused before any work.
fn check_options(opts: &DiarizeOptions) -> Result<(), InferenceError> {
    let usable = (0.1..=10.0).contains(&opts.step_seconds)
        && opts.clustering_threshold.is_finite()
        && opts.clustering_threshold > 0.0;
    if usable {
        Ok(())
    } else {
        Err(InferenceError::InvalidInput(format!(
            "diarization windows every {} s with a clustering threshold of {} make no sense; \
             use a step of 0.1-10 s and a positive threshold",
            opts.step_seconds, opts.clustering_threshold
        )))
    }
}

/// The diarization as RTTM: `SPEAKER <file> 1 <start> <duration> <NA> <NA> <label> <NA> <NA>`.
pub fn to_rttm(diarization: &Diarization, file_id: &str) -> String {
    let file_id = if file_id.trim().is_empty() {
        "audio".to_string()
    } else {
        file_id.replace(char::is_whitespace, "_")
    };
    let mut out = String::new();
    for turn in &diarization.turns {
        let _ = writeln!(
            out,
            "SPEAKER {file_id} 1 {:.3} {:.3} <NA> <NA> {} <NA> <NA>",
            turn.start,
            turn.duration(),
            turn.label()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rttm_lines_follow_the_standard_layout() {
        let diarization = Diarization {
            speech: vec![],
            turns: vec![
                SpeakerTurn {
                    speaker: 0,
                    start: 0.5,
                    end: 2.25,
                },
                SpeakerTurn {
                    speaker: 1,
                    start: 2.5,
                    end: 4.0,
                },
            ],
            num_speakers: 2,
            activity: SpeakerActivity::default(),
        };
        assert_eq!(
            to_rttm(&diarization, "chat 1"),
            "SPEAKER chat_1 1 0.500 1.750 <NA> <NA> SPEAKER_00 <NA> <NA>\n\
             SPEAKER chat_1 1 2.500 1.500 <NA> <NA> SPEAKER_01 <NA> <NA>\n"
        );
    }
}
