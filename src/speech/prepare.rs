//! Preparing a session while it records (see `incremental`): one chunk per call, taken into the
//! session's analysis held in memory, or restored from the kept steps after a restart or when
//! another worker began it.

use std::time::Instant;

use crate::audio;
use crate::error::JobError;
use crate::inference::diarize::DiarizeOptions;
use crate::pipeline::{Prepared, PreparedStore};
use crate::session::{ChunkRef, PreparedStep, SessionInput};

use super::incremental::{self, Live, SoFar, Tail};
use super::SpeechPipeline;

impl SpeechPipeline {
    /// Takes in the first chunk of `input` the session's analysis lacks, and keeps the step.
    pub(super) fn prepare_next(
        &mut self,
        input: &SessionInput,
        store: &mut dyn PreparedStore,
    ) -> Result<Prepared, JobError> {
        let session_id = input.session_id;
        let kept = store.steps(false)?;
        // A chunk that arrived late, before others, or was replaced: the steps from there on
        // go, and the chunks after the ones still in place are taken in again.
        let valid = kept
            .iter()
            .zip(&input.chunks)
            .take_while(|(step, chunk)| {
                step.chunk_number == chunk.chunk_number && step.storage_path == chunk.storage_path
            })
            .count();
        if valid < kept.len() {
            log::info!(
                "♻️  {session_id}: the chunks changed after the first {valid}; preparing again \
                 from there"
            );
            store.forget_from(valid as i32 + 1)?;
            self.live.remove(&session_id);
        }
        if valid == input.chunks.len() && !self.live.contains_key(&session_id) {
            return Ok(Prepared::Nothing); // all taken in (by another worker, or before a restart)
        }
        let mut live = match self.live.remove(&session_id) {
            Some(live) if same_chunks(&live.so_far, &kept[..valid]) => live,
            _ => self.restore(input, store)?,
        };
        let taken = live.so_far.chunks.len();
        if taken < valid {
            // Kept steps whose chunks now decode differently (or not at all).
            store.forget_from(taken as i32 + 1)?;
        }
        let Some(chunk) = input.chunks.get(taken) else {
            self.live.insert(session_id, live);
            return Ok(Prepared::Nothing);
        };
        let began = Instant::now();
        let samples = match decode_chunk(chunk, &self.audio) {
            Ok(samples) => samples,
            Err(reason) => {
                self.live.insert(session_id, live);
                return Ok(Prepared::Waiting(reason));
            }
        };
        let mark = live.push(chunk, &samples);
        drop(samples);
        let opts = DiarizeOptions::default();
        let ((diarized, _), (heard, _)) = super::advance(
            (&mut self.diarizer, &mut self.transcriber),
            &mut live.so_far,
            &live.tail,
            (false, &opts),
            &mut |_, _| {},
        );
        diarized?;
        heard?;
        let step = live
            .step(&mark)
            .ok_or_else(|| JobError::transient("a prepared step without its chunk"))?;
        let number = taken as i32 + 1;
        let kept = store.keep(PreparedStep {
            step: number,
            chunk_number: chunk.chunk_number,
            storage_path: chunk.storage_path.clone(),
            state: incremental::encode(&step)?,
        })?;
        if !kept {
            log::info!("♻️  {session_id}: step {number} was kept by another worker first");
            return Ok(Prepared::TakenElsewhere);
        }
        live.tail.keep_from(live.so_far.needed_from(&opts));
        log::info!(
            "🎙️  {session_id}: chunk {} taken in while recording (step {number}, {:.1} s of \
             audio so far, {} words) in {:.2} s",
            chunk.chunk_number,
            live.so_far.samples() as f64 / f64::from(audio::SAMPLE_RATE),
            live.so_far.heard.words.len(),
            began.elapsed().as_secs_f64()
        );
        self.live.insert(session_id, live);
        Ok(Prepared::Step {
            step: number,
            chunk_number: chunk.chunk_number,
        })
    }

    /// The session's analysis from its kept steps (after a restart, or begun by another
    /// worker): its chunks decoded again, the steps used as far as they still match them, and
    /// the end of the recording the next step reads.
    fn restore(
        &self,
        input: &SessionInput,
        store: &mut dyn PreparedStore,
    ) -> Result<Live, JobError> {
        let steps = store.steps(true)?;
        let mut joined = Vec::new();
        let mut fed = Vec::new();
        for chunk in input.chunks.iter().take(steps.len()) {
            let Ok(samples) = decode_chunk(chunk, &self.audio) else {
                break;
            };
            fed.push(incremental::FedChunk::new(chunk, &samples));
            joined.extend_from_slice(&samples);
        }
        let so_far = SoFar::resume(&steps, &fed);
        joined.truncate(so_far.samples());
        let mut tail = Tail {
            offset: 0,
            samples: joined,
        };
        tail.keep_from(so_far.needed_from(&DiarizeOptions::default()));
        if !so_far.chunks.is_empty() {
            log::info!(
                "♻️  {}: {} prepared step(s) restored",
                input.session_id,
                so_far.chunks.len()
            );
        }
        Ok(Live { so_far, tail })
    }
}

/// Whether the analysis in memory took in the chunks the kept steps name, no more, no fewer.
fn same_chunks(so_far: &SoFar, kept: &[PreparedStep]) -> bool {
    so_far.chunks.len() == kept.len()
        && so_far.chunks.iter().zip(kept).all(|(fed, step)| {
            fed.chunk_number == step.chunk_number && fed.storage_path == step.storage_path
        })
}

/// One chunk's 16 kHz samples, or why it cannot be taken in now.
fn decode_chunk(chunk: &ChunkRef, opts: &audio::AudioOptions) -> Result<Vec<i16>, String> {
    match audio::decode_session(std::slice::from_ref(chunk), opts) {
        Ok(decoded) if decoded.skipped.is_empty() => Ok(decoded.samples),
        Ok(decoded) => Err(decoded
            .skipped
            .into_iter()
            .map(|(_, why)| why)
            .collect::<Vec<_>>()
            .join("; ")),
        Err(err) => Err(err.to_string()),
    }
}
