/* `mbq check`: validate config, credentials and connectivity to MySQL and
 * BigQuery and the presence of every configured table, key and cursor
 * column. Changes nothing (no dataset or table is created). */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mbq/bq.h"
#include "mbq/commands.h"
#include "mbq/config.h"
#include "mbq/error.h"
#include "mbq/exitcode.h"
#include "mbq/mysql_source.h"
#include "mbq/util.h"
#include "mbq/banned.h"

static const char check_usage[] =
    "usage: mbq check [--config FILE]\n"
    "\n"
    "Validates the config, connects to MySQL and BigQuery, and checks every\n"
    "configured table, primary key and cursor column. Changes nothing.\n"
    "exit codes: 0 all checks passed, 1 a table check failed, 2 config invalid,\n"
    "            69 MySQL or BigQuery unreachable, 77 credentials refused\n";

/* "60 days", "12 hours", "90 minutes", "3600 seconds": the largest whole
 * unit, as a user would have set it. */
static void fmt_duration(char *out, size_t n, int64_t ms)
{
    static const struct {
        int64_t ms;
        const char *unit;
    } units[] = {{86400000, "day"}, {3600000, "hour"}, {60000, "minute"}, {1000, "second"}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (ms % units[i].ms == 0 || i + 1 == sizeof units / sizeof units[0]) {
            long long v = (long long)(ms / units[i].ms);
            snprintf(out, n, "%lld %s%s", v, units[i].unit, v == 1 ? "" : "s");
            return;
        }
    }
}

/* BigQuery deletes what expires, without a trace mbq could follow: a target
 * deleted under a committed cursor stops the table (or reloads it in full,
 * on_missing_target: reload), and an expired partition takes its rows with
 * it. Not a failure, since a user may want exactly that, but said before the
 * first run. */
static int warn_dataset_expiration(mbq_bq *bq, const char *dataset)
{
    int64_t table_ms = 0, partition_ms = 0;
    char d[48];
    int rc = mbq_bq_dataset_expirations(bq, &table_ms, &partition_ms, dataset);
    if (rc < 0)
        return rc;
    if (table_ms > 0) {
        fmt_duration(d, sizeof d, table_ms);
        printf("warn  dataset '%s' has a default table expiration of %s "
               "(defaultTableExpirationMs): BigQuery deletes every table mbq creates there, "
               "targets included, %s after its creation; a deleted target stops its table "
               "(on_missing_target). Remove the default expiration, or give the targets none\n",
               dataset, d, d);
    }
    if (partition_ms > 0) {
        fmt_duration(d, sizeof d, partition_ms);
        printf("warn  dataset '%s' has a default partition expiration of %s "
               "(defaultPartitionExpirationMs): BigQuery deletes the partitions of partitioned "
               "targets %s after their partition time, with their rows, and mbq cannot see "
               "it\n",
               dataset, d, d);
    }
    return 0;
}

/* A target that exists and has an expirationTime: say when it goes. */
static int warn_target_expiration(mbq_bq *bq, const char *dataset, const mbq_table_config *tc)
{
    mbq_bq_table_info *info = NULL;
    mbq_buf when = MBQ_BUF_INIT;
    int rc = mbq_bq_table_get(&info, bq, dataset, tc->target);
    if (rc == MBQ_ENOTFOUND) {
        mbq_error_clear();
        rc = 0;
    } else if (rc == 0 && info->expiration_ms > 0) {
        rc = mbq_buf_time_iso(&when, info->expiration_ms);
        if (rc == 0)
            printf("warn  table '%s': target '%s.%s' expires at %s (expirationTime): BigQuery "
                   "deletes it then, and mbq stops the table (on_missing_target)\n",
                   tc->name, dataset, tc->target, mbq_buf_cstr(&when));
    }
    mbq_bq_table_info_free(info);
    mbq_buf_free(&when);
    return rc;
}

/* Print a failed check: "FAIL  <subject>: <message>", without repeating the
 * subject when the message already starts with it (the BigQuery client's
 * messages do: "bigquery: ..."). */
static void print_fail(const char *subject, const char *msg)
{
    size_t n = strlen(subject);
    bool has = strncmp(msg, subject, n) == 0 && msg[n] == ':';
    printf("FAIL  %s%s%s\n", has ? "" : subject, has ? "" : ": ", msg);
}

int mbq_cmd_check(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL;
    int opt, rc, exit_code;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': config_path = optarg; break;
        case 'h': fputs(check_usage, stdout); return MBQ_EXIT_OK;
        default: fputs(check_usage, stderr); return MBQ_EXIT_USAGE;
        }
    }
    mbq_config *cfg = NULL;
    mbq_mysql *my = NULL;
    mbq_bq *bq = NULL;
    bool dataset_exists = false;
    if ((exit_code = mbq_cli_load_config(&cfg, config_path, NULL, NULL)) != 0)
        return exit_code;
    printf("ok    config '%s': %zu table(s)\n", cfg->path, cfg->n_tables);

    if ((rc = mbq_mysql_connect(&my, &cfg->mysql)) < 0) {
        print_fail("mysql", mbq_error_last());
        exit_code = mbq_exit_for_error(rc);
        goto done;
    }
    printf("ok    mysql: connected to %s, database '%s'\n", mbq_mysql_where(my),
           cfg->mysql.database);

    mbq_bq_options bo;
    mbq_bq_options_from_config(&bo, &cfg->bigquery);
    /* check answers quickly: a few retries, not the sync's patience */
    bo.max_retries = 2;
    bo.retry_max_elapsed_ms = 30000;
    if ((rc = mbq_bq_new(&bq, &bo)) < 0) {
        print_fail("bigquery", mbq_error_last());
        exit_code = mbq_exit_for_error(rc);
        goto done;
    }
    bool exists = false;
    rc = mbq_bq_location_resolve(bq, &exists, cfg->bigquery.dataset);
    if (rc < 0) {
        print_fail("bigquery", mbq_error_last());
        exit_code = mbq_exit_for_error(rc);
        goto done;
    } else if (!exists) {
        printf("ok    bigquery: %s reachable; dataset '%s' does not exist yet (sync creates it "
               "in %s%s)\n",
               mbq_bq_endpoint(bq), cfg->bigquery.dataset, mbq_bq_location(bq),
               mbq_bq_location_configured(bq) ? "" : ", the default: set bigquery.location");
    } else {
        printf("ok    bigquery: %s, dataset '%s' exists in %s (jobs run there)\n",
               mbq_bq_endpoint(bq), cfg->bigquery.dataset, mbq_bq_location(bq));
        dataset_exists = true;
        if ((rc = warn_dataset_expiration(bq, cfg->bigquery.dataset)) < 0) {
            print_fail("bigquery", mbq_error_last());
            exit_code = mbq_exit_for_error(rc);
            goto done;
        }
    }

    int failed = 0;
    for (size_t i = 0; i < cfg->n_tables; i++) {
        const mbq_table_config *tc = &cfg->tables[i];
        mbq_table_schema *s = NULL;
        mbq_cursor_kind kind = MBQ_CURSOR_NONE;
        const char *cursor = tc->mode == MBQ_MODE_FULL ? NULL : tc->updated_column;
        rc = mbq_mysql_table_schema(&s, my, cfg->mysql.database, tc->name);
        if (rc == 0)
            rc = mbq_mysql_check_table(&kind, s, (const char *const *)tc->primary_key,
                                       tc->n_primary_key, cursor);
        bool unique = true;
        if (rc == 0 && cursor)
            rc = mbq_mysql_key_is_unique(&unique, my, s, (const char *const *)tc->primary_key,
                                         tc->n_primary_key);
        if (rc == 0 && !unique)
            rc = mbq_error_set(MBQ_ESCHEMA,
                               "primary_key is not guaranteed unique (no PRIMARY KEY or UNIQUE "
                               "index on exactly these NOT NULL columns)");
        if (rc < 0) {
            printf("FAIL  table '%s': %s\n", tc->name, mbq_error_last());
            failed++;
        } else {
            char lookback[48] = "";
            if (kind == MBQ_CURSOR_TIMESTAMP && tc->lookback_ms > 0)
                snprintf(lookback, sizeof lookback, ", lookback %.3g s",
                         (double)tc->lookback_ms / 1000.0);
            printf("ok    table '%s': %zu columns, %s%s\n", tc->name, s->n_columns,
                   kind == MBQ_CURSOR_TIMESTAMP ? "timestamp cursor"
                   : kind == MBQ_CURSOR_INTEGER ? "integer cursor"
                                                : "full refresh",
                   lookback);
            /* Not a failure: what the configuration guarantees (README,
             * late commits), said where a user looks before the first run. */
            if (kind == MBQ_CURSOR_TIMESTAMP && tc->lookback_ms == 0)
                printf("note  table '%s': no lookback: a row whose transaction commits after a "
                       "run has read past its '%s' value is missed; set 'lookback' above the "
                       "longest write transaction on it\n",
                       tc->name, tc->updated_column);
            if (kind != MBQ_CURSOR_NONE && tc->mode != MBQ_MODE_FULL &&
                tc->deletes == MBQ_DELETES_OFF)
                printf("info  table '%s': deletes: off: rows deleted in MySQL stay in BigQuery; "
                       "set 'deletes: soft' or 'deletes: hard' to reconcile them\n",
                       tc->name);
            else if (kind != MBQ_CURSOR_NONE && tc->mode != MBQ_MODE_FULL)
                printf("info  table '%s': deletes: %s, reconciled at most every %lld s, refused "
                       "above %.0f%% of the target\n",
                       tc->name, tc->deletes == MBQ_DELETES_HARD ? "hard" : "soft",
                       (long long)(tc->reconcile_every_ms / 1000),
                       tc->max_delete_fraction * 100.0);
        }
        mbq_table_schema_free(s);
        if (dataset_exists && warn_target_expiration(bq, cfg->bigquery.dataset, tc) < 0) {
            printf("FAIL  table '%s': %s\n", tc->name, mbq_error_last());
            failed++;
        }
    }
    exit_code = failed ? MBQ_EXIT_TABLE_FAILED : MBQ_EXIT_OK;
done:
    mbq_bq_free(bq);
    mbq_mysql_close(my);
    mbq_config_free(cfg);
    return exit_code;
}
