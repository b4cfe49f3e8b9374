/* `mbq-state reset TABLE [--cursor VALUE | --full] --yes`: post-incident
 * recovery. Abandons the table's in-flight run (drops its staging table and
 * file) and moves or clears the cursor, journaled as an event. Without
 * --yes it only says what it would do. It takes the state lock, so it never
 * races a running sync. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mbq/bq.h"
#include "mbq/commands.h"
#include "mbq/config.h"
#include "mbq/discover.h"
#include "mbq/error.h"
#include "mbq/exitcode.h"
#include "mbq/journal.h"
#include "mbq/journal_reconcile.h"
#include "mbq/log.h"
#include "mbq/machine.h"
#include "mbq/util.h"
#include "cli_cdc.h"
#include "mbq/banned.h"

static const char reset_usage[] =
    "usage: mbq-state reset TABLE (--cursor VALUE | --full | --abandon) [--yes] [--config FILE]\n"
    "\n"
    "  --cursor VALUE  set the committed cursor (a UTC time 'YYYY-MM-DD HH:MM:SS[.ffffff]'\n"
    "                  for timestamp cursors, a whole number for integer cursors);\n"
    "                  the next sync re-reads rows from VALUE on\n"
    "  --full          clear the cursor: the next sync reloads the whole table\n"
    "  --abandon       only abandon the in-flight run, keep the cursor\n"
    "  --yes           do it (without it: print what would be done, change nothing)\n"
    "A table in mode cdc takes --full only: the next `mbq cdc` takes a new snapshot.\n";

/* Drop an abandoned run's staging table; failure is reported, not fatal:
 * staging tables expire by themselves. */
static void drop_staging(const mbq_config *cfg, const char *table)
{
    mbq_bq *bq = NULL;
    mbq_bq_options bo;
    mbq_bq_options_from_config(&bo, &cfg->bigquery);
    bo.max_retries = 2;
    bo.retry_max_elapsed_ms = 20000;
    if (mbq_bq_new(&bq, &bo) < 0 || mbq_bq_table_delete(bq, cfg->bigquery.dataset, table) < 0)
        fprintf(stderr, "mbq-state reset: warning: cannot drop staging table '%s' (it expires "
                        "by itself): %s\n", table, mbq_error_last());
    else
        printf("dropped staging table '%s'\n", table);
    mbq_bq_free(bq);
}

/* An abandoned run's chunked backfill (journal version 5): its shadow
 * table and its chunk files go too. */
static void abandon_backfill(const mbq_config *cfg, mbq_journal *j, int64_t table_run_id)
{
    mbq_backfill bf;
    bool found = false;
    mbq_buf dir = MBQ_BUF_INIT;
    if (mbq_journal_version(j) < 5 || mbq_journal_backfill_get(j, &bf, &found, table_run_id) < 0 ||
        !found)
        return;
    drop_staging(cfg, bf.shadow_table);
    /* The directory is the table run's alone: every file in it goes
     * (chunk files, parts, a read cut short). */
    DIR *d = NULL;
    if (mbq_buf_printf(&dir, "%s/staging/backfill.%lld", cfg->state_dir,
                       (long long)table_run_id) == 0 &&
        (d = opendir(dir.ptr)) != NULL) {
        struct dirent *e;
        mbq_buf f = MBQ_BUF_INIT;
        while ((e = readdir(d)) != NULL) {
            mbq_buf_clear(&f);
            if (e->d_name[0] != '.' && mbq_buf_printf(&f, "%s/%s", dir.ptr, e->d_name) == 0 &&
                unlink(f.ptr) < 0)
                fprintf(stderr, "mbq-state reset: warning: cannot delete '%s': %s\n", f.ptr,
                        strerror(errno));
        }
        mbq_buf_free(&f);
        closedir(d);
    }
    if (dir.ptr && rmdir(dir.ptr) < 0 && errno != ENOENT)
        fprintf(stderr, "mbq-state reset: warning: cannot remove '%s': %s\n", dir.ptr,
                strerror(errno));
    mbq_buf_free(&dir);
    mbq_backfill_clear(&bf);
}

int mbq_cmd_reset(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"cursor", required_argument, NULL, 'u'}, {"full", no_argument, NULL, 'F'},
        {"abandon", no_argument, NULL, 'a'},      {"yes", no_argument, NULL, 'y'},
        {"config", required_argument, NULL, 'c'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cursor = NULL, *config_path = NULL;
    bool full = false, yes = false, abandon_only = false;
    int opt, rc = 0, exit_code;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'u': cursor = optarg; break;
        case 'F': full = true; break;
        case 'a': abandon_only = true; break;
        case 'y': yes = true; break;
        case 'c': config_path = optarg; break;
        case 'h': fputs(reset_usage, stdout); return MBQ_EXIT_OK;
        default: fputs(reset_usage, stderr); return MBQ_EXIT_USAGE;
        }
    }
    if (optind + 1 != argc || (!!cursor + full + abandon_only) != 1) {
        fputs("mbq-state reset: give one TABLE and exactly one of --cursor VALUE, --full, "
              "--abandon\n", stderr);
        fputs(reset_usage, stderr);
        return MBQ_EXIT_USAGE;
    }
    const char *table = argv[optind];
    mbq_config *cfg = NULL;
    mbq_journal *j = NULL;
    mbq_table_state ts = {0};
    mbq_table_run fl = {0};
    bool in_flight = false;
    char *norm = NULL;
    mbq_discovery *disc = NULL; /* a table a pattern takes: its resolved config */
    if ((exit_code = mbq_cli_load_config(&cfg, config_path, NULL, NULL)) != 0)
        return exit_code;
    if ((exit_code = mbq_cli_resolve_project(cfg)) != 0) {
        mbq_config_free(cfg);
        return exit_code;
    }
    const mbq_table_config *tc = NULL;
    if ((rc = mbq_discover_table(&tc, &disc, cfg, table)) < 0)
        goto fail;
    if (tc->mode == MBQ_MODE_CDC && !full) {
        /* A followed table has no cursor and no run to abandon: a batch
         * cut short is read again from the binlog by itself. */
        rc = mbq_error_set(MBQ_ECONFIG, "table '%s' is in mode cdc: only --full applies (a new "
                                        "snapshot)", tc->name);
        goto fail;
    }
    if (tc->mode == MBQ_MODE_CDC) {
        if ((rc = mbq_journal_open(&j, cfg->state_dir, MBQ_JOURNAL_WRITE)) < 0 ||
            (rc = mbq_cli_reset_cdc(j, cfg, tc->name, yes)) < 0)
            goto fail;
        goto done;
    }
    if ((rc = mbq_journal_open(&j, cfg->state_dir, MBQ_JOURNAL_WRITE)) < 0 ||
        (rc = mbq_journal_table_get(j, &ts, tc->name)) < 0 ||
        (rc = mbq_journal_table_run_in_flight(j, &fl, &in_flight, tc->name)) < 0)
        goto fail;
    if (cursor) {
        if (!tc->updated_column || tc->mode == MBQ_MODE_FULL) {
            rc = mbq_error_set(MBQ_ECONFIG, "table '%s' has no cursor (full refresh): use --full",
                               tc->name);
            goto fail;
        }
        /* The kind comes from the journal (what the column was when last
         * synced); before any sync, a timestamp is assumed unless the value
         * is a plain number. */
        const char *kind = ts.cursor_kind;
        int64_t dummy;
        if (!kind)
            kind = mbq_parse_i64(&dummy, cursor) == 0 ? "integer" : "timestamp";
        if ((rc = mbq_cursor_normalize(&norm, kind, cursor)) < 0) {
            mbq_error_wrap(rc, "table '%s': ", tc->name);
            goto fail;
        }
    }

    printf("table %s: committed cursor %s\n", tc->name, ts.cursor_value ? ts.cursor_value : "(none)");
    if (in_flight)
        printf("  would abandon in-flight run %lld at state '%s'%s%s%s%s\n", (long long)fl.id,
               fl.state, fl.staging_table ? ", drop staging table '" : "",
               fl.staging_table ? fl.staging_table : "", fl.staging_table ? "'" : "",
               fl.staged_path ? ", delete its staged file" : "");
    if (!abandon_only)
        printf("  would set the cursor to %s\n",
               norm ? norm : "(none): the next sync reloads the whole table");
    if (!yes) {
        printf("nothing changed: add --yes to do it\n");
        goto done;
    }

    if (in_flight) {
        abandon_backfill(cfg, j, fl.id);
        if (fl.staging_table)
            drop_staging(cfg, fl.staging_table);
        if (fl.staged_path && unlink(fl.staged_path) < 0 && errno != ENOENT)
            fprintf(stderr, "mbq-state reset: warning: cannot delete '%s': %s\n", fl.staged_path,
                    strerror(errno));
    }
    if ((rc = mbq_journal_begin(j)) < 0)
        goto fail;
    if (in_flight) {
        free(fl.state);
        fl.state = mbq_strdup("abandoned");
        fl.finished_ms = fl.updated_ms = mbq_now_ms();
        if (!fl.state || (rc = mbq_journal_table_run_save(j, &fl)) < 0)
            goto rollback;
    }
    /* A reconciliation in flight read keys against the old target: it
     * starts over after a reset (its staging table expires by itself). */
    int n_rec = 0;
    if ((rc = mbq_journal_reconcile_abandon(j, &n_rec, tc->name, mbq_now_ms())) < 0)
        goto rollback;
    if (n_rec)
        printf("abandoned the in-flight reconciliation of '%s'\n", tc->name);
    if (!abandon_only &&
        (rc = mbq_journal_table_set_cursor(j, tc->name, norm, NULL, mbq_now_ms())) < 0)
        goto rollback;
    mbq_buf detail = MBQ_BUF_INIT;
    mbq_buf_printf(&detail, "cursor %s -> %s%s", ts.cursor_value ? ts.cursor_value : "(none)",
                   abandon_only ? (ts.cursor_value ? ts.cursor_value : "(none)")
                                : (norm ? norm : "(none, full resync)"),
                   in_flight ? "; in-flight run abandoned" : "");
    mbq_event e = {0};
    e.table_name = (char *)tc->name;
    e.kind = "reset";
    e.action = abandon_only ? "abandon" : full ? "full" : "cursor";
    e.detail = detail.ptr;
    rc = mbq_journal_event_add(j, &e);
    mbq_buf_free(&detail);
    if (rc < 0)
        goto rollback;
    if ((rc = mbq_journal_commit(j)) < 0)
        goto fail;
    printf("done\n");
    goto done;
rollback:
    mbq_journal_rollback(j);
fail:
    exit_code = mbq_cli_fail("mbq-state reset", rc);
done:
    free(norm);
    mbq_table_state_clear(&ts);
    mbq_table_run_clear(&fl);
    mbq_journal_close(j);
    mbq_discovery_free(disc);
    mbq_config_free(cfg);
    return exit_code;
}
