/* The dashboard's view of change data capture (see mbq/server.h): what
 * `mbq cdc` journaled (sql/journal/006_cdc.sql) and the health of the
 * tables it follows. A followed table has no sync runs: it is judged by
 * its state, its follower's liveness and the lag. */
#include <stdlib.h>
#include <string.h>

#include "dash_cdc.h"
#include "mbq/error.h"
#include "mbq/journal_cdc_read.h"
#include "mbq/util.h"
#include "mbq/banned.h"

void dash_cdc_free(mbq_dash *d)
{
    mbq_cdc_stream_view_clear(&d->cdc.stream);
    mbq_cdc_table_views_free(d->cdc.tables, d->cdc.n_tables);
    memset(&d->cdc, 0, sizeof d->cdc);
    d->have_cdc = false;
}

static const mbq_cdc_table_view *find_row(const mbq_dash *d, const char *name)
{
    for (size_t i = 0; i < d->cdc.n_tables; i++)
        if (mbq_streq(d->cdc.tables[i].table_name, name))
            return &d->cdc.tables[i];
    return NULL;
}

int dash_cdc_read(mbq_dash *d, mbq_journal *j, const mbq_config *cfg)
{
    mbq_dash_cdc *c = &d->cdc;
    int rc = mbq_journal_cdc_read_stream(j, &c->stream, &c->have_stream);
    if (rc == 0)
        rc = mbq_journal_cdc_read_batches(j, &c->batches);
    if (rc == 0)
        rc = mbq_journal_cdc_read_tables(j, &c->tables, &c->n_tables);
    if (rc < 0)
        return rc;
    c->heartbeat_ms = cfg && cfg->cdc.heartbeat_ms > 0 ? cfg->cdc.heartbeat_ms : 5000;
    c->up = c->have_stream && mbq_cdc_stream_up(&c->stream, c->heartbeat_ms, d->now_ms);
    c->lag_ms = c->have_stream ? mbq_cdc_lag_now_ms(&c->stream, c->up, d->now_ms) : -1;
    d->have_cdc = c->have_stream || c->n_tables > 0;
    for (size_t i = 0; i < d->n_tables; i++) {
        mbq_dash_table *t = &d->tables[i];
        const mbq_table_config *tc = cfg ? mbq_config_table(cfg, t->name) : NULL;
        t->cdc = find_row(d, t->name);
        t->cdc_mode = tc ? tc->mode == MBQ_MODE_CDC : t->cdc != NULL;
        d->have_cdc = d->have_cdc || t->cdc_mode;
    }
    return 0;
}

/* A follower run from cron (`mbq cdc --once`) is stopped between runs:
 * fine while its last run is recent. */
static bool follower_ok(const mbq_dash *d)
{
    const mbq_dash_cdc *c = &d->cdc;
    if (c->up)
        return true;
    return c->have_stream && mbq_streq(c->stream.status, "stopped") &&
           d->now_ms - c->stream.updated_ms <= d->healthy_within_ms;
}

bool dash_cdc_healthy(const mbq_dash *d, const mbq_dash_table *t, mbq_buf *why)
{
    const mbq_cdc_table_view *r = t->cdc;
    const mbq_dash_cdc *c = &d->cdc;
    const char *reason = NULL;
    if (!r)
        reason = "no snapshot yet: 'mbq cdc' has not started on it";
    else if (mbq_streq(r->state, "failed"))
        reason = r->error ? r->error : "failed (no message)";
    else if (!mbq_streq(r->state, "streaming"))
        reason = mbq_streq(r->state, "snapshot") ? "its snapshot is being loaded"
                                                 : "waiting for a new snapshot";
    else if (mbq_streq(c->stream.status, "failed"))
        reason = c->stream.error ? c->stream.error : "the binlog stream failed";
    else if (!follower_ok(d))
        reason = "no 'mbq cdc' is following the binlog";
    if (reason) {
        if (why)
            mbq_buf_puts(why, reason);
        return false;
    }
    if (c->lag_ms > d->healthy_within_ms) {
        if (why && mbq_buf_puts(why, "the binlog is applied ") == 0 &&
            mbq_dash_put_age(why, c->lag_ms) == 0 &&
            mbq_buf_puts(why, " behind the source, more than healthy_within ") == 0)
            mbq_dash_put_age(why, d->healthy_within_ms);
        return false;
    }
    return true;
}

const char *dash_cdc_status(const mbq_dash *d, const mbq_dash_table *t)
{
    const mbq_cdc_table_view *r = t->cdc;
    if (!r)
        return "no snapshot";
    if (mbq_streq(r->state, "failed") || mbq_streq(d->cdc.stream.status, "failed"))
        return "failed";
    if (mbq_streq(r->state, "snapshot"))
        return "snapshot";
    if (mbq_streq(r->state, "resnapshot"))
        return "resnapshot";
    if (!follower_ok(d))
        return "down";
    if (d->cdc.lag_ms > d->healthy_within_ms)
        return "lagging";
    return "streaming";
}
