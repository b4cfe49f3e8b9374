/* A cdc table's schema-check and snapshot (cdc_internal.h).
 *
 * The snapshot hand-off: one extract in START TRANSACTION WITH CONSISTENT
 * SNAPSHOT reads the table and, inside the same snapshot, its binlog
 * position (mysql_extract.c, want_binlog_pos). The file, the position and
 * the id of the load job that replaces the target with it are journaled
 * ('snapshot') before the job is submitted; once it is DONE the table is
 * 'streaming'. A kill before the load resumes with the same file and job id
 * (BigQuery runs a job id once), a kill after it finds the job DONE. If the
 * file is gone, a new snapshot is taken under a new attempt: the old load,
 * if it ever ran, held an older snapshot whose position is forgotten with it. */
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

/* Soft deletes' two columns on the target (idempotent). A WRITE_TRUNCATE
 * load replaces the target's schema with the job's, so this runs again
 * after a snapshot's load. */
static int ensure_soft_columns(cdc_ctx *c, cdc_table *t)
{
    mbq_bq_schema *s = NULL;
    int rc = mbq_bq_schema_new(&s);
    if (rc == 0)
        rc = mbq_bq_schema_add(s, MBQ_DELETED_COLUMN, "BOOL", MBQ_BQ_NULLABLE,
                               "mbq: TRUE once the row was deleted in MySQL");
    if (rc == 0)
        rc = mbq_bq_schema_add(s, MBQ_DELETED_AT_COLUMN, "TIMESTAMP", MBQ_BQ_NULLABLE,
                               "mbq: when the delete was applied");
    if (rc == 0)
        rc = mbq_bq_table_add_columns(c->s.bq, NULL, c->s.cfg->bigquery.dataset, t->tc.target, s);
    mbq_bq_schema_free(s);
    return rc;
}

int cdc_schema_check(cdc_ctx *c, cdc_table *t)
{
    int rc;
    mbq_table_state_clear(&t->job.committed);
    if ((rc = mbq_journal_table_get(c->s.j, &t->job.committed, t->tc.name)) < 0)
        return rc;
    t->job.tc = &t->tc;
    if ((rc = mbq_schema_check(&c->s, &t->job)) < 0)
        return rc;
    /* A MERGE by a key that is not unique would fold distinct rows into
     * one; the snapshot path's full refresh does not need one, cdc does. */
    bool unique = false;
    if ((rc = mbq_mysql_key_is_unique(&unique, c->s.my, t->job.src,
                                      (const char *const *)t->tc.primary_key,
                                      t->tc.n_primary_key)) < 0)
        return rc;
    if (!unique)
        return mbq_error_set(MBQ_ESCHEMA,
                             "table '%s': primary_key is not guaranteed unique in MySQL (no "
                             "PRIMARY KEY or UNIQUE index on exactly these NOT NULL columns): "
                             "change data capture applies changes by key and needs one",
                             t->tc.name);
    if (t->soft_deletes && (rc = ensure_soft_columns(c, t)) < 0)
        return rc;
    return cdc_table_prepare(t);
}

static int snap_job_id(char **out, const mbq_cdc_table *ct)
{
    mbq_buf b = MBQ_BUF_INIT;
    char pos[32], att[16];
    snprintf(pos, sizeof pos, "%" PRId64, ct->snapshot_pos);
    snprintf(att, sizeof att, "%d", ct->snapshot_attempt);
    char uuid[37];
    mbq_uuid(uuid); /* a journal started over never meets an old job id */
    int rc = mbq_bq_job_id(&b, "mbq_cdc_snapshot", ct->table_name, ct->snapshot_file, pos, att,
                           uuid, (const char *)NULL);
    if (rc == 0 && !(*out = mbq_buf_detach(&b)))
        rc = MBQ_ENOMEM;
    mbq_buf_free(&b);
    return rc;
}

/* Extract the table in one snapshot and journal it with its position. */
static int take(cdc_ctx *c, cdc_table *t, mbq_cdc_table *ct)
{
    mbq_extract_result res = {0};
    mbq_buf path = MBQ_BUF_INIT;
    int rc;
    if ((rc = mbq_buf_printf(&path, "%s/cdc_snapshot_%s_%d.ndjson%s", c->s.staging_dir,
                             t->tc.name, ct->snapshot_attempt,
                             c->s.cfg->bigquery.compress ? ".gz" : "")) < 0)
        goto done;
    mbq_extract_options eo = MBQ_EXTRACT_OPTIONS_INIT;
    eo.schema = t->job.src;
    eo.pk = (const char *const *)t->tc.primary_key;
    eo.n_pk = t->tc.n_primary_key;
    eo.path = path.ptr;
    eo.compress = c->s.cfg->bigquery.compress;
    eo.want_binlog_pos = true;
    if ((rc = mbq_mysql_extract(&res, c->s.my, &eo)) < 0)
        goto done;
    free(ct->snapshot_file);
    free(ct->snapshot_path);
    free(ct->snapshot_checksum);
    free(ct->snapshot_job_id);
    ct->snapshot_file = mbq_strdup(res.binlog_file);
    ct->snapshot_pos = (int64_t)res.binlog_pos;
    ct->snapshot_path = res.rows > 0 ? mbq_strdup(path.ptr) : NULL;
    ct->snapshot_checksum = res.checksum ? mbq_strdup(res.checksum) : NULL;
    ct->snapshot_rows = (int64_t)res.rows;
    ct->snapshot_job_id = NULL;
    if (!ct->snapshot_file || (res.rows > 0 && !ct->snapshot_path)) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    if ((rc = snap_job_id(&ct->snapshot_job_id, ct)) < 0 ||
        (rc = mbq_journal_cdc_snapshot_taken(c->s.j, ct, mbq_now_ms())) < 0)
        goto done;
    mbq_log(MBQ_LOG_INFO, t->tc.name, "cdc-snapshot",
            "snapshot of %" PRId64 " rows at binlog %s:%" PRId64, ct->snapshot_rows,
            ct->snapshot_file, ct->snapshot_pos);
    mbq_fault_point("cdc.snapshot_taken");
done:
    if (rc < 0 && res.file_written)
        unlink(path.ptr);
    mbq_extract_result_free(&res);
    mbq_buf_free(&path);
    return rc;
}

/* Replace the target's rows with the snapshot (an empty table empties it). */
static int load(cdc_ctx *c, cdc_table *t, const mbq_cdc_table *ct)
{
    const mbq_bigquery_config *bc = &c->s.cfg->bigquery;
    mbq_bq_job *job = NULL;
    mbq_buf sql = MBQ_BUF_INIT;
    int rc;
    if (ct->snapshot_path) {
        mbq_bq_load_options lo = MBQ_BQ_LOAD_OPTIONS_INIT;
        lo.dataset = bc->dataset;
        lo.table = t->tc.target;
        lo.path = ct->snapshot_path;
        lo.schema = t->job.load_schema;
        lo.write_disposition = MBQ_BQ_WRITE_TRUNCATE;
        lo.create_disposition = MBQ_BQ_CREATE_NEVER;
        rc = mbq_bq_load_file(&job, c->s.bq, ct->snapshot_job_id, &lo);
    } else {
        /* DELETE with a WHERE clause is required by GoogleSQL DML
         * ("DELETE statements must have a WHERE clause"). */
        if ((rc = mbq_buf_puts(&sql, "DELETE FROM ")) == 0 &&
            (rc = mbq_bq_table_ref(&sql, &c->s, t->tc.target)) == 0 &&
            (rc = mbq_buf_puts(&sql, " WHERE TRUE")) == 0)
            rc = mbq_bq_query(&job, c->s.bq, ct->snapshot_job_id, sql.ptr, NULL);
    }
    mbq_bq_job_free(job);
    mbq_buf_free(&sql);
    return rc;
}

/* Is the journaled snapshot still loadable (its file there and intact)? */
static bool snapshot_intact(const mbq_cdc_table *ct)
{
    if (!ct->snapshot_file || !ct->snapshot_job_id)
        return false;
    if (!ct->snapshot_path)
        return true; /* an empty table: nothing to read back */
    char *sum = NULL;
    bool ok = mbq_file_sha256(&sum, ct->snapshot_path) == 0 &&
              mbq_streq(sum, ct->snapshot_checksum);
    free(sum);
    if (!ok)
        mbq_error_clear();
    return ok;
}

int cdc_snapshot(cdc_ctx *c, cdc_table *t)
{
    mbq_cdc_table ct = {0};
    int rc = mbq_journal_cdc_table_get(c->s.j, &ct, t->tc.name);
    if (rc < 0)
        goto done;
    if (mbq_streq(ct.state, "streaming"))
        goto streaming;
    if (!mbq_streq(ct.state, "snapshot") || !snapshot_intact(&ct)) {
        if (mbq_streq(ct.state, "snapshot"))
            ct.snapshot_attempt++;
        if ((rc = take(c, t, &ct)) < 0)
            goto done;
    } else {
        mbq_log(MBQ_LOG_INFO, t->tc.name, "cdc-snapshot",
                "resuming the snapshot at binlog %s:%" PRId64 " (job %s)", ct.snapshot_file,
                ct.snapshot_pos, ct.snapshot_job_id);
    }
    if ((rc = load(c, t, &ct)) < 0)
        goto done;
    mbq_fault_point("cdc.snapshot_loaded");
    if (t->soft_deletes && (rc = ensure_soft_columns(c, t)) < 0)
        goto done;
    if ((rc = mbq_journal_cdc_snapshot_done(c->s.j, t->tc.name, mbq_now_ms())) < 0)
        goto done;
    if (ct.snapshot_path)
        unlink(ct.snapshot_path);
streaming:
    if (!ct.snapshot_file) {
        rc = mbq_error_set(MBQ_EJOURNAL, "table '%s': cdc state '%s' without a snapshot position",
                           t->tc.name, ct.state);
        goto done;
    }
    snprintf(t->snapshot.file, sizeof t->snapshot.file, "%s", ct.snapshot_file);
    t->snapshot.pos = (uint64_t)ct.snapshot_pos;
    t->streaming = true;
done:
    mbq_cdc_table_clear(&ct);
    return rc;
}
