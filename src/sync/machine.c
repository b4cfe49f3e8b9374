/* The per-table state machine (see mbq/machine.h for the diagram).
 *
 * Every state's step reads what the journal says, performs one side effect,
 * and reports an event; sync_transition() looks the (state, event) pair up in the
 * table below, checks the invariant of the state it enters, and commits the
 * table run to the journal BEFORE the caller goes on to the next side
 * effect. A process killed anywhere therefore resumes at a state whose side
 * effect is either not done yet or safe to repeat:
 *
 *   schema-check   reads both schemas; ADD COLUMN only for columns still
 *                  missing. Always re-run on resume (it also rebuilds the
 *                  in-memory schemas the later states use).
 *   extract        a new consistent snapshot into a new file; the old file is
 *                  discarded. The attempt number goes up, so every job id
 *                  derived from it is new.
 *   stage          a load job whose id is derived from the run, table run and
 *                  attempt: re-submitting finds the job that already ran.
 *   merge          likewise; a MERGE of the same staged rows is idempotent. A
 *                  staging table gone before its MERGE (expired) sends the run
 *                  back to stage (the staged file, if intact) or to extract.
 *   commit-metadata one local transaction: cursor := high, run done.
 *
 * A job that BigQuery reports as failed (MBQ_EBQ) bumps the attempt, so the
 * retry in the next run uses a new job id rather than finding the failed
 * job again; a network error keeps the id, because the job may exist.
 *
 * This file holds the transition table, the helpers the steps share, the
 * schema-check and extract steps and the driver; the stage, merge and
 * commit-metadata steps are in machine_steps.c (shared declarations in
 * sync_internal.h). */
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

static const char *const state_names[MBQ_ST__COUNT] = {
    [MBQ_ST_SCHEMA_CHECK] = "schema-check", [MBQ_ST_EXTRACT] = "extract",
    [MBQ_ST_STAGE] = "stage",               [MBQ_ST_MERGE] = "merge",
    [MBQ_ST_COMMIT] = "commit-metadata",    [MBQ_ST_DONE] = "done",
    [MBQ_ST_FAILED] = "failed",             [MBQ_ST_ABANDONED] = "abandoned",
};

const char *mbq_state_name(mbq_state s)
{
    return s < MBQ_ST__COUNT ? state_names[s] : "?";
}

int mbq_state_parse(mbq_state *out, const char *name)
{
    for (int i = 0; i < MBQ_ST__COUNT; i++) {
        if (name && strcmp(name, state_names[i]) == 0) {
            *out = (mbq_state)i;
            return 0;
        }
    }
    return mbq_error_set(MBQ_EJOURNAL, "unknown table-run state '%s' in the journal",
                         name ? name : "(null)");
}

/* ---- the transition table ---------------------------------------------- */

static const char *const event_names[EV__COUNT] = {
    "ok", "merge", "replace", "no-rows", "unchanged", "re-extract", "restage", "restart",
    "backfilled"};

/* Forward moves (the diagram in mbq/machine.h) and the moves back that
 * recover what BigQuery or the disk lost under a run:
 *
 *   schema-check -ok-> extract -merge/replace-> stage -merge-> merge -ok-> commit-metadata -ok-> done
 *                       | ^ ^ ^                  | \-replace-------------------^
 *                       | | | +---re-extract-----+    (staged file gone, or its load refused)
 *                       | | +-----re-extract--------------- merge (staging table and file gone)
 *                       | |                 stage <-restage- merge (staging table gone, file intact)
 *                       | +-------restart------ stage, merge, commit-metadata (from schema-check:
 *                       |                         the target vanished and is reloaded, or the
 *                       |                         source's columns changed since the extract)
 *                       +--no-rows/unchanged--> commit-metadata
 *                       \--backfilled---------> commit-metadata (chunks loaded and swapped in
 *                                                  by backfill.c, journaled chunk by chunk)
 */
static const struct transition {
    mbq_state from;
    step_event event;
    mbq_state to;
} transitions[] = {
    {MBQ_ST_SCHEMA_CHECK, EV_OK, MBQ_ST_EXTRACT},
    {MBQ_ST_EXTRACT, EV_MERGE, MBQ_ST_STAGE},
    {MBQ_ST_EXTRACT, EV_REPLACE, MBQ_ST_STAGE},
    {MBQ_ST_EXTRACT, EV_NO_ROWS, MBQ_ST_COMMIT},
    {MBQ_ST_EXTRACT, EV_UNCHANGED, MBQ_ST_COMMIT},
    {MBQ_ST_EXTRACT, EV_BACKFILLED, MBQ_ST_COMMIT},
    {MBQ_ST_STAGE, EV_MERGE, MBQ_ST_MERGE},
    {MBQ_ST_STAGE, EV_REPLACE, MBQ_ST_COMMIT},
    {MBQ_ST_STAGE, EV_REEXTRACT, MBQ_ST_EXTRACT},
    {MBQ_ST_MERGE, EV_OK, MBQ_ST_COMMIT},
    {MBQ_ST_MERGE, EV_RESTAGE, MBQ_ST_STAGE},
    {MBQ_ST_MERGE, EV_REEXTRACT, MBQ_ST_EXTRACT},
    {MBQ_ST_COMMIT, EV_OK, MBQ_ST_DONE},
    {MBQ_ST_STAGE, EV_RESTART, MBQ_ST_EXTRACT},
    {MBQ_ST_MERGE, EV_RESTART, MBQ_ST_EXTRACT},
    {MBQ_ST_COMMIT, EV_RESTART, MBQ_ST_EXTRACT},
};

static int lookup_transition(mbq_state *to, mbq_state from, step_event ev)
{
    for (size_t i = 0; i < sizeof transitions / sizeof transitions[0]; i++) {
        if (transitions[i].from == from && transitions[i].event == ev) {
            *to = transitions[i].to;
            return 0;
        }
    }
    return mbq_error_set(MBQ_EINTERNAL, "no transition from '%s' on event '%s'",
                         mbq_state_name(from), event_names[ev]);
}

/* What must hold when a table run enters `s` (SQLite's assert_pager_state
 * idea). Checked on every transition, also in release builds: a broken
 * invariant here would be a bug that could lose rows, so it stops the table
 * with an internal error instead of going on. */
static int check_invariant(const mbq_table_run *r, mbq_state s)
{
    const char *why = NULL;
    switch (s) {
    case MBQ_ST_STAGE:
        if (!r->load_job_id || !r->load_mode)
            why = "a load job id and a load mode";
        else if (r->staged_rows > 0 ? !r->staged_path : strcmp(r->load_mode, "replace") != 0)
            why = "a staged file with rows (only a replace may stage nothing)";
        else if (strcmp(r->load_mode, "merge") == 0 && !r->staging_table)
            why = "a staging table for a merge";
        break;
    case MBQ_ST_MERGE:
        if (!r->load_mode || strcmp(r->load_mode, "merge") != 0 || !r->staging_table ||
            !r->merge_job_id)
            why = "merge mode with a staging table and a merge job id";
        break;
    case MBQ_ST_COMMIT:
        if (r->staged_rows > 0 && !r->load_job_id)
            why = "a load job for staged rows";
        break;
    default:
        break;
    }
    if (why)
        return mbq_error_set(MBQ_EINTERNAL, "table run %" PRId64 " entering '%s' lacks %s",
                             r->id, mbq_state_name(s), why);
    return 0;
}

int sync_set_str(char **field, const char *value)
{
    char *copy = NULL;
    if (value && !(copy = mbq_strdup(value)))
        return MBQ_ENOMEM;
    free(*field);
    *field = copy;
    return 0;
}

/* Journal the move of `t` from its state on event `ev`. */
int sync_transition(sync_ctx *ctx, table_job *t, step_event ev)
{
    mbq_state from = MBQ_ST_SCHEMA_CHECK, to = MBQ_ST_SCHEMA_CHECK;
    int rc;
    if ((rc = mbq_state_parse(&from, t->run.state)) < 0 ||
        (rc = lookup_transition(&to, from, ev)) < 0 || (rc = check_invariant(&t->run, to)) < 0)
        return rc;
    char fp[64];
    /* '<state>.done' means the state's side effect is done: not so on a
     * move back. */
    snprintf(fp, sizeof fp, "%s.done", mbq_state_name(from));
    if (ev != EV_RESTAGE && ev != EV_RESTART && !(from == MBQ_ST_MERGE && ev == EV_REEXTRACT))
        mbq_fault_point(fp);
    if ((rc = sync_set_str(&t->run.state, mbq_state_name(to))) < 0)
        return rc;
    t->run.updated_ms = mbq_now_ms();
    if ((rc = sync_set_str(&t->run.last_run_id, ctx->run_id)) < 0 ||
        (rc = mbq_journal_table_run_save(ctx->j, &t->run)) < 0)
        return rc;
    mbq_log(MBQ_LOG_DEBUG, t->tc->name, mbq_state_name(to), "entered on '%s'", event_names[ev]);
    snprintf(fp, sizeof fp, "%s.enter", mbq_state_name(to));
    mbq_fault_point(fp);
    return 0;
}

/* ---- helpers ------------------------------------------------------------- */

/* `project`.`dataset`.`table`, each part quoted for GoogleSQL. */
int mbq_bq_table_ref(mbq_buf *b, const sync_ctx *ctx, const char *table)
{
    int rc;
    if ((rc = mbq_buf_quote_bq_ident(b, ctx->cfg->bigquery.project_id)) < 0 ||
        (rc = mbq_buf_putc(b, '.')) < 0 ||
        (rc = mbq_buf_quote_bq_ident(b, ctx->cfg->bigquery.dataset)) < 0 ||
        (rc = mbq_buf_putc(b, '.')) < 0)
        return rc;
    return mbq_buf_quote_bq_ident(b, table);
}

/* A deterministic job id: kind, the run that started the table run (a uuid,
 * so two mbq installations writing to one project never share ids), the
 * table run and the attempt. */
int make_job_id(char **out, const char *kind, const table_job *t)
{
    mbq_buf b = MBQ_BUF_INIT;
    char trid[32], att[16];
    snprintf(trid, sizeof trid, "%" PRId64, t->run.id);
    snprintf(att, sizeof att, "%d", t->run.attempt);
    int rc = mbq_bq_job_id(&b, kind, t->run.run_id, trid, att, (const char *)NULL);
    if (rc == 0 && !(*out = mbq_buf_detach(&b)))
        rc = MBQ_ENOMEM;
    mbq_buf_free(&b);
    return rc;
}

void remove_staged_file(table_job *t)
{
    if (t->run.staged_path && unlink(t->run.staged_path) < 0 && errno != ENOENT)
        mbq_log(MBQ_LOG_WARN, t->tc->name, t->run.state, "cannot remove '%s': %s",
                t->run.staged_path, strerror(errno));
}

/* ---- states ----------------------------------------------------------- */

/* Does a load job hold exactly the staged rows? BigQuery always reports
 * outputRows for a load. Without it, a job found by its id (not submitted
 * whole by this process) cannot be trusted: the emulator, for one,
 * registers a job for an upload cut short and loads nothing. The table is
 * counted instead: after a WRITE_TRUNCATE it holds exactly what the job
 * wrote. MBQ_EBQ when the numbers differ. */
int check_loaded_rows(sync_ctx *ctx, table_job *t, mbq_bq_job *job, const char *table)
{
    /* A job this process submitted with the whole body and saw DONE without
     * error holds the file's rows (the table may be large: counting it is
     * not free). Doubt is for a job found by its id. */
    if (job->output_rows < 0 && !job->existed)
        return 0;
    if (job->output_rows < 0) {
        mbq_bq_table_info *info = NULL;
        int rc = mbq_bq_table_get(&info, ctx->bq, ctx->cfg->bigquery.dataset, table);
        if (rc < 0)
            return rc;
        job->output_rows = info->num_rows;
        mbq_bq_table_info_free(info);
    }
    if (job->output_rows != t->run.staged_rows)
        return mbq_error_set(MBQ_EBQ,
                             "load job '%s' wrote %" PRId64 " rows but %" PRId64 " were staged",
                             job->job_id, job->output_rows, t->run.staged_rows);
    return 0;
}

/* Stream a replace load while extracting? Only when configured and when the
 * journal can record the job id first. */
static bool cursor_or_full_streamable(const sync_ctx *ctx, const table_job *t)
{
    return ctx->cfg->bigquery.stream_load && ctx->j && t->load_schema;
}

/* A streamed load is one file in one job: a file above the per-file limit
 * is not completed (the stream is aborted, no job exists) and the stage
 * loads it in parts (stage_parts.c). */
static bool stream_fits(void *ud, const mbq_extract_result *xr)
{
    const sync_ctx *ctx = ud;
    return (int64_t)xr->bytes <= ctx->cfg->bigquery.max_load_file_bytes;
}

/* How a replace load writes the target. WRITE_TRUNCATE_DATA replaces the
 * rows and keeps the table's schema, column descriptions, policy tags,
 * constraints and row access policies (JobConfigurationLoad
 * writeDisposition); WRITE_TRUNCATE replaces the schema with the load's and
 * "might not preserve" the rest. Only a rebuild, whose types change, needs
 * WRITE_TRUNCATE; its load schema carries the target's field definitions
 * (schema.c, mbq_bq_schema_carry). */
mbq_bq_write_disposition replace_disposition(const table_job *t)
{
    return t->rebuild || t->truncate_data_refused ? MBQ_BQ_WRITE_TRUNCATE
                                                  : MBQ_BQ_WRITE_TRUNCATE_DATA;
}

bool job_retry_again(sync_ctx *ctx, table_job *t, job_retry *jr, int rc, const char *state)
{
    const mbq_bigquery_config *bc = &ctx->cfg->bigquery;
    if (rc != MBQ_EBQ || !mbq_bq_job_reason_transient(mbq_bq_job_error_reason(ctx->bq)))
        return false;
    int64_t delay = mbq_http_backoff_ms(jr->n, 1000, 32000);
    if (jr->n >= bc->max_retries ||
        mbq_monotonic_ms() - jr->start_ms + delay > bc->retry_max_elapsed_ms)
        return false;
    mbq_log(MBQ_LOG_WARN, t->tc->name, state,
            "%s: BigQuery's side, running it again under a new job id in %" PRId64 " ms",
            mbq_error_last(), delay);
    mbq_error_clear();
    mbq_sleep_ms(delay);
    jr->n++;
    return true;
}

static void extract_progress(void *ud, uint64_t rows, uint64_t raw_bytes)
{
    mbq_progress_update(ud, (int64_t)rows, (int64_t)raw_bytes);
}

/* A load job journaled by an earlier try of this extract (a streamed load
 * killed or cut while BigQuery ran it) is never looked up again by its id:
 * the new attempt loads a newer snapshot under a new id. But BigQuery
 * finishes a job it has accepted whatever its client does (jobs.insert
 * reference: a job runs asynchronously), and two WRITE_TRUNCATE loads into
 * one table land in the order they finish: were the old one to finish
 * last, the target would hold the older snapshot under the newer cursor,
 * and the rows changed in between would never arrive. So wait until it has
 * ended; how it ended does not matter (a failed or unknown job wrote
 * nothing). */
static int wait_for_abandoned_load(sync_ctx *ctx, table_job *t)
{
    mbq_bq_job *job = NULL;
    if (!t->run.load_job_id || !ctx->bq)
        return 0;
    int rc = mbq_bq_job_wait(&job, ctx->bq, t->run.load_job_id, NULL);
    mbq_bq_job_free(job);
    if (rc == MBQ_ENOTFOUND || rc == MBQ_EBQ) {
        mbq_error_clear();
        rc = 0;
    }
    return rc;
}

/* extract: one consistent snapshot of the window into a new file. */
static int step_extract(sync_ctx *ctx, table_job *t, step_event *ev)
{
    int rc;
    mbq_extract_result res = {0};
    mbq_buf path = MBQ_BUF_INIT;
    char *low = NULL;
    mbq_bq_job *job = NULL;

    if ((rc = wait_for_abandoned_load(ctx, t)) < 0)
        return rc;
    free(t->run.load_job_id);
    t->run.load_job_id = NULL;
    t->preloaded = false;
    /* A previous attempt's file is never reused: the attempt (and so every
     * job id) changes with the data. */
    remove_staged_file(t);
    mbq_parts_discard(ctx, t);
    t->run.attempt++;
    const char *cursor = t->tc->mode == MBQ_MODE_FULL ? NULL : t->tc->updated_column;
    bool replace = !cursor || !t->committed.cursor_value || t->rebuild;
    if (replace && !t->rebuild) {
        /* A first sync or full refresh in key-range chunks (backfill.c),
         * when configured or already in flight. A rebuild changes the
         * target's types and is read in one snapshot. */
        bool backfilled = false;
        if ((rc = mbq_backfill_extract(ctx, t, &backfilled)) < 0)
            goto done;
        if (backfilled) {
            *ev = EV_BACKFILLED;
            goto done;
        }
    }
    if (cursor && !replace &&
        (rc = mbq_cursor_minus(&low, t->committed.cursor_kind, t->committed.cursor_value,
                               t->tc->lookback_ms)) < 0)
        goto done;
    if ((rc = mbq_buf_printf(&path, "%s/%s.%" PRId64 ".%d.ndjson%s", ctx->staging_dir,
                             t->tc->target, t->run.id, t->run.attempt,
                             ctx->cfg->bigquery.compress ? ".gz" : "")) < 0)
        goto done;

    mbq_extract_options eo = MBQ_EXTRACT_OPTIONS_INIT;
    eo.schema = t->src;
    eo.pk = (const char *const *)t->tc->primary_key;
    eo.n_pk = t->tc->n_primary_key;
    eo.cursor = cursor;
    eo.cursor_kind = t->kind;
    eo.low = low;
    eo.path = path.ptr;
    eo.compress = ctx->cfg->bigquery.compress;
    eo.log_table = t->tc->name;
    eo.want_tail = cursor != NULL;
    eo.tail_lookback_ms = t->tc->lookback_ms;
    mbq_buf label = MBQ_BUF_INIT;
    mbq_progress *prog = NULL;
    if (mbq_buf_printf(&label, "%s extract", t->tc->name) == 0 &&
        mbq_progress_new(&prog, label.ptr, ctx->progress ? MBQ_PROGRESS_AUTO : MBQ_PROGRESS_OFF) ==
            0) {
        eo.progress = extract_progress;
        eo.progress_ud = prog;
    }
    mbq_buf_free(&label);
    int64_t t0 = mbq_monotonic_ms();
    bool streamed = false;
    if (replace && cursor_or_full_streamable(ctx, t)) {
        /* Upload while extracting (pipeline.h). The job id is journaled
         * before the first byte leaves: a crash mid-stream resumes at
         * extract, whose attempt bump gives every job a new id. */
        if ((rc = sync_set_str(&t->run.load_mode, "replace")) < 0 ||
            (rc = make_job_id(&t->run.load_job_id, "mbq_replace", t)) < 0 ||
            (rc = mbq_journal_table_run_save(ctx->j, &t->run)) < 0) {
            mbq_progress_free(prog);
            goto done;
        }
        mbq_bq_load_options lo = MBQ_BQ_LOAD_OPTIONS_INIT;
        lo.dataset = ctx->cfg->bigquery.dataset;
        lo.table = t->tc->target;
        lo.path = path.ptr;
        lo.schema = t->load_schema;
        lo.write_disposition = replace_disposition(t);
        lo.create_disposition = MBQ_BQ_CREATE_NEVER;
        mbq_pipeline_options po = MBQ_PIPELINE_OPTIONS_INIT;
        po.keep = stream_fits;
        po.keep_ud = ctx;
        mbq_pipeline_report rep = {0};
        rc = mbq_pipeline_extract_load(&res, &job, ctx->my, &eo, ctx->bq, t->run.load_job_id, &lo,
                                       &po, &rep);
        if (rc < 0 && res.file_written) {
            /* The rows are safe in the file; stage loads them from it. */
            mbq_log(MBQ_LOG_WARN, t->tc->name, "extract",
                    "streamed upload failed, the load will run from the staged file: %s",
                    mbq_error_last());
            rc = 0;
        }
        streamed = rc == 0 && job;
        /* The call's wall time is extract + the load's wait: book each to
         * its stage (the extract time is added below from t0). */
        t->run.t_stage_ms += rep.load_wait_ms;
        t0 += rep.load_wait_ms;
    } else {
        rc = mbq_mysql_extract(&res, ctx->my, &eo);
    }
    if (rc < 0) {
        mbq_progress_free(prog);
        goto done;
    }
    mbq_progress_update(prog, (int64_t)res.rows, (int64_t)res.raw_bytes);
    mbq_progress_finish(prog);
    t->run.t_extract_ms += mbq_monotonic_ms() - t0;
    mbq_log(MBQ_LOG_INFO, t->tc->name, "extract",
            "extracted %" PRIu64 " rows (%" PRIu64 " bytes) with cursor in [%s .. %s] in %" PRId64
            " ms",
            res.rows, res.bytes, low ? low : "start", res.high ? res.high : "-", res.elapsed_ms);
    /* Zero dates and non-JSON documents were reported by the extract. */

    if ((rc = sync_set_str(&t->run.low, low)) < 0 || (rc = sync_set_str(&t->run.high, res.high)) < 0 ||
        (rc = sync_set_str(&t->run.tail_low, res.tail_from)) < 0 ||
        (rc = sync_set_str(&t->run.tail_checksum, res.tail_checksum)) < 0 ||
        (rc = sync_set_str(&t->run.staged_checksum, res.checksum)) < 0 ||
        (rc = sync_set_str(&t->run.load_mode, replace ? "replace" : "merge")) < 0)
        goto done;
    t->run.staged_rows = (int64_t)res.rows;
    t->run.staged_bytes = (int64_t)res.bytes;
    if (streamed) {
        /* The streamed job must hold exactly the staged rows. Under
         * WRITE_TRUNCATE_DATA a doubtful job without a row count cannot be
         * proven by the table's count (it may be the old rows'). */
        if (job->existed && job->output_rows < 0 &&
            replace_disposition(t) == MBQ_BQ_WRITE_TRUNCATE_DATA)
            rc = mbq_error_set(MBQ_EBQ, "streamed load job '%s' reports no row count after a "
                                        "cut",
                               job->job_id);
        else
            rc = check_loaded_rows(ctx, t, job, t->tc->target);
        if (rc == 0)
            t->preloaded = true;
        else if (rc != MBQ_EBQ)
            goto done;
        else
            mbq_log(MBQ_LOG_WARN, t->tc->name, "extract", "%s: loading again from the file",
                    mbq_error_last());
        rc = 0;
    }
    if (t->run.load_job_id && !t->preloaded) {
        /* A stream that did not complete may have left its job id behind
         * (the emulator registers one for a cut request): never reuse it.
         * A stream whose answer was lost may have left a job BigQuery
         * still runs: let it end before another load of this table. */
        if ((rc = wait_for_abandoned_load(ctx, t)) < 0)
            goto done;
        t->run.attempt++;
        free(t->run.load_job_id);
        t->run.load_job_id = NULL;
    }
    free(t->run.merge_job_id);
    free(t->run.staging_table);
    t->run.merge_job_id = t->run.staging_table = NULL;

    if (res.rows == 0) {
        if ((rc = sync_set_str(&t->run.staged_path, NULL)) < 0)
            goto done;
        *ev = EV_NO_ROWS;
        /* A full refresh of an empty source must still empty the target. */
        if (replace && t->target_rows > 0)
            *ev = EV_REPLACE;
        if (*ev == EV_NO_ROWS)
            goto done;
    }
    if (res.rows > 0 && !replace && mbq_streq(low, t->committed.last_low) &&
        mbq_streq(res.high, t->committed.last_high) &&
        mbq_streq(res.checksum, t->committed.last_checksum)) {
        /* The last commit recorded the checksum of its rows from this very
         * window's start on; the same window with the same bytes means those
         * rows are in BigQuery already. Costs no job (DESIGN.md: a table
         * with no changes runs no job). */
        unlink(path.ptr);
        if ((rc = sync_set_str(&t->run.staged_path, NULL)) < 0)
            goto done;
        t->run.staged_rows = 0;
        t->unchanged = true;
        *ev = EV_UNCHANGED;
        goto done;
    }
    if ((rc = sync_set_str(&t->run.staged_path, res.rows > 0 ? path.ptr : NULL)) < 0)
        goto done;
    if (!t->preloaded &&
        (rc = make_job_id(&t->run.load_job_id, replace ? "mbq_replace" : "mbq_load", t)) < 0)
        goto done;
    if (!replace) {
        mbq_buf st = MBQ_BUF_INIT;
        if ((rc = mbq_buf_printf(&st, "%s__mbq_stage_%" PRId64 "_%d", t->tc->target, t->run.id,
                                 t->run.attempt)) < 0 ||
            !(t->run.staging_table = mbq_buf_detach(&st))) {
            mbq_buf_free(&st);
            rc = rc < 0 ? rc : MBQ_ENOMEM;
            goto done;
        }
    }
    if (res.rows == 0) {
        /* replace with no rows: the "load" is a DELETE of every target row,
         * carried by the stage state with its own job id. */
        t->run.staged_rows = 0;
    }
    *ev = replace ? EV_REPLACE : EV_MERGE;
done:
    if (rc < 0)
        unlink(path.ptr ? path.ptr : "");
    else
        t->extracted_here = true; /* the snapshot is younger than this run's start */
    free(low);
    mbq_buf_free(&path);
    mbq_extract_result_free(&res);
    mbq_bq_job_free(job);
    return rc;
}

typedef int (*step_fn)(sync_ctx *ctx, table_job *t, step_event *ev);

static const step_fn steps[MBQ_ST__COUNT] = {
    [MBQ_ST_EXTRACT] = step_extract,
    [MBQ_ST_STAGE] = step_stage,
    [MBQ_ST_MERGE] = step_merge,
    [MBQ_ST_COMMIT] = step_commit,
};

int mbq_machine_restart_extract(sync_ctx *ctx, table_job *t)
{
    mbq_state s = MBQ_ST_SCHEMA_CHECK;
    int rc = mbq_state_parse(&s, t->run.state);
    if (rc < 0 || s == MBQ_ST_SCHEMA_CHECK || s == MBQ_ST_EXTRACT)
        return rc;
    return sync_transition(ctx, t, EV_RESTART);
}

int mbq_machine_drive(sync_ctx *ctx, table_job *t)
{
    int rc = 0;
    mbq_state s = MBQ_ST_SCHEMA_CHECK;
    int64_t t0 = mbq_monotonic_ms();

    /* schema-check always runs, also on resume: it is idempotent and builds
     * the schemas the later states need. A resumed run whose staged file no
     * longer matches the source's columns goes back to extract. */
    if ((rc = mbq_state_parse(&s, t->run.state)) < 0)
        return rc;
    rc = mbq_schema_check(ctx, t);
    t->run.t_schema_ms += mbq_monotonic_ms() - t0;
    if (rc < 0)
        return rc;
    if (s == MBQ_ST_SCHEMA_CHECK) {
        if ((rc = sync_transition(ctx, t, EV_OK)) < 0)
            return rc;
    } else if (t->schema_changed_since_extract && (s == MBQ_ST_STAGE || s == MBQ_ST_MERGE)) {
        mbq_log(MBQ_LOG_WARN, t->tc->name, t->run.state,
                "the source's columns changed since this run's extract: extracting again");
        if ((rc = mbq_machine_restart_extract(ctx, t)) < 0)
            return rc;
    }

    for (;;) {
        if ((rc = mbq_state_parse(&s, t->run.state)) < 0)
            return rc;
        if (s == MBQ_ST_DONE)
            return 0;
        if (!steps[s])
            return mbq_error_set(MBQ_EINTERNAL, "table '%s': no step for state '%s'",
                                 t->tc->name, t->run.state);
        step_event ev = EV__COUNT;
        if ((rc = steps[s](ctx, t, &ev)) < 0)
            return rc;
        if (s == MBQ_ST_COMMIT)
            return 0; /* the commit journaled 'done' in its own transaction */
        if ((rc = sync_transition(ctx, t, ev)) < 0)
            return rc;
    }
}
