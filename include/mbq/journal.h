/* The journal: a local SQLite database (state.db) holding every table's
 * committed cursor, every in-flight table run with its state, and an event
 * history. It is what makes a killed run resumable.
 *
 * Durability: WAL mode with synchronous=FULL, so a transaction that returned
 * is on disk. Each state transition of a table run is one transaction,
 * committed before the side effect of the next state starts (DESIGN.md).
 *
 * Concurrency: one writer. mbq_journal_open() takes an exclusive flock() on
 * `<dir>/lock` (non-blocking): a second process gets MBQ_ELOCKED at once.
 * The kernel drops the lock when the holder dies, so a killed process never
 * leaves a stale lock behind. Read-only openers (mbq-state inspect) skip the
 * lock and read a consistent WAL snapshot.
 *
 * Schema: sql/journal/NNN_*.sql, embedded at build time, applied in order on
 * open and recorded in PRAGMA user_version. A journal from a newer mbq (a
 * higher version than this binary knows) is refused, never downgraded; a
 * file that is not a SQLite database is refused, never recreated: cursors
 * must never be reset silently. */
#ifndef MBQ_JOURNAL_H
#define MBQ_JOURNAL_H

#include <stdbool.h>
#include <stdint.h>

typedef struct mbq_migration {
    int version;
    const char *name;
    const char *sql;
} mbq_migration;

extern const mbq_migration mbq_migrations[];
extern const int mbq_migration_count;

typedef struct mbq_journal mbq_journal;

typedef enum mbq_journal_mode {
    MBQ_JOURNAL_WRITE = 0,    /* lock the directory, migrate, read/write */
    MBQ_JOURNAL_READONLY = 1, /* no lock, no migration; the file must exist */
    MBQ_JOURNAL_ATTACH = 2,   /* one more read/write connection of a process that holds
                                 the lock (`sync --jobs`: one per worker thread); no lock,
                                 no migration; the file must exist at the latest version */
} mbq_journal_mode;

/* Open (creating when writing) `<dir>/state.db`. *out is freed with
 * mbq_journal_close. Errors: MBQ_ELOCKED (another process holds the lock),
 * MBQ_EJOURNAL (corrupt, not a database, newer version), MBQ_EIO,
 * MBQ_ENOTFOUND (read-only and no journal yet). */
int mbq_journal_open(mbq_journal **out, const char *dir, mbq_journal_mode mode);
void mbq_journal_close(mbq_journal *j);

/* The schema version of the open journal. */
int mbq_journal_version(mbq_journal *j);

/* Explicit transactions around several calls (BEGIN IMMEDIATE / COMMIT). */
int mbq_journal_begin(mbq_journal *j);
int mbq_journal_commit(mbq_journal *j);
void mbq_journal_rollback(mbq_journal *j);

/* ---- runs ---- */
int mbq_journal_run_start(mbq_journal *j, const char *run_id, int64_t now_ms);
int mbq_journal_run_finish(mbq_journal *j, const char *run_id, int64_t now_ms, int tables_ok,
                           int tables_failed, int exit_code);
/* Mark runs left 'running' by a dead process as 'interrupted'; returns how
 * many through *n (may be NULL). */
int mbq_journal_runs_mark_interrupted(mbq_journal *j, int *n);

/* ---- tables (committed state) ---- */
typedef struct mbq_table_state {
    char *table_name;
    char *cursor_value; /* NULL = never synced / full resync next */
    char *cursor_kind;  /* "timestamp", "integer" or NULL */
    int64_t last_success_ms;
    char *last_run_id;
    int64_t last_rows;
    int64_t total_rows;
    int consecutive_failures;
    char *last_error;
    char *last_error_state;
    char *last_low;
    char *last_high;
    char *last_checksum;
    char *source_schema; /* JSON */
    int64_t updated_ms;
} mbq_table_state;

/* Read a table's committed state. A table never seen gives a zeroed state
 * with table_name set (rc 0). Free with mbq_table_state_clear. */
int mbq_journal_table_get(mbq_journal *j, mbq_table_state *out, const char *table);
void mbq_table_state_clear(mbq_table_state *s);

/* All known table names (sorted); *out is a NULL-terminated array freed
 * with mbq_strv_free. */
int mbq_journal_table_names(mbq_journal *j, char ***out);
void mbq_strv_free(char **v);

/* Record a failure of `table` in `state` (consecutive_failures + 1). */
int mbq_journal_table_failed(mbq_journal *j, const char *table, const char *state,
                             const char *error, int64_t now_ms);

/* Store the MySQL schema seen at schema-check (JSON text). */
int mbq_journal_table_set_schema(mbq_journal *j, const char *table, const char *schema_json,
                                 int64_t now_ms);

/* Move or clear a table's cursor (mbq-state reset); clears last_* window. */
int mbq_journal_table_set_cursor(mbq_journal *j, const char *table, const char *cursor,
                                 const char *kind, int64_t now_ms);

/* ---- table runs ---- */
typedef struct mbq_table_run {
    int64_t id;
    char *run_id;
    char *last_run_id;
    char *table_name;
    char *state;     /* see mbq/machine.h for the states */
    char *load_mode; /* "merge", "replace" or NULL */
    int attempt;
    char *low, *high;
    char *staged_path;
    int64_t staged_rows, staged_bytes;
    char *staged_checksum;
    char *staging_table;
    char *load_job_id;
    char *merge_job_id;
    int64_t rows_merged;
    char *error, *error_state;
    int64_t started_ms, updated_ms, finished_ms;
    int64_t t_schema_ms, t_extract_ms, t_stage_ms, t_merge_ms, t_commit_ms;
    char *mirror_state;
    char *mirror_job_id;
    char *tail_low;      /* the next window's start (high - lookback) */
    char *tail_checksum; /* checksum of this extract's rows from tail_low on */
} mbq_table_run;

void mbq_table_run_clear(mbq_table_run *r);

/* The in-flight table run of `table` (state not final): rc 0 and *found true
 * with *out filled, or *found false. */
int mbq_journal_table_run_in_flight(mbq_journal *j, mbq_table_run *out, bool *found,
                                    const char *table);

/* The most recent table runs of `table` (newest first), up to `limit`;
 * *out is an array of *n runs freed with mbq_table_runs_free. */
int mbq_journal_table_runs_recent(mbq_journal *j, mbq_table_run **out, int *n, const char *table,
                                  int limit);
void mbq_table_runs_free(mbq_table_run *runs, int n);

/* Start a table run in state 'schema-check'; fills r->id. Fails with
 * MBQ_EINTERNAL if one is already in flight (the unique index says so). */
int mbq_journal_table_run_create(mbq_journal *j, mbq_table_run *r);

/* Persist every mutable field of `r` (state, window, staged file, job ids,
 * timings, error) in one statement. The caller sets r->updated_ms. */
int mbq_journal_table_run_save(mbq_journal *j, const mbq_table_run *r);

/* commit-metadata: in ONE transaction, mark the run done, and advance the
 * table's committed state (cursor := high unless high is NULL, stats, the
 * window [tail_low, high] and tail checksum the next run compares with,
 * consecutive_failures := 0). `cursor` is the new
 * committed cursor (may equal the old one); mirror becomes 'pending'. */
int mbq_journal_table_run_commit(mbq_journal *j, mbq_table_run *r, const char *cursor,
                                 const char *cursor_kind, int64_t rows, int64_t now_ms);

/* Table runs whose metadata mirror to BigQuery is pending (oldest first). */
int mbq_journal_mirror_pending(mbq_journal *j, mbq_table_run **out, int *n);
/* Set a table run's mirror state ('pending' or 'done') and the id of the
 * job that carries (or carried) its row; NULL clears the id. */
int mbq_journal_mirror_set(mbq_journal *j, int64_t table_run_id, const char *state,
                           const char *job_id);

/* ---- events ---- */
typedef struct mbq_event {
    int64_t id;
    int64_t ts_ms;
    char *run_id, *table_name, *kind, *column_name, *old_type, *new_type, *action, *detail;
} mbq_event;

/* Append an event; any of the strings may be NULL except kind. */
int mbq_journal_event_add(mbq_journal *j, const mbq_event *e);

/* The newest events (of `table`, or all when NULL), newest first. */
int mbq_journal_events_recent(mbq_journal *j, mbq_event **out, int *n, const char *table,
                              int limit);
void mbq_events_free(mbq_event *e, int n);

/* ---- load parts (a staged file split under BigQuery's file limit) ---- */
typedef struct mbq_load_part {
    int part;          /* 1-based */
    char *path;
    int64_t rows, bytes;
    char *checksum;    /* "sha256:<hex>" of the uncompressed NDJSON */
    char *job_id;      /* NULL until assigned */
    bool loaded;       /* its load job is done and checked */
} mbq_load_part;

void mbq_load_parts_free(mbq_load_part *parts, int n);

/* The parts of table run `table_run_id` in order; *n = 0 when it has none.
 * Free with mbq_load_parts_free. */
int mbq_journal_parts_get(mbq_journal *j, mbq_load_part **out, int *n, int64_t table_run_id);

/* Replace the parts of `table_run_id` with parts[0..n) in one transaction
 * (n = 0 deletes them). */
int mbq_journal_parts_set(mbq_journal *j, int64_t table_run_id, const mbq_load_part *parts,
                          int n);

/* Record part `part`'s job id and whether it is loaded. */
int mbq_journal_part_update(mbq_journal *j, int64_t table_run_id, int part, const char *job_id,
                            bool loaded);

/* ---- backfills (a first sync or full refresh read in key-range chunks) ---- */
typedef struct mbq_backfill {
    int64_t table_run_id;
    char *shadow_table;  /* the chunks' table, copied over the target at the end */
    char *mark;          /* the cursor's high-water mark before the first chunk; NULL = none */
    char *tail_low;      /* mark - lookback (the catch-up window's start) */
    char *tail_checksum; /* checksum of the rows in [tail_low, mark] read with the mark */
    int64_t chunk_rows;
    int n_chunks;
    char *schema_print;  /* the load schema the chunks were read with */
    char *copy_job_id;   /* NULL until the copy is about to run */
    int64_t planned_ms;
} mbq_backfill;

typedef enum mbq_chunk_state {
    MBQ_CHUNK_PLANNED = 0,   /* nothing read yet */
    MBQ_CHUNK_EXTRACTED = 1, /* its file (path, rows, bytes) and job id are journaled */
    MBQ_CHUNK_LOADED = 2,    /* its load job is done and holds its rows */
} mbq_chunk_state;

typedef struct mbq_backfill_chunk {
    int chunk;           /* 1-based, in key order */
    char *key_after;     /* exclusive lower key (mbq/chunks.h encoding); NULL = from the start */
    char *key_upto;      /* inclusive upper key; NULL = to the end */
    mbq_chunk_state state;
    int attempt;
    char *path;
    int64_t rows, bytes;
    char *job_id;
    int64_t part_bytes;  /* the file loads in parts of at most this; 0 = one load */
} mbq_backfill_chunk;

void mbq_backfill_clear(mbq_backfill *b);
void mbq_backfill_chunks_free(mbq_backfill_chunk *c, int n);

/* The backfill of table run `table_run_id`: *found false when it has none. */
int mbq_journal_backfill_get(mbq_journal *j, mbq_backfill *out, bool *found,
                             int64_t table_run_id);

/* Journal a plan: the backfill and its n chunks (all planned) in one
 * transaction, replacing any earlier plan of the table run. */
int mbq_journal_backfill_create(mbq_journal *j, const mbq_backfill *b,
                                const mbq_backfill_chunk *chunks, int n);

/* Forget a table run's backfill and chunks (a plan that cannot be used). */
int mbq_journal_backfill_delete(mbq_journal *j, int64_t table_run_id);

/* Record the copy job's id before it is submitted. */
int mbq_journal_backfill_set_copy(mbq_journal *j, int64_t table_run_id, const char *job_id);

/* The chunks of `table_run_id` in order; free with mbq_backfill_chunks_free. */
int mbq_journal_chunks_get(mbq_journal *j, mbq_backfill_chunk **out, int *n,
                           int64_t table_run_id);

/* Persist chunk c's state, attempt, file, rows, bytes, job id, part size. */
int mbq_journal_chunk_save(mbq_journal *j, int64_t table_run_id, const mbq_backfill_chunk *c);

/* Progress of a table run's backfill (mbq-state inspect): chunks loaded of
 * n_chunks and the rows they hold. *found false when it has none. */
int mbq_journal_backfill_progress(mbq_journal *j, bool *found, int *loaded, int *n_chunks,
                                  int64_t *rows_loaded, int64_t table_run_id);

#endif
