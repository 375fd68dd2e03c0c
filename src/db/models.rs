//! Typed rows: what the worker inserts into and reads from each table. Uuids and timestamps
//! travel as `DbUuid`/`DbTime` (see `sql_types`). Nullable columns the worker always fills take
//! plain types, so batch inserts never need SQL `DEFAULT` (which SQLite lacks in VALUES lists).

use super::sql_types::{DbTime, DbUuid};
use bigdecimal::BigDecimal;
use diesel::prelude::*;

use super::schema::{
    audio_chunks, session_speakers, sessions, speaker_word_counts, transcript_segments,
};

/// A session registered by `lahstats-worker submit`, as the API would create it.
#[derive(Debug, Insertable)]
#[diesel(table_name = sessions)]
pub struct NewSession<'a> {
    pub id: DbUuid,
    pub started_by: DbUuid,
    pub status: &'a str,
    pub started_at: DbTime,
    #[diesel(treat_none_as_default_value = false)]
    pub ended_at: Option<DbTime>,
    pub progress: i32,
    pub created_at: DbTime,
    pub updated_at: DbTime,
}

/// One uploaded chunk of a registered session.
#[derive(Debug, Insertable)]
#[diesel(table_name = audio_chunks)]
pub struct NewAudioChunk<'a> {
    pub id: DbUuid,
    pub session_id: DbUuid,
    pub chunk_number: i32,
    pub storage_path: &'a str,
    pub duration_seconds: Option<BigDecimal>,
    pub uploaded_at: DbTime,
}

/// A chunk as the Processor needs it.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = audio_chunks)]
pub struct ChunkRow {
    pub chunk_number: Option<i32>,
    pub storage_path: String,
}

/// One speaker of a processed session, with its sample clip; the claim columns stay NULL.
/// Every row of a batch has the same columns (a sample column is NULL, never absent), as SQLite's
/// multi-row VALUES needs.
#[derive(Debug, Insertable)]
#[diesel(table_name = session_speakers)]
pub struct NewSessionSpeaker<'a> {
    pub id: DbUuid,
    pub session_id: DbUuid,
    pub speaker_label: &'a str,
    pub segment_count: i32,
    pub total_duration_seconds: BigDecimal,
    #[diesel(treat_none_as_default_value = false)]
    pub sample_audio_url: Option<&'a str>,
    #[diesel(treat_none_as_default_value = false)]
    pub sample_start_time: Option<BigDecimal>,
    pub created_at: DbTime,
}

/// The claim columns the app writes once a person says "that was me".
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = session_speakers)]
pub struct SpeakerClaim {
    pub claimed_by: Option<DbUuid>,
    pub attributed_to_user_id: Option<DbUuid>,
    pub guest_name: Option<String>,
}

impl SpeakerClaim {
    /// Whether the app has attributed this speaker to someone.
    pub fn is_claimed(&self) -> bool {
        self.claimed_by.is_some()
            || self.attributed_to_user_id.is_some()
            || self
                .guest_name
                .as_deref()
                .is_some_and(|name| !name.is_empty())
    }
}

/// A saved speaker read back for `submit --wait` and the tests.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = session_speakers)]
pub struct SpeakerRow {
    pub id: DbUuid,
    pub speaker_label: String,
    pub segment_count: Option<i32>,
    pub total_duration_seconds: Option<BigDecimal>,
}

/// How often one speaker said one target word.
#[derive(Debug, Insertable)]
#[diesel(table_name = speaker_word_counts)]
pub struct NewWordCount<'a> {
    pub session_speaker_id: DbUuid,
    pub word: &'a str,
    pub count: i32,
}

/// One stretch of transcript.
#[derive(Debug, Insertable)]
#[diesel(table_name = transcript_segments)]
pub struct NewTranscriptSegment<'a> {
    pub session_id: DbUuid,
    pub speaker_label: &'a str,
    pub start_seconds: f64,
    pub end_seconds: f64,
    pub text: &'a str,
    pub created_at: DbTime,
}

/// A session's state as the app's progress screen reads it.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = sessions)]
pub struct SessionState {
    pub status: String,
    pub progress: Option<i32>,
    pub error_message: Option<String>,
}
