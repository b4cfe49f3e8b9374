/* Row events into the open batch's files (cdc_internal.h).
 *
 * Each row change becomes one NDJSON line in its table's file, encoded by
 * the snapshot path's encoder (mbq_typemap_encode: the reader hands values
 * in the SELECT's text form, mbq/binlog.h) plus `_mbq_op` ('I', 'U', 'D')
 * and `_mbq_seq` (increasing in binlog order across the batch), which the
 * apply step uses to keep each key's last change. Values are placed by the
 * column names the TABLE_MAP carries (binlog_row_metadata=FULL), not by
 * position: a reader behind a later DDL still puts each value in its
 * column; a column the table no longer has is left out. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "mbq/error.h"
#include "mbq/fault.h"
#include "mbq/log.h"
#include "mbq/typemap.h"
#include "mbq/util.h"
#include "cdc_internal.h"
#include "mbq/banned.h"

#define FLUSH_BYTES (1u << 20)

int cdc_table_prepare(cdc_table *t)
{
    const mbq_table_schema *s = t->job.src;
    mbq_buf tmp = MBQ_BUF_INIT;
    int rc = 0;
    for (size_t i = 0; t->keys && i < t->job.src->n_columns; i++)
        free(t->keys[i]);
    free(t->keys);
    free(t->keylen);
    free(t->pk_idx);
    t->keys = mbq_calloc(s->n_columns ? s->n_columns : 1, sizeof *t->keys);
    t->keylen = mbq_calloc(s->n_columns ? s->n_columns : 1, sizeof *t->keylen);
    t->pk_idx = mbq_calloc(t->tc.n_primary_key ? t->tc.n_primary_key : 1, sizeof *t->pk_idx);
    if (!t->keys || !t->keylen || !t->pk_idx) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < s->n_columns; i++) {
        const char *bq = s->columns[i].bq_name ? s->columns[i].bq_name : s->columns[i].name;
        mbq_buf_clear(&tmp);
        if ((rc = mbq_buf_json_string(&tmp, bq, strlen(bq))) < 0 ||
            (rc = mbq_buf_putc(&tmp, ':')) < 0)
            goto done;
        t->keylen[i] = tmp.len;
        if (!(t->keys[i] = mbq_buf_detach(&tmp))) {
            rc = MBQ_ENOMEM;
            goto done;
        }
    }
    for (size_t k = 0; k < t->tc.n_primary_key; k++) {
        const mbq_column *col = mbq_table_schema_column(s, t->tc.primary_key[k]);
        if (!col) {
            rc = mbq_error_set(MBQ_ESCHEMA, "table '%s': primary key column '%s' does not exist",
                               t->tc.name, t->tc.primary_key[k]);
            goto done;
        }
        t->pk_idx[k] = (size_t)(col - s->columns);
    }
done:
    mbq_buf_free(&tmp);
    return rc;
}

static void part_reset(cdc_table *t, bool unlink_file)
{
    if (t->fd >= 0)
        close(t->fd);
    t->fd = -1;
    if (unlink_file && t->path)
        unlink(t->path);
    free(t->path);
    t->path = NULL;
    mbq_buf_clear(&t->out);
    if (t->sha)
        EVP_MD_CTX_free(t->sha);
    t->sha = NULL;
    t->rows = t->bytes = t->n_ins = t->n_upd = t->n_del = 0;
}

void cdc_table_free(cdc_table *t)
{
    part_reset(t, false);
    mbq_buf_free(&t->out);
    for (size_t i = 0; t->keys && t->job.src && i < t->job.src->n_columns; i++)
        free(t->keys[i]);
    free(t->keys);
    free(t->keylen);
    free(t->pk_idx);
    mbq_table_schema_free(t->job.src);
    mbq_bq_schema_free(t->job.stage_schema);
    mbq_bq_schema_free(t->job.load_schema);
    mbq_table_state_clear(&t->job.committed);
    mbq_table_run_clear(&t->job.run);
    for (size_t i = 0; i < t->job.n_changes; i++)
        free(t->job.changes[i]);
    free(t->job.changes);
    free(t->job.error);
    free(t->job.failed_state);
}

cdc_table *cdc_table_find(cdc_ctx *c, const char *database, const char *table)
{
    if (!database || !table || strcmp(database, c->s.cfg->mysql.database) != 0)
        return NULL;
    for (size_t i = 0; i < c->n_tables; i++)
        if (strcmp(c->tables[i].tc.name, table) == 0)
            return &c->tables[i];
    return NULL;
}

/* Open the table's file of the open batch: <staging>/cdc_<table>_<n>.ndjson. */
static int part_open(cdc_ctx *c, cdc_table *t)
{
    mbq_buf p = MBQ_BUF_INIT;
    int rc = mbq_buf_printf(&p, "%s/cdc_%s_%" PRId64 "_%" PRId64 ".ndjson", c->s.staging_dir,
                            t->tc.name, mbq_now_ms(), c->seq);
    if (rc < 0)
        goto done;
    t->fd = open(p.ptr, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (t->fd < 0) {
        rc = mbq_error_set(MBQ_EIO, "cannot create '%s': %s", p.ptr, strerror(errno));
        goto done;
    }
    if (!(t->path = mbq_buf_detach(&p)) || !(t->sha = EVP_MD_CTX_new()) ||
        EVP_DigestInit_ex(t->sha, EVP_sha256(), NULL) != 1)
        rc = mbq_error_set(MBQ_ENOMEM, "cannot start a batch file");
done:
    mbq_buf_free(&p);
    return rc;
}

static int part_flush(cdc_table *t)
{
    size_t off = 0;
    if (t->out.len && EVP_DigestUpdate(t->sha, t->out.ptr, t->out.len) != 1)
        return mbq_error_set(MBQ_ENOMEM, "sha-256 failed");
    while (off < t->out.len) {
        ssize_t n = write(t->fd, t->out.ptr + off, t->out.len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return mbq_error_set(MBQ_EIO, "cannot write '%s': %s", t->path, strerror(errno));
        off += (size_t)n;
    }
    t->bytes += (int64_t)t->out.len;
    mbq_buf_clear(&t->out);
    return 0;
}

/* `"_mbq_op":"I","_mbq_seq":N}\n` without printf (the per-row hot path). */
static int put_op_seq(mbq_buf *b, char op, int64_t seq)
{
    static const char head[] = "\"" CDC_OP_COLUMN "\":\"";
    static const char mid[] = "\",\"" CDC_SEQ_COLUMN "\":";
    char num[24];
    size_t n = 0;
    uint64_t v = (uint64_t)seq;
    do {
        num[sizeof num - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v && n < sizeof num);
    int rc = mbq_buf_append(b, head, sizeof head - 1);
    if (rc == 0)
        rc = mbq_buf_putc(b, op);
    if (rc == 0)
        rc = mbq_buf_append(b, mid, sizeof mid - 1);
    if (rc == 0)
        rc = mbq_buf_append(b, num + sizeof num - n, n);
    return rc ? rc : mbq_buf_append(b, "}\n", 2);
}

/* One line: the row image's values by column name (map[i]: the schema
 * column of the event's column i, -1 when the table has it no more), then
 * op and seq. */
static int put_line(cdc_ctx *c, cdc_table *t, const mbq_binlog_event *ev, const long *map,
                    const mbq_binlog_value *v, char op)
{
    const mbq_table_schema *s = t->job.src;
    mbq_buf *b = &t->out;
    size_t start = b->len;
    int rc = mbq_buf_putc(b, '{');
    for (size_t i = 0; rc == 0 && i < ev->n_columns; i++) {
        if (!v[i].data || map[i] < 0)
            continue; /* NULL: the key is left out, as the snapshot path does; a column
                         dropped since is not in BigQuery's stage schema */
        size_t ci = (size_t)map[i];
        const mbq_column *col = &s->columns[ci];
        size_t mark = b->len;
        if ((rc = mbq_buf_append(b, t->keys[ci], t->keylen[ci])) < 0)
            break;
        rc = mbq_typemap_encode(b, col->map.enc, v[i].data, v[i].len);
        if (rc == 1) { /* zero date: NULL */
            b->len = mark;
            b->ptr[mark] = '\0';
            rc = 0;
            continue;
        }
        if (rc == 2)
            rc = 0; /* not JSON: written as a string, as the snapshot path does */
        if (rc < 0) {
            mbq_error_wrap(rc, "table '%s', column '%s' at binlog %s:%" PRIu64 ": ", t->tc.name,
                           col->name, ev->pos.file, ev->pos.pos);
            break;
        }
        if ((rc = mbq_buf_putc(b, ',')) < 0)
            break;
    }
    if (rc == 0)
        rc = put_op_seq(b, op, c->seq);
    if (rc < 0) {
        b->len = start;
        if (b->ptr)
            b->ptr[start] = '\0';
        return rc;
    }
    c->seq++;
    t->rows++;
    c->rows++;
    if (op == 'I')
        t->n_ins++;
    else if (op == 'U')
        t->n_upd++;
    else
        t->n_del++;
    return 0;
}

/* Did an UPDATE change the row's key? Then it is a delete of the old key
 * and an insert of the new one: a MERGE by key would otherwise leave the
 * old row behind. */
static bool key_changed(const cdc_table *t, const mbq_binlog_event *ev, const mbq_binlog_row *r)
{
    for (size_t k = 0; k < t->tc.n_primary_key; k++) {
        const char *name = t->tc.primary_key[k];
        for (size_t i = 0; i < ev->n_columns; i++) {
            if (strcasecmp(ev->column_names[i], name) != 0)
                continue;
            const mbq_binlog_value *a = &r->before[i], *b = &r->after[i];
            if (!a->data != !b->data || a->len != b->len ||
                (a->data && memcmp(a->data, b->data, a->len) != 0))
                return true;
        }
    }
    return false;
}

int cdc_batch_add(cdc_ctx *c, cdc_table *t, const mbq_binlog_event *ev)
{
    int rc = 0;
    c->in_tx = true;
    /* In the snapshot: the event's position lies inside a transaction that
     * ends at or before the snapshot's position (a transaction boundary),
     * so the whole transaction is in the snapshot. */
    if (!t->streaming || t->failed || mbq_binlog_pos_cmp(&ev->pos, &t->snapshot) <= 0)
        return 0;
    if (t->fd < 0 && (rc = part_open(c, t)) < 0)
        return rc;
    if (c->rows == 0) {
        c->opened_ms = mbq_now_ms();
        c->first_event_ms = ev->event_ms;
    }
    c->last_event_ms = ev->event_ms;
    /* Columns by name once per event, not per row. */
    long *map = mbq_calloc(ev->n_columns ? ev->n_columns : 1, sizeof *map);
    if (!map)
        return MBQ_ENOMEM;
    for (size_t i = 0; i < ev->n_columns; i++) {
        const mbq_column *col = mbq_table_schema_column(t->job.src, ev->column_names[i]);
        map[i] = col ? (long)(col - t->job.src->columns) : -1;
    }
    for (size_t i = 0; rc == 0 && i < ev->n_rows; i++) {
        const mbq_binlog_row *r = &ev->rows[i];
        if (r->op == 'I')
            rc = put_line(c, t, ev, map, r->after, 'I');
        else if (r->op == 'D')
            rc = put_line(c, t, ev, map, r->before, 'D');
        else if (key_changed(t, ev, r) && (rc = put_line(c, t, ev, map, r->before, 'D')) == 0)
            rc = put_line(c, t, ev, map, r->after, 'I');
        else if (rc == 0)
            rc = put_line(c, t, ev, map, r->after, 'U');
    }
    free(map);
    if (rc == 0 && t->out.len >= FLUSH_BYTES)
        rc = part_flush(t);
    return rc;
}

/* Flush, fsync and close one table's file; its checksum into *sum. */
static int part_finish(cdc_table *t, char **sum)
{
    int rc = part_flush(t);
    if (rc == 0 && fsync(t->fd) != 0)
        rc = mbq_error_set(MBQ_EIO, "cannot fsync '%s': %s", t->path, strerror(errno));
    if (rc == 0 && close(t->fd) != 0)
        rc = mbq_error_set(MBQ_EIO, "cannot close '%s': %s", t->path, strerror(errno));
    t->fd = -1;
    if (rc == 0)
        rc = mbq_sha256_hex(sum, t->sha);
    return rc;
}

/* The batch's part of table t, with the names its load and MERGE will use
 * (journaled with the batch, before any job). */
static int batch_table_fill(cdc_ctx *c, cdc_table *t, mbq_cdc_batch_table *bt, const char *tag)
{
    int rc = part_finish(t, &bt->checksum);
    mbq_buf st = MBQ_BUF_INIT;
    if (rc == 0)
        rc = mbq_buf_printf(&st, "%s__mbq_cdc_%s", t->tc.target, tag);
    if (rc == 0 && (!(bt->table_name = mbq_strdup(t->tc.name)) ||
                    !(bt->state = mbq_strdup("closed")) || !(bt->path = mbq_strdup(t->path)) ||
                    !(bt->staging_table = mbq_buf_detach(&st))))
        rc = MBQ_ENOMEM;
    mbq_buf_free(&st);
    bt->bytes = t->bytes;
    bt->rows = t->rows;
    bt->rows_inserted = t->n_ins;
    bt->rows_updated = t->n_upd;
    bt->rows_deleted = t->n_del;
    (void)c;
    return rc;
}

int cdc_batch_close(cdc_ctx *c, mbq_cdc_batch *b)
{
    int rc = 0;
    char tag[37];
    memset(b, 0, sizeof *b);
    if (c->rows == 0)
        return 0;
    /* A tag of the batch's own: job ids and staging names stay unique even
     * for a journal started over (BigQuery remembers job ids for months). */
    mbq_uuid(tag);
    for (char *p = tag; *p; p++)
        if (*p == '-')
            *p = '_';
    if (!(b->tables = mbq_calloc(c->n_tables, sizeof *b->tables)))
        return MBQ_ENOMEM;
    for (size_t i = 0; i < c->n_tables && rc == 0; i++) {
        cdc_table *t = &c->tables[i];
        if (t->fd < 0)
            continue;
        rc = batch_table_fill(c, t, &b->tables[b->n_tables++], tag);
    }
    if (rc == 0 && (!(b->from_file = mbq_strdup(c->from.file)) ||
                    !(b->to_file = mbq_strdup(c->boundary.file)) ||
                    (c->boundary_gtid && !(b->to_gtid = mbq_strdup(c->boundary_gtid)))))
        rc = MBQ_ENOMEM;
    b->from_pos = (int64_t)c->from.pos;
    b->to_pos = (int64_t)c->boundary.pos;
    b->transactions = c->transactions;
    b->rows = c->rows;
    b->first_event_ms = c->first_event_ms ? c->first_event_ms : -1;
    b->last_event_ms = c->last_event_ms ? c->last_event_ms : -1;
    if (rc == 0 && (rc = mbq_fsync_parent_dir(b->tables[0].path)) == 0)
        rc = mbq_journal_cdc_batch_close(c->s.j, b, mbq_now_ms());
    if (rc == 0) {
        mbq_log(MBQ_LOG_INFO, NULL, "cdc",
                "batch %" PRId64 " closed: %" PRId64 " row changes of %d table(s) in %" PRId64
                " transaction(s), read and encoded in %.3f s",
                b->batch_id, b->rows, b->n_tables, b->transactions,
                (double)(mbq_now_ms() - c->opened_ms) / 1000.0);
        mbq_fault_point("cdc.batch_closed");
        if (!(b->state = mbq_strdup("closed")))
            rc = MBQ_ENOMEM;
    }
    for (size_t i = 0; i < c->n_tables; i++)
        part_reset(&c->tables[i], rc < 0);
    c->rows = c->transactions = 0;
    c->first_event_ms = c->last_event_ms = 0;
    if (rc < 0)
        mbq_cdc_batch_clear(b);
    return rc;
}

void cdc_batch_discard(cdc_ctx *c)
{
    for (size_t i = 0; i < c->n_tables; i++)
        part_reset(&c->tables[i], true);
    c->rows = c->transactions = 0;
    c->first_event_ms = c->last_event_ms = 0;
    c->in_tx = false;
}
