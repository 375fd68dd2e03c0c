//! The query functions against real Postgres and SQLite: results, sample URLs and status
//! committed together, finished and claimed sessions left alone, failures that never undo them,
//! progress that only moves forwards, target words and unknown sessions.

mod support;

use std::collections::BTreeMap;

use bigdecimal::ToPrimitive;
use diesel::prelude::*;
use lahstats_worker::db::queries::{Begin, Committed, LeftAlone, Marked};
use lahstats_worker::db::schema::{
    session_speakers, sessions, speaker_word_counts, transcript_segments,
};
use lahstats_worker::db::sql_types::DbUuid;
use lahstats_worker::db::{queries, DbConnection, DbError, DbPool};
use lahstats_worker::error::{Classify, ErrorKind};
use lahstats_worker::session::{
    SessionResults, SpeakerResult, SpeakerSample, Stage, TranscriptSegment,
};
use support::postgres::{fresh_database, TestDb};
use uuid::Uuid;

fn counts(pairs: &[(&str, i32)]) -> BTreeMap<String, i32> {
    pairs
        .iter()
        .map(|(word, count)| (word.to_string(), *count))
        .collect()
}

/// A result set shaped like a real three-person conversation.
fn three_speakers(session_id: Uuid) -> SessionResults {
    let segment = |label: &str, start: f64, end: f64, text: &str| TranscriptSegment {
        speaker_label: label.to_owned(),
        start_seconds: start,
        end_seconds: end,
        text: text.to_owned(),
    };
    SessionResults {
        session_id,
        duration_seconds: 93.6,
        audio_url: Some(format!(
            "file:///data/sessions/{session_id}/processed/full_audio.wav"
        )),
        speakers: vec![
            SpeakerResult {
                label: "SPEAKER_00".into(),
                segment_count: 2,
                total_duration_seconds: 31.456,
                word_counts: counts(&[("lah", 3), ("walao", 1)]),
            },
            SpeakerResult {
                label: "SPEAKER_01".into(),
                segment_count: 2,
                total_duration_seconds: 20.0,
                word_counts: counts(&[("sia", 1)]),
            },
            SpeakerResult {
                label: "SPEAKER_02".into(),
                segment_count: 1,
                total_duration_seconds: 7.25,
                word_counts: BTreeMap::new(),
            },
        ],
        segments: vec![
            segment("SPEAKER_00", 0.0, 12.5, "walao the queue so long lah"),
            segment("SPEAKER_01", 12.5, 22.0, "shiok sia the chicken rice"),
            segment("SPEAKER_00", 22.0, 40.96, "can lah can lah, later we makan"),
            segment("SPEAKER_02", 41.0, 48.25, "I'm just here for the kopi"),
            segment("SPEAKER_01", 48.25, 58.75, "okay, see you"),
        ],
    }
}

fn register(conn: &mut DbConnection, chunks: usize) -> Uuid {
    let session_id = Uuid::new_v4();
    let chunks: Vec<(i32, String, Option<f64>)> = (0..chunks)
        .map(|n| {
            (
                n as i32,
                format!("sessions/{session_id}/chunks/chunk_{n:04}.m4a"),
                Some(30.0),
            )
        })
        .collect();
    queries::register_session(conn, session_id, Uuid::new_v4(), &chunks).expect("register");
    session_id
}

/// label, segment count, talk time, sample URL, claimed by.
type SpeakerDump = (
    String,
    Option<i32>,
    Option<bigdecimal::BigDecimal>,
    Option<String>,
    Option<DbUuid>,
);

/// Every row the worker writes for a session, without generated ids and timestamps.
fn dump(conn: &mut DbConnection, session_id: Uuid) -> Vec<String> {
    let id = DbUuid(session_id);
    let mut lines = Vec::new();
    let session: (
        String,
        Option<i32>,
        Option<i32>,
        Option<String>,
        Option<String>,
    ) = sessions::table
        .find(id)
        .select((
            sessions::status,
            sessions::progress,
            sessions::duration_seconds,
            sessions::audio_url,
            sessions::error_message,
        ))
        .first(conn)
        .expect("session row");
    lines.push(format!("session {session:?}"));
    let speakers: Vec<SpeakerDump> = session_speakers::table
        .filter(session_speakers::session_id.eq(id))
        .order(session_speakers::speaker_label)
        .select((
            session_speakers::speaker_label,
            session_speakers::segment_count,
            session_speakers::total_duration_seconds,
            session_speakers::sample_audio_url,
            session_speakers::claimed_by,
        ))
        .load(conn)
        .expect("speakers");
    for (label, segments, talk, sample, claimed) in speakers {
        let talk = talk.and_then(|t| t.to_f64()).map(|t| format!("{t:.2}"));
        lines.push(format!(
            "speaker {label} {segments:?} {talk:?} {sample:?} {claimed:?}"
        ));
    }
    let words: Vec<(String, String, i32)> = speaker_word_counts::table
        .inner_join(session_speakers::table)
        .filter(session_speakers::session_id.eq(id))
        .order((session_speakers::speaker_label, speaker_word_counts::word))
        .select((
            session_speakers::speaker_label,
            speaker_word_counts::word,
            speaker_word_counts::count,
        ))
        .load(conn)
        .expect("word counts");
    lines.extend(words.into_iter().map(|row| format!("count {row:?}")));
    let segments: Vec<(String, f64, f64, String)> = transcript_segments::table
        .filter(transcript_segments::session_id.eq(id))
        .order(transcript_segments::start_seconds)
        .select((
            transcript_segments::speaker_label,
            transcript_segments::start_seconds,
            transcript_segments::end_seconds,
            transcript_segments::text,
        ))
        .load(conn)
        .expect("segments");
    lines.extend(segments.into_iter().map(|row| format!("segment {row:?}")));
    lines
}

fn all_word_count_rows(conn: &mut DbConnection) -> i64 {
    speaker_word_counts::table
        .count()
        .get_result(conn)
        .expect("count")
}

fn with_each_backend(test: impl Fn(&str, &DbPool)) {
    for database in TestDb::both() {
        let pool = database.migrated_pool();
        test(database.backend(), &pool);
    }
}

fn samples(session_id: Uuid) -> Vec<SpeakerSample> {
    vec![SpeakerSample {
        speaker_label: "SPEAKER_00".into(),
        sample_audio_url: format!("sessions/{session_id}/processed/speaker_SPEAKER_00_sample.wav"),
        sample_start_time: 22.0,
    }]
}

fn begin(conn: &mut DbConnection, session_id: Uuid) {
    match queries::begin_attempt(conn, session_id, false).expect("begin") {
        Begin::Started(_) => {}
        other => panic!("not started: {other:?}"),
    }
}

#[test]
fn committing_results_writes_everything_at_once_and_only_forced_again() {
    with_each_backend(|backend, pool| {
        let mut conn = pool.get().expect("connection");
        let session_id = register(&mut conn, 3);
        let results = three_speakers(session_id);
        begin(&mut conn, session_id);

        let saved = queries::commit_results(&mut conn, &results, &samples(session_id), false)
            .expect("commit");
        assert_eq!(saved, Committed::Saved, "{backend}");
        let first = dump(&mut conn, session_id);
        // 1 session line, 3 speakers, 3 word counts, 5 segments.
        assert_eq!(first.len(), 1 + 3 + 3 + 5, "{backend}: {first:#?}");
        assert!(
            first[0].contains("\"ready_for_claiming\", Some(100), Some(94)"),
            "{backend}: status, progress and duration (whole seconds) together: {}",
            first[0]
        );
        assert!(
            first[1].contains("Some(\"31.46\")")
                && first[1].contains("speaker_SPEAKER_00_sample.wav"),
            "{backend}: talk time to 2 places, the sample URL with its speaker: {}",
            first[1]
        );
        assert!(first[2].ends_with("None None"), "{backend}: {}", first[2]);

        // A duplicate's commit finds the session finished and writes nothing.
        let again = queries::commit_results(&mut conn, &results, &samples(session_id), false)
            .expect("second commit");
        assert_eq!(
            again,
            Committed::LeftAlone(LeftAlone::Finished),
            "{backend}"
        );
        assert_eq!(dump(&mut conn, session_id), first, "{backend}");

        // Forced, the same results replace the old ones row for row.
        let forced = queries::commit_results(&mut conn, &results, &samples(session_id), true)
            .expect("forced commit");
        assert_eq!(forced, Committed::Saved);
        assert_eq!(
            dump(&mut conn, session_id),
            first,
            "{backend}: rows differ after re-processing"
        );
        assert_eq!(
            all_word_count_rows(&mut conn),
            3,
            "{backend}: orphaned word counts left behind"
        );

        let read_back = queries::session_results(&mut conn, session_id).expect("results");
        let expected: Vec<_> = results
            .speakers
            .iter()
            .map(|s| (s.label.clone(), s.segment_count, s.word_counts.clone()))
            .collect();
        let got: Vec<_> = read_back
            .iter()
            .map(|(l, n, _, w)| (l.clone(), *n, w.clone()))
            .collect();
        assert_eq!(got, expected, "{backend}");
        assert_eq!(
            queries::session_transcript(&mut conn, session_id).expect("transcript"),
            results.segments
        );
    });
}

#[test]
fn a_finished_or_claimed_session_is_left_alone_unless_forced() {
    with_each_backend(|backend, pool| {
        let mut conn = pool.get().expect("connection");
        let session_id = register(&mut conn, 1);
        begin(&mut conn, session_id);
        queries::commit_results(&mut conn, &three_speakers(session_id), &[], false)
            .expect("first commit");
        let finished = dump(&mut conn, session_id);

        // Finished: a new attempt does not begin, and a late failure does not undo it.
        assert_eq!(
            queries::begin_attempt(&mut conn, session_id, false).expect("begin"),
            Begin::LeftAlone(LeftAlone::Finished),
            "{backend}"
        );
        assert_eq!(
            queries::mark_failed(&mut conn, session_id, "late").expect("mark"),
            Marked::LeftAlone(LeftAlone::Finished)
        );
        assert_eq!(dump(&mut conn, session_id), finished, "{backend}");

        diesel::update(
            session_speakers::table
                .filter(session_speakers::session_id.eq(DbUuid(session_id)))
                .filter(session_speakers::speaker_label.eq("SPEAKER_00")),
        )
        .set(session_speakers::claimed_by.eq(DbUuid(Uuid::new_v4())))
        .execute(&mut conn)
        .expect("claim a speaker");
        let claimed = dump(&mut conn, session_id);

        let mut reprocessed = three_speakers(session_id);
        reprocessed.speakers.truncate(2);
        reprocessed
            .segments
            .retain(|s| s.speaker_label != "SPEAKER_02");
        let claim = LeftAlone::Claimed(1);
        assert_eq!(
            queries::begin_attempt(&mut conn, session_id, false).expect("begin"),
            Begin::LeftAlone(claim)
        );
        assert_eq!(
            queries::commit_results(&mut conn, &reprocessed, &[], false).expect("commit"),
            Committed::LeftAlone(claim)
        );
        assert_eq!(
            queries::mark_failed(&mut conn, session_id, "late").expect("mark"),
            Marked::LeftAlone(claim)
        );
        // Even a forced job's failure never replaces a claimed session's status.
        assert_eq!(
            dump(&mut conn, session_id),
            claimed,
            "{backend}: claimed rows were touched"
        );

        assert!(matches!(
            queries::begin_attempt(&mut conn, session_id, true).expect("forced begin"),
            Begin::Started(_)
        ));
        assert_eq!(
            queries::commit_results(&mut conn, &reprocessed, &[], true).expect("forced"),
            Committed::Saved
        );
        let replaced = dump(&mut conn, session_id);
        assert_eq!(
            replaced.iter().filter(|l| l.starts_with("speaker")).count(),
            2,
            "{backend}"
        );
        assert!(
            replaced.iter().all(|l| !l.contains("SPEAKER_02")),
            "{backend}: {replaced:#?}"
        );
        assert!(
            replaced
                .iter()
                .filter(|l| l.starts_with("speaker"))
                .all(|l| l.ends_with("None")),
            "{backend}"
        );
    });
}

#[test]
fn mark_failed_keeps_the_first_500_characters() {
    with_each_backend(|backend, pool| {
        let mut conn = pool.get().expect("connection");
        let session_id = register(&mut conn, 1);
        begin(&mut conn, session_id);
        // Multi-byte characters: cutting at byte 500 would split one.
        let error = "解码失败: ".to_owned() + &"é".repeat(600);
        assert_eq!(
            queries::mark_failed(&mut conn, session_id, &error).expect("mark failed"),
            Marked::Failed
        );
        let (status, _, message) = queries::session_status(&mut conn, session_id).expect("status");
        assert_eq!(status, "failed", "{backend}");
        let message = message.expect("error message");
        assert_eq!(message.chars().count(), 500, "{backend}");
        assert!(error.starts_with(&message), "{backend}");

        begin(&mut conn, session_id);
        assert_eq!(
            queries::session_status(&mut conn, session_id).expect("status"),
            ("processing".to_owned(), 0, None),
            "{backend}: a new attempt clears the error"
        );
    });
}

#[test]
fn progress_moves_forwards_only_while_processing() {
    with_each_backend(|backend, pool| {
        let mut conn = pool.get().expect("connection");
        let session_id = register(&mut conn, 1);
        begin(&mut conn, session_id);
        queries::set_progress(&mut conn, session_id, Stage::Transcribing, 50).expect("progress");
        queries::set_progress(&mut conn, session_id, Stage::Diarizing, 100).expect("stale");
        assert_eq!(
            queries::session_status(&mut conn, session_id)
                .expect("status")
                .1,
            62,
            "{backend}: a stale update moved the bar back"
        );
        queries::commit_results(&mut conn, &three_speakers(session_id), &[], false)
            .expect("commit");
        queries::set_progress(&mut conn, session_id, Stage::Transcribing, 10).expect("late");
        assert_eq!(
            queries::session_status(&mut conn, session_id).expect("status"),
            ("ready_for_claiming".to_owned(), 100, None),
            "{backend}"
        );
    });
}

#[test]
fn unknown_sessions_and_empty_sessions_are_permanent_errors() {
    with_each_backend(|backend, pool| {
        let mut conn = pool.get().expect("connection");
        let unknown = Uuid::new_v4();
        let not_found = |err: DbError| matches!(err, DbError::SessionNotFound(id) if id == unknown);

        let err = queries::load_session(&mut conn, unknown).expect_err("unknown");
        assert_eq!(err.kind(), ErrorKind::Permanent, "{backend}");
        assert!(
            err.to_string().contains(&unknown.to_string()),
            "{backend}: {err}"
        );
        assert!(not_found(err), "{backend}");
        assert!(
            not_found(queries::begin_attempt(&mut conn, unknown, false).expect_err("begin")),
            "{backend}"
        );
        assert!(
            not_found(queries::mark_failed(&mut conn, unknown, "x").expect_err("fail")),
            "{backend}"
        );
        assert!(not_found(
            queries::commit_results(&mut conn, &three_speakers(unknown), &[], false)
                .expect_err("commit")
        ));
        assert!(not_found(
            queries::session_status(&mut conn, unknown).expect_err("status")
        ));

        let empty = register(&mut conn, 0);
        let before = queries::session_status(&mut conn, empty).expect("status");
        for err in [
            queries::load_session(&mut conn, empty).expect_err("no chunks"),
            queries::begin_attempt(&mut conn, empty, false).expect_err("no chunks"),
        ] {
            assert!(
                matches!(err, DbError::NoChunks(id) if id == empty),
                "{backend}: {err:?}"
            );
            assert_eq!(err.kind(), ErrorKind::Permanent);
        }
        assert_eq!(
            queries::session_status(&mut conn, empty).expect("status"),
            before,
            "{backend}: a refused attempt wrote nothing"
        );
    });
}

#[test]
fn chunks_load_in_recording_order() {
    with_each_backend(|backend, pool| {
        let mut conn = pool.get().expect("connection");
        let session_id = Uuid::new_v4();
        let chunk = |n: i32| {
            (
                n,
                format!("sessions/{session_id}/chunks/chunk_{n:04}.m4a"),
                None,
            )
        };
        queries::register_session(
            &mut conn,
            session_id,
            Uuid::new_v4(),
            &[chunk(2), chunk(0), chunk(10), chunk(1)],
        )
        .expect("register");
        let input = queries::load_session(&mut conn, session_id).expect("load");
        let order: Vec<i32> = input.chunks.iter().map(|c| c.chunk_number).collect();
        assert_eq!(order, [0, 1, 2, 10], "{backend}");
        assert_eq!(
            input.chunks[0].storage_path,
            format!("sessions/{session_id}/chunks/chunk_0000.m4a")
        );
    });
}

#[test]
fn active_target_words_accept_boolean_and_text_flags() {
    with_each_backend(|backend, pool| {
        let mut conn = pool.get().expect("connection");
        assert!(
            queries::active_target_words(&mut conn)
                .expect("none yet")
                .is_empty(),
            "{backend}"
        );
        let insert = match backend {
            // SQLite keeps whatever was stored: a boolean 1/0 or the text 'true'.
            "sqlite" => "INSERT INTO target_words (word, is_active) VALUES ('Lah', 1), ('lor', 0), ('SIA', 'true'), ('meh', 'false'), ('walao', NULL)",
            _ => "INSERT INTO target_words (word, is_active) VALUES ('Lah', true), ('lor', false), ('SIA', true), ('meh', false), ('walao', NULL)",
        };
        diesel::sql_query(insert)
            .execute(&mut conn)
            .expect("insert words");
        assert_eq!(
            queries::active_target_words(&mut conn).expect("words"),
            ["lah", "sia"],
            "{backend}"
        );
    });

    // The app's Postgres where is_active is text.
    let database = fresh_database();
    let mut admin = PgConnection::establish(&database.url).expect("connect");
    diesel::sql_query(
        "CREATE TABLE target_words (id BIGSERIAL PRIMARY KEY, word VARCHAR(50) UNIQUE, emoji VARCHAR(10), \
         category VARCHAR(50), display_name VARCHAR(50), is_active TEXT DEFAULT 'true', created_at TIMESTAMPTZ DEFAULT NOW())",
    )
    .execute(&mut admin)
    .expect("app-style table");
    diesel::sql_query("INSERT INTO target_words (word, is_active) VALUES ('Walao', 'true'), ('lor', 'false'), ('shiok', 'TRUE')")
        .execute(&mut admin)
        .expect("words");
    let database = TestDb::Postgres(database);
    let pool = database.migrated_pool();
    let mut conn = pool.get().expect("connection");
    assert_eq!(
        queries::active_target_words(&mut conn).expect("words"),
        ["walao", "shiok"]
    );
}
