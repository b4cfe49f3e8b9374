-- mbq journal, version 5: chunked backfills.
-- A first sync or full refresh of a table with `chunk_rows` set is read in
-- primary-key ranges, each in its own short consistent snapshot, and each
-- appended by its own load job to a shadow table that is copied over the
-- target at the end (one atomic copy job). The plan (every chunk's key
-- range) is journaled in one transaction before the first chunk is read;
-- a chunk's file and load job id are journaled before the job is
-- submitted, and `state` becomes 'loaded' once BigQuery reports it done
-- with the chunk's rows. A killed run resumes at the first chunk not
-- loaded: a chunk whose job ran is found by its id, never loaded twice.
CREATE TABLE backfills (
    table_run_id INTEGER PRIMARY KEY,
    shadow_table TEXT NOT NULL,       -- where the chunks go, copied over the target at the end
    mark         TEXT,                -- the cursor's high-water mark taken before the first
                                      -- chunk (NULL: no cursor, or no row had one)
    tail_low     TEXT,                -- mark - lookback, and the checksum of the rows from
    tail_checksum TEXT,               -- there to the mark, read with the mark: the catch-up
                                      -- window that finds them unchanged costs no job
    chunk_rows   INTEGER NOT NULL,
    n_chunks     INTEGER NOT NULL,
    schema_print TEXT NOT NULL,       -- the load schema the chunks were read with
    copy_job_id  TEXT,                -- journaled before the copy runs
    planned_ms   INTEGER NOT NULL
);

CREATE TABLE backfill_chunks (
    table_run_id INTEGER NOT NULL,
    chunk        INTEGER NOT NULL,    -- 1-based, in key order
    key_after    TEXT,                -- exclusive lower key (hex per column, comma-separated);
                                      -- NULL = from the first row
    key_upto     TEXT,                -- inclusive upper key; NULL = to the last row
    state        TEXT NOT NULL DEFAULT 'planned'
                 CHECK (state IN ('planned', 'extracted', 'loaded')),
    attempt      INTEGER NOT NULL DEFAULT 0, -- bumped by every new extract of the chunk
    path         TEXT,
    rows         INTEGER NOT NULL DEFAULT 0,
    bytes        INTEGER NOT NULL DEFAULT 0,
    job_id       TEXT,                -- the load job (a file above the per-load limit: parts
                                      -- '<job_id>_p<k>', each at most part_bytes)
    part_bytes   INTEGER NOT NULL DEFAULT 0, -- the split size fixed at extract; 0 = one file
    updated_ms   INTEGER NOT NULL,
    PRIMARY KEY (table_run_id, chunk)
);
