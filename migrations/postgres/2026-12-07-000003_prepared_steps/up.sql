-- The worker's own table: a session analysed while it records, one row per chunk taken in
-- (step 1, 2, … in recording order). `state` is what that step added (postcard-encoded
-- `speech::incremental::Step`); the rows of a session, read in order, restore its analysis
-- after a restart or on another worker. The key makes two workers' rows for one step collide
-- instead of both counting.
CREATE TABLE IF NOT EXISTS prepared_steps (
    session_id UUID NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    chunk_number INTEGER NOT NULL,
    storage_path TEXT NOT NULL,
    state BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    PRIMARY KEY (session_id, step)
);
