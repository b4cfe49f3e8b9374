/* What the operator's tools read of change data capture in the journal
 * (sql/journal/006_cdc.sql): the stream's position, status and lag, each
 * cdc table's state and the row changes it got, and the batches not yet
 * committed. `mbq-state inspect`, the dashboard and /metrics use these;
 * `mbq cdc` writes the rows (mbq/journal_cdc.h).
 *
 * Reads are single SELECTs of the columns version 6 created, so they work
 * on a MBQ_JOURNAL_READONLY handle while `mbq cdc` writes, and on a journal
 * of an older version (nothing found). The one write here is a reset's:
 * mbq_journal_cdc_resnapshot. */
#ifndef MBQ_JOURNAL_CDC_READ_H
#define MBQ_JOURNAL_CDC_READ_H

#include <stdbool.h>
#include <stdint.h>

#include "mbq/journal.h"

/* The stream row (cdc_stream). Times are ms since the epoch, -1 when NULL. */
typedef struct mbq_cdc_stream_view {
    char *binlog_file;     /* everything before (file, pos) is in BigQuery */
    int64_t binlog_pos;
    char *gtid;            /* NULL when unknown */
    int64_t event_ms;      /* source time of the last event applied */
    int64_t heartbeat_ms;  /* last time the source was heard */
    int64_t caught_up_ms;  /* last time the reader had read all the source had */
    int64_t lag_ms;        /* as of updated_ms */
    int64_t pid;
    char *status;          /* running, stopped, reconnecting, failed */
    char *error;
    int64_t updated_ms;
} mbq_cdc_stream_view;

/* One cdc_tables row. */
typedef struct mbq_cdc_table_view {
    char *table_name;
    char *state;           /* snapshot, streaming, failed, resnapshot */
    char *snapshot_file;   /* NULL before the snapshot's position is known */
    int64_t snapshot_pos;
    int64_t rows_inserted, rows_updated, rows_deleted; /* through the binlog */
    int64_t last_batch_id; /* -1 when none */
    int64_t last_applied_ms;
    char *error;
    int64_t updated_ms;
} mbq_cdc_table_view;

/* Batches: those journaled 'closed' and not yet committed (a follower that
 * stopped between close and commit finishes them first), and the last
 * committed one. */
typedef struct mbq_cdc_batches_view {
    int64_t pending;           /* closed, not committed */
    int64_t committed;         /* how many ever committed */
    int64_t last_id;           /* the last committed batch; -1 when none */
    int64_t last_rows;
    int64_t last_committed_ms;
    int64_t last_apply_ms;     /* its closed -> committed time, -1 when unknown */
} mbq_cdc_batches_view;

void mbq_cdc_stream_view_clear(mbq_cdc_stream_view *s);
void mbq_cdc_table_view_clear(mbq_cdc_table_view *t);
void mbq_cdc_table_views_free(mbq_cdc_table_view *v, size_t n);

/* Does the journal know change data capture (version 6 or later)? */
bool mbq_journal_has_cdc(mbq_journal *j);

/* The stream row: *found false (*out zeroed) without one. */
int mbq_journal_cdc_read_stream(mbq_journal *j, mbq_cdc_stream_view *out, bool *found);

/* `table`'s row: *found false (*out zeroed) without one. */
int mbq_journal_cdc_read_table(mbq_journal *j, mbq_cdc_table_view *out, bool *found,
                               const char *table);

/* Every cdc_tables row, by name. Free with mbq_cdc_table_views_free. */
int mbq_journal_cdc_read_tables(mbq_journal *j, mbq_cdc_table_view **out, size_t *n);

int mbq_journal_cdc_read_batches(mbq_journal *j, mbq_cdc_batches_view *out);

/* Is a follower alive? Its status is 'running' and it wrote the stream row
 * within 3 heartbeats (it writes at each heartbeat or batch): a follower
 * killed -9 leaves 'running' behind, and this tells it from a live one. */
bool mbq_cdc_stream_up(const mbq_cdc_stream_view *s, int64_t heartbeat_ms, int64_t now_ms);

/* How far BigQuery is behind the source, in ms: the journaled lag of a live
 * follower; for a follower that is not up, that lag plus the time since it
 * last wrote (what it has not seen may be more: a lower bound, so that a
 * dead follower's lag grows rather than freezes). -1 without a stream. */
int64_t mbq_cdc_lag_now_ms(const mbq_cdc_stream_view *s, bool up, int64_t now_ms);

/* `mbq-state reset TABLE --full` on a cdc table: state 'resnapshot' (the
 * next `mbq cdc` takes a new snapshot of it), error cleared, in the
 * caller's transaction. *old_state gets the state it had (NULL: no row,
 * nothing to change: the table gets its first snapshot anyway). */
int mbq_journal_cdc_resnapshot(mbq_journal *j, char **old_state, const char *table,
                               int64_t now_ms);

#endif
