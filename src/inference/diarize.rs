//! Who spoke when: Silero VAD finds the speech, GE2E embeds sliding windows over it, spectral
//! clustering groups the windows into speakers, and the window labels become smoothed speaker
//! turns, numbered in order of first appearance. Also RTTM output and the diarization error
//! rate (`der`) to measure it.

pub mod der;
mod smooth;
mod windows;

use super::cluster::{cluster_embeddings, ClusterOptions};
use super::embed::SpeakerEncoder;
use super::vad::{SileroVad, SpeechRegion, VadOptions, SAMPLE_RATE};
use super::InferenceError;
use crate::session::speaker_label;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;
use tch::Device;

/// How audio is diarized.
#[derive(Debug, Clone, PartialEq)]
pub struct DiarizeOptions {
    /// Length of the windows that are embedded (GE2E was trained on 1.6 s partials).
    pub window_seconds: f64,
    /// Hop between windows inside a speech region.
    pub step_seconds: f64,
    pub min_speakers: Option<usize>,
    pub max_speakers: Option<usize>,
    /// A turn shorter than this, touching another speaker's turn, is given to that speaker.
    pub min_turn_seconds: f64,
    /// Turns of one speaker separated by at most this much are joined.
    pub merge_gap_seconds: f64,
    pub vad: VadOptions,
    /// Windows per forward pass of the speaker encoder.
    pub batch_size: usize,
}

impl Default for DiarizeOptions {
    fn default() -> Self {
        DiarizeOptions {
            window_seconds: 1.5,
            step_seconds: 0.75,
            min_speakers: None,
            max_speakers: None,
            min_turn_seconds: 0.5,
            merge_gap_seconds: 0.5,
            vad: VadOptions::default(),
            batch_size: 64,
        }
    }
}

/// One speaker talking from `start` to `end` seconds.
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
    pub speech: Vec<SpeechRegion>,
    pub turns: Vec<SpeakerTurn>,
    pub num_speakers: usize,
}

/// The VAD and the speaker encoder, loaded once.
pub struct Diarizer {
    vad: SileroVad,
    encoder: SpeakerEncoder,
}

impl Diarizer {
    /// Loads both models from the models directory onto the device.
    pub fn load(models_dir: &Path, device: Device) -> Result<Self, InferenceError> {
        Ok(Diarizer {
            vad: SileroVad::load(models_dir, device)?,
            encoder: SpeakerEncoder::load(models_dir, device)?,
        })
    }

    /// Diarizes 16 kHz mono audio.
    pub fn diarize(
        &mut self,
        samples: &[f32],
        opts: &DiarizeOptions,
    ) -> Result<Diarization, InferenceError> {
        if opts.window_seconds < 0.1 || opts.step_seconds <= 0.0 {
            return Err(InferenceError::InvalidInput(format!(
                "diarization windows of {} s every {} s make no sense; use a window of at least \
                 0.1 s and a positive step",
                opts.window_seconds, opts.step_seconds
            )));
        }
        let started = Instant::now();
        let speech = self.vad.detect(samples, &opts.vad)?;
        let vad_done = Instant::now();

        let plan = windows::plan(
            &speech,
            samples.len(),
            opts.window_seconds,
            opts.step_seconds,
        );
        let padded = windows::padded_audio(samples, plan.window_samples);
        let slices: Vec<&[f32]> = plan
            .windows
            .iter()
            .map(|w| &padded[w.start_sample..w.start_sample + plan.window_samples])
            .collect();
        let embeddings = self.encoder.embed_windows(&slices, opts.batch_size)?;
        let embed_done = Instant::now();

        let cluster_opts = ClusterOptions {
            min_speakers: opts.min_speakers,
            max_speakers: opts.max_speakers,
            ..ClusterOptions::default()
        };
        let labels = cluster_embeddings(&embeddings, &cluster_opts)?;
        let cluster_done = Instant::now();

        let raw_turns = windows::turns_from_labels(&plan, &labels);
        let turns = smooth::smooth(raw_turns, opts.min_turn_seconds, opts.merge_gap_seconds);
        let num_speakers = turns.iter().map(|t| t.speaker + 1).max().unwrap_or(0);
        log::debug!(
            "diarize: {:.1} s audio: vad {:.2} s, {} windows embedded in {:.2} s, clustering {:.2} s, \
             smoothing {:.3} s → {} speakers, {} turns",
            samples.len() as f64 / SAMPLE_RATE as f64,
            (vad_done - started).as_secs_f64(),
            slices.len(),
            (embed_done - vad_done).as_secs_f64(),
            (cluster_done - embed_done).as_secs_f64(),
            cluster_done.elapsed().as_secs_f64(),
            num_speakers,
            turns.len()
        );
        Ok(Diarization {
            speech,
            turns,
            num_speakers,
        })
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
        };
        assert_eq!(
            to_rttm(&diarization, "chat 1"),
            "SPEAKER chat_1 1 0.500 1.750 <NA> <NA> SPEAKER_00 <NA> <NA>\n\
             SPEAKER chat_1 1 2.500 1.500 <NA> <NA> SPEAKER_01 <NA> <NA>\n"
        );
    }
}
