/* Read-only queries of the journal that `mbq-state serve` needs beyond
 * mbq/journal.h: the last sync run, events by kind (alerts, schema changes)
 * and event counts. Each is one SELECT in autocommit mode, so on a
 * MBQ_JOURNAL_READONLY handle it holds a WAL read snapshot only while it
 * steps: a running sync (the one writer) is never blocked, and its
 * checkpoints are held back for no longer than one query. */
#ifndef MBQ_JOURNAL_READ_H
#define MBQ_JOURNAL_READ_H

#include <stdbool.h>
#include <stdint.h>

#include "mbq/journal.h"

/* A read transaction (BEGIN DEFERRED ... COMMIT) on a read-only handle: the
 * queries between see one WAL snapshot, so a page never mixes a table's
 * state before a commit with its runs after it. A reader takes no write
 * lock and never blocks the writer; it only keeps a checkpoint from going
 * past its snapshot until it ends, so keep it short. */
int mbq_journal_read_begin(mbq_journal *j);
void mbq_journal_read_end(mbq_journal *j);

/* One `mbq sync` invocation (the runs table). */
typedef struct mbq_run_record {
    char *run_id;
    int64_t started_ms;
    int64_t finished_ms; /* 0 while running */
    char *status;        /* "running", "ok", "failed", "interrupted" */
    int tables_ok, tables_failed;
} mbq_run_record;

void mbq_run_record_clear(mbq_run_record *r);

/* The most recently started run that has finished (status not 'running'):
 * rc 0 with *found set; *out is filled when found (clear it after). */
int mbq_journal_last_finished_run(mbq_journal *j, mbq_run_record *out, bool *found);

/* The newest events whose kind starts with `kind_prefix` (e.g. "alert.",
 * "schema."), of `table` or of all tables when NULL, newest first, at most
 * `limit`. Free *out with mbq_events_free. */
int mbq_journal_events_by_kind(mbq_journal *j, mbq_event **out, int *n, const char *table,
                               const char *kind_prefix, int limit);

/* How many events of `table` in run `run_id` have a kind starting with
 * `kind_prefix`. */
int mbq_journal_events_count(mbq_journal *j, int64_t *out, const char *table, const char *run_id,
                             const char *kind_prefix);

#endif
