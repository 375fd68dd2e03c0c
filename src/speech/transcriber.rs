//! What was said, in time order: Silero VAD finds the speech, Whisper decodes windows cut at
//! pauses between speech regions (each prompted with the text before it, with word timestamps
//! from the alignment heads), and the Singlish corrections and particles are judged on the
//! window's audio as it is decoded. The diarizer is not needed here, so this part runs beside
//! it (see `SpeechPipeline::analyze`).

use crate::audio::SAMPLE_RATE;
use crate::error::JobError;
use crate::inference::vad::{speech_regions, SileroVad, SpeechRegion, VadOptions, VadStream};
use crate::inference::whisper::{DecoderContext, Rewrite, TranscriptionOptions, Whisper, Word};
use crate::pcm::Samples;
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

/// The transcription of a recording so far: Silero's frames, the windows decoded, their words
/// and the decoder's context after them. A window is decoded once no audio still to come can
/// change it (see [`SETTLE_SECONDS`]), so a recording heard as it grows gets the words it gets in
/// one pass.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub(super) struct HeardSoFar {
    pub(super) vad: VadStream,
    pub(super) windows: Vec<Window>,
    pub(super) words: Vec<Word>,
    /// `None` until the first window is decoded.
    pub(super) decoder: Option<DecoderContext>,
    /// Seconds: no window still to decode starts before this (the next planned window's
    /// start, or the settled end of the recording when none is planned).
    pub(super) pending_from: f64,
}

/// How far behind the end of a growing recording a window must start for the window before
/// it to be final. The speech regions change only near the end (a region ends after
/// `min_silence_ms` of silence, and is padded by `speech_pad_ms`): 1 s is several times both.
const SETTLE_SECONDS: f64 = 1.0;

impl Transcriber {
    /// Goes on with `so_far` over `samples` (the whole recording so far, read only where
    /// `so_far` has not been): Silero over the new frames, the windows planned again over all
    /// the speech, and the windows not yet decoded decoded: while the recording grows (`last`
    /// false) those no later audio can change, with `last` all of them. Returns what was heard
    /// in all.
    pub(super) fn advance(
        &mut self,
        so_far: &mut HeardSoFar,
        samples: &(impl Samples + ?Sized),
        last: bool,
        progress: Progress,
    ) -> Result<Heard, JobError> {
        self.vad.advance(&mut so_far.vad, samples, last)?;
        let probabilities = &so_far.vad.probabilities;
        let speech = speech_regions(probabilities, samples.len(), &VadOptions::default());
        let planned = windows::plan(&speech, probabilities, WINDOW_SECONDS);
        let done = so_far.windows.len();
        if planned.get(..done) != Some(&so_far.windows[..]) {
            log::warn!(
                "the windows planned over more audio differ from the {done} decoded before it \
                 arrived; the decoded ones are kept"
            );
        }
        let settled = samples.len() as f64 / f64::from(SAMPLE_RATE) - SETTLE_SECONDS;
        // A window is final once a later one starts in settled audio, or once it is as long as
        // a window may be before the settled audio ends: no region to come can join it then.
        let settled_window = |i: usize| {
            planned.get(i + 1).is_some_and(|next| next.0 < settled)
                || planned[i].0 + WINDOW_SECONDS < settled
        };
        let todo: Vec<Window> = (done..planned.len())
            .take_while(|&i| last || settled_window(i))
            .map(|i| planned[i])
            .collect();
        log::debug!(
            "{} speech regions ({:.1} s), {} window(s) decoded before, {} now",
            speech.len(),
            speech.iter().map(SpeechRegion::duration).sum::<f64>(),
            done,
            todo.len()
        );
        if !todo.is_empty() {
            let context = match so_far.decoder.take() {
                Some(context) => context,
                None => self.whisper.start_context(&self.transcription)?,
            };
            let mut context = context;
            let words = self.transcribe(samples, &speech, &todo, &mut context, progress)?;
            so_far.decoder = Some(context);
            so_far.windows.extend(todo);
            so_far.words.extend(words);
        }
        so_far.pending_from = planned
            .get(so_far.windows.len())
            .map_or(settled, |window| window.0)
            .min(settled)
            .max(0.0);
        Ok(Heard {
            speech,
            windows: so_far.windows.clone(),
            words: so_far.words.clone(),
        })
    }

    /// Every word said, in time order, with session times; the Singlish corrections are made
    /// here, word by word, where the audio is at hand to judge them.
    fn transcribe(
        &mut self,
        samples: &(impl Samples + ?Sized),
        speech: &[SpeechRegion],
        windows: &[(f64, f64)],
        context: &mut DecoderContext,
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
        let segments = self.whisper.transcribe_resuming(
            samples,
            &opts,
            context,
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
