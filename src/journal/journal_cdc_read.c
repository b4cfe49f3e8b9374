/* Change data capture in the journal, the operator's reads and reset's one
 * write (see mbq/journal_cdc_read.h and sql/journal/006_cdc.sql). Only the
 * columns version 6 created are named, so that a column the follower adds
 * later changes nothing here. */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "journal_internal.h"
#include "mbq/error.h"
#include "mbq/journal_cdc_read.h"
#include "mbq/util.h"
#include "mbq/banned.h"

static int cdc_bind_text(mbq_journal *j, sqlite3_stmt *st, int i, const char *s)
{
    int rc = s ? sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
    return rc == SQLITE_OK ? 0 : jsql_error(j, "cannot bind parameter");
}

static char *cdc_text(sqlite3_stmt *st, int i, bool *ok)
{
    const unsigned char *s = sqlite3_column_text(st, i);
    char *copy = s ? mbq_strdup((const char *)s) : NULL;
    if (s && !copy)
        *ok = false;
    return copy;
}

/* A nullable integer column: -1 for NULL. */
static int64_t cdc_int(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, i);
}

void mbq_cdc_stream_view_clear(mbq_cdc_stream_view *s)
{
    free(s->binlog_file);
    free(s->gtid);
    free(s->status);
    free(s->error);
    memset(s, 0, sizeof *s);
}

void mbq_cdc_table_view_clear(mbq_cdc_table_view *t)
{
    free(t->table_name);
    free(t->state);
    free(t->snapshot_file);
    free(t->error);
    memset(t, 0, sizeof *t);
}

void mbq_cdc_table_views_free(mbq_cdc_table_view *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        mbq_cdc_table_view_clear(&v[i]);
    free(v);
}

bool mbq_journal_has_cdc(mbq_journal *j)
{
    return mbq_journal_version(j) >= 6;
}

int mbq_journal_cdc_read_stream(mbq_journal *j, mbq_cdc_stream_view *out, bool *found)
{
    sqlite3_stmt *st = NULL;
    bool ok = true;
    memset(out, 0, sizeof *out);
    *found = false;
    if (!mbq_journal_has_cdc(j))
        return 0;
    int rc = jsql_prepare(j, &st,
                         "SELECT binlog_file, binlog_pos, gtid, event_ms, heartbeat_ms, "
                         "caught_up_ms, lag_ms, pid, status, error, updated_ms FROM cdc_stream "
                         "WHERE id = 1");
    if (rc < 0)
        goto done;
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        out->binlog_file = cdc_text(st, 0, &ok);
        out->binlog_pos = sqlite3_column_int64(st, 1);
        out->gtid = cdc_text(st, 2, &ok);
        out->event_ms = cdc_int(st, 3);
        out->heartbeat_ms = cdc_int(st, 4);
        out->caught_up_ms = cdc_int(st, 5);
        out->lag_ms = cdc_int(st, 6);
        out->pid = cdc_int(st, 7);
        out->status = cdc_text(st, 8, &ok);
        out->error = cdc_text(st, 9, &ok);
        out->updated_ms = sqlite3_column_int64(st, 10);
        *found = true;
    } else if (step != SQLITE_DONE) {
        rc = jsql_error(j, "cannot read the cdc stream");
    }
    if (rc == 0 && !ok)
        rc = MBQ_ENOMEM;
done:
    sqlite3_finalize(st);
    if (rc < 0) {
        mbq_cdc_stream_view_clear(out);
        *found = false;
    }
    return rc;
}

#define TABLE_COLUMNS                                                                              \
    "table_name, state, snapshot_file, snapshot_pos, rows_inserted, rows_updated, rows_deleted, " \
    "last_batch_id, last_applied_ms, error, updated_ms"

static int table_row(mbq_cdc_table_view *t, sqlite3_stmt *st)
{
    bool ok = true;
    t->table_name = cdc_text(st, 0, &ok);
    t->state = cdc_text(st, 1, &ok);
    t->snapshot_file = cdc_text(st, 2, &ok);
    t->snapshot_pos = cdc_int(st, 3);
    t->rows_inserted = sqlite3_column_int64(st, 4);
    t->rows_updated = sqlite3_column_int64(st, 5);
    t->rows_deleted = sqlite3_column_int64(st, 6);
    t->last_batch_id = cdc_int(st, 7);
    t->last_applied_ms = cdc_int(st, 8);
    t->error = cdc_text(st, 9, &ok);
    t->updated_ms = sqlite3_column_int64(st, 10);
    return ok ? 0 : MBQ_ENOMEM;
}

int mbq_journal_cdc_read_table(mbq_journal *j, mbq_cdc_table_view *out, bool *found,
                               const char *table)
{
    sqlite3_stmt *st = NULL;
    memset(out, 0, sizeof *out);
    *found = false;
    if (!mbq_journal_has_cdc(j))
        return 0;
    int rc = jsql_prepare(j, &st, "SELECT " TABLE_COLUMNS " FROM cdc_tables WHERE table_name = ?1");
    if (rc < 0 || (rc = cdc_bind_text(j, st, 1, table)) < 0)
        goto done;
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        *found = true;
        rc = table_row(out, st);
    } else if (step != SQLITE_DONE) {
        rc = jsql_error(j, "cannot read a cdc table");
    }
done:
    sqlite3_finalize(st);
    if (rc < 0) {
        mbq_cdc_table_view_clear(out);
        *found = false;
    }
    return rc;
}

int mbq_journal_cdc_read_tables(mbq_journal *j, mbq_cdc_table_view **out, size_t *n)
{
    sqlite3_stmt *st = NULL;
    mbq_cdc_table_view *v = NULL;
    size_t count = 0, cap = 0;
    int rc = 0, step = SQLITE_DONE;
    *out = NULL;
    *n = 0;
    if (!mbq_journal_has_cdc(j))
        return 0;
    if ((rc = jsql_prepare(j, &st, "SELECT " TABLE_COLUMNS
                                  " FROM cdc_tables ORDER BY table_name")) < 0)
        goto done;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        if (count == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            mbq_cdc_table_view *grown = mbq_realloc(v, ncap * sizeof *v);
            if (!grown) {
                rc = MBQ_ENOMEM;
                break;
            }
            v = grown;
            cap = ncap;
        }
        memset(&v[count], 0, sizeof v[count]);
        rc = table_row(&v[count++], st);
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = jsql_error(j, "cannot read the cdc tables");
done:
    sqlite3_finalize(st);
    if (rc < 0) {
        mbq_cdc_table_views_free(v, count);
        return rc;
    }
    *out = v;
    *n = count;
    return 0;
}

int mbq_journal_cdc_read_batches(mbq_journal *j, mbq_cdc_batches_view *out)
{
    sqlite3_stmt *st = NULL;
    memset(out, 0, sizeof *out);
    out->last_id = out->last_committed_ms = out->last_apply_ms = -1;
    if (!mbq_journal_has_cdc(j))
        return 0;
    int rc = jsql_prepare(j, &st,
                         "SELECT (SELECT count(*) FROM cdc_batches WHERE state = 'closed'), "
                         "(SELECT count(*) FROM cdc_batches WHERE state = 'committed'), "
                         "b.batch_id, b.rows, b.committed_ms, b.committed_ms - b.closed_ms "
                         "FROM (SELECT 1) LEFT JOIN (SELECT * FROM cdc_batches WHERE state = "
                         "'committed' ORDER BY batch_id DESC LIMIT 1) b");
    if (rc < 0)
        goto done;
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = jsql_error(j, "cannot read the cdc batches");
        goto done;
    }
    out->pending = sqlite3_column_int64(st, 0);
    out->committed = sqlite3_column_int64(st, 1);
    out->last_id = cdc_int(st, 2);
    out->last_rows = sqlite3_column_int64(st, 3);
    out->last_committed_ms = cdc_int(st, 4);
    out->last_apply_ms = cdc_int(st, 5);
done:
    sqlite3_finalize(st);
    return rc;
}

bool mbq_cdc_stream_up(const mbq_cdc_stream_view *s, int64_t heartbeat_ms, int64_t now_ms)
{
    if (!s || !s->status || strcmp(s->status, "running") != 0)
        return false;
    if (heartbeat_ms <= 0)
        heartbeat_ms = 5000;
    return now_ms - s->updated_ms <= 3 * heartbeat_ms;
}

int64_t mbq_cdc_lag_now_ms(const mbq_cdc_stream_view *s, bool up, int64_t now_ms)
{
    if (!s || !s->status)
        return -1;
    int64_t lag = s->lag_ms > 0 ? s->lag_ms : 0;
    if (!up && now_ms > s->updated_ms)
        lag += now_ms - s->updated_ms;
    return lag;
}

int mbq_journal_cdc_resnapshot(mbq_journal *j, char **old_state, const char *table,
                               int64_t now_ms)
{
    sqlite3_stmt *st = NULL;
    bool ok = true;
    *old_state = NULL;
    if (!mbq_journal_has_cdc(j))
        return 0;
    int rc = jsql_prepare(j, &st, "SELECT state FROM cdc_tables WHERE table_name = ?1");
    if (rc < 0 || (rc = cdc_bind_text(j, st, 1, table)) < 0)
        goto done;
    int step = sqlite3_step(st);
    if (step == SQLITE_DONE)
        goto done;
    if (step != SQLITE_ROW) {
        rc = jsql_error(j, "cannot read a cdc table");
        goto done;
    }
    *old_state = cdc_text(st, 0, &ok);
    if (!ok) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    sqlite3_finalize(st);
    /* The snapshot position and the counters stay as they are: the new
     * snapshot replaces them when it is taken. */
    if ((rc = jsql_prepare(j, &st, "UPDATE cdc_tables SET state = 'resnapshot', error = NULL, "
                                  "updated_ms = ?2 WHERE table_name = ?1")) < 0 ||
        (rc = cdc_bind_text(j, st, 1, table)) < 0)
        goto done;
    if (sqlite3_bind_int64(st, 2, now_ms) != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE)
        rc = jsql_error(j, "cannot mark a cdc table for a new snapshot");
done:
    sqlite3_finalize(st);
    if (rc < 0) {
        free(*old_state);
        *old_state = NULL;
    }
    return rc;
}
