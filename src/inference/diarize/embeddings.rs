//! Embeddings: one CAM++ speaker embedding (`models/campplus.pt`, made by
//! `scripts/models/campplus.py`; Kaldi fbank front end inside) per piece of a local turn: a
//! turn is a stretch of a window where one local speaker talks without a break, cut into pieces
//! of about `tuning::PIECE_SECONDS` of its speech.
//!
//! pyannote 3.1 embeds each (window, local speaker) once, running the whole window through its
//! embedding network with statistics pooling weighted by that speaker's frames, frames of
//! overlap left out (`embedding_exclude_overlap`). Two changes here, both measured:
//! - The speaker's own samples are cut out of the window (the frames where it speaks alone, or
//!   all of the turn's frames when those are too few) and joined, and CAM++ runs on those: the
//!   issue's Python trial found this better than both zeroing the other samples and pooling only
//!   the speaker's frames. CAM++ costs time in proportion to its input, so embedding every
//!   speaker's own part costs about one pass over the window's speech.
//! - One embedding per *piece of a turn* rather than per local speaker: segmentation-3.0 often
//!   gives two voices that take turns in a window the same local speaker, with a pause between
//!   (two of flite's CMU ARCTIC voices in 10 s of alternating sentences) or without one (AMI
//!   ES2003b: MEE012 then MEE009 as one local speaker from 4.4 to 11.5 s). One embedding of both
//!   voices pulls the clustering towards one speaker; pieces of 1.5 s, the sub-segment length of
//!   the x-vector diarization recipes (Kaldi's, 3D-Speaker's, which trained CAM++), each hold
//!   mostly one voice, and the clustering tells them apart. With oracle clustering, the floor of
//!   the development set's mean DER falls from 0.429 (one embedding per turn) to 0.374.

use super::segmentation::{LocalActivity, FRAMES_PER_WINDOW, FRAME_SAMPLES, FRAME_STEP_SAMPLES};
use crate::inference::device::torch_error;
use crate::inference::InferenceError;
use crate::pcm::Samples;
use std::path::Path;
use tch::{CModule, Device, Kind, Tensor};

/// The model file under the models directory.
pub const MODEL_FILE: &str = "campplus.pt";
/// Size of one embedding.
pub const EMBEDDING_SIZE: usize = 192;
/// The samples a frame stands for when a speaker's audio is cut out: the middle `FRAME_STEP`
/// of its receptive field, so consecutive frames tile the audio without overlap.
const FRAME_CENTRE_OFFSET: usize = (FRAME_SAMPLES - FRAME_STEP_SAMPLES) / 2;

/// One local speaker's turn inside one window (a run of frames where it talks without a
/// break), or one piece of a long turn, with its embedding.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LocalTurn {
    pub window: usize,
    /// Local speaker index (0–2).
    pub speaker: usize,
    /// Frames `[first, past)` of the window. A long turn's pieces tile the turn's frames.
    pub first: usize,
    pub past: usize,
    /// Frames of the embedded speech where this speaker talks alone.
    pub clean_frames: usize,
    /// L2-normalised, `EMBEDDING_SIZE` long; `None` when the turn is too short to embed.
    pub vector: Option<Vec<f32>>,
}

/// CAM++ loaded on a device.
pub struct SpeakerEmbedding {
    module: CModule,
    device: Device,
}

impl SpeakerEmbedding {
    pub fn load(models_dir: &Path, device: Device) -> Result<Self, InferenceError> {
        Ok(SpeakerEmbedding {
            module: crate::inference::load_torchscript(models_dir, MODEL_FILE, device)?,
            device,
        })
    }

    /// The L2-normalised embeddings of `rows`, each 16 kHz mono and all of one length (at
    /// least 400 samples), in one forward pass: CAM++ costs less per row in a batch (per 1.5 s
    /// piece on one thread, measured in Python: 64 ms alone, 57 ms in twos, 49 ms in fours),
    /// and each row's embedding is its own (statistics pooling per row; equal to 1e-5).
    ///
    /// Call it with the TorchScript graph optimiser off (`Diarizer::diarize` does): with it on,
    /// every new input length is profiled and re-optimised, 5–10× slower per call.
    pub fn embed(&mut self, rows: &[&[f32]]) -> Result<Vec<Vec<f32>>, InferenceError> {
        let length = rows.first().map_or(0, |row| row.len());
        if rows.is_empty() || rows.iter().any(|row| row.len() != length) {
            return Err(InferenceError::InvalidInput(
                "speech embeddings are batched only for rows of one length".into(),
            ));
        }
        if length < 400 {
            return Err(InferenceError::InvalidInput(format!(
                "{length} samples are too few for a speaker embedding (at least 400, 25 ms)"
            )));
        }
        let _no_grad = tch::no_grad_guard();
        let joined: Vec<f32> = rows.concat();
        let input = Tensor::from_slice(&joined)
            .view([rows.len() as i64, length as i64])
            .to_device(self.device);
        let output = self
            .module
            .forward_ts(&[input])
            .map_err(torch_error)?
            .to_kind(Kind::Float)
            .to_device(Device::Cpu)
            .contiguous()
            .view([-1]);
        let values = Vec::<f32>::try_from(output)?;
        if values.len() != rows.len() * EMBEDDING_SIZE {
            return Err(InferenceError::ModelInvalid {
                path: MODEL_FILE.into(),
                reason: format!(
                    "{} values for {} embeddings, expected {EMBEDDING_SIZE} each",
                    values.len(),
                    rows.len()
                ),
            });
        }
        Ok(values
            .chunks(EMBEDDING_SIZE)
            .map(|chunk| {
                let mut vector = chunk.to_vec();
                normalize(&mut vector);
                vector
            })
            .collect())
    }

    /// Every local speaker's turns in every window, each cut into pieces of about
    /// `piece_frames` frames of its speech (`split_into_pieces`), each piece embedded when it has
    /// at least `min_frames` frames of speech. A turn's speech is the frames where the speaker
    /// talks alone when there are `min_frames` of those, else all the turn's frames.
    ///
    /// Pieces wait in a [`PendingPieces`] of at most [`PENDING_PIECES`] and those of one length
    /// are embedded together (the pieces of one long turn mostly share a length).
    pub fn embed_local_turns(
        &mut self,
        samples: &(impl Samples + ?Sized),
        activity: &LocalActivity,
        min_frames: usize,
        piece_frames: usize,
    ) -> Result<Vec<LocalTurn>, InferenceError> {
        let mut turns = Vec::new();
        let mut pending = PendingPieces::default();
        for window in 0..activity.windows() {
            let start = activity.window_starts[window] + FRAME_CENTRE_OFFSET;
            for speaker in 0..super::powerset::LOCAL_SPEAKERS {
                let active: Vec<bool> = (0..FRAMES_PER_WINDOW)
                    .map(|f| activity.active(window, f, speaker))
                    .collect();
                for (first, past) in runs(&active) {
                    let clean: Vec<usize> = (first..past)
                        .filter(|&f| activity.alone(window, f, speaker))
                        .collect();
                    let whole: Vec<usize>;
                    let speech = if clean.len() >= min_frames {
                        &clean
                    } else {
                        whole = (first..past).collect();
                        &whole
                    };
                    for piece in split_into_pieces(speech, first, past, piece_frames) {
                        let own = piece_samples(samples, start, piece.speech, min_frames);
                        if let Some(own) = own {
                            pending.push(turns.len(), own);
                        }
                        turns.push(LocalTurn {
                            window,
                            speaker,
                            first: piece.first,
                            past: piece.past,
                            clean_frames: piece
                                .speech
                                .iter()
                                .filter(|f| clean.binary_search(f).is_ok())
                                .count(),
                            vector: None,
                        });
                    }
                }
            }
            if pending.len() >= PENDING_PIECES {
                pending.embed_into(self, &mut turns)?;
            }
        }
        pending.embed_into(self, &mut turns)?;
        Ok(turns)
    }
}

/// Pieces kept before their embeddings are computed: enough that the pieces of a window's long
/// turns meet (and some of other windows), few enough that their samples stay small (64 pieces
/// of 1.5 s: 6 MB) whatever the recording's length.
const PENDING_PIECES: usize = 64;

/// Most pieces in one CAM++ batch (the gain per row levels off at about four).
const MAX_BATCH: usize = 8;

/// Pieces of speech waiting for their embeddings: (index of their turn, samples).
#[derive(Default)]
struct PendingPieces {
    pieces: Vec<(usize, Vec<f32>)>,
}

impl PendingPieces {
    fn push(&mut self, turn: usize, samples: Vec<f32>) {
        self.pieces.push((turn, samples));
    }

    fn len(&self) -> usize {
        self.pieces.len()
    }

    /// Embeds the pending pieces, those of one length together (at most [`MAX_BATCH`] a pass),
    /// into their turns' `vector`, and forgets them.
    fn embed_into(
        &mut self,
        model: &mut SpeakerEmbedding,
        turns: &mut [LocalTurn],
    ) -> Result<(), InferenceError> {
        let mut by_length: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
        for (i, (_, samples)) in self.pieces.iter().enumerate() {
            by_length.entry(samples.len()).or_default().push(i);
        }
        for group in by_length.values() {
            for batch in group.chunks(MAX_BATCH) {
                let rows: Vec<&[f32]> = batch.iter().map(|&i| &self.pieces[i].1[..]).collect();
                for (&i, vector) in batch.iter().zip(model.embed(&rows)?) {
                    turns[self.pieces[i].0].vector = Some(vector);
                }
            }
        }
        self.pieces.clear();
        Ok(())
    }
}

/// The samples of `frames` (frame `f` standing for the `FRAME_STEP` samples from
/// `start + f * FRAME_STEP`), joined; `None` when they are fewer than `min_frames` frames' worth
/// (or only the zero padding past the end of a short recording).
fn piece_samples(
    samples: &(impl Samples + ?Sized),
    start: usize,
    frames: &[usize],
    min_frames: usize,
) -> Option<Vec<f32>> {
    let mut own = Vec::with_capacity(frames.len() * FRAME_STEP_SAMPLES);
    for &f in frames {
        let from = (start + f * FRAME_STEP_SAMPLES).min(samples.len());
        let to = (start + (f + 1) * FRAME_STEP_SAMPLES).min(samples.len());
        samples.extend_f32(from..to, &mut own);
    }
    (own.len() >= (min_frames * FRAME_STEP_SAMPLES).max(400)).then_some(own)
}

/// A piece of a turn: the speech frames it embeds and the frames `[first, past)` it stands for.
struct Piece<'a> {
    speech: &'a [usize],
    first: usize,
    past: usize,
}

/// Cuts a turn of frames `[first, past)` whose speech frames are `speech` (ascending, inside
/// the turn) into pieces of about `piece_frames` speech frames: none when `speech` is empty;
/// one when there are up to 1.5 × `piece_frames`; else `round(len / piece_frames)` pieces of
/// near-equal length (the first ones one frame longer, as NumPy's `array_split`). The pieces'
/// frame ranges tile the turn: each runs from its first speech frame (the turn's first frame
/// for the first piece) to the next piece's.
fn split_into_pieces(
    speech: &[usize],
    first: usize,
    past: usize,
    piece_frames: usize,
) -> Vec<Piece<'_>> {
    if speech.is_empty() {
        return Vec::new();
    }
    let n = if piece_frames == 0 || 2 * speech.len() <= 3 * piece_frames {
        1
    } else {
        ((speech.len() as f64 / piece_frames as f64).round() as usize).max(1)
    };
    let (base, extra) = (speech.len() / n, speech.len() % n);
    let mut groups = Vec::with_capacity(n);
    let mut at = 0;
    for i in 0..n {
        let len = base + usize::from(i < extra);
        groups.push(&speech[at..at + len]);
        at += len;
    }
    (0..n)
        .map(|i| Piece {
            speech: groups[i],
            first: if i == 0 { first } else { groups[i][0] },
            past: groups.get(i + 1).map_or(past, |next| next[0]),
        })
        .collect()
}

/// `[start, end)` of each run of `true`.
pub(super) fn runs(flags: &[bool]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, &flag) in flags.iter().enumerate() {
        match (flag, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, flags.len()));
    }
    out
}

/// Scales `vector` to unit length (left alone when it is all zeros).
pub(super) fn normalize(vector: &mut [f32]) {
    let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|v| *v /= norm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_half_open_ranges_of_true() {
        assert_eq!(
            runs(&[true, true, false, true, false, false, true]),
            vec![(0, 2), (3, 4), (6, 7)]
        );
        assert!(runs(&[false, false]).is_empty());
    }

    #[test]
    fn long_turns_are_cut_into_pieces_that_tile_the_turn() {
        // A short turn stays whole.
        let speech: Vec<usize> = (10..40).collect();
        let pieces = split_into_pieces(&speech, 10, 40, 89);
        assert_eq!(pieces.len(), 1);
        assert_eq!((pieces[0].first, pieces[0].past), (10, 40));

        // 300 speech frames with a gap (overlap) at 150–159: three pieces of 100, 100, 100.
        let speech: Vec<usize> = (5..155).chain(165..315).collect();
        let pieces = split_into_pieces(&speech, 5, 315, 89);
        let lens: Vec<usize> = pieces.iter().map(|p| p.speech.len()).collect();
        assert_eq!(lens, vec![100, 100, 100]);
        let spans: Vec<(usize, usize)> = pieces.iter().map(|p| (p.first, p.past)).collect();
        assert_eq!(spans, vec![(5, 105), (105, 215), (215, 315)]);

        // Uneven lengths: the first pieces take the extra frames.
        let speech: Vec<usize> = (0..200).collect();
        let lens: Vec<usize> = split_into_pieces(&speech, 0, 200, 89)
            .iter()
            .map(|p| p.speech.len())
            .collect();
        assert_eq!(lens, vec![100, 100]);
        let speech: Vec<usize> = (0..181).collect();
        let lens: Vec<usize> = split_into_pieces(&speech, 0, 181, 60)
            .iter()
            .map(|p| p.speech.len())
            .collect();
        assert_eq!(lens, vec![61, 60, 60]);
        assert!(split_into_pieces(&[], 0, 10, 89).is_empty());
    }
}
