-- mbq journal, version 4: reconciliations (deletes reach BigQuery).
-- A cursor-based sync never sees a deleted row. A reconciliation of a table
-- (tables[].deletes: soft | hard) reads every primary key of the source in
-- key-order chunks, each in its own consistent snapshot, loads them into a
-- staging table, and applies one statement to the target (mbq/reconcile.h).
--
--   scan --chunk file written--> load --loaded, more keys--> scan
--                                  \--loaded, last chunk--> apply --> done
--                                                             \--guard--> refused
--
-- Each step is journaled before the next side effect: a chunk's file and its
-- load job id before the load is submitted (a kill resumes at that chunk and
-- finds its job by id), the apply job id before the statement runs. While a
-- reconciliation is in flight, no other job of its table runs: the next run
-- finishes it before it syncs the table again, so the target holds nothing
-- newer than the keys when the statement runs.
CREATE TABLE reconciles (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id         TEXT NOT NULL,            -- the run that started it
    last_run_id    TEXT NOT NULL,            -- the run that last worked on it
    table_name     TEXT NOT NULL,
    mode           TEXT NOT NULL CHECK (mode IN ('soft', 'hard')),
    state          TEXT NOT NULL CHECK (state IN ('scan', 'load', 'apply', 'done', 'refused',
                                                  'abandoned')),
    chunks         INTEGER NOT NULL DEFAULT 0, -- chunks loaded into the staging table
    last_key       TEXT,                     -- the last key loaded (hex per column); NULL = none
    chunk_path     TEXT,                     -- the chunk scanned and not loaded yet
    chunk_rows     INTEGER,
    chunk_last_key TEXT,
    chunk_job_id   TEXT,
    hwm_taken      INTEGER NOT NULL DEFAULT 0, -- hwm was read (it may be NULL: an empty table)
    hwm            TEXT,                     -- MAX(cursor) in the first chunk's snapshot
    keys           INTEGER NOT NULL DEFAULT 0, -- keys loaded
    staging_table  TEXT,
    apply_job_id   TEXT,
    attempt        INTEGER NOT NULL DEFAULT 0,
    target_rows    INTEGER,                  -- live target rows seen by the guard
    rows_deleted   INTEGER,                  -- rows deleted (hard) or flagged (soft)
    error          TEXT,
    started_ms     INTEGER NOT NULL,
    updated_ms     INTEGER NOT NULL,
    finished_ms    INTEGER,
    mirror_state   TEXT NOT NULL DEFAULT 'none' CHECK (mirror_state IN ('none', 'pending', 'done'))
);
CREATE UNIQUE INDEX reconciles_one_in_flight ON reconciles (table_name)
    WHERE state IN ('scan', 'load', 'apply');
CREATE INDEX reconciles_by_table ON reconciles (table_name, id);
