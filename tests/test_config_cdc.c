/* Unit tests for the change-data-capture part of the config: `mode: cdc`
 * on a table entry (its keys, its deletes default) and the `cdc:` section
 * (defaults, bounds, durations, the derived server_id); every error names
 * file, line and column. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mbq/config.h"
#include "mbq/error.h"
#include "mbq/log.h"
#include "mbq/util.h"
#include "test.h"

#define MYSQL_BQ                                                                                   \
    "mysql:\n"                                                                                     \
    "  user: u\n"                                                                                  \
    "  database: shop\n"                                                                           \
    "bigquery:\n"                                                                                  \
    "  project_id: my-project\n"                                                                   \
    "  dataset: ds\n"

#define CDC_TABLE                                                                                  \
    "tables:\n"                                                                                    \
    "  - name: orders\n"                                                                           \
    "    primary_key: id\n"                                                                        \
    "    mode: cdc\n"

static char last_msg[4096];

static mbq_config *parse(const char *yaml)
{
    mbq_config *cfg = NULL;
    mbq_secret_clear();
    mbq_error_clear();
    last_msg[0] = '\0';
    int rc = mbq_config_parse(&cfg, yaml, strlen(yaml), "t.yml");
    if (rc < 0) {
        snprintf(last_msg, sizeof last_msg, "%s", mbq_error_last());
        CHECK(cfg == NULL);
        return NULL;
    }
    return cfg;
}

static const char *parse_err(const char *yaml)
{
    mbq_config *cfg = parse(yaml);
    if (cfg) {
        fprintf(stderr, "  %s: expected an error, the config loaded\n", test_current);
        test_failed_checks++;
        mbq_config_free(cfg);
        return "";
    }
    CHECK_INT(mbq_error_code(), MBQ_ECONFIG);
    CHECK(strncmp(last_msg, "cannot load config 't.yml': ", 28) == 0);
    return last_msg;
}

static mbq_config *parse_ok(const char *yaml)
{
    mbq_config *cfg = parse(yaml);
    if (!cfg) {
        fprintf(stderr, "  %s: unexpected error: %s\n", test_current, last_msg);
        test_failed_checks++;
    }
    return cfg;
}

static void test_cdc_table_and_defaults(void)
{
    mbq_config *cfg = parse_ok(CDC_TABLE MYSQL_BQ);
    if (!cfg)
        return;
    CHECK_INT(cfg->tables[0].mode, MBQ_MODE_CDC);
    CHECK(cfg->tables[0].updated_column == NULL);
    /* The binlog carries deletes: applied unless the table says otherwise. */
    CHECK_INT(cfg->tables[0].deletes, MBQ_DELETES_HARD);
    CHECK_INT(cfg->cdc.max_batch_rows, 100000);
    CHECK_INT(cfg->cdc.max_batch_delay_ms, 5000);
    CHECK_INT(cfg->cdc.heartbeat_ms, 5000);
    CHECK_INT(cfg->cdc.lag_alert_ms, 5 * 60 * 1000);
    CHECK_INT(cfg->cdc.reconnect_max_ms, 60 * 1000);
    CHECK(cfg->cdc.server_id >= UINT32_C(4000000000));
    CHECK(cfg->cdc.server_id < UINT32_C(4294967295));
    mbq_config_free(cfg);
}

static void test_cdc_table_keys(void)
{
    /* updated_column is allowed (unused), chunk_rows serves the snapshot,
     * deletes soft and off are kept. */
    mbq_config *cfg = parse_ok(CDC_TABLE "    updated_column: updated_at\n"
                                         "    chunk_rows: 50000\n"
                                         "    deletes: soft\n"
                                         "  - name: items\n    primary_key: [order_id, n]\n"
                                         "    mode: cdc\n    deletes: off\n" MYSQL_BQ);
    if (cfg) {
        CHECK_INT(cfg->tables[0].mode, MBQ_MODE_CDC);
        CHECK_STR(cfg->tables[0].updated_column, "updated_at");
        CHECK_INT(cfg->tables[0].chunk_rows, 50000);
        CHECK_INT(cfg->tables[0].deletes, MBQ_DELETES_SOFT);
        CHECK_INT(cfg->tables[1].mode, MBQ_MODE_CDC);
        CHECK_INT(cfg->tables[1].deletes, MBQ_DELETES_OFF);
        CHECK_INT(cfg->tables[1].n_primary_key, 2);
        mbq_config_free(cfg);
    }
    /* A cdc table still needs its key: the MERGE matches on it. */
    CHECK_CONTAINS(parse_err("tables:\n  - name: orders\n    mode: cdc\n" MYSQL_BQ),
                   "missing required key 'primary_key'");
    /* Keys without a meaning for a followed table are refused by name. */
    const char *m = parse_err(CDC_TABLE "    reconcile_every: 1h\n" MYSQL_BQ);
    CHECK_CONTAINS(m, "line 5, column 22: 'tables[0].reconcile_every' is not used with "
                      "'mode: cdc'");
    m = parse_err(CDC_TABLE "    updated_column: u\n    lookback: 5m\n" MYSQL_BQ);
    CHECK_CONTAINS(m, "line 6, column 15: 'tables[0].lookback' is not used with 'mode: cdc'");
    CHECK_CONTAINS(parse_err(CDC_TABLE "    max_delete_fraction: 0.1\n" MYSQL_BQ),
                   "'tables[0].max_delete_fraction' is not used with 'mode: cdc'");
    CHECK_CONTAINS(parse_err(CDC_TABLE "    reconcile_chunk_rows: 10\n" MYSQL_BQ),
                   "'tables[0].reconcile_chunk_rows' is not used with 'mode: cdc'");
    /* A misspelled mode lists cdc among the choices. */
    CHECK_CONTAINS(parse_err("tables:\n  - name: orders\n    primary_key: id\n    mode: cdcc\n"
                             MYSQL_BQ),
                   "line 4, column 11:");
}

static void test_cdc_on_a_pattern(void)
{
    const char *m = parse_err("tables:\n  - name: \"orders_*\"\n    mode: cdc\n" MYSQL_BQ);
    CHECK_CONTAINS(m, "line 3, column 11: 'tables[0].mode' is 'cdc' on a pattern: give each "
                      "table followed through the binlog an entry of its own");
}

static void test_cdc_section(void)
{
    mbq_config *cfg = parse_ok(CDC_TABLE MYSQL_BQ "cdc:\n"
                                                  "  server_id: 4242\n"
                                                  "  max_batch_rows: 5000\n"
                                                  "  max_batch_delay: 500ms\n"
                                                  "  heartbeat: 2s\n"
                                                  "  lag_alert: 0\n"
                                                  "  reconnect_max: 2m\n");
    if (cfg) {
        CHECK_INT(cfg->cdc.server_id, 4242);
        CHECK_INT(cfg->cdc.max_batch_rows, 5000);
        CHECK_INT(cfg->cdc.max_batch_delay_ms, 500);
        CHECK_INT(cfg->cdc.heartbeat_ms, 2000);
        CHECK_INT(cfg->cdc.lag_alert_ms, 0);
        CHECK_INT(cfg->cdc.reconnect_max_ms, 120000);
        mbq_config_free(cfg);
    }
    /* The top of the range is an id too. */
    cfg = parse_ok(CDC_TABLE MYSQL_BQ "cdc:\n  server_id: 4294967295\n");
    if (cfg) {
        CHECK(cfg->cdc.server_id == UINT32_C(4294967295));
        mbq_config_free(cfg);
    }
    /* An empty section keeps every default. */
    cfg = parse_ok(CDC_TABLE MYSQL_BQ "cdc:\n");
    if (cfg) {
        CHECK_INT(cfg->cdc.max_batch_rows, 100000);
        CHECK(cfg->cdc.server_id >= UINT32_C(4000000000));
        mbq_config_free(cfg);
    }
}

static void test_cdc_section_errors(void)
{
    const char *m = parse_err(CDC_TABLE MYSQL_BQ "cdc:\n  server_id: 0\n");
    CHECK_CONTAINS(m, "line 12, column 14:");
    CHECK_CONTAINS(m, "cdc.server_id");
    CHECK_CONTAINS(parse_err(CDC_TABLE MYSQL_BQ "cdc:\n  server_id: 4294967296\n"),
                   "cdc.server_id");
    CHECK_CONTAINS(parse_err(CDC_TABLE MYSQL_BQ "cdc:\n  server_id: -3\n"), "cdc.server_id");
    CHECK_CONTAINS(parse_err(CDC_TABLE MYSQL_BQ "cdc:\n  max_batch_rows: 0\n"),
                   "cdc.max_batch_rows");
    m = parse_err(CDC_TABLE MYSQL_BQ "cdc:\n  max_batch_delay: soon\n");
    CHECK_CONTAINS(m, "line 12, column 20: 'cdc.max_batch_delay' must be a duration");
    CHECK_CONTAINS(parse_err(CDC_TABLE MYSQL_BQ "cdc:\n  heartbeat: 10ms\n"),
                   "'cdc.heartbeat' must be at least 100 ms");
    CHECK_CONTAINS(parse_err(CDC_TABLE MYSQL_BQ "cdc:\n  heartbeat: 50d\n"),
                   "'cdc.heartbeat' must be at most 4294967s");
    CHECK_CONTAINS(parse_err(CDC_TABLE MYSQL_BQ "cdc:\n  reconnect_max: 500ms\n"),
                   "'cdc.reconnect_max' must be at least 1000 ms");
    m = parse_err(CDC_TABLE MYSQL_BQ "cdc:\n  serverid: 7\n");
    CHECK_CONTAINS(m, "line 12, column 3: unknown key 'serverid' in 'cdc'");
    CHECK_CONTAINS(m, "server_id");
    CHECK_CONTAINS(parse_err(CDC_TABLE MYSQL_BQ "cdc: [1]\n"), "'cdc'");
}

/* The derived id follows the state directory: the same one gives the same
 * id at every start, another one (most likely) another id. */
static void test_derived_server_id_is_stable(void)
{
    mbq_config *a = parse_ok(CDC_TABLE MYSQL_BQ "state: {dir: /var/lib/mbq/a}\n");
    mbq_config *a2 = parse_ok(CDC_TABLE MYSQL_BQ "state: {dir: /var/lib/mbq/a}\n");
    mbq_config *b = parse_ok(CDC_TABLE MYSQL_BQ "state: {dir: /var/lib/mbq/b}\n");
    if (a && a2 && b) {
        CHECK(a->cdc.server_id == a2->cdc.server_id);
        CHECK(a->cdc.server_id != b->cdc.server_id);
        CHECK(a->cdc.server_id >= UINT32_C(4000000000));
        CHECK(b->cdc.server_id >= UINT32_C(4000000000));
    }
    mbq_config_free(a);
    mbq_config_free(a2);
    mbq_config_free(b);
}

/* The sample config documents the cdc keys and loads with them. */
static void test_example_has_cdc(void)
{
    const char *src = getenv("MBQ_SOURCE_DIR");
    if (!src)
        return;
    mbq_buf path = MBQ_BUF_INIT;
    CHECK_INT(mbq_buf_printf(&path, "%s/config/mbq.example.yml", src), 0);
    FILE *f = fopen(path.ptr, "r");
    CHECK(f != NULL);
    char line[512];
    bool section = false, mode = false;
    while (f && fgets(line, sizeof line, f)) {
        section = section || strncmp(line, "#cdc:", 5) == 0 || strncmp(line, "# cdc:", 6) == 0 ||
                  strncmp(line, "cdc:", 4) == 0;
        mode = mode || strstr(line, "mode: cdc") != NULL;
    }
    if (f)
        fclose(f);
    CHECK(section);
    CHECK(mode);
    mbq_buf_free(&path);
}

int main(void)
{
    RUN(test_cdc_table_and_defaults);
    RUN(test_cdc_table_keys);
    RUN(test_cdc_on_a_pattern);
    RUN(test_cdc_section);
    RUN(test_cdc_section_errors);
    RUN(test_derived_server_id_is_stable);
    RUN(test_example_has_cdc);
    return test_summary();
}
