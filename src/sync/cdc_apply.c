/* Apply a closed batch (cdc_internal.h): per table, load its file into a
 * staging table, keep each key's last change, MERGE into the target; then
 * one SQLite transaction commits the batch and moves the stream.
 *
 * Every job has a deterministic id built from the batch's staging name
 * (journaled when the batch closed) and the attempt, and each table's part
 * is journaled 'loaded' / 'merged' after its job: a resumed apply finds a
 * job by its id (looked up before submission, mbq/bq.h) instead of running
 * it twice, and a part already merged is not touched again. Applying a
 * batch twice is harmless anyway: the MERGE of each key's last change sets
 * the same rows. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mbq/error.h"
#include "mbq/fault.h"
#include "mbq/log.h"
#include "mbq/reconcile.h"
#include "mbq/util.h"
#include "cdc_internal.h"
#include "mbq/banned.h"

static int job_id(char **out, const char *kind, const mbq_cdc_batch_table *bt)
{
    mbq_buf b = MBQ_BUF_INIT;
    char att[16];
    snprintf(att, sizeof att, "%d", bt->attempt);
    int rc = mbq_bq_job_id(&b, kind, bt->staging_table, att, (const char *)NULL);
    free(*out);
    *out = NULL;
    if (rc == 0 && !(*out = mbq_buf_detach(&b)))
        rc = MBQ_ENOMEM;
    mbq_buf_free(&b);
    return rc;
}

/* The staging schema: the table's stage schema plus op and seq. */
static int staging_schema(mbq_bq_schema **out, const cdc_table *t)
{
    int rc = mbq_bq_schema_new(out);
    const mbq_bq_schema *s = t->job.stage_schema;
    for (size_t i = 0; rc == 0 && i < s->n_fields; i++)
        rc = mbq_bq_schema_add(*out, s->fields[i].name, s->fields[i].type, MBQ_BQ_NULLABLE, NULL);
    if (rc == 0)
        rc = mbq_bq_schema_add(*out, CDC_OP_COLUMN, "STRING", MBQ_BQ_NULLABLE, NULL);
    if (rc == 0)
        rc = mbq_bq_schema_add(*out, CDC_SEQ_COLUMN, "INT64", MBQ_BQ_NULLABLE, NULL);
    return rc;
}

/* "<staging>_last": each key's last change. */
static int last_name(mbq_buf *b, const mbq_cdc_batch_table *bt)
{
    return mbq_buf_printf(b, "%s_last", bt->staging_table);
}

static int load_part(cdc_ctx *c, cdc_table *t, int64_t batch_id, mbq_cdc_batch_table *bt)
{
    const mbq_bigquery_config *bc = &c->s.cfg->bigquery;
    mbq_bq_schema *schema = NULL;
    mbq_bq_job *job = NULL;
    int rc;
    if ((rc = job_id(&bt->load_job_id, "mbq_cdc_load", bt)) < 0 ||
        (rc = mbq_journal_cdc_batch_table_save(c->s.j, batch_id, bt, mbq_now_ms())) < 0 ||
        (rc = staging_schema(&schema, t)) < 0)
        goto done;
    /* Created with an expiration first, so that a staging table a killed
     * follower never cleans up goes away by itself. */
    mbq_bq_table_options to = MBQ_BQ_TABLE_OPTIONS_INIT;
    to.expiration_ms = bc->staging_expiration_ms;
    rc = mbq_bq_table_create(c->s.bq, bc->dataset, bt->staging_table, schema, &to);
    if (rc < 0 && rc != MBQ_EEXISTS)
        goto done;
    mbq_bq_load_options lo = MBQ_BQ_LOAD_OPTIONS_INIT;
    lo.dataset = bc->dataset;
    lo.table = bt->staging_table;
    lo.path = bt->path;
    lo.schema = schema;
    lo.write_disposition = MBQ_BQ_WRITE_TRUNCATE;
    lo.create_disposition = MBQ_BQ_CREATE_IF_NEEDED;
    if ((rc = mbq_bq_load_file(&job, c->s.bq, bt->load_job_id, &lo)) < 0)
        goto done;
    if (job->output_rows >= 0 && job->output_rows != bt->rows && !job->existed) {
        rc = mbq_error_set(MBQ_EBQ, "table '%s': load job '%s' wrote %" PRId64
                                    " rows from '%s', which holds %" PRId64,
                           t->tc.name, bt->load_job_id, job->output_rows, bt->path, bt->rows);
        goto done;
    }
    if ((rc = sync_set_str(&bt->state, "loaded")) < 0 ||
        (rc = mbq_journal_cdc_batch_table_save(c->s.j, batch_id, bt, mbq_now_ms())) < 0)
        goto done;
    mbq_fault_point("cdc.loaded");
done:
    mbq_bq_job_free(job);
    mbq_bq_schema_free(schema);
    return rc;
}

/* The target's BigQuery key and column names (the stage schema's). */
static int names(const char ***key, const char ***cols, size_t *n_cols, const cdc_table *t)
{
    const mbq_table_schema *s = t->job.src;
    *key = mbq_calloc(t->tc.n_primary_key ? t->tc.n_primary_key : 1, sizeof **key);
    *cols = mbq_calloc(s->n_columns ? s->n_columns : 1, sizeof **cols);
    if (!*key || !*cols)
        return MBQ_ENOMEM;
    for (size_t k = 0; k < t->tc.n_primary_key; k++)
        (*key)[k] = s->columns[t->pk_idx[k]].bq_name;
    for (size_t i = 0; i < s->n_columns; i++)
        (*cols)[i] = s->columns[i].bq_name;
    *n_cols = s->n_columns;
    return 0;
}

static int merge_part(cdc_ctx *c, cdc_table *t, int64_t batch_id, mbq_cdc_batch_table *bt)
{
    mbq_buf st = MBQ_BUF_INIT, last = MBQ_BUF_INIT, tgt = MBQ_BUF_INIT, sql = MBQ_BUF_INIT,
            lname = MBQ_BUF_INIT;
    const char **key = NULL, **cols = NULL;
    size_t n_cols = 0;
    char *last_job = NULL;
    mbq_bq_job *job = NULL;
    int rc;
    if ((rc = names(&key, &cols, &n_cols, t)) < 0 || (rc = last_name(&lname, bt)) < 0 ||
        (rc = mbq_bq_table_ref(&st, &c->s, bt->staging_table)) < 0 ||
        (rc = mbq_bq_table_ref(&last, &c->s, lname.ptr)) < 0 ||
        (rc = mbq_bq_table_ref(&tgt, &c->s, t->tc.target)) < 0)
        goto done;
    if ((rc = job_id(&last_job, "mbq_cdc_last", bt)) < 0 ||
        (rc = job_id(&bt->merge_job_id, "mbq_cdc_merge", bt)) < 0 ||
        (rc = mbq_journal_cdc_batch_table_save(c->s.j, batch_id, bt, mbq_now_ms())) < 0)
        goto done;
    if ((rc = cdc_sql_last(&sql, st.ptr, last.ptr, key, t->tc.n_primary_key)) < 0 ||
        (rc = mbq_bq_query(&job, c->s.bq, last_job, sql.ptr, NULL)) < 0)
        goto done;
    mbq_bq_job_free(job);
    job = NULL;
    mbq_buf_clear(&sql);
    if ((rc = cdc_sql_merge(&sql, tgt.ptr, last.ptr, key, t->tc.n_primary_key, cols, n_cols,
                            t->tc.deletes)) < 0 ||
        (rc = mbq_bq_query(&job, c->s.bq, bt->merge_job_id, sql.ptr, NULL)) < 0)
        goto done;
    if ((rc = sync_set_str(&bt->state, "merged")) < 0 ||
        (rc = mbq_journal_cdc_batch_table_save(c->s.j, batch_id, bt, mbq_now_ms())) < 0)
        goto done;
    mbq_fault_point("cdc.merged");
done:
    mbq_bq_job_free(job);
    free(last_job);
    free(key);
    free(cols);
    mbq_buf_free(&st);
    mbq_buf_free(&last);
    mbq_buf_free(&tgt);
    mbq_buf_free(&sql);
    mbq_buf_free(&lname);
    return rc;
}

/* Is the part's file there with the content journaled at close? */
static bool file_intact(const mbq_cdc_batch_table *bt)
{
    char *sum = NULL;
    bool ok = mbq_file_sha256(&sum, bt->path) == 0 && mbq_streq(sum, bt->checksum);
    free(sum);
    if (!ok)
        mbq_error_clear();
    return ok;
}

/* Load and merge one table's part, with a new attempt (new job ids) after
 * a job BigQuery failed on its own side. */
static int apply_part(cdc_ctx *c, cdc_table *t, int64_t batch_id, mbq_cdc_batch_table *bt)
{
    job_retry jr = {0, mbq_monotonic_ms()};
    int rc;
    for (;;) {
        rc = 0;
        if (strcmp(bt->state, "closed") == 0)
            rc = load_part(c, t, batch_id, bt);
        if (rc == 0 && strcmp(bt->state, "loaded") == 0)
            rc = merge_part(c, t, batch_id, bt);
        if (rc == 0 || !job_retry_again(&c->s, &t->job, &jr, rc, "cdc-apply"))
            break;
        bt->attempt++;
        if ((rc = sync_set_str(&bt->state, "closed")) < 0)
            break;
    }
    return rc;
}

/* After the commit: the batch's files and staging tables are not needed. */
static void cleanup(cdc_ctx *c, const mbq_cdc_batch *b)
{
    const char *ds = c->s.cfg->bigquery.dataset;
    for (int i = 0; i < b->n_tables; i++) {
        const mbq_cdc_batch_table *bt = &b->tables[i];
        mbq_buf lname = MBQ_BUF_INIT;
        unlink(bt->path);
        if (mbq_bq_table_delete(c->s.bq, ds, bt->staging_table) < 0 ||
            last_name(&lname, bt) < 0 || mbq_bq_table_delete(c->s.bq, ds, lname.ptr) < 0) {
            mbq_log(MBQ_LOG_WARN, bt->table_name, "cdc",
                    "cannot remove staging table '%s' (it expires by itself): %s",
                    bt->staging_table, mbq_error_last());
            mbq_error_clear();
        }
        mbq_buf_free(&lname);
    }
}

int cdc_apply(cdc_ctx *c, mbq_cdc_batch *b, bool *abandoned)
{
    int rc = 0;
    *abandoned = false;
    for (int i = 0; i < b->n_tables; i++) {
        mbq_cdc_batch_table *bt = &b->tables[i];
        if (strcmp(bt->state, "closed") == 0 && !file_intact(bt)) {
            mbq_log(MBQ_LOG_WARN, bt->table_name, "cdc",
                    "batch %" PRId64 ": file '%s' is gone or changed: the batch is read again "
                    "from the binlog",
                    b->batch_id, bt->path);
            *abandoned = true;
            return mbq_journal_cdc_batch_abandon(c->s.j, b->batch_id, mbq_now_ms());
        }
    }
    for (int i = 0; i < b->n_tables && rc == 0; i++) {
        mbq_cdc_batch_table *bt = &b->tables[i];
        cdc_table *t = cdc_table_find(c, c->s.cfg->mysql.database, bt->table_name);
        if (!t) {
            rc = mbq_error_set(MBQ_ECONFIG,
                               "batch %" PRId64 " holds changes of table '%s', which is not "
                               "followed in cdc mode by this run: run 'mbq cdc' with it",
                               b->batch_id, bt->table_name);
            break;
        }
        if (strcmp(bt->state, "merged") == 0)
            continue;
        if ((rc = apply_part(c, t, b->batch_id, bt)) < 0)
            mbq_error_wrap(rc, "table '%s', batch %" PRId64 ": ", t->tc.name, b->batch_id);
    }
    if (rc < 0)
        return rc;
    mbq_fault_point("cdc.before_commit");
    int64_t now = mbq_now_ms();
    int64_t lag = b->last_event_ms > 0 && now > b->last_event_ms ? now - b->last_event_ms : 0;
    if ((rc = mbq_journal_cdc_batch_commit(c->s.j, b, lag, now)) < 0)
        return rc;
    mbq_fault_point("cdc.after_commit");
    mbq_log(MBQ_LOG_INFO, NULL, "cdc",
            "batch %" PRId64 " committed: %" PRId64 " row changes in %" PRId64
            " transaction(s), up to %s:%" PRId64,
            b->batch_id, b->rows, b->transactions, b->to_file, b->to_pos);
    cleanup(c, b);
    return 0;
}
