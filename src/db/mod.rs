//! Persistence: the app's tables (Postgres in production, embedded SQLite by default) behind one
//! diesel code path.
//!
//! `connection` picks the backend from `DATABASE_URL` and runs the embedded migrations,
//! `schema`/`models`/`sql_types` describe the tables, and `queries` holds one function per query
//! the worker needs. The Processor and the Settler call the queries on their own threads (both
//! may block); this module imports none of the actors.

pub mod connection;
pub mod lifecycle;
pub mod models;
pub mod prepared;
pub mod queries;
pub mod schema;
pub mod sql_types;

use std::path::PathBuf;

use uuid::Uuid;

use crate::error::{Classify, ErrorKind};

pub use connection::{
    connect, connect_with, run_migrations, DbConnection, DbManager, DbPool, DbTarget, PoolSettings,
    PooledDbConnection, DEFAULT_SQLITE_PATH,
};

/// Everything that can go wrong reading or writing the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(
        "DATABASE_URL `{url}` is neither a Postgres URL (postgres://…) nor an SQLite location \
         (sqlite://path, a file path or :memory:); fix DATABASE_URL"
    )]
    InvalidUrl { url: String },

    #[error(
        "Could not create the directory {path} for the SQLite database: {source}; create it or \
         point DATABASE_URL elsewhere"
    )]
    DataDirectory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "The database could not be reached ({reason}); check that it is running and that \
         DATABASE_URL is right. The job will be retried"
    )]
    Unavailable { reason: String },

    #[error(
        "The database failed while {action}: {source}. If this persists, check the database \
         server and its log"
    )]
    Query {
        action: &'static str,
        #[source]
        source: diesel::result::Error,
    },

    #[error("Running the database migrations failed: {reason}; fix the database and restart")]
    Migration { reason: String },

    #[error(
        "Session {0} does not exist in the database; it may have been deleted, or the worker \
         points at a different DATABASE_URL than the API"
    )]
    SessionNotFound(Uuid),

    #[error(
        "Session {0} has no audio chunks: nothing was uploaded, so there is nothing to process"
    )]
    NoChunks(Uuid),
}

impl DbError {
    /// Wraps a diesel error with what the worker was doing when it happened.
    pub fn query(action: &'static str) -> impl FnOnce(diesel::result::Error) -> DbError {
        move |source| DbError::Query { action, source }
    }
}

impl From<diesel::r2d2::PoolError> for DbError {
    fn from(err: diesel::r2d2::PoolError) -> Self {
        DbError::Unavailable {
            reason: err.to_string().trim_end().to_owned(),
        }
    }
}

impl Classify for DbError {
    fn kind(&self) -> ErrorKind {
        match self {
            DbError::Unavailable { .. } => ErrorKind::Transient,
            DbError::Query { source, .. } => query_error_kind(source),
            DbError::InvalidUrl { .. }
            | DbError::DataDirectory { .. }
            | DbError::Migration { .. }
            | DbError::SessionNotFound(_)
            | DbError::NoChunks(_) => ErrorKind::Permanent,
        }
    }
}

/// Constraint violations and values diesel cannot convert will fail the same way on every
/// attempt; anything else from the server (lost connection, serialization conflict, shutdown in
/// progress, lock timeout) may pass.
fn query_error_kind(err: &diesel::result::Error) -> ErrorKind {
    use diesel::result::{DatabaseErrorKind as Db, Error as E};
    match err {
        E::DatabaseError(
            Db::UniqueViolation
            | Db::ForeignKeyViolation
            | Db::NotNullViolation
            | Db::CheckViolation,
            _,
        )
        | E::NotFound
        | E::DeserializationError(_)
        | E::SerializationError(_)
        | E::QueryBuilderError(_)
        | E::InvalidCString(_) => ErrorKind::Permanent,
        _ => ErrorKind::Transient,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::JobError;

    #[test]
    fn errors_classify_as_the_failure_table_says() {
        let id = Uuid::nil();
        assert_eq!(DbError::SessionNotFound(id).kind(), ErrorKind::Permanent);
        assert_eq!(DbError::NoChunks(id).kind(), ErrorKind::Permanent);
        assert_eq!(
            DbError::Unavailable {
                reason: "refused".into()
            }
            .kind(),
            ErrorKind::Transient
        );
        let serialization = diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::SerializationFailure,
            Box::new("could not serialize access".to_owned()),
        );
        let err = DbError::Query {
            action: "saving",
            source: serialization,
        };
        let job: JobError = err.into();
        assert!(job.is_transient());
    }
}
