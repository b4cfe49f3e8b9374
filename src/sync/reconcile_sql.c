/* The statements of a reconciliation (see mbq/reconcile.h): pure text
 * building, no I/O, so every form is unit-tested (tests/test_reconcile.c).
 *
 * Why MERGE ... WHEN NOT MATCHED BY SOURCE and not DELETE ... WHERE NOT
 * EXISTS: it is one documented DML statement either way, but the MERGE
 * joins the target with the staged keys once, and the local emulator runs
 * it correctly, while it gets correlated (NOT) EXISTS subqueries wrong and
 * deletes every row (EMULATOR.md, 13). Conditions avoid `IS NOT TRUE` for
 * the same reason (the emulator drops a MERGE clause that uses it):
 * COALESCE(x, FALSE) means the same in GoogleSQL. */
#include <string.h>

#include "mbq/buf.h"
#include "mbq/error.h"
#include "mbq/reconcile.h"
#include "mbq/banned.h"

static int check_opts(const mbq_reconcile_sql *o)
{
    if (o->mode != MBQ_DELETES_SOFT && o->mode != MBQ_DELETES_HARD)
        return mbq_error_set(MBQ_ECONFIG, "reconciliation needs deletes 'soft' or 'hard'");
    if (!o->target || !o->keys || o->n_key_columns == 0 || !o->key_columns)
        return mbq_error_set(MBQ_ECONFIG, "reconciliation needs a target, keys and a key");
    if (o->cursor && !o->bound)
        return mbq_error_set(MBQ_ECONFIG, "reconciliation of a cursor table needs a bound");
    return 0;
}

/* T.`k1` = K.`k1` AND T.`k2` = K.`k2` */
static int put_key_equal(mbq_buf *b, const mbq_reconcile_sql *o)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < o->n_key_columns; i++) {
        if ((rc = mbq_buf_puts(b, i ? " AND T." : "T.")) == 0 &&
            (rc = mbq_buf_quote_bq_ident(b, o->key_columns[i])) == 0 &&
            (rc = mbq_buf_puts(b, " = K.")) == 0)
            rc = mbq_buf_quote_bq_ident(b, o->key_columns[i]);
    }
    return rc;
}

/* (T.`cur` IS NULL OR T.`cur` <= <bound>): rows above the snapshot's
 * high-water mark may be newer than the keys and are left alone. A NULL
 * cursor can only have come with a full load (no incremental window reads
 * it), which was before the keys were read. Nothing without a cursor. */
static int put_bound(mbq_buf *b, const mbq_reconcile_sql *o)
{
    int rc;
    if (!o->cursor)
        return mbq_buf_puts(b, "TRUE");
    if ((rc = mbq_buf_puts(b, "(T.")) < 0 || (rc = mbq_buf_quote_bq_ident(b, o->cursor)) < 0 ||
        (rc = mbq_buf_puts(b, " IS NULL OR T.")) < 0 ||
        (rc = mbq_buf_quote_bq_ident(b, o->cursor)) < 0 || (rc = mbq_buf_puts(b, " <= ")) < 0 ||
        (rc = mbq_buf_puts(b, o->bound)) < 0)
        return rc;
    return mbq_buf_puts(b, ")");
}

/* COALESCE(T.`_mbq_deleted`, FALSE) */
static int put_flagged(mbq_buf *b)
{
    int rc = mbq_buf_puts(b, "COALESCE(T.");
    if (rc == 0)
        rc = mbq_buf_quote_bq_ident(b, MBQ_DELETED_COLUMN);
    return rc ? rc : mbq_buf_puts(b, ", FALSE)");
}

static int put_set(mbq_buf *b, const char *deleted, const char *at)
{
    int rc;
    if ((rc = mbq_buf_puts(b, " THEN UPDATE SET ")) < 0 ||
        (rc = mbq_buf_quote_bq_ident(b, MBQ_DELETED_COLUMN)) < 0 ||
        (rc = mbq_buf_printf(b, " = %s, ", deleted)) < 0 ||
        (rc = mbq_buf_quote_bq_ident(b, MBQ_DELETED_AT_COLUMN)) < 0)
        return rc;
    return mbq_buf_printf(b, " = %s", at);
}

int mbq_reconcile_sql_apply(mbq_buf *b, const mbq_reconcile_sql *o)
{
    int rc;
    if ((rc = check_opts(o)) < 0)
        return rc;
    if ((rc = mbq_buf_puts(b, "MERGE ")) < 0 || (rc = mbq_buf_puts(b, o->target)) < 0 ||
        (rc = mbq_buf_puts(b, " AS T USING ")) < 0 || (rc = mbq_buf_puts(b, o->keys)) < 0 ||
        (rc = mbq_buf_puts(b, " AS K ON ")) < 0 || (rc = put_key_equal(b, o)) < 0)
        return rc;
    if (o->mode == MBQ_DELETES_SOFT) {
        /* A key that is back (re-inserted with a cursor the sync had
         * already passed) is live again. */
        if ((rc = mbq_buf_puts(b, " WHEN MATCHED AND ")) < 0 || (rc = put_flagged(b)) < 0 ||
            (rc = put_set(b, "NULL", "NULL")) < 0)
            return rc;
    }
    if ((rc = mbq_buf_puts(b, " WHEN NOT MATCHED BY SOURCE AND ")) < 0 || (rc = put_bound(b, o)) < 0)
        return rc;
    if (o->mode == MBQ_DELETES_HARD)
        return mbq_buf_puts(b, " THEN DELETE");
    /* Flag once: a row flagged earlier keeps the time it was first seen
     * gone. */
    if ((rc = mbq_buf_puts(b, " AND ")) < 0 || (rc = put_flagged(b)) < 0 ||
        (rc = mbq_buf_puts(b, " = FALSE")) < 0)
        return rc;
    return put_set(b, "TRUE", "CURRENT_TIMESTAMP()");
}

int mbq_reconcile_sql_count(mbq_buf *b, const mbq_reconcile_sql *o)
{
    int rc;
    bool soft = o->mode == MBQ_DELETES_SOFT;
    if ((rc = check_opts(o)) < 0)
        return rc;
    /* A LEFT JOIN rather than NOT EXISTS for the reason at the top; the
     * staged key columns are never NULL (MySQL primary key columns are NOT
     * NULL), so K.<first key> IS NULL means "no staged key". */
    if ((rc = mbq_buf_puts(b, "SELECT COUNTIF(K.")) < 0 ||
        (rc = mbq_buf_quote_bq_ident(b, o->key_columns[0])) < 0 ||
        (rc = mbq_buf_puts(b, " IS NULL AND ")) < 0 || (rc = put_bound(b, o)) < 0)
        return rc;
    if (soft && ((rc = mbq_buf_puts(b, " AND ")) < 0 || (rc = put_flagged(b)) < 0 ||
                 (rc = mbq_buf_puts(b, " = FALSE")) < 0))
        return rc;
    if ((rc = mbq_buf_puts(b, soft ? "), COUNTIF(" : "), COUNT(*)")) < 0)
        return rc;
    if (soft && ((rc = put_flagged(b)) < 0 || (rc = mbq_buf_puts(b, " = FALSE)")) < 0))
        return rc;
    if ((rc = mbq_buf_puts(b, " FROM ")) < 0 || (rc = mbq_buf_puts(b, o->target)) < 0 ||
        (rc = mbq_buf_puts(b, " AS T LEFT JOIN ")) < 0 || (rc = mbq_buf_puts(b, o->keys)) < 0 ||
        (rc = mbq_buf_puts(b, " AS K ON ")) < 0)
        return rc;
    return put_key_equal(b, o);
}

int mbq_reconcile_bound(mbq_buf *b, const char *bq_type, const char *value)
{
    static const struct {
        const char *type, *prefix, *suffix, *chars;
    } kinds[] = {
        {"TIMESTAMP", "TIMESTAMP '", "+00:00'", "0123456789-: ."},
        {"DATETIME", "DATETIME '", "'", "0123456789-: ."},
        {"DATE", "DATE '", "'", "0123456789-"},
        {"INT64", "", "", "-0123456789"},
        {"NUMERIC", "NUMERIC '", "'", "-0123456789"},
        {"BIGNUMERIC", "BIGNUMERIC '", "'", "-0123456789"},
    };
    for (size_t i = 0; bq_type && i < sizeof kinds / sizeof kinds[0]; i++) {
        if (strcmp(bq_type, kinds[i].type) != 0)
            continue;
        /* The value goes into the statement's text: only what a cursor of
         * this type can hold gets there. */
        if (!value || !*value || strspn(value, kinds[i].chars) != strlen(value))
            return mbq_error_set(MBQ_EDATA, "cursor value '%s' is not a %s", value ? value : "",
                                 bq_type);
        return mbq_buf_printf(b, "%s%s%s", kinds[i].prefix, value, kinds[i].suffix);
    }
    return mbq_error_set(MBQ_EDATA, "a %s column cannot bound a reconciliation",
                         bq_type ? bq_type : "(unknown)");
}
