/* The journal's record of reconciliations (mbq/journal_reconcile.h). */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "mbq/error.h"
#include "mbq/journal_reconcile.h"
#include "mbq/util.h"
#include "journal_internal.h"
#include "mbq/banned.h"

void mbq_reconcile_run_clear(mbq_reconcile_run *r)
{
    if (!r)
        return;
    char **s[] = {&r->run_id,       &r->last_run_id,    &r->table_name,   &r->mode,
                  &r->state,        &r->last_key,       &r->chunk_path,   &r->chunk_last_key,
                  &r->chunk_job_id, &r->hwm,            &r->staging_table, &r->apply_job_id,
                  &r->error};
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
        free(*s[i]);
    memset(r, 0, sizeof *r);
}

void mbq_reconcile_runs_free(mbq_reconcile_run *r, int n)
{
    for (int i = 0; r && i < n; i++)
        mbq_reconcile_run_clear(&r[i]);
    free(r);
}

#define COLS                                                                                       \
    "id, run_id, last_run_id, table_name, mode, state, chunks, last_key, chunk_path, "            \
    "chunk_rows, chunk_last_key, chunk_job_id, hwm_taken, hwm, keys, staging_table, "             \
    "apply_job_id, attempt, target_rows, rows_deleted, error, started_ms, updated_ms, "           \
    "finished_ms"

static void from_row(sqlite3_stmt *st, mbq_reconcile_run *r)
{
    memset(r, 0, sizeof *r);
    r->id = sqlite3_column_int64(st, 0);
    r->run_id = jsql_col_text(st, 1);
    r->last_run_id = jsql_col_text(st, 2);
    r->table_name = jsql_col_text(st, 3);
    r->mode = jsql_col_text(st, 4);
    r->state = jsql_col_text(st, 5);
    r->chunks = sqlite3_column_int64(st, 6);
    r->last_key = jsql_col_text(st, 7);
    r->chunk_path = jsql_col_text(st, 8);
    r->chunk_rows = jsql_col_count(st, 9);
    r->chunk_last_key = jsql_col_text(st, 10);
    r->chunk_job_id = jsql_col_text(st, 11);
    r->hwm_taken = sqlite3_column_int(st, 12) != 0;
    r->hwm = jsql_col_text(st, 13);
    r->keys = sqlite3_column_int64(st, 14);
    r->staging_table = jsql_col_text(st, 15);
    r->apply_job_id = jsql_col_text(st, 16);
    r->attempt = sqlite3_column_int(st, 17);
    r->target_rows = jsql_col_count(st, 18);
    r->rows_deleted = jsql_col_count(st, 19);
    r->error = jsql_col_text(st, 20);
    r->started_ms = sqlite3_column_int64(st, 21);
    r->updated_ms = sqlite3_column_int64(st, 22);
    r->finished_ms = jsql_col_count(st, 23);
}

/* Run a SELECT of COLS bound to `table`, into *out (n rows). */
static int query_runs(mbq_journal *j, mbq_reconcile_run **out, int *n, const char *sql,
                      const char *table, int limit)
{
    sqlite3_stmt *st = NULL;
    mbq_reconcile_run *v = NULL;
    int rc, k = 0;
    *out = NULL;
    *n = 0;
    if ((rc = jsql_prepare(j, &st, sql)) < 0)
        return rc;
    if (sqlite3_bind_text(st, 1, table, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
        sqlite3_bind_int(st, 2, limit) != SQLITE_OK) {
        rc = jsql_error(j, "cannot bind parameter");
        goto done;
    }
    if (!(v = mbq_calloc((size_t)(limit > 0 ? limit : 1), sizeof *v))) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    int s;
    while (k < limit && (s = sqlite3_step(st)) == SQLITE_ROW)
        from_row(st, &v[k++]);
    if (k < limit && s != SQLITE_DONE) {
        rc = jsql_error(j, "cannot read reconciliations");
        goto done;
    }
    *out = v;
    *n = k;
    v = NULL;
done:
    mbq_reconcile_runs_free(v, k);
    sqlite3_finalize(st);
    return rc;
}

int mbq_journal_reconcile_mirror_pending(mbq_journal *j, mbq_reconcile_run **out, int *n,
                                         int limit)
{
    /* table_name is bound as ?1 by query_runs: any table matches. */
    return query_runs(j, out, n,
                      "SELECT " COLS " FROM reconciles WHERE mirror_state = 'pending' AND "
                      "table_name IS NOT ?1 ORDER BY id LIMIT ?2",
                      "", limit);
}

int mbq_journal_reconcile_mirror_done(mbq_journal *j, int64_t id)
{
    sqlite3_stmt *st = NULL;
    int rc = jsql_prepare(j, &st, "UPDATE reconciles SET mirror_state = 'done' WHERE id = ?");
    if (rc < 0)
        return rc;
    if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK)
        rc = jsql_error(j, "cannot bind parameter");
    else if (sqlite3_step(st) != SQLITE_DONE)
        rc = jsql_error(j, "cannot mark the reconciliation mirrored");
    sqlite3_finalize(st);
    return rc;
}

int mbq_journal_reconcile_in_flight(mbq_journal *j, mbq_reconcile_run *out, bool *found,
                                    const char *table)
{
    mbq_reconcile_run *v = NULL;
    int n = 0;
    int rc = query_runs(j, &v, &n,
                        "SELECT " COLS " FROM reconciles WHERE table_name = ?1 AND state IN "
                        "('scan', 'load', 'apply') ORDER BY id DESC LIMIT ?2",
                        table, 1);
    *found = rc == 0 && n == 1;
    if (*found) {
        *out = v[0];
        memset(&v[0], 0, sizeof v[0]);
    }
    mbq_reconcile_runs_free(v, n);
    return rc;
}

int mbq_journal_reconcile_recent(mbq_journal *j, mbq_reconcile_run **out, int *n,
                                 const char *table, int limit)
{
    return query_runs(j, out, n,
                      "SELECT " COLS " FROM reconciles WHERE table_name = ?1 ORDER BY id DESC "
                      "LIMIT ?2",
                      table, limit);
}

int mbq_journal_reconcile_create(mbq_journal *j, mbq_reconcile_run *r)
{
    sqlite3_stmt *st = NULL;
    int rc = jsql_prepare(j, &st,
                     "INSERT INTO reconciles (run_id, last_run_id, table_name, mode, state, "
                     "started_ms, updated_ms) VALUES (?, ?, ?, ?, 'scan', ?, ?)");
    if (rc < 0)
        return rc;
    if (jsql_bind_text(st, 1, r->run_id) || jsql_bind_text(st, 2, r->last_run_id) ||
        jsql_bind_text(st, 3, r->table_name) || jsql_bind_text(st, 4, r->mode) ||
        sqlite3_bind_int64(st, 5, r->started_ms) || sqlite3_bind_int64(st, 6, r->updated_ms)) {
        rc = jsql_error(j, "cannot bind parameter");
    } else if (sqlite3_step(st) != SQLITE_DONE) {
        rc = jsql_error(j, "cannot start a reconciliation");
    } else {
        r->id = sqlite3_last_insert_rowid(mbq_journal_db(j));
        free(r->state);
        if (!(r->state = mbq_strdup("scan")))
            rc = MBQ_ENOMEM;
    }
    sqlite3_finalize(st);
    return rc;
}

int mbq_journal_reconcile_save(mbq_journal *j, const mbq_reconcile_run *r)
{
    sqlite3_stmt *st = NULL;
    int rc = jsql_prepare(j, &st,
                     "UPDATE reconciles SET last_run_id = ?1, state = ?2, chunks = ?3, "
                     "last_key = ?4, chunk_path = ?5, chunk_rows = ?6, chunk_last_key = ?7, "
                     "chunk_job_id = ?8, hwm_taken = ?9, hwm = ?10, keys = ?11, "
                     "staging_table = ?12, apply_job_id = ?13, attempt = ?14, "
                     "target_rows = ?15, rows_deleted = ?16, error = ?17, updated_ms = ?18, "
                     "finished_ms = ?19, mirror_state = CASE WHEN ?2 = 'done' AND "
                     "mirror_state = 'none' THEN 'pending' ELSE mirror_state END WHERE id = ?20");
    if (rc < 0)
        return rc;
    if (jsql_bind_text(st, 1, r->last_run_id) || jsql_bind_text(st, 2, r->state) ||
        sqlite3_bind_int64(st, 3, r->chunks) || jsql_bind_text(st, 4, r->last_key) ||
        jsql_bind_text(st, 5, r->chunk_path) || jsql_bind_count(st, 6, r->chunk_rows) ||
        jsql_bind_text(st, 7, r->chunk_last_key) || jsql_bind_text(st, 8, r->chunk_job_id) ||
        sqlite3_bind_int(st, 9, r->hwm_taken) || jsql_bind_text(st, 10, r->hwm) ||
        sqlite3_bind_int64(st, 11, r->keys) || jsql_bind_text(st, 12, r->staging_table) ||
        jsql_bind_text(st, 13, r->apply_job_id) || sqlite3_bind_int(st, 14, r->attempt) ||
        jsql_bind_count(st, 15, r->target_rows) || jsql_bind_count(st, 16, r->rows_deleted) ||
        jsql_bind_text(st, 17, r->error) || sqlite3_bind_int64(st, 18, r->updated_ms) ||
        jsql_bind_count(st, 19, r->finished_ms > 0 ? r->finished_ms : -1) ||
        sqlite3_bind_int64(st, 20, r->id)) {
        rc = jsql_error(j, "cannot bind parameter");
    } else if (sqlite3_step(st) != SQLITE_DONE) {
        rc = jsql_error(j, "cannot save reconciliation");
    } else if (sqlite3_changes(mbq_journal_db(j)) != 1) {
        rc = mbq_error_set(MBQ_EJOURNAL, "journal '%s': reconciliation %lld is gone",
                           mbq_journal_path(j), (long long)r->id);
    }
    sqlite3_finalize(st);
    return rc;
}

int mbq_journal_reconcile_last_end(mbq_journal *j, int64_t *out, const char *table)
{
    sqlite3_stmt *st = NULL;
    *out = 0;
    int rc = jsql_prepare(j, &st,
                     "SELECT MAX(finished_ms) FROM reconciles WHERE table_name = ? AND state IN "
                     "('done', 'refused')");
    if (rc < 0)
        return rc;
    if (jsql_bind_text(st, 1, table) != SQLITE_OK)
        rc = jsql_error(j, "cannot bind parameter");
    else if (sqlite3_step(st) != SQLITE_ROW)
        rc = jsql_error(j, "cannot read reconciliations");
    else
        *out = sqlite3_column_int64(st, 0); /* NULL reads as 0: none yet */
    sqlite3_finalize(st);
    return rc;
}

int mbq_journal_reconcile_abandon(mbq_journal *j, int *n, const char *table, int64_t now_ms)
{
    sqlite3_stmt *st = NULL;
    *n = 0;
    int rc = jsql_prepare(j, &st,
                     "UPDATE reconciles SET state = 'abandoned', finished_ms = ?, updated_ms = ? "
                     "WHERE table_name = ? AND state IN ('scan', 'load', 'apply')");
    if (rc < 0)
        return rc;
    if (sqlite3_bind_int64(st, 1, now_ms) || sqlite3_bind_int64(st, 2, now_ms) ||
        jsql_bind_text(st, 3, table))
        rc = jsql_error(j, "cannot bind parameter");
    else if (sqlite3_step(st) != SQLITE_DONE)
        rc = jsql_error(j, "cannot abandon the reconciliation");
    else
        *n = sqlite3_changes(mbq_journal_db(j));
    sqlite3_finalize(st);
    return rc;
}
