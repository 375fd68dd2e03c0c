//! Powerset → local speakers. segmentation-3.0 is trained as a powerset multi-class classifier
//! (Plaquet & Bredin, "Powerset multi-class cross entropy loss for neural speaker diarization",
//! Interspeech 2023): each frame gets one class out of every set of at most 2 of its 3 local
//! speakers. As pyannote's `Powerset.to_multilabel(soft=False)` does, the most likely class
//! becomes a 0/1 activity per local speaker.

/// Local speakers per window.
pub const LOCAL_SPEAKERS: usize = 3;
/// Powerset classes: ∅, the 3 singletons, the 3 pairs.
pub const CLASSES: usize = 7;

/// Which local speakers each class stands for, in the model's output order (pyannote's
/// `Powerset.build_mapping`: sets by size, then lexicographically).
pub const MAPPING: [[u8; LOCAL_SPEAKERS]; CLASSES] = [
    [0, 0, 0],
    [1, 0, 0],
    [0, 1, 0],
    [0, 0, 1],
    [1, 1, 0],
    [1, 0, 1],
    [0, 1, 1],
];

/// Appends the local speakers' activity (`[frames, 3]`, 0/1) of `log_probs` (`[frames, 7]`,
/// row-major, the segmentation's output for one window) to `out`.
pub fn to_local_speakers(log_probs: &[f32], out: &mut Vec<u8>) {
    for frame in log_probs.chunks_exact(CLASSES) {
        let best = frame
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(class, _)| class);
        out.extend_from_slice(&MAPPING[best]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_likely_class_gives_each_frames_speakers() {
        let ln = |p: f32| p.ln();
        let log_probs = [
            // ∅ most likely
            ln(0.7),
            ln(0.1),
            ln(0.1),
            ln(0.05),
            ln(0.02),
            ln(0.02),
            ln(0.01),
            // {0, 2}: an overlap of local speakers 0 and 2
            ln(0.05),
            ln(0.2),
            ln(0.05),
            ln(0.2),
            ln(0.05),
            ln(0.4),
            ln(0.05),
        ];
        let mut out = Vec::new();
        to_local_speakers(&log_probs, &mut out);
        assert_eq!(out, vec![0, 0, 0, 1, 0, 1]);
    }
}
