//! Diarization error rate as pyannote.metrics defines it: no forgiveness collar, overlapping
//! speech scored, (missed + false alarm + confusion) / total reference speech, under the
//! one-to-one speaker mapping that maximises the matched time.

use super::SpeakerTurn;

/// The parts of the error, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DerBreakdown {
    /// Reference speech with too few hypothesis speakers.
    pub missed: f64,
    /// Hypothesis speech beyond the reference speakers.
    pub false_alarm: f64,
    /// Speech given to the wrong speaker (after the best mapping).
    pub confusion: f64,
    /// Reference speech, each speaker counted (overlap counts twice).
    pub total: f64,
}

impl DerBreakdown {
    /// (missed + false alarm + confusion) / total; 0 when nothing was said and nothing found.
    pub fn der(&self) -> f64 {
        let errors = self.missed + self.false_alarm + self.confusion;
        if self.total > 0.0 {
            errors / self.total
        } else if errors > 0.0 {
            f64::INFINITY
        } else {
            0.0
        }
    }
}

/// Above this many speakers the mapping is found greedily instead of by trying every one.
const BRUTE_FORCE_SPEAKERS: usize = 8;

/// Scores `hypothesis` against `reference`. Speaker numbers need not agree between the two.
pub fn diarization_error(reference: &[SpeakerTurn], hypothesis: &[SpeakerTurn]) -> DerBreakdown {
    let ref_speakers = speakers(reference);
    let hyp_speakers = speakers(hypothesis);
    let mut boundaries: Vec<f64> = reference
        .iter()
        .chain(hypothesis)
        .flat_map(|t| [t.start, t.end])
        .collect();
    boundaries.sort_by(f64::total_cmp);
    boundaries.dedup();

    let mut breakdown = DerBreakdown::default();
    let mut matchable = 0.0;
    // overlap[r][h]: time reference speaker r and hypothesis speaker h both speak.
    let mut overlap = vec![vec![0.0; hyp_speakers.len()]; ref_speakers.len()];
    for pair in boundaries.windows(2) {
        let (start, end) = (pair[0], pair[1]);
        let duration = end - start;
        if duration <= 0.0 {
            continue;
        }
        let active_ref = active(reference, &ref_speakers, start, end);
        let active_hyp = active(hypothesis, &hyp_speakers, start, end);
        let (n_ref, n_hyp) = (active_ref.len() as f64, active_hyp.len() as f64);
        breakdown.total += n_ref * duration;
        breakdown.missed += (n_ref - n_hyp).max(0.0) * duration;
        breakdown.false_alarm += (n_hyp - n_ref).max(0.0) * duration;
        matchable += n_ref.min(n_hyp) * duration;
        for &r in &active_ref {
            for &h in &active_hyp {
                overlap[r][h] += duration;
            }
        }
    }
    breakdown.confusion = (matchable - best_mapping_overlap(&overlap)).max(0.0);
    breakdown
}

fn speakers(turns: &[SpeakerTurn]) -> Vec<usize> {
    let mut ids: Vec<usize> = turns.iter().map(|t| t.speaker).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Indices (into `ids`) of the speakers with a turn covering [start, end].
fn active(turns: &[SpeakerTurn], ids: &[usize], start: f64, end: f64) -> Vec<usize> {
    let mut found: Vec<usize> = turns
        .iter()
        .filter(|t| t.start <= start && t.end >= end)
        .filter_map(|t| ids.iter().position(|&id| id == t.speaker))
        .collect();
    found.sort_unstable();
    found.dedup();
    found
}

/// The largest total overlap of a one-to-one mapping between reference and hypothesis speakers.
fn best_mapping_overlap(overlap: &[Vec<f64>]) -> f64 {
    let n_ref = overlap.len();
    let n_hyp = overlap.first().map_or(0, Vec::len);
    let size = n_ref.max(n_hyp);
    let at = |r: usize, h: usize| {
        if r < n_ref && h < n_hyp {
            overlap[r][h]
        } else {
            0.0
        }
    };
    if size > BRUTE_FORCE_SPEAKERS {
        return greedy_mapping_overlap(overlap);
    }
    // Every permutation of hypothesis slots over reference slots (padded to a square).
    let mut permutation: Vec<usize> = (0..size).collect();
    let mut best = 0.0;
    permutations(&mut permutation, 0, &mut |p| {
        let total: f64 = p.iter().enumerate().map(|(r, &h)| at(r, h)).sum();
        if total > best {
            best = total;
        }
    });
    best
}

fn permutations(items: &mut [usize], k: usize, visit: &mut dyn FnMut(&[usize])) {
    if k == items.len() {
        visit(items);
        return;
    }
    for i in k..items.len() {
        items.swap(k, i);
        permutations(items, k + 1, visit);
        items.swap(k, i);
    }
}

fn greedy_mapping_overlap(overlap: &[Vec<f64>]) -> f64 {
    let mut pairs: Vec<(f64, usize, usize)> = overlap
        .iter()
        .enumerate()
        .flat_map(|(r, row)| row.iter().enumerate().map(move |(h, &v)| (v, r, h)))
        .collect();
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut used_ref, mut used_hyp) = (Vec::new(), Vec::new());
    let mut total = 0.0;
    for (value, r, h) in pairs {
        if !used_ref.contains(&r) && !used_hyp.contains(&h) {
            used_ref.push(r);
            used_hyp.push(h);
            total += value;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(speaker: usize, start: f64, end: f64) -> SpeakerTurn {
        SpeakerTurn {
            speaker,
            start,
            end,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn perfect_hypothesis_under_other_names_scores_zero() {
        let reference = [t(0, 0.0, 5.0), t(1, 5.0, 9.0), t(0, 9.0, 10.0)];
        let hypothesis = [t(7, 0.0, 5.0), t(3, 5.0, 9.0), t(7, 9.0, 10.0)];
        let d = diarization_error(&reference, &hypothesis);
        assert!(close(d.der(), 0.0) && close(d.total, 10.0), "{d:?}");
    }

    #[test]
    fn missed_false_alarm_and_confusion_add_up() {
        // Reference: A 0–4, B 4–8. Hypothesis: X 0–3 (1 s of A missed), X 4–5 (B given to A's
        // speaker: 1 s confusion), Y 5–8, Y 8–9 (1 s false alarm).
        let reference = [t(0, 0.0, 4.0), t(1, 4.0, 8.0)];
        let hypothesis = [t(0, 0.0, 3.0), t(0, 4.0, 5.0), t(1, 5.0, 9.0)];
        let d = diarization_error(&reference, &hypothesis);
        assert!(
            close(d.missed, 1.0) && close(d.false_alarm, 1.0) && close(d.confusion, 1.0),
            "{d:?}"
        );
        assert!(close(d.der(), 3.0 / 8.0));
    }

    #[test]
    fn overlap_is_scored_per_speaker() {
        // A 0–4 and B 2–6 overlap for 2 s; the hypothesis has only one speaker throughout.
        let reference = [t(0, 0.0, 4.0), t(1, 2.0, 6.0)];
        let hypothesis = [t(0, 0.0, 6.0)];
        let d = diarization_error(&reference, &hypothesis);
        // total 8; the overlap misses one speaker (2 s); mapping X→A leaves B's 2 s alone confused.
        assert!(
            close(d.total, 8.0) && close(d.missed, 2.0) && close(d.confusion, 2.0),
            "{d:?}"
        );
        assert!(close(d.false_alarm, 0.0));
    }

    #[test]
    fn one_speaker_split_in_two_is_half_confused_and_mapping_is_optimal() {
        let reference = [t(0, 0.0, 10.0)];
        let hypothesis = [t(0, 0.0, 4.0), t(1, 4.0, 10.0)];
        let d = diarization_error(&reference, &hypothesis);
        assert!(close(d.confusion, 4.0), "{d:?}");
        let empty = diarization_error(&[], &[]);
        assert_eq!(empty.der(), 0.0);
        assert!(diarization_error(&[], &hypothesis).der().is_infinite());
    }
}
