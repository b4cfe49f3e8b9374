-- mbq journal, version 1.
-- The journal is the local source of truth for every table's committed
-- cursor and for every in-flight table run. Each state transition of a table
-- run is one committed transaction (WAL, synchronous=FULL) written before the
-- next side effect is assumed (DESIGN.md).

-- One row per `mbq sync` invocation.
CREATE TABLE runs (
    run_id        TEXT PRIMARY KEY,          -- uuid
    started_ms    INTEGER NOT NULL,
    finished_ms   INTEGER,
    status        TEXT NOT NULL DEFAULT 'running'
                  CHECK (status IN ('running', 'ok', 'failed', 'interrupted')),
    pid           INTEGER NOT NULL,
    tables_ok     INTEGER NOT NULL DEFAULT 0,
    tables_failed INTEGER NOT NULL DEFAULT 0,
    exit_code     INTEGER
);

-- One row per configured table that has ever run: what is committed.
CREATE TABLE tables (
    table_name           TEXT PRIMARY KEY,   -- the MySQL table (config 'name')
    cursor_value         TEXT,               -- committed high-water mark; NULL = never / full resync
    cursor_kind          TEXT CHECK (cursor_kind IN ('timestamp', 'integer') OR cursor_kind IS NULL),
    last_success_ms      INTEGER,
    last_run_id          TEXT,
    last_rows            INTEGER NOT NULL DEFAULT 0,
    total_rows           INTEGER NOT NULL DEFAULT 0,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    last_error           TEXT,
    last_error_state     TEXT,
    -- The window and checksum of the last committed extract: an identical
    -- extract (same window, same content) is already in BigQuery and costs
    -- no job.
    last_low             TEXT,
    last_high            TEXT,
    last_checksum        TEXT,
    -- The MySQL schema seen at the last successful schema-check (JSON), the
    -- reference for detecting type changes, drops and renames.
    source_schema        TEXT,
    updated_ms           INTEGER NOT NULL
);

-- One row per attempt to sync one table; in flight while state is not final.
CREATE TABLE table_runs (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id         TEXT NOT NULL,            -- the run that started it
    last_run_id    TEXT NOT NULL,            -- the run that last worked on it
    table_name     TEXT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('schema-check', 'extract', 'stage', 'merge',
                                       'commit-metadata', 'done', 'failed', 'abandoned')),
    load_mode      TEXT CHECK (load_mode IN ('merge', 'replace') OR load_mode IS NULL),
    attempt        INTEGER NOT NULL DEFAULT 0, -- bumped whenever the staged data or a job must change
    low            TEXT,                     -- inclusive lower bound used (NULL = whole table)
    high           TEXT,                     -- high-water mark taken in the snapshot
    staged_path    TEXT,
    staged_rows    INTEGER,
    staged_bytes   INTEGER,
    staged_checksum TEXT,
    staging_table  TEXT,
    load_job_id    TEXT,
    merge_job_id   TEXT,
    rows_merged    INTEGER,
    error          TEXT,
    error_state    TEXT,
    started_ms     INTEGER NOT NULL,
    updated_ms     INTEGER NOT NULL,
    finished_ms    INTEGER,
    t_schema_ms    INTEGER NOT NULL DEFAULT 0,
    t_extract_ms   INTEGER NOT NULL DEFAULT 0,
    t_stage_ms     INTEGER NOT NULL DEFAULT 0,
    t_merge_ms     INTEGER NOT NULL DEFAULT 0,
    t_commit_ms    INTEGER NOT NULL DEFAULT 0,
    mirror_state   TEXT NOT NULL DEFAULT 'none' CHECK (mirror_state IN ('none', 'pending', 'done')),
    mirror_job_id  TEXT
);

-- At most one table run in flight per table: the invariant resume relies on.
CREATE UNIQUE INDEX table_runs_one_in_flight ON table_runs (table_name)
    WHERE state NOT IN ('done', 'failed', 'abandoned');
CREATE INDEX table_runs_by_table ON table_runs (table_name, id);
CREATE INDEX table_runs_mirror ON table_runs (mirror_state) WHERE mirror_state = 'pending';

-- History: schema changes, resets, alerts, recoveries.
CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ms       INTEGER NOT NULL,
    run_id      TEXT,
    table_name  TEXT,
    kind        TEXT NOT NULL,   -- e.g. 'schema.add_column', 'reset', 'alert.sent', 'alert.failed'
    column_name TEXT,
    old_type    TEXT,
    new_type    TEXT,
    action      TEXT,            -- what mbq did: 'added', 'widened', 'kept', 'stopped', ...
    detail      TEXT
);
CREATE INDEX events_by_table ON events (table_name, id);
