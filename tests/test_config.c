/* Unit tests for the config module: every kind of error names the file,
 * line, column and key; ${VAR} substitution; defaults; enums; secrets never
 * in messages; every allocation failure leaves no leak (run under ASan). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mbq/bq.h"
#include "mbq/config.h"
#include "mbq/error.h"
#include "mbq/log.h"
#include "mbq/util.h"
#include "test.h"

/* The sections every valid config needs, after a tables section. */
#define MYSQL_BQ                                                                                   \
    "mysql:\n"                                                                                     \
    "  user: u\n"                                                                                  \
    "  database: shop\n"                                                                           \
    "bigquery:\n"                                                                                  \
    "  project_id: my-project\n"                                                                   \
    "  dataset: ds\n"

#define ONE_TABLE                                                                                  \
    "tables:\n"                                                                                    \
    "  - name: orders\n"                                                                           \
    "    primary_key: id\n"

static char last_msg[4096];

/* Parse `yaml`; on failure returns NULL and leaves the message in last_msg. */
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
    CHECK_INT(rc, 0);
    return cfg;
}

/* Parse `yaml` expecting MBQ_ECONFIG; returns the message. */
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

/* ---- unknown keys ------------------------------------------------------- */

static void test_unknown_top_key_suggests(void)
{
    const char *m = parse_err("tabels:\n  - name: a\n    primary_key: id\n" MYSQL_BQ);
    CHECK_STR(m, "cannot load config 't.yml': line 1, column 1: unknown key 'tabels' "
                 "(did you mean 'tables'?)");
}

static void test_unknown_nested_key_suggests(void)
{
    const char *m = parse_err(ONE_TABLE "    updated_colum: ts\n" MYSQL_BQ);
    CHECK_CONTAINS(m, "line 4, column 5: unknown key 'updated_colum' in 'tables[0]'");
    CHECK_CONTAINS(m, "(did you mean 'updated_column'?)");
}

static void test_unknown_key_lists_valid_keys(void)
{
    const char *m = parse_err(ONE_TABLE "mysql:\n  user: u\n  database: d\n  zzz: 1\n"
                                        "bigquery:\n  project_id: my-project\n  dataset: ds\n");
    CHECK_CONTAINS(m, "line 7, column 3: unknown key 'zzz' in 'mysql' (valid keys: host, port");
}

/* ---- missing keys ------------------------------------------------------- */

static void test_missing_required_key_in_table(void)
{
    const char *m = parse_err("tables:\n"
                              "  - name: a\n    primary_key: id\n"
                              "  - name: b\n    primary_key: id\n"
                              "  - name: c\n    updated_column: ts\n" MYSQL_BQ);
    CHECK_STR(m, "cannot load config 't.yml': line 6, column 5: missing required key "
                 "'primary_key' in 'tables[2]'");
}

static void test_missing_required_section(void)
{
    const char *m = parse_err(ONE_TABLE "bigquery:\n  project_id: my-project\n  dataset: ds\n");
    CHECK_CONTAINS(m, "line 1, column 1: missing required key 'mysql'");
    m = parse_err(ONE_TABLE "mysql:\n  user: u\n");
    CHECK_CONTAINS(m, "line 5, column 3: missing required key 'database' in 'mysql'");
}

static void test_required_key_with_empty_value(void)
{
    const char *m = parse_err(ONE_TABLE "mysql:\n  user:\n  database: d\n"
                                        "bigquery:\n  project_id: my-project\n  dataset: ds\n");
    CHECK_CONTAINS(m, "line 5, column 8: 'mysql.user' must not be empty");
    m = parse_err(ONE_TABLE "mysql:\n  user: \"\"\n  database: d\n"
                            "bigquery:\n  project_id: my-project\n  dataset: ds\n");
    CHECK_CONTAINS(m, "line 5, column 9: 'mysql.user' must not be empty");
}

static void test_empty_tables_list(void)
{
    const char *m = parse_err("tables: []\n" MYSQL_BQ);
    CHECK_CONTAINS(m, "line 1, column 9: 'tables' is empty");
}

/* ---- values of the wrong type or out of range ---------------------------- */

static void test_port_not_an_integer(void)
{
    const char *m = parse_err(ONE_TABLE "mysql:\n  user: u\n  database: d\n  port: abc\n"
                                        "bigquery:\n  project_id: my-project\n  dataset: ds\n");
    CHECK_STR(m, "cannot load config 't.yml': line 7, column 9: 'mysql.port' must be an integer "
                 "between 1 and 65535, got 'abc'");
    m = parse_err(ONE_TABLE "mysql:\n  user: u\n  database: d\n  port: 70000\n"
                            "bigquery:\n  project_id: my-project\n  dataset: ds\n");
    CHECK_CONTAINS(m, "line 7, column 9: 'mysql.port' must be an integer between 1 and 65535, "
                      "got '70000'");
    m = parse_err(ONE_TABLE "mysql:\n  user: u\n  database: d\n  port: \" 12\"\n"
                            "bigquery:\n  project_id: my-project\n  dataset: ds\n");
    CHECK_CONTAINS(m, "'mysql.port' must be an integer");
}

static void test_mapping_where_scalar_expected(void)
{
    const char *m = parse_err(ONE_TABLE "mysql:\n  user: u\n  database: d\n  port: {a: 1}\n"
                                        "bigquery:\n  project_id: my-project\n  dataset: ds\n");
    CHECK_CONTAINS(m, "line 7, column 9: 'mysql.port' must be an integer between 1 and 65535, "
                      "got a mapping");
    m = parse_err(ONE_TABLE "mysql:\n  user: [a, b]\n  database: d\n"
                            "bigquery:\n  project_id: my-project\n  dataset: ds\n");
    CHECK_CONTAINS(m, "line 5, column 9: 'mysql.user' must be a string, got a list");
}

static void test_list_where_mapping_expected(void)
{
    const char *m = parse_err(ONE_TABLE "mysql:\n  - user\n"
                                        "bigquery:\n  project_id: my-project\n  dataset: ds\n");
    CHECK_CONTAINS(m, "line 5, column 3: 'mysql' must be a mapping, got a list");
    m = parse_err("tables:\n  - orders\n" MYSQL_BQ);
    CHECK_CONTAINS(m, "line 2, column 5: 'tables[0]' must be a mapping, got a scalar");
    m = parse_err("tables:\n  orders: {primary_key: id}\n" MYSQL_BQ);
    CHECK_CONTAINS(m, "line 2, column 3: 'tables' must be a list of tables, got a mapping");
    m = parse_err("- a\n- b\n");
    CHECK_CONTAINS(m, "line 1, column 1: the top level must be a mapping of sections, got a list");
}

static void test_key_that_is_not_a_name(void)
{
    const char *m = parse_err("? [a, b]\n: 1\n" ONE_TABLE MYSQL_BQ);
    CHECK_CONTAINS(m, "line 1, column 3: keys must be plain names, got a list");
}

static void test_bad_boolean(void)
{
    const char *m = parse_err(ONE_TABLE MYSQL_BQ "  compression: maybe\n");
    CHECK_CONTAINS(m, "line 10, column 16: 'bigquery.compression' must be gzip, none, true or "
                      "false, got 'maybe'");
    m = parse_err(ONE_TABLE MYSQL_BQ "  tls_insecure: 2\n");
    CHECK_CONTAINS(m, "line 10, column 17: 'bigquery.tls_insecure' must be true or false, got '2'");
}

static void test_bad_durations(void)
{
    const char *m = parse_err(ONE_TABLE "    updated_column: ts\n    lookback: 5 minutes\n" MYSQL_BQ);
    CHECK_CONTAINS(m, "line 5, column 15: 'tables[0].lookback' must be a duration such as "
                      "'30s', '5m', '6h' or '7d', got '5 minutes'");
    m = parse_err(ONE_TABLE "    updated_column: ts\n    lookback: nan\n" MYSQL_BQ);
    CHECK_CONTAINS(m, "line 5, column 15: 'tables[0].lookback' must be a duration");
    m = parse_err(ONE_TABLE "    updated_column: ts\n    lookback: -5m\n" MYSQL_BQ);
    CHECK_CONTAINS(m, "'tables[0].lookback' must be a duration");
    m = parse_err(ONE_TABLE MYSQL_BQ "  staging_expiration: 10m\n");
    CHECK_CONTAINS(m, "line 10, column 23: 'bigquery.staging_expiration' must be at least "
                      "3600000 ms, got '10m'");
    m = parse_err(ONE_TABLE "mysql:\n  user: u\n  database: d\n  connect_timeout: 1.5s\n"
                            "bigquery:\n  project_id: my-project\n  dataset: ds\n");
    CHECK_CONTAINS(m, "line 7, column 20: 'mysql.connect_timeout' must be whole seconds");
    m = parse_err(ONE_TABLE "mysql:\n  user: u\n  database: d\n  read_timeout: 0\n"
                            "bigquery:\n  project_id: my-project\n  dataset: ds\n");
    CHECK_CONTAINS(m, "line 7, column 17: 'mysql.read_timeout' must be at least 1000 ms");
}

static void test_lookback_needs_cursor(void)
{
    const char *m = parse_err(ONE_TABLE "    lookback: 5m\n" MYSQL_BQ);
    CHECK_CONTAINS(m, "line 4, column 15: 'tables[0].lookback' needs an 'updated_column'");
}

static void test_incremental_without_cursor(void)
{
    const char *m = parse_err(ONE_TABLE "    mode: incremental\n" MYSQL_BQ);
    CHECK_CONTAINS(m, "line 4, column 11: 'tables[0].mode' is 'incremental' but no "
                      "'updated_column' is set");
}

static void test_cluster_by_limits(void)
{
    const char *m = parse_err(ONE_TABLE "    cluster_by: [a, b, c, d, e]\n" MYSQL_BQ);
    CHECK_CONTAINS(m, "line 4, column 17: 'tables[0].cluster_by' holds 5 names, at most 4");
    m = parse_err(ONE_TABLE "    cluster_by: [a, b, a]\n" MYSQL_BQ);
    CHECK_CONTAINS(m, "line 4, column 24: 'tables[0].cluster_by' lists 'a' twice");
    m = parse_err(ONE_TABLE "    cluster_by: [a, [b]]\n" MYSQL_BQ);
    CHECK_CONTAINS(m, "line 4, column 21: 'tables[0].cluster_by[1]' must be a name, got a list");
    m = parse_err(ONE_TABLE "    cluster_by: []\n" MYSQL_BQ);
    CHECK_CONTAINS(m, "line 4, column 17: 'tables[0].cluster_by' must not be an empty list");
}

static void test_partition_type_needs_partition_by(void)
{
    const char *m = parse_err(ONE_TABLE "    partition_type: HOUR\n" MYSQL_BQ);
    CHECK_CONTAINS(m, "line 4, column 21: 'tables[0].partition_type' needs 'partition_by'");
}

/* bigquery.auth: the default keeps what an endpoint override meant (no token
 * for an emulator, a token when a key file is named too); `service_account`
 * asks for OAuth through any endpoint; contradictions are refused. */
static void test_bigquery_auth(void)
{
    static const struct {
        const char *extra;
        mbq_bigquery_auth cfg;
        mbq_bq_auth_mode opts;
    } ok[] = {
        {"", MBQ_BIGQUERY_AUTH_DEFAULT, MBQ_BQ_AUTH_AUTO},
        {"  endpoint: http://127.0.0.1:9050\n", MBQ_BIGQUERY_AUTH_DEFAULT, MBQ_BQ_AUTH_AUTO},
        {"  endpoint: http://127.0.0.1:9050\n  credentials: /k.json\n", MBQ_BIGQUERY_AUTH_DEFAULT,
         MBQ_BQ_AUTH_SERVICE_ACCOUNT},
        {"  endpoint: https://front:8443\n  auth: service_account\n",
         MBQ_BIGQUERY_AUTH_SERVICE_ACCOUNT, MBQ_BQ_AUTH_SERVICE_ACCOUNT},
        {"  auth: service_account\n", MBQ_BIGQUERY_AUTH_SERVICE_ACCOUNT,
         MBQ_BQ_AUTH_SERVICE_ACCOUNT},
        {"  endpoint: http://127.0.0.1:9050\n  auth: none\n", MBQ_BIGQUERY_AUTH_NONE,
         MBQ_BQ_AUTH_NONE},
        /* Application Default Credentials, through an endpoint too. */
        {"  auth: adc\n", MBQ_BIGQUERY_AUTH_ADC, MBQ_BQ_AUTH_ADC},
        {"  endpoint: https://front:8443\n  auth: adc\n", MBQ_BIGQUERY_AUTH_ADC,
         MBQ_BQ_AUTH_ADC},
        /* Impersonating means a token, whatever the endpoint. */
        {"  impersonate_service_account: sa@p.iam.gserviceaccount.com\n",
         MBQ_BIGQUERY_AUTH_DEFAULT, MBQ_BQ_AUTH_AUTO},
        {"  endpoint: https://front:8443\n"
         "  impersonate_service_account: sa@p.iam.gserviceaccount.com\n",
         MBQ_BIGQUERY_AUTH_ADC, MBQ_BQ_AUTH_ADC},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char yaml[512];
        snprintf(yaml, sizeof yaml, ONE_TABLE MYSQL_BQ "%s", ok[i].extra);
        mbq_config *cfg = parse_ok(yaml);
        if (!cfg)
            continue;
        CHECK_INT(cfg->bigquery.auth, ok[i].cfg);
        mbq_bq_options o;
        mbq_bq_options_from_config(&o, &cfg->bigquery);
        CHECK_INT(o.auth, ok[i].opts);
        mbq_config_free(cfg);
    }
    const char *m = parse_err(ONE_TABLE MYSQL_BQ "  auth: none\n");
    CHECK_CONTAINS(m, "line 10, column 9: 'bigquery.auth: none' needs 'bigquery.endpoint'");
    m = parse_err(ONE_TABLE MYSQL_BQ "  endpoint: http://e:1\n  credentials: k.json\n"
                                     "  auth: none\n");
    CHECK_CONTAINS(m, "'bigquery.auth: none' contradicts 'bigquery.credentials'");
    m = parse_err(ONE_TABLE MYSQL_BQ "  auth: oauth\n");
    CHECK_CONTAINS(m, "unknown value 'oauth' for 'bigquery.auth'");
    m = parse_err(ONE_TABLE MYSQL_BQ "  endpoint: http://e:1\n  auth: none\n"
                                     "  impersonate_service_account: a@b.iam.gserviceaccount.com\n");
    CHECK_CONTAINS(m, "'bigquery.auth: none' contradicts 'bigquery.impersonate_service_account'");
    m = parse_err(ONE_TABLE MYSQL_BQ "  impersonate_service_account: mbq-sync\n");
    CHECK_CONTAINS(m, "'bigquery.impersonate_service_account' must be a service account email");
    mbq_config *cfg = parse_ok(ONE_TABLE MYSQL_BQ
                               "  impersonate_service_account: sa@p.iam.gserviceaccount.com\n");
    if (cfg) {
        mbq_bq_options o;
        mbq_bq_options_from_config(&o, &cfg->bigquery);
        CHECK_STR(o.impersonate, "sa@p.iam.gserviceaccount.com");
        mbq_config_free(cfg);
    }
}

/* project_id may come from the credentials against BigQuery itself, never
 * through an endpoint override (an emulator has no credentials to ask). */
static void test_project_id_optional_without_endpoint(void)
{
    mbq_config *cfg = parse_ok(ONE_TABLE "mysql:\n  host: h\n  user: u\n  database: d\n"
                                         "bigquery:\n  dataset: ds\n");
    if (cfg) {
        CHECK(cfg->bigquery.project_id == NULL);
        mbq_config_free(cfg);
    }
    const char *m = parse_err(ONE_TABLE "mysql:\n  host: h\n  user: u\n  database: d\n"
                                        "bigquery:\n  dataset: ds\n  endpoint: http://e:1\n");
    CHECK_CONTAINS(m, "project_id");
}

static void test_upload_chunk_size(void)
{
    const char *m = parse_err(ONE_TABLE MYSQL_BQ "  upload_chunk_size: 300KiB\n");
    CHECK_CONTAINS(m, "line 10, column 22: 'bigquery.upload_chunk_size' must be a multiple of "
                      "256 KiB");
    m = parse_err(ONE_TABLE MYSQL_BQ "  upload_chunk_size: 8MB\n");
    CHECK_CONTAINS(m, "line 10, column 22: 'bigquery.upload_chunk_size' must be a size in bytes "
                      "or with KiB, MiB or GiB (e.g. '8MiB'), got '8MB'");
    m = parse_err(ONE_TABLE MYSQL_BQ "  upload_chunk_size: 99999999999999999999\n");
    CHECK_CONTAINS(m, "'bigquery.upload_chunk_size' must be a size");

    const char *sizes[][2] = {{"8MiB", "8388608"}, {"256KiB", "262144"}, {"0", "0"},
                              {"524288", "524288"}, {"1 GiB", "1073741824"}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char yaml[512];
        snprintf(yaml, sizeof yaml, ONE_TABLE MYSQL_BQ "  upload_chunk_size: %s\n", sizes[i][0]);
        mbq_config *cfg = parse_ok(yaml);
        if (cfg)
            CHECK_INT(cfg->bigquery.upload_chunk_bytes, atoll(sizes[i][1]));
        mbq_config_free(cfg);
    }
}

static void test_numbers_out_of_range(void)
{
    const char *m = parse_err(ONE_TABLE MYSQL_BQ "  max_retries: 1000\n");
    CHECK_CONTAINS(m, "line 10, column 16: 'bigquery.max_retries' must be an integer between 0 "
                      "and 100, got '1000'");
}

/* ---- identifiers and names ---------------------------------------------- */

static void test_invalid_mysql_identifiers(void)
{
    char yaml[1024];
    char long_name[70];
    memset(long_name, 'x', 65);
    long_name[65] = '\0';
    snprintf(yaml, sizeof yaml, "tables:\n  - name: %s\n    primary_key: id\n" MYSQL_BQ, long_name);
    const char *m = parse_err(yaml);
    CHECK_CONTAINS(m, "line 2, column 11: invalid identifier 'xxxx");
    CHECK_CONTAINS(m, "in 'tables[0].name': MySQL identifiers are at most 64 characters");

    m = parse_err("tables:\n  - name: \"orders \"\n    primary_key: id\n" MYSQL_BQ);
    CHECK_CONTAINS(m, "line 2, column 11: invalid identifier 'orders ' in 'tables[0].name': "
                      "MySQL identifiers cannot end with a space");

    m = parse_err(ONE_TABLE "    updated_column: \"ts\\0x\"\n" MYSQL_BQ);
    CHECK_CONTAINS(m, "line 4, column 21: 'tables[0].updated_column' must not contain a NUL");

    m = parse_err("tables:\n  - name: o\n    primary_key: [id, \"\\U0001F600\"]\n" MYSQL_BQ);
    CHECK_CONTAINS(m, "line 3, column 23: invalid identifier");
    CHECK_CONTAINS(m, "in 'tables[0].primary_key[1]': MySQL identifiers cannot hold characters "
                      "beyond U+FFFF");

    /* 64 characters of two bytes each are fine: the limit is characters. */
    mbq_buf b = MBQ_BUF_INIT;
    mbq_buf_puts(&b, "tables:\n  - name: ");
    for (int i = 0; i < 64; i++)
        mbq_buf_puts(&b, "\xc3\xa9");
    mbq_buf_puts(&b, "\n    primary_key: id\n    target: t\n" MYSQL_BQ);
    mbq_config *cfg = parse_ok(b.ptr);
    mbq_config_free(cfg);
    mbq_buf_free(&b);
}

static void test_hostile_mysql_names_are_accepted_with_a_target(void)
{
    mbq_config *cfg = parse_ok("tables:\n"
                               "  - name: \"we`ird; DROP TABLE x; -- .\\\"'\"\n"
                               "    primary_key: [\"select\", \"a b\"]\n"
                               "    target: weird\n" MYSQL_BQ);
    if (cfg) {
        CHECK_STR(cfg->tables[0].name, "we`ird; DROP TABLE x; -- .\"'");
        CHECK_STR(cfg->tables[0].primary_key[1], "a b");
    }
    mbq_config_free(cfg);
}

static void test_name_that_cannot_be_a_target(void)
{
    const char *m = parse_err("tables:\n  - name: or ders\n    primary_key: id\n" MYSQL_BQ);
    CHECK_CONTAINS(m, "line 2, column 11: table 'or ders' cannot be a BigQuery table name");
    CHECK_CONTAINS(m, "set 'tables[0].target'");
    m = parse_err(ONE_TABLE "    target: or ders\n" MYSQL_BQ);
    CHECK_CONTAINS(m, "line 4, column 13: invalid identifier 'or ders' in 'tables[0].target': "
                      "only letters, digits and '_' are allowed");
}

static void test_invalid_bigquery_names(void)
{
    const char *m = parse_err(ONE_TABLE "mysql:\n  user: u\n  database: d\n"
                                        "bigquery:\n  project_id: my-project\n  dataset: my-ds\n");
    CHECK_CONTAINS(m, "line 9, column 12: invalid identifier 'my-ds' in 'bigquery.dataset'");
    m = parse_err(ONE_TABLE "mysql:\n  user: u\n  database: d\n"
                            "bigquery:\n  project_id: My_Project\n  dataset: ds\n");
    CHECK_CONTAINS(m, "line 8, column 15: invalid project id 'My_Project' in "
                      "'bigquery.project_id': project ids start with a lowercase letter");
    m = parse_err(ONE_TABLE "mysql:\n  user: u\n  database: d\n"
                            "bigquery:\n  project_id: test\n  dataset: ds\n");
    CHECK_CONTAINS(m, "line 8, column 15: invalid project id 'test' in 'bigquery.project_id': "
                      "project ids are 6 to 30 characters");
    m = parse_err(ONE_TABLE "mysql:\n  user: u\n  database: d\n"
                            "bigquery:\n  project_id: my-project-\n  dataset: ds\n");
    CHECK_CONTAINS(m, "project ids cannot end with '-'");
    m = parse_err(ONE_TABLE MYSQL_BQ "  metadata_table: \"sync meta\"\n");
    CHECK_CONTAINS(m, "line 10, column 19: invalid identifier 'sync meta' in "
                      "'bigquery.metadata_table'");
    /* An emulator takes any project name; a domain-scoped id is valid. */
    mbq_config *cfg = parse_ok(ONE_TABLE "mysql:\n  user: u\n  database: d\n"
                                         "bigquery:\n  project_id: test\n  dataset: ds\n"
                                         "  endpoint: http://127.0.0.1:9050\n");
    mbq_config_free(cfg);
    cfg = parse_ok(ONE_TABLE "mysql:\n  user: u\n  database: d\n"
                             "bigquery:\n  project_id: \"example.com:my-proj\"\n  dataset: ds\n");
    mbq_config_free(cfg);
    m = parse_err(ONE_TABLE MYSQL_BQ "  endpoint: ftp://x\n");
    CHECK_CONTAINS(m, "line 10, column 13: 'bigquery.endpoint' must be a URL starting with "
                      "'http://' or 'https://', got 'ftp://x'");
}

static void test_duplicate_table(void)
{
    const char *m = parse_err("tables:\n"
                              "  - name: customers\n    primary_key: id\n"
                              "  - name: orders\n    primary_key: id\n"
                              "  - name: orders\n    primary_key: id\n    target: orders2\n" MYSQL_BQ);
    CHECK_STR(m, "cannot load config 't.yml': line 6, column 11: duplicate table 'orders' "
                 "(first at line 4)");
}

static void test_duplicate_target(void)
{
    const char *m = parse_err("tables:\n"
                              "  - name: orders\n    primary_key: id\n"
                              "  - name: orders_v2\n    primary_key: id\n    target: Orders\n"
                              MYSQL_BQ);
    CHECK_CONTAINS(m, "line 4, column 5: duplicate target 'Orders' in 'tables[1]' (also the "
                      "target of 'orders' at line 2)");
    m = parse_err("tables:\n  - name: sync_metadata\n    primary_key: id\n" MYSQL_BQ);
    CHECK_CONTAINS(m, "line 2, column 5: 'tables[0]' targets 'sync_metadata', which is the "
                      "metadata table");
}

static void test_duplicate_key_in_mapping(void)
{
    const char *m = parse_err(ONE_TABLE "mysql:\n  user: u\n  port: 1\n  database: d\n"
                                        "  port: 2\n"
                                        "bigquery:\n  project_id: my-project\n  dataset: ds\n");
    CHECK_STR(m, "cannot load config 't.yml': line 8, column 3: duplicate key 'port' in 'mysql' "
                 "(first at line 6)");
    m = parse_err(ONE_TABLE "    primary_key: id2\n" MYSQL_BQ);
    CHECK_CONTAINS(m, "line 4, column 5: duplicate key 'primary_key' in 'tables[0]' (first at "
                      "line 3)");
    m = parse_err(ONE_TABLE MYSQL_BQ "mysql: {}\n");
    CHECK_CONTAINS(m, "line 10, column 1: duplicate key 'mysql' (first at line 4)");
}

static void test_duplicate_primary_key_column(void)
{
    const char *m = parse_err("tables:\n  - name: o\n    primary_key: [a, b, a]\n" MYSQL_BQ);
    CHECK_CONTAINS(m, "line 3, column 25: 'tables[0].primary_key' lists 'a' twice");
}

/* ---- enums -------------------------------------------------------------- */

static void test_unknown_enum_values_suggest(void)
{
    const char *m = parse_err(ONE_TABLE "    updated_column: ts\n    mode: incemental\n" MYSQL_BQ);
    CHECK_STR(m, "cannot load config 't.yml': line 5, column 11: unknown value 'incemental' for "
                 "'tables[0].mode' (did you mean 'incremental'?)");
    m = parse_err(ONE_TABLE "    mode: sometimes\n" MYSQL_BQ);
    CHECK_CONTAINS(m, "line 4, column 11: unknown value 'sometimes' for 'tables[0].mode' "
                      "(expected incremental, full or cdc)");
    m = parse_err(ONE_TABLE "    partition_by: d\n    partition_type: WEEK\n" MYSQL_BQ);
    CHECK_CONTAINS(m, "line 5, column 21: unknown value 'WEEK' for 'tables[0].partition_type' "
                      "(expected DAY, HOUR, MONTH or YEAR)");
    m = parse_err(ONE_TABLE "    on_incompatible_change: rebuld\n" MYSQL_BQ);
    CHECK_CONTAINS(m, "line 4, column 29: unknown value 'rebuld' for "
                      "'tables[0].on_incompatible_change' (did you mean 'rebuild'?)");
    m = parse_err(ONE_TABLE MYSQL_BQ "alerting:\n  telegram:\n    bot_token: \"1:abc\"\n"
                                     "    chat_id: 1\n    on: changes\n");
    CHECK_CONTAINS(m, "line 14, column 9: unknown value 'changes' for 'alerting.telegram.on' "
                      "(did you mean 'change'?)");
    m = parse_err(ONE_TABLE "mysql:\n  user: u\n  database: d\n  ssl: {mode: verify_ca}\n"
                            "bigquery:\n  project_id: my-project\n  dataset: ds\n");
    CHECK_CONTAINS(m, "line 7, column 15: unknown value 'verify_ca' for 'mysql.ssl.mode'");
    m = parse_err(ONE_TABLE MYSQL_BQ "log:\n  level: verbose\n");
    CHECK_CONTAINS(m, "line 11, column 10: unknown value 'verbose' for 'log.level' (expected "
                      "error, warn, info or debug)");
    m = parse_err(ONE_TABLE "    mode: [full]\n" MYSQL_BQ);
    CHECK_CONTAINS(m, "line 4, column 11: 'tables[0].mode' must be one of incremental, full or "
                      "cdc, got a list");
}

/* sync.jobs: tables at the same time, 1-32, with line and column when wrong. */
static void test_sync_jobs(void)
{
    mbq_config *cfg = parse_ok(ONE_TABLE MYSQL_BQ "sync:\n  jobs: 4\n");
    if (cfg) {
        CHECK_INT(cfg->sync_jobs, 4);
        mbq_config_free(cfg);
    }
    cfg = parse_ok(ONE_TABLE MYSQL_BQ);
    if (cfg) {
        CHECK_INT(cfg->sync_jobs, 0); /* not set: one table at a time */
        mbq_config_free(cfg);
    }
    const char *m = parse_err(ONE_TABLE MYSQL_BQ "sync:\n  jobs: 0\n");
    CHECK_CONTAINS(m, "line 11, column 9: 'sync.jobs' must be an integer between 1 and 32, got '0'");
    m = parse_err(ONE_TABLE MYSQL_BQ "sync:\n  jobs: 33\n");
    CHECK_CONTAINS(m, "'sync.jobs' must be an integer between 1 and 32, got '33'");
    m = parse_err(ONE_TABLE MYSQL_BQ "sync:\n  job: 2\n");
    CHECK_CONTAINS(m, "line 11, column 3: unknown key 'job' in 'sync' (did you mean 'jobs'?)");
}

/* serve: the dashboard's address and health window; neither checked for
 * reachability here (the server does that), the window at least a minute. */
static void test_serve_section(void)
{
    mbq_config *cfg = parse_ok(ONE_TABLE MYSQL_BQ "serve:\n  listen: 0.0.0.0:9090\n"
                                                  "  healthy_within: 2h\n");
    if (cfg) {
        CHECK_STR(cfg->serve_listen, "0.0.0.0:9090");
        CHECK_INT(cfg->serve_healthy_within_ms, 7200000);
        mbq_config_free(cfg);
    }
    cfg = parse_ok(ONE_TABLE MYSQL_BQ);
    if (cfg) {
        CHECK(cfg->serve_listen == NULL);
        CHECK_INT(cfg->serve_healthy_within_ms, 0); /* not set: the server's 1 h */
        mbq_config_free(cfg);
    }
    const char *m = parse_err(ONE_TABLE MYSQL_BQ "serve:\n  healthy_within: 10s\n");
    CHECK_CONTAINS(m, "line 11, column 19: 'serve.healthy_within'");
    m = parse_err(ONE_TABLE MYSQL_BQ "serve:\n  listn: x\n");
    CHECK_CONTAINS(m, "unknown key 'listn' in 'serve' (did you mean 'listen'?)");
}

/* on_missing_target: the table's own value, else bigquery's, else fail. */
static void test_on_missing_target_default_and_override(void)
{
    mbq_config *cfg = parse_ok(ONE_TABLE MYSQL_BQ);
    if (cfg) {
        CHECK_INT(cfg->bigquery.on_missing_target, MBQ_MISSING_FAIL);
        CHECK_INT(cfg->tables[0].on_missing_target, MBQ_MISSING_FAIL);
    }
    mbq_config_free(cfg);
    cfg = parse_ok("tables:\n"
                   "  - name: a\n    primary_key: id\n"
                   "  - name: b\n    primary_key: id\n    on_missing_target: fail\n" MYSQL_BQ
                   "  on_missing_target: reload\n");
    if (cfg) {
        CHECK_INT(cfg->bigquery.on_missing_target, MBQ_MISSING_RELOAD);
        CHECK_INT(cfg->tables[0].on_missing_target, MBQ_MISSING_RELOAD);
        CHECK_INT(cfg->tables[1].on_missing_target, MBQ_MISSING_FAIL);
    }
    mbq_config_free(cfg);
    cfg = parse_ok(ONE_TABLE "    on_missing_target: reload\n" MYSQL_BQ);
    if (cfg)
        CHECK_INT(cfg->tables[0].on_missing_target, MBQ_MISSING_RELOAD);
    mbq_config_free(cfg);
    const char *m = parse_err(ONE_TABLE "    on_missing_target: relaod\n" MYSQL_BQ);
    CHECK_CONTAINS(m, "unknown value 'relaod' for 'tables[0].on_missing_target' (did you mean "
                      "'reload'?)");
}

static void test_every_enum_value(void)
{
    const char *modes[] = {"incremental", "full"};
    for (int i = 0; i < 2; i++) {
        char yaml[512];
        snprintf(yaml, sizeof yaml, ONE_TABLE "    updated_column: ts\n    mode: %s\n" MYSQL_BQ,
                 modes[i]);
        mbq_config *cfg = parse_ok(yaml);
        if (cfg)
            CHECK_INT(cfg->tables[0].mode, i == 0 ? MBQ_MODE_INCREMENTAL : MBQ_MODE_FULL);
        mbq_config_free(cfg);
    }
    const char *policies[] = {"fail", "rebuild"};
    for (int i = 0; i < 2; i++) {
        char yaml[512];
        snprintf(yaml, sizeof yaml, ONE_TABLE "    on_incompatible_change: %s\n" MYSQL_BQ,
                 policies[i]);
        mbq_config *cfg = parse_ok(yaml);
        if (cfg)
            CHECK_INT(cfg->tables[0].on_incompatible_change, i);
        mbq_config_free(cfg);
    }
    const char *ptypes[][2] = {{"DAY", "DAY"}, {"HOUR", "HOUR"}, {"month", "MONTH"},
                               {"Year", "YEAR"}};
    for (int i = 0; i < 4; i++) {
        char yaml[512];
        snprintf(yaml, sizeof yaml,
                 ONE_TABLE "    partition_by: created_at\n    partition_type: %s\n" MYSQL_BQ,
                 ptypes[i][0]);
        mbq_config *cfg = parse_ok(yaml);
        if (cfg) {
            CHECK_STR(cfg->tables[0].partition_type, ptypes[i][1]);
            CHECK_STR(cfg->tables[0].partition_by, "created_at");
        }
        mbq_config_free(cfg);
    }
    const char *ons[] = {"failure", "always", "change"};
    for (int i = 0; i < 3; i++) {
        char yaml[1024];
        snprintf(yaml, sizeof yaml,
                 ONE_TABLE MYSQL_BQ "alerting:\n"
                                    "  email: {host: mail, from: a@b.c, to: x@y.z, on: %s}\n"
                                    "  telegram: {bot_token: \"12:ab\", chat_id: 5, on: %s}\n",
                 ons[i], ons[i]);
        mbq_config *cfg = parse_ok(yaml);
        if (cfg) {
            CHECK_INT(cfg->email.on, i);
            CHECK_INT(cfg->telegram.on, i);
        }
        mbq_config_free(cfg);
    }
    /* mysql.ssl: each mode, and the boolean forms. */
    struct {
        const char *ssl;
        bool on, verify;
    } ssl[] = {{"{mode: disabled}", false, true},   {"{mode: required}", true, false},
               {"{mode: verify_identity}", true, true}, {"{}", true, true},
               {"true", true, true},                 {"false", false, true},
               {"{verify_server_cert: false}", true, false}};
    for (size_t i = 0; i < sizeof ssl / sizeof ssl[0]; i++) {
        char yaml[512];
        snprintf(yaml, sizeof yaml,
                 ONE_TABLE "mysql:\n  user: u\n  database: d\n  ssl: %s\n"
                           "bigquery:\n  project_id: my-project\n  dataset: ds\n",
                 ssl[i].ssl);
        mbq_config *cfg = parse_ok(yaml);
        if (cfg) {
            CHECK_INT(cfg->mysql.ssl, ssl[i].on);
            CHECK_INT(cfg->mysql.ssl_verify_server_cert, ssl[i].verify);
        }
        mbq_config_free(cfg);
    }
    /* email tls picks the default port and the URL scheme. */
    struct {
        const char *tls, *url;
    } tls[] = {{"starttls", "smtp://mail:587"}, {"implicit", "smtps://mail:465"},
               {"none", "smtp://mail:25"}};
    for (size_t i = 0; i < 3; i++) {
        char yaml[1024];
        snprintf(yaml, sizeof yaml,
                 ONE_TABLE MYSQL_BQ "alerting:\n  email: {host: mail, tls: %s, from: a@b.c, "
                                    "to: x@y.z}\n",
                 tls[i].tls);
        mbq_config *cfg = parse_ok(yaml);
        if (cfg) {
            CHECK_STR(cfg->email.tls, tls[i].tls);
            CHECK_STR(cfg->email.smtp_url, tls[i].url);
        }
        mbq_config_free(cfg);
    }
    const char *levels[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++) {
        char yaml[512];
        snprintf(yaml, sizeof yaml, ONE_TABLE MYSQL_BQ "log: {level: %s, format: %s}\n",
                 levels[i], i % 2 ? "json" : "text");
        mbq_config *cfg = parse_ok(yaml);
        if (cfg) {
            CHECK_STR(cfg->log_level, levels[i]);
            CHECK_STR(cfg->log_format, i % 2 ? "json" : "text");
        }
        mbq_config_free(cfg);
    }
    const char *bools[][2] = {{"true", "1"}, {"false", "0"}, {"yes", "1"}, {"no", "0"},
                              {"True", "1"}, {"gzip", "1"},  {"none", "0"}};
    for (int i = 0; i < 7; i++) {
        char yaml[512];
        snprintf(yaml, sizeof yaml, ONE_TABLE MYSQL_BQ "  compression: %s\n", bools[i][0]);
        mbq_config *cfg = parse_ok(yaml);
        if (cfg)
            CHECK_INT(cfg->bigquery.compress, atoi(bools[i][1]));
        mbq_config_free(cfg);
    }
}

/* ---- mysql ssl and alerting rules ---------------------------------------- */

static void test_ssl_rules(void)
{
    const char *m = parse_err(ONE_TABLE "mysql:\n  user: u\n  database: d\n"
                                        "  ssl: {mode: verify_identity, verify_server_cert: no}\n"
                                        "bigquery:\n  project_id: my-project\n  dataset: ds\n");
    CHECK_CONTAINS(m, "line 7, column 52: 'mysql.ssl.verify_server_cert' contradicts "
                      "'mysql.ssl.mode'");
    m = parse_err(ONE_TABLE "mysql:\n  user: u\n  database: d\n  ssl:\n    cert: c.pem\n"
                            "bigquery:\n  project_id: my-project\n  dataset: ds\n");
    CHECK_CONTAINS(m, "line 8, column 5: 'mysql.ssl' needs both 'cert' and 'key'");
    m = parse_err(ONE_TABLE "mysql:\n  user: u\n  database: d\n  ssl: [a]\n"
                            "bigquery:\n  project_id: my-project\n  dataset: ds\n");
    CHECK_CONTAINS(m, "line 7, column 8: 'mysql.ssl' must be true, false or a mapping, got a list");
    m = parse_err(ONE_TABLE "mysql:\n  user: u\n  database: d\n  ssl: {mode: disabled, ca: x}\n"
                            "bigquery:\n  project_id: my-project\n  dataset: ds\n");
    CHECK_CONTAINS(m, "line 7, column 15: 'mysql.ssl.mode' is 'disabled' but certificate files");
}

static void test_enabled_channel_needs_its_keys(void)
{
    const char *m = parse_err(ONE_TABLE MYSQL_BQ "alerting:\n  email:\n    host: mail\n"
                                                 "    to: ops@example.com\n");
    CHECK_CONTAINS(m, "line 12, column 5: missing required key 'from' in 'alerting.email'");
    m = parse_err(ONE_TABLE MYSQL_BQ "alerting:\n  email:\n    host: mail\n"
                                     "    from: mbq@example.com\n");
    CHECK_CONTAINS(m, "line 12, column 5: missing required key 'to' in 'alerting.email'");
    m = parse_err(ONE_TABLE MYSQL_BQ "alerting:\n  email:\n    from: a@b.c\n    to: x@y.z\n");
    CHECK_CONTAINS(m, "line 12, column 5: missing required key 'host' (or 'smtp_url') in "
                      "'alerting.email'");
    m = parse_err(ONE_TABLE MYSQL_BQ "alerting:\n  telegram:\n    chat_id: 42\n");
    CHECK_CONTAINS(m, "line 12, column 5: missing required key 'bot_token' in "
                      "'alerting.telegram'");
    m = parse_err(ONE_TABLE MYSQL_BQ "alerting:\n  telegram:\n    bot_token: \"1:ab\"\n"
                                     "    chat_id: general\n");
    CHECK_CONTAINS(m, "line 13, column 14: 'alerting.telegram.chat_id' must be a chat number");
    m = parse_err(ONE_TABLE MYSQL_BQ "alerting:\n  email:\n    host: mail\n    from: a@b.c\n"
                                     "    to: [x@y.z, \"bad\\r\\nBcc: evil@x.y\"]\n");
    CHECK_CONTAINS(m, "line 14, column 17: 'alerting.email.to[1]' must be a plain mail address");
    CHECK(strchr(m, '\r') == NULL && strchr(m, '\n') == NULL);
    m = parse_err(ONE_TABLE MYSQL_BQ "alerting:\n  email:\n    smtp_url: smtp://m:25\n"
                                     "    host: m\n    from: a@b.c\n    to: x@y.z\n");
    CHECK_CONTAINS(m, "line 13, column 11: set either 'alerting.email.smtp_url' or "
                      "'alerting.email.host', not both");
    m = parse_err(ONE_TABLE MYSQL_BQ "alerting:\n  emial: {}\n");
    CHECK_CONTAINS(m, "line 11, column 3: unknown key 'emial' in 'alerting' (did you mean "
                      "'email'?)");

    /* enabled: false turns the checks of a half-written section off. */
    mbq_config *cfg = parse_ok(ONE_TABLE MYSQL_BQ "alerting:\n  email:\n    enabled: false\n"
                                                  "    host: mail\n"
                                                  "  telegram: {enabled: no}\n");
    if (cfg) {
        CHECK(!cfg->email.enabled);
        CHECK(!cfg->telegram.enabled);
    }
    mbq_config_free(cfg);
}

static void test_email_to_string_or_list(void)
{
    mbq_config *cfg = parse_ok(ONE_TABLE MYSQL_BQ "alerting:\n  email:\n    host: mail\n"
                                                  "    from: mbq@example.com\n"
                                                  "    to: ops@example.com\n");
    if (cfg) {
        CHECK(cfg->email.enabled);
        CHECK_INT(cfg->email.n_to, 1);
        CHECK_STR(cfg->email.to[0], "ops@example.com");
        CHECK_STR(cfg->email.smtp_url, "smtp://mail:587");
        CHECK_INT(cfg->email.port, 587);
        CHECK_INT(cfg->email.on, MBQ_ALERT_FAILURE);
        CHECK(cfg->email.tls_verify);
    }
    mbq_config_free(cfg);
    cfg = parse_ok(ONE_TABLE MYSQL_BQ "alerting:\n  email:\n    host: \"::1\"\n    port: 2525\n"
                                      "    from: mbq@example.com\n"
                                      "    to: [a@example.com, b@example.com]\n"
                                      "    tls_insecure: true\n");
    if (cfg) {
        CHECK_INT(cfg->email.n_to, 2);
        CHECK_STR(cfg->email.to[1], "b@example.com");
        CHECK_STR(cfg->email.smtp_url, "smtp://[::1]:2525");
        CHECK(!cfg->email.tls_verify);
    }
    mbq_config_free(cfg);
}

/* ---- YAML problems, files ------------------------------------------------ */

static void test_yaml_syntax_errors(void)
{
    const char *m = parse_err("tables: a: b\n");
    CHECK_STR(m, "cannot load config 't.yml': line 1, column 10: mapping values are not allowed "
                 "in this context");
    m = parse_err("mysql:\n  user: \"unterminated\n");
    CHECK_CONTAINS(m, "line 3, column 1: found unexpected end of stream (while scanning a quoted "
                      "scalar at line 2, column 9)");
    m = parse_err("mysql:\n\tuser: u\n");
    CHECK_CONTAINS(m, "line 2, column 1: found character that cannot start any token");
    m = parse_err("a: *nope\n");
    CHECK_CONTAINS(m, "line 1, column 4: found undefined alias");
    m = parse_err("tables: []\nbad: \x01\n");
    CHECK_CONTAINS(m, "line 2, column 6: control characters are not allowed");
    m = parse_err("tables: []\nbad: \xff\xfe\n");
    CHECK_CONTAINS(m, "line 2, column 6: invalid leading UTF-8 octet");
}

static void test_empty_config(void)
{
    const char *m = parse_err("");
    CHECK_STR(m, "cannot load config 't.yml': config is empty");
    m = parse_err("# only a comment\n\n   \n");
    CHECK_STR(m, "cannot load config 't.yml': config is empty");
    m = parse_err("~\n");
    CHECK_STR(m, "cannot load config 't.yml': config is empty");
}

static void test_second_document(void)
{
    const char *m = parse_err(ONE_TABLE MYSQL_BQ "---\nmore: 1\n");
    CHECK_CONTAINS(m, "line 10: a second YAML document starts here");
}

static void test_alias_cycle_does_not_hang(void)
{
    const char *m = parse_err("tables: &t [*t]\n" MYSQL_BQ);
    CHECK_CONTAINS(m, "'tables[0]' must be a mapping, got a list");
    /* Aliases of whole entries are fine (and make duplicates). */
    m = parse_err("tables:\n  - &o {name: o, primary_key: id}\n  - *o\n" MYSQL_BQ);
    CHECK_CONTAINS(m, "duplicate table 'o' (first at line 2)");
}

static char tmpdir[64];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mbq-config-test-XXXXXX");
    CHECK(mkdtemp(tmpdir) != NULL);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void test_directory_and_missing_file(void)
{
    mbq_config *cfg = NULL;
    int rc = mbq_config_load(&cfg, tmpdir);
    CHECK_INT(rc, MBQ_ECONFIG);
    CHECK(cfg == NULL);
    char want[256];
    snprintf(want, sizeof want, "cannot load config '%s': is a directory, not a file", tmpdir);
    CHECK_STR(mbq_error_last(), want);

    char path[256];
    snprintf(path, sizeof path, "%s/absent.yml", tmpdir);
    rc = mbq_config_load(&cfg, path);
    CHECK_INT(rc, MBQ_ENOTFOUND);
    CHECK_CONTAINS(mbq_error_last(), "cannot load config '");
    CHECK_CONTAINS(mbq_error_last(), "absent.yml': No such file or directory");
}

static void test_load_names_the_file(void)
{
    char path[256];
    snprintf(path, sizeof path, "%s/bad.yml", tmpdir);
    write_file(path, ONE_TABLE MYSQL_BQ "  dataset_: x\n");
    mbq_config *cfg = NULL;
    int rc = mbq_config_load(&cfg, path);
    CHECK_INT(rc, MBQ_ECONFIG);
    char want[512];
    snprintf(want, sizeof want,
             "cannot load config '%s': line 10, column 3: unknown key 'dataset_' in 'bigquery' "
             "(did you mean 'dataset'?)",
             path);
    CHECK_STR(mbq_error_last(), want);
}

/* bigquery.ca_file: a path, relative to the config file like every path,
 * and handed to the HTTP client (verification stays on). */
static void test_bigquery_ca_file(void)
{
    char path[256], want[512];
    snprintf(path, sizeof path, "%s/ca.yml", tmpdir);
    write_file(path, ONE_TABLE MYSQL_BQ "  ca_file: certs/ca.pem\n");
    mbq_config *cfg = NULL;
    CHECK_INT(mbq_config_load(&cfg, path), 0);
    if (cfg) {
        snprintf(want, sizeof want, "%s/certs/ca.pem", tmpdir);
        CHECK_STR(cfg->bigquery.ca_file, want);
        mbq_bq_options o;
        mbq_bq_options_from_config(&o, &cfg->bigquery);
        CHECK_STR(o.ca_file, want);
        CHECK(o.tls_verify);
    }
    mbq_config_free(cfg);
    cfg = parse_ok(ONE_TABLE MYSQL_BQ);
    if (cfg)
        CHECK(cfg->bigquery.ca_file == NULL);
    mbq_config_free(cfg);
}

static void test_relative_paths_follow_the_config_file(void)
{
    char path[256], want[512];
    snprintf(path, sizeof path, "%s/mbq.yml", tmpdir);
    write_file(path, ONE_TABLE MYSQL_BQ "  credentials: keys/sa.json\n"
                                        "state:\n  dir: st\n");
    mbq_config *cfg = NULL;
    CHECK_INT(mbq_config_load(&cfg, path), 0);
    if (cfg) {
        snprintf(want, sizeof want, "%s/keys/sa.json", tmpdir);
        CHECK_STR(cfg->bigquery.credentials, want);
        snprintf(want, sizeof want, "%s/st", tmpdir);
        CHECK_STR(cfg->state_dir, want);
        CHECK_STR(cfg->path, path);
    }
    mbq_config_free(cfg);

    /* Default state dir, absolute paths kept, and a path relative to the
     * working directory. */
    write_file(path, ONE_TABLE "mysql:\n  user: u\n  database: d\n"
                               "  ssl: {ca: /etc/ca.pem, cert: c.pem, key: k.pem}\n"
                               "bigquery:\n  project_id: my-project\n  dataset: ds\n");
    char cwd[256];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    CHECK_INT(chdir("/tmp"), 0);
    const char *rel = path + strlen("/tmp/");
    cfg = NULL;
    CHECK_INT(mbq_config_load(&cfg, rel), 0);
    CHECK_INT(chdir(cwd), 0);
    if (cfg) {
        snprintf(want, sizeof want, "%s/.mbq-state", tmpdir);
        CHECK_STR(cfg->state_dir, want);
        CHECK_STR(cfg->mysql.ssl_ca, "/etc/ca.pem");
        snprintf(want, sizeof want, "%s/c.pem", tmpdir);
        CHECK_STR(cfg->mysql.ssl_cert, want);
    }
    mbq_config_free(cfg);
}

/* ---- ${VAR} substitution -------------------------------------------------- */

static void test_env_substitution(void)
{
    setenv("MBQ_T_HOST", "db.internal", 1);
    setenv("MBQ_T_PORT", "3307", 1);
    setenv("MBQ_T_EMPTY", "", 1);
    unsetenv("MBQ_T_UNSET");
    mbq_config *cfg = parse_ok("tables:\n"
                               "  - name: ${MBQ_T_TABLE:-orders}\n"
                               "    primary_key: [id, \"${MBQ_T_UNSET:-k2}\"]\n"
                               "mysql:\n"
                               "  host: ${MBQ_T_HOST}\n"
                               "  port: ${MBQ_T_PORT}\n"
                               "  user: \"pre-${MBQ_T_HOST}-post\"\n"
                               "  password: \"pa$$word$x\"\n"
                               "  database: ${MBQ_T_EMPTY:-shop}\n"
                               "bigquery:\n  project_id: my-project\n  dataset: ds\n"
                               "  location: ${MBQ_T_EMPTY:-}EU\n");
    if (cfg) {
        CHECK_STR(cfg->tables[0].name, "orders");
        CHECK_STR(cfg->tables[0].primary_key[1], "k2");
        CHECK_STR(cfg->mysql.host, "db.internal");
        CHECK_INT(cfg->mysql.port, 3307);
        CHECK_STR(cfg->mysql.user, "pre-db.internal-post");
        CHECK_STR(cfg->mysql.password, "pa$word$x");
        CHECK_STR(cfg->mysql.database, "shop");
        CHECK_STR(cfg->bigquery.location, "EU");
    }
    mbq_config_free(cfg);
}

static void test_env_unset_variable(void)
{
    unsetenv("MBQ_T_UNSET");
    const char *m = parse_err(ONE_TABLE "mysql:\n  user: u\n  database: d\n"
                                        "  password: ${MBQ_T_UNSET}\n"
                                        "bigquery:\n  project_id: my-project\n  dataset: ds\n");
    CHECK_STR(m, "cannot load config 't.yml': line 7, column 13: environment variable "
                 "'MBQ_T_UNSET' is not set (used in 'mysql.password'; write ${MBQ_T_UNSET:-default} "
                 "to give a default)");
}

static void test_env_bad_references(void)
{
    const char *m = parse_err(ONE_TABLE "mysql:\n  user: ${1X}\n  database: d\n"
                                        "bigquery:\n  project_id: my-project\n  dataset: ds\n");
    CHECK_CONTAINS(m, "line 5, column 9: invalid variable reference in 'mysql.user'");
    m = parse_err(ONE_TABLE "mysql:\n  user: ${X:-abc\n  database: d\n"
                            "bigquery:\n  project_id: my-project\n  dataset: ds\n");
    CHECK_CONTAINS(m, "line 5, column 9: unterminated '${' in 'mysql.user'");
    m = parse_err(ONE_TABLE "mysql:\n  user: ${X\n  database: d\n"
                            "bigquery:\n  project_id: my-project\n  dataset: ds\n");
    CHECK_CONTAINS(m, "invalid variable reference in 'mysql.user'");
}

/* ---- secrets -------------------------------------------------------------- */

static void test_secrets_never_in_messages(void)
{
    const char *pw = "hunter2-very-secret";
    setenv("MBQ_T_PW", pw, 1);
    /* The port comes from the same variable by mistake, and the port sits
     * before the password in the file: still masked. */
    const char *m = parse_err(ONE_TABLE "mysql:\n  user: u\n  port: ${MBQ_T_PW}\n  database: d\n"
                                        "  password: ${MBQ_T_PW}\n"
                                        "bigquery:\n  project_id: my-project\n  dataset: ds\n");
    CHECK_CONTAINS(m, "line 6, column 9: 'mysql.port' must be an integer");
    CHECK(strstr(m, pw) == NULL);
    /* A neighbouring error in a later section. */
    m = parse_err(ONE_TABLE "mysql:\n  user: u\n  database: d\n  password: ${MBQ_T_PW}\n"
                            "bigquery:\n  project_id: my-project\n  dataset: \"${MBQ_T_PW}\"\n");
    CHECK_CONTAINS(m, "line 10, column 12: invalid identifier");
    CHECK(strstr(m, pw) == NULL);
    /* A secret of the wrong shape is reported without its value. */
    setenv("MBQ_T_TOKEN", "123:abc/../../evil", 1);
    m = parse_err(ONE_TABLE MYSQL_BQ "alerting:\n  telegram:\n    bot_token: ${MBQ_T_TOKEN}\n"
                                     "    chat_id: 1\n");
    CHECK_CONTAINS(m, "line 12, column 16: 'alerting.telegram.bot_token' holds a character a "
                      "bot token cannot have (value not shown");
    CHECK(strstr(m, "evil") == NULL);
    /* The email password is registered too, and the mask covers the log. */
    setenv("MBQ_T_SMTP", "smtp-pass-0042", 1);
    mbq_config *cfg = parse_ok(ONE_TABLE MYSQL_BQ "alerting:\n  email:\n    host: m\n"
                                                  "    username: u\n"
                                                  "    password: ${MBQ_T_SMTP}\n"
                                                  "    from: a@b.c\n    to: x@y.z\n");
    if (cfg)
        CHECK_STR(cfg->email.password, "smtp-pass-0042");
    char line[64];
    snprintf(line, sizeof line, "login smtp-pass-0042 failed");
    CHECK_STR(mbq_secret_mask(line), "login *** failed");
    mbq_config_free(cfg);
    /* The password is never echoed even when it is the value at fault. */
    m = parse_err(ONE_TABLE "mysql:\n  user: u\n  database: d\n  password: {x: y}\n"
                            "bigquery:\n  project_id: my-project\n  dataset: ds\n");
    CHECK_CONTAINS(m, "line 7, column 13: 'mysql.password' must be a string, got a mapping");
    mbq_secret_clear();
}

/* ---- defaults and composite keys -------------------------------------------- */

static void test_defaults(void)
{
    mbq_config *cfg = parse_ok(ONE_TABLE MYSQL_BQ);
    if (!cfg)
        return;
    const mbq_table_config *t = &cfg->tables[0];
    CHECK_STR(t->name, "orders");
    CHECK_STR(t->target, "orders");
    CHECK_INT(t->n_primary_key, 1);
    CHECK_STR(t->primary_key[0], "id");
    CHECK(t->updated_column == NULL);
    CHECK_INT(t->mode, MBQ_MODE_FULL);
    CHECK_INT(t->lookback_ms, 0);
    CHECK(t->partition_by == NULL);
    CHECK_STR(t->partition_type, "DAY");
    CHECK_INT(t->n_cluster_by, 0);
    CHECK_INT(t->on_incompatible_change, MBQ_POLICY_FAIL);
    CHECK_INT(t->line, 2);
    const mbq_mysql_config *m = &cfg->mysql;
    CHECK_STR(m->host, "127.0.0.1");
    CHECK_INT(m->port, 3306);
    CHECK(m->socket == NULL);
    CHECK(m->password == NULL);
    CHECK_INT(m->connect_timeout_s, 10);
    CHECK_INT(m->read_timeout_s, 600);
    CHECK(!m->ssl);
    CHECK(m->ssl_verify_server_cert);
    const mbq_bigquery_config *b = &cfg->bigquery;
    CHECK_STR(b->metadata_table, "sync_metadata");
    CHECK_STR(b->location, "US");
    CHECK(b->credentials == NULL);
    CHECK(b->endpoint == NULL);
    CHECK_INT(b->upload_chunk_bytes, 8 * 1024 * 1024);
    CHECK_INT(b->multipart_max_bytes, 5 * 1024 * 1024);
    CHECK(b->compress);
    CHECK_INT(b->staging_expiration_ms, 7LL * 86400 * 1000);
    CHECK_INT(b->job_timeout_ms, 6LL * 3600 * 1000);
    CHECK_INT(b->max_retries, 8);
    CHECK_INT(b->retry_max_elapsed_ms, 600000);
    CHECK(b->tls_verify);
    CHECK(!cfg->email.enabled);
    CHECK(!cfg->telegram.enabled);
    CHECK_STR(cfg->state_dir, ".mbq-state");
    CHECK(cfg->log_level == NULL);
    CHECK(cfg->log_format == NULL);
    CHECK(cfg->path == NULL);
    mbq_config_free(cfg);

    /* With a cursor the mode defaults to incremental; a socket means no
     * default host; telegram's API URL has its default. */
    cfg = parse_ok(ONE_TABLE "    updated_column: updated_at\n    lookback: 90s\n"
                             "mysql:\n  socket: /run/mysqld/mysqld.sock\n  user: u\n"
                             "  database: d\n"
                             "bigquery:\n  project_id: my-project\n  dataset: ds\n"
                             "  tls_insecure: true\n"
                             "alerting:\n  telegram: {bot_token: \"1:x\", chat_id: \"@ops_room\"}\n");
    if (cfg) {
        CHECK_INT(cfg->tables[0].mode, MBQ_MODE_INCREMENTAL);
        CHECK_INT(cfg->tables[0].lookback_ms, 90000);
        CHECK(cfg->mysql.host == NULL);
        CHECK(!cfg->bigquery.tls_verify);
        CHECK(cfg->telegram.enabled);
        CHECK_STR(cfg->telegram.api_url, "https://api.telegram.org");
        CHECK_STR(cfg->telegram.chat_id, "@ops_room");
    }
    mbq_config_free(cfg);
}

static void test_composite_keys_and_lookup(void)
{
    mbq_config *cfg = parse_ok("tables:\n"
                               "  - name: order_items\n"
                               "    primary_key: [order_id, line_no]\n"
                               "    cluster_by: customer_id\n"
                               "  - name: events\n"
                               "    primary_key:\n      - tenant\n      - id\n"
                               "    target: events_bq\n"
                               "    cluster_by: [tenant, kind, day, hour]\n" MYSQL_BQ);
    if (!cfg)
        return;
    CHECK_INT(cfg->n_tables, 2);
    CHECK_INT(cfg->tables[0].n_primary_key, 2);
    CHECK_STR(cfg->tables[0].primary_key[0], "order_id");
    CHECK_STR(cfg->tables[0].primary_key[1], "line_no");
    CHECK_INT(cfg->tables[0].n_cluster_by, 1);
    CHECK_STR(cfg->tables[0].cluster_by[0], "customer_id");
    CHECK_INT(cfg->tables[1].n_primary_key, 2);
    CHECK_STR(cfg->tables[1].primary_key[1], "id");
    CHECK_INT(cfg->tables[1].n_cluster_by, 4);
    CHECK_INT(cfg->tables[1].line, 5);
    CHECK(mbq_config_table(cfg, "events") == &cfg->tables[1]);
    CHECK(mbq_config_table(cfg, "events_bq") == &cfg->tables[1]);
    CHECK(mbq_config_table(cfg, "order_items") == &cfg->tables[0]);
    CHECK(mbq_config_table(cfg, "nope") == NULL);
    mbq_config_free(cfg);
}

static const char *source_dir(void)
{
    const char *s = getenv("MBQ_SOURCE_DIR");
    return s ? s : ".";
}

static void test_example_file_loads(void)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/config/mbq.example.yml", source_dir());
    /* The example refers to these; the defaults in it make the rest load. */
    setenv("MYSQL_PASSWORD", "example-password", 1);
    setenv("SMTP_PASSWORD", "example-smtp", 1);
    setenv("TELEGRAM_BOT_TOKEN", "123456:ABC-def_ghi", 1);
    mbq_config *cfg = NULL;
    int rc = mbq_config_load(&cfg, path);
    if (rc < 0)
        fprintf(stderr, "  %s\n", mbq_error_last());
    CHECK_INT(rc, 0);
    if (cfg) {
        CHECK(cfg->n_tables >= 2);
        CHECK(cfg->email.enabled);
        CHECK(cfg->telegram.enabled);
        CHECK_STR(cfg->mysql.password, "example-password");
    }
    mbq_config_free(cfg);
    mbq_secret_clear();
}

/* ---- allocation failures ------------------------------------------------------ */

static const char *self_path = "/proc/self/exe";

/* A config that walks most code paths, for the allocation-failure test. */
static const char *rich_config =
    "tables:\n"
    "  - name: orders\n    primary_key: [id, region]\n    updated_column: updated_at\n"
    "    lookback: 5m\n    partition_by: created_at\n    partition_type: month\n"
    "    cluster_by: [customer_id, status]\n    target: orders_bq\n"
    "  - name: customers\n    primary_key: id\n"
    "mysql:\n  host: ${MBQ_T_HOST:-db}\n  port: 3306\n  user: u\n  password: \"p$$w-secret\"\n"
    "  database: shop\n  ssl: {mode: verify_identity, ca: ca.pem, cert: c.pem, key: k.pem}\n"
    "bigquery:\n  project_id: my-project\n  dataset: ds\n  credentials: sa.json\n"
    "  upload_chunk_size: 8MiB\n  endpoint: http://127.0.0.1:9050\n"
    "  auth: service_account\n  ca_file: ca.pem\n"
    "alerting:\n  email: {host: mail, username: u, password: pw-secret, from: a@b.c,\n"
    "          to: [x@y.z, w@y.z], on: change}\n"
    "  telegram: {bot_token: \"1:abc\", chat_id: -100, api_url: http://127.0.0.1:1}\n"
    "state: {dir: st}\nlog: {level: debug, format: json}\n";

static int alloc_fail_child(void)
{
    mbq_config *cfg = NULL;
    int rc = mbq_config_parse(&cfg, rich_config, strlen(rich_config), "t.yml");
    if (getenv("MBQ_T_VERBOSE"))
        fprintf(stderr, "rc=%d allocs=%lu %s\n", rc, mbq_alloc_count(), mbq_error_last());
    mbq_config_free(cfg);
    mbq_secret_clear();
    mbq_error_clear();
    return rc == 0 || rc == MBQ_ENOMEM ? 0 : 1;
}

/* curl's torture idea: make the Nth allocation fail for every N, in a child
 * each time (the failure point is read once per process). Each run must end
 * with MBQ_ENOMEM or success and, under ASan, without a leak. */
static void test_every_allocation_failure_is_clean(void)
{
    unsigned long before = mbq_alloc_count();
    mbq_config *cfg = parse_ok(rich_config);
    unsigned long total = mbq_alloc_count() - before;
    mbq_config_free(cfg);
    mbq_secret_clear();
    CHECK(total > 20);
    int bad = 0;
    for (unsigned long n = 1; n <= total + 1 && bad < 3; n++) {
        pid_t pid = fork();
        if (pid == 0) {
            char num[32];
            snprintf(num, sizeof num, "%lu", n);
            setenv("MBQ_FAIL_ALLOC", num, 1);
            /* argv[0], not /proc/self/exe, which is valgrind under valgrind. */
            execl(self_path, self_path, "--alloc-fail-child", (char *)NULL);
            _exit(127);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "  allocation %lu of %lu: child status %d\n", n, total, status);
            bad++;
        }
    }
    CHECK_INT(bad, 0);
    printf("     (%lu allocation failure points checked)\n", total + 1);
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--alloc-fail-child") == 0)
        return alloc_fail_child();
    if (argc > 0 && strchr(argv[0], '/'))
        self_path = argv[0];
    make_tmpdir();
    RUN(test_unknown_top_key_suggests);
    RUN(test_unknown_nested_key_suggests);
    RUN(test_unknown_key_lists_valid_keys);
    RUN(test_missing_required_key_in_table);
    RUN(test_missing_required_section);
    RUN(test_required_key_with_empty_value);
    RUN(test_empty_tables_list);
    RUN(test_port_not_an_integer);
    RUN(test_mapping_where_scalar_expected);
    RUN(test_list_where_mapping_expected);
    RUN(test_key_that_is_not_a_name);
    RUN(test_bad_boolean);
    RUN(test_bad_durations);
    RUN(test_lookback_needs_cursor);
    RUN(test_incremental_without_cursor);
    RUN(test_cluster_by_limits);
    RUN(test_partition_type_needs_partition_by);
    RUN(test_project_id_optional_without_endpoint);
    RUN(test_upload_chunk_size);
    RUN(test_bigquery_auth);
    RUN(test_bigquery_ca_file);
    RUN(test_numbers_out_of_range);
    RUN(test_invalid_mysql_identifiers);
    RUN(test_hostile_mysql_names_are_accepted_with_a_target);
    RUN(test_name_that_cannot_be_a_target);
    RUN(test_invalid_bigquery_names);
    RUN(test_duplicate_table);
    RUN(test_duplicate_target);
    RUN(test_duplicate_key_in_mapping);
    RUN(test_duplicate_primary_key_column);
    RUN(test_unknown_enum_values_suggest);
    RUN(test_every_enum_value);
    RUN(test_on_missing_target_default_and_override);
    RUN(test_ssl_rules);
    RUN(test_enabled_channel_needs_its_keys);
    RUN(test_email_to_string_or_list);
    RUN(test_yaml_syntax_errors);
    RUN(test_empty_config);
    RUN(test_second_document);
    RUN(test_alias_cycle_does_not_hang);
    RUN(test_directory_and_missing_file);
    RUN(test_load_names_the_file);
    RUN(test_relative_paths_follow_the_config_file);
    RUN(test_env_substitution);
    RUN(test_env_unset_variable);
    RUN(test_env_bad_references);
    RUN(test_secrets_never_in_messages);
    RUN(test_defaults);
    RUN(test_sync_jobs);
    RUN(test_serve_section);
    RUN(test_composite_keys_and_lookup);
    RUN(test_example_file_loads);
    RUN(test_every_allocation_failure_is_clean);
    test_remove_tree(tmpdir);
    return test_summary();
}
