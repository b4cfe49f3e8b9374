/* The dashboard's HTML pages (see mbq/server.h). No JavaScript, no inline
 * style (the Content-Security-Policy forbids both): the stylesheet is
 * /style.css and the charts are inline SVG with presentation attributes. */
#include <stdlib.h>
#include <string.h>

#include "mbq/error.h"
#include "mbq/log.h"
#include "mbq/server.h"
#include "mbq/util.h"
#include "mbq/banned.h"

#define FAIL_IF(x)                                                                                 \
    do {                                                                                           \
        if (x)                                                                                     \
            return MBQ_ENOMEM;                                                                     \
    } while (0)

/* U+FFFD, the replacement character, for bytes that must not reach the
 * page as they are. */
#define REPLACEMENT "\xef\xbf\xbd"

static const char *html_subst(unsigned char c)
{
    switch (c) {
    case '&': return "&amp;";
    case '<': return "&lt;";
    case '>': return "&gt;";
    case '"': return "&quot;";
    case '\'': return "&#39;";
    case '\t':
    case '\n': return NULL;
    default: return c < 0x20 || c == 0x7f ? REPLACEMENT : NULL;
    }
}

int mbq_html_escape(mbq_buf *out, const char *s)
{
    if (!s)
        return 0;
    /* A secret that reached the journal (it should not: errors are masked
     * where they are made) is masked here once more before it is shown. */
    char *copy = mbq_strdup(s);
    if (!copy)
        return MBQ_ENOMEM;
    mbq_secret_mask(copy);
    int rc = mbq_buf_put_utf8(out, copy, html_subst) ? MBQ_ENOMEM : 0;
    free(copy);
    return rc;
}

int mbq_url_encode(mbq_buf *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        bool plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                     (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~';
        if (plain ? mbq_buf_putc(out, (char)*p)
                  : mbq_buf_printf(out, "%%%c%c", hex[*p >> 4], hex[*p & 15]))
            return MBQ_ENOMEM;
    }
    return 0;
}

static int put_time(mbq_buf *b, int64_t ms)
{
    if (ms <= 0)
        return mbq_buf_puts(b, "never");
    return mbq_buf_time_iso(b, ms);
}

/* "<td>text</td>" with `text` escaped; NULL shows as a dash. */
static int td(mbq_buf *b, const char *text)
{
    FAIL_IF(mbq_buf_puts(b, "<td>") || (text ? mbq_html_escape(b, text) : mbq_buf_puts(b, "-")) ||
            mbq_buf_puts(b, "</td>"));
    return 0;
}

static int td_count(mbq_buf *b, int64_t v)
{
    FAIL_IF(mbq_buf_puts(b, "<td class=\"num\">") || mbq_buf_put_count(b, v) ||
            mbq_buf_puts(b, "</td>"));
    return 0;
}

static int page_head(mbq_buf *b, const mbq_dash *d, const char *title_a, const char *title_b)
{
    FAIL_IF(mbq_buf_puts(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"));
    if (d && d->refresh_s > 0)
        FAIL_IF(mbq_buf_printf(b, "<meta http-equiv=\"refresh\" content=\"%d\">", d->refresh_s));
    FAIL_IF(mbq_buf_puts(b, "<meta name=\"viewport\" content=\"width=device-width\">"
                            "<meta name=\"referrer\" content=\"no-referrer\"><title>mbq: ") ||
            mbq_html_escape(b, title_a) || (title_b && mbq_buf_puts(b, " ")) ||
            mbq_html_escape(b, title_b) ||
            mbq_buf_puts(b, "</title><link rel=\"stylesheet\" href=\"/style.css\">"
                            "<link rel=\"icon\" href=\"/favicon.svg\" type=\"image/svg+xml\">"
                            "</head>\n<body><header><h1><a href=\"/\">mbq</a></h1><nav>"
                            "<a href=\"/\">Tables</a><a href=\"/alerts\">Alerts</a>"
                            "<a href=\"/metrics\">Metrics</a><a href=\"/api/tables\">JSON</a>"
                            "<a href=\"/healthz\">Health</a></nav></header>\n<main>"));
    if (d) {
        FAIL_IF(mbq_buf_puts(b, "<p class=\"meta\">journal <code>") ||
                mbq_html_escape(b, d->state_dir) || mbq_buf_puts(b, "/state.db</code> &middot; ") ||
                put_time(b, d->now_ms) || mbq_buf_puts(b, " &middot; healthy within ") ||
                mbq_dash_put_age(b, d->healthy_within_ms));
        if (d->refresh_s > 0)
            FAIL_IF(mbq_buf_printf(b, " &middot; refreshes every %d s", d->refresh_s));
        FAIL_IF(mbq_buf_puts(b, "</p>\n"));
    }
    return 0;
}

static int page_tail(mbq_buf *b)
{
    return mbq_buf_puts(b, "</main></body></html>\n") ? MBQ_ENOMEM : 0;
}

/* The CSS class of a status word (mbq_dash_table_status). */
static const char *status_class(const char *status)
{
    if (mbq_streq(status, "ok") || mbq_streq(status, "streaming"))
        return "ok";
    if (mbq_streq(status, "failed") || mbq_streq(status, "behind") ||
        mbq_streq(status, "never synced") || mbq_streq(status, "down") ||
        mbq_streq(status, "lagging") || mbq_streq(status, "no snapshot"))
        return "bad";
    return "info";
}

static int table_link(mbq_buf *b, const char *name)
{
    FAIL_IF(mbq_buf_puts(b, "<a href=\"/table/") || mbq_url_encode(b, name) ||
            mbq_buf_puts(b, "\">") || mbq_html_escape(b, name) || mbq_buf_puts(b, "</a>"));
    return 0;
}

static int in_flight_desc(mbq_buf *b, const mbq_dash_table *t)
{
    if (!t->in_flight)
        return mbq_buf_puts(b, "-") ? MBQ_ENOMEM : 0;
    FAIL_IF(mbq_html_escape(b, t->flight.state) ||
            mbq_buf_printf(b, " (attempt %d, since ", t->flight.attempt) ||
            put_time(b, t->flight.started_ms) || mbq_buf_puts(b, ")"));
    if (t->flight.error)
        FAIL_IF(mbq_buf_puts(b, "<br><span class=\"err\">") ||
                mbq_html_escape(b, t->flight.error) || mbq_buf_puts(b, "</span>"));
    return 0;
}

static int overview_row(mbq_buf *b, const mbq_dash *d, const mbq_dash_table *t)
{
    const char *status = mbq_dash_table_status(d, t);
    int64_t lag = mbq_dash_lag_ms(d, t);
    FAIL_IF(mbq_buf_puts(b, "<tr class=\"table-row\" data-table=\"") ||
            mbq_html_escape(b, t->name) || mbq_buf_puts(b, "\"><td>") || table_link(b, t->name) ||
            mbq_buf_printf(b, "</td><td><span class=\"badge %s\">%s</span></td><td>",
                           status_class(status), status) ||
            put_time(b, t->st.last_success_ms) || mbq_buf_puts(b, "</td><td class=\"num\">") ||
            (lag < 0 ? mbq_buf_puts(b, "-") : mbq_dash_put_age(b, lag)) ||
            mbq_buf_puts(b, "</td>") || td(b, t->st.cursor_value) || td(b, t->st.last_high) ||
            td_count(b, t->st.last_rows) || td_count(b, t->st.consecutive_failures) ||
            mbq_buf_puts(b, "<td>") || in_flight_desc(b, t) || mbq_buf_puts(b, "</td></tr>\n"));
    return 0;
}

/* The banner: every table healthy, or which are not and why. */
static int health_banner(mbq_buf *b, const mbq_dash *d)
{
    mbq_buf why = MBQ_BUF_INIT, list = MBQ_BUF_INIT;
    size_t bad = 0, judged = 0;
    int rc = 0;
    for (size_t i = 0; i < d->n_tables && rc == 0; i++) {
        const mbq_dash_table *t = &d->tables[i];
        judged += t->configured;
        mbq_buf_clear(&why);
        if (mbq_dash_table_healthy(d, t, &why))
            continue;
        bad++;
        if (mbq_buf_puts(&list, "<li>") || table_link(&list, t->name) ||
            mbq_buf_puts(&list, ": ") || mbq_html_escape(&list, mbq_buf_cstr(&why)) ||
            mbq_buf_puts(&list, "</li>"))
            rc = MBQ_ENOMEM;
    }
    if (rc == 0 && bad == 0 &&
        mbq_buf_printf(b, "<p class=\"banner ok\">All %zu configured tables are healthy.</p>\n",
                       judged))
        rc = MBQ_ENOMEM;
    if (rc == 0 && bad > 0 &&
        mbq_buf_printf(b, "<div class=\"banner bad\"><p>%zu of %zu configured tables need "
                          "attention:</p><ul>%s</ul></div>\n",
                       bad, judged, mbq_buf_cstr(&list)))
        rc = MBQ_ENOMEM;
    mbq_buf_free(&why);
    mbq_buf_free(&list);
    return rc;
}

int mbq_render_overview(mbq_buf *out, const mbq_dash *d)
{
    FAIL_IF(page_head(out, d, "tables", NULL) || health_banner(out, d));
    if (d->have_last_run)
        FAIL_IF(mbq_buf_puts(out, "<p class=\"meta\">last sync run: ") ||
                mbq_html_escape(out, d->last_run.status) || mbq_buf_puts(out, ", finished ") ||
                put_time(out, d->last_run.finished_ms) ||
                mbq_buf_printf(out, ", %d table(s) ok, %d failed</p>\n", d->last_run.tables_ok,
                               d->last_run.tables_failed));
    FAIL_IF(mbq_buf_puts(out, "<table id=\"tables\"><thead><tr><th>Table</th><th>Status</th>"
                              "<th>Last success (UTC)</th><th>Lag</th><th>Cursor</th>"
                              "<th>Source high-water</th><th>Rows last run</th>"
                              "<th>Failures</th><th>In flight</th></tr></thead><tbody>\n"));
    for (size_t i = 0; i < d->n_tables; i++)
        FAIL_IF(overview_row(out, d, &d->tables[i]));
    if (d->n_tables == 0)
        FAIL_IF(mbq_buf_puts(out, "<tr><td colspan=\"9\">no table has run yet</td></tr>"));
    FAIL_IF(mbq_buf_puts(out, "</tbody></table>\n") || mbq_render_cdc_panel(out, d) ||
            page_tail(out));
    return 0;
}

/* ---- the table page ---- */

static int fact(mbq_buf *b, const char *label, const char *value)
{
    FAIL_IF(mbq_buf_printf(b, "<dt>%s</dt><dd>", label) ||
            (value ? mbq_html_escape(b, value) : mbq_buf_puts(b, "-")) ||
            mbq_buf_puts(b, "</dd>"));
    return 0;
}

static int table_facts(mbq_buf *b, const mbq_dash *d, const mbq_dash_table *t)
{
    mbq_buf why = MBQ_BUF_INIT;
    const char *status = mbq_dash_table_status(d, t);
    bool healthy = mbq_dash_table_healthy(d, t, &why);
    int64_t lag = mbq_dash_lag_ms(d, t);
    int rc = 0;
    if (mbq_buf_printf(b, "<dl class=\"facts\"><dt>Status</dt><dd><span class=\"badge %s\">%s"
                          "</span>",
                       status_class(status), status) ||
        (!healthy && (mbq_buf_puts(b, " ") || mbq_html_escape(b, mbq_buf_cstr(&why)))) ||
        mbq_buf_puts(b, "</dd><dt>Last success (UTC)</dt><dd>") ||
        put_time(b, t->st.last_success_ms) || mbq_buf_puts(b, "</dd><dt>Lag</dt><dd>") ||
        (lag < 0 ? mbq_buf_puts(b, "-") : mbq_dash_put_age(b, lag)) ||
        mbq_buf_puts(b, "</dd>") || fact(b, "Cursor", t->st.cursor_value) ||
        fact(b, "Cursor kind", t->st.cursor_kind) || fact(b, "Next window from", t->st.last_low) ||
        fact(b, "Source high-water", t->st.last_high) ||
        mbq_buf_puts(b, "<dt>Rows last run / total</dt><dd>") ||
        mbq_buf_put_count(b, t->st.last_rows) || mbq_buf_puts(b, " / ") ||
        mbq_buf_put_count(b, t->st.total_rows) ||
        mbq_buf_printf(b, "</dd><dt>Failures in a row</dt><dd>%d</dd>",
                       t->st.consecutive_failures) ||
        mbq_buf_puts(b, "<dt>In flight</dt><dd>") || in_flight_desc(b, t) ||
        mbq_buf_puts(b, "</dd></dl>\n"))
        rc = MBQ_ENOMEM;
    mbq_buf_free(&why);
    return rc;
}

static int run_row(mbq_buf *b, const mbq_table_run *r)
{
    int64_t end = r->finished_ms > 0 ? r->finished_ms : r->updated_ms;
    FAIL_IF(mbq_buf_printf(b, "<tr><td class=\"num\">%lld</td><td>", (long long)r->id) ||
            put_time(b, r->started_ms) || mbq_buf_puts(b, "</td>") || td(b, r->state) ||
            td(b, r->load_mode) || td(b, r->low) || td(b, r->high) ||
            td_count(b, r->rows_merged > 0 ? r->rows_merged : r->staged_rows) ||
            mbq_buf_printf(b, "<td class=\"num\">%.1f</td><td class=\"num\">%.1f / %.1f / %.1f / "
                              "%.1f / %.1f</td>",
                           (double)(end - r->started_ms) / 1000.0, (double)r->t_schema_ms / 1000.0,
                           (double)r->t_extract_ms / 1000.0, (double)r->t_stage_ms / 1000.0,
                           (double)r->t_merge_ms / 1000.0, (double)r->t_commit_ms / 1000.0) ||
            td(b, r->error) || mbq_buf_puts(b, "</tr>\n"));
    return 0;
}

static int event_row(mbq_buf *b, const mbq_event *e)
{
    FAIL_IF(mbq_buf_puts(b, "<tr><td>") || put_time(b, e->ts_ms) || mbq_buf_puts(b, "</td>") ||
            td(b, e->kind) || td(b, e->column_name) || td(b, e->old_type) || td(b, e->new_type) ||
            td(b, e->action) || td(b, e->detail) || mbq_buf_puts(b, "</tr>\n"));
    return 0;
}

static int events_section(mbq_buf *b, const mbq_dash_table *t, bool schema, const char *title,
                          const char *id)
{
    size_t shown = 0;
    FAIL_IF(mbq_buf_printf(b, "<h3>%s</h3><table id=\"%s\"><thead><tr><th>Time (UTC)</th>"
                              "<th>Kind</th><th>Column</th><th>Old type</th><th>New type</th>"
                              "<th>Action</th><th>Detail</th></tr></thead><tbody>\n",
                           title, id));
    for (int i = 0; i < t->n_events; i++) {
        const mbq_event *e = &t->events[i];
        bool is_schema = e->kind && strncmp(e->kind, "schema.", 7) == 0;
        if (is_schema != schema)
            continue;
        FAIL_IF(event_row(b, e));
        shown++;
    }
    if (shown == 0)
        FAIL_IF(mbq_buf_puts(b, "<tr><td colspan=\"7\">none recorded</td></tr>"));
    FAIL_IF(mbq_buf_puts(b, "</tbody></table>\n"));
    return 0;
}

static int errors_section(mbq_buf *b, const mbq_dash_table *t)
{
    size_t shown = 0;
    FAIL_IF(mbq_buf_puts(b, "<h3>Last errors</h3><table id=\"errors\"><thead><tr><th>Run</th>"
                            "<th>Time (UTC)</th><th>State</th><th>Error</th></tr></thead>"
                            "<tbody>\n"));
    for (int i = 0; i < t->n_runs && shown < 10; i++) {
        const mbq_table_run *r = &t->runs[i];
        if (!r->error)
            continue;
        FAIL_IF(mbq_buf_printf(b, "<tr><td class=\"num\">%lld</td><td>", (long long)r->id) ||
                put_time(b, r->updated_ms) || mbq_buf_puts(b, "</td>") ||
                td(b, r->error_state) || mbq_buf_puts(b, "<td class=\"err\">") ||
                mbq_html_escape(b, r->error) || mbq_buf_puts(b, "</td></tr>\n"));
        shown++;
    }
    if (shown == 0 && t->st.last_error)
        FAIL_IF(mbq_buf_puts(b, "<tr><td>-</td><td>-</td>") || td(b, t->st.last_error_state) ||
                mbq_buf_puts(b, "<td class=\"err\">") || mbq_html_escape(b, t->st.last_error) ||
                mbq_buf_puts(b, "</td></tr>\n"));
    else if (shown == 0)
        FAIL_IF(mbq_buf_puts(b, "<tr><td colspan=\"4\">none recorded</td></tr>"));
    FAIL_IF(mbq_buf_puts(b, "</tbody></table>\n"));
    return 0;
}

int mbq_render_table_page(mbq_buf *out, const mbq_dash *d)
{
    if (d->n_tables < 1)
        return mbq_render_error_page(out, 404, "no such table");
    const mbq_dash_table *t = &d->tables[0];
    FAIL_IF(page_head(out, d, "table", t->name) || mbq_buf_puts(out, "<h2>") ||
            mbq_html_escape(out, t->name) || mbq_buf_puts(out, "</h2>\n") ||
            table_facts(out, d, t) || mbq_render_cdc_table_facts(out, d, t) ||
            mbq_buf_puts(out, "<h3>History</h3><div class=\"charts\"><figure>") ||
            mbq_render_rows_chart(out, t->runs, t->n_runs) ||
            mbq_buf_puts(out, "<figcaption>Rows per run</figcaption></figure><figure>") ||
            mbq_render_stages_chart(out, t->runs, t->n_runs) ||
            mbq_buf_puts(out, "<figcaption>Duration per stage (s)</figcaption></figure></div>\n") ||
            events_section(out, t, true, "Schema changes", "schema-events") ||
            errors_section(out, t) ||
            events_section(out, t, false, "Other events", "other-events") ||
            mbq_buf_puts(out, "<h3>Runs</h3><table id=\"runs\"><thead><tr><th>Id</th>"
                              "<th>Started (UTC)</th><th>State</th><th>Load</th><th>Low</th>"
                              "<th>High</th><th>Rows</th><th>Total s</th>"
                              "<th>Schema / extract / stage / merge / commit s</th>"
                              "<th>Error</th></tr></thead><tbody>\n"));
    for (int i = 0; i < t->n_runs; i++)
        FAIL_IF(run_row(out, &t->runs[i]));
    FAIL_IF(mbq_buf_puts(out, "</tbody></table>\n") || page_tail(out));
    return 0;
}

int mbq_render_alerts_page(mbq_buf *out, const mbq_dash *d)
{
    FAIL_IF(page_head(out, d, "alerts", NULL) ||
            mbq_buf_puts(out, "<h2>Recent alerts</h2><table id=\"alerts\"><thead><tr>"
                              "<th>Time (UTC)</th><th>Result</th><th>Channel</th>"
                              "<th>Subject or error</th></tr></thead><tbody>\n"));
    for (int i = 0; i < d->n_alerts; i++) {
        const mbq_event *e = &d->alerts[i];
        bool sent = mbq_streq(e->kind, "alert.sent");
        FAIL_IF(mbq_buf_puts(out, "<tr><td>") || put_time(out, e->ts_ms) ||
                mbq_buf_printf(out, "</td><td><span class=\"badge %s\">%s</span></td>",
                               sent ? "ok" : "bad", sent ? "sent" : "failed") ||
                td(out, e->action) || td(out, e->detail) || mbq_buf_puts(out, "</tr>\n"));
    }
    if (d->n_alerts == 0)
        FAIL_IF(mbq_buf_puts(out, "<tr><td colspan=\"4\">no alert recorded</td></tr>"));
    FAIL_IF(mbq_buf_puts(out, "</tbody></table>\n") || page_tail(out));
    return 0;
}

int mbq_render_error_page(mbq_buf *out, int status, const char *msg)
{
    FAIL_IF(page_head(out, NULL, "error", NULL) ||
            mbq_buf_printf(out, "<h2>%d</h2><p class=\"err\">", status) ||
            mbq_html_escape(out, msg) || mbq_buf_puts(out, "</p>") || page_tail(out));
    return 0;
}

const char mbq_dash_favicon_svg[] =
    "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 16 16\">"
    "<rect width=\"16\" height=\"16\" rx=\"3\" fill=\"#1a5fb4\"/>"
    "<rect x=\"3\" y=\"8\" width=\"2\" height=\"5\" fill=\"#fff\"/>"
    "<rect x=\"7\" y=\"5\" width=\"2\" height=\"8\" fill=\"#fff\"/>"
    "<rect x=\"11\" y=\"3\" width=\"2\" height=\"10\" fill=\"#fff\"/></svg>\n";

const char mbq_dash_css[] =
    "body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#fafafa}"
    "header{display:flex;align-items:center;gap:2em;background:#1a5fb4;color:#fff;"
    "padding:.4em 1em}header h1{margin:0;font-size:1.3em}header a{color:#fff}"
    "nav a{margin-right:1em}main{padding:1em}"
    "table{border-collapse:collapse;background:#fff;margin-bottom:1em}"
    "th,td{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top}"
    "th{background:#eee}td.num{text-align:right;white-space:nowrap}"
    ".meta{color:#666;font-size:.9em}.err{color:#a51d2d;white-space:pre-wrap}"
    ".badge{padding:0 .4em;border-radius:3px;color:#fff;white-space:nowrap}"
    ".badge.ok{background:#26a269}.badge.bad{background:#c01c28}.badge.info{background:#986a44}"
    ".banner{padding:.5em 1em;border-radius:4px}.banner.ok{background:#d8f5e0}"
    ".banner.bad{background:#fbe0e0}.banner p{margin:.2em 0}"
    "dl.facts{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}"
    "dl.facts dt{font-weight:bold}dl.facts dd{margin:0}"
    ".charts{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0;background:#fff;"
    "border:1px solid #ddd;padding:.5em}figcaption{text-align:center;color:#444}"
    "svg text{font:11px sans-serif;fill:#444}\n";
