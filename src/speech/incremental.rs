//! A session analysed while it records. The app uploads a chunk every ~30 s; each one taken in
//! is a **step**: its samples join the recording so far, Silero runs over the new frames, the
//! segmentation windows that now lie wholly inside the recording are segmented and their local
//! speakers embedded, and the Whisper windows no later audio can change are decoded. What a
//! step added is kept (`prepared_steps`, encoded with postcard), so a restart or another
//! worker resumes where it stopped. When the job arrives only the audio after the last settled
//! window, the clustering of all the embeddings and the saving remain.
//!
//! Every part is computed on the joined recording exactly as the whole-session run computes
//! it (the segmentation's regular window grid, Silero's state carried frame to frame, the
//! windows planned over the same speech, the decoder's context carried from window to window),
//! so a prepared session gets the results of one processed whole; a step is used only while
//! its chunk is still the session's chunk in that place, decoded to the same samples.

use std::ops::Range;

use sha2::{Digest, Sha256};

use crate::error::JobError;
use crate::inference::diarize::{DiarizeOptions, LocalEvidence};
use crate::pcm::Samples;
use crate::session::{ChunkRef, PreparedStep};

use super::transcriber::HeardSoFar;

// ---- the analysis so far ----

/// One chunk taken in: which, and what it decoded to (a chunk replaced under the same number
/// or path decodes to other samples).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FedChunk {
    pub chunk_number: i32,
    pub storage_path: String,
    /// 16 kHz samples it decoded to.
    pub samples: usize,
    /// SHA-256 of those samples (16-bit little-endian), hex.
    pub sha256: String,
}

impl FedChunk {
    /// `chunk` as it decoded to `samples`.
    pub fn new(chunk: &ChunkRef, samples: &[i16]) -> FedChunk {
        let mut hash = Sha256::new();
        for sample in samples {
            hash.update(sample.to_le_bytes());
        }
        FedChunk {
            chunk_number: chunk.chunk_number,
            storage_path: chunk.storage_path.clone(),
            samples: samples.len(),
            sha256: format!("{:x}", hash.finalize()),
        }
    }
}

/// What one step added to the analysis, and the decoder's and Silero's state after it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Step {
    pub chunk: FedChunk,
    /// The frames it added (`probabilities`) and Silero's state after them.
    vad: crate::inference::vad::VadStream,
    /// The segmentation windows it added, window indices from its first.
    evidence: LocalEvidence,
    windows: Vec<super::Window>,
    words: Vec<crate::inference::whisper::Word>,
    decoder: Option<crate::inference::whisper::DecoderContext>,
    pending_from: f64,
}

/// The analysis of the chunks taken in so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SoFar {
    pub chunks: Vec<FedChunk>,
    pub(super) heard: HeardSoFar,
    pub(super) evidence: LocalEvidence,
}

/// Where each part of a [`SoFar`] stood before a step, to take out what the step added.
pub struct Mark {
    frames: usize,
    segmentation_windows: usize,
    windows: usize,
    words: usize,
}

impl SoFar {
    /// Samples taken in.
    pub fn samples(&self) -> usize {
        self.chunks.iter().map(|c| c.samples).sum()
    }

    fn mark(&self) -> Mark {
        Mark {
            frames: self.heard.vad.probabilities.len(),
            segmentation_windows: self.evidence.windows(),
            windows: self.heard.windows.len(),
            words: self.heard.words.len(),
        }
    }

    /// What was added since `mark`, when the last chunk taken in was added.
    fn step_since(&self, mark: &Mark) -> Option<Step> {
        Some(Step {
            chunk: self.chunks.last()?.clone(),
            vad: self.heard.vad.since(mark.frames),
            evidence: self.evidence.since(mark.segmentation_windows),
            windows: self.heard.windows[mark.windows..].to_vec(),
            words: self.heard.words[mark.words..].to_vec(),
            decoder: self.heard.decoder.clone(),
            pending_from: self.heard.pending_from,
        })
    }

    fn apply(&mut self, step: Step) {
        self.chunks.push(step.chunk);
        self.heard.vad.append(step.vad);
        self.evidence.append(step.evidence);
        self.heard.windows.extend(step.windows);
        self.heard.words.extend(step.words);
        self.heard.decoder = step.decoder;
        self.heard.pending_from = step.pending_from;
    }

    /// The analysis the kept `steps` make while their chunks are `chunks`' first ones: the
    /// steps up to the first whose chunk is not the session's chunk in that place (replaced,
    /// decoded differently, a chunk arrived late before it, or a step that cannot be read).
    pub fn resume(steps: &[PreparedStep], chunks: &[FedChunk]) -> SoFar {
        let mut so_far = SoFar::default();
        for (index, kept) in steps.iter().enumerate() {
            if kept.step != index as i32 + 1 {
                break;
            }
            let step: Step = match postcard::from_bytes(&kept.state) {
                Ok(step) => step,
                Err(err) => {
                    log::warn!(
                        "prepared step {} cannot be read ({err}): not used",
                        kept.step
                    );
                    break;
                }
            };
            if chunks.get(index) != Some(&step.chunk) {
                break;
            }
            so_far.apply(step);
        }
        so_far
    }

    /// The first sample any later step reads: the next segmentation window's start, the
    /// earliest start of a Whisper window still to decode, or Silero's next frame, whichever is
    /// first.
    pub fn needed_from(&self, opts: &DiarizeOptions) -> usize {
        // Whisper reads a window from its start rounded to a mel frame, and its log-mel
        // spectrogram looks a little before: a second more is kept.
        let pending = ((self.heard.pending_from - 1.0) * f64::from(crate::audio::SAMPLE_RATE))
            .floor()
            .max(0.0);
        self.evidence
            .next_window_start(opts)
            .min(pending as usize)
            .min(self.heard.vad.samples_done())
    }
}

/// Encodes `step` for `prepared_steps`.
pub fn encode(step: &Step) -> Result<Vec<u8>, JobError> {
    postcard::to_stdvec(step)
        .map_err(|err| JobError::permanent(format!("cannot encode a prepared step: {err}")))
}

// ---- a session in the pipeline's memory ----

/// The end of a recording as the analysis still needs it: `samples` from sample `offset` on.
/// Read through [`Samples`] with the recording's own sample indices.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tail {
    pub offset: usize,
    pub samples: Vec<i16>,
}

impl Tail {
    /// Forgets the samples before `from`.
    pub fn keep_from(&mut self, from: usize) {
        let drop = from.saturating_sub(self.offset).min(self.samples.len());
        self.samples.drain(..drop);
        self.offset += drop;
    }

    fn local(&self, range: Range<usize>) -> Range<usize> {
        assert!(
            range.start >= self.offset,
            "samples {range:?} were read after the tail forgot those before {}",
            self.offset
        );
        range.start - self.offset..range.end - self.offset
    }
}

impl Samples for Tail {
    fn len(&self) -> usize {
        self.offset + self.samples.len()
    }

    fn extend_f32(&self, range: Range<usize>, out: &mut Vec<f32>) {
        let range = self.local(range);
        self.samples[..].extend_f32(range, out);
    }

    fn extend_i16(&self, range: Range<usize>, out: &mut Vec<i16>) {
        let range = self.local(range);
        self.samples[..].extend_i16(range, out);
    }
}

/// A session being prepared: its analysis and the end of its recording.
#[derive(Debug, Default)]
pub struct Live {
    pub so_far: SoFar,
    pub tail: Tail,
}

impl Live {
    /// Takes a decoded chunk into the recording; the step is `prepare`'s to run.
    pub fn push(&mut self, chunk: &ChunkRef, samples: &[i16]) -> Mark {
        let mark = self.so_far.mark();
        self.so_far.chunks.push(FedChunk::new(chunk, samples));
        self.tail.samples.extend_from_slice(samples);
        mark
    }

    /// What the step begun at `mark` added.
    pub fn step(&self, mark: &Mark) -> Option<Step> {
        self.so_far.step_since(mark)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tail_reads_with_the_recordings_own_indices() {
        let mut tail = Tail {
            offset: 0,
            samples: (0..100).collect(),
        };
        tail.keep_from(40);
        assert_eq!(tail.offset, 40);
        assert_eq!(Samples::len(&tail), 100);
        let mut out = Vec::new();
        tail.extend_i16(50..53, &mut out);
        assert_eq!(out, vec![50, 51, 52]);
    }

    #[test]
    fn steps_are_used_only_while_their_chunks_are_the_sessions() {
        let chunk = |n: i32, samples: &[i16]| {
            FedChunk::new(
                &ChunkRef {
                    chunk_number: n,
                    storage_path: format!("c{n}.m4a"),
                },
                samples,
            )
        };
        let fed = [chunk(1, &[1, 2]), chunk(2, &[3, 4]), chunk(3, &[5])];
        let kept: Vec<PreparedStep> = fed
            .iter()
            .enumerate()
            .map(|(i, c)| PreparedStep {
                step: i as i32 + 1,
                chunk_number: c.chunk_number,
                storage_path: c.storage_path.clone(),
                state: encode(&Step {
                    chunk: c.clone(),
                    vad: Default::default(),
                    evidence: Default::default(),
                    windows: vec![],
                    words: vec![],
                    decoder: None,
                    pending_from: 0.0,
                })
                .unwrap(),
            })
            .collect();
        assert_eq!(SoFar::resume(&kept, &fed).chunks.len(), 3);
        // Chunk 2 replaced: it decodes to other samples.
        let replaced = [fed[0].clone(), chunk(2, &[3, 5]), fed[2].clone()];
        assert_eq!(SoFar::resume(&kept, &replaced).chunks, vec![fed[0].clone()]);
        // A chunk that arrived late, before chunk 2.
        let late = [fed[0].clone(), chunk(1, &[9]), fed[1].clone()];
        assert_eq!(SoFar::resume(&kept, &late).chunks.len(), 1);
        // A step that cannot be read ends what is used.
        let mut broken = kept.clone();
        broken[1].state = vec![0xff; 3];
        assert_eq!(SoFar::resume(&broken, &fed).chunks.len(), 1);
    }
}
