/* The reconciliation's statement builder (mbq/reconcile.h): each statement
 * form, the bound that protects rows newer than the key snapshot, and the
 * refusals. Run against the emulator and MariaDB by tests/e2e/test_deletes.py. */
#include "mbq/reconcile.h"
#include "test.h"

static const char *const one_key[] = {"id"};
static const char *const two_keys[] = {"a", "b`c"};

static mbq_reconcile_sql base(mbq_delete_mode mode)
{
    mbq_reconcile_sql o = {"`p`.`d`.`t`", "`p`.`d`.`t__mbq_keys_1`", one_key, 1,
                           "updated_at", "TIMESTAMP '2024-01-01 00:00:00.000000+00:00'", mode};
    return o;
}

static void test_hard_deletes_absent_keys_at_or_below_the_bound(void)
{
    mbq_buf b = MBQ_BUF_INIT;
    mbq_reconcile_sql o = base(MBQ_DELETES_HARD);
    CHECK_INT(mbq_reconcile_sql_apply(&b, &o), 0);
    CHECK_STR(b.ptr, "MERGE `p`.`d`.`t` AS T USING `p`.`d`.`t__mbq_keys_1` AS K ON T.`id` = K.`id` "
                     "WHEN NOT MATCHED BY SOURCE AND (T.`updated_at` IS NULL OR T.`updated_at` <= "
                     "TIMESTAMP '2024-01-01 00:00:00.000000+00:00') THEN DELETE");
    mbq_buf_free(&b);
}

static void test_soft_flags_once_and_clears_a_key_that_came_back(void)
{
    mbq_buf b = MBQ_BUF_INIT;
    mbq_reconcile_sql o = base(MBQ_DELETES_SOFT);
    CHECK_INT(mbq_reconcile_sql_apply(&b, &o), 0);
    CHECK_STR(b.ptr,
              "MERGE `p`.`d`.`t` AS T USING `p`.`d`.`t__mbq_keys_1` AS K ON T.`id` = K.`id` "
              "WHEN MATCHED AND COALESCE(T.`_mbq_deleted`, FALSE) THEN UPDATE SET "
              "`_mbq_deleted` = NULL, `_mbq_deleted_at` = NULL "
              "WHEN NOT MATCHED BY SOURCE AND (T.`updated_at` IS NULL OR T.`updated_at` <= "
              "TIMESTAMP '2024-01-01 00:00:00.000000+00:00') AND COALESCE(T.`_mbq_deleted`, FALSE) "
              "= FALSE THEN UPDATE SET `_mbq_deleted` = TRUE, `_mbq_deleted_at` = "
              "CURRENT_TIMESTAMP()");
    mbq_buf_free(&b);
}

static void test_composite_key_joins_every_column_quoted(void)
{
    mbq_buf b = MBQ_BUF_INIT;
    mbq_reconcile_sql o = base(MBQ_DELETES_HARD);
    o.key_columns = two_keys;
    o.n_key_columns = 2;
    CHECK_INT(mbq_reconcile_sql_apply(&b, &o), 0);
    CHECK_CONTAINS(b.ptr, " ON T.`a` = K.`a` AND T.`b\\`c` = K.`b\\`c` WHEN");
    mbq_buf_free(&b);
}

static void test_count_reads_would_remove_and_live_rows(void)
{
    mbq_buf b = MBQ_BUF_INIT;
    mbq_reconcile_sql o = base(MBQ_DELETES_HARD);
    CHECK_INT(mbq_reconcile_sql_count(&b, &o), 0);
    CHECK_STR(b.ptr, "SELECT COUNTIF(K.`id` IS NULL AND (T.`updated_at` IS NULL OR T.`updated_at` "
                     "<= TIMESTAMP '2024-01-01 00:00:00.000000+00:00')), COUNT(*) FROM `p`.`d`.`t` "
                     "AS T LEFT JOIN `p`.`d`.`t__mbq_keys_1` AS K ON T.`id` = K.`id`");
    mbq_buf_clear(&b);
    o.mode = MBQ_DELETES_SOFT;
    CHECK_INT(mbq_reconcile_sql_count(&b, &o), 0);
    /* Soft: rows already flagged are neither to flag nor live. */
    CHECK_CONTAINS(b.ptr, "TIMESTAMP '2024-01-01 00:00:00.000000+00:00') AND "
                          "COALESCE(T.`_mbq_deleted`, FALSE) = FALSE), "
                          "COUNTIF(COALESCE(T.`_mbq_deleted`, FALSE) = FALSE) FROM");
    mbq_buf_free(&b);
}

static void test_refuses_off_mode_and_missing_bound(void)
{
    mbq_buf b = MBQ_BUF_INIT;
    mbq_reconcile_sql o = base(MBQ_DELETES_OFF);
    CHECK_INT(mbq_reconcile_sql_apply(&b, &o), MBQ_ECONFIG);
    o = base(MBQ_DELETES_HARD);
    o.bound = NULL;
    CHECK_INT(mbq_reconcile_sql_apply(&b, &o), MBQ_ECONFIG);
    CHECK_INT(mbq_reconcile_sql_count(&b, &o), MBQ_ECONFIG);
    o.n_key_columns = 0;
    o.bound = "1";
    CHECK_INT(mbq_reconcile_sql_apply(&b, &o), MBQ_ECONFIG);
    mbq_buf_free(&b);
}

static void test_bound_literals_are_typed_and_validated(void)
{
    mbq_buf b = MBQ_BUF_INIT;
    CHECK_INT(mbq_reconcile_bound(&b, "TIMESTAMP", "2024-03-01 10:00:00.5"), 0);
    CHECK_STR(b.ptr, "TIMESTAMP '2024-03-01 10:00:00.5+00:00'");
    mbq_buf_clear(&b);
    CHECK_INT(mbq_reconcile_bound(&b, "DATETIME", "2024-03-01 10:00:00"), 0);
    CHECK_STR(b.ptr, "DATETIME '2024-03-01 10:00:00'");
    mbq_buf_clear(&b);
    CHECK_INT(mbq_reconcile_bound(&b, "INT64", "-42"), 0);
    CHECK_STR(b.ptr, "-42");
    mbq_buf_clear(&b);
    CHECK_INT(mbq_reconcile_bound(&b, "NUMERIC", "18446744073709551615"), 0);
    CHECK_STR(b.ptr, "NUMERIC '18446744073709551615'");
    mbq_buf_clear(&b);
    /* Nothing but a cursor's characters reaches the statement. */
    CHECK_INT(mbq_reconcile_bound(&b, "INT64", "1; DROP TABLE x"), MBQ_EDATA);
    CHECK_INT(mbq_reconcile_bound(&b, "TIMESTAMP", "2024' OR TRUE --"), MBQ_EDATA);
    CHECK_INT(mbq_reconcile_bound(&b, "STRING", "a"), MBQ_EDATA);
    CHECK_INT(mbq_reconcile_bound(&b, "INT64", ""), MBQ_EDATA);
    CHECK_CONTAINS(mbq_error_last(), "cursor value '' is not a INT64");
    mbq_buf_free(&b);
}

int main(void)
{
    RUN(test_hard_deletes_absent_keys_at_or_below_the_bound);
    RUN(test_soft_flags_once_and_clears_a_key_that_came_back);
    RUN(test_composite_key_joins_every_column_quoted);
    RUN(test_count_reads_would_remove_and_live_rows);
    RUN(test_refuses_off_mode_and_missing_bound);
    RUN(test_bound_literals_are_typed_and_validated);
    return test_summary();
}
