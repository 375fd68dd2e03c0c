//! Sessions analysed while they record (issue M), on the real daemon with the real pipeline:
//! chunks uploaded one by one while the session is `recording` are taken in as they arrive,
//! and the job's results are those of the same chunks processed whole — also when a chunk is
//! uploaded twice, arrives late, is replaced, when the worker is killed and another takes
//! over, and when two workers prepare the same session.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use lahstats_worker::db::{prepared, queries, DbPool};
use lahstats_worker::job::JobPayload;
use support::daemon::{daemon_env, Daemon};
use support::speech;

/// A database, storage and key prefix shared by the daemons of one test.
struct Env {
    dir: tempfile::TempDir,
    env: Vec<(&'static str, String)>,
    pool: DbPool,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let database_url = dir.path().join("worker.db").display().to_string();
        let mut env = daemon_env(dir.path(), database_url.clone());
        env.push(("LAHSTATS_PREPARE_INTERVAL", "1s".to_string()));
        let pool = lahstats_worker::db::connect(&database_url).unwrap();
        lahstats_worker::db::run_migrations(&pool).unwrap();
        Env { dir, env, pool }
    }

    /// A daemon of this environment named `worker` (each with its own socket).
    fn daemon(&self, worker: &str) -> Daemon {
        let mut env = self.env.clone();
        env.push(("LAHSTATS_WORKER_ID", worker.to_string()));
        env.push((
            "LAHSTATS_SOCKET",
            self.dir
                .path()
                .join(format!("run-{worker}/worker.sock"))
                .display()
                .to_string(),
        ));
        let daemon = Daemon::start(self.dir.path(), &["run"], &env);
        assert!(
            daemon.wait_for_log("Pipeline loaded", Duration::from_secs(60)),
            "{worker} did not load its pipeline"
        );
        daemon
    }

    fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// Writes `samples` as a chunk file under the storage root; its storage path.
    fn chunk_file(&self, session: uuid::Uuid, name: &str, samples: &[f32]) -> String {
        let path = format!("sessions/{session}/chunks/{name}.wav");
        lahstats_worker::audio::write_wav(samples, &self.storage().join(&path)).unwrap();
        path
    }

    fn start_recording(&self) -> uuid::Uuid {
        let id = uuid::Uuid::new_v4();
        queries::start_recording(&mut self.pool.get().unwrap(), id, uuid::Uuid::nil()).unwrap();
        id
    }

    fn upload(&self, session: uuid::Uuid, number: i32, name: &str, samples: &[f32]) {
        let path = self.chunk_file(session, name, samples);
        queries::add_chunk(&mut self.pool.get().unwrap(), session, number, &path, None).unwrap();
    }

    /// Ends the recording and queues its job, as the API does.
    fn end(&self, session: uuid::Uuid) {
        queries::end_recording(&mut self.pool.get().unwrap(), session).unwrap();
        self.enqueue(session);
    }

    fn enqueue(&self, session: uuid::Uuid) {
        let prefix = self
            .env
            .iter()
            .find(|(key, _)| *key == "LAHSTATS_KEY_PREFIX")
            .map(|(_, value)| value.clone())
            .unwrap();
        let mut redis = redis::Client::open(support::worker::redis_url())
            .unwrap()
            .get_connection()
            .unwrap();
        redis::cmd("LPUSH")
            .arg(format!("{prefix}:processing"))
            .arg(JobPayload::new(session).to_json())
            .query::<i64>(&mut redis)
            .unwrap();
    }

    /// The same chunks registered whole, as a session that was never prepared, and queued.
    fn whole(&self, chunks: &[&[f32]]) -> uuid::Uuid {
        let id = uuid::Uuid::new_v4();
        let rows: Vec<(i32, String, Option<f64>)> = chunks
            .iter()
            .enumerate()
            .map(|(i, samples)| {
                (
                    i as i32,
                    self.chunk_file(id, &format!("whole_{i}"), samples),
                    None,
                )
            })
            .collect();
        queries::register_session(&mut self.pool.get().unwrap(), id, uuid::Uuid::nil(), &rows)
            .unwrap();
        self.enqueue(id);
        id
    }

    fn steps(&self, session: uuid::Uuid) -> Vec<(i32, i32)> {
        prepared::prepared_steps(&mut self.pool.get().unwrap(), session, false)
            .unwrap()
            .into_iter()
            .map(|step| (step.step, step.chunk_number))
            .collect()
    }

    /// Waits until the session's kept steps are `expected` ((step, chunk_number) pairs).
    fn wait_steps(&self, session: uuid::Uuid, expected: &[(i32, i32)]) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if self.steps(session) == expected {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "kept steps {:?}, expected {expected:?}",
            self.steps(session)
        );
    }

    fn wait_ready(&self, session: uuid::Uuid) {
        let deadline = Instant::now() + Duration::from_secs(300);
        while Instant::now() < deadline {
            let (status, _, error) =
                queries::session_status(&mut self.pool.get().unwrap(), session).unwrap();
            match status.as_str() {
                "ready_for_claiming" => return,
                "failed" => panic!("session {session} failed: {error:?}"),
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        panic!("session {session} not ready in time");
    }

    /// Speakers (label, turns, talk time, counts) and transcript of a finished session.
    fn results(&self, session: uuid::Uuid) -> Results {
        let mut conn = self.pool.get().unwrap();
        Results {
            speakers: queries::session_results(&mut conn, session).unwrap(),
            transcript: queries::session_transcript(&mut conn, session)
                .unwrap()
                .into_iter()
                .map(|s| {
                    format!(
                        "{} {:.2}-{:.2} {}",
                        s.speaker_label, s.start_seconds, s.end_seconds, s.text
                    )
                })
                .collect(),
        }
    }
}

#[derive(Debug, PartialEq)]
struct Results {
    speakers: Vec<queries::SpeakerSummary>,
    transcript: Vec<String>,
}

/// A three-voice conversation cut into `parts` chunks of equal length, the cuts falling
/// wherever they fall (mid-word, as a phone's timer cuts).
fn conversation_chunks(turns: usize, parts: usize) -> Vec<Vec<f32>> {
    let conversation = speech::round_robin(3, turns);
    let size = conversation.samples.len().div_ceil(parts);
    conversation
        .samples
        .chunks(size)
        .map(<[f32]>::to_vec)
        .collect()
}

fn slices(chunks: &[Vec<f32>]) -> Vec<&[f32]> {
    chunks.iter().map(Vec::as_slice).collect()
}

#[test]
fn a_session_prepared_while_it_records_gets_the_results_of_the_whole_run() {
    let env = Env::new();
    let daemon = env.daemon("w1");
    let chunks = conversation_chunks(15, 3);
    let session = env.start_recording();
    env.upload(session, 0, "chunk_0000", &chunks[0]);
    env.wait_steps(session, &[(1, 0)]);
    env.upload(session, 1, "chunk_0001", &chunks[1]);
    // The phone retried the upload: the same chunk again, under a new name.
    env.upload(session, 1, "chunk_0001_again", &chunks[1]);
    env.wait_steps(session, &[(1, 0), (2, 1)]);
    env.upload(session, 2, "chunk_0002", &chunks[2]);
    env.end(session);
    let whole = env.whole(&slices(&chunks));
    env.wait_ready(session);
    env.wait_ready(whole);

    let (prepared, processed) = (env.results(session), env.results(whole));
    assert!(!prepared.transcript.is_empty(), "nothing heard");
    assert!(prepared.speakers.len() >= 2, "{prepared:?}");
    assert_eq!(prepared, processed, "prepared and whole runs differ");
    // The last chunk may be taken in before the job is.
    assert!(
        daemon.has_log("2 of 3 chunk(s) analysed while it recorded")
            || daemon.has_log("3 of 3 chunk(s) analysed while it recorded"),
        "the job did not resume from the prepared steps"
    );
    assert!(
        env.steps(session).is_empty(),
        "steps kept after the results"
    );
}

#[test]
fn a_restarted_worker_resumes_and_takes_late_and_replaced_chunks_in_again() {
    let env = Env::new();
    let chunks = conversation_chunks(16, 4);
    let replacement = conversation_chunks(10, 4).swap_remove(2);
    let session = env.start_recording();
    let mut first = env.daemon("w1");
    env.upload(session, 0, "chunk_0000", &chunks[0]);
    env.wait_steps(session, &[(1, 0)]);
    // Chunk 2 arrives before chunk 1.
    env.upload(session, 2, "chunk_0002", &chunks[2]);
    env.wait_steps(session, &[(1, 0), (2, 2)]);
    first.signal(libc::SIGKILL);
    first.wait_exit(Duration::from_secs(10));

    env.upload(session, 1, "chunk_0001", &chunks[1]);
    let second = env.daemon("w2");
    env.wait_steps(session, &[(1, 0), (2, 1), (3, 2)]);
    assert!(second.has_log("prepared step(s) restored"), "not restored");
    assert!(second.has_log("the chunks changed after the first 1"));
    // Chunk 2 replaced by another recording.
    env.upload(session, 2, "chunk_0002_replaced", &replacement);
    env.wait_steps(session, &[(1, 0), (2, 1), (3, 2)]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !second.has_log("the chunks changed after the first 2") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(second.has_log("the chunks changed after the first 2"));
    env.wait_steps(session, &[(1, 0), (2, 1), (3, 2)]);
    env.upload(session, 3, "chunk_0003", &chunks[3]);
    env.end(session);
    let whole = env.whole(&[&chunks[0], &chunks[1], &replacement, &chunks[3]]);
    env.wait_ready(session);
    env.wait_ready(whole);
    assert_eq!(env.results(session), env.results(whole));
    assert!(
        second.has_log("3 of 4 chunk(s) analysed while it recorded")
            || second.has_log("4 of 4 chunk(s) analysed while it recorded")
    );
}

#[test]
fn two_workers_preparing_one_session_keep_each_step_once() {
    let env = Env::new();
    let (_one, _two) = (env.daemon("w1"), env.daemon("w2"));
    let chunks = conversation_chunks(12, 3);
    let session = env.start_recording();
    for (number, samples) in chunks.iter().enumerate().take(2) {
        env.upload(
            session,
            number as i32,
            &format!("chunk_{number:04}"),
            samples,
        );
        let expected: Vec<(i32, i32)> = (0..=number as i32).map(|n| (n + 1, n)).collect();
        env.wait_steps(session, &expected);
    }
    env.upload(session, 2, "chunk_0002", &chunks[2]);
    env.end(session);
    let whole = env.whole(&slices(&chunks));
    env.wait_ready(session);
    env.wait_ready(whole);
    assert_eq!(env.results(session), env.results(whole));
}
