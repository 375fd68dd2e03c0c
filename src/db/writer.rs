//! The DbWriter actor: owns the database pool and performs every read and write a job needs,
//! on threads of its own (diesel blocks), so no other actor ever waits on the database.
//!
//! Start it with `SyncArbiter::start(n, move || DbWriter::new(pool.clone()))`. Messages to one
//! DbWriter thread are handled in order, so a reply to `Shutdown` means every message sent to
//! that thread before it has been written.

use actix::prelude::*;
use uuid::Uuid;

use super::{queries, DbConnection, DbError, DbPool};
use crate::session::{SessionInput, SessionResults, SpeakerSample, Stage};
use crate::supervise::guard;

// ---- state ----

/// One database writer thread and its share of the pool.
pub struct DbWriter {
    pool: DbPool,
}

impl DbWriter {
    pub fn new(pool: DbPool) -> DbWriter {
        DbWriter { pool }
    }
}

impl Actor for DbWriter {
    type Context = SyncContext<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        log::debug!("DbWriter started");
    }
}

// ---- messages ----

/// Reads the session's chunks, in recording order, for the Processor.
#[derive(Debug, Message)]
#[rtype(result = "Result<SessionInput, DbError>")]
pub struct LoadSession {
    pub session_id: Uuid,
}

/// Marks the start of an attempt: status `processing`, progress 0, no error message.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), DbError>")]
pub struct MarkProcessing {
    pub session_id: Uuid,
}

/// Moves the app's progress bar to where `stage` is at `percent` %.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), DbError>")]
pub struct ReportProgress {
    pub session_id: Uuid,
    pub stage: Stage,
    pub percent: u8,
}

/// Replaces the session's speakers, word counts and transcript in one transaction.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), DbError>")]
pub struct SaveResults {
    pub results: SessionResults,
    /// Replace results even when the app has already claimed a speaker.
    pub force: bool,
}

/// Stores the speakers' sample clips and marks the session `ready_for_claiming`.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), DbError>")]
pub struct FinishSession {
    pub session_id: Uuid,
    pub samples: Vec<SpeakerSample>,
}

/// Marks the session `failed` with an error message for the app (cut to 500 characters).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), DbError>")]
pub struct MarkFailed {
    pub session_id: Uuid,
    pub error: String,
}

/// Reads the app's active target words (lowercased); empty means "use the built-in list".
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<String>, DbError>")]
pub struct LoadTargetWords;

/// Creates a session and its chunks as the API would (for `lahstats-worker submit`).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), DbError>")]
pub struct RegisterSession {
    pub session_id: Uuid,
    /// On the app's database this must be an existing `profiles.id`.
    pub started_by: Uuid,
    /// (chunk_number, storage_path, duration_seconds)
    pub chunks: Vec<(i32, String, Option<f64>)>,
}

/// Use a new pool from now on (after a reload changed the database URL).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reconnect {
    pub pool: DbPool,
}

/// Marks the end of this writer's work; the reply means all earlier messages are written.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Shutdown;

// ---- handlers ----

impl Handler<LoadSession> for DbWriter {
    type Result = Result<SessionInput, DbError>;

    fn handle(&mut self, msg: LoadSession, ctx: &mut Self::Context) -> Self::Result {
        let input = self.guarded(ctx, "loading a session", |conn| {
            queries::load_session(conn, msg.session_id)
        })?;
        log::debug!(
            "Loaded session {}: {} chunk(s)",
            msg.session_id,
            input.chunks.len()
        );
        Ok(input)
    }
}

impl Handler<MarkProcessing> for DbWriter {
    type Result = Result<(), DbError>;

    fn handle(&mut self, msg: MarkProcessing, ctx: &mut Self::Context) -> Self::Result {
        self.guarded(ctx, "marking a session processing", |conn| {
            queries::mark_processing(conn, msg.session_id)
        })?;
        log::info!("💾 Session {} is processing", msg.session_id);
        Ok(())
    }
}

impl Handler<ReportProgress> for DbWriter {
    type Result = Result<(), DbError>;

    fn handle(&mut self, msg: ReportProgress, ctx: &mut Self::Context) -> Self::Result {
        self.guarded(ctx, "reporting progress", |conn| {
            queries::set_progress(conn, msg.session_id, msg.stage, msg.percent)
        })?;
        log::debug!(
            "Session {} progress {}% ({} {}%)",
            msg.session_id,
            msg.stage.progress(msg.percent),
            msg.stage.name(),
            msg.percent
        );
        Ok(())
    }
}

impl Handler<SaveResults> for DbWriter {
    type Result = Result<(), DbError>;

    fn handle(&mut self, msg: SaveResults, ctx: &mut Self::Context) -> Self::Result {
        let results = &msg.results;
        self.guarded(ctx, "saving results", |conn| {
            queries::save_results(conn, results, msg.force)
        })?;
        log::info!(
            "💾 Saved results for {}: {} speakers, {} segments",
            results.session_id,
            results.speakers.len(),
            results.segments.len()
        );
        Ok(())
    }
}

impl Handler<FinishSession> for DbWriter {
    type Result = Result<(), DbError>;

    fn handle(&mut self, msg: FinishSession, ctx: &mut Self::Context) -> Self::Result {
        self.guarded(ctx, "finishing a session", |conn| {
            queries::finish_session(conn, msg.session_id, &msg.samples)
        })?;
        log::info!(
            "💾 Session {} is ready for claiming ({} sample clip(s))",
            msg.session_id,
            msg.samples.len()
        );
        Ok(())
    }
}

impl Handler<MarkFailed> for DbWriter {
    type Result = Result<(), DbError>;

    fn handle(&mut self, msg: MarkFailed, ctx: &mut Self::Context) -> Self::Result {
        self.guarded(ctx, "marking a session failed", |conn| {
            queries::mark_failed(conn, msg.session_id, &msg.error)
        })?;
        log::info!("💾 Session {} marked failed: {}", msg.session_id, msg.error);
        Ok(())
    }
}

impl Handler<LoadTargetWords> for DbWriter {
    type Result = Result<Vec<String>, DbError>;

    fn handle(&mut self, _msg: LoadTargetWords, ctx: &mut Self::Context) -> Self::Result {
        let words = self.guarded(ctx, "loading target words", queries::active_target_words)?;
        log::debug!(
            "Loaded {} active target word(s) from the database",
            words.len()
        );
        Ok(words)
    }
}

impl Handler<RegisterSession> for DbWriter {
    type Result = Result<(), DbError>;

    fn handle(&mut self, msg: RegisterSession, ctx: &mut Self::Context) -> Self::Result {
        self.guarded(ctx, "registering a session", |conn| {
            queries::register_session(conn, msg.session_id, msg.started_by, &msg.chunks)
        })?;
        log::info!(
            "💾 Registered session {} with {} chunk(s)",
            msg.session_id,
            msg.chunks.len()
        );
        Ok(())
    }
}

impl Handler<Reconnect> for DbWriter {
    type Result = ();

    fn handle(&mut self, msg: Reconnect, _ctx: &mut Self::Context) {
        self.pool = msg.pool;
        log::info!("DbWriter reconnected");
    }
}

impl Handler<Shutdown> for DbWriter {
    type Result = ();

    /// Nothing is buffered: every earlier message was written before this one was taken. The
    /// thread itself ends when the System stops or the last address is dropped (stopping the
    /// actor here would only make the SyncArbiter build a fresh one).
    fn handle(&mut self, _msg: Shutdown, _ctx: &mut Self::Context) {
        let state = self.pool.state();
        log::info!(
            "DbWriter stopped ({} pooled connection(s) open)",
            state.connections
        );
    }
}

// ---- helpers ----

impl DbWriter {
    /// Runs `work` on a pooled connection. A panic is caught and reported as a transient error,
    /// and the actor is stopped so the SyncArbiter builds a fresh one (its connection, possibly
    /// mid-transaction, is discarded by the pool as broken).
    fn guarded<T>(
        &mut self,
        ctx: &mut SyncContext<Self>,
        action: &str,
        work: impl FnOnce(&mut DbConnection) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let pool = &self.pool;
        let name = format!("DbWriter (while {action})");
        guard(&name, ctx, || {
            let mut conn = pool.get()?;
            work(&mut conn)
        })
        .unwrap_or_else(|| {
            Err(DbError::WriterPanicked {
                reason: format!("panicked while {action}"),
            })
        })
    }
}
