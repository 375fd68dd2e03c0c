//! One function per query the worker needs, each taking `&mut DbConnection` so the same code
//! serves Postgres and SQLite. The Processor and the Settler call them on their own threads. A
//! job's life in the database (`begin_attempt`, `set_progress`, `commit_results`,
//! `mark_failed`) is in `super::lifecycle`, re-exported here.

use std::collections::BTreeMap;

use bigdecimal::{BigDecimal, FromPrimitive, RoundingMode, ToPrimitive};
use diesel::prelude::*;
use uuid::Uuid;

use super::models::{
    ChunkRow, NewAudioChunk, NewSession, NewSessionSpeaker, NewTranscriptSegment, NewWordCount,
    SessionState, SpeakerRow,
};
use super::schema::{
    audio_chunks, session_speakers, sessions, speaker_word_counts, target_words,
    transcript_segments,
};
use super::sql_types::{DbTime, DbUuid};
use super::{DbConnection, DbError};

pub use super::lifecycle::{
    begin_attempt, commit_results, mark_failed, set_progress, Begin, Committed, LeftAlone, Marked,
};
use crate::session::{status, ChunkRef, SessionInput, SessionResults, SpeakerSample};

/// The longest `error_message` the original worker stored; the app's screen is sized for it.
pub const MAX_ERROR_MESSAGE_CHARS: usize = 500;

/// Rows per INSERT statement: well under both backends' bind-parameter limits.
const INSERT_BATCH_ROWS: usize = 500;

/// How the app's `target_words.is_active` may read once cast to text: a boolean column gives
/// `true`/`1`, databases that stored it as text hold `'true'`.
const IS_ACTIVE_SQL: &str = "lower(CAST(is_active AS TEXT)) IN ('true', 't', '1', 'yes', 'on')";

/// A multi-row INSERT, run on the backend's own connection (still inside the caller's
/// transaction): diesel's MultiConnection backend cannot express multi-row VALUES, because
/// SQLite has no DEFAULT keyword there, though each backend on its own can.
macro_rules! insert_rows {
    ($conn:expr, $table:expr, $rows:expr) => {
        match $conn {
            DbConnection::Pg(pg) => diesel::insert_into($table).values($rows).execute(pg),
            DbConnection::Sqlite(sqlite) => {
                diesel::insert_into($table).values($rows).execute(sqlite)
            }
        }
    };
}

impl From<diesel::result::Error> for DbError {
    /// Errors from opening or committing a transaction, the only ones not wrapped at the call.
    fn from(source: diesel::result::Error) -> Self {
        DbError::Query {
            action: "opening or committing a transaction",
            source,
        }
    }
}

/// The session's chunks in recording order, one per `chunk_number` (of several rows with one
/// number, the last uploaded). Unknown session → `SessionNotFound`; a session with
/// no chunks → `NoChunks`.
pub fn load_session(conn: &mut DbConnection, session_id: Uuid) -> Result<SessionInput, DbError> {
    ensure_session_exists(conn, session_id)?;
    let mut rows: Vec<ChunkRow> = audio_chunks::table
        .filter(audio_chunks::session_id.eq(DbUuid(session_id)))
        .order((
            audio_chunks::chunk_number.asc(),
            audio_chunks::uploaded_at.asc(),
        ))
        .select(ChunkRow::as_select())
        .load(conn)
        .map_err(DbError::query("loading the session's audio chunks"))?;
    if rows.is_empty() {
        return Err(DbError::NoChunks(session_id));
    }
    // Backends disagree on where NULLs sort; a chunk without a number goes last.
    rows.sort_by_key(|row| row.chunk_number.unwrap_or(i32::MAX));
    // A chunk uploaded twice (the phone retried) or replaced is one chunk: its last upload.
    rows.dedup_by(|later, earlier| {
        let same = later.chunk_number.is_some() && later.chunk_number == earlier.chunk_number;
        if same {
            std::mem::swap(later, earlier);
        }
        same
    });
    let chunks = rows
        .into_iter()
        .map(|row| ChunkRef {
            chunk_number: row.chunk_number.unwrap_or(i32::MAX),
            storage_path: row.storage_path,
        })
        .collect();
    Ok(SessionInput {
        session_id,
        chunks,
        prepared: Vec::new(),
    })
}

/// The app's active target words, lowercased, in table order; empty when there are none (the
/// caller then uses the built-in list).
pub fn active_target_words(conn: &mut DbConnection) -> Result<Vec<String>, DbError> {
    let words: Vec<Option<String>> = target_words::table
        .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(IS_ACTIVE_SQL))
        .order(target_words::id.asc())
        .select(target_words::word)
        .load(conn)
        .map_err(DbError::query("loading the target words"))?;
    let mut seen = std::collections::BTreeSet::new();
    Ok(words
        .into_iter()
        .flatten()
        .map(|word| word.trim().to_lowercase())
        .filter(|word| !word.is_empty() && seen.insert(word.clone()))
        .collect())
}

/// Creates a session as the API does when a recording ends (`processing`, started and ended
/// now) with its chunks `(chunk_number, storage_path, duration_seconds)`.
///
/// On the app's Postgres, `sessions.started_by` references `profiles(id)`, so `started_by` must
/// be an existing profile there; the tables these migrations create have no such foreign key.
pub fn register_session(
    conn: &mut DbConnection,
    session_id: Uuid,
    started_by: Uuid,
    chunks: &[(i32, String, Option<f64>)],
) -> Result<(), DbError> {
    conn.transaction(|conn| {
        insert_session(conn, session_id, started_by, status::PROCESSING)?;
        for (chunk_number, storage_path, duration) in chunks {
            add_chunk(conn, session_id, *chunk_number, storage_path, *duration)?;
        }
        Ok(())
    })
}

/// Creates a session as the API does when a recording starts (`recording`, not ended, no
/// chunks yet); see [`register_session`] for `started_by`.
pub fn start_recording(
    conn: &mut DbConnection,
    session_id: Uuid,
    started_by: Uuid,
) -> Result<(), DbError> {
    insert_session(conn, session_id, started_by, status::RECORDING)
}

fn insert_session(
    conn: &mut DbConnection,
    session_id: Uuid,
    started_by: Uuid,
    status: &str,
) -> Result<(), DbError> {
    let now = DbTime::now();
    diesel::insert_into(sessions::table)
        .values(NewSession {
            id: DbUuid(session_id),
            started_by: DbUuid(started_by),
            status,
            started_at: now,
            ended_at: (status != status::RECORDING).then_some(now),
            progress: 0,
            created_at: now,
            updated_at: now,
        })
        .execute(conn)
        .map_err(DbError::query("registering the session"))?;
    Ok(())
}

/// Adds an uploaded chunk to a session, as the API's `POST /sessions/{id}/chunks` does.
pub fn add_chunk(
    conn: &mut DbConnection,
    session_id: Uuid,
    chunk_number: i32,
    storage_path: &str,
    duration_seconds: Option<f64>,
) -> Result<(), DbError> {
    diesel::insert_into(audio_chunks::table)
        .values(NewAudioChunk {
            id: DbUuid(Uuid::new_v4()),
            session_id: DbUuid(session_id),
            chunk_number,
            storage_path,
            duration_seconds: duration_seconds.map(decimal),
            uploaded_at: DbTime::now(),
        })
        .execute(conn)
        .map_err(DbError::query("registering the session's audio chunks"))?;
    Ok(())
}

/// Ends a recording as the API's `POST /sessions/{id}/end` does before it queues the job:
/// `ended_at` now, status `processing`.
pub fn end_recording(conn: &mut DbConnection, session_id: Uuid) -> Result<(), DbError> {
    let now = DbTime::now();
    let ended = diesel::update(sessions::table.find(DbUuid(session_id)))
        .set((
            sessions::ended_at.eq(now),
            sessions::status.eq(status::PROCESSING),
            sessions::updated_at.eq(now),
        ))
        .execute(conn)
        .map_err(DbError::query("ending the recording"))?;
    found(ended, session_id)
}

/// (status, progress, error_message) as the app reads them.
pub fn session_status(
    conn: &mut DbConnection,
    session_id: Uuid,
) -> Result<(String, i32, Option<String>), DbError> {
    let state: Option<SessionState> = sessions::table
        .find(DbUuid(session_id))
        .select(SessionState::as_select())
        .first(conn)
        .optional()
        .map_err(DbError::query("reading the session's status"))?;
    let state = state.ok_or(DbError::SessionNotFound(session_id))?;
    Ok((
        state.status,
        state.progress.unwrap_or(0),
        state.error_message,
    ))
}

/// One saved speaker: (label, segment count, talk time in seconds, word → count).
pub type SpeakerSummary = (String, i32, f64, BTreeMap<String, i32>);

/// Saved speakers in label order.
pub fn session_results(
    conn: &mut DbConnection,
    session_id: Uuid,
) -> Result<Vec<SpeakerSummary>, DbError> {
    ensure_session_exists(conn, session_id)?;
    let speakers: Vec<SpeakerRow> = session_speakers::table
        .filter(session_speakers::session_id.eq(DbUuid(session_id)))
        .order(session_speakers::speaker_label.asc())
        .select(SpeakerRow::as_select())
        .load(conn)
        .map_err(DbError::query("reading the session's speakers"))?;
    let mut results = Vec::with_capacity(speakers.len());
    for speaker in speakers {
        let counts: Vec<(String, i32)> = speaker_word_counts::table
            .filter(speaker_word_counts::session_speaker_id.eq(speaker.id))
            .select((speaker_word_counts::word, speaker_word_counts::count))
            .load(conn)
            .map_err(DbError::query("reading a speaker's word counts"))?;
        let talk_time = speaker
            .total_duration_seconds
            .and_then(|d| d.to_f64())
            .unwrap_or(0.0);
        results.push((
            speaker.speaker_label,
            speaker.segment_count.unwrap_or(0),
            talk_time,
            counts.into_iter().collect(),
        ));
    }
    Ok(results)
}

/// The saved transcript, in time order.
pub fn session_transcript(
    conn: &mut DbConnection,
    session_id: Uuid,
) -> Result<Vec<crate::session::TranscriptSegment>, DbError> {
    let rows: Vec<(String, f64, f64, String)> = transcript_segments::table
        .filter(transcript_segments::session_id.eq(DbUuid(session_id)))
        .order((
            transcript_segments::start_seconds.asc(),
            transcript_segments::id.asc(),
        ))
        .select((
            transcript_segments::speaker_label,
            transcript_segments::start_seconds,
            transcript_segments::end_seconds,
            transcript_segments::text,
        ))
        .load(conn)
        .map_err(DbError::query("reading the session's transcript"))?;
    Ok(rows
        .into_iter()
        .map(|(speaker_label, start_seconds, end_seconds, text)| {
            crate::session::TranscriptSegment {
                speaker_label,
                start_seconds,
                end_seconds,
                text,
            }
        })
        .collect())
}

fn ensure_session_exists(conn: &mut DbConnection, session_id: Uuid) -> Result<(), DbError> {
    let exists: Option<DbUuid> = sessions::table
        .find(DbUuid(session_id))
        .select(sessions::id)
        .first(conn)
        .optional()
        .map_err(DbError::query("looking the session up"))?;
    exists
        .map(|_| ())
        .ok_or(DbError::SessionNotFound(session_id))
}

pub(super) fn found(updated_rows: usize, session_id: Uuid) -> Result<(), DbError> {
    if updated_rows == 0 {
        Err(DbError::SessionNotFound(session_id))
    } else {
        Ok(())
    }
}

/// Deletes word counts explicitly rather than trusting the cascade, which an older app
/// database might lack.
pub(super) fn delete_previous_results(
    conn: &mut DbConnection,
    session_id: Uuid,
) -> Result<(), DbError> {
    let speaker_ids = session_speakers::table
        .filter(session_speakers::session_id.eq(DbUuid(session_id)))
        .select(session_speakers::id.nullable());
    diesel::delete(
        speaker_word_counts::table
            .filter(speaker_word_counts::session_speaker_id.eq_any(speaker_ids)),
    )
    .execute(conn)
    .map_err(DbError::query(
        "removing the session's previous word counts",
    ))?;
    diesel::delete(
        session_speakers::table.filter(session_speakers::session_id.eq(DbUuid(session_id))),
    )
    .execute(conn)
    .map_err(DbError::query("removing the session's previous speakers"))?;
    diesel::delete(
        transcript_segments::table.filter(transcript_segments::session_id.eq(DbUuid(session_id))),
    )
    .execute(conn)
    .map_err(DbError::query("removing the session's previous transcript"))?;
    Ok(())
}

pub(super) fn insert_speakers(
    conn: &mut DbConnection,
    results: &SessionResults,
    samples: &[SpeakerSample],
) -> Result<(), DbError> {
    let now = DbTime::now();
    for sample in samples {
        if !results
            .speakers
            .iter()
            .any(|s| s.label == sample.speaker_label)
        {
            log::warn!(
                "Session {} has no speaker {}; its sample was not saved",
                results.session_id,
                sample.speaker_label
            );
        }
    }
    let speakers: Vec<NewSessionSpeaker<'_>> = results
        .speakers
        .iter()
        .map(|speaker| {
            let sample = samples.iter().find(|s| s.speaker_label == speaker.label);
            NewSessionSpeaker {
                id: DbUuid(Uuid::new_v4()),
                session_id: DbUuid(results.session_id),
                speaker_label: &speaker.label,
                segment_count: speaker.segment_count,
                total_duration_seconds: decimal(speaker.total_duration_seconds),
                sample_audio_url: sample.map(|s| s.sample_audio_url.as_str()),
                sample_start_time: sample.map(|s| decimal(s.sample_start_time)),
                created_at: now,
            }
        })
        .collect();
    let counts: Vec<NewWordCount<'_>> = speakers
        .iter()
        .zip(&results.speakers)
        .flat_map(|(row, speaker)| {
            speaker
                .word_counts
                .iter()
                .map(move |(word, count)| NewWordCount {
                    session_speaker_id: row.id,
                    word,
                    count: *count,
                })
        })
        .collect();
    for batch in speakers.chunks(INSERT_BATCH_ROWS) {
        insert_rows!(conn, session_speakers::table, batch)
            .map_err(DbError::query("saving the session's speakers"))?;
    }
    for batch in counts.chunks(INSERT_BATCH_ROWS) {
        insert_rows!(conn, speaker_word_counts::table, batch)
            .map_err(DbError::query("saving the speakers' word counts"))?;
    }
    Ok(())
}

pub(super) fn insert_segments(
    conn: &mut DbConnection,
    results: &SessionResults,
) -> Result<(), DbError> {
    let now = DbTime::now();
    let segments: Vec<NewTranscriptSegment<'_>> = results
        .segments
        .iter()
        .map(|segment| NewTranscriptSegment {
            session_id: DbUuid(results.session_id),
            speaker_label: &segment.speaker_label,
            start_seconds: segment.start_seconds,
            end_seconds: segment.end_seconds,
            text: &segment.text,
            created_at: now,
        })
        .collect();
    for batch in segments.chunks(INSERT_BATCH_ROWS) {
        insert_rows!(conn, transcript_segments::table, batch)
            .map_err(DbError::query("saving the session's transcript"))?;
    }
    Ok(())
}

/// Seconds as the app's `decimal(10,2)`; a non-finite value (never expected) is stored as 0.
fn decimal(seconds: f64) -> BigDecimal {
    BigDecimal::from_f64(seconds)
        .map(|value| value.with_scale_round(2, RoundingMode::HalfUp))
        .unwrap_or_else(|| BigDecimal::from(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_keep_two_places() {
        assert_eq!(decimal(12.345_6).to_string(), "12.35");
        assert_eq!(decimal(f64::NAN).to_string(), "0");
    }
}
