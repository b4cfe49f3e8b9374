/* The later steps of the per-table state machine (see machine.c and
 * mbq/machine.h): stage (the load job of the extracted file into the
 * staging table, or straight into the target for a replace), merge (the
 * MERGE of the staged rows into the target, and what happens when the
 * staging table is gone), and commit-metadata (cursor and run committed
 * in one local transaction, then cleanup). Each step reports an event that
 * machine.c turns into a transition. */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mbq/bq.h"
#include "mbq/error.h"
#include "mbq/fault.h"
#include "mbq/http.h"
#include "mbq/journal.h"
#include "mbq/log.h"
#include "mbq/machine.h"
#include "mbq/mysql_source.h"
#include "mbq/pipeline.h"
#include "mbq/progress.h"
#include "mbq/util.h"
#include "sync_internal.h"
#include "mbq/banned.h"

/* A job id that must not be used again (its job failed, or an upload cut
 * short may have left it behind): bump the attempt and derive a new one. */
static int renew_job_id(char **id, const char *kind, table_job *t)
{
    char *fresh = NULL;
    t->run.attempt++;
    int rc = make_job_id(&fresh, kind, t);
    if (rc == 0) {
        free(*id);
        *id = fresh;
    }
    return rc;
}

/* A rebuild's load replaced the target's schema (a WRITE_TRUNCATE load sets
 * it); prove it before the cursor is committed, so a target that kept its
 * old types (the emulator ignores a load's schema, README divergences) is
 * never reported as rebuilt. */
static int verify_rebuilt_schema(sync_ctx *ctx, table_job *t)
{
    mbq_bq_table_info *info = NULL;
    int rc = mbq_bq_table_get(&info, ctx->bq, ctx->cfg->bigquery.dataset, t->tc->target);
    for (size_t i = 0; rc == 0 && i < t->load_schema->n_fields; i++) {
        const mbq_bq_field *want = &t->load_schema->fields[i];
        const mbq_bq_field *have = mbq_bq_schema_find(info->schema, want->name);
        if (!have || strcmp(have->type, want->type) != 0)
            rc = mbq_error_set(MBQ_ESCHEMA,
                               "table '%s': the rebuild loaded every row, but BigQuery kept "
                               "column '%s' as %s instead of %s; the cursor is not committed. "
                               "Drop the target '%s' and run 'mbq-state reset %s --full --yes'",
                               t->tc->name, want->name, have ? have->type : "(missing)",
                               want->type, t->tc->target, t->tc->name);
    }
    mbq_bq_table_info_free(info);
    return rc;
}

/* A WRITE_TRUNCATE_DATA job found by its id (an earlier, interrupted try)
 * that reports no row count: the target's row count cannot prove it either
 * (a warehouse that appended, or an upload cut short that loaded nothing,
 * may leave any count), so the rows are loaded again with WRITE_TRUNCATE.
 * BigQuery always reports outputRows: this is the emulator's case only. */
static bool unproven_truncate_data(const mbq_bq_job *job, const mbq_bq_load_options *lo)
{
    return lo->write_disposition == MBQ_BQ_WRITE_TRUNCATE_DATA && job->existed &&
           job->output_rows < 0;
}

/* Load the staged file as the run's load job. A job that fails on
 * BigQuery's side runs again from the same file under a new job id,
 * journaled before it is submitted (never a new extract for a BigQuery
 * hiccup); a job found by its id that does not hold these rows is an upload
 * cut short (the emulator registers one; BigQuery does not): loaded once
 * more under a new id. */
static int stage_load(sync_ctx *ctx, table_job *t, const mbq_bq_load_options *lo,
                      mbq_bq_job **job, const char *kind)
{
    int rc;
    job_retry jr = {0, mbq_monotonic_ms()};
    bool reloaded_cut = false;
    for (;;) {
        mbq_bq_job_free(*job);
        *job = NULL;
        rc = mbq_bq_load_file(job, ctx->bq, t->run.load_job_id, lo);
        if (rc == 0 && unproven_truncate_data(*job, lo))
            return 0; /* the caller loads again with WRITE_TRUNCATE */
        if (rc == 0 && (rc = check_loaded_rows(ctx, t, *job, lo->table)) == 0)
            return 0;
        if (job_retry_again(ctx, t, &jr, rc, "stage")) {
            /* the same file, a new job id */
        } else if (rc == MBQ_EBQ && *job && (*job)->existed && !reloaded_cut) {
            reloaded_cut = true;
            mbq_log(MBQ_LOG_WARN, t->tc->name, "stage", "%s: loading again under a new job id",
                    mbq_error_last());
        } else {
            return rc;
        }
        if ((rc = renew_job_id(&t->run.load_job_id, kind, t)) < 0 ||
            (rc = mbq_journal_table_run_save(ctx->j, &t->run)) < 0)
            return rc;
    }
}

/* After a WRITE_TRUNCATE_DATA load: does the target hold exactly the staged
 * rows? A warehouse that does not know the disposition (goccy emulator
 * v0.8.1 appends, README divergences) does not replace them. */
static int check_truncated(sync_ctx *ctx, table_job *t, bool *replaced)
{
    mbq_bq_table_info *info = NULL;
    *replaced = true;
    int rc = mbq_bq_table_get(&info, ctx->bq, ctx->cfg->bigquery.dataset, t->tc->target);
    if (rc == 0 && info->num_rows >= 0 && info->num_rows != t->run.staged_rows) {
        *replaced = false;
        mbq_log(MBQ_LOG_WARN, t->tc->name, "stage",
                "'%s' holds %" PRId64 " rows after a WRITE_TRUNCATE_DATA load of %" PRId64
                ": the warehouse did not replace the rows (the local emulator does not know "
                "WRITE_TRUNCATE_DATA); loading again with WRITE_TRUNCATE, whose schema carries "
                "the target's field definitions",
                t->tc->target, info->num_rows, t->run.staged_rows);
    }
    mbq_bq_table_info_free(info);
    return rc;
}

/* stage: load the staged file into the staging table (merge) or straight
 * into the target (replace), as a job with a deterministic id. */
int step_stage(sync_ctx *ctx, table_job *t, step_event *ev)
{
    int rc = 0;
    mbq_bq_job *job = NULL;
    mbq_buf sql = MBQ_BUF_INIT;
    const mbq_bigquery_config *bc = &ctx->cfg->bigquery;
    bool replace = strcmp(t->run.load_mode, "replace") == 0;
    const char *kind = replace ? "mbq_replace" : "mbq_load";
    int64_t t0 = mbq_monotonic_ms();

    if (t->run.staged_rows == 0) {
        /* A full refresh of a source that is now empty: empty the target,
         * idempotently, under the stage's job id. */
        if ((rc = mbq_buf_puts(&sql, "DELETE FROM ")) < 0 ||
            (rc = mbq_bq_table_ref(&sql, ctx, t->tc->target)) < 0 ||
            (rc = mbq_buf_puts(&sql, " WHERE TRUE")) < 0)
            goto done;
        job_retry jr = {0, mbq_monotonic_ms()};
        while ((rc = mbq_bq_query(&job, ctx->bq, t->run.load_job_id, sql.ptr, NULL)) < 0 &&
               job_retry_again(ctx, t, &jr, rc, "stage")) {
            if ((rc = renew_job_id(&t->run.load_job_id, kind, t)) < 0 ||
                (rc = mbq_journal_table_run_save(ctx->j, &t->run)) < 0)
                goto done;
        }
        if (rc < 0)
            goto failed_job;
        *ev = EV_REPLACE;
        goto done;
    }
    if (mbq_parts_needed(ctx, t)) {
        bool again = false;
        if ((rc = mbq_parts_stage(ctx, t, &again)) < 0)
            goto failed_job;
        if (again) {
            *ev = EV_REEXTRACT;
            goto done;
        }
        if (replace && t->rebuild && (rc = verify_rebuilt_schema(ctx, t)) < 0)
            goto done;
        goto loaded;
    }
    if (!mbq_file_exists(t->run.staged_path)) {
        /* The file is gone (cleaned by hand, another disk): if its load job
         * ran, the data is in BigQuery; otherwise extract again. */
        mbq_bq_job *prior = NULL;
        rc = mbq_bq_job_get(&prior, ctx->bq, t->run.load_job_id, NULL);
        bool loaded = rc == 0 && prior && prior->state && strcmp(prior->state, "DONE") == 0 &&
                      !prior->error_reason;
        mbq_bq_job_free(prior);
        if (rc < 0 && rc != MBQ_ENOTFOUND)
            goto done;
        rc = 0;
        if (!loaded) {
            mbq_log(MBQ_LOG_WARN, t->tc->name, "stage",
                    "staged file '%s' is missing and was never loaded: extracting again",
                    t->run.staged_path);
            *ev = EV_REEXTRACT;
            goto done;
        }
    } else {
        if (!replace) {
            mbq_bq_table_options to = MBQ_BQ_TABLE_OPTIONS_INIT;
            to.expiration_ms = bc->staging_expiration_ms;
            to.description = "mbq staging table: one extract, dropped after its MERGE";
            rc = mbq_bq_table_create(ctx->bq, bc->dataset, t->run.staging_table,
                                     t->stage_schema, &to);
            if (rc < 0 && rc != MBQ_EEXISTS)
                goto done;
        }
        mbq_bq_load_options lo = MBQ_BQ_LOAD_OPTIONS_INIT;
        lo.dataset = bc->dataset;
        lo.table = replace ? t->tc->target : t->run.staging_table;
        lo.path = t->run.staged_path;
        lo.schema = replace ? t->load_schema : t->stage_schema;
        /* A staging table holds one extract and nothing users care about. */
        lo.write_disposition = replace ? replace_disposition(t) : MBQ_BQ_WRITE_TRUNCATE;
        lo.create_disposition = replace ? MBQ_BQ_CREATE_NEVER : MBQ_BQ_CREATE_IF_NEEDED;
        if (!t->preloaded && (rc = stage_load(ctx, t, &lo, &job, kind)) < 0)
            goto failed_job;
        bool replaced = !(job && unproven_truncate_data(job, &lo));
        if (replaced && lo.write_disposition == MBQ_BQ_WRITE_TRUNCATE_DATA &&
            (rc = check_truncated(ctx, t, &replaced)) < 0)
            goto done;
        if (!replaced) {
            t->truncate_data_refused = true;
            t->preloaded = false;
            lo.write_disposition = MBQ_BQ_WRITE_TRUNCATE;
            if ((rc = renew_job_id(&t->run.load_job_id, kind, t)) < 0 ||
                (rc = mbq_journal_table_run_save(ctx->j, &t->run)) < 0)
                goto done;
            if ((rc = stage_load(ctx, t, &lo, &job, kind)) < 0)
                goto failed_job;
        }
        if (t->rebuild && (rc = verify_rebuilt_schema(ctx, t)) < 0)
            goto done;
        mbq_log(MBQ_LOG_INFO, t->tc->name, "stage", "loaded %" PRId64 " rows into '%s'%s",
                t->run.staged_rows, lo.table,
                t->preloaded       ? " (streamed while extracting)"
                : job->existed     ? " (job found from an earlier try)"
                                   : "");
    }
loaded:
    if (replace)
        t->rows_synced = t->run.staged_rows;
    if (!replace && (rc = make_job_id(&t->run.merge_job_id, "mbq_merge", t)) < 0)
        goto done;
    *ev = replace ? EV_REPLACE : EV_MERGE;
    goto done;
failed_job:
    if (rc == MBQ_EBQ && mbq_bq_job_reason_transient(mbq_bq_job_error_reason(ctx->bq))) {
        /* BigQuery's side failed the job more often than this run waits
         * for: the next run loads the same file again, under a new job id
         * (the failed one would only be found again). */
        renew_job_id(&t->run.load_job_id, kind, t);
    } else if (rc == MBQ_EBQ) {
        /* BigQuery refused these rows: the next run re-extracts (attempt
         * bumped by the extract) and loads under a new job id. */
        mbq_state back = MBQ_ST_EXTRACT;
        sync_set_str(&t->run.state, mbq_state_name(back));
    }
done:
    t->run.t_stage_ms += mbq_monotonic_ms() - t0;
    mbq_bq_job_free(job);
    mbq_buf_free(&sql);
    return rc;
}

/* merge: upsert the staging table into the target by primary key; the row
 * with the later cursor wins, so a replayed older snapshot never overwrites
 * newer data. `range` (NULL = none) limits both clauses to the staged rows
 * of some partitions (merge_ranges.c). */
static int build_merge_sql(mbq_buf *sql, const sync_ctx *ctx, const table_job *t,
                           const char *range)
{
    int rc = 0;
    const mbq_table_schema *s = t->src;
    const mbq_column *cur = t->tc->updated_column
                                ? mbq_table_schema_column(s, t->tc->updated_column)
                                : NULL;
#define P(x)                                                                                       \
    do {                                                                                           \
        if ((rc = (x)) < 0)                                                                        \
            return rc;                                                                             \
    } while (0)
    P(mbq_buf_puts(sql, "MERGE "));
    P(mbq_bq_table_ref(sql, ctx, t->tc->target));
    P(mbq_buf_puts(sql, " AS T USING "));
    P(mbq_bq_table_ref(sql, ctx, t->run.staging_table));
    P(mbq_buf_puts(sql, " AS S ON "));
    for (size_t i = 0; i < t->tc->n_primary_key; i++) {
        const mbq_column *c = mbq_table_schema_column(s, t->tc->primary_key[i]);
        if (!c)
            return mbq_error_set(MBQ_ESCHEMA, "table '%s': primary key column '%s' is gone",
                                 t->tc->name, t->tc->primary_key[i]);
        P(mbq_buf_puts(sql, i ? " AND T." : "T."));
        P(mbq_buf_quote_bq_ident(sql, c->bq_name));
        P(mbq_buf_puts(sql, " = S."));
        P(mbq_buf_quote_bq_ident(sql, c->bq_name));
    }
    P(mbq_buf_puts(sql, " WHEN MATCHED"));
    if (range)
        P(mbq_buf_printf(sql, " AND (%s)", range));
    if (cur) {
        P(mbq_buf_puts(sql, " AND (T."));
        P(mbq_buf_quote_bq_ident(sql, cur->bq_name));
        P(mbq_buf_puts(sql, " IS NULL OR S."));
        P(mbq_buf_quote_bq_ident(sql, cur->bq_name));
        P(mbq_buf_puts(sql, " >= T."));
        P(mbq_buf_quote_bq_ident(sql, cur->bq_name));
        P(mbq_buf_puts(sql, ")"));
    }
    P(mbq_buf_puts(sql, " THEN UPDATE SET "));
    for (size_t i = 0; i < s->n_columns; i++) {
        P(mbq_buf_puts(sql, i ? ", " : ""));
        P(mbq_buf_quote_bq_ident(sql, s->columns[i].bq_name));
        P(mbq_buf_puts(sql, " = S."));
        P(mbq_buf_quote_bq_ident(sql, s->columns[i].bq_name));
    }
    /* Columns dropped in MySQL stay in the target with their history, and
     * an updated row no longer has a value for them. */
    for (size_t i = 0; t->load_schema && i < t->load_schema->n_fields; i++) {
        const char *name = t->load_schema->fields[i].name;
        if (mbq_bq_schema_find(t->stage_schema, name))
            continue;
        P(mbq_buf_puts(sql, ", "));
        P(mbq_buf_quote_bq_ident(sql, name));
        P(mbq_buf_puts(sql, " = NULL"));
    }
    P(mbq_buf_puts(sql, " WHEN NOT MATCHED"));
    if (range)
        P(mbq_buf_printf(sql, " AND (%s)", range));
    P(mbq_buf_puts(sql, " THEN INSERT ("));
    for (size_t i = 0; i < s->n_columns; i++) {
        P(mbq_buf_puts(sql, i ? ", " : ""));
        P(mbq_buf_quote_bq_ident(sql, s->columns[i].bq_name));
    }
    P(mbq_buf_puts(sql, ") VALUES ("));
    for (size_t i = 0; i < s->n_columns; i++) {
        P(mbq_buf_puts(sql, i ? ", S." : "S."));
        P(mbq_buf_quote_bq_ident(sql, s->columns[i].bq_name));
    }
    P(mbq_buf_puts(sql, ")"));
#undef P
    return rc;
}

/* The MERGE failed and its staging table is gone: the staging table
 * expired before the MERGE ran (a run resumed after
 * bigquery.staging_expiration, BigQuery deletes a table at its
 * expirationTime: https://cloud.google.com/bigquery/docs/managing-tables#updating_a_tables_expiration_time)
 * or was dropped. Retrying the MERGE would fail on every run; the rows are
 * still in the staged file when it is intact (its checksum is the
 * extract's), so stage loads it again, else extract takes a new snapshot.
 * The load needs a new job id: the old one is a DONE job whose rows went
 * with the table. Journaled as an event, and by the transition. */
static int staging_lost(sync_ctx *ctx, table_job *t, step_event *ev)
{
    char *sum = NULL;
    int rc = 0;
    /* The checksum is the NDJSON's, read through zlib, which stops at the
     * end of the gzip stream and ignores bytes appended after it: the file's
     * size on disk must be the extract's too. */
    struct stat sb;
    bool intact = t->run.staged_path && stat(t->run.staged_path, &sb) == 0 &&
                  (int64_t)sb.st_size == t->run.staged_bytes &&
                  mbq_file_sha256(&sum, t->run.staged_path) == 0 &&
                  mbq_streq(sum, t->run.staged_checksum);
    free(sum);
    mbq_log(MBQ_LOG_WARN, t->tc->name, "merge",
            "staging table '%s' is gone (expired?): %s", t->run.staging_table,
            intact ? "loading the staged file again" : "the staged file is gone or changed: "
                                                       "extracting again");
    mbq_event e = {0};
    e.run_id = (char *)ctx->run_id;
    e.table_name = (char *)t->tc->name;
    e.kind = "staging.missing";
    e.action = intact ? "restage" : "re-extract";
    e.detail = t->run.staging_table;
    if ((rc = mbq_journal_event_add(ctx->j, &e)) < 0)
        return rc;
    if (!intact) {
        *ev = EV_REEXTRACT;
        return 0;
    }
    /* Parts loaded in parts went with the table too: split again, under the
     * new attempt's job ids. */
    mbq_parts_discard(ctx, t);
    if ((rc = renew_job_id(&t->run.load_job_id, "mbq_load", t)) < 0)
        return rc;
    free(t->run.merge_job_id);
    t->run.merge_job_id = NULL;
    *ev = EV_RESTAGE;
    return 0;
}

/* One MERGE job (of the whole staging table, or of a partition range). */
static int merge_once(sync_ctx *ctx, table_job *t, const char *job_id, const char *range,
                      int64_t *changed, bool *existed)
{
    mbq_buf sql = MBQ_BUF_INIT;
    mbq_bq_job *job = NULL;
    int rc = build_merge_sql(&sql, ctx, t, range);
    if (rc == 0)
        rc = mbq_bq_query(&job, ctx->bq, job_id, sql.ptr, NULL);
    if (rc == 0) {
        *changed += job->dml_affected_rows >= 0 ? job->dml_affected_rows : 0;
        *existed = *existed || job->existed;
    }
    mbq_bq_job_free(job);
    mbq_buf_free(&sql);
    return rc;
}

/* Every MERGE of the run: one job, or one per partition range (their ids
 * derive from the attempt, so a renewed attempt renews them all). A range
 * merged again after a retry changes nothing: MERGE of the same staged rows
 * is idempotent. */
static int merge_all(sync_ctx *ctx, table_job *t, int64_t *changed, bool *existed)
{
    mbq_merge_range *ranges = NULL;
    size_t n_ranges = 0;
    int rc = mbq_merge_ranges(&ranges, &n_ranges, ctx, t);
    if (rc == 0 && n_ranges == 0)
        rc = merge_once(ctx, t, t->run.merge_job_id, NULL, changed, existed);
    for (size_t i = 0; rc == 0 && i < n_ranges; i++) {
        rc = merge_once(ctx, t, ranges[i].job_id, ranges[i].cond, changed, existed);
        if (rc == 0)
            mbq_fault_point("merge.range_done");
    }
    mbq_merge_ranges_free(ranges, n_ranges);
    return rc;
}

/* The MERGE ran and failed (a DML job is atomic: nothing was changed).
 * BigQuery says notFound for a missing source table; the emulator says an
 * internal error for any failed query (EMULATOR.md 17): decide by
 * tables.get, as everywhere. Sets *lost when the staging table is gone and
 * staging_lost() chose the way back. */
static int merge_failed(sync_ctx *ctx, table_job *t, step_event *ev, int merr, bool *lost)
{
    mbq_buf msg = MBQ_BUF_INIT;
    mbq_bq_table_info *info = NULL;
    int rc;
    mbq_buf_puts(&msg, mbq_error_last());
    int grc = mbq_bq_table_get(&info, ctx->bq, ctx->cfg->bigquery.dataset, t->run.staging_table);
    mbq_bq_table_info_free(info);
    *lost = grc == MBQ_ENOTFOUND;
    if (*lost)
        rc = staging_lost(ctx, t, ev);
    else
        rc = mbq_error_set(merr, "%s", mbq_buf_cstr(&msg));
    mbq_buf_free(&msg);
    return rc;
}

int step_merge(sync_ctx *ctx, table_job *t, step_event *ev)
{
    int64_t t0 = mbq_monotonic_ms(), changed = 0;
    bool existed = false, lost = false;
    job_retry jr = {0, t0};
    int rc;
    for (;;) {
        changed = 0;
        rc = merge_all(ctx, t, &changed, &existed);
        if (rc == 0 || !job_retry_again(ctx, t, &jr, rc, "merge"))
            break;
        /* The same staged rows, a new job id journaled before it runs. */
        if ((rc = renew_job_id(&t->run.merge_job_id, "mbq_merge", t)) < 0 ||
            (rc = mbq_journal_table_run_save(ctx->j, &t->run)) < 0)
            break;
    }
    if (rc == MBQ_EBQ || rc == MBQ_ENOTFOUND) {
        rc = merge_failed(ctx, t, ev, rc, &lost);
        if (lost)
            goto done;
    }
    if (rc < 0) {
        /* BigQuery ran the MERGE and it failed: the retry (next run) needs
         * a new job id, or it would find the failed job; the staged rows
         * stay. A network error keeps the id: the job may exist. The
         * MERGE's own error is the one reported. (The range ids hold the
         * attempt too, so they change with it.) */
        if (rc == MBQ_EBQ)
            renew_job_id(&t->run.merge_job_id, "mbq_merge", t);
        goto done;
    }
    t->run.rows_merged = changed;
    t->rows_synced = t->run.staged_rows;
    mbq_log(MBQ_LOG_INFO, t->tc->name, "merge",
            "merged %" PRId64 " staged rows (%" PRId64 " target rows changed)%s",
            t->run.staged_rows, t->run.rows_merged,
            existed ? " (job found from an earlier try)" : "");
    *ev = EV_OK;
done:
    t->run.t_merge_ms += mbq_monotonic_ms() - t0;
    return rc;
}

/* commit-metadata: cursor := high, the run done, in one local transaction.
 * Cleanup (staging table, file) follows; it is safe to skip, since staging
 * tables expire by themselves. */
int step_commit(sync_ctx *ctx, table_job *t, step_event *ev)
{
    int64_t t0 = mbq_monotonic_ms();
    const char *cursor = t->run.high ? t->run.high : t->committed.cursor_value;
    const char *kind = t->kind == MBQ_CURSOR_INTEGER     ? "integer"
                       : t->kind == MBQ_CURSOR_TIMESTAMP ? "timestamp"
                                                         : NULL;
    if (t->tc->mode == MBQ_MODE_FULL || !t->tc->updated_column) {
        cursor = NULL;
        kind = NULL;
    }
    t->run.t_commit_ms += mbq_monotonic_ms() - t0;
    mbq_fault_point("commit-metadata.done");
    int rc = mbq_journal_table_run_commit(ctx->j, &t->run, cursor, kind, t->rows_synced,
                                          mbq_now_ms());
    if (rc < 0)
        return rc;
    mbq_log(MBQ_LOG_INFO, t->tc->name, "commit-metadata", "committed cursor %s (%" PRId64 " rows)",
            cursor ? cursor : "(none)", t->rows_synced);
    if (t->run.staging_table) {
        rc = mbq_bq_table_delete(ctx->bq, ctx->cfg->bigquery.dataset, t->run.staging_table);
        if (rc < 0)
            mbq_log(MBQ_LOG_WARN, t->tc->name, "cleanup",
                    "cannot drop staging table '%s' (it expires by itself): %s",
                    t->run.staging_table, mbq_error_last());
    }
    remove_staged_file(t);
    mbq_parts_discard(ctx, t);
    mbq_fault_point("cleanup.done");
    *ev = EV_OK;
    return 0;
}
