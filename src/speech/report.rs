//! `lahstats-worker analyze`: the pipeline on local files, no Redis or database, printed as a
//! readable summary, JSON, or RTTM (the standard diarization format).

use std::path::PathBuf;

use serde_json::json;

use super::{LastSession, SpeechPipeline};
use crate::cli::Format;
use crate::config::Config;
use crate::inference::diarize::SpeakerTurn;
use crate::pipeline::{Analysis, JobOptions, SessionPipeline};
use crate::session::{speaker_label, ChunkRef, SessionInput};

/// Runs the pipeline on `files` (joined in order) and prints the result in `format`.
pub fn analyze_files(
    config: &Config,
    files: &[PathBuf],
    format: Format,
    num_speakers: Option<usize>,
) -> Result<u8, String> {
    let device =
        crate::inference::device::select_device(&config.device).map_err(|e| e.to_string())?;
    let mut pipeline = SpeechPipeline::load(config, device).map_err(|e| e.to_string())?;
    let chunks = files
        .iter()
        .enumerate()
        .map(|(i, file)| {
            let path =
                std::fs::canonicalize(file).map_err(|e| format!("{}: {e}", file.display()))?;
            Ok(ChunkRef {
                chunk_number: i as i32,
                storage_path: path.display().to_string(),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let input = SessionInput {
        session_id: uuid::Uuid::new_v4(),
        chunks,
        prepared: Vec::new(),
    };
    let options = JobOptions {
        min_speakers: num_speakers.or(config.min_speakers),
        max_speakers: num_speakers.or(config.max_speakers),
        target_words: crate::singlish::builtin_target_words(),
    };
    let analysis = pipeline
        .analyze(&input, &options, &mut |_, _| {})
        .map_err(|e| e.to_string())?;
    let last = pipeline.last_session();
    let turns = last.map(|l| l.turns.clone()).unwrap_or_default();
    let name = files
        .first()
        .and_then(|f| f.file_stem())
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    match format {
        Format::Text => print!("{}", text(&analysis, &turns)),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&as_json(&analysis, last)).unwrap_or_default()
        ),
        Format::Rttm => print!("{}", rttm(&turns, &name)),
    }
    Ok(0)
}

fn text(analysis: &Analysis, turns: &[SpeakerTurn]) -> String {
    let results = &analysis.results;
    let mut out = format!(
        "Duration: {:.1}s   Speakers: {}   Segments: {}\n\n",
        results.duration_seconds,
        results.speakers.len(),
        results.segments.len()
    );
    out.push_str("Turns:\n");
    for turn in turns {
        out.push_str(&format!(
            "  {:>8.2} – {:>8.2}  {}\n",
            turn.start,
            turn.end,
            speaker_label(turn.speaker)
        ));
    }
    out.push_str("\nTranscript:\n");
    for segment in &results.segments {
        out.push_str(&format!(
            "  [{:>7.2}–{:>7.2}] {}: {}\n",
            segment.start_seconds, segment.end_seconds, segment.speaker_label, segment.text
        ));
    }
    out.push_str("\nWord counts:\n");
    for speaker in &results.speakers {
        let words: Vec<String> = speaker
            .word_counts
            .iter()
            .map(|(w, n)| format!("{w} {n}"))
            .collect();
        out.push_str(&format!(
            "  {} ({} turns, {:.1}s): {}\n",
            speaker.label,
            speaker.segment_count,
            speaker.total_duration_seconds,
            if words.is_empty() {
                "-".to_string()
            } else {
                words.join(", ")
            }
        ));
    }
    out
}

/// The results, the turns, the detected speech, Whisper's windows and every word with its
/// speaker and times.
fn as_json(analysis: &Analysis, last: Option<&LastSession>) -> serde_json::Value {
    let results = &analysis.results;
    let turns = last.map_or(&[][..], |l| l.turns.as_slice());
    let pairs = |pairs: &[(f64, f64)]| pairs.iter().map(|(s, e)| json!([s, e])).collect::<Vec<_>>();
    json!({
        "duration_seconds": results.duration_seconds,
        "turns": turns.iter().map(|t| json!({"speaker": speaker_label(t.speaker), "start": t.start, "end": t.end})).collect::<Vec<_>>(),
        "speech": pairs(&last.map(|l| l.speech.iter().map(|r| (r.start, r.end)).collect::<Vec<_>>()).unwrap_or_default()),
        "windows": pairs(last.map_or(&[][..], |l| l.windows.as_slice())),
        "words": last.map_or(&[][..], |l| l.words.as_slice()).iter().map(|w| json!({
            "word": w.word.word.trim(), "start": w.word.start, "end": w.word.end,
            "probability": w.word.probability, "speaker": speaker_label(w.speaker)
        })).collect::<Vec<_>>(),
        "segments": results.segments.iter().map(|s| json!({
            "speaker": s.speaker_label, "start": s.start_seconds, "end": s.end_seconds, "text": s.text
        })).collect::<Vec<_>>(),
        "speakers": results.speakers.iter().map(|s| json!({
            "label": s.label, "turns": s.segment_count, "talk_seconds": s.total_duration_seconds, "word_counts": s.word_counts
        })).collect::<Vec<_>>(),
        "stage_seconds": analysis.stage_seconds.iter().map(|(stage, t)| json!({"stage": stage.name(), "seconds": t})).collect::<Vec<_>>(),
        "wall_seconds": analysis.wall_seconds,
    })
}

/// `SPEAKER <file> 1 <start> <duration> <NA> <NA> <label> <NA> <NA>` per turn.
pub fn rttm(turns: &[SpeakerTurn], file_id: &str) -> String {
    turns
        .iter()
        .map(|t| {
            format!(
                "SPEAKER {file_id} 1 {:.3} {:.3} <NA> <NA> {} <NA> <NA>\n",
                t.start,
                t.end - t.start,
                speaker_label(t.speaker)
            )
        })
        .collect()
}
