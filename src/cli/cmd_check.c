/* `mbq check`: validate config, credentials and connectivity to MySQL and
 * BigQuery, the principal's permissions, and the presence of every
 * configured table, key and cursor column. Leaves nothing behind: no dataset
 * or table is created, except a scratch table that proves write access and
 * is deleted at once (and expires within the hour should the delete fail). */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mbq/binlog.h"
#include "mbq/bq.h"
#include "mbq/commands.h"
#include "mbq/config.h"
#include "mbq/credentials.h"
#include "mbq/discover.h"
#include "mbq/error.h"
#include "mbq/exitcode.h"
#include "mbq/journal.h"
#include "mbq/mysql_source.h"
#include "mbq/util.h"
#include "mbq/banned.h"

static const char check_usage[] =
    "usage: mbq check [--config FILE]\n"
    "\n"
    "Validates the config, connects to MySQL and BigQuery, names the credentials\n"
    "and the principal, proves it may run jobs (a dry-run query) and write the\n"
    "dataset (a scratch table, deleted at once), and checks every configured\n"
    "table, primary key and cursor column. With tables in mode cdc: the binlog\n"
    "settings (log_bin, binlog_format, binlog_row_image, binlog_row_metadata) and\n"
    "the replication privileges, with the GRANT to run. Leaves nothing behind.\n"
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

/* Which credentials requests carry and whom they act as: the first thing
 * to know when BigQuery refuses something. Fetches a token, so refused
 * credentials fail here, named, before any BigQuery request. */
static int check_credentials(mbq_bq *bq)
{
    int rc = 0;
    mbq_cred *cred = mbq_bq_credentials(bq);
    mbq_buf who = MBQ_BUF_INIT;
    const char *token;
    if (!cred) {
        printf("ok    credentials: none (requests to '%s' carry no token)\n", mbq_bq_endpoint(bq));
        return 0;
    }
    if ((rc = mbq_cred_token(&token, cred)) < 0 || (rc = mbq_cred_principal(&who, cred)) < 0) {
        print_fail("credentials", mbq_error_last());
        goto done;
    }
    printf("ok    credentials: %s (%s); principal '%s'\n", mbq_cred_source(cred),
           mbq_cred_kind(cred), mbq_buf_cstr(&who));
done:
    mbq_buf_free(&who);
    return rc;
}

/* Prove what a sync needs, by doing the least that needs each permission:
 * a dry-run query (bigquery.jobs.create on the project) and a scratch table
 * created and deleted in the dataset (bigquery.tables.create/delete). A 403
 * names the role that grants it (BigQuery's "Predefined roles"). */
static int check_permissions(mbq_bq *bq, const char *dataset, bool dataset_exists)
{
    long status = 0;
    int rc = mbq_bq_dry_run(bq, &status, "SELECT 1");
    if (rc < 0) {
        if (status == 403)
            printf("FAIL  bigquery: the principal may not run jobs in project '%s': grant it "
                   "roles/bigquery.jobUser there (%s)\n",
                   mbq_bq_project(bq), mbq_error_last());
        else
            print_fail("bigquery", mbq_error_last());
        return rc;
    }
    printf("ok    bigquery: may run jobs in project '%s' (dry-run query)\n", mbq_bq_project(bq));
    if (!dataset_exists) {
        printf("skip  bigquery: write access to dataset '%s' not proven: it does not exist yet "
               "(creating it needs bigquery.datasets.create, e.g. roles/bigquery.dataEditor on "
               "the project)\n",
               dataset);
        return 0;
    }
    if ((rc = mbq_bq_probe_table_write(bq, &status, dataset)) < 0) {
        if (status == 403)
            printf("FAIL  bigquery: the principal may not create tables in dataset '%s': grant "
                   "it roles/bigquery.dataEditor on the dataset (%s)\n",
                   dataset, mbq_error_last());
        else
            print_fail("bigquery", mbq_error_last());
        return rc;
    }
    printf("ok    bigquery: may create and delete tables in dataset '%s'\n", dataset);
    return 0;
}

/* Check one table (named in the config or discovered): its schema, key
 * and cursor in MySQL, its target's expiration in BigQuery. 1 when it
 * failed (printed), else 0. */
static int check_table(const mbq_config *cfg, mbq_mysql *my, mbq_bq *bq, bool dataset_exists,
                       const mbq_table_config *tc)
{
    int rc, failed = 0;
    mbq_table_schema *s = NULL;
    mbq_cursor_kind kind = MBQ_CURSOR_NONE;
    /* A followed table's updated_column is not used: no cursor to check. */
    bool cdc = tc->mode == MBQ_MODE_CDC;
    const char *cursor = tc->mode == MBQ_MODE_FULL || cdc ? NULL : tc->updated_column;
    rc = mbq_mysql_table_schema(&s, my, cfg->mysql.database, tc->name);
    if (rc == 0)
        rc = mbq_mysql_check_table(&kind, s, (const char *const *)tc->primary_key,
                                   tc->n_primary_key, cursor);
    bool unique = true;
    /* A MERGE by key (a cursor's, or the binlog's) needs one row per key. */
    if (rc == 0 && (cursor || cdc))
        rc = mbq_mysql_key_is_unique(&unique, my, s, (const char *const *)tc->primary_key,
                                     tc->n_primary_key);
    if (rc == 0 && !unique)
        rc = mbq_error_set(MBQ_ESCHEMA,
                           "primary_key is not guaranteed unique (no PRIMARY KEY or UNIQUE "
                           "index on exactly these NOT NULL columns)");
    if (rc < 0) {
        printf("FAIL  table '%s': %s\n", tc->name, mbq_error_last());
        failed = 1;
    } else {
        char lookback[48] = "";
        if (kind == MBQ_CURSOR_TIMESTAMP && tc->lookback_ms > 0)
            snprintf(lookback, sizeof lookback, ", lookback %.3g s",
                     (double)tc->lookback_ms / 1000.0);
        printf("ok    table '%s': %zu columns, %s%s\n", tc->name, s->n_columns,
               cdc                          ? "change data capture (binlog)"
               : kind == MBQ_CURSOR_TIMESTAMP ? "timestamp cursor"
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
        if (cdc)
            printf("info  table '%s': deletes: %s (from the binlog)\n", tc->name,
                   tc->deletes == MBQ_DELETES_HARD   ? "hard"
                   : tc->deletes == MBQ_DELETES_SOFT ? "soft"
                                                     : "off: rows deleted in MySQL stay");
        else if (kind != MBQ_CURSOR_NONE && tc->mode != MBQ_MODE_FULL &&
                 tc->deletes == MBQ_DELETES_OFF)
            printf("info  table '%s': deletes: off: rows deleted in MySQL stay in BigQuery; "
                   "set 'deletes: soft' or 'deletes: hard' to reconcile them\n",
                   tc->name);
        else if (kind != MBQ_CURSOR_NONE && tc->mode != MBQ_MODE_FULL)
            printf("info  table '%s': deletes: %s, reconciled at most every %lld s, refused "
                   "above %.0f%% of the target\n",
                   tc->name, tc->deletes == MBQ_DELETES_HARD ? "hard" : "soft",
                   (long long)(tc->reconcile_every_ms / 1000), tc->max_delete_fraction * 100.0);
    }
    mbq_table_schema_free(s);
    if (dataset_exists && warn_target_expiration(bq, cfg->bigquery.dataset, tc) < 0) {
        printf("FAIL  table '%s': %s\n", tc->name, mbq_error_last());
        failed = 1;
    }
    return failed;
}

/* Tables in mode cdc read the binlog: the server must write it in the
 * form the reader decodes (ROW events with full images and column names)
 * and the user must be allowed to read it. mbq_binlog_check names the
 * setting at fault and its value, or the GRANT to run. 1 when it failed. */
static int check_binlog(const mbq_config *cfg, mbq_mysql *my)
{
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_tables; i++)
        n += cfg->tables[i].mode == MBQ_MODE_CDC;
    if (n == 0)
        return 0;
    if (mbq_binlog_check(my) < 0) {
        print_fail("binlog", mbq_error_last());
        return 1;
    }
    printf("ok    binlog: log_bin ON, binlog_format ROW, binlog_row_image FULL, "
           "binlog_row_metadata FULL, replication privileges held (%zu table(s) in mode cdc, "
           "server_id %lu)\n",
           n, (unsigned long)cfg->cdc.server_id);
    return 0;
}

/* Resolve the config's patterns; the journal (read only, when there is
 * one) names the tables synced before, for the dropped ones. */
static int discover(mbq_discovery **out, const mbq_config *cfg, mbq_mysql *my)
{
    mbq_journal *j = NULL;
    char **known = NULL;
    int rc = mbq_journal_open(&j, cfg->state_dir, MBQ_JOURNAL_READONLY);
    if (rc == 0)
        rc = mbq_journal_table_names(j, &known);
    mbq_journal_close(j);
    mbq_error_clear(); /* no journal yet: nothing was synced before */
    rc = mbq_discover(out, my, cfg, known);
    mbq_strv_free(known);
    return rc;
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
    printf("ok    config '%s': %zu table(s)", cfg->path, cfg->n_tables);
    if (cfg->n_patterns)
        printf(", %zu pattern(s)", cfg->n_patterns);
    putchar('\n');
    if (!cfg->bigquery.project_id) {
        if ((rc = mbq_bq_config_resolve_project(&cfg->bigquery)) < 0) {
            print_fail("bigquery", mbq_error_last());
            exit_code = mbq_exit_for_error(rc);
            goto done;
        }
        printf("ok    bigquery: project '%s' from the credentials\n", cfg->bigquery.project_id);
    }

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
    if ((rc = check_credentials(bq)) < 0) {
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

    if ((rc = check_permissions(bq, cfg->bigquery.dataset, dataset_exists)) < 0) {
        exit_code = mbq_exit_for_error(rc);
        goto done;
    }

    mbq_discovery *disc = NULL;
    if (cfg->n_patterns > 0 && (rc = discover(&disc, cfg, my)) < 0) {
        print_fail("mysql", mbq_error_last());
        exit_code = mbq_exit_for_error(rc);
        goto done;
    }
    /* The resolved list: what a sync would take, with key, cursor, mode
     * and why (a pattern's skipped and dropped tables included). */
    mbq_discovery_print(stdout, cfg, disc);
    int failed = check_binlog(cfg, my);
    for (size_t i = 0; i < cfg->n_tables; i++)
        failed += check_table(cfg, my, bq, dataset_exists, &cfg->tables[i]);
    for (size_t i = 0; disc && i < disc->n; i++)
        if (!disc->tables[i].skipped)
            failed += check_table(cfg, my, bq, dataset_exists, &disc->tables[i].tc);
    mbq_discovery_free(disc);
    exit_code = failed ? MBQ_EXIT_TABLE_FAILED : MBQ_EXIT_OK;
done:
    mbq_bq_free(bq);
    mbq_mysql_close(my);
    mbq_config_free(cfg);
    return exit_code;
}
