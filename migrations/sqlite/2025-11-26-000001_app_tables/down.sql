-- The embedded database belongs to the worker alone, so reverting may drop its tables.
DROP TABLE IF EXISTS target_words;
DROP TABLE IF EXISTS speaker_word_counts;
DROP TABLE IF EXISTS session_speakers;
DROP TABLE IF EXISTS audio_chunks;
DROP TABLE IF EXISTS sessions;
