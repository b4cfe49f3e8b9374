-- mbq journal, version 6: change data capture from the binlog.
-- Tables in `mode: cdc` are first loaded from one consistent snapshot whose
-- binlog position is known, then followed through the binlog: row events are
-- buffered into per-table files (a batch), each file is loaded into a staging
-- table and applied by one MERGE per table (last change per key wins), and
-- only then is the stream's position moved past the batch, in the same
-- SQLite transaction that marks the batch committed. A kill anywhere resumes
-- from the committed position: a batch journaled 'closed' is loaded and
-- merged again by its journaled job ids (a MERGE of each key's last change is
-- idempotent), a batch that was still being read is read again from the
-- binlog.

-- The reader's committed position (one binlog reader per source).
CREATE TABLE cdc_stream (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    binlog_file TEXT NOT NULL,      -- everything before (file, pos) is in BigQuery
    binlog_pos  INTEGER NOT NULL,
    gtid        TEXT,               -- GTID of the last transaction applied, when known
    event_ms    INTEGER,            -- source timestamp of the last event applied
    heartbeat_ms INTEGER,           -- last time the source was heard (event or heartbeat)
    caught_up_ms INTEGER,           -- last time the reader had read everything the source had
    lag_ms      INTEGER,            -- how far BigQuery is behind the source, as of updated_ms:
                                    -- 0 when caught up, else now - source time of the oldest
                                    -- change not yet applied
    pid         INTEGER,            -- the process following the binlog (NULL when none)
    status      TEXT NOT NULL DEFAULT 'stopped'
                CHECK (status IN ('running', 'stopped', 'reconnecting', 'failed')),
    error       TEXT,
    updated_ms  INTEGER NOT NULL
);

-- One row per table in cdc mode.
CREATE TABLE cdc_tables (
    table_name    TEXT PRIMARY KEY,   -- the MySQL table (config 'name')
    state         TEXT NOT NULL
                  CHECK (state IN ('snapshot', 'streaming', 'failed', 'resnapshot')),
    snapshot_file TEXT,               -- binlog position of the table's snapshot: a
    snapshot_pos  INTEGER,            -- transaction that ends at or before it is in the
                                      -- snapshot; later ones are applied from the binlog
    snapshot_run_id INTEGER,          -- the table run (table_runs) that loaded the snapshot
    snapshot_path TEXT,               -- state 'snapshot': the staged snapshot (NULL = empty
    snapshot_checksum TEXT,           -- table), its checksum and rows, and the load job
    snapshot_rows INTEGER,            -- that replaces the target with it (journaled before
    snapshot_job_id TEXT,             -- it is submitted; attempt bumped when a job failed)
    snapshot_attempt INTEGER NOT NULL DEFAULT 0,
    rows_inserted INTEGER NOT NULL DEFAULT 0, -- applied through the binlog, since the snapshot
    rows_updated  INTEGER NOT NULL DEFAULT 0,
    rows_deleted  INTEGER NOT NULL DEFAULT 0,
    last_batch_id INTEGER,
    last_applied_ms INTEGER,          -- when the last batch touching the table was committed
    error         TEXT,
    updated_ms    INTEGER NOT NULL
);

-- A batch: the events between two transaction boundaries.
CREATE TABLE cdc_batches (
    batch_id     INTEGER PRIMARY KEY,
    from_file    TEXT NOT NULL,       -- the committed position it starts at
    from_pos     INTEGER NOT NULL,
    to_file      TEXT NOT NULL,       -- the position after its last transaction
    to_pos       INTEGER NOT NULL,
    to_gtid      TEXT,
    state        TEXT NOT NULL
                 CHECK (state IN ('closed', 'committed', 'abandoned')),
    transactions INTEGER NOT NULL DEFAULT 0,
    rows         INTEGER NOT NULL DEFAULT 0,  -- row changes in the batch (all tables)
    first_event_ms INTEGER,                   -- source timestamps of its first and last event
    last_event_ms  INTEGER,
    closed_ms    INTEGER NOT NULL,
    committed_ms INTEGER
);

-- One table's part of a batch: its file, staging table and jobs.
CREATE TABLE cdc_batch_tables (
    batch_id     INTEGER NOT NULL,
    table_name   TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('closed', 'loaded', 'merged')),
    path         TEXT NOT NULL,       -- the staged NDJSON (one line per row change)
    checksum     TEXT,
    bytes        INTEGER NOT NULL DEFAULT 0,
    rows         INTEGER NOT NULL DEFAULT 0,
    attempt      INTEGER NOT NULL DEFAULT 0,  -- bumped when a job failed: new job ids
    staging_table TEXT,
    load_job_id  TEXT,
    merge_job_id TEXT,
    rows_inserted INTEGER NOT NULL DEFAULT 0,
    rows_updated  INTEGER NOT NULL DEFAULT 0,
    rows_deleted  INTEGER NOT NULL DEFAULT 0,
    updated_ms   INTEGER NOT NULL,
    PRIMARY KEY (batch_id, table_name)
);
