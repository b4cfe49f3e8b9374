/* The stage state for a staged file larger than one load job may take
 * (bigquery.max_load_file_size, below BigQuery's 4 GB per gzip file): the
 * file is split into parts, and each part is loaded by its own job into
 * the run's staging table, the first with WRITE_TRUNCATE and the others
 * with WRITE_APPEND. A merge then reads the staging table as usual; a
 * replace (first sync, full refresh) copies it over the target in one copy
 * job, so readers of the target see the old rows or the new ones, never a
 * part of them (a load job is atomic, a sequence of them is not).
 *
 * Journaled and resumable (sql/journal/003_load_parts.sql):
 *   split      the parts are written and fsync'd, then journaled in one
 *              transaction with rows, bytes, checksum and their job ids;
 *              only then is the staged file removed. A kill before the
 *              journal commit splits again (the same parts, overwritten).
 *   part k     its job id was journaled before submission, so a resumed
 *              run finds the job (409 / lookup) instead of loading the part
 *              twice; `loaded` is set once the job is DONE and holds the
 *              part's rows.
 *   copy       (replace) a deterministic job id journaled before it runs;
 *              copying the same staging table again leaves the same rows. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mbq/bq.h"
#include "mbq/error.h"
#include "mbq/fault.h"
#include "mbq/journal.h"
#include "mbq/log.h"
#include "mbq/split.h"
#include "mbq/util.h"
#include "sync_internal.h"
#include "mbq/banned.h"

bool mbq_parts_needed(sync_ctx *ctx, const table_job *t)
{
    if (t->run.staged_rows <= 0 || !ctx->j || t->preloaded)
        return false;
    if (t->run.staged_bytes > ctx->cfg->bigquery.max_load_file_bytes)
        return true;
    /* Parts journaled by an earlier try stay the way to load this file,
     * even if the setting changed since. */
    mbq_load_part *parts = NULL;
    int n = 0;
    if (mbq_journal_parts_get(ctx->j, &parts, &n, t->run.id) < 0) {
        mbq_error_clear();
        return false;
    }
    mbq_load_parts_free(parts, n);
    return n > 0;
}

void mbq_parts_discard(sync_ctx *ctx, table_job *t)
{
    mbq_load_part *parts = NULL;
    int n = 0;
    if (!ctx->j || !t->run.id || mbq_journal_parts_get(ctx->j, &parts, &n, t->run.id) < 0 ||
        n == 0) {
        mbq_error_clear();
        return;
    }
    mbq_split_remove(parts, n);
    if (mbq_journal_parts_set(ctx->j, t->run.id, NULL, 0) < 0)
        mbq_log(MBQ_LOG_WARN, t->tc->name, t->run.state, "cannot forget the load parts: %s",
                mbq_error_last());
    mbq_load_parts_free(parts, n);
}

/* mbq_<kind>_<run>_<table run>_<attempt>: as machine.c's ids, with the
 * part in the kind. */
static int part_job_id(char **out, const char *kind, int part, const table_job *t)
{
    mbq_buf b = MBQ_BUF_INIT;
    char k[32], trid[32], att[16];
    snprintf(k, sizeof k, part > 0 ? "%s_p%d" : "%s", kind, part);
    snprintf(trid, sizeof trid, "%" PRId64, t->run.id);
    snprintf(att, sizeof att, "%d", t->run.attempt);
    int rc = mbq_bq_job_id(&b, k, t->run.run_id, trid, att, (const char *)NULL);
    if (rc == 0 && !(*out = mbq_buf_detach(&b)))
        rc = MBQ_ENOMEM;
    mbq_buf_free(&b);
    return rc;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Split the staged file and journal its parts (each with its job id);
 * then the file itself is no longer needed. *mismatch: the file is not what
 * the extract wrote (damaged on disk): extract again rather than fail on
 * every run. */
static int split_staged(sync_ctx *ctx, table_job *t, mbq_load_part **parts, int *n,
                        bool *mismatch)
{
    mbq_split_options so = {t->run.staged_path, ends_with(t->run.staged_path, ".gz"),
                            ctx->cfg->bigquery.max_load_file_bytes, t->run.staged_rows,
                            t->run.staged_checksum};
    int rc = mbq_split_file(parts, n, mismatch, &so);
    for (int i = 0; rc == 0 && i < *n; i++)
        rc = part_job_id(&(*parts)[i].job_id, "mbq_load", (*parts)[i].part, t);
    if (rc == 0)
        rc = mbq_journal_parts_set(ctx->j, t->run.id, *parts, *n);
    if (rc < 0) {
        mbq_split_remove(*parts, *n);
        return rc;
    }
    mbq_log(MBQ_LOG_INFO, t->tc->name, "stage",
            "staged file of %" PRId64 " bytes split into %d parts of at most %" PRId64 " bytes",
            t->run.staged_bytes, *n, ctx->cfg->bigquery.max_load_file_bytes);
    if (unlink(t->run.staged_path) < 0)
        mbq_log(MBQ_LOG_WARN, t->tc->name, "stage", "cannot remove '%s' after the split",
                t->run.staged_path);
    return 0;
}

/* The staging table the parts go into; a replace gets one too. */
static int ensure_staging(sync_ctx *ctx, table_job *t, bool replace)
{
    const mbq_bigquery_config *bc = &ctx->cfg->bigquery;
    int rc;
    if (!t->run.staging_table) {
        mbq_buf st = MBQ_BUF_INIT;
        if ((rc = mbq_buf_printf(&st, "%s__mbq_stage_%" PRId64 "_%d", t->tc->target, t->run.id,
                                 t->run.attempt)) < 0)
            return rc;
        t->run.staging_table = mbq_buf_detach(&st);
        if (!t->run.staging_table)
            return MBQ_ENOMEM;
        /* Journaled before it exists: the commit's cleanup drops it. */
        if ((rc = mbq_journal_table_run_save(ctx->j, &t->run)) < 0)
            return rc;
    }
    mbq_bq_table_options to = MBQ_BQ_TABLE_OPTIONS_INIT;
    mbq_bq_table_info *target = NULL;
    to.expiration_ms = bc->staging_expiration_ms;
    to.description = "mbq staging table: one extract loaded in parts, dropped after use";
    /* BigQuery copies a table into a partitioned or clustered one only when
     * their partitioning and clustering match: a replace's staging table
     * takes the target's layout. (A merge's staging table is only read.) */
    if (replace) {
        if ((rc = mbq_bq_table_get(&target, ctx->bq, bc->dataset, t->tc->target)) < 0)
            return rc;
        to.partition_type = target->partition_type;
        to.partition_field = target->partition_field;
        to.clustering = (const char *const *)target->clustering;
        to.n_clustering = target->n_clustering;
    }
    rc = mbq_bq_table_create(ctx->bq, bc->dataset, t->run.staging_table,
                             replace ? t->load_schema : t->stage_schema, &to);
    mbq_bq_table_info_free(target);
    return rc == MBQ_EEXISTS ? (mbq_error_clear(), 0) : rc;
}

/* Does the job that loaded part i hold exactly its rows? A job found by
 * its id without outputRows is checked by counting the staging table,
 * which then holds parts 1..i. */
static int check_part(sync_ctx *ctx, const table_job *t, const mbq_bq_job *job,
                      const mbq_load_part *parts, int i)
{
    int64_t want = parts[i].rows, got = job->output_rows;
    if (got < 0 && !job->existed)
        return 0;
    if (got < 0) {
        mbq_bq_table_info *info = NULL;
        int rc = mbq_bq_table_get(&info, ctx->bq, ctx->cfg->bigquery.dataset,
                                  t->run.staging_table);
        if (rc < 0)
            return rc;
        got = info->num_rows;
        mbq_bq_table_info_free(info);
        want = 0;
        for (int k = 0; k <= i; k++)
            want += parts[k].rows;
    }
    if (got != want)
        return mbq_error_set(MBQ_EBQ, "load job '%s' of part %d wrote %" PRId64
                                      " rows where %" PRId64 " were expected",
                             job->job_id, parts[i].part, got, want);
    return 0;
}

/* Load part i (not loaded yet) under its journaled job id. */
static int load_part(sync_ctx *ctx, table_job *t, mbq_load_part *parts, int i, bool replace)
{
    int rc = 0;
    mbq_bq_job *job = NULL;
    mbq_load_part *p = &parts[i];
    mbq_bq_load_options lo = MBQ_BQ_LOAD_OPTIONS_INIT;
    lo.dataset = ctx->cfg->bigquery.dataset;
    lo.table = t->run.staging_table;
    lo.path = p->path;
    lo.schema = replace ? t->load_schema : t->stage_schema;
    /* The first part empties what an earlier attempt may have left. */
    lo.write_disposition = i == 0 ? MBQ_BQ_WRITE_TRUNCATE : MBQ_BQ_WRITE_APPEND;
    lo.create_disposition = MBQ_BQ_CREATE_IF_NEEDED;
    mbq_fault_point("stage.part_submit");
    for (int tries = 0;; tries++) {
        if ((rc = mbq_bq_load_file(&job, ctx->bq, p->job_id, &lo)) < 0)
            goto done;
        if ((rc = check_part(ctx, t, job, parts, i)) == 0)
            break;
        if (rc != MBQ_EBQ || !job->existed || tries > 0)
            goto done;
        /* A job found by its id without this part's rows is an upload cut
         * short (the emulator registers one; BigQuery does not): load the
         * part once more under a new id, journaled first. */
        mbq_log(MBQ_LOG_WARN, t->tc->name, "stage", "%s: loading the part again under a new id",
                mbq_error_last());
        mbq_bq_job_free(job);
        job = NULL;
        free(p->job_id);
        p->job_id = NULL;
        t->run.attempt++;
        if ((rc = part_job_id(&p->job_id, "mbq_load", p->part, t)) < 0 ||
            (rc = mbq_journal_table_run_save(ctx->j, &t->run)) < 0 ||
            (rc = mbq_journal_part_update(ctx->j, t->run.id, p->part, p->job_id, false)) < 0)
            goto done;
    }
    mbq_fault_point("stage.part_loaded");
    if ((rc = mbq_journal_part_update(ctx->j, t->run.id, p->part, p->job_id, true)) < 0)
        goto done;
    p->loaded = true;
    mbq_log(MBQ_LOG_INFO, t->tc->name, "stage",
            "loaded part %d of %" PRId64 " rows into '%s'%s", p->part, p->rows, lo.table,
            job->existed ? " (job found from an earlier try)" : "");
    mbq_fault_point("stage.part_done");
done:
    mbq_bq_job_free(job);
    return rc;
}

/* replace: the staging table, now complete, over the target in one job. */
static int copy_over_target(sync_ctx *ctx, table_job *t)
{
    int rc;
    mbq_bq_job *job = NULL;
    if (!t->run.merge_job_id) {
        /* Journaled before the job runs (the field holds the job that moves
         * the staging table into the target: a MERGE, or this copy). */
        if ((rc = part_job_id(&t->run.merge_job_id, "mbq_copy", 0, t)) < 0 ||
            (rc = mbq_journal_table_run_save(ctx->j, &t->run)) < 0)
            return rc;
    }
    /* The same disposition as a replace in one load (machine.c). */
    rc = mbq_bq_copy_table(&job, ctx->bq, t->run.merge_job_id, ctx->cfg->bigquery.dataset,
                           t->run.staging_table, t->tc->target, MBQ_BQ_WRITE_TRUNCATE);
    if (rc == 0)
        mbq_log(MBQ_LOG_INFO, t->tc->name, "stage",
                "replaced '%s' with the %" PRId64 " rows of '%s' in one copy job%s",
                t->tc->target, t->run.staged_rows, t->run.staging_table,
                job->existed ? " (job found from an earlier try)" : "");
    mbq_bq_job_free(job);
    return rc;
}

int mbq_parts_stage(sync_ctx *ctx, table_job *t, bool *reextract)
{
    int rc, n = 0;
    mbq_load_part *parts = NULL;
    bool replace = strcmp(t->run.load_mode, "replace") == 0;
    *reextract = false;
    if ((rc = mbq_journal_parts_get(ctx->j, &parts, &n, t->run.id)) < 0)
        goto done;
    if (n == 0 && !mbq_file_exists(t->run.staged_path)) {
        mbq_log(MBQ_LOG_WARN, t->tc->name, "stage",
                "staged file '%s' is missing and was never split: extracting again",
                t->run.staged_path);
        *reextract = true;
        goto done;
    }
    if (n == 0) {
        bool mismatch = false;
        rc = split_staged(ctx, t, &parts, &n, &mismatch);
        if (rc < 0 && mismatch) {
            mbq_log(MBQ_LOG_WARN, t->tc->name, "stage", "%s: extracting again",
                    mbq_error_last());
            mbq_error_clear();
            *reextract = true;
            rc = 0;
            goto done;
        }
        if (rc < 0)
            goto done;
    }
    if ((rc = ensure_staging(ctx, t, replace)) < 0)
        goto done;
    for (int i = 0; i < n; i++) {
        if (parts[i].loaded)
            continue;
        if (!mbq_file_exists(parts[i].path)) {
            mbq_log(MBQ_LOG_WARN, t->tc->name, "stage",
                    "part file '%s' is missing and was never loaded: extracting again",
                    parts[i].path);
            *reextract = true;
            goto done;
        }
        if ((rc = load_part(ctx, t, parts, i, replace)) < 0)
            goto done;
    }
    if (replace)
        rc = copy_over_target(ctx, t);
done:
    mbq_load_parts_free(parts, n);
    return rc;
}
