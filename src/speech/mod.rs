//! The speech pipeline the Processor runs: decode the session's chunks (ffmpeg) → who spoke when
//! (`inference::diarize`: segmentation-3.0, CAM++ embeddings, clustering) → what each speaker said
//! (Whisper, on windows of one speaker's audio each) → Singlish corrections → word counts per
//! speaker → a sample clip per speaker.

pub mod packing;
pub mod report;

pub use report::analyze_files;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use tch::Device;

use crate::audio::{self, AudioOptions, SAMPLE_RATE};
use crate::config::Config;
use crate::error::JobError;
use crate::inference::diarize::{DiarizeOptions, Diarizer};
use crate::inference::whisper::{DecodeOptions, Whisper};
use crate::pipeline::{Analysis, JobOptions, PipelineFactory, Progress, SessionPipeline};
use crate::session::*;
use crate::singlish::{Corrector, WordCounter};
use packing::SpeakerWindow;
pub use packing::Turn;

/// Longest window handed to Whisper, leaving room under its 30 s.
const WINDOW_SECONDS: f64 = 29.0;
/// Silence between two turns of a speaker inside one window.
const TURN_GAP_SECONDS: f64 = 0.3;
/// Longest sample clip per speaker, as the original cut them.
const SAMPLE_SECONDS: f64 = 5.0;
/// Whisper windows decoded together.
const ASR_BATCH: usize = 8;

/// The default prompt: Singlish said the way friends say it, so Whisper prefers these spellings.
/// Sentences, not a word list: a list invites tiny.en to copy it into short windows ("Aiyo,
/// paiseh, alamak, ..." where none was said); measured on a three-voice espeak-ng conversation
/// (tests/pipeline_singlish.rs), the list got 13 of 35 target words with 6 false counts, these
/// sentences 17 of 35 with 1–2.
pub const DEFAULT_PROMPT: &str = "Walao eh, so shiok lah! Aiyo, paiseh, I kena scolded, cannot tahan. Don't so kiasu or kaypoh lor. Alamak, bojio! Jialat sia. Let's lepak and makan, then chope a seat and drink kopi. So sian, so blur, so atas. Aiyah, steady leh.";

// ---- state ----

pub struct SpeechPipeline {
    device: Device,
    audio: AudioOptions,
    diarizer: Diarizer,
    whisper: Whisper,
    corrector: Corrector,
    decode: DecodeOptions,
    /// Where processed files go (and chunks come from): the configured object store.
    store: Arc<crate::storage::Store>,
    /// The last analysed session's audio and turns, for its sample clips.
    last: Option<(uuid::Uuid, Vec<f32>, Vec<Turn>)>,
}

/// Builds the pipeline on the Processor's thread (models load once, here).
pub fn factory(config: Config, device: Device) -> PipelineFactory {
    Arc::new(move || {
        SpeechPipeline::load(&config, device)
            .map(|pipeline| Box::new(pipeline) as Box<dyn SessionPipeline>)
    })
}

impl SpeechPipeline {
    pub fn load(config: &Config, device: Device) -> Result<SpeechPipeline, JobError> {
        let started = Instant::now();
        crate::inference::device::set_threads(
            (config.torch_threads > 0).then_some(config.torch_threads),
        );
        let diarizer = Diarizer::load(&config.models_dir, device)?;
        let whisper = Whisper::load(&config.models_dir.join(&config.whisper_model), device)?;
        let prompt = match config.initial_prompt.as_deref() {
            None => Some(DEFAULT_PROMPT.to_string()),
            Some("") => None,
            Some(text) => Some(text.to_string()),
        };
        log::info!(
            "🧠 Models loaded in {:.1}s",
            started.elapsed().as_secs_f64()
        );
        let store = Arc::new(crate::storage::Store::from_config(config)?);
        Ok(SpeechPipeline {
            device,
            audio: AudioOptions {
                store: Some(store.clone()),
                ..crate::commands::audio_options(config)
            },
            diarizer,
            whisper,
            corrector: Corrector::new(),
            decode: DecodeOptions {
                initial_prompt: prompt,
                ..DecodeOptions::default()
            },
            store,
            last: None,
        })
    }

    /// Who spoke when, in packing's terms, with speakers bounded as asked.
    fn diarize(&mut self, samples: &[f32], options: &JobOptions) -> Result<Vec<Turn>, JobError> {
        let opts = DiarizeOptions {
            min_speakers: options.min_speakers,
            max_speakers: options.max_speakers,
            ..DiarizeOptions::default()
        };
        let diarization = self.diarizer.diarize(samples, &opts)?;
        Ok(diarization
            .turns
            .iter()
            .map(|t| Turn {
                speaker: t.speaker,
                start: t.start,
                end: t.end,
            })
            .collect())
    }

    /// Transcribes every speaker window, in batches; returns segments in session time.
    fn transcribe(
        &mut self,
        windows: &[SpeakerWindow],
        progress: Progress,
    ) -> Result<Vec<TranscriptSegment>, JobError> {
        let mut segments = Vec::new();
        for (batch_index, batch) in windows.chunks(ASR_BATCH).enumerate() {
            let audio: Vec<&[f32]> = batch.iter().map(|w| w.samples.as_slice()).collect();
            let transcripts = self.whisper.transcribe_batch(&audio, &self.decode)?;
            for (window, transcript) in batch.iter().zip(transcripts) {
                for segment in transcript.segments {
                    let text = self.corrector.correct(segment.text.trim());
                    if text.is_empty() {
                        continue;
                    }
                    segments.push(TranscriptSegment {
                        speaker_label: speaker_label(window.speaker),
                        start_seconds: window.to_source_time(segment.start),
                        end_seconds: window.to_source_time(segment.end),
                        text,
                    });
                }
            }
            let done = ((batch_index + 1) * ASR_BATCH).min(windows.len());
            progress(
                Stage::Transcribing,
                (100 * done / windows.len().max(1)) as u8,
            );
        }
        segments.sort_by(|a, b| a.start_seconds.total_cmp(&b.start_seconds));
        Ok(segments)
    }
}

impl SessionPipeline for SpeechPipeline {
    fn analyze(
        &mut self,
        input: &SessionInput,
        options: &JobOptions,
        progress: Progress,
    ) -> Result<Analysis, JobError> {
        let mut stage_seconds = Vec::new();
        let mut clock = Instant::now();
        let mut lap = |stage: Stage, stages: &mut Vec<(Stage, f64)>| {
            stages.push((stage, clock.elapsed().as_secs_f64()));
            clock = Instant::now();
        };

        progress(Stage::Concatenating, 0);
        let decoded = audio::decode_session(&input.chunks, &self.audio)?;
        let samples = decoded.samples;
        let duration = samples.len() as f64 / f64::from(SAMPLE_RATE);
        log::info!(
            "🎧 {}: {:.1}s of audio from {} chunk(s)",
            input.session_id,
            duration,
            input.chunks.len()
        );
        progress(Stage::Concatenating, 100);
        lap(Stage::Concatenating, &mut stage_seconds);

        progress(Stage::Diarizing, 0);
        let turns = self.diarize(&samples, options)?;
        progress(Stage::Diarizing, 100);
        lap(Stage::Diarizing, &mut stage_seconds);

        progress(Stage::Transcribing, 0);
        let windows = packing::pack(&samples, &turns, WINDOW_SECONDS, TURN_GAP_SECONDS);
        log::debug!(
            "{} speaker turns packed into {} windows",
            turns.len(),
            windows.len()
        );
        let segments = self.transcribe(&windows, progress)?;
        lap(Stage::Transcribing, &mut stage_seconds);

        let speakers = speaker_results(&turns, &segments, &WordCounter::new(&options.target_words));
        self.last = Some((input.session_id, samples, turns));
        Ok(Analysis {
            results: SessionResults {
                session_id: input.session_id,
                duration_seconds: duration,
                audio_url: Some(
                    self.store
                        .public_url(&processed_path(input.session_id, "full_audio.wav")),
                ),
                speakers,
                segments,
            },
            stage_seconds,
        })
    }

    fn write_samples(
        &mut self,
        analysis: &Analysis,
        progress: Progress,
    ) -> Result<Vec<SpeakerSample>, JobError> {
        let session_id = analysis.results.session_id;
        let Some((_, samples, turns)) = self.last.take().filter(|(id, _, _)| *id == session_id)
        else {
            return Err(JobError::transient(
                "the session's audio is no longer in memory; process it again",
            ));
        };
        if analysis.results.audio_url.is_some() {
            let key = processed_path(session_id, "full_audio.wav");
            audio::publish_wav(&self.store, &key, &samples)?;
        }
        let mut clips = Vec::new();
        for (index, speaker) in analysis.results.speakers.iter().enumerate() {
            // The clearest turn: the speaker's longest.
            let Some(longest) = turns
                .iter()
                .filter(|t| speaker_label(t.speaker) == speaker.label)
                .max_by(|a, b| (a.end - a.start).total_cmp(&(b.end - b.start)))
            else {
                continue;
            };
            let path = processed_path(session_id, &format!("speaker_{}_sample.wav", speaker.label));
            let url = audio::publish_wav_clip(
                &self.store,
                &path,
                &samples,
                longest.start,
                SAMPLE_SECONDS,
            )?;
            clips.push(SpeakerSample {
                speaker_label: speaker.label.clone(),
                sample_audio_url: url,
                sample_start_time: longest.start,
            });
            progress(
                Stage::GeneratingSamples,
                (100 * (index + 1) / analysis.results.speakers.len()) as u8,
            );
        }
        Ok(clips)
    }

    fn device(&self) -> String {
        crate::inference::device::describe(self.device)
    }
}

/// Storage path of a processed file, as the app lays them out.
fn processed_path(session_id: uuid::Uuid, file: &str) -> String {
    crate::storage::processed_key(session_id, file)
}

/// Speakers in label order with their turn counts, talk time and word counts.
fn speaker_results(
    turns: &[Turn],
    segments: &[TranscriptSegment],
    counter: &WordCounter,
) -> Vec<SpeakerResult> {
    let mut speakers: BTreeMap<String, SpeakerResult> = BTreeMap::new();
    for turn in turns {
        let label = speaker_label(turn.speaker);
        let entry = speakers
            .entry(label.clone())
            .or_insert_with(|| SpeakerResult {
                label,
                segment_count: 0,
                total_duration_seconds: 0.0,
                word_counts: BTreeMap::new(),
            });
        entry.segment_count += 1;
        entry.total_duration_seconds += turn.end - turn.start;
    }
    for segment in segments {
        if let Some(speaker) = speakers.get_mut(&segment.speaker_label) {
            for (word, count) in counter.count(&segment.text) {
                *speaker.word_counts.entry(word).or_default() += count;
            }
        }
    }
    speakers.into_values().collect()
}
