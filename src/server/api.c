/* The machine-readable endpoints (see mbq/server.h): /api/tables (JSON),
 * /metrics (Prometheus text exposition format 0.0.4) and /healthz. */
#include <stdlib.h>
#include <string.h>

#include "dash_cdc.h"
#include "mbq/error.h"
#include "mbq/log.h"
#include "mbq/runfail.h"
#include "mbq/server.h"
#include "mbq/util.h"
#include "mbq/version.h"
#include "mbq/banned.h"

#define FAIL_IF(x)                                                                                 \
    do {                                                                                           \
        if (x)                                                                                     \
            return MBQ_ENOMEM;                                                                     \
    } while (0)

/* The last finished run of a table (runs are newest first), or NULL. */
static const mbq_table_run *last_finished(const mbq_dash_table *t)
{
    for (int i = 0; i < t->n_runs; i++)
        if (mbq_streq(t->runs[i].state, "done") || mbq_streq(t->runs[i].state, "failed") ||
            mbq_streq(t->runs[i].state, "abandoned"))
            return &t->runs[i];
    return NULL;
}

/* The result of the table's last run, as the textfile names it: "failed"
 * while failures are counted, "skipped" when it synced no row (no job ran),
 * else "ok"; NULL when it never finished a run. */
static const char *last_result(const mbq_dash_table *t)
{
    if (t->st.consecutive_failures > 0)
        return "failed";
    if (t->st.last_success_ms <= 0)
        return NULL;
    return t->st.last_rows > 0 ? "ok" : "skipped";
}

/* ---- JSON ---- */

/* A JSON string (secrets masked: an error may quote a server's message;
 * invalid UTF-8 replaced) or null. Also api_cdc.c's. */
int api_json_str(mbq_buf *b, const char *s)
{
    if (!s)
        return mbq_buf_puts(b, "null") ? MBQ_ENOMEM : 0;
    char *copy = mbq_strdup(s);
    if (!copy)
        return MBQ_ENOMEM;
    mbq_secret_mask(copy);
    int rc = mbq_buf_json_string(b, copy, strlen(copy)) ? MBQ_ENOMEM : 0;
    free(copy);
    return rc;
}

int api_json_time(mbq_buf *b, int64_t ms)
{
    if (ms <= 0)
        return mbq_buf_puts(b, "null") ? MBQ_ENOMEM : 0;
    FAIL_IF(mbq_buf_putc(b, '"') || mbq_buf_time_iso(b, ms) || mbq_buf_putc(b, '"'));
    return 0;
}

static int jkey(mbq_buf *b, bool first, const char *key)
{
    return mbq_buf_printf(b, "%s\"%s\":", first ? "" : ",", key) ? MBQ_ENOMEM : 0;
}

static int json_run(mbq_buf *b, const mbq_table_run *r)
{
    if (!r)
        return mbq_buf_puts(b, "null") ? MBQ_ENOMEM : 0;
    FAIL_IF(mbq_buf_printf(b, "{\"id\":%lld", (long long)r->id) || jkey(b, false, "state") ||
            api_json_str(b, r->state) || mbq_buf_printf(b, ",\"attempt\":%d", r->attempt) ||
            jkey(b, false, "low") || api_json_str(b, r->low) || jkey(b, false, "high") ||
            api_json_str(b, r->high) || jkey(b, false, "started") || api_json_time(b, r->started_ms) ||
            jkey(b, false, "updated") || api_json_time(b, r->updated_ms) || jkey(b, false, "finished") ||
            api_json_time(b, r->finished_ms) ||
            mbq_buf_printf(b, ",\"rows\":%lld",
                           (long long)(r->rows_merged > 0 ? r->rows_merged : r->staged_rows)) ||
            mbq_buf_printf(b, ",\"timings\":{\"schema_check_ms\":%lld,\"extract_ms\":%lld,"
                              "\"stage_ms\":%lld,\"merge_ms\":%lld,\"commit_ms\":%lld}",
                           (long long)r->t_schema_ms, (long long)r->t_extract_ms,
                           (long long)r->t_stage_ms, (long long)r->t_merge_ms,
                           (long long)r->t_commit_ms) ||
            jkey(b, false, "error") || api_json_str(b, r->error) || jkey(b, false, "error_state") ||
            api_json_str(b, r->error_state) || mbq_buf_putc(b, '}'));
    return 0;
}

static int json_table(mbq_buf *b, const mbq_dash *d, const mbq_dash_table *t)
{
    mbq_buf why = MBQ_BUF_INIT;
    bool healthy = mbq_dash_table_healthy(d, t, &why);
    int64_t lag = mbq_dash_lag_ms(d, t);
    int rc = 0;
    if (mbq_buf_puts(b, "{") || jkey(b, true, "name") || api_json_str(b, t->name) ||
        mbq_buf_printf(b, ",\"configured\":%s", t->configured ? "true" : "false") ||
        jkey(b, false, "status") || api_json_str(b, mbq_dash_table_status(d, t)) ||
        mbq_buf_printf(b, ",\"healthy\":%s", healthy ? "true" : "false") ||
        jkey(b, false, "health_reason") || api_json_str(b, healthy ? NULL : mbq_buf_cstr(&why)) ||
        jkey(b, false, "cursor") || api_json_str(b, t->st.cursor_value) ||
        jkey(b, false, "cursor_kind") || api_json_str(b, t->st.cursor_kind) ||
        jkey(b, false, "last_success") || api_json_time(b, t->st.last_success_ms) ||
        (lag < 0 ? mbq_buf_puts(b, ",\"lag_seconds\":null")
                 : mbq_buf_printf(b, ",\"lag_seconds\":%.3f", (double)lag / 1000.0)) ||
        jkey(b, false, "source_high_water") || api_json_str(b, t->st.last_high) ||
        mbq_buf_printf(b, ",\"last_rows\":%lld,\"total_rows\":%lld,\"consecutive_failures\":%d",
                       (long long)t->st.last_rows, (long long)t->st.total_rows,
                       t->st.consecutive_failures) ||
        jkey(b, false, "last_result") || api_json_str(b, last_result(t)) ||
        jkey(b, false, "last_error") || api_json_str(b, t->st.last_error) ||
        jkey(b, false, "last_error_state") || api_json_str(b, t->st.last_error_state) ||
        jkey(b, false, "in_flight") || json_run(b, t->in_flight ? &t->flight : NULL) ||
        jkey(b, false, "last_run") || json_run(b, last_finished(t)) ||
        api_cdc_table_json(b, t) || mbq_buf_putc(b, '}'))
        rc = MBQ_ENOMEM;
    mbq_buf_free(&why);
    return rc;
}

int mbq_render_tables_json(mbq_buf *out, const mbq_dash *d)
{
    bool all_healthy = true;
    for (size_t i = 0; i < d->n_tables; i++)
        all_healthy = mbq_dash_table_healthy(d, &d->tables[i], NULL) && all_healthy;
    FAIL_IF(mbq_buf_puts(out, "{") || jkey(out, true, "generated") || api_json_time(out, d->now_ms) ||
            jkey(out, false, "journal") || api_json_str(out, d->state_dir) ||
            mbq_buf_printf(out, ",\"schema_version\":%d,\"healthy\":%s,"
                                "\"healthy_within_seconds\":%lld",
                           d->journal_version, all_healthy ? "true" : "false",
                           (long long)(d->healthy_within_ms / 1000)) ||
            jkey(out, false, "last_sync_run"));
    if (d->have_last_run)
        FAIL_IF(mbq_buf_puts(out, "{") || jkey(out, true, "run_id") ||
                api_json_str(out, d->last_run.run_id) || jkey(out, false, "status") ||
                api_json_str(out, d->last_run.status) || jkey(out, false, "started") ||
                api_json_time(out, d->last_run.started_ms) || jkey(out, false, "finished") ||
                api_json_time(out, d->last_run.finished_ms) ||
                mbq_buf_printf(out, ",\"tables_ok\":%d,\"tables_failed\":%d}",
                               d->last_run.tables_ok, d->last_run.tables_failed));
    else
        FAIL_IF(mbq_buf_puts(out, "null"));
    FAIL_IF(api_cdc_stream_json(out, d) || mbq_buf_puts(out, ",\"tables\":["));
    for (size_t i = 0; i < d->n_tables; i++)
        FAIL_IF((i && mbq_buf_putc(out, ',')) || json_table(out, d, &d->tables[i]));
    FAIL_IF(mbq_buf_puts(out, "]}\n"));
    return 0;
}

/* ---- Prometheus ---- */

/* The text format's only escapes in a label value: \\, \" and \n. */
static const char *label_subst(unsigned char c)
{
    return c == '\\' ? "\\\\" : c == '"' ? "\\\"" : c == '\n' ? "\\n" : NULL;
}

static int family(mbq_buf *b, const char *name, const char *help)
{
    return mbq_buf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name) ? MBQ_ENOMEM
                                                                                  : 0;
}

/* `name{table="t"` (UTF-8 label value, invalid bytes as U+FFFD); the caller
 * closes the braces or adds labels. */
static int sample(mbq_buf *b, const char *name, const mbq_dash_table *t)
{
    FAIL_IF(mbq_buf_printf(b, "%s{table=\"", name) || mbq_buf_put_utf8(b, t->name, label_subst) ||
            mbq_buf_putc(b, '"'));
    return 0;
}

static int put_seconds(mbq_buf *b, int64_t ms)
{
    const char *sign = ms < 0 ? "-" : "";
    int64_t a = ms < 0 ? -ms : ms;
    return mbq_buf_printf(b, "%s%lld.%03lld", sign, (long long)(a / 1000), (long long)(a % 1000))
               ? MBQ_ENOMEM
               : 0;
}

/* One family with a plain per-table value: `value` returns false to skip. */
typedef bool (*table_value_fn)(int64_t *ms_or_n, bool *is_ms, const mbq_dash *d,
                               const mbq_dash_table *t);

static bool v_healthy(int64_t *v, bool *ms, const mbq_dash *d, const mbq_dash_table *t);
static const table_value_fn v_healthy_fn = v_healthy;

static int per_table(mbq_buf *b, const mbq_dash *d, const char *name, const char *help,
                     table_value_fn value)
{
    FAIL_IF(family(b, name, help));
    for (size_t i = 0; i < d->n_tables; i++) {
        const mbq_dash_table *t = &d->tables[i];
        int64_t v = 0;
        bool is_ms = false;
        /* A followed table has no sync runs: the mbq_cdc_* families say
         * how it does; only its health is common. */
        if ((t->cdc_mode && value != v_healthy_fn) || !value(&v, &is_ms, d, t))
            continue;
        FAIL_IF(sample(b, name, t) || mbq_buf_puts(b, "} ") ||
                (is_ms ? put_seconds(b, v) : mbq_buf_printf(b, "%lld", (long long)v)) ||
                mbq_buf_putc(b, '\n'));
    }
    return 0;
}

static bool v_up(int64_t *v, bool *ms, const mbq_dash *d, const mbq_dash_table *t)
{
    (void)ms, (void)d;
    *v = last_result(t) && !mbq_streq(last_result(t), "failed");
    return true;
}

static bool v_rows(int64_t *v, bool *ms, const mbq_dash *d, const mbq_dash_table *t)
{
    (void)ms, (void)d;
    *v = t->st.last_rows;
    return true;
}

static bool v_duration(int64_t *v, bool *ms, const mbq_dash *d, const mbq_dash_table *t)
{
    (void)d;
    const mbq_table_run *r = last_finished(t);
    *ms = true;
    *v = r && r->finished_ms > r->started_ms ? r->finished_ms - r->started_ms : 0;
    return r != NULL;
}

static bool v_last_success(int64_t *v, bool *ms, const mbq_dash *d, const mbq_dash_table *t)
{
    (void)d;
    *ms = true;
    *v = t->st.last_success_ms > 0 ? t->st.last_success_ms : 0;
    return true;
}

static bool v_failures(int64_t *v, bool *ms, const mbq_dash *d, const mbq_dash_table *t)
{
    (void)ms, (void)d;
    *v = t->st.consecutive_failures;
    return true;
}

static bool v_schema_changes(int64_t *v, bool *ms, const mbq_dash *d, const mbq_dash_table *t)
{
    (void)ms, (void)d;
    *v = t->schema_changes_last_run;
    return true;
}

static bool v_lag(int64_t *v, bool *ms, const mbq_dash *d, const mbq_dash_table *t)
{
    *ms = true;
    *v = mbq_dash_lag_ms(d, t);
    return *v >= 0;
}

static bool v_cursor_ts(int64_t *v, bool *ms, const mbq_dash *d, const mbq_dash_table *t)
{
    (void)d;
    *ms = true;
    return mbq_streq(t->st.cursor_kind, "timestamp") && mbq_dash_cursor_ms(v, t->st.cursor_value);
}

static bool v_healthy(int64_t *v, bool *ms, const mbq_dash *d, const mbq_dash_table *t)
{
    (void)ms;
    *v = mbq_dash_table_healthy(d, t, NULL);
    return t->configured;
}

static const char *const results[] = {"ok", "failed", "skipped"};

static int table_families(mbq_buf *b, const mbq_dash *d)
{
    FAIL_IF(per_table(b, d, "mbq_table_up",
                      "Whether the table's last sync succeeded (1) or failed (0).", v_up) ||
            family(b, "mbq_table_result",
                   "The table's result in the last run (1 for the current result)."));
    for (size_t i = 0; i < d->n_tables; i++) {
        const char *r = d->tables[i].cdc_mode ? NULL : last_result(&d->tables[i]);
        for (int k = 0; r && k < 3; k++)
            FAIL_IF(sample(b, "mbq_table_result", &d->tables[i]) ||
                    mbq_buf_printf(b, ",result=\"%s\"} %d\n", results[k],
                                   mbq_streq(r, results[k])));
    }
    FAIL_IF(per_table(b, d, "mbq_table_rows_synced", "Rows synced in the last run.", v_rows) ||
            per_table(b, d, "mbq_table_sync_duration_seconds",
                      "Time the table took in the last run.", v_duration) ||
            family(b, "mbq_table_stage_duration_seconds",
                   "Time each state of the table's sync took in the last run."));
    static const char *const names[] = {"schema-check", "extract", "stage", "merge",
                                        "commit-metadata"};
    for (size_t i = 0; i < d->n_tables; i++) {
        const mbq_table_run *r = d->tables[i].cdc_mode ? NULL : last_finished(&d->tables[i]);
        if (!r)
            continue;
        const int64_t ms[] = {r->t_schema_ms, r->t_extract_ms, r->t_stage_ms, r->t_merge_ms,
                              r->t_commit_ms};
        for (int k = 0; k < 5; k++)
            FAIL_IF(sample(b, "mbq_table_stage_duration_seconds", &d->tables[i]) ||
                    mbq_buf_printf(b, ",stage=\"%s\"} ", names[k]) || put_seconds(b, ms[k]) ||
                    mbq_buf_putc(b, '\n'));
    }
    FAIL_IF(per_table(b, d, "mbq_table_last_success_timestamp_seconds",
                      "Unix time of the table's last successful sync (0 = never).",
                      v_last_success) ||
            per_table(b, d, "mbq_table_consecutive_failures",
                      "Failed runs in a row for the table, the last run included.", v_failures) ||
            per_table(b, d, "mbq_table_schema_changes", "Schema changes applied in the last run.",
                      v_schema_changes));
    return 0;
}

static int dashboard_families(mbq_buf *b, const mbq_dash *d)
{
    FAIL_IF(per_table(b, d, "mbq_table_lag_seconds",
                      "Seconds since the table's last successful sync (absent = never).",
                      v_lag) ||
            per_table(b, d, "mbq_table_cursor_timestamp_seconds",
                      "The committed cursor of a timestamp-cursor table as Unix time: the "
                      "source high-water mark BigQuery holds.",
                      v_cursor_ts) ||
            per_table(b, d, "mbq_table_healthy",
                      "1 when the table's last run succeeded within healthy_within (/healthz).",
                      v_healthy) ||
            family(b, "mbq_table_in_flight",
                   "1 for the state of the table's unfinished run (absent = none)."));
    for (size_t i = 0; i < d->n_tables; i++) {
        const mbq_dash_table *t = &d->tables[i];
        if (!t->in_flight)
            continue;
        FAIL_IF(sample(b, "mbq_table_in_flight", t) || mbq_buf_puts(b, ",state=\"") ||
                mbq_buf_put_utf8(b, t->flight.state, label_subst) || mbq_buf_puts(b, "\"} 1\n"));
    }
    return 0;
}

/* The per-run families, from the last finished run: its failed tables as
 * the runs table counts them, and the tables it committed (their last_run_id
 * is that run) as ok or skipped by the rows they synced. */
static int run_families(mbq_buf *b, const mbq_dash *d)
{
    if (!d->have_last_run)
        return 0;
    size_t n[3] = {0, (size_t)(d->last_run.tables_failed > 0 ? d->last_run.tables_failed : 0), 0};
    int64_t rows = 0;
    for (size_t i = 0; i < d->n_tables; i++) {
        const mbq_dash_table *t = &d->tables[i];
        if (t->st.consecutive_failures > 0 || !mbq_streq(t->st.last_run_id, d->last_run.run_id))
            continue;
        n[t->st.last_rows > 0 ? 0 : 2]++;
        rows += t->st.last_rows > 0 ? t->st.last_rows : 0;
    }
    const mbq_run_record *r = &d->last_run;
    FAIL_IF(family(b, "mbq_run_timestamp_seconds", "Unix time the last run finished.") ||
            mbq_buf_puts(b, "mbq_run_timestamp_seconds ") || put_seconds(b, r->finished_ms) ||
            mbq_buf_putc(b, '\n') || family(b, "mbq_run_duration_seconds", "Duration of the last run.") ||
            mbq_buf_puts(b, "mbq_run_duration_seconds ") ||
            put_seconds(b, r->finished_ms > r->started_ms ? r->finished_ms - r->started_ms : 0) ||
            mbq_buf_putc(b, '\n') || family(b, "mbq_run_tables", "Tables by result in the last run."));
    for (int k = 0; k < 3; k++)
        FAIL_IF(mbq_buf_printf(b, "mbq_run_tables{result=\"%s\"} %zu\n", results[k], n[k]));
    FAIL_IF(family(b, "mbq_run_rows_synced", "Rows synced by the last run, all tables.") ||
            mbq_buf_printf(b, "mbq_run_rows_synced %lld\n", (long long)rows));
    return 0;
}

/* The build and the run-level families the textfile has (metrics.c): a
 * run that stopped before any table is not in the journal (the journal may
 * be what broke), so its streak comes from <state.dir>/run-failures as the
 * sync keeps it (mbq/runfail.h); else the last run's exit code is 1 when a
 * table failed, 0 when none did. */
static int build_and_stop_families(mbq_buf *b, const mbq_dash *d)
{
    mbq_runfail rf;
    mbq_runfail_read(&rf, d->state_dir);
    int exit_code = rf.count > 0                                        ? rf.exit_code
                    : d->have_last_run && d->last_run.tables_failed > 0 ? 1
                                                                        : 0;
    FAIL_IF(family(b, "mbq_build_info", "The running mbq's version and build commit (always 1).") ||
            mbq_buf_puts(b, "mbq_build_info{version=\"") ||
            mbq_buf_put_utf8(b, mbq_version(), label_subst) || mbq_buf_puts(b, "\",commit=\"") ||
            mbq_buf_put_utf8(b, mbq_version_commit(), label_subst) ||
            mbq_buf_puts(b, "\"} 1\n"));
    if (!d->have_last_run && rf.count == 0)
        return 0;
    FAIL_IF(family(b, "mbq_run_exit_code", "Exit code of the last run (0 ok, 1 a table failed, "
                                           "69, 70, 74, 75, 77: see the README).") ||
            mbq_buf_printf(b, "mbq_run_exit_code %d\n", exit_code) ||
            family(b, "mbq_run_stopped", "1 when the last run stopped before any table, else 0.") ||
            mbq_buf_printf(b, "mbq_run_stopped %d\n", rf.count > 0 ? 1 : 0) ||
            family(b, "mbq_run_consecutive_stopped",
                   "Runs in a row that stopped before any table, the last run included.") ||
            mbq_buf_printf(b, "mbq_run_consecutive_stopped %d\n", rf.count));
    return 0;
}

int mbq_render_metrics(mbq_buf *out, const mbq_dash *d)
{
    FAIL_IF(table_families(out, d) || dashboard_families(out, d) || run_families(out, d) ||
            build_and_stop_families(out, d) || mbq_render_cdc_metrics(out, d));
    return 0;
}

/* Text on one line: a newline inside a name or an error would forge
 * another line of the health report. */
static const char *line_subst(unsigned char c)
{
    return c == '\n' || c == '\r' ? " " : NULL;
}

int mbq_render_health(mbq_buf *out, bool *healthy, const mbq_dash *d)
{
    mbq_buf why = MBQ_BUF_INIT, lines = MBQ_BUF_INIT;
    size_t bad = 0;
    int rc = 0;
    for (size_t i = 0; i < d->n_tables && rc == 0; i++) {
        const mbq_dash_table *t = &d->tables[i];
        mbq_buf_clear(&why);
        if (mbq_dash_table_healthy(d, t, &why))
            continue;
        bad++;
        if (mbq_buf_put_utf8(&lines, t->name, line_subst) || mbq_buf_puts(&lines, ": ") ||
            mbq_buf_put_utf8(&lines, mbq_buf_cstr(&why), line_subst) || mbq_buf_putc(&lines, '\n'))
            rc = MBQ_ENOMEM;
    }
    *healthy = bad == 0;
    if (rc == 0 && bad == 0 && mbq_buf_printf(out, "ok: %zu table(s) healthy\n", d->n_tables))
        rc = MBQ_ENOMEM;
    if (rc == 0 && bad > 0) {
        char *text = mbq_buf_detach(&lines);
        if (text)
            mbq_secret_mask(text);
        if (!text || mbq_buf_printf(out, "unhealthy: %zu table(s)\n", bad) ||
            mbq_buf_puts(out, text))
            rc = MBQ_ENOMEM;
        free(text);
    }
    mbq_buf_free(&why);
    mbq_buf_free(&lines);
    return rc;
}
