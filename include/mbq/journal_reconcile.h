/* The journal's record of reconciliations (sql/journal/004_reconcile.sql;
 * the machine that writes it is src/sync/reconcile.c). */
#ifndef MBQ_JOURNAL_RECONCILE_H
#define MBQ_JOURNAL_RECONCILE_H

#include <stdbool.h>
#include <stdint.h>

#include "mbq/journal.h"

typedef struct mbq_reconcile_run {
    int64_t id;
    char *run_id, *last_run_id, *table_name;
    char *mode;  /* "soft" or "hard" */
    char *state; /* "scan", "load", "apply", "done", "refused", "abandoned" */
    int64_t chunks;        /* chunks loaded */
    char *last_key;        /* the last key loaded (mysql_keys.h encoding); NULL = none yet */
    char *chunk_path;      /* the chunk scanned and not loaded yet; NULL = none */
    int64_t chunk_rows;
    char *chunk_last_key;
    char *chunk_job_id;
    bool hwm_taken;        /* hwm was read (NULL then means the table was empty) */
    char *hwm;             /* MAX(cursor) in the first chunk's snapshot */
    int64_t keys;          /* keys loaded */
    char *staging_table;
    char *apply_job_id;
    int attempt;
    int64_t target_rows;   /* -1 = not counted yet */
    int64_t rows_deleted;  /* -1 = not applied yet */
    char *error;
    int64_t started_ms, updated_ms, finished_ms;
} mbq_reconcile_run;

void mbq_reconcile_run_clear(mbq_reconcile_run *r);

/* The in-flight reconciliation of `table` (scan, load or apply): *found. */
int mbq_journal_reconcile_in_flight(mbq_journal *j, mbq_reconcile_run *out, bool *found,
                                    const char *table);

/* Start one in state 'scan' (fills r->id). MBQ_EJOURNAL when one is in
 * flight already (the unique index says so). */
int mbq_journal_reconcile_create(mbq_journal *j, mbq_reconcile_run *r);

/* Persist every mutable field of `r` in one statement (r->updated_ms set by
 * the caller). */
int mbq_journal_reconcile_save(mbq_journal *j, const mbq_reconcile_run *r);

/* When the last reconciliation of `table` ended (done or refused): ms since
 * the epoch, 0 when none has. */
int mbq_journal_reconcile_last_end(mbq_journal *j, int64_t *out, const char *table);

/* The newest reconciliations of `table` (newest first), up to `limit`. Free
 * with mbq_reconcile_runs_free. */
int mbq_journal_reconcile_recent(mbq_journal *j, mbq_reconcile_run **out, int *n,
                                 const char *table, int limit);
void mbq_reconcile_runs_free(mbq_reconcile_run *r, int n);

/* Abandon the in-flight reconciliation of `table` (mbq-state reset): 0 and
 * *n = how many (0 or 1). */
int mbq_journal_reconcile_abandon(mbq_journal *j, int *n, const char *table, int64_t now_ms);

/* Finished reconciliations whose row is not in BigQuery's metadata table
 * yet (oldest first, at most `limit`), and marking one mirrored. */
int mbq_journal_reconcile_mirror_pending(mbq_journal *j, mbq_reconcile_run **out, int *n,
                                         int limit);
int mbq_journal_reconcile_mirror_done(mbq_journal *j, int64_t id);

#endif
