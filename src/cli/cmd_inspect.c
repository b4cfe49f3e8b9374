/* `mbq-state inspect [TABLE] [--json]`: what the journal says. Read-only:
 * it takes no lock, so it works while a sync runs (WAL gives it a
 * consistent snapshot). */
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mbq/buf.h"
#include "mbq/commands.h"
#include "mbq/config.h"
#include "mbq/error.h"
#include "mbq/exitcode.h"
#include "mbq/journal.h"
#include "mbq/journal_reconcile.h"
#include "mbq/util.h"
#include "cli_cdc.h"
#include "mbq/banned.h"

static const char inspect_usage[] =
    "usage: mbq-state inspect [TABLE] [--json] [--config FILE | --state-dir DIR]\n"
    "\n"
    "Shows every table's committed cursor, last success, rows, in-flight run and\n"
    "its state, consecutive failures, per-stage timings and recent events\n"
    "(schema changes, resets, alerts), and for change data capture the binlog\n"
    "position, lag and each cdc table's state and rows applied. With TABLE: that\n"
    "table in detail.\n"
    "  --json          stable machine-readable output\n"
    "  --config FILE   the sync's config (default $MBQ_CONFIG or ./mbq.yml)\n"
    "  --state-dir DIR read the journal in DIR instead of the config's state.dir\n"
    "  --events N      how many recent events to show (default 10)\n";

static json_object *jstr(const char *s)
{
    return s ? json_object_new_string(s) : NULL;
}

static json_object *jtime(int64_t ms)
{
    if (ms <= 0)
        return NULL;
    mbq_buf b = MBQ_BUF_INIT;
    mbq_buf_time_iso(&b, ms);
    json_object *o = json_object_new_string(mbq_buf_cstr(&b));
    mbq_buf_free(&b);
    return o;
}

/* A reconciliation (deletes reaching BigQuery) as JSON. */
static json_object *reconcile_json(const mbq_reconcile_run *r)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_int64(r->id));
    json_object_object_add(o, "mode", jstr(r->mode));
    json_object_object_add(o, "state", jstr(r->state));
    json_object_object_add(o, "chunks", json_object_new_int64(r->chunks));
    json_object_object_add(o, "keys", json_object_new_int64(r->keys));
    json_object_object_add(o, "high_water_mark", jstr(r->hwm));
    json_object_object_add(o, "target_rows",
                           r->target_rows >= 0 ? json_object_new_int64(r->target_rows) : NULL);
    json_object_object_add(o, "rows_deleted",
                           r->rows_deleted >= 0 ? json_object_new_int64(r->rows_deleted) : NULL);
    json_object_object_add(o, "started", jtime(r->started_ms));
    json_object_object_add(o, "finished", r->finished_ms > 0 ? jtime(r->finished_ms) : NULL);
    json_object_object_add(o, "error", jstr(r->error));
    return o;
}

/* The table's recent reconciliations into t["reconciliations"] (newest
 * first), and a line each on the terminal. A journal older than version 4
 * (read without migrating) has none. */
static int add_reconciles(json_object *t, mbq_journal *j, const char *table, int limit, bool text)
{
    mbq_reconcile_run *r = NULL;
    int n = 0, rc = 0;
    json_object *arr = json_object_new_array();
    json_object_object_add(t, "reconciliations", arr);
    if (mbq_journal_version(j) < 4 ||
        (rc = mbq_journal_reconcile_recent(j, &r, &n, table, limit)) < 0)
        return rc;
    for (int k = 0; k < n; k++) {
        json_object_array_add(arr, reconcile_json(&r[k]));
        if (text)
            printf("  reconcile %-6lld %-9s %s deletes: %lld of %lld rows, %lld keys in %lld "
                   "chunk(s)%s%s\n",
                   (long long)r[k].id, r[k].state, r[k].mode,
                   (long long)(r[k].rows_deleted >= 0 ? r[k].rows_deleted : 0),
                   (long long)(r[k].target_rows >= 0 ? r[k].target_rows : 0),
                   (long long)r[k].keys, (long long)r[k].chunks, r[k].error ? "  error: " : "",
                   r[k].error ? r[k].error : "");
    }
    mbq_reconcile_runs_free(r, n);
    return 0;
}

static json_object *run_json(const mbq_table_run *r)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_int64(r->id));
    json_object_object_add(o, "run_id", jstr(r->run_id));
    json_object_object_add(o, "state", jstr(r->state));
    json_object_object_add(o, "load_mode", jstr(r->load_mode));
    json_object_object_add(o, "attempt", json_object_new_int(r->attempt));
    json_object_object_add(o, "low", jstr(r->low));
    json_object_object_add(o, "high", jstr(r->high));
    json_object_object_add(o, "staged_path", jstr(r->staged_path));
    json_object_object_add(o, "staged_rows", json_object_new_int64(r->staged_rows));
    json_object_object_add(o, "staged_bytes", json_object_new_int64(r->staged_bytes));
    json_object_object_add(o, "staged_checksum", jstr(r->staged_checksum));
    json_object_object_add(o, "staging_table", jstr(r->staging_table));
    json_object_object_add(o, "load_job_id", jstr(r->load_job_id));
    json_object_object_add(o, "merge_job_id", jstr(r->merge_job_id));
    json_object_object_add(o, "rows_merged", json_object_new_int64(r->rows_merged));
    json_object_object_add(o, "error", jstr(r->error));
    json_object_object_add(o, "error_state", jstr(r->error_state));
    json_object_object_add(o, "started", jtime(r->started_ms));
    json_object_object_add(o, "updated", jtime(r->updated_ms));
    json_object_object_add(o, "finished", jtime(r->finished_ms));
    json_object *t = json_object_new_object();
    json_object_object_add(t, "schema_check_ms", json_object_new_int64(r->t_schema_ms));
    json_object_object_add(t, "extract_ms", json_object_new_int64(r->t_extract_ms));
    json_object_object_add(t, "stage_ms", json_object_new_int64(r->t_stage_ms));
    json_object_object_add(t, "merge_ms", json_object_new_int64(r->t_merge_ms));
    json_object_object_add(t, "commit_ms", json_object_new_int64(r->t_commit_ms));
    json_object_object_add(o, "timings", t);
    json_object_object_add(o, "mirror", jstr(r->mirror_state));
    return o;
}

static json_object *event_json(const mbq_event *e)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_int64(e->id));
    json_object_object_add(o, "time", jtime(e->ts_ms));
    json_object_object_add(o, "run_id", jstr(e->run_id));
    json_object_object_add(o, "table", jstr(e->table_name));
    json_object_object_add(o, "kind", jstr(e->kind));
    json_object_object_add(o, "column", jstr(e->column_name));
    json_object_object_add(o, "old_type", jstr(e->old_type));
    json_object_object_add(o, "new_type", jstr(e->new_type));
    json_object_object_add(o, "action", jstr(e->action));
    json_object_object_add(o, "detail", jstr(e->detail));
    return o;
}

static void print_time(const char *label, int64_t ms)
{
    mbq_buf b = MBQ_BUF_INIT;
    if (ms > 0)
        mbq_buf_time_iso(&b, ms);
    printf("  %-22s %s\n", label, ms > 0 ? mbq_buf_cstr(&b) : "-");
    mbq_buf_free(&b);
}

static void print_event_line(const mbq_event *e)
{
    mbq_buf b = MBQ_BUF_INIT;
    mbq_buf_time_iso(&b, e->ts_ms);
    printf("  %s  %-12s %-26s", mbq_buf_cstr(&b), e->table_name ? e->table_name : "-", e->kind);
    if (e->column_name)
        printf(" column '%s'", e->column_name);
    if (e->old_type || e->new_type)
        printf(" %s -> %s", e->old_type ? e->old_type : "-", e->new_type ? e->new_type : "-");
    if (e->action)
        printf(" [%s]", e->action);
    if (e->detail)
        printf(": %s", e->detail);
    printf("\n");
    mbq_buf_free(&b);
}

/* The tables to show: configured ones first (in config order), then any
 * the journal knows that the config no longer lists. */
static int table_list(char ***out, const mbq_config *cfg, mbq_journal *j, const char *only)
{
    char **known = NULL;
    int rc = mbq_journal_table_names(j, &known);
    if (rc < 0)
        return rc;
    size_t n = 0, cap = (cfg ? cfg->n_tables : 0) + 2;
    for (size_t i = 0; known[i]; i++)
        cap++;
    char **v = mbq_calloc(cap, sizeof *v);
    if (!v) {
        mbq_strv_free(known);
        return MBQ_ENOMEM;
    }
    if (only) {
        v[n++] = mbq_strdup(only);
    } else {
        for (size_t i = 0; cfg && i < cfg->n_tables; i++)
            v[n++] = mbq_strdup(cfg->tables[i].name);
        for (size_t i = 0; known[i]; i++) {
            bool seen = false;
            for (size_t k = 0; k < n; k++)
                seen = seen || mbq_streq(v[k], known[i]);
            if (!seen)
                v[n++] = mbq_strdup(known[i]);
        }
    }
    mbq_strv_free(known);
    *out = v;
    return 0;
}

int mbq_cmd_inspect(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'j'},      {"config", required_argument, NULL, 'c'},
        {"state-dir", required_argument, NULL, 's'}, {"events", required_argument, NULL, 'e'},
        {"help", no_argument, NULL, 'h'},      {NULL, 0, NULL, 0},
    };
    bool as_json = false;
    const char *config_path = NULL, *state_dir = NULL;
    int n_events = 10, opt, rc = 0, exit_code = MBQ_EXIT_OK;
    mbq_config *cfg = NULL;
    mbq_journal *j = NULL;
    char **tables = NULL;
    json_object *root = NULL;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:s:e:jh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'j': as_json = true; break;
        case 'c': config_path = optarg; break;
        case 's': state_dir = optarg; break;
        case 'e': n_events = atoi(optarg) > 0 ? atoi(optarg) : 10; break;
        case 'h': fputs(inspect_usage, stdout); return MBQ_EXIT_OK;
        default: fputs(inspect_usage, stderr); return MBQ_EXIT_USAGE;
        }
    }
    const char *only = optind < argc ? argv[optind] : NULL;
    if (optind + 1 < argc) {
        fputs(inspect_usage, stderr);
        return MBQ_EXIT_USAGE;
    }
    if (!state_dir) {
        if ((exit_code = mbq_cli_load_config(&cfg, config_path, NULL, NULL)) != 0)
            return exit_code;
        state_dir = cfg->state_dir;
    }
    if ((rc = mbq_journal_open(&j, state_dir, MBQ_JOURNAL_READONLY)) < 0) {
        exit_code = mbq_cli_fail("mbq-state inspect", rc);
        goto done;
    }
    if (only && cfg && !mbq_config_table(cfg, only)) {
        mbq_table_state probe;
        if (mbq_journal_table_get(j, &probe, only) == 0 && !probe.updated_ms) {
            mbq_table_state_clear(&probe);
            mbq_error_set(MBQ_ENOTFOUND, "table '%s' is neither configured nor in the journal",
                          only);
            exit_code = mbq_cli_fail("mbq-state inspect", MBQ_ENOTFOUND);
            goto done;
        }
        mbq_table_state_clear(&probe);
    }
    if ((rc = table_list(&tables, cfg, j, only)) < 0)
        goto fail;

    root = json_object_new_object();
    json_object_object_add(root, "journal", json_object_new_string(state_dir));
    json_object_object_add(root, "schema_version", json_object_new_int(mbq_journal_version(j)));
    json_object *jtables = json_object_new_array();
    json_object_object_add(root, "tables", jtables);

    if (!as_json)
        printf("journal: %s/state.db (schema version %d)\n\n%-20s %-28s %-25s %8s %5s  %s\n",
               state_dir, mbq_journal_version(j), "TABLE", "CURSOR", "LAST SUCCESS (UTC)",
               "ROWS", "FAILS", "IN FLIGHT");
    for (size_t i = 0; tables[i]; i++) {
        mbq_table_state ts;
        mbq_table_run fl;
        bool in_flight = false;
        if ((rc = mbq_journal_table_get(j, &ts, tables[i])) < 0)
            goto fail;
        if ((rc = mbq_journal_table_run_in_flight(j, &fl, &in_flight, tables[i])) < 0) {
            mbq_table_state_clear(&ts);
            goto fail;
        }
        json_object *t = json_object_new_object();
        json_object_object_add(t, "name", json_object_new_string(tables[i]));
        json_object_object_add(t, "configured",
                               json_object_new_boolean(!cfg || mbq_config_table(cfg, tables[i])));
        json_object_object_add(t, "cursor", jstr(ts.cursor_value));
        json_object_object_add(t, "cursor_kind", jstr(ts.cursor_kind));
        json_object_object_add(t, "last_success", jtime(ts.last_success_ms));
        json_object_object_add(t, "last_rows", json_object_new_int64(ts.last_rows));
        json_object_object_add(t, "total_rows", json_object_new_int64(ts.total_rows));
        json_object_object_add(t, "consecutive_failures",
                               json_object_new_int(ts.consecutive_failures));
        json_object_object_add(t, "last_error", jstr(ts.last_error));
        json_object_object_add(t, "last_error_state", jstr(ts.last_error_state));
        json_object_object_add(t, "in_flight", in_flight ? run_json(&fl) : NULL);
        /* A chunked backfill in flight: how far it got (journal version 5). */
        bool bf_found = false;
        int bf_loaded = 0, bf_chunks = 0;
        int64_t bf_rows = 0;
        if (in_flight && mbq_journal_version(j) >= 5 &&
            (rc = mbq_journal_backfill_progress(j, &bf_found, &bf_loaded, &bf_chunks, &bf_rows,
                                                fl.id)) < 0) {
            json_object_put(t);
            mbq_table_state_clear(&ts);
            mbq_table_run_clear(&fl);
            goto fail;
        }
        if (bf_found) {
            json_object *bf = json_object_new_object();
            json_object_object_add(bf, "chunks", json_object_new_int(bf_chunks));
            json_object_object_add(bf, "chunks_loaded", json_object_new_int(bf_loaded));
            json_object_object_add(bf, "rows_loaded", json_object_new_int64(bf_rows));
            json_object_object_add(json_object_object_get(t, "in_flight"), "backfill", bf);
        }

        mbq_table_run *recent = NULL;
        int n_recent = 0;
        if ((rc = mbq_journal_table_runs_recent(j, &recent, &n_recent, tables[i],
                                                only ? 10 : 1)) < 0) {
            json_object_put(t);
            mbq_table_state_clear(&ts);
            mbq_table_run_clear(&fl);
            goto fail;
        }
        json_object *jr = json_object_new_array();
        for (int k = 0; k < n_recent; k++)
            json_object_array_add(jr, run_json(&recent[k]));
        json_object_object_add(t, "recent_runs", jr);
        json_object_array_add(jtables, t);
        if ((rc = add_reconciles(t, j, tables[i], only ? 5 : 1, !as_json && only)) < 0) {
            mbq_table_runs_free(recent, n_recent);
            mbq_table_state_clear(&ts);
            mbq_table_run_clear(&fl);
            goto fail;
        }

        if (!as_json) {
            mbq_buf when = MBQ_BUF_INIT, fl_desc = MBQ_BUF_INIT;
            if (ts.last_success_ms > 0)
                mbq_buf_time_iso(&when, ts.last_success_ms);
            if (in_flight)
                mbq_buf_printf(&fl_desc, "%s (attempt %d%s%s)", fl.state, fl.attempt,
                               fl.error ? ", last error: " : "", fl.error ? fl.error : "");
            if (bf_found)
                mbq_buf_printf(&fl_desc, ", backfill: %d/%d chunks, %lld rows loaded", bf_loaded,
                               bf_chunks, (long long)bf_rows);
            printf("%-20s %-28s %-25s %8lld %5d  %s\n", tables[i],
                   ts.cursor_value ? ts.cursor_value : "-",
                   ts.last_success_ms > 0 ? mbq_buf_cstr(&when) : "never",
                   (long long)ts.last_rows, ts.consecutive_failures,
                   in_flight ? mbq_buf_cstr(&fl_desc) : "-");
            if (ts.last_error && !in_flight)
                printf("%-20s last error (%s): %s\n", "",
                       ts.last_error_state ? ts.last_error_state : "?", ts.last_error);
            if (only) {
                printf("\n");
                print_time("last success", ts.last_success_ms);
                printf("  %-22s %lld\n", "rows, total", (long long)ts.total_rows);
                for (int k = 0; k < n_recent; k++) {
                    const mbq_table_run *r = &recent[k];
                    printf("  run %-6lld %-16s attempt %d rows %lld  window [%s .. %s]  "
                           "schema %lldms extract %lldms stage %lldms merge %lldms commit "
                           "%lldms%s%s\n",
                           (long long)r->id, r->state, r->attempt, (long long)r->staged_rows,
                           r->low ? r->low : "-", r->high ? r->high : "-",
                           (long long)r->t_schema_ms, (long long)r->t_extract_ms,
                           (long long)r->t_stage_ms, (long long)r->t_merge_ms,
                           (long long)r->t_commit_ms, r->error ? "  error: " : "",
                           r->error ? r->error : "");
                }
            }
            mbq_buf_free(&when);
            mbq_buf_free(&fl_desc);
        }
        mbq_table_runs_free(recent, n_recent);
        mbq_table_state_clear(&ts);
        mbq_table_run_clear(&fl);
    }

    if ((rc = mbq_cli_inspect_cdc(root, j, cfg, only, !as_json)) < 0)
        goto fail;
    mbq_event *events = NULL;
    int n = 0;
    if ((rc = mbq_journal_events_recent(j, &events, &n, only, n_events)) < 0)
        goto fail;
    json_object *jev = json_object_new_array();
    for (int k = 0; k < n; k++)
        json_object_array_add(jev, event_json(&events[k]));
    json_object_object_add(root, "events", jev);
    if (as_json) {
        printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
                                                                JSON_C_TO_STRING_NOSLASHESCAPE));
    } else {
        printf("\nrecent events:\n");
        if (n == 0)
            printf("  (none)\n");
        for (int k = 0; k < n; k++)
            print_event_line(&events[k]);
    }
    mbq_events_free(events, n);
    goto done;
fail:
    exit_code = mbq_cli_fail("mbq-state inspect", rc);
done:
    json_object_put(root);
    mbq_strv_free(tables);
    mbq_journal_close(j);
    mbq_config_free(cfg);
    return exit_code;
}
