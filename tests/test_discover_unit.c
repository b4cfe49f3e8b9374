/* Discovery's pure parts: the glob matcher and the pattern entries of the
 * config (what they accept, refuse, and which entry takes a name). */
#include <stdio.h>
#include <string.h>

#include "mbq/config.h"
#include "mbq/discover.h"
#include "mbq/error.h"
#include "test.h"

static void test_glob(void)
{
    CHECK(mbq_glob_match("*", ""));
    CHECK(mbq_glob_match("*", "any name`with odd [chars]"));
    CHECK(mbq_glob_match("orders_*", "orders_2024"));
    CHECK(mbq_glob_match("orders_*", "orders_"));
    CHECK(!mbq_glob_match("orders_*", "order_2024"));
    CHECK(mbq_glob_match("o?ders", "orders"));
    CHECK(!mbq_glob_match("o?ders", "oders"));
    CHECK(mbq_glob_match("*_backup", "x_y_backup"));
    CHECK(!mbq_glob_match("*_backup", "x_backup_y"));
    CHECK(mbq_glob_match("a*b*c", "aXbYbZc"));
    CHECK(!mbq_glob_match("a*b*c", "aXbYbZ"));
    /* Nothing but * and ? is special: brackets and backslashes are literal. */
    CHECK(mbq_glob_match("t[1]", "t[1]"));
    CHECK(!mbq_glob_match("t[1]", "t1"));
    CHECK(mbq_glob_match("a\\*", "a\\bc"));
    /* Case matters, as for table names on Linux. */
    CHECK(!mbq_glob_match("Orders*", "orders"));
}

#define BASE                                                                                      \
    "mysql: {user: u, database: d}\n"                                                             \
    "bigquery: {project_id: my-project, dataset: ds}\n"

static void test_patterns_parse(void)
{
    mbq_config *cfg = NULL;
    const char *yaml = "tables:\n"
                       "  - name: orders\n    primary_key: id\n"
                       "  - name: \"orders_*\"\n    exclude: [orders_tmp*]\n    lookback: 5m\n"
                       "  - discover: true\n    mode: full\n" BASE;
    CHECK(mbq_config_parse(&cfg, yaml, strlen(yaml), "t.yml") == 0);
    if (!cfg)
        return;
    CHECK(cfg->n_tables == 1 && cfg->n_patterns == 2);
    CHECK(strcmp(cfg->patterns[0].name, "orders_*") == 0);
    CHECK(cfg->patterns[0].n_cursor_columns == 2 &&
          strcmp(cfg->patterns[0].cursor_columns[0], "updated_at") == 0 &&
          strcmp(cfg->patterns[0].cursor_columns[1], "modified_at") == 0);
    CHECK(cfg->patterns[0].lookback_ms == 300000);
    CHECK(strcmp(cfg->patterns[1].name, "*") == 0 && cfg->patterns[1].full);
    CHECK(cfg->patterns[1].on_missing_target == MBQ_MISSING_FAIL);
    CHECK(mbq_pattern_for(cfg, "orders_2024") == 0);
    CHECK(mbq_pattern_for(cfg, "orders_tmp1") == 1); /* excluded by the first, the second takes it */
    CHECK(mbq_pattern_for(cfg, "customers") == 1);
    CHECK(cfg->lock_alert_after_ms == 3600000); /* the default */
    mbq_config_free(cfg);
}

static void expect_error(const char *tables, const char *fragment)
{
    mbq_config *cfg = NULL;
    char yaml[1024];
    snprintf(yaml, sizeof yaml, "tables:\n%s" BASE, tables);
    CHECK(mbq_config_parse(&cfg, yaml, strlen(yaml), "t.yml") == MBQ_ECONFIG);
    CHECK_CONTAINS(mbq_error_last(), fragment);
    mbq_config_free(cfg);
}

static void test_patterns_refused(void)
{
    expect_error("  - name: \"a*\"\n    primary_key: id\n",
                 "'tables[0].primary_key' cannot be set on a pattern");
    expect_error("  - discover: true\n    target: x\n", "'tables[0].target' cannot be set");
    expect_error("  - discover: true\n    name: \"a*\"\n", "both 'discover: true' and 'name'");
    expect_error("  - discover: false\n", "'tables[0].discover' is false");
    expect_error("  - name: orders\n    primary_key: id\n    exclude: [x]\n",
                 "'tables[0].exclude' is for a pattern");
    expect_error("  - discover: true\n    exlude: [x]\n", "did you mean 'exclude'");
}

static void test_metrics_file_and_lock_alert_after(void)
{
    mbq_config *cfg = NULL;
    const char *yaml = "tables: [{discover: true}]\n" BASE
                       "alerting: {lock_alert_after: 10m}\nmetrics_file: /tmp/m.prom\n";
    CHECK(mbq_config_parse(&cfg, yaml, strlen(yaml), "t.yml") == 0);
    if (!cfg)
        return;
    CHECK(cfg->lock_alert_after_ms == 600000);
    CHECK(cfg->metrics_file && strcmp(cfg->metrics_file, "/tmp/m.prom") == 0);
    mbq_config_free(cfg);
}

int main(void)
{
    RUN(test_glob);
    RUN(test_patterns_parse);
    RUN(test_patterns_refused);
    RUN(test_metrics_file_and_lock_alert_after);
    return test_summary();
}
