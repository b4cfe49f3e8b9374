/* The dashboard's change-data-capture HTML (see mbq/server.h): the
 * overview's panel (the follower and every cdc table) and the facts of a
 * cdc table on its page. Every journal string is escaped. */
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

/* Escaped, with secrets masked (an error may quote a server's message). */
static int h_text(mbq_buf *b, const char *s)
{
    if (!s)
        return mbq_buf_puts(b, "-") ? MBQ_ENOMEM : 0;
    char *copy = mbq_strdup(s);
    if (!copy)
        return MBQ_ENOMEM;
    mbq_secret_mask(copy);
    int rc = mbq_html_escape(b, copy);
    free(copy);
    return rc;
}

static int h_time(mbq_buf *b, int64_t ms)
{
    if (ms <= 0)
        return mbq_buf_puts(b, "never") ? MBQ_ENOMEM : 0;
    return mbq_buf_time_iso(b, ms) ? MBQ_ENOMEM : 0;
}

static int h_pos(mbq_buf *b, const char *file, int64_t pos)
{
    if (!file)
        return mbq_buf_puts(b, "-") ? MBQ_ENOMEM : 0;
    FAIL_IF(mbq_buf_puts(b, "<code>") || mbq_html_escape(b, file) ||
            mbq_buf_printf(b, ":%lld</code>", (long long)pos));
    return 0;
}

static const char *state_class(const char *state)
{
    if (mbq_streq(state, "streaming") || mbq_streq(state, "running"))
        return "ok";
    if (mbq_streq(state, "failed") || mbq_streq(state, "down") || mbq_streq(state, "lagging") ||
        mbq_streq(state, "no snapshot"))
        return "bad";
    return "info";
}

static int badge(mbq_buf *b, const char *word)
{
    FAIL_IF(mbq_buf_printf(b, "<span class=\"badge %s\">", state_class(word)) ||
            mbq_html_escape(b, word ? word : "-") || mbq_buf_puts(b, "</span>"));
    return 0;
}

static int stream_facts(mbq_buf *b, const mbq_dash *d)
{
    const mbq_dash_cdc *c = &d->cdc;
    if (!c->have_stream)
        return mbq_buf_puts(b, "<p class=\"meta\" id=\"cdc-stream\">The binlog follower "
                               "(<code>mbq cdc</code>) has not started yet.</p>\n")
                   ? MBQ_ENOMEM
                   : 0;
    const char *word = c->up ? "running" : mbq_streq(c->stream.status, "running")
                                               ? "down"
                                               : c->stream.status;
    FAIL_IF(mbq_buf_puts(b, "<dl class=\"facts\" id=\"cdc-stream\"><dt>Follower</dt><dd>") ||
            badge(b, word) ||
            (c->stream.pid > 0 && c->up &&
             mbq_buf_printf(b, " pid %lld", (long long)c->stream.pid)) ||
            mbq_buf_puts(b, "</dd><dt>Position</dt><dd>") ||
            h_pos(b, c->stream.binlog_file, c->stream.binlog_pos) ||
            mbq_buf_puts(b, "</dd><dt>GTID</dt><dd>") || h_text(b, c->stream.gtid) ||
            mbq_buf_puts(b, "</dd><dt>Lag</dt><dd>") || mbq_dash_put_age(b, c->lag_ms) ||
            (!c->up && mbq_buf_puts(b, " (at least: no live follower)")) ||
            mbq_buf_puts(b, "</dd><dt>Last heartbeat (UTC)</dt><dd>") ||
            h_time(b, c->stream.heartbeat_ms) ||
            mbq_buf_puts(b, "</dd><dt>Last event applied (UTC)</dt><dd>") ||
            h_time(b, c->stream.event_ms) ||
            mbq_buf_printf(b, "</dd><dt>Batches</dt><dd>%lld committed, %lld pending</dd>",
                           (long long)c->batches.committed, (long long)c->batches.pending));
    if (c->stream.error)
        FAIL_IF(mbq_buf_puts(b, "<dt>Error</dt><dd class=\"err\">") ||
                h_text(b, c->stream.error) || mbq_buf_puts(b, "</dd>"));
    FAIL_IF(mbq_buf_puts(b, "</dl>\n"));
    return 0;
}

static int table_row(mbq_buf *b, const mbq_dash *d, const mbq_dash_table *t)
{
    const mbq_cdc_table_view *r = t->cdc;
    FAIL_IF(mbq_buf_puts(b, "<tr class=\"cdc-row\" data-table=\"") ||
            mbq_html_escape(b, t->name) || mbq_buf_puts(b, "\"><td><a href=\"/table/") ||
            mbq_url_encode(b, t->name) || mbq_buf_puts(b, "\">") ||
            mbq_html_escape(b, t->name) || mbq_buf_puts(b, "</a></td><td>") ||
            badge(b, mbq_dash_table_status(d, t)) || mbq_buf_puts(b, "</td><td>") ||
            (r ? h_pos(b, r->snapshot_file, r->snapshot_pos) : mbq_buf_puts(b, "-")) ||
            mbq_buf_puts(b, "</td>"));
    const int64_t v[] = {r ? r->rows_inserted : 0, r ? r->rows_updated : 0,
                         r ? r->rows_deleted : 0};
    for (int k = 0; k < 3; k++)
        FAIL_IF(mbq_buf_puts(b, "<td class=\"num\">") || mbq_buf_put_count(b, v[k]) ||
                mbq_buf_puts(b, "</td>"));
    FAIL_IF(mbq_buf_puts(b, "<td>") || h_time(b, r ? r->last_applied_ms : 0) ||
            mbq_buf_puts(b, "</td><td class=\"err\">") || h_text(b, r ? r->error : NULL) ||
            mbq_buf_puts(b, "</td></tr>\n"));
    return 0;
}

int mbq_render_cdc_panel(mbq_buf *out, const mbq_dash *d)
{
    if (!d->have_cdc)
        return 0;
    FAIL_IF(mbq_buf_puts(out, "<h2 id=\"cdc\">Change data capture</h2>\n") ||
            stream_facts(out, d) ||
            mbq_buf_puts(out, "<table id=\"cdc-tables\"><thead><tr><th>Table</th><th>State</th>"
                              "<th>Snapshot at</th><th>Inserted</th><th>Updated</th>"
                              "<th>Deleted</th><th>Last applied (UTC)</th><th>Error</th></tr>"
                              "</thead><tbody>\n"));
    size_t shown = 0;
    for (size_t i = 0; i < d->n_tables; i++)
        if (d->tables[i].cdc_mode && ++shown)
            FAIL_IF(table_row(out, d, &d->tables[i]));
    if (shown == 0)
        FAIL_IF(mbq_buf_puts(out, "<tr><td colspan=\"8\">no table in mode cdc</td></tr>"));
    FAIL_IF(mbq_buf_puts(out, "</tbody></table>\n"));
    return 0;
}

int mbq_render_cdc_table_facts(mbq_buf *out, const mbq_dash *d, const mbq_dash_table *t)
{
    if (!t->cdc_mode)
        return 0;
    const mbq_cdc_table_view *r = t->cdc;
    FAIL_IF(mbq_buf_puts(out, "<h3 id=\"cdc\">Change data capture</h3>\n"
                              "<dl class=\"facts\" id=\"cdc-table\"><dt>State</dt><dd>") ||
            badge(out, mbq_dash_table_status(d, t)) ||
            mbq_buf_puts(out, "</dd><dt>Snapshot at</dt><dd>") ||
            (r ? h_pos(out, r->snapshot_file, r->snapshot_pos) : mbq_buf_puts(out, "-")) ||
            mbq_buf_puts(out, "</dd><dt>Rows applied (I / U / D)</dt><dd>") ||
            mbq_buf_put_count(out, r ? r->rows_inserted : 0) || mbq_buf_puts(out, " / ") ||
            mbq_buf_put_count(out, r ? r->rows_updated : 0) || mbq_buf_puts(out, " / ") ||
            mbq_buf_put_count(out, r ? r->rows_deleted : 0) ||
            mbq_buf_puts(out, "</dd><dt>Last applied (UTC)</dt><dd>") ||
            h_time(out, r ? r->last_applied_ms : 0) || mbq_buf_puts(out, "</dd>"));
    if (r && r->error)
        FAIL_IF(mbq_buf_puts(out, "<dt>Error</dt><dd class=\"err\">") || h_text(out, r->error) ||
                mbq_buf_puts(out, "</dd>"));
    FAIL_IF(mbq_buf_puts(out, "</dl>\n") || stream_facts(out, d));
    return 0;
}
