//! Sessions as the app makes them: two-voice espeak-ng conversations with Singlish words, stored
//! under the storage root as the API stores a chunk, registered in the database and pushed onto
//! the queue with the API's payload (plus `enqueued_at_ms`, which the worker keeps and logs).
//! Also reads back what the workers saved, for the checks.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use uuid::Uuid;

use lahstats_worker::db::queries::SpeakerSummary;

/// Lines of the conversations: (first voice's line, second voice's line).
pub const CONVERSATIONS: [(&str, &str); 4] = [
    (
        "Walao, the queue so long lah.",
        "Cannot lor, very shiok one.",
    ),
    (
        "Aiyo, I forgot my wallet sia.",
        "Okay lah, I belanja you kopi.",
    ),
    (
        "Alamak, the train late again.",
        "Relax lah, we go makan first.",
    ),
    ("Eh, you so kiasu one.", "Paiseh lor, I chope the table."),
];

/// Very short exchanges for the load test (1–2 s each).
pub const SHORT_EXCHANGES: [(&str, &str); 4] = [
    ("Walao.", "Shiok lah."),
    ("Aiyo.", "Okay lor."),
    ("Alamak.", "Can lah."),
    ("Sian.", "Paiseh."),
];

const FIRST_VOICE: &[&str] = &["-v", "en-us+m3", "-p", "40", "-s", "160"];
const SECOND_VOICE: &[&str] = &["-v", "en-gb+f2", "-p", "70", "-s", "150"];

/// One recording every session of its kind shares.
#[derive(Debug, Clone)]
pub struct Clip {
    pub path: PathBuf,
    pub seconds: f64,
}

fn run(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("cannot run {command:?}: {err}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// The two lines spoken by two voices with `gap` seconds between, as a 16 kHz mono WAV.
pub fn two_voice_clip(dir: &Path, name: &str, lines: (&str, &str), gap: f64) -> Clip {
    std::fs::create_dir_all(dir).expect("clip dir");
    let first = dir.join(format!("{name}.a.wav"));
    let second = dir.join(format!("{name}.b.wav"));
    run(Command::new("espeak-ng")
        .args(FIRST_VOICE)
        .arg("-w")
        .arg(&first)
        .arg(lines.0));
    run(Command::new("espeak-ng")
        .args(SECOND_VOICE)
        .arg("-w")
        .arg(&second)
        .arg(lines.1));
    // espeak-ng leaves silence around each line: trim it, then put back exactly what we want.
    let trim = [
        "silence", "1", "0.02", "0.5%", "reverse", "silence", "1", "0.02", "0.5%", "reverse",
    ];
    let padded = dir.join(format!("{name}.a.padded.wav"));
    run(Command::new("sox")
        .arg(&first)
        .arg(&padded)
        .args(trim)
        .args(["pad", "0.2", &format!("{gap}")]));
    let trimmed = dir.join(format!("{name}.b.trimmed.wav"));
    run(Command::new("sox")
        .arg(&second)
        .arg(&trimmed)
        .args(trim)
        .args(["pad", "0", "0.2"]));
    let path = dir.join(format!("{name}.wav"));
    run(Command::new("sox")
        .arg(&padded)
        .arg(&trimmed)
        .args(["-r", "16000", "-c", "1", "-b", "16"])
        .arg(&path));
    let seconds: f64 = run(Command::new("soxi").arg("-D").arg(&path))
        .parse()
        .expect("soxi duration");
    Clip { path, seconds }
}

/// `count` clips from `lines` (cycled), each checked to last within `range` seconds.
pub fn make_clips(
    dir: &Path,
    lines: &[(&str, &str)],
    count: usize,
    gap: f64,
    range: (f64, f64),
) -> Vec<Clip> {
    (0..count)
        .map(|i| {
            let clip = two_voice_clip(dir, &format!("clip{i}"), lines[i % lines.len()], gap);
            assert!(
                clip.seconds >= range.0 && clip.seconds <= range.1,
                "clip {} lasts {:.2}s, outside {:?}",
                clip.path.display(),
                clip.seconds,
                range
            );
            clip
        })
        .collect()
}

/// What one session's results look like once saved.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultSet {
    /// (label, segment count, talk seconds, word → count), in label order.
    pub speakers: Vec<SpeakerSummary>,
    pub transcript_segments: usize,
}

/// Registers sessions and pushes their jobs; reads the database back.
pub struct Sessions {
    storage: PathBuf,
    database_url: String,
    redis_url: String,
    processing_key: String,
    pool: lahstats_worker::db::DbPool,
}

impl Sessions {
    pub fn new(storage: &Path, database_url: &str, redis_url: &str, prefix: &str) -> Sessions {
        let pool = lahstats_worker::db::connect(database_url).expect("database pool");
        lahstats_worker::db::run_migrations(&pool).expect("migrations on the private Postgres");
        Sessions {
            storage: storage.to_path_buf(),
            database_url: database_url.to_string(),
            redis_url: redis_url.to_string(),
            processing_key: format!("{prefix}:processing"),
            pool,
        }
    }

    /// Stores the clip as the session's one chunk and registers the session (status
    /// `processing`), as the API does when a recording ends.
    pub fn register(&self, session: Uuid, clip: &Clip) -> Result<(), String> {
        let storage_path = format!("sessions/{session}/chunks/chunk_0000.wav");
        let dest = self.storage.join(&storage_path);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        std::fs::copy(&clip.path, &dest).map_err(|e| e.to_string())?;
        let mut conn = self.pool.get().map_err(|e| e.to_string())?;
        lahstats_worker::db::queries::register_session(
            &mut conn,
            session,
            Uuid::nil(),
            &[(0, storage_path, Some(clip.seconds))],
        )
        .map_err(|e| e.to_string())
    }

    /// LPUSHes the API's payload, stamped with the time of the push.
    pub fn enqueue(&self, session: Uuid) -> Result<(), String> {
        let client = redis::Client::open(self.redis_url.as_str()).map_err(|e| e.to_string())?;
        let mut conn = client
            .get_connection_with_timeout(std::time::Duration::from_secs(1))
            .map_err(|e| e.to_string())?;
        let now = chrono::Utc::now();
        let payload = serde_json::json!({
            "session_id": session.to_string(),
            "queued_at": lahstats_worker::job::api_timestamp(now),
            "enqueued_at_ms": now.timestamp_millis(),
        });
        redis::cmd("LPUSH")
            .arg(&self.processing_key)
            .arg(payload.to_string())
            .query::<()>(&mut conn)
            .map_err(|e| e.to_string())
    }

    fn pg(&self) -> Result<PgConnection, String> {
        PgConnection::establish(&self.database_url).map_err(|e| e.to_string())
    }

    /// Every session's status.
    pub fn statuses(&self) -> Result<HashMap<Uuid, String>, String> {
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = Text)]
            id: String,
            #[diesel(sql_type = Text)]
            status: String,
        }
        let mut pg = self.pg()?;
        let rows: Vec<Row> =
            diesel::sql_query("SELECT id::text AS id, status::text AS status FROM sessions")
                .load(&mut pg)
                .map_err(|e| e.to_string())?;
        Ok(rows
            .into_iter()
            .filter_map(|row| Some((Uuid::parse_str(&row.id).ok()?, row.status)))
            .collect())
    }

    /// How many sessions are in each status.
    pub fn status_counts(&self) -> Result<HashMap<String, i64>, String> {
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = Text)]
            status: String,
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let mut pg = self.pg()?;
        let rows: Vec<Row> = diesel::sql_query(
            "SELECT status::text AS status, count(*) AS n FROM sessions GROUP BY 1",
        )
        .load(&mut pg)
        .map_err(|e| e.to_string())?;
        Ok(rows.into_iter().map(|r| (r.status, r.n)).collect())
    }

    /// The session's saved speakers, word counts and transcript size.
    pub fn results(&self, session: Uuid) -> Result<ResultSet, String> {
        let mut conn = self.pool.get().map_err(|e| e.to_string())?;
        let speakers = lahstats_worker::db::queries::session_results(&mut conn, session)
            .map_err(|e| e.to_string())?;
        let transcript = lahstats_worker::db::queries::session_transcript(&mut conn, session)
            .map_err(|e| e.to_string())?;
        Ok(ResultSet {
            speakers,
            transcript_segments: transcript.len(),
        })
    }

    /// Rows per session in the result tables, straight from SQL (a duplicate shows even where
    /// the query helpers would fold it).
    pub fn raw_row_counts(&self, session: Uuid) -> Result<(i64, i64, i64), String> {
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = BigInt)]
            speakers: i64,
            #[diesel(sql_type = BigInt)]
            words: i64,
            #[diesel(sql_type = BigInt)]
            segments: i64,
        }
        let mut pg = self.pg()?;
        pg.batch_execute("SET statement_timeout = '10s'")
            .map_err(|e| e.to_string())?;
        let sql = format!(
            "SELECT (SELECT count(*) FROM session_speakers WHERE session_id = '{session}') AS speakers, \
             (SELECT count(*) FROM speaker_word_counts w JOIN session_speakers s ON s.id = w.session_speaker_id \
              WHERE s.session_id = '{session}') AS words, \
             (SELECT count(*) FROM transcript_segments WHERE session_id = '{session}') AS segments"
        );
        let row: Row = diesel::sql_query(sql)
            .get_result(&mut pg)
            .map_err(|e| e.to_string())?;
        Ok((row.speakers, row.words, row.segments))
    }
}
