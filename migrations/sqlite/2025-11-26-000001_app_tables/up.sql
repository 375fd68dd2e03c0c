-- The LahStats app's tables in the embedded database, with SQLite's nearest types: uuids and
-- timestamps as TEXT, decimal(10,2) as REAL, bigserial as an INTEGER rowid. Column names match
-- the Postgres set so one schema.rs serves both.

CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY NOT NULL,
    group_id TEXT,
    started_by TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'recording',
    started_at TEXT DEFAULT CURRENT_TIMESTAMP,
    ended_at TEXT,
    progress INTEGER DEFAULT 0,
    audio_url TEXT,
    duration_seconds INTEGER,
    error_message TEXT,
    created_at TEXT DEFAULT CURRENT_TIMESTAMP,
    updated_at TEXT DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE IF NOT EXISTS audio_chunks (
    id TEXT PRIMARY KEY NOT NULL,
    session_id TEXT REFERENCES sessions(id) ON DELETE CASCADE,
    chunk_number INTEGER,
    storage_path TEXT NOT NULL,
    duration_seconds REAL,
    uploaded_at TEXT DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS idx_audio_chunks_session_chunk ON audio_chunks (session_id, chunk_number);

CREATE TABLE IF NOT EXISTS session_speakers (
    id TEXT PRIMARY KEY NOT NULL,
    session_id TEXT REFERENCES sessions(id) ON DELETE CASCADE,
    speaker_label TEXT NOT NULL,
    segment_count INTEGER DEFAULT 0,
    total_duration_seconds REAL,
    sample_audio_url TEXT,
    sample_start_time REAL,
    claimed_by TEXT,
    claimed_at TEXT,
    claim_type TEXT,
    attributed_to_user_id TEXT,
    guest_name TEXT,
    created_at TEXT DEFAULT CURRENT_TIMESTAMP,
    UNIQUE (session_id, speaker_label)
);

CREATE TABLE IF NOT EXISTS speaker_word_counts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_speaker_id TEXT REFERENCES session_speakers(id) ON DELETE CASCADE,
    word TEXT NOT NULL,
    count INTEGER NOT NULL DEFAULT 1,
    UNIQUE (session_speaker_id, word)
);

CREATE TABLE IF NOT EXISTS target_words (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    word TEXT UNIQUE,
    emoji TEXT,
    category TEXT,
    display_name TEXT,
    is_active BOOLEAN DEFAULT 1,
    created_at TEXT DEFAULT CURRENT_TIMESTAMP
);
