DROP TABLE IF EXISTS prepared_steps;
