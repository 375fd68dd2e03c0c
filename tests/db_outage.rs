//! A database outage in the middle of a job, on a private Postgres server this test stops and
//! starts: the save fails as transient and writes nothing; once the server is back, the same
//! pool recovers and the save writes the full result set.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use lahstats_worker::db::{self, queries, PoolSettings};
use lahstats_worker::error::{Classify, ErrorKind, JobError};
use lahstats_worker::session::{SessionResults, SpeakerResult, TranscriptSegment};
use support::postgres::{create_database_on, PrivatePostgres};
use uuid::Uuid;

fn results(session_id: Uuid) -> SessionResults {
    SessionResults {
        session_id,
        duration_seconds: 61.2,
        audio_url: None,
        speakers: (0..4)
            .map(|n| SpeakerResult {
                label: format!("SPEAKER_{n:02}"),
                segment_count: 3,
                total_duration_seconds: 12.0 + f64::from(n),
                word_counts: [("lah".to_owned(), n + 1), ("wah".to_owned(), 1)]
                    .into_iter()
                    .collect::<BTreeMap<_, _>>(),
            })
            .collect(),
        segments: (0..12)
            .map(|n| TranscriptSegment {
                speaker_label: format!("SPEAKER_{:02}", n % 4),
                start_seconds: f64::from(n) * 5.0,
                end_seconds: f64::from(n) * 5.0 + 4.0,
                text: format!("segment {n} wah lah"),
            })
            .collect(),
    }
}

#[test]
fn a_database_outage_mid_job_is_transient_and_leaves_no_partial_results() {
    let server = PrivatePostgres::start_new();
    let database = create_database_on(&server.url());
    let settings = PoolSettings {
        max_size: 2,
        connection_timeout: Duration::from_secs(2),
    };
    let pool = db::connect_with(&database.url, &settings).expect("pool");
    db::run_migrations(&pool).expect("migrations");

    let session_id = Uuid::new_v4();
    {
        let mut conn = pool.get().expect("connection");
        let chunk = (
            0,
            format!("sessions/{session_id}/chunks/chunk_0000.m4a"),
            Some(30.0),
        );
        queries::register_session(&mut conn, session_id, Uuid::new_v4(), &[chunk])
            .expect("register");
        queries::begin_attempt(&mut conn, session_id, false).expect("begin");
    }

    server.stop();
    let started = Instant::now();
    let outcome = pool
        .get()
        .map_err(db::DbError::from)
        .and_then(|mut conn| queries::commit_results(&mut conn, &results(session_id), &[], false));
    let waited = started.elapsed();
    let err = outcome.expect_err("the database is down");
    assert_eq!(err.kind(), ErrorKind::Transient, "{err}");
    let job: JobError = err.into();
    assert!(job.is_transient());
    assert!(
        waited < Duration::from_secs(5),
        "a dead database took {waited:?} to report"
    );
    eprintln!("outage reported as transient after {waited:?}: {job}");

    server.start();
    let mut conn = pool.get().expect("the same pool reconnects");
    assert!(
        queries::session_results(&mut conn, session_id)
            .expect("read back")
            .is_empty(),
        "a partial result set survived the outage"
    );
    assert_eq!(
        queries::session_status(&mut conn, session_id).expect("status"),
        ("processing".to_owned(), 0, None)
    );

    queries::commit_results(&mut conn, &results(session_id), &[], false)
        .expect("commit after recovery");
    let saved = queries::session_results(&mut conn, session_id).expect("read back");
    assert_eq!(saved.len(), 4);
    assert!(saved
        .iter()
        .all(|(_, segments, _, words)| *segments == 3 && words.len() == 2));
    assert_eq!(
        queries::session_transcript(&mut conn, session_id)
            .expect("transcript")
            .len(),
        12
    );
    assert_eq!(
        queries::session_status(&mut conn, session_id).expect("status"),
        ("ready_for_claiming".to_owned(), 100, None)
    );
}

/// The connection is already checked out when the server goes away, so the failure comes from
/// the dead connection itself rather than from the pool.
#[test]
fn a_connection_lost_inside_the_transaction_is_transient_and_rolled_back() {
    let server = PrivatePostgres::start_new();
    let database = create_database_on(&server.url());
    let pool = db::connect(&database.url).expect("pool");
    db::run_migrations(&pool).expect("migrations");

    let session_id = Uuid::new_v4();
    let mut conn = pool.get().expect("connection");
    queries::register_session(
        &mut conn,
        session_id,
        Uuid::new_v4(),
        &[(0, "chunk.m4a".into(), None)],
    )
    .expect("register");
    queries::begin_attempt(&mut conn, session_id, false).expect("begin");

    // Checked out before the stop: this connection's socket dies under it.
    server.stop();
    let err = queries::commit_results(&mut conn, &results(session_id), &[], false)
        .expect_err("server gone");
    assert_eq!(err.kind(), ErrorKind::Transient, "{err:?}");
    eprintln!("lost connection reported as: {err}");
    drop(conn);

    server.start();
    let mut conn = pool
        .get()
        .expect("a fresh connection replaces the dead one");
    assert!(queries::session_results(&mut conn, session_id)
        .expect("read")
        .is_empty());
    queries::commit_results(&mut conn, &results(session_id), &[], false)
        .expect("commit after recovery");
    assert_eq!(
        queries::session_results(&mut conn, session_id)
            .expect("read")
            .len(),
        4
    );
}
