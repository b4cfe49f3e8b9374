/* The statements that apply a batch (cdc_internal.h): pure text building,
 * unit-tested in tests/test_cdc.c.
 *
 * Why two statements (a table of each key's last change, then a MERGE from
 * it) and not one MERGE whose USING is the windowed subquery: BigQuery
 * accepts a subquery in USING (MERGE reference: "source_name: ... or a
 * subquery"), but the local emulator refuses one ("source must be a
 * single-table reference", EMULATOR.md 6). Each statement has its own
 * deterministic job id, so the pair is as safe to repeat as one MERGE.
 *
 * A MERGE fails when one target row matches several source rows
 * ("UPDATE/MERGE must match at most one source row for each target row"),
 * which is why the last change per key is taken first: a batch may carry
 * many changes of one key.
 *
 * `WHERE TRUE` before QUALIFY: BigQuery has refused a QUALIFY without a
 * WHERE, GROUP BY or HAVING clause ("QUALIFY clause must be used in
 * conjunction with WHERE or GROUP BY or HAVING clause"); the no-op WHERE is
 * valid either way. */
#include <string.h>

#include "mbq/buf.h"
#include "mbq/error.h"
#include "mbq/reconcile.h"
#include "cdc_internal.h"
#include "mbq/banned.h"

/* `k1`, `k2` */
static int put_list(mbq_buf *b, const char *prefix, const char *const *cols, size_t n)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if ((rc = mbq_buf_puts(b, i ? ", " : "")) == 0 && (rc = mbq_buf_puts(b, prefix)) == 0)
            rc = mbq_buf_quote_bq_ident(b, cols[i]);
    }
    return rc;
}

int cdc_sql_last(mbq_buf *b, const char *staging_ref, const char *last_ref,
                 const char *const *key, size_t n_key)
{
    int rc;
    if (n_key == 0)
        return mbq_error_set(MBQ_ECONFIG, "a cdc table needs a primary key");
    if ((rc = mbq_buf_printf(b, "CREATE OR REPLACE TABLE %s AS SELECT * FROM %s WHERE TRUE "
                                "QUALIFY ROW_NUMBER() OVER (PARTITION BY ",
                             last_ref, staging_ref)) < 0 ||
        (rc = put_list(b, "", key, n_key)) < 0 || (rc = mbq_buf_puts(b, " ORDER BY ")) < 0 ||
        (rc = mbq_buf_quote_bq_ident(b, CDC_SEQ_COLUMN)) < 0)
        return rc;
    return mbq_buf_puts(b, " DESC) = 1");
}

/* S.`_mbq_op` = 'D' */
static int put_is_delete(mbq_buf *b, bool yes)
{
    int rc = mbq_buf_puts(b, "S.");
    if (rc == 0)
        rc = mbq_buf_quote_bq_ident(b, CDC_OP_COLUMN);
    return rc ? rc : mbq_buf_puts(b, yes ? " = 'D'" : " != 'D'");
}

static int put_update_set(mbq_buf *b, const char *const *cols, size_t n, bool soft)
{
    int rc = mbq_buf_puts(b, " THEN UPDATE SET ");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if ((rc = mbq_buf_puts(b, i ? ", " : "")) == 0 &&
            (rc = mbq_buf_quote_bq_ident(b, cols[i])) == 0 && (rc = mbq_buf_puts(b, " = S.")) == 0)
            rc = mbq_buf_quote_bq_ident(b, cols[i]);
    }
    /* Soft deletes in the same clause: a delete's row image is the row's
     * last content, and a row deleted (flagged) then inserted again is
     * live again. One WHEN MATCHED clause rather than a second one for
     * 'D': the local emulator applies the wrong one of two WHEN MATCHED
     * ... UPDATE clauses (seen: the flag stayed FALSE). */
    if (rc == 0 && soft && (rc = mbq_buf_puts(b, ", ")) == 0 &&
        (rc = mbq_buf_quote_bq_ident(b, MBQ_DELETED_COLUMN)) == 0 &&
        (rc = mbq_buf_puts(b, " = (")) == 0 && (rc = put_is_delete(b, true)) == 0 &&
        (rc = mbq_buf_puts(b, "), ")) == 0 &&
        (rc = mbq_buf_quote_bq_ident(b, MBQ_DELETED_AT_COLUMN)) == 0 &&
        (rc = mbq_buf_puts(b, " = IF(")) == 0 && (rc = put_is_delete(b, true)) == 0)
        rc = mbq_buf_puts(b, ", CURRENT_TIMESTAMP(), NULL)");
    return rc;
}

static int put_insert(mbq_buf *b, const char *const *cols, size_t n, bool soft)
{
    int rc;
    if ((rc = mbq_buf_puts(b, " THEN INSERT (")) < 0 || (rc = put_list(b, "", cols, n)) < 0)
        return rc;
    if (soft && ((rc = mbq_buf_puts(b, ", ")) < 0 ||
                 (rc = mbq_buf_quote_bq_ident(b, MBQ_DELETED_COLUMN)) < 0))
        return rc;
    if ((rc = mbq_buf_puts(b, ") VALUES (")) < 0 || (rc = put_list(b, "S.", cols, n)) < 0)
        return rc;
    return mbq_buf_puts(b, soft ? ", FALSE)" : ")");
}

int cdc_sql_merge(mbq_buf *b, const char *target_ref, const char *last_ref,
                  const char *const *key, size_t n_key, const char *const *cols, size_t n_cols,
                  mbq_delete_mode deletes)
{
    bool soft = deletes == MBQ_DELETES_SOFT;
    int rc;
    if (n_key == 0 || n_cols == 0)
        return mbq_error_set(MBQ_ECONFIG, "a cdc MERGE needs a key and columns");
    if ((rc = mbq_buf_printf(b, "MERGE %s T USING %s S ON ", target_ref, last_ref)) < 0)
        return rc;
    for (size_t i = 0; i < n_key; i++) {
        if ((rc = mbq_buf_puts(b, i ? " AND T." : "T.")) < 0 ||
            (rc = mbq_buf_quote_bq_ident(b, key[i])) < 0 || (rc = mbq_buf_puts(b, " = S.")) < 0 ||
            (rc = mbq_buf_quote_bq_ident(b, key[i])) < 0)
            return rc;
    }
    /* Hard deletes: the first WHEN MATCHED clause whose condition holds
     * acts (MERGE reference: "If there are multiple WHEN MATCHED clauses,
     * the first one whose search_condition is true is executed"). With
     * deletes: off a delete's row image (the row's last content) only
     * updates the row, which stays. */
    if (deletes == MBQ_DELETES_HARD && ((rc = mbq_buf_puts(b, " WHEN MATCHED AND ")) < 0 ||
                  (rc = put_is_delete(b, true)) < 0 || (rc = mbq_buf_puts(b, " THEN DELETE")) < 0))
        return rc;
    if ((rc = mbq_buf_puts(b, " WHEN MATCHED")) < 0 ||
        (rc = put_update_set(b, cols, n_cols, soft)) < 0 ||
        (rc = mbq_buf_puts(b, " WHEN NOT MATCHED AND ")) < 0 ||
        (rc = put_is_delete(b, false)) < 0)
        return rc;
    return put_insert(b, cols, n_cols, soft);
}
