-- The LahStats app's tables the worker reads and writes, created only where they are missing
-- (a fresh database for local runs and tests). On the app's own database every table already
-- exists, with foreign keys to `profiles` and `groups` that the worker does not own: nothing here
-- drops, renames or retypes an existing column there. There is no down.sql on purpose: reverting
-- would destroy the app's data.

CREATE TABLE IF NOT EXISTS sessions (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    group_id UUID,
    started_by UUID NOT NULL,
    status VARCHAR(50) NOT NULL DEFAULT 'recording',
    started_at TIMESTAMPTZ DEFAULT NOW(),
    ended_at TIMESTAMPTZ,
    progress INTEGER DEFAULT 0,
    audio_url TEXT,
    duration_seconds INTEGER,
    error_message TEXT,
    created_at TIMESTAMPTZ DEFAULT NOW(),
    updated_at TIMESTAMPTZ DEFAULT NOW()
);

-- Columns the worker writes that older app databases may lack; adding a missing column is the
-- only change ever made to an existing table.
ALTER TABLE sessions ADD COLUMN IF NOT EXISTS progress INTEGER DEFAULT 0;
ALTER TABLE sessions ADD COLUMN IF NOT EXISTS error_message TEXT;
ALTER TABLE sessions ADD COLUMN IF NOT EXISTS audio_url TEXT;
ALTER TABLE sessions ADD COLUMN IF NOT EXISTS duration_seconds INTEGER;
ALTER TABLE sessions ADD COLUMN IF NOT EXISTS updated_at TIMESTAMPTZ DEFAULT NOW();

CREATE TABLE IF NOT EXISTS audio_chunks (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id UUID REFERENCES sessions(id) ON DELETE CASCADE,
    chunk_number INTEGER,
    storage_path TEXT NOT NULL,
    duration_seconds DECIMAL(10, 2),
    uploaded_at TIMESTAMPTZ DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS idx_audio_chunks_session_chunk ON audio_chunks (session_id, chunk_number);

CREATE TABLE IF NOT EXISTS session_speakers (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id UUID REFERENCES sessions(id) ON DELETE CASCADE,
    speaker_label VARCHAR(50) NOT NULL,
    segment_count INTEGER DEFAULT 0,
    total_duration_seconds DECIMAL(10, 2),
    sample_audio_url TEXT,
    sample_start_time DECIMAL(10, 2),
    claimed_by UUID,
    claimed_at TIMESTAMPTZ,
    claim_type VARCHAR(20),
    attributed_to_user_id UUID,
    guest_name VARCHAR(100),
    created_at TIMESTAMPTZ DEFAULT NOW(),
    UNIQUE (session_id, speaker_label)
);
ALTER TABLE session_speakers ADD COLUMN IF NOT EXISTS sample_audio_url TEXT;
ALTER TABLE session_speakers ADD COLUMN IF NOT EXISTS sample_start_time DECIMAL(10, 2);

CREATE TABLE IF NOT EXISTS speaker_word_counts (
    id BIGSERIAL PRIMARY KEY,
    session_speaker_id UUID REFERENCES session_speakers(id) ON DELETE CASCADE,
    word VARCHAR(50) NOT NULL,
    count INTEGER NOT NULL DEFAULT 1,
    UNIQUE (session_speaker_id, word)
);

CREATE TABLE IF NOT EXISTS target_words (
    id BIGSERIAL PRIMARY KEY,
    word VARCHAR(50) UNIQUE,
    emoji VARCHAR(10),
    category VARCHAR(50),
    display_name VARCHAR(50),
    is_active BOOLEAN DEFAULT TRUE,
    created_at TIMESTAMPTZ DEFAULT NOW()
);
