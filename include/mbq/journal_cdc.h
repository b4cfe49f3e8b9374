/* The journal's record of change data capture (sql/journal/006_cdc.sql):
 * the stream's committed binlog position, each cdc table's state and
 * snapshot position, and the batches between two transaction boundaries.
 *
 * Every write here is one SQLite transaction (WAL, synchronous=FULL) made
 * before the side effect it allows: a batch is journaled 'closed' (files
 * fsync'd, checksums recorded) before anything is loaded; a table's part is
 * journaled 'loaded'/'merged' with its job ids before the next job; the
 * batch is marked 'committed' in the same transaction that moves the
 * stream's position past it. A kill anywhere resumes from these rows.
 *
 * All functions return 0 or MBQ_EJOURNAL/MBQ_EIO (message names the journal)
 * or MBQ_ENOMEM. Strings returned through out-parameters are the caller's. */
#ifndef MBQ_JOURNAL_CDC_H
#define MBQ_JOURNAL_CDC_H

#include <stdbool.h>
#include <stdint.h>

#include "mbq/journal.h"

/* ---- the stream (one row) ---------------------------------------------- */

typedef struct mbq_cdc_stream {
    char *binlog_file; /* everything before (file, pos) is in BigQuery */
    int64_t binlog_pos;
    char *gtid;
    int64_t event_ms, heartbeat_ms, caught_up_ms, lag_ms; /* -1 when NULL */
    int64_t pid;                                          /* -1 when NULL */
    char *status; /* running, stopped, reconnecting, failed */
    char *error;
    int64_t updated_ms;
} mbq_cdc_stream;

void mbq_cdc_stream_clear(mbq_cdc_stream *s);

/* The stream's row: *found false (and *out zeroed) when no stream yet. */
int mbq_journal_cdc_stream_get(mbq_journal *j, mbq_cdc_stream *out, bool *found);

/* Create the stream row at (file, pos) unless there is one (the first
 * snapshot's position). Never moves an existing stream. */
int mbq_journal_cdc_stream_init(mbq_journal *j, const char *file, int64_t pos, int64_t now_ms);

/* The follower's status: status ('running', 'stopped', 'reconnecting',
 * 'failed'), the process id (-1 = NULL) and the error (NULL clears it). */
int mbq_journal_cdc_stream_status(mbq_journal *j, const char *status, int64_t pid,
                                  const char *error, int64_t now_ms);

/* A heartbeat or an event was read: heartbeat_ms := now; when caught_up,
 * caught_up_ms := now; lag_ms as 006 defines it (the caller computes it). */
int mbq_journal_cdc_stream_heard(mbq_journal *j, bool caught_up, int64_t lag_ms,
                                 int64_t now_ms);

/* Move the stream past transactions that changed no cdc table (no batch
 * to commit): to (file, pos), with the gtid and event time when known. */
int mbq_journal_cdc_stream_move(mbq_journal *j, const char *file, int64_t pos, const char *gtid,
                                int64_t event_ms, int64_t now_ms);

/* ---- the tables -------------------------------------------------------- */

typedef struct mbq_cdc_table {
    char *table_name;
    char *state; /* snapshot, streaming, failed, resnapshot; NULL = no row yet */
    char *snapshot_file;
    int64_t snapshot_pos;
    /* The snapshot in flight (state 'snapshot'): its staged file and the
     * load job that replaces the target with it. */
    char *snapshot_path;
    char *snapshot_checksum;
    int64_t snapshot_rows;
    char *snapshot_job_id;
    int snapshot_attempt;
    int64_t rows_inserted, rows_updated, rows_deleted;
    char *error;
} mbq_cdc_table;

void mbq_cdc_table_clear(mbq_cdc_table *t);

/* `table`'s row; a table without one gives state NULL (rc 0). */
int mbq_journal_cdc_table_get(mbq_journal *j, mbq_cdc_table *out, const char *table);

/* Journal a snapshot taken (state 'snapshot'): its binlog position, the
 * staged file (NULL when the table was empty), its rows and checksum, and
 * the load job id, all before the load job is submitted. Counters reset. */
int mbq_journal_cdc_snapshot_taken(mbq_journal *j, const mbq_cdc_table *t, int64_t now_ms);

/* The snapshot is in the target: state 'streaming', the in-flight fields
 * cleared, and the stream created at the snapshot position when there is
 * none yet (one transaction). */
int mbq_journal_cdc_snapshot_done(mbq_journal *j, const char *table, int64_t now_ms);

/* The table failed (state 'failed' with the error) or, with state NULL,
 * only record the error and keep the state. */
int mbq_journal_cdc_table_failed(mbq_journal *j, const char *table, const char *state,
                                 const char *error, int64_t now_ms);

/* ---- batches ----------------------------------------------------------- */

typedef struct mbq_cdc_batch_table {
    char *table_name;
    char *state; /* closed, loaded, merged */
    char *path;
    char *checksum;
    int64_t bytes, rows;
    int attempt;
    char *staging_table;
    char *load_job_id;
    char *merge_job_id;
    int64_t rows_inserted, rows_updated, rows_deleted;
} mbq_cdc_batch_table;

typedef struct mbq_cdc_batch {
    int64_t batch_id;
    char *from_file;
    int64_t from_pos;
    char *to_file;
    int64_t to_pos;
    char *to_gtid;
    char *state; /* closed, committed, abandoned */
    int64_t transactions, rows;
    int64_t first_event_ms, last_event_ms;
    mbq_cdc_batch_table *tables;
    int n_tables;
} mbq_cdc_batch;

void mbq_cdc_batch_clear(mbq_cdc_batch *b);

/* Journal a closed batch and its tables' files in ONE transaction (the
 * files are fsync'd before). Fills b->batch_id. */
int mbq_journal_cdc_batch_close(mbq_journal *j, mbq_cdc_batch *b, int64_t now_ms);

/* The oldest batch still 'closed' (a resume finishes it first): *found
 * false when none. */
int mbq_journal_cdc_batch_open_get(mbq_journal *j, mbq_cdc_batch *out, bool *found);

/* Persist one table's part of a batch: state, attempt, staging table, job
 * ids, the MERGE's counts. */
int mbq_journal_cdc_batch_table_save(mbq_journal *j, int64_t batch_id,
                                     const mbq_cdc_batch_table *t, int64_t now_ms);

/* Commit: in ONE transaction the batch is 'committed', the stream moves to
 * its end position (gtid, event time, lag 0 when caught_up else lag_ms),
 * and every table of the batch gets its I/U/D counters added, its
 * last_batch_id and last_applied_ms. */
int mbq_journal_cdc_batch_commit(mbq_journal *j, const mbq_cdc_batch *b, int64_t lag_ms,
                                 int64_t now_ms);

/* A closed batch that cannot be applied (a file is gone): 'abandoned'; its
 * events are read again from the binlog (the stream did not move). */
int mbq_journal_cdc_batch_abandon(mbq_journal *j, int64_t batch_id, int64_t now_ms);

#endif
