/* The change-data-capture part of `mbq-state inspect`: the stream's
 * position, GTID, lag, status and last heartbeat, the batches not yet
 * committed, and per cdc table its state, snapshot position and the rows
 * applied through the binlog (inserts, updates, deletes). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_cdc.h"
#include "mbq/buf.h"
#include "mbq/error.h"
#include "mbq/journal_cdc_read.h"
#include "mbq/util.h"
#include "mbq/banned.h"

static json_object *cj_str(const char *s)
{
    return s ? json_object_new_string(s) : NULL;
}

static json_object *cj_time(int64_t ms)
{
    if (ms <= 0)
        return NULL;
    mbq_buf b = MBQ_BUF_INIT;
    mbq_buf_time_iso(&b, ms);
    json_object *o = json_object_new_string(mbq_buf_cstr(&b));
    mbq_buf_free(&b);
    return o;
}

static json_object *cj_pos(const char *file, int64_t pos)
{
    if (!file)
        return NULL;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "file", json_object_new_string(file));
    json_object_object_add(o, "pos", json_object_new_int64(pos));
    return o;
}

static json_object *stream_json(const mbq_cdc_stream_view *s, bool up, int64_t lag_ms)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "position", cj_pos(s->binlog_file, s->binlog_pos));
    json_object_object_add(o, "gtid", cj_str(s->gtid));
    json_object_object_add(o, "status", cj_str(s->status));
    json_object_object_add(o, "up", json_object_new_boolean(up));
    json_object_object_add(o, "pid", s->pid > 0 ? json_object_new_int64(s->pid) : NULL);
    json_object_object_add(o, "lag_seconds", json_object_new_double((double)lag_ms / 1000.0));
    json_object_object_add(o, "last_event", cj_time(s->event_ms));
    json_object_object_add(o, "last_heartbeat", cj_time(s->heartbeat_ms));
    json_object_object_add(o, "caught_up", cj_time(s->caught_up_ms));
    json_object_object_add(o, "updated", cj_time(s->updated_ms));
    json_object_object_add(o, "error", cj_str(s->error));
    return o;
}

static json_object *batches_json(const mbq_cdc_batches_view *b)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "pending", json_object_new_int64(b->pending));
    json_object_object_add(o, "committed", json_object_new_int64(b->committed));
    json_object_object_add(o, "last_id", b->last_id >= 0 ? json_object_new_int64(b->last_id)
                                                         : NULL);
    json_object_object_add(o, "last_rows", json_object_new_int64(b->last_rows));
    json_object_object_add(o, "last_committed", cj_time(b->last_committed_ms));
    json_object_object_add(o, "last_apply_ms", b->last_apply_ms >= 0
                                                   ? json_object_new_int64(b->last_apply_ms)
                                                   : NULL);
    return o;
}

static json_object *table_json(const mbq_cdc_table_view *t, bool configured)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "name", json_object_new_string(t->table_name));
    json_object_object_add(o, "configured", json_object_new_boolean(configured));
    json_object_object_add(o, "state", cj_str(t->state));
    json_object_object_add(o, "snapshot_position", cj_pos(t->snapshot_file, t->snapshot_pos));
    json_object *rows = json_object_new_object();
    json_object_object_add(rows, "inserted", json_object_new_int64(t->rows_inserted));
    json_object_object_add(rows, "updated", json_object_new_int64(t->rows_updated));
    json_object_object_add(rows, "deleted", json_object_new_int64(t->rows_deleted));
    json_object_object_add(o, "rows_applied", rows);
    json_object_object_add(o, "last_batch_id",
                           t->last_batch_id >= 0 ? json_object_new_int64(t->last_batch_id) : NULL);
    json_object_object_add(o, "last_applied", cj_time(t->last_applied_ms));
    json_object_object_add(o, "error", cj_str(t->error));
    return o;
}

static void print_stream(const mbq_cdc_stream_view *s, bool up, int64_t lag_ms,
                         const mbq_cdc_batches_view *b)
{
    mbq_buf hb = MBQ_BUF_INIT, ev = MBQ_BUF_INIT;
    if (s->heartbeat_ms > 0)
        mbq_buf_time_iso(&hb, s->heartbeat_ms);
    if (s->event_ms > 0)
        mbq_buf_time_iso(&ev, s->event_ms);
    printf("\nchange data capture (mbq cdc):\n");
    printf("  %-22s %s:%lld\n", "position", s->binlog_file, (long long)s->binlog_pos);
    printf("  %-22s %s\n", "gtid", s->gtid ? s->gtid : "-");
    printf("  %-22s %s%s\n", "status", s->status,
           up ? " (up)" : strcmp(s->status, "running") == 0 ? " (not heard from: down)" : "");
    printf("  %-22s %.1fs%s\n", "lag", (double)lag_ms / 1000.0, up ? "" : " (at least)");
    printf("  %-22s %s\n", "last heartbeat", s->heartbeat_ms > 0 ? mbq_buf_cstr(&hb) : "-");
    printf("  %-22s %s\n", "last event applied", s->event_ms > 0 ? mbq_buf_cstr(&ev) : "-");
    printf("  %-22s %lld committed, %lld pending (closed, to apply)\n", "batches",
           (long long)b->committed, (long long)b->pending);
    if (s->error)
        printf("  %-22s %s\n", "error", s->error);
    mbq_buf_free(&hb);
    mbq_buf_free(&ev);
}

static void print_table(const mbq_cdc_table_view *t)
{
    mbq_buf snap = MBQ_BUF_INIT;
    if (t->snapshot_file)
        mbq_buf_printf(&snap, "%s:%lld", t->snapshot_file, (long long)t->snapshot_pos);
    printf("  %-20s %-11s %-28s %10lld %10lld %10lld\n", t->table_name, t->state,
           t->snapshot_file ? mbq_buf_cstr(&snap) : "-", (long long)t->rows_inserted,
           (long long)t->rows_updated, (long long)t->rows_deleted);
    if (t->error)
        printf("  %-20s error: %s\n", "", t->error);
    mbq_buf_free(&snap);
}

/* Configured cdc tables with no row yet show as waiting for a snapshot. */
static int add_unstarted(json_object *arr, const mbq_config *cfg, const mbq_cdc_table_view *v,
                         size_t n, const char *only, bool text)
{
    for (size_t i = 0; cfg && i < cfg->n_tables; i++) {
        const mbq_table_config *tc = &cfg->tables[i];
        bool seen = false;
        for (size_t k = 0; k < n && !seen; k++)
            seen = mbq_streq(v[k].table_name, tc->name);
        if (tc->mode != MBQ_MODE_CDC || seen || (only && !mbq_streq(only, tc->name)))
            continue;
        json_object *o = json_object_new_object();
        json_object_object_add(o, "name", json_object_new_string(tc->name));
        json_object_object_add(o, "configured", json_object_new_boolean(true));
        json_object_object_add(o, "state", NULL);
        json_object_array_add(arr, o);
        if (text)
            printf("  %-20s %-11s (no snapshot yet: the next 'mbq cdc' takes it)\n", tc->name,
                   "-");
    }
    return 0;
}

int mbq_cli_inspect_cdc(json_object *root, mbq_journal *j, const mbq_config *cfg,
                        const char *only, bool text)
{
    mbq_cdc_stream_view s;
    mbq_cdc_batches_view b;
    mbq_cdc_table_view *v = NULL;
    size_t n = 0;
    bool found = false, any_cfg = false;
    int rc = mbq_journal_cdc_read_stream(j, &s, &found);
    if (rc < 0 || (rc = mbq_journal_cdc_read_batches(j, &b)) < 0 ||
        (rc = mbq_journal_cdc_read_tables(j, &v, &n)) < 0)
        goto done;
    for (size_t i = 0; cfg && i < cfg->n_tables; i++)
        any_cfg = any_cfg || cfg->tables[i].mode == MBQ_MODE_CDC;
    if (!found && n == 0 && !any_cfg) {
        json_object_object_add(root, "cdc", NULL);
        goto done;
    }
    int64_t now = mbq_now_ms(), hb = cfg ? cfg->cdc.heartbeat_ms : 0;
    bool up = found && mbq_cdc_stream_up(&s, hb, now);
    int64_t lag = found ? mbq_cdc_lag_now_ms(&s, up, now) : -1;
    json_object *o = json_object_new_object();
    json_object_object_add(root, "cdc", o);
    json_object_object_add(o, "stream", found ? stream_json(&s, up, lag) : NULL);
    json_object_object_add(o, "batches", batches_json(&b));
    json_object *arr = json_object_new_array();
    json_object_object_add(o, "tables", arr);
    if (text && found)
        print_stream(&s, up, lag, &b);
    else if (text)
        printf("\nchange data capture (mbq cdc): not started\n");
    if (text)
        printf("\n  %-20s %-11s %-28s %10s %10s %10s\n", "CDC TABLE", "STATE", "SNAPSHOT AT",
               "INSERTED", "UPDATED", "DELETED");
    for (size_t i = 0; i < n; i++) {
        if (only && !mbq_streq(only, v[i].table_name))
            continue;
        json_object_array_add(arr, table_json(&v[i], !cfg || mbq_config_table(cfg,
                                                                              v[i].table_name)));
        if (text)
            print_table(&v[i]);
    }
    rc = add_unstarted(arr, cfg, v, n, only, text);
done:
    mbq_cdc_stream_view_clear(&s);
    mbq_cdc_table_views_free(v, n);
    return rc;
}
