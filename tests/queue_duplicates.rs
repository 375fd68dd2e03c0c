//! Duplicate jobs — a double tap on "End", an API retry — never make the app's data worse, on a
//! real Redis and a real Postgres: a duplicate of a finished session is acknowledged and counted
//! without running the pipeline again or touching the session (its `updated_at` included), and a
//! duplicate of a claimed session leaves the claims and the status exactly as they were.

mod support;

use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use lahstats_worker::app::GetWorkers;
use lahstats_worker::db::schema::{session_speakers, sessions};
use lahstats_worker::db::sql_types::{DbTime, DbUuid};
use lahstats_worker::job::JobPayload;
use lahstats_worker::stats::reporter::GetStats;
use lahstats_worker::stats::StatsSnapshot;
use support::postgres::{fresh_database, TempDatabase};
use support::worker::*;
use uuid::Uuid;

struct Run {
    _database: TempDatabase,
    _dir: tempfile::TempDir,
    config: lahstats_worker::config::Config,
    script: Arc<Script>,
    worker: InProcessWorker,
}

impl Run {
    fn start(worker_id: &str) -> Run {
        let database = fresh_database();
        let dir = tempdir();
        let url = format!("--database-url={}", database.url);
        let config = test_config(dir.path(), worker_id, &[&url]);
        let script = Arc::new(Script::default());
        let worker = InProcessWorker::start(config.clone(), scripted_factory(script.clone()));
        Run {
            _database: database,
            _dir: dir,
            config,
            script,
            worker,
        }
    }

    fn stats(&self) -> StatsSnapshot {
        let workers = futures::executor::block_on(self.worker.supervisor.send(GetWorkers)).unwrap();
        futures::executor::block_on(workers.stats.send(GetStats)).unwrap()
    }

    fn push(&self, raw: &str) {
        queue_for(&self.config).enqueue(raw).unwrap();
    }

    /// The session row as the app reads it, `updated_at` included: any write shows.
    fn session_row(&self, id: Uuid) -> (String, Option<i32>, Option<String>, Option<DbTime>) {
        let pool = lahstats_worker::db::connect(&self.config.database_url).unwrap();
        let mut conn = pool.get().unwrap();
        sessions::table
            .find(DbUuid(id))
            .select((
                sessions::status,
                sessions::progress,
                sessions::error_message,
                sessions::updated_at,
            ))
            .first(&mut conn)
            .unwrap()
    }

    /// (row id, label, sample URL, claimed by) per speaker.
    fn speakers(&self, id: Uuid) -> Vec<(DbUuid, String, Option<String>, Option<DbUuid>)> {
        let pool = lahstats_worker::db::connect(&self.config.database_url).unwrap();
        let mut conn = pool.get().unwrap();
        session_speakers::table
            .filter(session_speakers::session_id.eq(DbUuid(id)))
            .order(session_speakers::speaker_label)
            .select((
                session_speakers::id,
                session_speakers::speaker_label,
                session_speakers::sample_audio_url,
                session_speakers::claimed_by,
            ))
            .load(&mut conn)
            .unwrap()
    }

    /// Jobs left anywhere in the queue's lists: waiting, in flight, retrying, failed.
    fn residue(&self) -> (usize, usize, usize, usize) {
        let keys = queue_for(&self.config).keys;
        let mut conn = redis(&self.config);
        let len = |conn: &mut redis::Connection, key: &str| -> usize {
            redis::cmd("LLEN").arg(key).query(conn).unwrap()
        };
        let retry: usize = redis::cmd("ZCARD")
            .arg(&keys.retry)
            .query(&mut conn)
            .unwrap();
        (
            len(&mut conn, &keys.processing),
            len(&mut conn, &keys.inflight()),
            retry,
            len(&mut conn, &keys.failed),
        )
    }

    /// Processes `id` once and waits until it is settled.
    fn finish_once(&self, id: Uuid) -> String {
        let raw = JobPayload::new(id).to_json();
        self.push(&raw);
        assert!(
            wait_until(Duration::from_secs(10), || self.stats().succeeded == 1),
            "the first job never succeeded"
        );
        assert_eq!(self.session_row(id).0, "ready_for_claiming");
        raw
    }

    fn stop(self) {
        assert_eq!(self.worker.stop(), 0);
        clean_prefix(&self.config);
    }
}

#[test]
fn a_duplicate_after_completion_is_acknowledged_without_running_again() {
    let run = Run::start("dup-done-w1");
    let session = register_session(&run.config, 1);
    let raw = run.finish_once(session);
    let (row, speakers) = (run.session_row(session), run.speakers(session));

    // The very same bytes again, as a double tap on "End" pushes them.
    run.push(&raw);
    assert!(
        wait_until(Duration::from_secs(10), || run.stats().duplicates == 1),
        "the duplicate was never acknowledged as one (pipeline runs: {})",
        run.script.calls_for(session).len()
    );
    assert_eq!(
        run.script.calls_for(session).len(),
        1,
        "the duplicate ran the pipeline again"
    );
    assert_eq!(
        run.session_row(session),
        row,
        "the finished session was written to (status, progress or updated_at changed)"
    );
    assert_eq!(run.speakers(session), speakers, "its results were replaced");
    let stats = run.stats();
    assert_eq!((stats.received, stats.succeeded, stats.failed), (2, 1, 0));
    assert_eq!(
        run.residue(),
        (0, 0, 0, 0),
        "the duplicate left a trace in Redis"
    );
    run.stop();
}

#[test]
fn a_duplicate_after_a_claim_leaves_claims_and_status_untouched() {
    let run = Run::start("dup-claim-w1");
    let session = register_session(&run.config, 1);
    run.finish_once(session);

    // A friend claims SPEAKER_00, as the app does.
    let friend = Uuid::new_v4();
    {
        let pool = lahstats_worker::db::connect(&run.config.database_url).unwrap();
        let mut conn = pool.get().unwrap();
        let claimed = diesel::update(
            session_speakers::table
                .filter(session_speakers::session_id.eq(DbUuid(session)))
                .filter(session_speakers::speaker_label.eq("SPEAKER_00")),
        )
        .set((
            session_speakers::claimed_by.eq(DbUuid(friend)),
            session_speakers::claimed_at.eq(DbTime::now()),
            session_speakers::claim_type.eq("self"),
        ))
        .execute(&mut conn)
        .unwrap();
        assert_eq!(claimed, 1);
    }
    let (row, speakers) = (run.session_row(session), run.speakers(session));
    assert_eq!(speakers[0].3, Some(DbUuid(friend)));

    // The API retries its push: a new payload for the same session.
    run.push(&JobPayload::new(session).to_json());
    assert!(
        wait_until(Duration::from_secs(10), || run.stats().duplicates == 1),
        "the duplicate was never acknowledged as one (status now {:?})",
        run.session_row(session).0
    );
    assert_eq!(
        run.script.calls_for(session).len(),
        1,
        "the pipeline ran again"
    );
    assert_eq!(
        run.session_row(session),
        row,
        "the claimed session's status, progress, error or updated_at changed"
    );
    assert_eq!(
        run.speakers(session),
        speakers,
        "the claimed speakers were replaced or unclaimed"
    );
    let stats = run.stats();
    assert_eq!((stats.succeeded, stats.failed), (1, 0));
    assert_eq!(
        run.residue(),
        (0, 0, 0, 0),
        "the duplicate left a trace in Redis"
    );
    run.stop();
}
