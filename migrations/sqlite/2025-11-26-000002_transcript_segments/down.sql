DROP TABLE IF EXISTS transcript_segments;
