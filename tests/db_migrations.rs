//! The embedded migrations against real databases: empty Postgres, empty SQLite, and a Postgres
//! that already holds the app's own `sessions` table with data.

mod support;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Text;
use lahstats_worker::db::{self, DbConnection};
use support::postgres::{fresh_database, TestDb};

const WORKER_TABLES: [&str; 7] = [
    "audio_chunks",
    "prepared_steps",
    "session_speakers",
    "sessions",
    "speaker_word_counts",
    "target_words",
    "transcript_segments",
];

#[derive(QueryableByName)]
struct Line {
    #[diesel(sql_type = Text)]
    line: String,
}

fn lines(conn: &mut PgConnection, sql: &str) -> Vec<String> {
    diesel::sql_query(sql)
        .load::<Line>(conn)
        .expect("query")
        .into_iter()
        .map(|row| row.line)
        .collect()
}

fn postgres_tables(conn: &mut PgConnection) -> Vec<String> {
    lines(
        conn,
        "SELECT table_name::text AS line FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_name NOT LIKE '\\_\\_%' ORDER BY 1",
    )
}

#[test]
fn migrations_apply_to_an_empty_postgres_once() {
    let database = fresh_database();
    let pool = db::connect(&database.url).expect("pool");

    let first = db::run_migrations(&pool).expect("first run");
    assert_eq!(first.len(), 3, "all three migrations applied: {first:?}");
    let second = db::run_migrations(&pool).expect("second run");
    assert!(second.is_empty(), "second run applied {second:?}");

    let mut conn = PgConnection::establish(&database.url).expect("connect");
    assert_eq!(postgres_tables(&mut conn), WORKER_TABLES);
    let unique = lines(
        &mut conn,
        "SELECT conrelid::regclass::text || ' ' || pg_get_constraintdef(oid) AS line \
         FROM pg_constraint WHERE contype = 'u' ORDER BY 1",
    );
    assert!(
        unique.contains(&"session_speakers UNIQUE (session_id, speaker_label)".to_owned()),
        "{unique:?}"
    );
    assert!(
        unique.contains(&"speaker_word_counts UNIQUE (session_speaker_id, word)".to_owned()),
        "{unique:?}"
    );
    let types = lines(
        &mut conn,
        "SELECT table_name || '.' || column_name || ' ' || data_type AS line \
         FROM information_schema.columns WHERE table_schema = 'public' \
         AND column_name IN ('id', 'total_duration_seconds', 'started_at') ORDER BY 1",
    );
    assert!(types.contains(&"sessions.id uuid".to_owned()), "{types:?}");
    assert!(
        types.contains(&"speaker_word_counts.id bigint".to_owned()),
        "{types:?}"
    );
    assert!(
        types.contains(&"session_speakers.total_duration_seconds numeric".to_owned()),
        "{types:?}"
    );
    assert!(
        types.contains(&"sessions.started_at timestamp with time zone".to_owned()),
        "{types:?}"
    );
}

#[test]
fn migrations_apply_to_an_empty_sqlite_once() {
    let database = TestDb::sqlite();
    let pool = db::connect(&database.url()).expect("pool (creates the directory)");

    let first = db::run_migrations(&pool).expect("first run");
    assert_eq!(first.len(), 3, "all three migrations applied: {first:?}");
    let second = db::run_migrations(&pool).expect("second run");
    assert!(second.is_empty(), "second run applied {second:?}");

    let mut conn = pool.get().expect("connection");
    let DbConnection::Sqlite(sqlite) = &mut *conn else {
        panic!("expected SQLite")
    };
    let tables: Vec<String> = diesel::sql_query(
        "SELECT name AS line FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '\\_\\_%' ESCAPE '\\' ORDER BY 1",
    )
    .load::<Line>(sqlite)
    .expect("tables")
    .into_iter()
    .map(|row| row.line)
    .collect();
    assert_eq!(tables, WORKER_TABLES);

    let pragma = |conn: &mut SqliteConnection, sql: &str| -> String {
        diesel::sql_query(sql)
            .load::<Line>(conn)
            .expect("pragma")
            .remove(0)
            .line
    };
    assert_eq!(
        pragma(
            sqlite,
            "SELECT CAST(journal_mode AS TEXT) AS line FROM pragma_journal_mode"
        ),
        "wal"
    );
    assert_eq!(
        pragma(
            sqlite,
            "SELECT CAST(foreign_keys AS TEXT) AS line FROM pragma_foreign_keys"
        ),
        "1"
    );
    assert_eq!(
        pragma(
            sqlite,
            "SELECT CAST(timeout AS TEXT) AS line FROM pragma_busy_timeout"
        ),
        "5000"
    );
}

/// The app's database already has `sessions` (with columns of its own and rows in it) and a
/// `target_words` whose `is_active` is text: the migrations must leave both exactly as they are.
#[test]
fn migrations_leave_the_apps_existing_tables_untouched() {
    let database = fresh_database();
    let mut conn = PgConnection::establish(&database.url).expect("connect");
    conn.batch_execute(
        "CREATE TABLE sessions (
            id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
            group_id UUID,
            started_by UUID NOT NULL,
            title VARCHAR(200),
            status VARCHAR(50) NOT NULL DEFAULT 'recording',
            started_at TIMESTAMPTZ DEFAULT NOW(),
            ended_at TIMESTAMPTZ,
            progress INTEGER DEFAULT 0,
            audio_url TEXT,
            duration_seconds INTEGER,
            error_message TEXT,
            location JSONB,
            created_at TIMESTAMPTZ DEFAULT NOW(),
            updated_at TIMESTAMPTZ DEFAULT NOW()
         );
         INSERT INTO sessions (id, started_by, title, status, location, duration_seconds) VALUES
            ('11111111-1111-1111-1111-111111111111', gen_random_uuid(), 'Lunch at the hawker centre', 'ready_for_claiming', '{\"lat\": 1.3}', 1800),
            ('22222222-2222-2222-2222-222222222222', gen_random_uuid(), 'Team stand-up', 'recording', NULL, NULL);
         CREATE TABLE target_words (
            id BIGSERIAL PRIMARY KEY,
            word VARCHAR(50) UNIQUE,
            emoji VARCHAR(10),
            category VARCHAR(50),
            display_name VARCHAR(50),
            is_active TEXT DEFAULT 'true',
            created_at TIMESTAMPTZ DEFAULT NOW()
         );
         INSERT INTO target_words (word, is_active) VALUES ('lah', 'true'), ('lor', 'false');",
    )
    .expect("app-style tables");

    let columns_sql = "SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable \
                       || ' ' || coalesce(column_default, '-') AS line FROM information_schema.columns \
                       WHERE table_name IN ('sessions', 'target_words') ORDER BY table_name, ordinal_position";
    let rows_sql = "SELECT row_to_json(s)::text AS line FROM sessions s ORDER BY id";
    let words_sql = "SELECT row_to_json(t)::text AS line FROM target_words t ORDER BY id";
    let columns_before = lines(&mut conn, columns_sql);
    let rows_before = lines(&mut conn, rows_sql);
    let words_before = lines(&mut conn, words_sql);
    assert_eq!(rows_before.len(), 2);

    let pool = db::connect(&database.url).expect("pool");
    let applied = db::run_migrations(&pool).expect("migrations on the app's database");
    assert_eq!(applied.len(), 3);

    assert_eq!(
        lines(&mut conn, columns_sql),
        columns_before,
        "columns changed"
    );
    assert_eq!(
        lines(&mut conn, rows_sql),
        rows_before,
        "session rows changed"
    );
    assert_eq!(
        lines(&mut conn, words_sql),
        words_before,
        "target words changed"
    );
    assert_eq!(
        postgres_tables(&mut conn),
        WORKER_TABLES,
        "missing tables were created"
    );
    assert!(db::run_migrations(&pool).expect("second run").is_empty());
}

/// `schema.rs` is hand-kept in the form `diesel print-schema` gives: its tables list exactly the
/// migrated Postgres columns, in the database's order.
#[test]
fn schema_rs_lists_the_migrated_postgres_columns_in_order() {
    use diesel::pg::Pg;
    use lahstats_worker::db::schema::*;

    fn schema_columns<Q: diesel::query_builder::QueryFragment<Pg>>(query: Q) -> Vec<String> {
        let sql = diesel::debug_query::<Pg, _>(&query).to_string();
        let select = sql
            .split(" FROM ")
            .next()
            .unwrap_or_default()
            .trim_start_matches("SELECT ");
        select
            .split(", ")
            .map(|column| {
                column
                    .rsplit('.')
                    .next()
                    .unwrap_or_default()
                    .trim_matches('"')
                    .to_owned()
            })
            .collect()
    }

    let database = fresh_database();
    let pool = db::connect(&database.url).expect("pool");
    db::run_migrations(&pool).expect("migrations");
    let mut conn = PgConnection::establish(&database.url).expect("connect");
    let mut database_columns = |table: &str| {
        lines(
            &mut conn,
            &format!(
                "SELECT column_name::text AS line FROM information_schema.columns \
                 WHERE table_name = '{table}' ORDER BY ordinal_position"
            ),
        )
    };
    let expected = [
        (
            "audio_chunks",
            schema_columns(audio_chunks::table.select(audio_chunks::all_columns)),
        ),
        (
            "prepared_steps",
            schema_columns(prepared_steps::table.select(prepared_steps::all_columns)),
        ),
        (
            "session_speakers",
            schema_columns(session_speakers::table.select(session_speakers::all_columns)),
        ),
        (
            "sessions",
            schema_columns(sessions::table.select(sessions::all_columns)),
        ),
        (
            "speaker_word_counts",
            schema_columns(speaker_word_counts::table.select(speaker_word_counts::all_columns)),
        ),
        (
            "target_words",
            schema_columns(target_words::table.select(target_words::all_columns)),
        ),
        (
            "transcript_segments",
            schema_columns(transcript_segments::table.select(transcript_segments::all_columns)),
        ),
    ];
    for (table, columns) in expected {
        assert_eq!(
            database_columns(table),
            columns,
            "schema.rs differs from the database for {table}"
        );
    }
}

/// `:memory:` keeps one connection for the pool's life, or every checkout would see an empty
/// database.
#[test]
fn an_in_memory_sqlite_database_keeps_its_tables_across_checkouts() {
    let pool = db::connect(":memory:").expect("pool");
    assert_eq!(db::run_migrations(&pool).expect("migrations").len(), 3);
    let session_id = uuid::Uuid::new_v4();
    {
        let mut conn = pool.get().expect("connection");
        lahstats_worker::db::queries::register_session(
            &mut conn,
            session_id,
            uuid::Uuid::new_v4(),
            &[(0, "a.m4a".into(), None)],
        )
        .expect("register");
    }
    let mut conn = pool.get().expect("connection again");
    let input = lahstats_worker::db::queries::load_session(&mut conn, session_id).expect("load");
    assert_eq!(input.chunks.len(), 1);
}
