/* The journal's backfill tables (sql/journal/005_backfill.sql): the plan of
 * a chunked first sync and each chunk's progress. See mbq/journal.h. */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "mbq/error.h"
#include "mbq/journal.h"
#include "mbq/util.h"
#include "journal_internal.h"
#include "mbq/banned.h"

static const char *const chunk_states[] = {"planned", "extracted", "loaded"};

/* A copy of column i (NULL stays NULL); *oom set when the copy failed. */
static char *text_at(sqlite3_stmt *st, int i, bool *oom)
{
    const unsigned char *s = sqlite3_column_text(st, i);
    char *copy = s ? mbq_strdup((const char *)s) : NULL;
    if (s && !copy)
        *oom = true;
    return copy;
}

void mbq_backfill_clear(mbq_backfill *b)
{
    if (!b)
        return;
    free(b->shadow_table);
    free(b->mark);
    free(b->tail_low);
    free(b->tail_checksum);
    free(b->schema_print);
    free(b->copy_job_id);
    memset(b, 0, sizeof *b);
}

void mbq_backfill_chunks_free(mbq_backfill_chunk *c, int n)
{
    for (int i = 0; c && i < n; i++) {
        free(c[i].key_after);
        free(c[i].key_upto);
        free(c[i].path);
        free(c[i].job_id);
    }
    free(c);
}

int mbq_journal_backfill_get(mbq_journal *j, mbq_backfill *out, bool *found,
                             int64_t table_run_id)
{
    sqlite3_stmt *st = NULL;
    bool oom = false;
    int rc, step;
    memset(out, 0, sizeof *out);
    *found = false;
    if ((rc = jsql_prepare(j, &st,
                   "SELECT shadow_table, mark, chunk_rows, n_chunks, schema_print, copy_job_id, "
                   "planned_ms, tail_low, tail_checksum FROM backfills WHERE table_run_id = ?")) < 0)
        return rc;
    sqlite3_bind_int64(st, 1, table_run_id);
    step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        out->table_run_id = table_run_id;
        out->shadow_table = text_at(st, 0, &oom);
        out->mark = text_at(st, 1, &oom);
        out->chunk_rows = sqlite3_column_int64(st, 2);
        out->n_chunks = sqlite3_column_int(st, 3);
        out->schema_print = text_at(st, 4, &oom);
        out->copy_job_id = text_at(st, 5, &oom);
        out->planned_ms = sqlite3_column_int64(st, 6);
        out->tail_low = text_at(st, 7, &oom);
        out->tail_checksum = text_at(st, 8, &oom);
        *found = true;
    } else if (step != SQLITE_DONE) {
        rc = jsql_error(j, "cannot read the backfill");
    }
    sqlite3_finalize(st);
    if (rc == 0 && oom)
        rc = MBQ_ENOMEM;
    if (rc < 0) {
        mbq_backfill_clear(out);
        *found = false;
    }
    return rc;
}

static int delete_rows(mbq_journal *j, int64_t table_run_id)
{
    static const char *const sql[] = {"DELETE FROM backfill_chunks WHERE table_run_id = ?",
                                      "DELETE FROM backfills WHERE table_run_id = ?"};
    for (size_t i = 0; i < 2; i++) {
        sqlite3_stmt *st = NULL;
        int rc = jsql_prepare(j, &st, sql[i]);
        if (rc < 0)
            return rc;
        if ((rc = jsql_run(j, st, sqlite3_bind_int64(st, 1, table_run_id),
                           "cannot delete the backfill")) < 0)
            return rc;
    }
    return 0;
}

static int insert_chunk(mbq_journal *j, int64_t trid, const mbq_backfill_chunk *c, int64_t now)
{
    sqlite3_stmt *st = NULL;
    int rc = jsql_prepare(j, &st,
                  "INSERT INTO backfill_chunks (table_run_id, chunk, key_after, key_upto, "
                  "updated_ms) VALUES (?, ?, ?, ?, ?)");
    if (rc < 0)
        return rc;
    int b = sqlite3_bind_int64(st, 1, trid);
    if (b == SQLITE_OK)
        b = sqlite3_bind_int(st, 2, c->chunk);
    if (b == SQLITE_OK)
        b = jsql_bind_text(st, 3, c->key_after);
    if (b == SQLITE_OK)
        b = jsql_bind_text(st, 4, c->key_upto);
    if (b == SQLITE_OK)
        b = sqlite3_bind_int64(st, 5, now);
    return jsql_run(j, st, b, "cannot record a chunk");
}

int mbq_journal_backfill_create(mbq_journal *j, const mbq_backfill *bf,
                                const mbq_backfill_chunk *chunks, int n)
{
    sqlite3_stmt *st = NULL;
    int64_t now = mbq_now_ms();
    int rc = mbq_journal_begin(j);
    if (rc < 0)
        return rc;
    if ((rc = delete_rows(j, bf->table_run_id)) < 0 ||
        (rc = jsql_prepare(j, &st,
                   "INSERT INTO backfills (table_run_id, shadow_table, mark, chunk_rows, "
                   "n_chunks, schema_print, copy_job_id, planned_ms, tail_low, tail_checksum) "
                   "VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)")) < 0)
        goto fail;
    int b = sqlite3_bind_int64(st, 1, bf->table_run_id);
    if (b == SQLITE_OK)
        b = jsql_bind_text(st, 2, bf->shadow_table);
    if (b == SQLITE_OK)
        b = jsql_bind_text(st, 3, bf->mark);
    if (b == SQLITE_OK)
        b = sqlite3_bind_int64(st, 4, bf->chunk_rows);
    if (b == SQLITE_OK)
        b = sqlite3_bind_int(st, 5, n);
    if (b == SQLITE_OK)
        b = jsql_bind_text(st, 6, bf->schema_print);
    if (b == SQLITE_OK)
        b = sqlite3_bind_int64(st, 7, now);
    if (b == SQLITE_OK)
        b = jsql_bind_text(st, 8, bf->tail_low);
    if (b == SQLITE_OK)
        b = jsql_bind_text(st, 9, bf->tail_checksum);
    if ((rc = jsql_run(j, st, b, "cannot record the backfill")) < 0)
        goto fail;
    for (int i = 0; i < n; i++)
        if ((rc = insert_chunk(j, bf->table_run_id, &chunks[i], now)) < 0)
            goto fail;
    return mbq_journal_commit(j);
fail:
    mbq_journal_rollback(j);
    return rc;
}

int mbq_journal_backfill_delete(mbq_journal *j, int64_t table_run_id)
{
    int rc = mbq_journal_begin(j);
    if (rc < 0)
        return rc;
    if ((rc = delete_rows(j, table_run_id)) < 0) {
        mbq_journal_rollback(j);
        return rc;
    }
    return mbq_journal_commit(j);
}

int mbq_journal_backfill_set_copy(mbq_journal *j, int64_t table_run_id, const char *job_id)
{
    sqlite3_stmt *st = NULL;
    int rc = jsql_prepare(j, &st, "UPDATE backfills SET copy_job_id = ? WHERE table_run_id = ?");
    if (rc < 0)
        return rc;
    int b = jsql_bind_text(st, 1, job_id);
    if (b == SQLITE_OK)
        b = sqlite3_bind_int64(st, 2, table_run_id);
    return jsql_run(j, st, b, "cannot record the copy job");
}

static int parse_state(mbq_chunk_state *out, const char *s)
{
    for (int i = 0; i < 3; i++)
        if (s && strcmp(s, chunk_states[i]) == 0) {
            *out = (mbq_chunk_state)i;
            return 0;
        }
    return mbq_error_set(MBQ_EJOURNAL, "unknown chunk state '%s' in the journal", s ? s : "");
}

int mbq_journal_chunks_get(mbq_journal *j, mbq_backfill_chunk **out, int *n,
                           int64_t table_run_id)
{
    sqlite3_stmt *st = NULL;
    mbq_backfill_chunk *v = NULL;
    bool oom = false;
    int rc, cap = 0, step;
    *out = NULL;
    *n = 0;
    if ((rc = jsql_prepare(j, &st,
                   "SELECT chunk, key_after, key_upto, state, attempt, path, rows, bytes, "
                   "job_id, part_bytes FROM backfill_chunks WHERE table_run_id = ? "
                   "ORDER BY chunk")) < 0)
        return rc;
    sqlite3_bind_int64(st, 1, table_run_id);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            mbq_backfill_chunk *grown = mbq_realloc(v, (size_t)cap * sizeof *v);
            if (!grown) {
                rc = MBQ_ENOMEM;
                break;
            }
            v = grown;
        }
        mbq_backfill_chunk *c = &v[(*n)++];
        memset(c, 0, sizeof *c);
        c->chunk = sqlite3_column_int(st, 0);
        c->key_after = text_at(st, 1, &oom);
        c->key_upto = text_at(st, 2, &oom);
        if ((rc = parse_state(&c->state, (const char *)sqlite3_column_text(st, 3))) < 0)
            break;
        c->attempt = sqlite3_column_int(st, 4);
        c->path = text_at(st, 5, &oom);
        c->rows = sqlite3_column_int64(st, 6);
        c->bytes = sqlite3_column_int64(st, 7);
        c->job_id = text_at(st, 8, &oom);
        c->part_bytes = sqlite3_column_int64(st, 9);
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = jsql_error(j, "cannot read the chunks");
    if (rc == 0 && oom)
        rc = MBQ_ENOMEM;
    sqlite3_finalize(st);
    if (rc < 0) {
        mbq_backfill_chunks_free(v, *n);
        *n = 0;
        return rc;
    }
    *out = v;
    return 0;
}

int mbq_journal_chunk_save(mbq_journal *j, int64_t table_run_id, const mbq_backfill_chunk *c)
{
    sqlite3_stmt *st = NULL;
    int rc = jsql_prepare(j, &st,
                  "UPDATE backfill_chunks SET state = ?, attempt = ?, path = ?, rows = ?, "
                  "bytes = ?, job_id = ?, part_bytes = ?, updated_ms = ? "
                  "WHERE table_run_id = ? AND chunk = ?");
    if (rc < 0)
        return rc;
    int b = sqlite3_bind_text(st, 1, chunk_states[c->state], -1, SQLITE_STATIC);
    if (b == SQLITE_OK)
        b = sqlite3_bind_int(st, 2, c->attempt);
    if (b == SQLITE_OK)
        b = jsql_bind_text(st, 3, c->path);
    if (b == SQLITE_OK)
        b = sqlite3_bind_int64(st, 4, c->rows);
    if (b == SQLITE_OK)
        b = sqlite3_bind_int64(st, 5, c->bytes);
    if (b == SQLITE_OK)
        b = jsql_bind_text(st, 6, c->job_id);
    if (b == SQLITE_OK)
        b = sqlite3_bind_int64(st, 7, c->part_bytes);
    if (b == SQLITE_OK)
        b = sqlite3_bind_int64(st, 8, mbq_now_ms());
    if (b == SQLITE_OK)
        b = sqlite3_bind_int64(st, 9, table_run_id);
    if (b == SQLITE_OK)
        b = sqlite3_bind_int(st, 10, c->chunk);
    return jsql_run(j, st, b, "cannot record a chunk");
}

int mbq_journal_backfill_progress(mbq_journal *j, bool *found, int *loaded, int *n_chunks,
                                  int64_t *rows_loaded, int64_t table_run_id)
{
    sqlite3_stmt *st = NULL;
    int rc = jsql_prepare(j, &st,
                  "SELECT b.n_chunks, (SELECT COUNT(*) FROM backfill_chunks c WHERE "
                  "c.table_run_id = b.table_run_id AND c.state = 'loaded'), (SELECT "
                  "COALESCE(SUM(rows), 0) FROM backfill_chunks c WHERE c.table_run_id = "
                  "b.table_run_id AND c.state = 'loaded') FROM backfills b WHERE "
                  "b.table_run_id = ?");
    *found = false;
    *loaded = *n_chunks = 0;
    *rows_loaded = 0;
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(st, 1, table_run_id);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        *found = true;
        *n_chunks = sqlite3_column_int(st, 0);
        *loaded = sqlite3_column_int(st, 1);
        *rows_loaded = sqlite3_column_int64(st, 2);
    } else if (step != SQLITE_DONE) {
        rc = jsql_error(j, "cannot read the backfill");
    }
    sqlite3_finalize(st);
    return rc;
}
