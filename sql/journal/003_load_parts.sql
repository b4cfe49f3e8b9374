-- mbq journal, version 3: staged files split into parts.
-- BigQuery takes at most 4 GB per gzip file in a load job (5 TB
-- uncompressed), so an extract larger than bigquery.max_load_file_size is
-- split into parts, each loaded by its own job into the staging table
-- (the first WRITE_TRUNCATE, the others WRITE_APPEND). Each part is written
-- (temp name, fsync, rename) before it is journaled here; its job id is
-- journaled before the job is submitted and `loaded` set once BigQuery
-- reports it done, so a killed run resumes at the first part not loaded
-- and never loads a part twice. The parts of one table run belong to one
-- staged file (one attempt): a new extract deletes them.
CREATE TABLE load_parts (
    table_run_id INTEGER NOT NULL,
    part         INTEGER NOT NULL,   -- 1-based, in file order
    path         TEXT NOT NULL,
    rows         INTEGER NOT NULL,
    bytes        INTEGER NOT NULL,   -- file size (compressed when gzip)
    checksum     TEXT NOT NULL,      -- sha256 of the part's uncompressed NDJSON
    job_id       TEXT,
    loaded       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (table_run_id, part)
);
