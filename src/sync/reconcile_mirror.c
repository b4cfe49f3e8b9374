/* Finished reconciliations into BigQuery's metadata table: one row each,
 * with rows_deleted (mbq/reconcile.h). Runs after the table runs' mirror,
 * which has created the table. */
#include <inttypes.h>
#include <stdio.h>

#include "mbq/bq.h"
#include "mbq/error.h"
#include "mbq/journal_reconcile.h"
#include "mbq/log.h"
#include "sync_internal.h"
#include "mbq/banned.h"

/* The metadata table of an older mbq has no rows_deleted column: add it
 * (tables.patch, idempotent: no request when it is there). */
static int ensure_column(sync_ctx *ctx)
{
    mbq_bq_schema *s = NULL;
    int rc = mbq_bq_schema_new(&s);
    if (rc == 0)
        rc = mbq_bq_schema_add(s, "rows_deleted", "INT64", MBQ_BQ_NULLABLE,
                               "rows a reconciliation deleted (hard) or flagged (soft)");
    if (rc == 0)
        rc = mbq_bq_table_add_columns(ctx->bq, NULL, ctx->cfg->bigquery.dataset,
                                      ctx->cfg->bigquery.metadata_table, s);
    mbq_bq_schema_free(s);
    return rc;
}

static int mirror_one(sync_ctx *ctx, const mbq_reconcile_run *r)
{
    mbq_buf sql = MBQ_BUF_INIT, id = MBQ_BUF_INIT;
    mbq_bq_job *job = NULL;
    char rid[32];
    const mbq_table_config *tc = mbq_config_table(ctx->cfg, r->table_name);
    snprintf(rid, sizeof rid, "%" PRId64, r->id);
    /* A deterministic id: an INSERT that ran before a kill is found, not
     * run again. */
    int rc = mbq_bq_job_id(&id, "mbq_meta_reconcile", r->run_id, rid, (const char *)NULL);
    if (rc == 0 && ((rc = mbq_buf_puts(&sql, "INSERT INTO ")) < 0 ||
                    (rc = mbq_bq_table_ref(&sql, ctx, ctx->cfg->bigquery.metadata_table)) < 0 ||
                    (rc = mbq_buf_puts(&sql, " (table_name, target_table, rows_synced, "
                                             "sync_duration_seconds, updated_at, run_id, "
                                             "load_mode, status, rows_deleted) VALUES (")) < 0 ||
                    (rc = mbq_buf_quote_bq_string(&sql, r->table_name)) < 0 ||
                    (rc = mbq_buf_puts(&sql, ", ")) < 0 ||
                    (rc = mbq_buf_quote_bq_string(&sql, tc ? tc->target : r->table_name)) < 0 ||
                    (rc = mbq_buf_printf(&sql, ", 0, %.3f, TIMESTAMP_MILLIS(%" PRId64 "), ",
                                         (double)(r->finished_ms - r->started_ms) / 1000.0,
                                         r->finished_ms)) < 0 ||
                    (rc = mbq_buf_quote_bq_string(&sql, r->last_run_id)) < 0 ||
                    (rc = mbq_buf_printf(&sql, ", 'reconcile-%s', 'reconciled', %" PRId64 ")",
                                         r->mode, r->rows_deleted > 0 ? r->rows_deleted : 0)) < 0))
        goto done;
    if (rc == 0 && (rc = mbq_bq_query(&job, ctx->bq, id.ptr, sql.ptr, NULL)) == 0)
        rc = mbq_journal_reconcile_mirror_done(ctx->j, r->id);
done:
    mbq_bq_job_free(job);
    mbq_buf_free(&sql);
    mbq_buf_free(&id);
    return rc;
}

int mbq_reconcile_mirror(sync_ctx *ctx)
{
    mbq_reconcile_run *r = NULL;
    int n = 0;
    int rc = mbq_journal_reconcile_mirror_pending(ctx->j, &r, &n, 100);
    if (rc == 0 && n > 0)
        rc = ensure_column(ctx);
    for (int i = 0; rc == 0 && i < n; i++)
        rc = mirror_one(ctx, &r[i]);
    if (rc == 0 && n > 0)
        mbq_log(MBQ_LOG_INFO, NULL, "mirror", "mirrored %d reconciliation(s) into '%s'", n,
                ctx->cfg->bigquery.metadata_table);
    mbq_reconcile_runs_free(r, n);
    return rc;
}
