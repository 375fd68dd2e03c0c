// @generated automatically by Diesel CLI.

diesel::table! {
    use crate::db::sql_types::*;

    audio_chunks (id) {
        id -> Uuid,
        session_id -> Nullable<Uuid>,
        chunk_number -> Nullable<Int4>,
        storage_path -> Text,
        duration_seconds -> Nullable<Numeric>,
        uploaded_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    use crate::db::sql_types::*;

    session_speakers (id) {
        id -> Uuid,
        session_id -> Nullable<Uuid>,
        #[max_length = 50]
        speaker_label -> Varchar,
        segment_count -> Nullable<Int4>,
        total_duration_seconds -> Nullable<Numeric>,
        sample_audio_url -> Nullable<Text>,
        sample_start_time -> Nullable<Numeric>,
        claimed_by -> Nullable<Uuid>,
        claimed_at -> Nullable<Timestamptz>,
        #[max_length = 20]
        claim_type -> Nullable<Varchar>,
        attributed_to_user_id -> Nullable<Uuid>,
        #[max_length = 100]
        guest_name -> Nullable<Varchar>,
        created_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    use crate::db::sql_types::*;

    sessions (id) {
        id -> Uuid,
        group_id -> Nullable<Uuid>,
        started_by -> Uuid,
        #[max_length = 50]
        status -> Varchar,
        started_at -> Nullable<Timestamptz>,
        ended_at -> Nullable<Timestamptz>,
        progress -> Nullable<Int4>,
        audio_url -> Nullable<Text>,
        duration_seconds -> Nullable<Int4>,
        error_message -> Nullable<Text>,
        created_at -> Nullable<Timestamptz>,
        updated_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    use crate::db::sql_types::*;

    speaker_word_counts (id) {
        id -> Int8,
        session_speaker_id -> Nullable<Uuid>,
        #[max_length = 50]
        word -> Varchar,
        count -> Int4,
    }
}

diesel::table! {
    use crate::db::sql_types::*;

    target_words (id) {
        id -> Int8,
        #[max_length = 50]
        word -> Nullable<Varchar>,
        #[max_length = 10]
        emoji -> Nullable<Varchar>,
        #[max_length = 50]
        category -> Nullable<Varchar>,
        #[max_length = 50]
        display_name -> Nullable<Varchar>,
        is_active -> Nullable<Bool>,
        created_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    use crate::db::sql_types::*;

    transcript_segments (id) {
        id -> Int8,
        session_id -> Uuid,
        #[max_length = 50]
        speaker_label -> Varchar,
        start_seconds -> Float8,
        end_seconds -> Float8,
        text -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    use crate::db::sql_types::*;

    prepared_steps (session_id, step) {
        session_id -> Uuid,
        step -> Int4,
        chunk_number -> Int4,
        storage_path -> Text,
        state -> diesel::sql_types::Binary,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(audio_chunks -> sessions (session_id));
diesel::joinable!(session_speakers -> sessions (session_id));
diesel::joinable!(speaker_word_counts -> session_speakers (session_speaker_id));
diesel::joinable!(transcript_segments -> sessions (session_id));
diesel::joinable!(prepared_steps -> sessions (session_id));

diesel::allow_tables_to_appear_in_same_query!(
    audio_chunks,
    prepared_steps,
    session_speakers,
    sessions,
    speaker_word_counts,
    target_words,
    transcript_segments,
);
