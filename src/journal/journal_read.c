/* Read-only journal queries for the dashboard (see mbq/journal_read.h). */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "journal_internal.h"
#include "mbq/error.h"
#include "mbq/journal_read.h"
#include "mbq/util.h"
#include "mbq/banned.h"

static int read_error(mbq_journal *j, const char *what)
{
    return mbq_error_set(MBQ_EJOURNAL, "journal '%s': %s: %s", j->path, what,
                         sqlite3_errmsg(j->db));
}

static int prepare(mbq_journal *j, sqlite3_stmt **out, const char *sql)
{
    *out = NULL;
    if (sqlite3_prepare_v2(j->db, sql, -1, out, NULL) != SQLITE_OK)
        return read_error(j, "cannot prepare statement");
    return 0;
}

static int bind_text(mbq_journal *j, sqlite3_stmt *st, int i, const char *s)
{
    int rc = s ? sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
    return rc == SQLITE_OK ? 0 : read_error(j, "cannot bind parameter");
}

/* A text column, copied; *ok is cleared when the copy fails. */
static char *col_text(sqlite3_stmt *st, int i, bool *ok)
{
    const unsigned char *s = sqlite3_column_text(st, i);
    char *copy = s ? mbq_strdup((const char *)s) : NULL;
    if (s && !copy)
        *ok = false;
    return copy;
}

int mbq_journal_read_begin(mbq_journal *j)
{
    if (sqlite3_exec(j->db, "BEGIN DEFERRED", NULL, NULL, NULL) != SQLITE_OK)
        return read_error(j, "cannot begin a read transaction");
    return 0;
}

void mbq_journal_read_end(mbq_journal *j)
{
    /* A read transaction has nothing to commit: ROLLBACK ends it as well,
     * and cannot fail for want of a lock. */
    sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
}

void mbq_run_record_clear(mbq_run_record *r)
{
    free(r->run_id);
    free(r->status);
    memset(r, 0, sizeof *r);
}

int mbq_journal_last_finished_run(mbq_journal *j, mbq_run_record *out, bool *found)
{
    sqlite3_stmt *st = NULL;
    bool ok = true;
    memset(out, 0, sizeof *out);
    *found = false;
    int rc = prepare(j, &st,
                     "SELECT run_id, started_ms, finished_ms, status, tables_ok, tables_failed "
                     "FROM runs WHERE status != 'running' ORDER BY started_ms DESC, rowid DESC "
                     "LIMIT 1");
    if (rc < 0)
        goto done;
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        out->run_id = col_text(st, 0, &ok);
        out->started_ms = sqlite3_column_int64(st, 1);
        out->finished_ms = sqlite3_column_int64(st, 2);
        out->status = col_text(st, 3, &ok);
        out->tables_ok = sqlite3_column_int(st, 4);
        out->tables_failed = sqlite3_column_int(st, 5);
        *found = true;
    } else if (step != SQLITE_DONE) {
        rc = read_error(j, "cannot read the last run");
    }
    if (rc == 0 && !ok)
        rc = MBQ_ENOMEM;
done:
    sqlite3_finalize(st);
    if (rc < 0) {
        mbq_run_record_clear(out);
        *found = false;
    }
    return rc;
}

/* Append the row at `st` to the growing array *v (*n used, *cap allocated). */
static int event_push(mbq_event **v, int *n, int *cap, sqlite3_stmt *st)
{
    if (*n == *cap) {
        int ncap = *cap ? *cap * 2 : 8;
        mbq_event *grown = mbq_realloc(*v, (size_t)ncap * sizeof **v);
        if (!grown)
            return MBQ_ENOMEM;
        *v = grown;
        *cap = ncap;
    }
    bool ok = true;
    mbq_event *e = &(*v)[(*n)++];
    e->id = sqlite3_column_int64(st, 0);
    e->ts_ms = sqlite3_column_int64(st, 1);
    e->run_id = col_text(st, 2, &ok);
    e->table_name = col_text(st, 3, &ok);
    e->kind = col_text(st, 4, &ok);
    e->column_name = col_text(st, 5, &ok);
    e->old_type = col_text(st, 6, &ok);
    e->new_type = col_text(st, 7, &ok);
    e->action = col_text(st, 8, &ok);
    e->detail = col_text(st, 9, &ok);
    return ok ? 0 : MBQ_ENOMEM;
}

int mbq_journal_events_by_kind(mbq_journal *j, mbq_event **out, int *n, const char *table,
                               const char *kind_prefix, int limit)
{
    sqlite3_stmt *st = NULL;
    mbq_event *v = NULL;
    int count = 0, cap = 0, step = SQLITE_DONE;
    *out = NULL;
    *n = 0;
    /* substr() rather than LIKE: a prefix is compared as bytes, with no
     * wildcard or case folding to get wrong. */
    int rc = prepare(j, &st,
                     "SELECT id, ts_ms, run_id, table_name, kind, column_name, old_type, "
                     "new_type, action, detail FROM events WHERE (?1 IS NULL OR table_name = ?1) "
                     "AND substr(kind, 1, length(?2)) = ?2 ORDER BY id DESC LIMIT ?3");
    if (rc < 0 || (rc = bind_text(j, st, 1, table)) < 0 ||
        (rc = bind_text(j, st, 2, kind_prefix ? kind_prefix : "")) < 0)
        goto done;
    if (sqlite3_bind_int(st, 3, limit) != SQLITE_OK) {
        rc = read_error(j, "cannot bind parameter");
        goto done;
    }
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW)
        rc = event_push(&v, &count, &cap, st);
    if (rc == 0 && step != SQLITE_DONE)
        rc = read_error(j, "cannot read events");
done:
    sqlite3_finalize(st);
    if (rc < 0) {
        mbq_events_free(v, count);
        return rc;
    }
    *out = v;
    *n = count;
    return 0;
}

int mbq_journal_events_count(mbq_journal *j, int64_t *out, const char *table, const char *run_id,
                             const char *kind_prefix)
{
    sqlite3_stmt *st = NULL;
    *out = 0;
    int rc = prepare(j, &st,
                     "SELECT count(*) FROM events WHERE table_name IS ?1 AND run_id IS ?2 AND "
                     "substr(kind, 1, length(?3)) = ?3");
    if (rc < 0 || (rc = bind_text(j, st, 1, table)) < 0 || (rc = bind_text(j, st, 2, run_id)) < 0 ||
        (rc = bind_text(j, st, 3, kind_prefix ? kind_prefix : "")) < 0)
        goto done;
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = read_error(j, "cannot count events");
        goto done;
    }
    *out = sqlite3_column_int64(st, 0);
done:
    sqlite3_finalize(st);
    return rc;
}
