-- mbq journal, version 2: the tail of each extract.
-- An extract of [low, high] also records the checksum of its rows with
-- cursor >= tail_low (= high - lookback), the window the next run reads
-- first. If the next extract of that window has the same checksum, nothing
-- changed and the table costs no BigQuery job.
ALTER TABLE table_runs ADD COLUMN tail_low TEXT;
ALTER TABLE table_runs ADD COLUMN tail_checksum TEXT;
