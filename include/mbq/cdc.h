/* Change data capture: `mbq cdc` follows the source's binlog (mbq/binlog.h)
 * and applies every insert, update and delete of the tables in `mode: cdc`
 * to BigQuery in micro-batches.
 *
 *   (no row / resnapshot) --snapshot--> snapshot --loaded--> streaming
 *                                          (file, position, job id journaled first)
 *   streaming: read events -> batch files -> closed (journaled) -> each table
 *              loaded -> merged -> batch committed + stream position moved
 *
 * A table's snapshot is one consistent snapshot whose binlog position is
 * read inside it; a transaction that ends at or before that position is in
 * the snapshot and skipped for that table, later ones are applied. Batches
 * end only at a transaction boundary; the position moves only in the same
 * SQLite transaction that marks the batch committed, after every table's
 * MERGE. A MERGE applies each key's last change of the batch, so applying a
 * batch again gives the same target: a kill anywhere resumes without loss
 * or duplicate (sql/journal/006_cdc.sql describes the journal). */
#ifndef MBQ_CDC_H
#define MBQ_CDC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mbq/config.h"

typedef struct mbq_cdc_options {
    const char *const *tables; /* only these cdc tables (NULL = every one) */
    size_t n_tables;
    bool once;            /* snapshot what needs it, apply up to the source's end position
                             read at start, exit */
    int64_t max_seconds;  /* stop (cleanly, as on SIGTERM) after this long; 0 = never */
} mbq_cdc_options;

#define MBQ_CDC_OPTIONS_INIT {NULL, 0, false, 0}

/* One `mbq cdc`: take `<state.dir>/cdc.lock`, snapshot, follow, apply.
 * Returns the exit code (mbq/exitcode.h): 0 (stopped cleanly or caught up
 * with --once), 1 a table or the stream failed (purged binlog: the message
 * names `mbq-state reset TABLE --full`), 2 config, 69 the source is
 * unreachable past the reconnect budget (--once), 74 journal or disk, 75
 * another `mbq cdc` holds the lock. */
int mbq_cdc_run(const mbq_config *cfg, const mbq_cdc_options *opts);

/* Ask a running mbq_cdc_run to stop at the next event boundary (async-
 * signal-safe: SIGTERM/SIGINT handlers call it): a batch already closed is
 * applied and committed, one still being read is abandoned (read again next
 * time), exit 0. */
void mbq_cdc_request_stop(void);

#endif
