//! The DbWriter actor on real databases: a session's status and progress, read by a separate
//! connection as the app would, move through the original's stages in order.

mod support;

use std::collections::BTreeMap;

use actix::prelude::*;
use lahstats_worker::db::writer::{
    FinishSession, LoadSession, LoadTargetWords, MarkFailed, MarkProcessing, RegisterSession,
    ReportProgress, SaveResults, Shutdown,
};
use lahstats_worker::db::{queries, DbError, DbPool, DbWriter};
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

async fn drive_one_job(backend: &str, pool: DbPool) {
    let writer_pool = pool.clone();
    let writer = SyncArbiter::start(1, move || DbWriter::new(writer_pool.clone()));
    let session_id = Uuid::new_v4();
    let chunks = vec![(
        0,
        format!("sessions/{session_id}/chunks/chunk_0000.m4a"),
        Some(9.4),
    )];
    writer
        .send(RegisterSession {
            session_id,
            started_by: Uuid::new_v4(),
            chunks,
        })
        .await
        .expect("mailbox")
        .expect("register");

    let mut seen = Vec::new();
    writer
        .send(MarkProcessing { session_id })
        .await
        .expect("mailbox")
        .expect("mark processing");
    seen.push(app_view(&pool, session_id));
    let input = writer
        .send(LoadSession { session_id })
        .await
        .expect("mailbox")
        .expect("load");
    assert_eq!(input.chunks.len(), 1);
    let stages = [
        (Stage::Concatenating, 100),
        (Stage::Diarizing, 50),
        (Stage::Diarizing, 100),
        (Stage::Transcribing, 50),
        (Stage::Transcribing, 100),
        (Stage::SavingResults, 0),
    ];
    for (stage, percent) in stages {
        writer
            .send(ReportProgress {
                session_id,
                stage,
                percent,
            })
            .await
            .expect("mailbox")
            .expect("progress");
        seen.push(app_view(&pool, session_id));
    }
    writer
        .send(SaveResults {
            results: results(session_id),
            force: false,
        })
        .await
        .expect("mailbox")
        .expect("save");
    seen.push(app_view(&pool, session_id));
    writer
        .send(ReportProgress {
            session_id,
            stage: Stage::GeneratingSamples,
            percent: 50,
        })
        .await
        .expect("mailbox")
        .expect("progress");
    seen.push(app_view(&pool, session_id));
    let samples = vec![SpeakerSample {
        speaker_label: "SPEAKER_00".into(),
        sample_audio_url: "file:///tmp/speaker_SPEAKER_00_sample.wav".into(),
        sample_start_time: 0.0,
    }];
    writer
        .send(FinishSession {
            session_id,
            samples,
        })
        .await
        .expect("mailbox")
        .expect("finish");
    seen.push(app_view(&pool, session_id));

    let processing = |p: i32| ("processing".to_owned(), p);
    let expected = vec![
        processing(0),
        processing(10),
        processing(25),
        processing(40),
        processing(62),
        processing(85),
        processing(85),
        processing(95),
        processing(97),
        ("ready_for_claiming".to_owned(), 100),
    ];
    assert_eq!(seen, expected, "{backend}");
    assert!(
        seen.windows(2).all(|w| w[0].1 <= w[1].1),
        "{backend}: progress went backwards"
    );

    let words = writer
        .send(LoadTargetWords)
        .await
        .expect("mailbox")
        .expect("target words");
    assert!(words.is_empty(), "{backend}: no target words configured");

    // A permanent error travels back typed and converts into a JobError of the same kind.
    let unknown = Uuid::new_v4();
    let err = writer
        .send(MarkFailed {
            session_id: unknown,
            error: "boom".into(),
        })
        .await
        .expect("mailbox")
        .expect_err("unknown session");
    assert!(matches!(err, DbError::SessionNotFound(id) if id == unknown));
    let job: JobError = err.into();
    assert_eq!(job.kind, ErrorKind::Permanent);

    writer.send(Shutdown).await.expect("shutdown replies");
}

#[test]
fn status_and_progress_follow_the_stages_in_order() {
    for database in TestDb::both() {
        let pool = database.migrated_pool();
        let backend = database.backend();
        System::new().block_on(drive_one_job(backend, pool));
    }
}
