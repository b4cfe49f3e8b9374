/* The change-data-capture families of /metrics and of the textfile that
 * `mbq cdc --once` leaves for node_exporter (see mbq/server.h). Text
 * exposition format 0.0.4: HELP and TYPE before each family, label values
 * escaped (\\, \", \n). rows_applied_total is a counter (it only grows
 * between snapshots; a new snapshot starts it again, which Prometheus's
 * rate() reads as a counter reset); the others are gauges. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dash_cdc.h"
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

static const char *cdc_label_subst(unsigned char c)
{
    return c == '\\' ? "\\\\" : c == '"' ? "\\\"" : c == '\n' ? "\\n" : NULL;
}

static int cdc_family(mbq_buf *b, const char *name, const char *type, const char *help)
{
    return mbq_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type)
               ? MBQ_ENOMEM
               : 0;
}

static int cdc_seconds(mbq_buf *b, int64_t ms)
{
    if (ms < 0)
        ms = 0;
    return mbq_buf_printf(b, "%lld.%03lld\n", (long long)(ms / 1000), (long long)(ms % 1000))
               ? MBQ_ENOMEM
               : 0;
}

/* ---- /api/tables ---- */

static int cj_pos(mbq_buf *b, const char *file, int64_t pos)
{
    if (!file)
        return mbq_buf_puts(b, "null") ? MBQ_ENOMEM : 0;
    FAIL_IF(mbq_buf_puts(b, "{\"file\":") || api_json_str(b, file) ||
            mbq_buf_printf(b, ",\"pos\":%lld}", (long long)pos));
    return 0;
}

int api_cdc_table_json(mbq_buf *b, const mbq_dash_table *t)
{
    if (!t->cdc_mode)
        return 0;
    const mbq_cdc_table_view *r = t->cdc;
    if (!r)
        return mbq_buf_puts(b, ",\"cdc\":{\"state\":null}") ? MBQ_ENOMEM : 0;
    FAIL_IF(mbq_buf_puts(b, ",\"cdc\":{\"state\":") || api_json_str(b, r->state) ||
            mbq_buf_puts(b, ",\"snapshot_position\":") ||
            cj_pos(b, r->snapshot_file, r->snapshot_pos) ||
            mbq_buf_printf(b, ",\"rows_applied\":{\"inserted\":%lld,\"updated\":%lld,"
                              "\"deleted\":%lld},\"last_applied\":",
                           (long long)r->rows_inserted, (long long)r->rows_updated,
                           (long long)r->rows_deleted) ||
            api_json_time(b, r->last_applied_ms) || mbq_buf_puts(b, ",\"error\":") ||
            api_json_str(b, r->error) || mbq_buf_putc(b, '}'));
    return 0;
}

int api_cdc_stream_json(mbq_buf *b, const mbq_dash *d)
{
    const mbq_dash_cdc *c = &d->cdc;
    if (!d->have_cdc || !c->have_stream)
        return mbq_buf_puts(b, ",\"cdc\":null") ? MBQ_ENOMEM : 0;
    FAIL_IF(mbq_buf_puts(b, ",\"cdc\":{\"status\":") || api_json_str(b, c->stream.status) ||
            mbq_buf_printf(b, ",\"up\":%s,\"lag_seconds\":%.3f,\"position\":",
                           c->up ? "true" : "false", (double)c->lag_ms / 1000.0) ||
            cj_pos(b, c->stream.binlog_file, c->stream.binlog_pos) ||
            mbq_buf_puts(b, ",\"gtid\":") || api_json_str(b, c->stream.gtid) ||
            mbq_buf_puts(b, ",\"last_heartbeat\":") || api_json_time(b, c->stream.heartbeat_ms) ||
            mbq_buf_puts(b, ",\"last_event\":") || api_json_time(b, c->stream.event_ms) ||
            mbq_buf_printf(b, ",\"batches_pending\":%lld,\"error\":",
                           (long long)c->batches.pending) ||
            api_json_str(b, c->stream.error) || mbq_buf_putc(b, '}'));
    return 0;
}

/* ---- /metrics ---- */

static int stream_families(mbq_buf *b, const mbq_dash *d)
{
    const mbq_dash_cdc *c = &d->cdc;
    FAIL_IF(cdc_family(b, "mbq_cdc_up", "gauge",
                       "1 when an 'mbq cdc' follower is running and wrote its state within 3 "
                       "heartbeats, else 0.") ||
            mbq_buf_printf(b, "mbq_cdc_up %d\n", c->up ? 1 : 0));
    if (!c->have_stream)
        return 0;
    FAIL_IF(cdc_family(b, "mbq_cdc_lag_seconds", "gauge",
                       "How far BigQuery is behind the source through the binlog (a lower "
                       "bound, growing, while no follower is up).") ||
            mbq_buf_puts(b, "mbq_cdc_lag_seconds ") || cdc_seconds(b, c->lag_ms) ||
            cdc_family(b, "mbq_cdc_position_info", "gauge",
                       "The committed binlog position: the file as a label, the byte offset in "
                       "it as the value.") ||
            mbq_buf_puts(b, "mbq_cdc_position_info{file=\"") ||
            mbq_buf_put_utf8(b, c->stream.binlog_file, cdc_label_subst) ||
            mbq_buf_printf(b, "\"} %lld\n", (long long)c->stream.binlog_pos) ||
            cdc_family(b, "mbq_cdc_heartbeat_timestamp_seconds", "gauge",
                       "Unix time the source was last heard (an event or a heartbeat).") ||
            mbq_buf_puts(b, "mbq_cdc_heartbeat_timestamp_seconds ") ||
            cdc_seconds(b, c->stream.heartbeat_ms) ||
            cdc_family(b, "mbq_cdc_batches_pending", "gauge",
                       "Batches closed and not yet committed (applied first at the next start).") ||
            mbq_buf_printf(b, "mbq_cdc_batches_pending %lld\n", (long long)c->batches.pending));
    return 0;
}

static int table_label(mbq_buf *b, const char *family, const char *table)
{
    FAIL_IF(mbq_buf_printf(b, "%s{table=\"", family) ||
            mbq_buf_put_utf8(b, table, cdc_label_subst) || mbq_buf_putc(b, '"'));
    return 0;
}

static int table_families(mbq_buf *b, const mbq_dash *d)
{
    static const char *const states[] = {"snapshot", "streaming", "failed", "resnapshot"};
    const mbq_dash_cdc *c = &d->cdc;
    if (c->n_tables == 0)
        return 0;
    FAIL_IF(cdc_family(b, "mbq_cdc_rows_applied_total", "counter",
                       "Row changes applied to the table through the binlog since its "
                       "snapshot, by operation."));
    for (size_t i = 0; i < c->n_tables; i++) {
        const mbq_cdc_table_view *t = &c->tables[i];
        const char *ops[] = {"insert", "update", "delete"};
        const int64_t v[] = {t->rows_inserted, t->rows_updated, t->rows_deleted};
        for (int k = 0; k < 3; k++)
            FAIL_IF(table_label(b, "mbq_cdc_rows_applied_total", t->table_name) ||
                    mbq_buf_printf(b, ",op=\"%s\"} %lld\n", ops[k], (long long)v[k]));
    }
    FAIL_IF(cdc_family(b, "mbq_cdc_table_state", "gauge",
                       "1 for the cdc table's current state (snapshot, streaming, failed, "
                       "resnapshot)."));
    for (size_t i = 0; i < c->n_tables; i++)
        for (int k = 0; k < 4; k++)
            FAIL_IF(table_label(b, "mbq_cdc_table_state", c->tables[i].table_name) ||
                    mbq_buf_printf(b, ",state=\"%s\"} %d\n", states[k],
                                   mbq_streq(c->tables[i].state, states[k])));
    return 0;
}

int mbq_render_cdc_metrics(mbq_buf *out, const mbq_dash *d)
{
    if (!d->have_cdc)
        return 0;
    FAIL_IF(stream_families(out, d) || table_families(out, d));
    return 0;
}

/* "X.prom" -> "X-cdc.prom" (else "X-cdc.prom" after the whole name): a
 * file of its own next to the sync's, which node_exporter reads too (its
 * families are all mbq_cdc_*, so the two never clash). */
static int cdc_metrics_path(mbq_buf *out, const char *metrics_file)
{
    size_t len = strlen(metrics_file);
    bool prom = len > 5 && strcmp(metrics_file + len - 5, ".prom") == 0;
    return mbq_buf_printf(out, "%.*s-cdc.prom", (int)(prom ? len - 5 : len), metrics_file);
}

int mbq_cdc_metrics_write(const char *metrics_file, const char *state_dir,
                          const mbq_config *cfg, int64_t now_ms)
{
    mbq_dash d;
    mbq_buf b = MBQ_BUF_INIT, path = MBQ_BUF_INIT;
    /* No table runs, events or alerts: only what the families need. */
    mbq_dash_query q = {NULL, 1, 0, 0};
    int rc = mbq_dash_load(&d, state_dir, cfg, &q, now_ms);
    if (rc < 0)
        return rc;
    d.healthy_within_ms = cfg && cfg->serve_healthy_within_ms > 0 ? cfg->serve_healthy_within_ms
                                                                  : 3600 * 1000;
    if ((rc = cdc_metrics_path(&path, metrics_file)) < 0 ||
        (rc = mbq_render_cdc_metrics(&b, &d)) < 0)
        goto done;
    if ((rc = mbq_file_write_atomic(path.ptr, mbq_buf_cstr(&b), b.len)) < 0) {
        mbq_error_wrap(rc, "cannot write cdc metrics file: ");
        goto done;
    }
    /* Created 0600 (right for staging data); node_exporter runs as another
     * user, and metrics hold no secrets. */
    if (chmod(path.ptr, 0644) != 0)
        rc = mbq_error_set(MBQ_EIO, "cannot make metrics file '%s' readable: %s", path.ptr,
                           strerror(errno));
done:
    mbq_buf_free(&b);
    mbq_buf_free(&path);
    mbq_dash_free(&d);
    return rc;
}
