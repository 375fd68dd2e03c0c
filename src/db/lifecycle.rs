//! A job's life in the database, and the rule that the app's data is never made worse:
//! [`begin_attempt`] checks the session under a row lock and marks it `processing` in the same
//! transaction, unless it is finished or claimed; [`set_progress`] moves the app's bar only
//! forwards while it is processing; [`commit_results`] writes results, sample URLs and status
//! `ready_for_claiming` in one transaction under the same checks; [`mark_failed`] never turns a
//! finished or claimed session into a failed one.

use diesel::prelude::*;
use uuid::Uuid;

use super::models::{SessionState, SpeakerClaim};
use super::queries::{
    delete_previous_results, found, insert_segments, insert_speakers, load_session,
    MAX_ERROR_MESSAGE_CHARS,
};
use super::schema::{session_speakers, sessions};
use super::sql_types::{DbTime, DbUuid};
use super::{DbConnection, DbError};
use crate::session::{status, SessionInput, SessionResults, SpeakerSample, Stage};

/// Why a job leaves a session as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeftAlone {
    /// It is already `ready_for_claiming`: a duplicate job has nothing to add.
    Finished,
    /// The app has attributed this many of its speakers: claims are never thrown away.
    Claimed(usize),
}

impl std::fmt::Display for LeftAlone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LeftAlone::Finished => f.write_str("it is already ready_for_claiming"),
            LeftAlone::Claimed(n) => write!(f, "{n} of its speakers are claimed in the app"),
        }
    }
}

/// What [`begin_attempt`] decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Begin {
    /// Marked `processing` (progress 0, no error); its chunks in recording order.
    Started(SessionInput),
    /// Not touched.
    LeftAlone(LeftAlone),
}

/// The start of an attempt, in one transaction holding the session's row lock (Postgres
/// `SELECT … FOR UPDATE`; SQLite transactions are serializable): a session that is
/// `ready_for_claiming` or has a claimed speaker is left alone unless `force`; otherwise its
/// chunks are read and it is marked `processing`. Unknown session → `SessionNotFound`; no chunks
/// → `NoChunks` (nothing written either way).
pub fn begin_attempt(
    conn: &mut DbConnection,
    session_id: Uuid,
    force: bool,
) -> Result<Begin, DbError> {
    conn.transaction(|conn| {
        if let Some(reason) = left_alone(conn, session_id, force)? {
            return Ok(Begin::LeftAlone(reason));
        }
        let input = load_session(conn, session_id)?;
        mark_processing(conn, session_id)?;
        Ok(Begin::Started(input))
    })
}

/// What [`commit_results`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// Results, sample URLs and status `ready_for_claiming` are written.
    Saved,
    /// Finished or claimed meanwhile: nothing written.
    LeftAlone(LeftAlone),
}

/// The end of a successful attempt, in one transaction under the session's row lock: replaces
/// the session's speakers (with their sample clips), word counts and transcript with `results`,
/// and sets its duration, audio URL, status `ready_for_claiming` and progress 100 — unless the
/// session was finished or claimed meanwhile (then nothing is written), or `force`.
pub fn commit_results(
    conn: &mut DbConnection,
    results: &SessionResults,
    samples: &[SpeakerSample],
    force: bool,
) -> Result<Committed, DbError> {
    let session_id = results.session_id;
    conn.transaction(|conn| {
        if let Some(reason) = left_alone(conn, session_id, force)? {
            return Ok(Committed::LeftAlone(reason));
        }
        delete_previous_results(conn, session_id)?;
        // What was prepared while it recorded has served: the results are what stays.
        super::prepared::forget_prepared_steps(conn, session_id, 1)?;
        insert_speakers(conn, results, samples)?;
        insert_segments(conn, results)?;
        let duration = results
            .duration_seconds
            .round()
            .clamp(0.0, f64::from(i32::MAX)) as i32;
        diesel::update(sessions::table.find(DbUuid(session_id)))
            .set((
                sessions::duration_seconds.eq(duration),
                sessions::audio_url.eq(&results.audio_url),
                sessions::status.eq(status::READY_FOR_CLAIMING),
                sessions::progress.eq(100),
                sessions::error_message.eq(None::<String>),
                sessions::updated_at.eq(DbTime::now()),
            ))
            .execute(conn)
            .map_err(DbError::query("marking the session ready for claiming"))?;
        Ok(Committed::Saved)
    })
}

/// What [`mark_failed`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marked {
    /// Status `failed` with the error message.
    Failed,
    /// Finished or claimed: a late failure never replaces that.
    LeftAlone(LeftAlone),
}

/// Status `failed` with `error` (cut to 500 characters) for the app to show, under the session's
/// row lock — unless the session is `ready_for_claiming` or claimed, which a failure never
/// undoes (not even a forced job's).
pub fn mark_failed(
    conn: &mut DbConnection,
    session_id: Uuid,
    error: &str,
) -> Result<Marked, DbError> {
    let message: String = error.chars().take(MAX_ERROR_MESSAGE_CHARS).collect();
    conn.transaction(|conn| {
        if let Some(reason) = left_alone(conn, session_id, false)? {
            return Ok(Marked::LeftAlone(reason));
        }
        diesel::update(sessions::table.find(DbUuid(session_id)))
            .set((
                sessions::status.eq(status::FAILED),
                sessions::error_message.eq(message),
                sessions::updated_at.eq(DbTime::now()),
            ))
            .execute(conn)
            .map_err(DbError::query("marking the session as failed"))?;
        Ok(Marked::Failed)
    })
}

/// Progress = where `stage` is at `percent` % on the app's 0–100 bar, while the session is
/// `processing` and only forwards (a late update never moves a finished session's bar).
pub fn set_progress(
    conn: &mut DbConnection,
    session_id: Uuid,
    stage: Stage,
    percent: u8,
) -> Result<(), DbError> {
    let progress = stage.progress(percent);
    diesel::update(
        sessions::table
            .find(DbUuid(session_id))
            .filter(sessions::status.eq(status::PROCESSING))
            .filter(
                sessions::progress
                    .is_null()
                    .or(sessions::progress.le(progress)),
            ),
    )
    .set((
        sessions::progress.eq(progress),
        sessions::updated_at.eq(DbTime::now()),
    ))
    .execute(conn)
    .map_err(DbError::query("updating the session's progress"))?;
    Ok(())
}

/// Whether the session must be left alone, read under its row lock (inside the caller's
/// transaction). Unknown session → `SessionNotFound`.
fn left_alone(
    conn: &mut DbConnection,
    session_id: Uuid,
    force: bool,
) -> Result<Option<LeftAlone>, DbError> {
    let state = lock_session(conn, session_id)?;
    let claimed = claimed_speakers(conn, session_id)?;
    let reason = if claimed > 0 {
        Some(LeftAlone::Claimed(claimed))
    } else if state.status == status::READY_FOR_CLAIMING {
        Some(LeftAlone::Finished)
    } else {
        None
    };
    match reason {
        Some(reason) if force => {
            log::warn!("Session {session_id}: {reason}, but the job is forced: processing it");
            Ok(None)
        }
        other => Ok(other),
    }
}

/// The session's state, its row locked until the transaction ends (Postgres); SQLite locks the
/// whole database for a writing transaction and refuses a stale one, so a plain read serves.
fn lock_session(conn: &mut DbConnection, session_id: Uuid) -> Result<SessionState, DbError> {
    let query = sessions::table.find(DbUuid(session_id));
    let state = match conn {
        DbConnection::Pg(pg) => query
            .select(SessionState::as_select())
            .for_update()
            .first(pg)
            .optional(),
        DbConnection::Sqlite(sqlite) => query
            .select(SessionState::as_select())
            .first(sqlite)
            .optional(),
    }
    .map_err(DbError::query("locking the session's row"))?;
    state.ok_or(DbError::SessionNotFound(session_id))
}

/// Speakers of the session the app has attributed, their rows locked too (so a claim arriving
/// now waits for this transaction instead of racing it).
fn claimed_speakers(conn: &mut DbConnection, session_id: Uuid) -> Result<usize, DbError> {
    let query = session_speakers::table.filter(session_speakers::session_id.eq(DbUuid(session_id)));
    let claims: Vec<SpeakerClaim> = match conn {
        DbConnection::Pg(pg) => query
            .select(SpeakerClaim::as_select())
            .for_update()
            .load(pg),
        DbConnection::Sqlite(sqlite) => query.select(SpeakerClaim::as_select()).load(sqlite),
    }
    .map_err(DbError::query("checking the session's speaker claims"))?;
    Ok(claims.iter().filter(|claim| claim.is_claimed()).count())
}

/// Status `processing`, progress 0, no error: the start of an attempt.
fn mark_processing(conn: &mut DbConnection, session_id: Uuid) -> Result<(), DbError> {
    let updated = diesel::update(sessions::table.find(DbUuid(session_id)))
        .set((
            sessions::status.eq(status::PROCESSING),
            sessions::progress.eq(0),
            sessions::error_message.eq(None::<String>),
            sessions::updated_at.eq(DbTime::now()),
        ))
        .execute(conn)
        .map_err(DbError::query("marking the session as processing"))?;
    found(updated, session_id)
}
