//! One job's life in real databases: a session's status and progress, read by a separate
//! connection as the app would, move through the original's stages in order, and the results,
//! sample URLs and final status arrive together.

mod support;

use std::collections::BTreeMap;

use lahstats_worker::db::queries::{Begin, Committed};
use lahstats_worker::db::{queries, DbError, DbPool};
use lahstats_worker::error::{ErrorKind, JobError};
use lahstats_worker::session::{
    SessionResults, SpeakerResult, SpeakerSample, Stage, TranscriptSegment,
};
use support::postgres::TestDb;
use uuid::Uuid;

fn results(session_id: Uuid) -> SessionResults {
    let speaker = |label: &str, words: &[(&str, i32)]| SpeakerResult {
        label: label.to_owned(),
        segment_count: 1,
        total_duration_seconds: 4.5,
        word_counts: words
            .iter()
            .map(|(w, c)| (w.to_string(), *c))
            .collect::<BTreeMap<_, _>>(),
    };
    SessionResults {
        session_id,
        duration_seconds: 9.4,
        audio_url: None,
        speakers: vec![
            speaker("SPEAKER_00", &[("lah", 2)]),
            speaker("SPEAKER_01", &[("lor", 1)]),
        ],
        segments: vec![
            TranscriptSegment {
                speaker_label: "SPEAKER_00".into(),
                start_seconds: 0.0,
                end_seconds: 4.5,
                text: "can lah can lah".into(),
            },
            TranscriptSegment {
                speaker_label: "SPEAKER_01".into(),
                start_seconds: 4.9,
                end_seconds: 9.4,
                text: "okay lor".into(),
            },
        ],
    }
}

/// (status, progress) as the app's progress screen reads it, on a connection of its own.
fn app_view(pool: &DbPool, session_id: Uuid) -> (String, i32) {
    let mut conn = pool.get().expect("app connection");
    let (status, progress, _) = queries::session_status(&mut conn, session_id).expect("status");
    (status, progress)
}

fn drive_one_job(backend: &str, pool: &DbPool) {
    let mut conn = pool.get().expect("worker connection");
    let session_id = Uuid::new_v4();
    let chunks = vec![(
        0,
        format!("sessions/{session_id}/chunks/chunk_0000.m4a"),
        Some(9.4),
    )];
    queries::register_session(&mut conn, session_id, Uuid::new_v4(), &chunks).expect("register");

    let mut seen = Vec::new();
    let input = match queries::begin_attempt(&mut conn, session_id, false).expect("begin") {
        Begin::Started(input) => input,
        other => panic!("{backend}: {other:?}"),
    };
    assert_eq!(input.chunks.len(), 1);
    seen.push(app_view(pool, session_id));
    // The stages as the Processor reports them: analysis, then the sample clips (uploaded
    // before anything is committed), then one commit.
    let stages = [
        (Stage::Concatenating, 100),
        (Stage::Diarizing, 50),
        (Stage::Diarizing, 100),
        (Stage::Transcribing, 50),
        (Stage::Transcribing, 100),
        (Stage::SavingResults, 0),
        (Stage::GeneratingSamples, 50),
    ];
    for (stage, percent) in stages {
        queries::set_progress(&mut conn, session_id, stage, percent).expect("progress");
        seen.push(app_view(pool, session_id));
    }
    let samples = vec![SpeakerSample {
        speaker_label: "SPEAKER_00".into(),
        sample_audio_url: "file:///tmp/speaker_SPEAKER_00_sample.wav".into(),
        sample_start_time: 0.0,
    }];
    let committed =
        queries::commit_results(&mut conn, &results(session_id), &samples, false).expect("commit");
    assert_eq!(committed, Committed::Saved);
    seen.push(app_view(pool, session_id));

    let processing = |p: i32| ("processing".to_owned(), p);
    let expected = vec![
        processing(0),
        processing(10),
        processing(25),
        processing(40),
        processing(62),
        processing(85),
        processing(85),
        processing(97),
        ("ready_for_claiming".to_owned(), 100),
    ];
    assert_eq!(seen, expected, "{backend}");
    assert!(
        seen.windows(2).all(|w| w[0].1 <= w[1].1),
        "{backend}: progress went backwards"
    );

    let words = queries::active_target_words(&mut conn).expect("target words");
    assert!(words.is_empty(), "{backend}: no target words configured");

    // A permanent error travels back typed and converts into a JobError of the same kind.
    let unknown = Uuid::new_v4();
    let err = queries::mark_failed(&mut conn, unknown, "boom").expect_err("unknown session");
    assert!(matches!(err, DbError::SessionNotFound(id) if id == unknown));
    let job: JobError = err.into();
    assert_eq!(job.kind, ErrorKind::Permanent);
}

#[test]
fn status_and_progress_follow_the_stages_in_order() {
    for database in TestDb::both() {
        let pool = database.migrated_pool();
        let backend = database.backend();
        drive_one_job(backend, &pool);
    }
}
