/* The reconciliation's statement builder (mbq/reconcile.h): each statement
 * form, the bound that protects rows newer than the key snapshot, and the
 * refusals. Run against the emulator and MariaDB by tests/e2e/test_deletes.py. */
#include "mbq/config.h"
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

/* ---- the config keys ---------------------------------------------------- */

#define CFG_TAIL "mysql:\n  user: u\n  database: shop\nbigquery:\n  project_id: my-project\n  dataset: ds\n"

static int parse_cfg(mbq_config **cfg, const char *table_keys)
{
    mbq_buf y = MBQ_BUF_INIT;
    mbq_buf_printf(&y, "tables:\n  - name: orders\n    primary_key: id\n%s" CFG_TAIL, table_keys);
    *cfg = NULL;
    mbq_error_clear();
    int rc = mbq_config_parse(cfg, y.ptr, y.len, "t.yml");
    mbq_buf_free(&y);
    return rc;
}

static void test_config_defaults_keep_deletes_off(void)
{
    mbq_config *cfg = NULL;
    CHECK_INT(parse_cfg(&cfg, "    updated_column: updated_at\n"), 0);
    if (!cfg)
        return;
    CHECK_INT(cfg->tables[0].deletes, MBQ_DELETES_OFF);
    CHECK_INT(cfg->tables[0].reconcile_every_ms, 3600 * 1000);
    CHECK(cfg->tables[0].max_delete_fraction == 0.5);
    CHECK_INT(cfg->tables[0].reconcile_chunk_rows, 1000000);
    mbq_config_free(cfg);
}

static void test_config_reads_every_deletes_key(void)
{
    mbq_config *cfg = NULL;
    CHECK_INT(parse_cfg(&cfg, "    updated_column: updated_at\n    deletes: soft\n"
                              "    reconcile_every: 15m\n    max_delete_fraction: 0.05\n"
                              "    reconcile_chunk_rows: 5000\n"),
              0);
    if (!cfg)
        return;
    CHECK_INT(cfg->tables[0].deletes, MBQ_DELETES_SOFT);
    CHECK_INT(cfg->tables[0].reconcile_every_ms, 15 * 60 * 1000);
    CHECK(cfg->tables[0].max_delete_fraction == 0.05);
    CHECK_INT(cfg->tables[0].reconcile_chunk_rows, 5000);
    mbq_config_free(cfg);
}

static void test_config_refuses_deletes_on_a_full_refresh_table(void)
{
    mbq_config *cfg = NULL;
    CHECK_INT(parse_cfg(&cfg, "    deletes: hard\n"), MBQ_ECONFIG);
    CHECK_CONTAINS(mbq_error_last(), "'tables[0].deletes' is for incremental tables: a full "
                                     "refresh replaces the whole target");
    CHECK_INT(parse_cfg(&cfg, "    updated_column: u\n    deletes: maybe\n"), MBQ_ECONFIG);
    CHECK_CONTAINS(mbq_error_last(), "deletes");
    CHECK_INT(parse_cfg(&cfg, "    updated_column: u\n    max_delete_fraction: 1.5\n"),
              MBQ_ECONFIG);
    CHECK_CONTAINS(mbq_error_last(), "'tables[0].max_delete_fraction' must be a number between 0 "
                                     "and 1, got '1.5'");
    CHECK_INT(parse_cfg(&cfg, "    updated_column: u\n    reconcile_chunk_rows: 0\n"),
              MBQ_ECONFIG);
}

int main(void)
{
    RUN(test_hard_deletes_absent_keys_at_or_below_the_bound);
    RUN(test_soft_flags_once_and_clears_a_key_that_came_back);
    RUN(test_composite_key_joins_every_column_quoted);
    RUN(test_count_reads_would_remove_and_live_rows);
    RUN(test_refuses_off_mode_and_missing_bound);
    RUN(test_bound_literals_are_typed_and_validated);
    RUN(test_config_defaults_keep_deletes_off);
    RUN(test_config_reads_every_deletes_key);
    RUN(test_config_refuses_deletes_on_a_full_refresh_table);
    return test_summary();
}
