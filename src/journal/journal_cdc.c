/* The journal's writes of change data capture (mbq/journal_cdc.h). */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "mbq/error.h"
#include "mbq/journal_cdc.h"
#include "mbq/util.h"
#include "journal_internal.h"
#include "mbq/banned.h"

/* ---- the stream ---- */

void mbq_cdc_stream_clear(mbq_cdc_stream *s)
{
    if (!s)
        return;
    free(s->binlog_file);
    free(s->gtid);
    free(s->status);
    free(s->error);
    memset(s, 0, sizeof *s);
}

int mbq_journal_cdc_stream_get(mbq_journal *j, mbq_cdc_stream *out, bool *found)
{
    sqlite3_stmt *st = NULL;
    memset(out, 0, sizeof *out);
    *found = false;
    int rc = jsql_prepare(j, &st, "SELECT binlog_file, binlog_pos, gtid, event_ms, heartbeat_ms, "
                             "caught_up_ms, lag_ms, pid, status, error, updated_ms "
                             "FROM cdc_stream WHERE id = 1");
    if (rc < 0)
        return rc;
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW) {
        *found = true;
        out->binlog_file = jsql_col_text(st, 0);
        out->binlog_pos = sqlite3_column_int64(st, 1);
        out->gtid = jsql_col_text(st, 2);
        out->event_ms = jsql_col_count(st, 3);
        out->heartbeat_ms = jsql_col_count(st, 4);
        out->caught_up_ms = jsql_col_count(st, 5);
        out->lag_ms = jsql_col_count(st, 6);
        out->pid = jsql_col_count(st, 7);
        out->status = jsql_col_text(st, 8);
        out->error = jsql_col_text(st, 9);
        out->updated_ms = sqlite3_column_int64(st, 10);
        if (!out->binlog_file || !out->status)
            rc = MBQ_ENOMEM;
    } else if (s != SQLITE_DONE) {
        rc = jsql_error(j, "cannot read the cdc stream");
    }
    sqlite3_finalize(st);
    if (rc < 0)
        mbq_cdc_stream_clear(out);
    return rc;
}

int mbq_journal_cdc_stream_init(mbq_journal *j, const char *file, int64_t pos, int64_t now_ms)
{
    sqlite3_stmt *st = NULL;
    int rc = jsql_prepare(j, &st, "INSERT OR IGNORE INTO cdc_stream (id, binlog_file, binlog_pos, "
                             "status, updated_ms) VALUES (1, ?1, ?2, 'stopped', ?3)");
    if (rc < 0)
        return rc;
    int b = jsql_bind_text(st, 1, file) | sqlite3_bind_int64(st, 2, pos) |
            sqlite3_bind_int64(st, 3, now_ms);
    return jsql_run(j, st, b, "cannot create the cdc stream");
}

int mbq_journal_cdc_stream_status(mbq_journal *j, const char *status, int64_t pid,
                                  const char *error, int64_t now_ms)
{
    sqlite3_stmt *st = NULL;
    int rc = jsql_prepare(j, &st, "UPDATE cdc_stream SET status = ?1, pid = ?2, error = ?3, "
                             "updated_ms = ?4 WHERE id = 1");
    if (rc < 0)
        return rc;
    int b = jsql_bind_text(st, 1, status) | jsql_bind_count(st, 2, pid) | jsql_bind_text(st, 3, error) |
            sqlite3_bind_int64(st, 4, now_ms);
    return jsql_run(j, st, b, "cannot record the cdc stream's status");
}

int mbq_journal_cdc_stream_heard(mbq_journal *j, bool caught_up, int64_t lag_ms, int64_t now_ms)
{
    sqlite3_stmt *st = NULL;
    int rc = jsql_prepare(j, &st, "UPDATE cdc_stream SET heartbeat_ms = ?1, "
                             "caught_up_ms = CASE WHEN ?2 THEN ?1 ELSE caught_up_ms END, "
                             "lag_ms = ?3, updated_ms = ?1 WHERE id = 1");
    if (rc < 0)
        return rc;
    int b = sqlite3_bind_int64(st, 1, now_ms) | sqlite3_bind_int(st, 2, caught_up) |
            jsql_bind_count(st, 3, lag_ms);
    return jsql_run(j, st, b, "cannot record the cdc heartbeat");
}

int mbq_journal_cdc_stream_move(mbq_journal *j, const char *file, int64_t pos, const char *gtid,
                                int64_t event_ms, int64_t now_ms)
{
    sqlite3_stmt *st = NULL;
    int rc = jsql_prepare(j, &st, "UPDATE cdc_stream SET binlog_file = ?1, binlog_pos = ?2, "
                             "gtid = COALESCE(?3, gtid), event_ms = COALESCE(?4, event_ms), "
                             "updated_ms = ?5 WHERE id = 1");
    if (rc < 0)
        return rc;
    int b = jsql_bind_text(st, 1, file) | sqlite3_bind_int64(st, 2, pos) | jsql_bind_text(st, 3, gtid) |
            jsql_bind_count(st, 4, event_ms > 0 ? event_ms : -1) | sqlite3_bind_int64(st, 5, now_ms);
    return jsql_run(j, st, b, "cannot move the cdc stream");
}

/* ---- the tables ---- */

void mbq_cdc_table_clear(mbq_cdc_table *t)
{
    if (!t)
        return;
    free(t->table_name);
    free(t->state);
    free(t->snapshot_file);
    free(t->snapshot_path);
    free(t->snapshot_checksum);
    free(t->snapshot_job_id);
    free(t->error);
    memset(t, 0, sizeof *t);
}

int mbq_journal_cdc_table_get(mbq_journal *j, mbq_cdc_table *out, const char *table)
{
    sqlite3_stmt *st = NULL;
    memset(out, 0, sizeof *out);
    if (!(out->table_name = mbq_strdup(table)))
        return MBQ_ENOMEM;
    int rc = jsql_prepare(j, &st, "SELECT state, snapshot_file, snapshot_pos, snapshot_path, "
                             "snapshot_checksum, snapshot_rows, snapshot_job_id, "
                             "snapshot_attempt, rows_inserted, rows_updated, rows_deleted, error "
                             "FROM cdc_tables WHERE table_name = ?1");
    if (rc < 0)
        return rc;
    if (jsql_bind_text(st, 1, table) != SQLITE_OK) {
        rc = jsql_error(j, "cannot bind parameter");
        goto done;
    }
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW) {
        out->state = jsql_col_text(st, 0);
        out->snapshot_file = jsql_col_text(st, 1);
        out->snapshot_pos = jsql_col_count(st, 2);
        out->snapshot_path = jsql_col_text(st, 3);
        out->snapshot_checksum = jsql_col_text(st, 4);
        out->snapshot_rows = jsql_col_count(st, 5);
        out->snapshot_job_id = jsql_col_text(st, 6);
        out->snapshot_attempt = sqlite3_column_int(st, 7);
        out->rows_inserted = sqlite3_column_int64(st, 8);
        out->rows_updated = sqlite3_column_int64(st, 9);
        out->rows_deleted = sqlite3_column_int64(st, 10);
        out->error = jsql_col_text(st, 11);
        if (!out->state)
            rc = MBQ_ENOMEM;
    } else if (s != SQLITE_DONE) {
        rc = jsql_error(j, "cannot read a cdc table");
    }
done:
    sqlite3_finalize(st);
    if (rc < 0)
        mbq_cdc_table_clear(out);
    return rc;
}

int mbq_journal_cdc_snapshot_taken(mbq_journal *j, const mbq_cdc_table *t, int64_t now_ms)
{
    sqlite3_stmt *st = NULL;
    int rc = jsql_prepare(j, &st,
                     "INSERT INTO cdc_tables (table_name, state, snapshot_file, snapshot_pos, "
                     "snapshot_path, snapshot_checksum, snapshot_rows, snapshot_job_id, "
                     "snapshot_attempt, updated_ms) "
                     "VALUES (?1, 'snapshot', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) "
                     "ON CONFLICT (table_name) DO UPDATE SET state = 'snapshot', "
                     "snapshot_file = ?2, snapshot_pos = ?3, snapshot_path = ?4, "
                     "snapshot_checksum = ?5, snapshot_rows = ?6, snapshot_job_id = ?7, "
                     "snapshot_attempt = ?8, rows_inserted = 0, rows_updated = 0, "
                     "rows_deleted = 0, last_batch_id = NULL, error = NULL, updated_ms = ?9");
    if (rc < 0)
        return rc;
    int b = jsql_bind_text(st, 1, t->table_name) | jsql_bind_text(st, 2, t->snapshot_file) |
            sqlite3_bind_int64(st, 3, t->snapshot_pos) | jsql_bind_text(st, 4, t->snapshot_path) |
            jsql_bind_text(st, 5, t->snapshot_checksum) | jsql_bind_count(st, 6, t->snapshot_rows) |
            jsql_bind_text(st, 7, t->snapshot_job_id) | sqlite3_bind_int(st, 8, t->snapshot_attempt) |
            sqlite3_bind_int64(st, 9, now_ms);
    return jsql_run(j, st, b, "cannot journal a cdc snapshot");
}

int mbq_journal_cdc_snapshot_done(mbq_journal *j, const char *table, int64_t now_ms)
{
    sqlite3_stmt *st = NULL;
    int rc;
    if ((rc = mbq_journal_begin(j)) < 0)
        return rc;
    if ((rc = jsql_prepare(j, &st, "UPDATE cdc_tables SET state = 'streaming', snapshot_path = NULL, "
                              "snapshot_checksum = NULL, error = NULL, updated_ms = ?2 "
                              "WHERE table_name = ?1")) < 0)
        goto done;
    if ((rc = jsql_run(j, st, jsql_bind_text(st, 1, table) | sqlite3_bind_int64(st, 2, now_ms),
                  "cannot journal a cdc snapshot loaded")) < 0)
        goto done;
    /* The first table's snapshot starts the stream: nothing before it can
     * matter to any table (each later snapshot is later still). */
    if ((rc = jsql_prepare(j, &st, "INSERT OR IGNORE INTO cdc_stream (id, binlog_file, binlog_pos, "
                              "status, updated_ms) SELECT 1, snapshot_file, snapshot_pos, "
                              "'stopped', ?2 FROM cdc_tables WHERE table_name = ?1")) < 0)
        goto done;
    if ((rc = jsql_run(j, st, jsql_bind_text(st, 1, table) | sqlite3_bind_int64(st, 2, now_ms),
                  "cannot create the cdc stream")) < 0)
        goto done;
    rc = mbq_journal_commit(j);
done:
    if (rc < 0)
        mbq_journal_rollback(j);
    return rc;
}

int mbq_journal_cdc_table_failed(mbq_journal *j, const char *table, const char *state,
                                 const char *error, int64_t now_ms)
{
    sqlite3_stmt *st = NULL;
    int rc = jsql_prepare(j, &st, "INSERT INTO cdc_tables (table_name, state, error, updated_ms) "
                             "VALUES (?1, COALESCE(?2, 'snapshot'), ?3, ?4) "
                             "ON CONFLICT (table_name) DO UPDATE SET "
                             "state = COALESCE(?2, state), error = ?3, updated_ms = ?4");
    if (rc < 0)
        return rc;
    int b = jsql_bind_text(st, 1, table) | jsql_bind_text(st, 2, state) | jsql_bind_text(st, 3, error) |
            sqlite3_bind_int64(st, 4, now_ms);
    return jsql_run(j, st, b, "cannot journal a cdc table's failure");
}

/* ---- batches ---- */

void mbq_cdc_batch_clear(mbq_cdc_batch *b)
{
    if (!b)
        return;
    for (int i = 0; b->tables && i < b->n_tables; i++) {
        mbq_cdc_batch_table *t = &b->tables[i];
        free(t->table_name);
        free(t->state);
        free(t->path);
        free(t->checksum);
        free(t->staging_table);
        free(t->load_job_id);
        free(t->merge_job_id);
    }
    free(b->tables);
    free(b->from_file);
    free(b->to_file);
    free(b->to_gtid);
    free(b->state);
    memset(b, 0, sizeof *b);
}

static int insert_batch_table(mbq_journal *j, int64_t batch_id, const mbq_cdc_batch_table *t,
                              int64_t now_ms)
{
    sqlite3_stmt *st = NULL;
    int rc = jsql_prepare(j, &st, "INSERT INTO cdc_batch_tables (batch_id, table_name, state, path, "
                             "checksum, bytes, rows, attempt, staging_table, load_job_id, "
                             "merge_job_id, updated_ms, rows_inserted, rows_updated, "
                             "rows_deleted) VALUES (?1, ?2, 'closed', ?3, ?4, ?5, ?6, ?7, ?8, "
                             "?9, ?10, ?11, ?12, ?13, ?14)");
    if (rc < 0)
        return rc;
    int b = sqlite3_bind_int64(st, 1, batch_id) | jsql_bind_text(st, 2, t->table_name) |
            jsql_bind_text(st, 3, t->path) | jsql_bind_text(st, 4, t->checksum) |
            sqlite3_bind_int64(st, 5, t->bytes) | sqlite3_bind_int64(st, 6, t->rows) |
            sqlite3_bind_int(st, 7, t->attempt) | jsql_bind_text(st, 8, t->staging_table) |
            jsql_bind_text(st, 9, t->load_job_id) | jsql_bind_text(st, 10, t->merge_job_id) |
            sqlite3_bind_int64(st, 11, now_ms) | sqlite3_bind_int64(st, 12, t->rows_inserted) |
            sqlite3_bind_int64(st, 13, t->rows_updated) |
            sqlite3_bind_int64(st, 14, t->rows_deleted);
    return jsql_run(j, st, b, "cannot journal a cdc batch's table");
}

int mbq_journal_cdc_batch_close(mbq_journal *j, mbq_cdc_batch *b, int64_t now_ms)
{
    sqlite3_stmt *st = NULL;
    int rc;
    if ((rc = mbq_journal_begin(j)) < 0)
        return rc;
    if ((rc = jsql_prepare(j, &st, "INSERT INTO cdc_batches (from_file, from_pos, to_file, to_pos, "
                              "to_gtid, state, transactions, rows, first_event_ms, "
                              "last_event_ms, closed_ms) "
                              "VALUES (?1, ?2, ?3, ?4, ?5, 'closed', ?6, ?7, ?8, ?9, ?10)")) < 0)
        goto done;
    int bd = jsql_bind_text(st, 1, b->from_file) | sqlite3_bind_int64(st, 2, b->from_pos) |
             jsql_bind_text(st, 3, b->to_file) | sqlite3_bind_int64(st, 4, b->to_pos) |
             jsql_bind_text(st, 5, b->to_gtid) | sqlite3_bind_int64(st, 6, b->transactions) |
             sqlite3_bind_int64(st, 7, b->rows) | jsql_bind_count(st, 8, b->first_event_ms) |
             jsql_bind_count(st, 9, b->last_event_ms) | sqlite3_bind_int64(st, 10, now_ms);
    if ((rc = jsql_run(j, st, bd, "cannot journal a cdc batch")) < 0)
        goto done;
    b->batch_id = sqlite3_last_insert_rowid(mbq_journal_db(j));
    for (int i = 0; i < b->n_tables; i++)
        if ((rc = insert_batch_table(j, b->batch_id, &b->tables[i], now_ms)) < 0)
            goto done;
    rc = mbq_journal_commit(j);
done:
    if (rc < 0) {
        mbq_journal_rollback(j);
        b->batch_id = 0;
    }
    return rc;
}

static int read_batch_tables(mbq_journal *j, mbq_cdc_batch *b)
{
    sqlite3_stmt *st = NULL;
    int rc = jsql_prepare(j, &st, "SELECT table_name, state, path, checksum, bytes, rows, attempt, "
                             "staging_table, load_job_id, merge_job_id, rows_inserted, "
                             "rows_updated, rows_deleted FROM cdc_batch_tables "
                             "WHERE batch_id = ?1 ORDER BY table_name");
    if (rc < 0)
        return rc;
    if (sqlite3_bind_int64(st, 1, b->batch_id) != SQLITE_OK) {
        rc = jsql_error(j, "cannot bind parameter");
        goto done;
    }
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        mbq_cdc_batch_table *v = mbq_realloc(b->tables, (size_t)(b->n_tables + 1) * sizeof *v);
        if (!v) {
            rc = MBQ_ENOMEM;
            goto done;
        }
        b->tables = v;
        mbq_cdc_batch_table *t = &v[b->n_tables++];
        memset(t, 0, sizeof *t);
        t->table_name = jsql_col_text(st, 0);
        t->state = jsql_col_text(st, 1);
        t->path = jsql_col_text(st, 2);
        t->checksum = jsql_col_text(st, 3);
        t->bytes = sqlite3_column_int64(st, 4);
        t->rows = sqlite3_column_int64(st, 5);
        t->attempt = sqlite3_column_int(st, 6);
        t->staging_table = jsql_col_text(st, 7);
        t->load_job_id = jsql_col_text(st, 8);
        t->merge_job_id = jsql_col_text(st, 9);
        t->rows_inserted = sqlite3_column_int64(st, 10);
        t->rows_updated = sqlite3_column_int64(st, 11);
        t->rows_deleted = sqlite3_column_int64(st, 12);
        if (!t->table_name || !t->state || !t->path) {
            rc = MBQ_ENOMEM;
            goto done;
        }
    }
    if (s != SQLITE_DONE)
        rc = jsql_error(j, "cannot read a cdc batch's tables");
done:
    sqlite3_finalize(st);
    return rc;
}

int mbq_journal_cdc_batch_open_get(mbq_journal *j, mbq_cdc_batch *out, bool *found)
{
    sqlite3_stmt *st = NULL;
    memset(out, 0, sizeof *out);
    *found = false;
    int rc = jsql_prepare(j, &st, "SELECT batch_id, from_file, from_pos, to_file, to_pos, to_gtid, "
                             "state, transactions, rows, first_event_ms, last_event_ms "
                             "FROM cdc_batches WHERE state = 'closed' ORDER BY batch_id LIMIT 1");
    if (rc < 0)
        return rc;
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW) {
        *found = true;
        out->batch_id = sqlite3_column_int64(st, 0);
        out->from_file = jsql_col_text(st, 1);
        out->from_pos = sqlite3_column_int64(st, 2);
        out->to_file = jsql_col_text(st, 3);
        out->to_pos = sqlite3_column_int64(st, 4);
        out->to_gtid = jsql_col_text(st, 5);
        out->state = jsql_col_text(st, 6);
        out->transactions = sqlite3_column_int64(st, 7);
        out->rows = sqlite3_column_int64(st, 8);
        out->first_event_ms = jsql_col_count(st, 9);
        out->last_event_ms = jsql_col_count(st, 10);
        if (!out->from_file || !out->to_file || !out->state)
            rc = MBQ_ENOMEM;
    } else if (s != SQLITE_DONE) {
        rc = jsql_error(j, "cannot read the open cdc batch");
    }
    sqlite3_finalize(st);
    if (rc == 0 && *found)
        rc = read_batch_tables(j, out);
    if (rc < 0) {
        mbq_cdc_batch_clear(out);
        *found = false;
    }
    return rc;
}

int mbq_journal_cdc_batch_table_save(mbq_journal *j, int64_t batch_id,
                                     const mbq_cdc_batch_table *t, int64_t now_ms)
{
    sqlite3_stmt *st = NULL;
    int rc = jsql_prepare(j, &st, "UPDATE cdc_batch_tables SET state = ?3, attempt = ?4, "
                             "staging_table = ?5, load_job_id = ?6, merge_job_id = ?7, "
                             "rows_inserted = ?8, rows_updated = ?9, rows_deleted = ?10, "
                             "updated_ms = ?11 WHERE batch_id = ?1 AND table_name = ?2");
    if (rc < 0)
        return rc;
    int b = sqlite3_bind_int64(st, 1, batch_id) | jsql_bind_text(st, 2, t->table_name) |
            jsql_bind_text(st, 3, t->state) | sqlite3_bind_int(st, 4, t->attempt) |
            jsql_bind_text(st, 5, t->staging_table) | jsql_bind_text(st, 6, t->load_job_id) |
            jsql_bind_text(st, 7, t->merge_job_id) | sqlite3_bind_int64(st, 8, t->rows_inserted) |
            sqlite3_bind_int64(st, 9, t->rows_updated) |
            sqlite3_bind_int64(st, 10, t->rows_deleted) | sqlite3_bind_int64(st, 11, now_ms);
    return jsql_run(j, st, b, "cannot journal a cdc batch's table");
}

static int add_table_counts(mbq_journal *j, const mbq_cdc_batch *b, const mbq_cdc_batch_table *t,
                            int64_t now_ms)
{
    sqlite3_stmt *st = NULL;
    int rc = jsql_prepare(j, &st, "UPDATE cdc_tables SET rows_inserted = rows_inserted + ?2, "
                             "rows_updated = rows_updated + ?3, rows_deleted = rows_deleted + ?4, "
                             "last_batch_id = ?5, last_applied_ms = ?6, updated_ms = ?6 "
                             "WHERE table_name = ?1");
    if (rc < 0)
        return rc;
    int bd = jsql_bind_text(st, 1, t->table_name) | sqlite3_bind_int64(st, 2, t->rows_inserted) |
             sqlite3_bind_int64(st, 3, t->rows_updated) |
             sqlite3_bind_int64(st, 4, t->rows_deleted) |
             sqlite3_bind_int64(st, 5, b->batch_id) | sqlite3_bind_int64(st, 6, now_ms);
    return jsql_run(j, st, bd, "cannot add a cdc table's counts");
}

int mbq_journal_cdc_batch_commit(mbq_journal *j, const mbq_cdc_batch *b, int64_t lag_ms,
                                 int64_t now_ms)
{
    sqlite3_stmt *st = NULL;
    int rc;
    if ((rc = mbq_journal_begin(j)) < 0)
        return rc;
    if ((rc = jsql_prepare(j, &st, "UPDATE cdc_batches SET state = 'committed', committed_ms = ?2 "
                              "WHERE batch_id = ?1 AND state = 'closed'")) < 0)
        goto done;
    if ((rc = jsql_run(j, st, sqlite3_bind_int64(st, 1, b->batch_id) |
                             sqlite3_bind_int64(st, 2, now_ms),
                  "cannot commit a cdc batch")) < 0)
        goto done;
    if (sqlite3_changes(mbq_journal_db(j)) != 1) {
        rc = mbq_error_set(MBQ_EJOURNAL, "journal '%s': cdc batch %lld is not closed",
                           mbq_journal_path(j), (long long)b->batch_id);
        goto done;
    }
    if ((rc = jsql_prepare(j, &st, "UPDATE cdc_stream SET binlog_file = ?1, binlog_pos = ?2, "
                              "gtid = COALESCE(?3, gtid), event_ms = COALESCE(?4, event_ms), "
                              "lag_ms = ?5, updated_ms = ?6 WHERE id = 1")) < 0)
        goto done;
    if ((rc = jsql_run(j, st, jsql_bind_text(st, 1, b->to_file) | sqlite3_bind_int64(st, 2, b->to_pos) |
                             jsql_bind_text(st, 3, b->to_gtid) | jsql_bind_count(st, 4, b->last_event_ms) |
                             jsql_bind_count(st, 5, lag_ms) | sqlite3_bind_int64(st, 6, now_ms),
                  "cannot move the cdc stream")) < 0)
        goto done;
    for (int i = 0; i < b->n_tables; i++)
        if ((rc = add_table_counts(j, b, &b->tables[i], now_ms)) < 0)
            goto done;
    rc = mbq_journal_commit(j);
done:
    if (rc < 0)
        mbq_journal_rollback(j);
    return rc;
}

int mbq_journal_cdc_batch_abandon(mbq_journal *j, int64_t batch_id, int64_t now_ms)
{
    sqlite3_stmt *st = NULL;
    int rc = jsql_prepare(j, &st, "UPDATE cdc_batches SET state = 'abandoned', committed_ms = ?2 "
                             "WHERE batch_id = ?1 AND state = 'closed'");
    if (rc < 0)
        return rc;
    int b = sqlite3_bind_int64(st, 1, batch_id) | sqlite3_bind_int64(st, 2, now_ms);
    return jsql_run(j, st, b, "cannot abandon a cdc batch");
}
