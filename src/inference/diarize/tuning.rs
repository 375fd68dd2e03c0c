//! Every tuned constant of the diarization, in one place, with what it was tuned on.
//!
//! "The development set" below is the five 30 s AMI excerpts in
//! `shared/data/real-speech/ami_*` (2–4 speakers, overlap, laughter; pyannote.metrics DER at
//! collar 0, overlap scored), swept in a Python prototype of this pipeline on the same traced
//! models before the port. Values the field already settled are taken from pyannote 3.1's
//! `speaker-diarization-3.1` configuration and said so.
//!
//! What tuning can reach there: with perfect clustering (`scripts/diarization-oracle`, each
//! window's local speakers mapped to the reference speakers) this segmentation and
//! reconstruction give a mean DER of 0.434 (5 s step; 0.432 at 1 s); mapping each 1.5 s piece
//! (`PIECE_SECONDS`) on its own instead, 0.374, against 0.410 for the whole pipeline: most of
//! the error is the segmentation's missed speech (mostly overlap) and false alarms, which no
//! clustering constant changes.

/// Hop between 10 s segmentation windows. pyannote 3.1 uses 1 s (10 % of the window); on the
/// development set (with one embedding per local speaker and centroid linkage, the first version
/// of this pipeline) 5 s gave mean DER 0.454 against 0.458 at 1 s (the ten-file trial
/// found the same) for a fifth of the segmentation and embedding work. Every frame is still
/// seen by two windows.
pub const STEP_SECONDS: f64 = 5.0;

/// Clusters of piece embeddings (`PIECE_SECONDS`) are merged while their average pairwise
/// cosine distance is below this (average linkage). A 1.5 s piece's embedding is noisier than
/// a whole turn's, so one voice's pieces spread wider than its turns did (the threshold was
/// 0.4 for turn embeddings). Development-set mean DER with 1.5 s pieces
/// (`scripts/diarization-mirror`; `score_der_wer.py` on the worker agrees at 0.47, 0.48 and
/// 0.50): 0.40 → 0.530, 0.45 → 0.445, 0.47 → 0.414, 0.48 → 0.410, 0.50 → 0.386, 0.55 → 0.395,
/// 0.60 → 0.477; but tests/diarization_robustness.rs's three synthetic voices as 8 kHz
/// telephone audio have two of them at about 0.49 (0.52–0.53 at 16 kHz), so 0.5 merges them,
/// and so did 0.48 in 2 of 8 runs (the test's noise floor is random). 0.47 kept them apart in
/// 9 of 9 runs and is within 0.03 of the best on real speech.
pub const CLUSTERING_THRESHOLD: f64 = 0.47;

/// A piece's embedding takes part in the clustering only when the speaker talks alone for at
/// least this long in it (pyannote 3.1 asks 20 % of the window, 2 s, of a whole local speaker;
/// our pieces are shorter). Pieces with less are still assigned to the nearest speaker. On the
/// development set 0.5 s and 0.75 s gave the same DER.
pub const MIN_CLUSTERING_SECONDS: f64 = 0.5;

/// Turns are embedded in pieces of about this much speech (`embeddings`): 1.5 s, the
/// sub-segment length of the x-vector diarization recipes (Kaldi's, 3D-Speaker's, with which
/// CAM++ was trained), short enough that a piece mostly holds one voice where the segmentation
/// gave two voices one local speaker. Development-set mean DER (threshold 0.5): one embedding
/// per turn 0.460, 1.0 s pieces 0.412, 1.5 s 0.386, 2.0 s 0.411, 3.0 s 0.421; with oracle
/// clustering 0.429, 0.358, 0.374, –, – (`scripts/diarization-mirror`, which mirrors this
/// pipeline in Python; `--oracle`).
pub const PIECE_SECONDS: f64 = 1.5;

/// No embedding at all for a turn with less speech than this: CAM++ on a fraction of a second
/// says little about the voice. Such a turn takes the speaker of its local speaker's nearest
/// embedded turn in the window, or is left out of the reconstruction when there is none, as
/// pyannote leaves out speakers without an embedding.
pub const MIN_EMBEDDING_SECONDS: f64 = 0.4;

/// A cluster is a speaker of its own only with at least this much clean speech (seconds of its
/// turns' speech without overlap, summed); the turns of smaller ones join the nearest speaker.
/// pyannote 3.1 asks 12 embeddings at a 1 s step, about 2–3 s of a speaker's speech.
/// Development-set mean DER: 1 s → 0.491, 2 s → 0.481, 4 s → 0.461 (but a friend who says
/// two sentences in a session is still a speaker).
pub const MIN_SPEAKER_SECONDS: f64 = 2.0;

/// At most this many embeddings are clustered (the agglomerative clustering holds n²/2
/// distances: 36 MB here); beyond it, evenly spaced ones are, and all are assigned to the
/// resulting centroids. At about 4 turns per 5 s window of conversation, 3000 covers an hour;
/// longer sessions cluster a sample spread over the whole recording.
pub const MAX_CLUSTERED_EMBEDDINGS: usize = 3000;

/// `Diarization::dominant_speaker` looks this far either side of a word when no speaker is
/// active inside the word's own times: recogniser word times are approximate, and a word that
/// ends a turn often spills past the segmentation's offset by a frame or two.
pub const DOMINANT_TOLERANCE_SECONDS: f64 = 0.2;
