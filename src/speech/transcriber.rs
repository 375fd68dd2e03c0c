//! What was said, in time order: Silero VAD finds the speech, Whisper decodes windows cut at
//! pauses between speech regions (each prompted with the text before it, with word timestamps
//! from the alignment heads), and the Singlish corrections and particles are judged on the
//! window's audio as it is decoded. The diarizer is not needed here, so this part runs beside
//! it (see `SpeechPipeline::analyze`).

use crate::audio::SAMPLE_RATE;
use crate::error::JobError;
use crate::inference::vad::{speech_regions, SileroVad, SpeechRegion, VadOptions};
use crate::inference::whisper::{Rewrite, TranscriptionOptions, Whisper, Word};
use crate::pipeline::Progress;
use crate::session::Stage;
use crate::singlish::{particle_sites, Corrector, INSERTED_PARTICLES, PARTICLE_PRIOR};

use super::{same_case, windows, Window, WINDOW_SECONDS};

/// The models and options of the transcription branch.
pub(super) struct Transcriber {
    pub(super) vad: SileroVad,
    pub(super) whisper: Whisper,
    pub(super) corrector: Corrector,
    pub(super) transcription: TranscriptionOptions,
}

/// What the transcription branch heard: the speech regions, the windows decoded and every word.
pub(super) struct Heard {
    pub(super) speech: Vec<SpeechRegion>,
    pub(super) windows: Vec<Window>,
    pub(super) words: Vec<Word>,
}

impl Transcriber {
    /// Speech regions, the windows planned over them and every word said in them.
    pub(super) fn hear(&mut self, samples: &[i16], progress: Progress) -> Result<Heard, JobError> {
        let (speech, windows) = self.plan_windows(samples)?;
        log::debug!(
            "{} speech regions ({:.1} s) in {} windows",
            speech.len(),
            speech.iter().map(SpeechRegion::duration).sum::<f64>(),
            windows.len()
        );
        let words = self.transcribe(samples, &speech, &windows, progress)?;
        Ok(Heard {
            speech,
            windows,
            words,
        })
    }

    /// Speech regions (Silero VAD) and the windows Whisper decodes, cut at pauses.
    fn plan_windows(
        &mut self,
        samples: &[i16],
    ) -> Result<(Vec<SpeechRegion>, Vec<Window>), JobError> {
        let probabilities = self.vad.frame_probabilities(samples)?;
        let speech = speech_regions(&probabilities, samples.len(), &VadOptions::default());
        let windows = windows::plan(&speech, &probabilities, WINDOW_SECONDS);
        Ok((speech, windows))
    }

    /// Every word said, in time order, with session times; the Singlish corrections are made
    /// here, word by word, where the audio is at hand to judge them.
    fn transcribe(
        &mut self,
        samples: &[i16],
        speech: &[SpeechRegion],
        windows: &[(f64, f64)],
        progress: Progress,
    ) -> Result<Vec<Word>, JobError> {
        let opts = TranscriptionOptions {
            clip_timestamps: windows.to_vec(),
            speech_regions: speech.iter().map(|r| (r.start, r.end)).collect(),
            ..self.transcription.clone()
        };
        let total = samples.len() as f64 / f64::from(SAMPLE_RATE);
        let corrector = &self.corrector;
        let corrections = |text: &str| -> Vec<Rewrite> {
            let mut rewrites: Vec<Rewrite> = corrector
                .candidates(text)
                .into_iter()
                .map(|c| Rewrite {
                    replacements: c
                        .readings
                        .iter()
                        .map(|r| same_case(&text[c.range.clone()], r))
                        .collect(),
                    range: c.range,
                    needs_evidence: c.needs_evidence,
                    prior: 0.0,
                })
                .collect();
            let taken: Vec<_> = rewrites.iter().map(|r| r.range.clone()).collect();
            rewrites.extend(particle_sites(text, &taken).into_iter().map(|at| Rewrite {
                range: at..at,
                replacements: INSERTED_PARTICLES.iter().map(|p| format!(" {p}")).collect(),
                needs_evidence: true,
                prior: PARTICLE_PRIOR,
            }));
            rewrites
        };
        let segments = self.whisper.transcribe_with(
            samples,
            &opts,
            &mut |seconds| {
                progress(
                    Stage::Transcribing,
                    (100.0 * seconds / total.max(1e-9)).min(100.0) as u8,
                )
            },
            &corrections,
        )?;
        Ok(segments.into_iter().flat_map(|s| s.words).collect())
    }
}
