//! The speech pipeline the Processor runs: decode the session's chunks (ffmpeg) → find speech
//! (Silero VAD) → who spoke when (`inference::diarize`:
//! segmentation-3.0, CAM++ embeddings, clustering, reconstruction) → what was said, in time order (Whisper on
//! windows cut at pauses between speech regions, each prompted with the text before it, with
//! word timestamps from the alignment heads) → each word to the speaker active at its time →
//! segments as runs of one speaker's words → Singlish corrections → word counts per speaker →
//! a sample clip per speaker.

pub mod assign;
pub mod incremental;
mod prepare;
pub mod report;
mod transcriber;
pub mod windows;

pub use report::analyze_files;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use tch::Device;

use crate::audio::{self, AudioError, AudioOptions, SAMPLE_RATE};
use crate::config::Config;
use crate::error::JobError;
use crate::inference::diarize::{Diarization, DiarizeOptions, Diarizer, SpeakerTurn};
use crate::inference::vad::{SileroVad, SpeechRegion};
use crate::inference::whisper::{TranscriptionOptions, Whisper};
use crate::pipeline::{Analysis, JobOptions, PipelineFactory, Progress, SessionPipeline};
use crate::session::*;
use crate::singlish::{Corrector, WordCounter};
use crate::storage::StorageError;
use transcriber::{Heard, Transcriber};

/// Longest window handed to Whisper: its 30 s, less a little so frame rounding never spills.
const WINDOW_SECONDS: f64 = 29.5;
/// `(start, end)` seconds of one of Whisper's windows.
pub type Window = (f64, f64);

/// Longest sample clip per speaker, as the original cut them.
const SAMPLE_SECONDS: f64 = 5.0;

/// A Singlish prompt an operator may give (`LAHSTATS_INITIAL_PROMPT`): Singlish said the way
/// friends say it, so Whisper prefers these spellings. Sentences, not a word list: a list
/// invites tiny.en to copy it into short windows. It is **not** the default: measured with
/// tiny.en on the real recordings, decoding without it is better on every measure
/// (`score_der_wer.py` WER on the five AMI excerpts 0.524 with it, 0.517 without;
/// `score-real-speech` on the 25 NSC clips 0.532 against 0.507; `score_counts.py` on AMI, target
/// words counted for the right speaker, F1 0.462 with it — recall 3 of 7, 3 false — against
/// 0.769 without — 5 of 7, 1 false). It helps only the synthetic espeak-ng Singlish
/// conversation (tests/pipeline_singlish.rs: 13 of 35 target words counted for their speaker
/// with 1 false count with it, 8 of 35 with 4 false without), which no real speaker produced;
/// that test gives it, as an operator would for Singlish-heavy recordings. When set, it is the
/// first window's prompt only, corrections are still judged without it, and a segment that
/// copies it and scores as anomalous is dropped (`inference::whisper::guards`).
pub const SINGLISH_PROMPT: &str = "Walao eh, so shiok lah! Aiyo, paiseh, I kena scolded, cannot tahan. Don't so kiasu or kaypoh lor. Alamak, bojio! Jialat sia. Let's lepak and makan, then chope a seat and drink kopi. So sian, so blur, so atas. Aiyah, steady leh.";

// ---- state ----

pub struct SpeechPipeline {
    device: Device,
    audio: AudioOptions,
    diarizer: Diarizer,
    /// VAD and Whisper: the branch that runs beside the diarizer.
    transcriber: Transcriber,
    /// Where processed files go (and chunks come from): the configured object store.
    store: Arc<crate::storage::Store>,
    /// The last analysed session, for its sample clips and `analyze`'s report.
    last: Option<LastSession>,
    /// Sessions being prepared while they record (see `incremental`), by id.
    live: std::collections::HashMap<uuid::Uuid, incremental::Live>,
}

/// What the last analysis keeps beyond its results.
pub struct LastSession {
    pub session_id: uuid::Uuid,
    /// The session's 16 kHz audio as 16-bit PCM, held once (sample clips are cut from it).
    pub samples: Vec<i16>,
    pub turns: Vec<SpeakerTurn>,
    /// Detected speech and the windows Whisper decoded, in seconds.
    pub speech: Vec<SpeechRegion>,
    pub windows: Vec<(f64, f64)>,
    /// Every word kept, in time order, with its speaker.
    pub words: Vec<assign::SpeakerWord>,
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
        let vad = SileroVad::load(&config.models_dir, device)?;
        let diarizer = Diarizer::load(&config.models_dir, device)?;
        let mut whisper = Whisper::load(&config.models_dir.join(&config.whisper_model), device)?;
        if config.whisper_projection == "int8" {
            quantize_projection(&mut whisper, &config.models_dir)?;
        }
        // No initial prompt unless the operator gives one (see SINGLISH_PROMPT for why).
        let prompt = config
            .initial_prompt
            .as_deref()
            .map(str::trim)
            .filter(|text| !text.is_empty())
            .map(str::to_string);
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
            transcriber: Transcriber {
                vad,
                whisper,
                corrector: Corrector::new(),
                transcription: TranscriptionOptions {
                    initial_prompt: prompt,
                    beam_size: config.beam_size,
                    ..TranscriptionOptions::default()
                },
            },
            store,
            last: None,
            live: Default::default(),
        })
    }

    /// The last analysed session (its audio, turns, windows and words).
    pub fn last_session(&self) -> Option<&LastSession> {
        self.last.as_ref()
    }
}

/// The TorchScript helper of Whisper's int8 vocabulary projection, in the models directory.
const INT8_HELPER: &str = "int8_linear.pt";

/// Has `whisper` project onto its vocabulary in int8 (see `Whisper::quantize_projection`); a
/// models directory made before the helper existed keeps f32, and says so.
fn quantize_projection(
    whisper: &mut Whisper,
    models_dir: &std::path::Path,
) -> Result<(), JobError> {
    let helper = models_dir.join(INT8_HELPER);
    if !helper.exists() {
        log::warn!(
            "{} is missing: Whisper's vocabulary projection stays f32 (run scripts/prepare-models)",
            helper.display()
        );
        return Ok(());
    }
    if whisper.quantize_projection(&helper)? {
        log::debug!(
            "whisper: vocabulary projection in int8 ({})",
            helper.display()
        );
    }
    Ok(())
}

/// How a job's audio is diarized: speakers bounded as asked.
fn diarize_options(options: &JobOptions) -> DiarizeOptions {
    DiarizeOptions {
        min_speakers: options.min_speakers,
        max_speakers: options.max_speakers,
        ..DiarizeOptions::default()
    }
}

/// Longest session whose diarization and transcription run side by side. Their working memory
/// adds up when they do: on a 2-hour recording the peak (max RSS) was 1.21 GB side by side
/// against 0.95 GB one after the other, past the 1 GB a worker is given; on 1 hour, side by
/// side, 0.93 GB (scripts/bench's conversation repeated). Longer sessions, rare for a group
/// conversation, run one after the other.
const SIDE_BY_SIDE_MAX_SECONDS: f64 = 3600.0;

/// A branch's result and its wall seconds.
type Timed<T> = (Result<T, JobError>, f64);

/// Goes on with the analysis `so_far` over `samples` (the recording so far; see
/// `incremental`): the diarization's windows and the transcription's, which need nothing of
/// each other, side by side on two threads when the machine has two cores or more (libtorch's
/// intra-op threads, `--torch-threads`, are split between them, at least one each: more
/// threads than cores make libtorch's barriers wait for descheduled peers; once the diarization
/// is done, the transcription takes them all from its next window on) and the session is
/// at most [`SIDE_BY_SIDE_MAX_SECONDS`] long, else one after the other. With `last` the
/// recording is whole: everything is decoded and the diarization concluded. The transcription
/// runs on the calling thread, which reports its progress.
fn advance<S: crate::pcm::Samples + Sync + ?Sized>(
    (diarizer, transcriber): (&mut Diarizer, &mut Transcriber),
    so_far: &mut incremental::SoFar,
    samples: &S,
    (last, opts): (bool, &DiarizeOptions),
    progress: Progress,
) -> (Timed<Option<Diarization>>, Timed<Heard>) {
    let incremental::SoFar {
        heard, evidence, ..
    } = so_far;
    let mut diarize = move || {
        let began = Instant::now();
        let diarized = diarizer
            .gather(evidence, samples, opts, last)
            .and_then(|()| {
                last.then(|| diarizer.conclude(evidence, samples.len(), opts))
                    .transpose()
            })
            .map_err(JobError::from);
        (diarized, began.elapsed().as_secs_f64())
    };
    let mut transcribe = move |progress: Progress| {
        let began = Instant::now();
        let heard = transcriber.advance(heard, samples, last, progress);
        (heard, began.elapsed().as_secs_f64())
    };
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let seconds = samples.len() as f64 / f64::from(SAMPLE_RATE);
    if cores < 2 || seconds > SIDE_BY_SIDE_MAX_SECONDS {
        let diarized = diarize();
        return (diarized, transcribe(progress));
    }
    let all = tch::get_num_threads();
    let threads = (all.max(2) / 2) as i32;
    // Set when the diarization is done: the transcription then takes all the threads from its
    // next window on (it is the longer branch on real speech: 4.2 s against 2.8 s on 30 s of
    // an AMI meeting).
    let diarized = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let diarized = &diarized;
        let diarization = std::thread::Builder::new()
            .name("diarization".into())
            .spawn_scoped(scope, move || {
                // libtorch's OpenMP thread count is this thread's own.
                tch::set_num_threads(threads);
                let result = diarize();
                diarized.store(true, std::sync::atomic::Ordering::Release);
                result
            });
        tch::set_num_threads(threads);
        let mut widened = false;
        let mut report = |stage: Stage, percent: u8| {
            if !widened && diarized.load(std::sync::atomic::Ordering::Acquire) {
                tch::set_num_threads(all);
                widened = true;
            }
            progress(stage, percent);
        };
        let heard = transcribe(&mut report);
        tch::set_num_threads(all);
        let diarized = match diarization {
            // A panic there is the Processor's to handle, as one on its own thread would be.
            Ok(handle) => handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Err(e) => (
                Err(JobError::transient(format!(
                    "cannot start the diarization thread: {e}"
                ))),
                0.0,
            ),
        };
        (diarized, heard)
    })
}

impl SessionPipeline for SpeechPipeline {
    fn analyze(
        &mut self,
        input: &SessionInput,
        options: &JobOptions,
        progress: Progress,
    ) -> Result<Analysis, JobError> {
        let began = Instant::now();
        let mut stage_seconds = Vec::new();
        self.last = None; // the previous session's audio goes before this one's is decoded

        progress(Stage::Concatenating, 0);
        self.live.remove(&input.session_id);
        let decoded = audio::decode_session(&input.chunks, &self.audio)?;
        let mut so_far = resume_prepared(input, &decoded);
        let samples = decoded.samples;
        let duration = samples.len() as f64 / f64::from(SAMPLE_RATE);
        log::info!(
            "🎧 {}: {:.1}s of audio from {} chunk(s)",
            input.session_id,
            duration,
            input.chunks.len()
        );
        progress(Stage::Concatenating, 100);
        stage_seconds.push((Stage::Concatenating, began.elapsed().as_secs_f64()));

        // Diarization and transcription side by side: each stage's own seconds are kept;
        // `wall_seconds` counts the time they shared once.
        progress(Stage::Diarizing, 0);
        let ((diarization, diarize_seconds), (heard, transcribe_seconds)) = advance(
            (&mut self.diarizer, &mut self.transcriber),
            &mut so_far,
            &samples[..],
            (true, &diarize_options(options)),
            progress,
        );
        let diarization = diarization?.unwrap_or_default();
        let Heard {
            speech,
            windows,
            words,
        } = heard?;
        log::debug!(
            "diarization {diarize_seconds:.2} s and transcription {transcribe_seconds:.2} s, \
             side by side"
        );
        progress(Stage::Diarizing, 100);
        stage_seconds.push((Stage::Diarizing, diarize_seconds));
        let words = assign::assign(words, &diarization);
        let segments: Vec<TranscriptSegment> = assign::runs(&words)
            .into_iter()
            .filter(|run| !run.text.is_empty())
            .map(|run| TranscriptSegment {
                speaker_label: speaker_label(run.speaker),
                start_seconds: run.start,
                end_seconds: run.end,
                text: run.text,
            })
            .collect();
        progress(Stage::Transcribing, 100);
        stage_seconds.push((Stage::Transcribing, transcribe_seconds));

        let speakers = speaker_results(
            &diarization.turns,
            &segments,
            &WordCounter::new(&options.target_words),
        );
        self.last = Some(LastSession {
            session_id: input.session_id,
            samples,
            turns: diarization.turns,
            speech,
            windows,
            words,
        });
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
            wall_seconds: began.elapsed().as_secs_f64(),
        })
    }

    fn write_samples(
        &mut self,
        analysis: &mut Analysis,
        progress: Progress,
    ) -> Result<Vec<SpeakerSample>, JobError> {
        let session_id = analysis.results.session_id;
        let Some(last) = self
            .last
            .take()
            .filter(|last| last.session_id == session_id)
        else {
            return Err(JobError::transient(
                "the session's audio is no longer in memory; process it again",
            ));
        };
        if analysis.results.audio_url.is_some() {
            let key = processed_path(session_id, "full_audio.wav");
            match audio::publish_wav(&self.store, &key, &last.samples) {
                Ok(_) => {}
                // The counts are what the app is for; a recording too long for the bucket
                // (Supabase's default limit is 50 MB: 27 min of 16 kHz WAV) only goes unplayed.
                Err(AudioError::Storage(err @ StorageError::TooLarge { .. })) => {
                    log::warn!(
                        "{session_id}: the session is saved without its recording \
                         (audio_url left empty): {err}"
                    );
                    analysis.results.audio_url = None;
                }
                Err(err) => return Err(err.into()),
            }
        }
        let mut clips = Vec::new();
        for (index, speaker) in analysis.results.speakers.iter().enumerate() {
            // The clearest turn: the speaker's longest.
            let Some(longest) = last
                .turns
                .iter()
                .filter(|t| speaker_label(t.speaker) == speaker.label)
                .max_by(|a, b| (a.end - a.start).total_cmp(&(b.end - b.start)))
            else {
                continue;
            };
            clips.push(self.write_sample_clip(
                session_id,
                &speaker.label,
                &last.samples,
                longest.start,
            )?);
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

    fn prepare(
        &mut self,
        input: &SessionInput,
        store: &mut dyn crate::pipeline::PreparedStore,
    ) -> Result<crate::pipeline::Prepared, JobError> {
        self.prepare_next(input, store)
    }

    fn retain_prepared(&mut self, recording: &[uuid::Uuid]) {
        self.live.retain(|id, _| recording.contains(id));
    }
}

/// The analysis kept while the session recorded, as far as its chunks are still the ones
/// decoded now (nothing when it was not prepared).
fn resume_prepared(input: &SessionInput, decoded: &audio::SessionAudio) -> incremental::SoFar {
    if input.prepared.is_empty() {
        return incremental::SoFar::default();
    }
    let fed: Vec<incremental::FedChunk> = decoded
        .chunk_samples
        .iter()
        .map(|(chunk, range)| incremental::FedChunk::new(chunk, &decoded.samples[range.clone()]))
        .collect();
    let so_far = incremental::SoFar::resume(&input.prepared, &fed);
    log::info!(
        "♻️  {}: {} of {} chunk(s) analysed while it recorded ({} step(s) kept)",
        input.session_id,
        so_far.chunks.len(),
        fed.len(),
        input.prepared.len()
    );
    so_far
}

impl SpeechPipeline {
    /// Publishes one speaker's sample clip (up to [`SAMPLE_SECONDS`] from `start`) to the store
    /// where the app expects it, and says where (its public URL).
    fn write_sample_clip(
        &self,
        session_id: uuid::Uuid,
        label: &str,
        samples: &[i16],
        start: f64,
    ) -> Result<SpeakerSample, JobError> {
        let path = processed_path(session_id, &format!("speaker_{label}_sample.wav"));
        let url = audio::publish_wav_clip(&self.store, &path, samples, start, SAMPLE_SECONDS)?;
        Ok(SpeakerSample {
            speaker_label: label.to_string(),
            sample_audio_url: url,
            sample_start_time: start,
        })
    }
}

/// `word` with its first letter in capitals when `original`'s is ("La" → "Lah"), so a
/// correction is judged on its spelling, not on a sentence's capital.
fn same_case(original: &str, word: &str) -> String {
    let capital = original.chars().next().is_some_and(char::is_uppercase);
    let mut chars = word.chars();
    match chars.next() {
        Some(first) if capital => first.to_uppercase().chain(chars).collect(),
        _ => word.to_string(),
    }
}

/// Storage path of a processed file, as the app lays them out.
fn processed_path(session_id: uuid::Uuid, file: &str) -> String {
    crate::storage::processed_key(session_id, file)
}

/// Speakers in label order with their turn counts, talk time and word counts (a speaker with
/// words but no turn of their own still gets their counts).
fn speaker_results(
    turns: &[SpeakerTurn],
    segments: &[TranscriptSegment],
    counter: &WordCounter,
) -> Vec<SpeakerResult> {
    let mut speakers: BTreeMap<String, SpeakerResult> = BTreeMap::new();
    let entry = |speakers: &mut BTreeMap<String, SpeakerResult>, label: &str| {
        speakers
            .entry(label.to_string())
            .or_insert_with(|| SpeakerResult {
                label: label.to_string(),
                segment_count: 0,
                total_duration_seconds: 0.0,
                word_counts: BTreeMap::new(),
            })
            .label
            .clone()
    };
    for turn in turns {
        let label = entry(&mut speakers, &speaker_label(turn.speaker));
        if let Some(speaker) = speakers.get_mut(&label) {
            speaker.segment_count += 1;
            speaker.total_duration_seconds += turn.end - turn.start;
        }
    }
    for segment in segments {
        let label = entry(&mut speakers, &segment.speaker_label);
        if let Some(speaker) = speakers.get_mut(&label) {
            for (word, count) in counter.count(&segment.text) {
                *speaker.word_counts.entry(word).or_default() += count;
            }
        }
    }
    speakers.into_values().collect()
}
