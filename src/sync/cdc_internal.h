/* Shared between the files of change data capture (cdc.c: the follower
 * and its loop; cdc_snapshot.c: a table's snapshot; cdc_batch.c: events
 * into batch files; cdc_apply.c: load, MERGE, commit; cdc_sql.c: the
 * statements). Not a public interface; tests/test_cdc.c uses it to drive
 * the batch and apply logic with scripted events. */
#ifndef MBQ_CDC_INTERNAL_H
#define MBQ_CDC_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "mbq/binlog.h"
#include "mbq/buf.h"
#include "mbq/journal_cdc.h"
#include "sync_internal.h"

/* The columns a batch line carries besides the table's own. */
#define CDC_OP_COLUMN "_mbq_op"
#define CDC_SEQ_COLUMN "_mbq_seq"

/* One cdc table followed by this process. */
typedef struct cdc_table {
    mbq_table_config tc;      /* the config's entry (strings borrowed), mode FULL for the
                                 schema-check and snapshot code */
    table_job job;            /* schema-check's results: src, stage_schema, load_schema */
    char **keys;              /* per src column: its JSON key `"bq_name":` */
    size_t *keylen;
    size_t *pk_idx;           /* the configured key's columns in job.src */
    mbq_binlog_pos snapshot;  /* a transaction ending at or before it is in the snapshot */
    bool streaming;           /* snapshot loaded: its events are applied */
    bool failed;              /* stopped with an error (journaled); the others go on */
    bool soft_deletes;        /* deletes: soft: flag rows instead of deleting them */
    /* The open batch's file for this table. */
    int fd;                   /* -1 when the batch has no row of it yet */
    char *path;
    mbq_buf out;              /* lines not yet written */
    struct evp_md_ctx_st *sha;
    int64_t rows, bytes, n_ins, n_upd, n_del;
} cdc_table;

/* What a follower shares. */
typedef struct cdc_ctx {
    sync_ctx s;               /* cfg, journal, MySQL, BigQuery, staging dir, run id */
    cdc_table *tables;
    size_t n_tables;
    /* The open batch (not journaled until it closes). */
    mbq_binlog_pos from;      /* the committed position it starts at */
    mbq_binlog_pos boundary;  /* the last transaction boundary read */
    char *boundary_gtid;
    int64_t seq;              /* _mbq_seq of the next line */
    int64_t rows;             /* row changes in the batch */
    int64_t transactions;
    int64_t first_event_ms, last_event_ms; /* source times; 0 = none */
    int64_t opened_ms;        /* when its first row change was read (local clock) */
    bool in_tx;               /* a row event was read since the last boundary */
} cdc_ctx;

/* cdc_batch.c: events into the open batch's files. */
int cdc_table_prepare(cdc_table *t);           /* keys, pk_idx from job.src */
void cdc_table_free(cdc_table *t);
/* Append a ROWS event's changes to its table's file (skipped when the
 * event is in the table's snapshot). */
int cdc_batch_add(cdc_ctx *c, cdc_table *t, const mbq_binlog_event *ev);
/* Flush, fsync and checksum every file of the open batch and journal it
 * 'closed' (*b filled; b->batch_id 0 and nothing journaled when the batch
 * has no row change). */
int cdc_batch_close(cdc_ctx *c, mbq_cdc_batch *b);
/* Forget the open batch (its files removed): its events are read again. */
void cdc_batch_discard(cdc_ctx *c);
/* The table of a ROWS/DDL event's database.table, or NULL. */
cdc_table *cdc_table_find(cdc_ctx *c, const char *database, const char *table);

/* cdc_apply.c: load, MERGE and commit a closed batch. *abandoned true when
 * a file was gone or changed (the batch is journaled 'abandoned' and its
 * events must be read again from the committed position). */
int cdc_apply(cdc_ctx *c, mbq_cdc_batch *b, bool *abandoned);

/* cdc_snapshot.c: schema-check a table (target created, columns added) and
 * refresh its encoder; take or resume its snapshot when it needs one. */
int cdc_schema_check(cdc_ctx *c, cdc_table *t);
int cdc_snapshot(cdc_ctx *c, cdc_table *t);

/* cdc_alert.c: alert `name` (a table, "binlog stream", "lag") failing or
 * recovered, through the channels of the config; never fails. */
void cdc_alert(const cdc_ctx *c, const char *name, bool failed, const char *error);

/* cdc_sql.c: the statements. */
/* CREATE OR REPLACE TABLE last AS SELECT * FROM staging QUALIFY
 * ROW_NUMBER() OVER (PARTITION BY key ORDER BY _mbq_seq DESC) = 1 */
int cdc_sql_last(mbq_buf *b, const char *staging_ref, const char *last_ref,
                 const char *const *key, size_t n_key);
/* The MERGE of the last changes into the target: 'D' deletes (hard),
 * flags the row (soft) or leaves it (off); others update `cols` or insert. */
int cdc_sql_merge(mbq_buf *b, const char *target_ref, const char *last_ref,
                  const char *const *key, size_t n_key, const char *const *cols, size_t n_cols,
                  mbq_delete_mode deletes);

#endif
