//! Raw turns → speaker turns: join a speaker's turns across short gaps, hand short blips to the
//! speaker next to them, and number the speakers in order of first appearance.

use super::SpeakerTurn;

/// Smooths time-ordered raw turns and renumbers their speakers 0, 1, 2, … by first appearance.
pub fn smooth(
    turns: Vec<SpeakerTurn>,
    min_turn_seconds: f64,
    merge_gap_seconds: f64,
) -> Vec<SpeakerTurn> {
    let mut turns = merge_same_speaker(turns, merge_gap_seconds);
    // Shortest blip first, so a run of blips is decided by its longer neighbours.
    while let Some(index) = shortest_absorbable(&turns, min_turn_seconds, merge_gap_seconds) {
        turns[index].speaker = neighbour_speaker(&turns, index, merge_gap_seconds);
        turns = merge_same_speaker(turns, merge_gap_seconds);
    }
    renumber_by_first_appearance(turns)
}

/// Joins consecutive turns of one speaker separated by at most `gap` seconds.
fn merge_same_speaker(turns: Vec<SpeakerTurn>, gap: f64) -> Vec<SpeakerTurn> {
    let mut merged: Vec<SpeakerTurn> = Vec::with_capacity(turns.len());
    for turn in turns {
        match merged.last_mut() {
            Some(last) if last.speaker == turn.speaker && turn.start - last.end <= gap => {
                last.end = last.end.max(turn.end);
            }
            _ => merged.push(turn),
        }
    }
    merged
}

/// The shortest turn under `min_turn` that touches (within `gap`) another speaker's turn.
fn shortest_absorbable(turns: &[SpeakerTurn], min_turn: f64, gap: f64) -> Option<usize> {
    (0..turns.len())
        .filter(|&i| turns[i].duration() < min_turn)
        .filter(|&i| close_neighbours(turns, i, gap).next().is_some())
        .min_by(|&a, &b| turns[a].duration().total_cmp(&turns[b].duration()))
}

fn close_neighbours(
    turns: &[SpeakerTurn],
    index: usize,
    gap: f64,
) -> impl Iterator<Item = usize> + '_ {
    let turn = turns[index];
    let before = index
        .checked_sub(1)
        .filter(|&p| turn.start - turns[p].end <= gap);
    let after = Some(index + 1).filter(|&n| n < turns.len() && turns[n].start - turn.end <= gap);
    before.into_iter().chain(after)
}

/// The speaker of the longer close neighbour.
fn neighbour_speaker(turns: &[SpeakerTurn], index: usize, gap: f64) -> usize {
    close_neighbours(turns, index, gap)
        .max_by(|&a, &b| turns[a].duration().total_cmp(&turns[b].duration()))
        .map_or(turns[index].speaker, |n| turns[n].speaker)
}

fn renumber_by_first_appearance(turns: Vec<SpeakerTurn>) -> Vec<SpeakerTurn> {
    let mut order: Vec<usize> = Vec::new();
    turns
        .into_iter()
        .map(|turn| {
            let speaker = order
                .iter()
                .position(|&s| s == turn.speaker)
                .unwrap_or_else(|| {
                    order.push(turn.speaker);
                    order.len() - 1
                });
            SpeakerTurn { speaker, ..turn }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(speaker: usize, start: f64, end: f64) -> SpeakerTurn {
        SpeakerTurn {
            speaker,
            start,
            end,
        }
    }

    #[test]
    fn blips_are_absorbed_gaps_merged_and_speakers_renumbered() {
        let raw = vec![
            turn(3, 0.0, 2.0),
            turn(1, 2.0, 2.3), // blip between two turns of speaker 3
            turn(3, 2.3, 4.0),
            turn(3, 4.2, 5.0), // same speaker after a 0.2 s gap
            turn(1, 6.0, 8.0),
            turn(3, 9.5, 9.8), // short but isolated: kept
        ];
        let smoothed = smooth(raw, 0.5, 0.5);
        assert_eq!(
            smoothed,
            vec![turn(0, 0.0, 5.0), turn(1, 6.0, 8.0), turn(0, 9.5, 9.8)]
        );
    }

    #[test]
    fn a_blip_goes_to_its_longer_neighbour() {
        let raw = vec![turn(0, 0.0, 1.0), turn(1, 1.0, 1.2), turn(2, 1.2, 4.0)];
        assert_eq!(
            smooth(raw, 0.5, 0.5),
            vec![turn(0, 0.0, 1.0), turn(1, 1.0, 4.0)]
        );
    }
}
