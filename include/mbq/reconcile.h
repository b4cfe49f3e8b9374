/* Reconciliation: deletes in MySQL reach BigQuery.
 *
 * A cursor-based sync never sees a deleted row. A reconciliation reads every
 * primary key of the source (in key-order chunks, each inside its own
 * consistent snapshot), loads the keys into a staging table, and then runs
 * ONE statement against the target:
 *
 *   hard  MERGE target T USING keys K ON <key equal>
 *         WHEN NOT MATCHED BY SOURCE AND <bound> THEN DELETE
 *   soft  MERGE target T USING keys K ON <key equal>
 *         WHEN MATCHED AND <flagged> THEN UPDATE SET _mbq_deleted = NULL, _mbq_deleted_at = NULL
 *         WHEN NOT MATCHED BY SOURCE AND <bound> AND <not flagged>
 *           THEN UPDATE SET _mbq_deleted = TRUE, _mbq_deleted_at = CURRENT_TIMESTAMP()
 *
 * <bound> is `T.cursor IS NULL OR T.cursor <= hwm`, hwm being MAX(cursor)
 * read inside the first chunk's snapshot: a target row whose cursor is
 * above it may have been written after the keys were read, and is never
 * touched. (BigQuery DML, MERGE statement: "WHEN NOT MATCHED BY SOURCE
 * [AND search_condition] THEN { merge_update_clause | merge_delete_clause }",
 * https://cloud.google.com/bigquery/docs/reference/standard-sql/dml-syntax#merge_statement)
 *
 * This header holds the statement builder (pure functions, unit-tested);
 * the machine that drives a reconciliation lives in src/sync/reconcile.c. */
#ifndef MBQ_RECONCILE_H
#define MBQ_RECONCILE_H

#include <stddef.h>

#include "mbq/buf.h"
#include "mbq/config.h"

/* The columns soft mode adds to the target (documented in the README; left
 * out of the schema comparison). */
#define MBQ_DELETED_COLUMN "_mbq_deleted"
#define MBQ_DELETED_AT_COLUMN "_mbq_deleted_at"

typedef struct mbq_reconcile_sql {
    const char *target;              /* the target, quoted: `p`.`d`.`t` */
    const char *keys;                /* the staged keys table, quoted */
    const char *const *key_columns;  /* BigQuery names of the key, in key order */
    size_t n_key_columns;
    const char *cursor;              /* BigQuery name of the cursor column; NULL = none */
    const char *bound;               /* the hwm as a typed GoogleSQL literal (mbq_reconcile_bound);
                                        required with a cursor */
    mbq_delete_mode mode;            /* SOFT or HARD */
} mbq_reconcile_sql;

/* Append the one statement that applies the reconciliation (above).
 * MBQ_ECONFIG for a mode that is not soft/hard, no key column, or a cursor
 * without a bound; MBQ_ENOMEM. */
int mbq_reconcile_sql_apply(mbq_buf *out, const mbq_reconcile_sql *o);

/* Append a SELECT of one row and two INT64 columns: the target rows the
 * statement would delete (hard) or flag (soft), and the target's live rows
 * (every row; in soft mode those not flagged). The guard and --dry-run read
 * it. Same errors as mbq_reconcile_sql_apply. */
int mbq_reconcile_sql_count(mbq_buf *out, const mbq_reconcile_sql *o);

/* Append `value` (a cursor in MySQL's text form, as the journal keeps it)
 * as a GoogleSQL literal of BigQuery type `bq_type` (TIMESTAMP, DATETIME,
 * DATE, INT64, NUMERIC, BIGNUMERIC). TIMESTAMP text is UTC (the session's
 * time_zone is +00:00) and gets an explicit +00:00, so no default time zone
 * is involved. MBQ_EDATA for a value with characters a cursor never has or
 * a type that is no cursor type. */
int mbq_reconcile_bound(mbq_buf *out, const char *bq_type, const char *value);

#endif
