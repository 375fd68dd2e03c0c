//! Reconstruction: from each window's local speakers and their global speaker (clustering) back
//! to one activity per global speaker per frame of the recording, overlap kept.
//!
//! Port of pyannote-audio's `SpeakerDiarization.reconstruct` and `to_diarization`
//! (`pipelines/speaker_diarization.py`, `pipelines/utils/diarization.py`): the number of
//! speakers per frame is estimated from the segmentation alone (the local speakers' activity
//! summed per window, averaged over the windows that see the frame, rounded half to even as
//! NumPy's `rint`); each global speaker's activation in a frame is the number of windows where
//! a local turn assigned to it is active; the frame goes to that many speakers with the
//! highest activations.

use super::embeddings::LocalTurn;
use super::segmentation::{LocalActivity, FRAMES_PER_WINDOW, FRAME_SAMPLES, FRAME_STEP_SAMPLES};
use super::SpeakerTurn;
use crate::inference::vad::SpeechRegion;

const SAMPLE_RATE: f64 = 16_000.0;

/// The diarization per frame (16.875 ms step, frame `j` centred at `frame_time(j)`), kept
/// compact: `[frames, speakers]` bytes, each the speaker's aggregated activation (how many
/// windows saw it there) where the diarization has the speaker active, 0 where it does not.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SpeakerActivity {
    frames: usize,
    speakers: usize,
    values: Vec<u8>,
}

impl SpeakerActivity {
    /// Frames on the grid.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Global speakers (columns).
    pub fn speakers(&self) -> usize {
        self.speakers
    }

    /// The activation of `speaker` in `frame` (0 when not active).
    pub fn activation(&self, frame: usize, speaker: usize) -> u8 {
        self.values[frame * self.speakers + speaker]
    }

    /// Centre of frame `j`, in seconds.
    pub fn frame_time(j: usize) -> f64 {
        (j as f64 * FRAME_STEP_SAMPLES as f64 + FRAME_SAMPLES as f64 / 2.0) / SAMPLE_RATE
    }

    /// The speaker with the highest summed activation over the frames centred in
    /// `[start, end]` seconds (the nearest frame when none is); when nobody is active there,
    /// over `tolerance` seconds more on each side; `None` when nobody is active there either.
    pub fn dominant(&self, start: f64, end: f64, tolerance: f64) -> Option<usize> {
        if self.frames == 0
            || self.speakers == 0
            || start.partial_cmp(&end) == Some(std::cmp::Ordering::Greater)
            || start.is_nan()
            || end.is_nan()
        {
            return None;
        }
        self.dominant_within(start, end)
            .or_else(|| self.dominant_within(start - tolerance, end + tolerance))
    }

    fn dominant_within(&self, start: f64, end: f64) -> Option<usize> {
        let index =
            |t: f64| (t * SAMPLE_RATE - FRAME_SAMPLES as f64 / 2.0) / FRAME_STEP_SAMPLES as f64;
        let last = self.frames as f64 - 1.0;
        let (mut first, mut past) = (index(start).ceil(), index(end).floor() + 1.0);
        if past <= first {
            // Shorter than a frame: the frame nearest its middle.
            first = index((start + end) / 2.0).round();
            past = first + 1.0;
        }
        let first = first.clamp(0.0, last) as usize;
        let past = past.clamp(0.0, last + 1.0) as usize;
        let mut totals = vec![0u32; self.speakers];
        for frame in first..past {
            for (speaker, total) in totals.iter_mut().enumerate() {
                *total += u32::from(self.activation(frame, speaker));
            }
        }
        let (best, &most) = totals
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)))?;
        (most > 0).then_some(best)
    }

    /// Drops speakers never active and numbers the rest in order of first appearance.
    fn renumber_by_first_appearance(&mut self) {
        let mut order: Vec<usize> = Vec::new();
        for frame in 0..self.frames {
            for speaker in 0..self.speakers {
                if self.activation(frame, speaker) > 0 && !order.contains(&speaker) {
                    order.push(speaker);
                }
            }
        }
        let mut values = vec![0u8; self.frames * order.len()];
        for frame in 0..self.frames {
            for (new, &old) in order.iter().enumerate() {
                values[frame * order.len() + new] = self.activation(frame, old);
            }
        }
        self.speakers = order.len();
        self.values = values;
    }

    /// Each speaker's runs of active frames as turns, ordered by start (then speaker); times
    /// run from the first frame's centre to the centre of the frame after the last, capped at
    /// `duration` seconds.
    pub fn turns(&self, duration: f64) -> Vec<SpeakerTurn> {
        let mut turns = Vec::new();
        for speaker in 0..self.speakers {
            let active: Vec<bool> = (0..self.frames)
                .map(|f| self.activation(f, speaker) > 0)
                .collect();
            for (first, past) in super::embeddings::runs(&active) {
                let start = Self::frame_time(first).min(duration);
                let end = Self::frame_time(past).min(duration);
                if end > start {
                    turns.push(SpeakerTurn {
                        speaker,
                        start,
                        end,
                    });
                }
            }
        }
        turns.sort_by(|a, b| a.start.total_cmp(&b.start).then(a.speaker.cmp(&b.speaker)));
        turns
    }

    /// Where anyone speaks, as regions.
    pub fn speech(&self, duration: f64) -> Vec<SpeechRegion> {
        let any: Vec<bool> = (0..self.frames)
            .map(|f| (0..self.speakers).any(|s| self.activation(f, s) > 0))
            .collect();
        super::embeddings::runs(&any)
            .into_iter()
            .map(|(first, past)| SpeechRegion {
                start: Self::frame_time(first).min(duration),
                end: Self::frame_time(past).min(duration),
            })
            .filter(|r| r.end > r.start)
            .collect()
    }
}

/// The global speaker of each local turn: its own assignment (`assignment[i]` for the i-th
/// embedded turn) when it has an embedding, else that of the nearest embedded turn of the same
/// local speaker in the same window (the segmentation says they are one voice), else none.
pub fn turn_speakers(turns: &[LocalTurn], assignment: &[usize]) -> Vec<Option<usize>> {
    let mut assigned = assignment.iter();
    let mut speakers: Vec<Option<usize>> = turns
        .iter()
        .map(|t| t.vector.as_ref().and_then(|_| assigned.next().copied()))
        .collect();
    for i in 0..turns.len() {
        if speakers[i].is_some() {
            continue;
        }
        let turn = &turns[i];
        let middle = turn.first + turn.past;
        speakers[i] = (0..turns.len())
            .filter(|&j| {
                turns[j].window == turn.window
                    && turns[j].speaker == turn.speaker
                    && turns[j].vector.is_some()
            })
            .min_by_key(|&j| (turns[j].first + turns[j].past).abs_diff(middle))
            .and_then(|j| speakers[j]);
    }
    speakers
}

/// Reconstructs the global speakers' activity of a recording of `total_samples` samples from
/// the windows' local `activity`, the local turns and each turn's global speaker
/// (`turn_speakers`, `< speakers`). Turns without a speaker are left out, as pyannote leaves
/// out local speakers without an embedding; they still count towards the number of speakers per
/// frame. Speakers come out numbered in order of first appearance, never-active ones dropped.
pub fn reconstruct(
    activity: &LocalActivity,
    turns: &[LocalTurn],
    turn_speakers: &[Option<usize>],
    speakers: usize,
    total_samples: usize,
) -> SpeakerActivity {
    let frames = total_samples.div_ceil(FRAME_STEP_SAMPLES).min(
        (0..activity.windows())
            .map(|w| activity.first_frame(w) + FRAMES_PER_WINDOW)
            .max()
            .unwrap_or(0),
    );
    let mut local_sum = vec![0u16; frames];
    let mut coverage = vec![0u16; frames];
    for window in 0..activity.windows() {
        let first = activity.first_frame(window);
        for f in 0..FRAMES_PER_WINDOW.min(frames.saturating_sub(first)) {
            let active = activity.frame(window, f).iter().map(|&a| u16::from(a));
            local_sum[first + f] += active.sum::<u16>();
            coverage[first + f] += 1;
        }
    }
    // Which global speakers each window has in each frame (a speaker counted once per window
    // even when two of its local turns overlap there).
    let mut in_window = vec![false; FRAMES_PER_WINDOW * speakers];
    let mut activation = vec![0u8; frames * speakers];
    let mut window = usize::MAX;
    let flush = |window: usize, in_window: &mut [bool], activation: &mut [u8]| {
        if window == usize::MAX {
            return;
        }
        let first = activity.first_frame(window);
        for f in 0..FRAMES_PER_WINDOW.min(frames.saturating_sub(first)) {
            for k in 0..speakers {
                if std::mem::take(&mut in_window[f * speakers + k]) {
                    let cell = &mut activation[(first + f) * speakers + k];
                    *cell = cell.saturating_add(1);
                }
            }
        }
        in_window.iter_mut().for_each(|v| *v = false);
    };
    for (turn, speaker) in turns.iter().zip(turn_speakers) {
        if turn.window != window {
            flush(window, &mut in_window, &mut activation);
            window = turn.window;
        }
        if let Some(k) = *speaker {
            for f in turn.first..turn.past {
                in_window[f * speakers + k] = true;
            }
        }
    }
    flush(window, &mut in_window, &mut activation);

    let mut values = vec![0u8; frames * speakers];
    let mut order: Vec<usize> = (0..speakers).collect();
    for j in 0..frames {
        if coverage[j] == 0 {
            continue;
        }
        let count = (f64::from(local_sum[j]) / f64::from(coverage[j])).round_ties_even() as usize;
        let row = &activation[j * speakers..(j + 1) * speakers];
        order.sort_by(|&a, &b| row[b].cmp(&row[a]).then(a.cmp(&b)));
        for &k in order.iter().take(count.min(speakers)) {
            values[j * speakers + k] = row[k];
        }
    }
    let mut result = SpeakerActivity {
        frames,
        speakers,
        values,
    };
    result.renumber_by_first_appearance();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn activity(frames: usize, speakers: usize, cells: &[(usize, usize, u8)]) -> SpeakerActivity {
        let mut values = vec![0u8; frames * speakers];
        for &(f, s, v) in cells {
            values[f * speakers + s] = v;
        }
        SpeakerActivity {
            frames,
            speakers,
            values,
        }
    }

    #[test]
    fn the_dominant_speaker_has_the_highest_activation_in_overlap() {
        // Frames 10–19: speaker 0 at 1, speaker 1 at 2 (overlap); frames 40–49: speaker 0 alone.
        let mut cells = Vec::new();
        for f in 10..20 {
            cells.push((f, 0, 1));
            cells.push((f, 1, 2));
        }
        for f in 40..50 {
            cells.push((f, 0, 2));
        }
        let a = activity(60, 2, &cells);
        let t = SpeakerActivity::frame_time;
        assert_eq!(a.dominant(t(11), t(18), 0.2), Some(1));
        assert_eq!(a.dominant(t(41), t(48), 0.2), Some(0));
        // Shorter than a frame, inside speaker 0's stretch.
        assert_eq!(a.dominant(t(45), t(45) + 0.005, 0.2), Some(0));
        // In the silence between, within the tolerance of speaker 0's start…
        assert_eq!(a.dominant(t(37), t(38), 0.2), Some(0));
        // …and far from anyone.
        assert_eq!(a.dominant(t(28), t(30), 0.05), None);
        assert_eq!(a.dominant(t(30), t(28), 0.2), None);
    }

    #[test]
    fn speakers_are_renumbered_by_first_appearance_and_silent_ones_dropped() {
        let mut a = activity(10, 3, &[(2, 2, 1), (3, 2, 1), (5, 0, 1), (6, 0, 1)]);
        a.renumber_by_first_appearance();
        assert_eq!(a.speakers(), 2);
        let turns = a.turns(10.0);
        assert_eq!(turns.len(), 2);
        assert_eq!((turns[0].speaker, turns[1].speaker), (0, 1));
        assert!((turns[0].start - SpeakerActivity::frame_time(2)).abs() < 1e-9);
        assert!((turns[0].end - SpeakerActivity::frame_time(4)).abs() < 1e-9);
        assert_eq!(a.speech(10.0).len(), 2);
    }
}
