//! The worker's `prepared_steps`: a session analysed while it records, one row per chunk taken
//! in. Rows are only added (step `n` after step `n − 1`) and removed: from a step on when its
//! chunk is no longer the session's, and all of a session's when its results are committed.
//! Two workers preparing one session collide on the key: the second is told, and keeps nothing.

use diesel::prelude::*;
use uuid::Uuid;

use super::schema::{audio_chunks, prepared_steps, sessions};
use super::sql_types::{DbTime, DbUuid};
use super::{DbConnection, DbError};
use crate::session::{status, PreparedStep};

/// Sessions still `recording` that have chunks, oldest first.
pub fn recording_sessions(conn: &mut DbConnection) -> Result<Vec<Uuid>, DbError> {
    let ids: Vec<DbUuid> = sessions::table
        .filter(sessions::status.eq(status::RECORDING))
        .filter(diesel::dsl::exists(
            audio_chunks::table.filter(audio_chunks::session_id.eq(sessions::id.nullable())),
        ))
        .order(sessions::created_at.asc())
        .select(sessions::id)
        .load(conn)
        .map_err(DbError::query("listing the sessions that are recording"))?;
    Ok(ids.into_iter().map(|id| id.0).collect())
}

/// The session's kept steps in order; with `states` false, their `state` is left empty (what
/// each step took in is enough to tell whether a session has new chunks).
pub fn prepared_steps(
    conn: &mut DbConnection,
    session_id: Uuid,
    states: bool,
) -> Result<Vec<PreparedStep>, DbError> {
    let query = prepared_steps::table
        .filter(prepared_steps::session_id.eq(DbUuid(session_id)))
        .order(prepared_steps::step.asc());
    let action = "reading the session's prepared steps";
    if states {
        let rows: Vec<(i32, i32, String, Vec<u8>)> = query
            .select((
                prepared_steps::step,
                prepared_steps::chunk_number,
                prepared_steps::storage_path,
                prepared_steps::state,
            ))
            .load(conn)
            .map_err(DbError::query(action))?;
        Ok(rows
            .into_iter()
            .map(|(step, chunk_number, storage_path, state)| PreparedStep {
                step,
                chunk_number,
                storage_path,
                state,
            })
            .collect())
    } else {
        let rows: Vec<(i32, i32, String)> = query
            .select((
                prepared_steps::step,
                prepared_steps::chunk_number,
                prepared_steps::storage_path,
            ))
            .load(conn)
            .map_err(DbError::query(action))?;
        Ok(rows
            .into_iter()
            .map(|(step, chunk_number, storage_path)| PreparedStep {
                step,
                chunk_number,
                storage_path,
                state: Vec::new(),
            })
            .collect())
    }
}

/// Keeps `step` of the session; `false` when that step is already kept (another worker
/// prepared it first) or the session is gone.
pub fn keep_prepared_step(
    conn: &mut DbConnection,
    session_id: Uuid,
    step: &PreparedStep,
) -> Result<bool, DbError> {
    let inserted = diesel::insert_into(prepared_steps::table)
        .values((
            prepared_steps::session_id.eq(DbUuid(session_id)),
            prepared_steps::step.eq(step.step),
            prepared_steps::chunk_number.eq(step.chunk_number),
            prepared_steps::storage_path.eq(&step.storage_path),
            prepared_steps::state.eq(&step.state),
            prepared_steps::created_at.eq(DbTime::now()),
        ))
        .execute(conn);
    use diesel::result::{DatabaseErrorKind, Error};
    match inserted {
        Ok(_) => Ok(true),
        Err(Error::DatabaseError(
            DatabaseErrorKind::UniqueViolation | DatabaseErrorKind::ForeignKeyViolation,
            _,
        )) => Ok(false),
        Err(err) => Err(DbError::query("keeping a prepared step")(err)),
    }
}

/// Forgets the session's steps from `from` on.
pub fn forget_prepared_steps(
    conn: &mut DbConnection,
    session_id: Uuid,
    from: i32,
) -> Result<usize, DbError> {
    diesel::delete(
        prepared_steps::table
            .filter(prepared_steps::session_id.eq(DbUuid(session_id)))
            .filter(prepared_steps::step.ge(from)),
    )
    .execute(conn)
    .map_err(DbError::query("forgetting prepared steps"))
}
