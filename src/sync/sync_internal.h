/* Shared between machine.c (the per-table state machine), schema.c (the
 * schema-check state) and sync.c (the run that drives the tables). Not a
 * public interface. */
#ifndef MBQ_SYNC_INTERNAL_H
#define MBQ_SYNC_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "mbq/bq.h"
#include "mbq/config.h"
#include "mbq/runfail.h"
#include "mbq/journal.h"
#include "mbq/machine.h"
#include "mbq/mysql_source.h"

/* What one run shares between its tables. */
typedef struct sync_ctx {
    const mbq_config *cfg;
    mbq_journal *j;       /* NULL in a dry run */
    mbq_mysql *my;
    mbq_bq *bq;
    const char *run_id;
    char *staging_dir;    /* <state_dir>/staging */
    bool dry_run;
    bool progress;        /* show progress lines (on a terminal only) */
    int jobs;             /* `--jobs`: also the connections one table's backfill chunks use */
} sync_ctx;

/* One table in one run. */
typedef struct table_job {
    const mbq_table_config *tc;
    mbq_table_state committed;   /* the journal's committed state at the start */
    mbq_table_run run;           /* the table run being driven (journaled) */
    bool resumed;                /* the run was found in flight */
    bool extracted_here;         /* this process took the run's snapshot (extract ran) */
    int64_t resumed_t_ms[5];     /* a caught-up resumed run's stage timings (sync.c) */
    mbq_table_schema *src;       /* MySQL schema (schema-check) */
    mbq_cursor_kind kind;
    mbq_bq_schema *stage_schema; /* the MySQL columns as BigQuery fields */
    mbq_bq_schema *load_schema;  /* what a replace load writes: target's fields + new ones */
    int64_t target_rows;         /* target's row count at schema-check (-1 unknown) */
    bool unchanged;              /* extract found exactly what was committed last time */
    bool schema_changed_since_extract; /* source columns differ from the journaled ones */
    bool preloaded;              /* extract streamed the load already (pipeline.h) */
    bool target_lost;            /* schema-check: the target was gone with a cursor committed,
                                    and is reloaded in full (on_missing_target: reload) */
    bool truncate_data_refused;  /* a WRITE_TRUNCATE_DATA load appended instead of replacing
                                    (a warehouse that does not know it): WRITE_TRUNCATE */
    bool rebuild;                /* schema-check: an incompatible change under policy 'rebuild':
                                    the whole table is reloaded into the target, whose schema
                                    the replace load then sets to load_schema */
    bool backfilled;             /* extract ran a chunked backfill of a table with a cursor:
                                    the run catches up from its mark (sync.c) */
    char **changes;              /* schema changes, human-readable, for the summary */
    size_t n_changes;
    int64_t rows_synced;
    int64_t rows_deleted;        /* by a reconciliation (deleted, or flagged in soft mode) */
    bool reconciled;             /* a reconciliation finished in this run */
    bool reconcile_refused;      /* the guard refused one (max_delete_fraction) */
    bool in_reconcile;           /* a failure now is the reconciliation's */
    int64_t t_reconcile_ms;
    int64_t started_ms;
    int result;                  /* 0 ok, <0 the error */
    char *error;
    char *failed_state;
    int prev_failures;
} table_job;

/* schema.c: the schema-check state. Reads the MySQL schema, maps it, makes
 * the target match (create it, add missing columns, widen types where
 * BigQuery allows), journals every change as an event, and fills t->src,
 * t->kind, t->stage_schema, t->load_schema, t->target_rows, t->changes. In a
 * dry run it changes nothing and only reports. */
int mbq_schema_check(sync_ctx *ctx, table_job *t);

/* Add a human-readable schema change to t->changes. */
int mbq_schema_note(table_job *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* machine.c: drive one table from its journaled state to done. 0 or the
 * error that stopped it (the run stays in flight, journaled with it). */
int mbq_machine_drive(sync_ctx *ctx, table_job *t);

/* machine.c: move a table run that is past extract (stage, merge,
 * commit-metadata) back to extract, journaled, because what it staged can no
 * longer be used; 0 and nothing done in schema-check or extract. */
int mbq_machine_restart_extract(sync_ctx *ctx, table_job *t);

/* backfill.c: the extract state of a first sync or full refresh of a table
 * with chunk_rows set (or with a chunked backfill in flight): reads the
 * table in key-range chunks into a shadow table and swaps it over the
 * target. *done true when it did (the table run is then filled as a replace
 * load ready to commit); false when the table is read in one snapshot as
 * usual (no chunk_rows, it fits one chunk, or its key cannot bound chunks). */
int mbq_backfill_extract(sync_ctx *ctx, table_job *t, bool *done);

/* `project`.`dataset`.`table` quoted for GoogleSQL. */
int mbq_bq_table_ref(mbq_buf *b, const sync_ctx *ctx, const char *table);

/* stage_parts.c: a staged file above bigquery.max_load_file_size loads in
 * parts. mbq_parts_needed: does this table run's stage go that way?
 * mbq_parts_stage: split (once, journaled), load every part not loaded yet
 * into the staging table, and for a replace copy it over the target;
 * *reextract when a file it needs is gone. mbq_parts_discard: remove a
 * table run's part files and journal rows (a new extract, or cleanup). */
bool mbq_parts_needed(sync_ctx *ctx, const table_job *t);
int mbq_parts_stage(sync_ctx *ctx, table_job *t, bool *reextract);
void mbq_parts_discard(sync_ctx *ctx, table_job *t);

/* merge_ranges.c: a MERGE into a partitioned target whose staged rows fall
 * in more than bigquery.max_partitions_per_job partitions runs once per
 * range of partitions. *out gets the ranges (a condition on the staged row
 * S for both MERGE clauses, and the range's job id), *n 0 when one MERGE
 * will do. Free with mbq_merge_ranges_free. */
typedef struct mbq_merge_range {
    char *cond;
    char *job_id;
} mbq_merge_range;
int mbq_merge_ranges(mbq_merge_range **out, size_t *n, sync_ctx *ctx, const table_job *t);
void mbq_merge_ranges_free(mbq_merge_range *r, size_t n);

/* ---- the state machine (machine.c, machine_steps.c) ---------------------- */

typedef enum step_event {
    EV_OK = 0,     /* the state's side effect is done */
    EV_MERGE,      /* extract: rows staged for a MERGE into the target */
    EV_REPLACE,    /* extract: rows replace the target's content (first or full load) */
    EV_NO_ROWS,    /* extract: nothing to load */
    EV_UNCHANGED,  /* extract: the same window and content as the last commit */
    EV_REEXTRACT,  /* stage, merge: the staged file is gone or its load failed: extract again */
    EV_RESTAGE,    /* merge: the staging table is gone (expired), the staged file is intact */
    EV_RESTART,    /* schema-check: what was staged can no longer be used (the target is
                      gone, or the source's columns changed): extract again */
    EV_BACKFILLED, /* extract: a chunked backfill loaded every chunk into its shadow table and
                      copied it over the target (backfill.c): nothing left to stage */
    EV__COUNT
} step_event;

/* A job that BigQuery ran and failed on its own side (errorResult reason
 * backendError, internalError, rateLimitExceeded, jobRateLimitExceeded:
 * mbq_bq_job_reason_transient) may run again under a new job id in this
 * run, after a backoff, at most max_retries times and within
 * retry_max_elapsed. Anything else (invalid rows, a bad query) would fail
 * again. */
typedef struct job_retry {
    int n;
    int64_t start_ms;
} job_retry;

/* Shared by machine.c and machine_steps.c (defined in one, used in the other). */
int sync_set_str(char **field, const char *value);
int sync_transition(sync_ctx *ctx, table_job *t, step_event ev);
int make_job_id(char **out, const char *kind, const table_job *t);
void remove_staged_file(table_job *t);
int check_loaded_rows(sync_ctx *ctx, table_job *t, mbq_bq_job *job, const char *table);
mbq_bq_write_disposition replace_disposition(const table_job *t);
bool job_retry_again(sync_ctx *ctx, table_job *t, job_retry *jr, int rc, const char *state);
int step_stage(sync_ctx *ctx, table_job *t, step_event *ev);
int step_merge(sync_ctx *ctx, table_job *t, step_event *ev);
int step_commit(sync_ctx *ctx, table_job *t, step_event *ev);

/* sync.c: the schema of the BigQuery metadata table (bigquery.metadata_table). */
const mbq_bq_schema *mbq_sync_metadata_schema(void);

/* runfail.c: runs that stopped before any table (see there and
 * mbq/runfail.h). */
/* End the streak: a run went through. */
void mbq_runfail_clear(const char *state_dir);

/* The run stopped before any table with `exit_code` and `error`: count it,
 * write metrics, alert by the channels' policies, add a row to the metadata
 * table. Exit 75 only once the lock has been held longer than
 * alerting.lock_alert_after (metrics either way). Never fails: what goes
 * wrong is logged. */
void mbq_runfail_notify(const mbq_config *cfg, const mbq_sync_options *opts, const char *run_id,
                        int64_t started_ms, int exit_code, const char *error);

/* reconcile.c: deletes reach BigQuery (mbq/reconcile.h).
 * mbq_reconcile_resume: finish the table's in-flight reconciliation, if
 * any, BEFORE the table syncs again (runs schema-check for it).
 * mbq_reconcile_if_due: after a successful sync, start and finish one when
 * deletes are on and reconcile_every has passed since the last one.
 * mbq_reconcile_dry_run: count what one would remove (*would) of the live
 * target rows (*live) without journaling or changing the target.
 * All: 0, or the error that stopped it (journaled with the
 * reconciliation); the guard's refusal is MBQ_EDATA with the fraction and
 * the override named. */
int mbq_reconcile_resume(sync_ctx *ctx, table_job *t);
int mbq_reconcile_if_due(sync_ctx *ctx, table_job *t);
int mbq_reconcile_dry_run(sync_ctx *ctx, table_job *t, int64_t *would, int64_t *live);

/* reconcile_mirror.c: one row per finished reconciliation into the
 * metadata table (rows_deleted), after the table runs' rows; its failure
 * is retried by the next run. */
int mbq_reconcile_mirror(sync_ctx *ctx);

#endif
