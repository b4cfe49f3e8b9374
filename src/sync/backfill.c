/* Chunked backfills: a first sync or full refresh of a table with
 * `chunk_rows` set, read in primary-key ranges instead of one long snapshot.
 *
 *   plan      the cursor's high-water mark (the "mark") is read, then the
 *             key is walked for the chunk boundaries (mysql_chunks.c); the
 *             plan, the shadow table's name and the mark are journaled in
 *             one transaction (sql/journal/005_backfill.sql).
 *   chunks    each chunk, on one of `--jobs` connections: one short
 *             consistent snapshot of its key range into a file, then its
 *             file and load job id journaled ('extracted'), then one load
 *             job appending it to the shadow table, then 'loaded' and the
 *             file removed (backfill_chunk.c).
 *   swap      the shadow's row count must equal the chunks' (no chunk
 *             twice, none missing); then one copy job with WRITE_TRUNCATE
 *             replaces the target: "Creation, truncation and append actions
 *             occur as one atomic update upon job completion"
 *             (JobConfigurationTableCopy), so readers see the old table or
 *             the whole new one. Its job id is journaled before it runs.
 *   commit    the table run commits with cursor := mark. Rows written while
 *             the chunks were read have a cursor above the mark (the same
 *             assumption every incremental window makes, with `lookback` for
 *             late commits): the run then catches up from the mark through
 *             the usual MERGE path (sync.c), so updates to chunks already
 *             loaded and rows inserted beyond the last key arrive too.
 *
 * Why append + job ids and not one staging table per chunk: a load job is
 * atomic and its id is BigQuery's idempotency key (a job id is unique in a
 * project: jobs.insert of a known id is refused with 409 and mbq looks the
 * job up instead). A chunk's job id is journaled before the job exists, so a
 * kill at any instant leaves the chunk either not appended (its job does not
 * exist: load it) or appended exactly once (the job exists: wait for it).
 * A chunk read again after a kill is read under a new attempt, hence a new
 * job id, only when its old job provably did not run. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mbq/bq.h"
#include "mbq/chunks.h"
#include "mbq/error.h"
#include "mbq/fault.h"
#include "mbq/journal.h"
#include "mbq/log.h"
#include "mbq/util.h"
#include "backfill_internal.h"
#include "sync_internal.h"
#include "mbq/banned.h"

/* "name:TYPE:mode;..." of the load schema: chunks read with other columns
 * cannot be mixed with new ones in one shadow table. */
static int schema_print(char **out, const mbq_bq_schema *s)
{
    mbq_buf b = MBQ_BUF_INIT;
    int rc = 0;
    for (size_t i = 0; rc == 0 && s && i < s->n_fields; i++)
        rc = mbq_buf_printf(&b, "%s:%s:%d;", s->fields[i].name, s->fields[i].type,
                            (int)s->fields[i].mode);
    if (rc == 0 && !(*out = mbq_buf_detach(&b)))
        rc = MBQ_ENOMEM;
    mbq_buf_free(&b);
    return rc;
}

int mbq_backfill_dir(mbq_buf *out, const sync_ctx *ctx, const table_job *t)
{
    /* A directory per table run: the run's start removes stray files of
     * the staging directory, never directories, and the chunk files of a
     * backfill in flight must survive it. */
    return mbq_buf_printf(out, "%s/backfill.%" PRId64, ctx->staging_dir, t->run.id);
}

static void remove_dir(const sync_ctx *ctx, const table_job *t, const mbq_backfill_chunk *c,
                       int n)
{
    mbq_buf dir = MBQ_BUF_INIT;
    for (int i = 0; i < n; i++)
        if (c[i].path)
            mbq_backfill_remove_files(&c[i]);
    if (mbq_backfill_dir(&dir, ctx, t) == 0 && rmdir(dir.ptr) < 0 && errno != ENOENT)
        mbq_log(MBQ_LOG_WARN, t->tc->name, "extract", "cannot remove '%s': %s", dir.ptr,
                strerror(errno));
    mbq_buf_free(&dir);
}

/* The mark: one consistent snapshot of the window [max - lookback, max]
 * gives the high-water mark and the checksum of the rows from mark -
 * lookback on, which the commit records as the next window's (machine.c):
 * when nothing in that window changed by the catch-up, it costs no job. */
static int take_mark(sync_ctx *ctx, table_job *t, char **mark, char **tail_low,
                     char **tail_sum)
{
    char *max = NULL, *low = NULL;
    mbq_buf dir = MBQ_BUF_INIT, path = MBQ_BUF_INIT;
    mbq_extract_result res = {0};
    const char *kind = t->kind == MBQ_CURSOR_INTEGER ? "integer" : "timestamp";
    int rc = mbq_mysql_cursor_max(&max, ctx->my, t->src, t->tc->updated_column);
    if (rc < 0 || !max)
        goto done;
    if ((rc = mbq_cursor_minus(&low, kind, max, t->tc->lookback_ms)) < 0 ||
        (rc = mbq_backfill_dir(&dir, ctx, t)) < 0 || (rc = mbq_mkdir_p(dir.ptr)) < 0 ||
        (rc = mbq_buf_printf(&path, "%s/mark.ndjson", dir.ptr)) < 0)
        goto done;
    mbq_extract_options eo = MBQ_EXTRACT_OPTIONS_INIT;
    eo.schema = t->src;
    eo.pk = (const char *const *)t->tc->primary_key;
    eo.n_pk = t->tc->n_primary_key;
    eo.cursor = t->tc->updated_column;
    eo.cursor_kind = t->kind;
    eo.low = low;
    eo.path = path.ptr;
    eo.compress = false;
    eo.log_table = t->tc->name;
    eo.want_tail = true;
    eo.tail_lookback_ms = t->tc->lookback_ms;
    if ((rc = mbq_mysql_extract(&res, ctx->my, &eo)) < 0)
        goto done;
    unlink(path.ptr);
    /* The window's own snapshot: its high is the mark (>= max). */
    if (res.high && (!(*mark = mbq_strdup(res.high)) ||
                     (res.tail_from && !(*tail_low = mbq_strdup(res.tail_from))) ||
                     (res.tail_checksum && !(*tail_sum = mbq_strdup(res.tail_checksum)))))
        rc = MBQ_ENOMEM;
done:
    mbq_extract_result_free(&res);
    free(max);
    free(low);
    mbq_buf_free(&dir);
    mbq_buf_free(&path);
    return rc;
}

/* Journal a new plan; *planned false when the table fits one chunk (or its
 * key cannot bound chunks): the usual single snapshot does it. */
static int plan(sync_ctx *ctx, table_job *t, bool *planned)
{
    char **bounds = NULL, *mark = NULL, *print = NULL, *tail_low = NULL, *tail_sum = NULL;
    size_t n = 0;
    mbq_backfill bf = {0};
    mbq_backfill_chunk *chunks = NULL;
    mbq_buf shadow = MBQ_BUF_INIT;
    const char *const *key = (const char *const *)t->tc->primary_key;
    int rc;
    *planned = false;
    if (mbq_chunk_key_check(t->src, key, t->tc->n_primary_key) < 0) {
        mbq_log(MBQ_LOG_WARN, t->tc->name, "extract", "%s: reading it in one snapshot",
                mbq_error_last());
        mbq_error_clear();
        return 0;
    }
    /* The mark first: every row changed after it has a cursor above it,
     * whatever chunk it is in and whenever that chunk is read. */
    if (t->tc->mode != MBQ_MODE_FULL && t->tc->updated_column &&
        (rc = take_mark(ctx, t, &mark, &tail_low, &tail_sum)) < 0)
        goto done;
    int64_t t0 = mbq_monotonic_ms();
    if ((rc = mbq_mysql_chunk_bounds(&bounds, &n, ctx->my, t->src, key, t->tc->n_primary_key,
                                     t->tc->chunk_rows)) < 0)
        goto done;
    if (n == 0)
        goto done;
    if (!(chunks = mbq_calloc(n + 1, sizeof *chunks))) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i <= n; i++) {
        chunks[i].chunk = (int)i + 1;
        chunks[i].key_after = i ? bounds[i - 1] : NULL;
        chunks[i].key_upto = i < n ? bounds[i] : NULL;
    }
    if ((rc = schema_print(&print, t->load_schema)) < 0 ||
        (rc = mbq_buf_printf(&shadow, "%s__mbq_backfill_%" PRId64, t->tc->target, t->run.id)) <
            0)
        goto done;
    bf.table_run_id = t->run.id;
    bf.shadow_table = shadow.ptr;
    bf.mark = mark;
    bf.tail_low = tail_low;
    bf.tail_checksum = tail_sum;
    bf.chunk_rows = t->tc->chunk_rows;
    bf.schema_print = print;
    if ((rc = mbq_journal_backfill_create(ctx->j, &bf, chunks, (int)n + 1)) < 0)
        goto done;
    mbq_log(MBQ_LOG_INFO, t->tc->name, "extract",
            "backfill planned: %zu chunks of %" PRId64 " rows (key walked in %" PRId64
            " ms), cursor mark %s",
            n + 1, t->tc->chunk_rows, mbq_monotonic_ms() - t0, mark ? mark : "(none)");
    *planned = true;
    mbq_fault_point("backfill.planned");
done:
    free(chunks); /* its keys belong to bounds */
    mbq_strv_free(bounds);
    free(mark);
    free(tail_low);
    free(tail_sum);
    free(print);
    mbq_buf_free(&shadow);
    return rc;
}

/* Forget a plan that cannot be finished (the source's columns changed, the
 * shadow does not hold what the chunks say): its shadow and files go, the
 * next call plans again. */
static int discard(sync_ctx *ctx, table_job *t, const mbq_backfill *bf, const char *why)
{
    mbq_backfill_chunk *c = NULL;
    int n = 0;
    mbq_log(MBQ_LOG_WARN, t->tc->name, "extract", "backfill of %d chunks discarded: %s",
            bf->n_chunks, why);
    if (mbq_journal_chunks_get(ctx->j, &c, &n, t->run.id) == 0)
        remove_dir(ctx, t, c, n);
    mbq_backfill_chunks_free(c, n);
    int rc = mbq_bq_table_delete(ctx->bq, ctx->cfg->bigquery.dataset, bf->shadow_table);
    if (rc < 0 && rc != MBQ_ENOTFOUND)
        return rc;
    mbq_error_clear();
    mbq_event e = {0};
    e.run_id = (char *)ctx->run_id;
    e.table_name = (char *)t->tc->name;
    e.kind = "backfill.discarded";
    e.action = "replan";
    e.detail = (char *)why;
    if ((rc = mbq_journal_event_add(ctx->j, &e)) < 0)
        return rc;
    return mbq_journal_backfill_delete(ctx->j, t->run.id);
}

/* The shadow table, with the target's partitioning and clustering: BigQuery
 * copies into a partitioned or clustered table only from one laid out the
 * same way. *recreated when it had to be made although chunks were loaded
 * into it (expired: staging_expiration): those chunks are read again. */
static int ensure_shadow(sync_ctx *ctx, table_job *t, const mbq_backfill *bf, bool *recreated)
{
    const mbq_bigquery_config *bc = &ctx->cfg->bigquery;
    mbq_bq_table_info *info = NULL, *target = NULL;
    *recreated = false;
    int rc = mbq_bq_table_get(&info, ctx->bq, bc->dataset, bf->shadow_table);
    mbq_bq_table_info_free(info);
    if (rc != MBQ_ENOTFOUND)
        return rc;
    mbq_error_clear();
    *recreated = true;
    if ((rc = mbq_bq_table_get(&target, ctx->bq, bc->dataset, t->tc->target)) < 0)
        return rc;
    mbq_bq_table_options to = MBQ_BQ_TABLE_OPTIONS_INIT;
    to.expiration_ms = bc->staging_expiration_ms;
    to.description = "mbq backfill shadow table: copied over the target when complete";
    to.partition_type = target->partition_type;
    to.partition_field = target->partition_field;
    to.clustering = (const char *const *)target->clustering;
    to.n_clustering = target->n_clustering;
    rc = mbq_bq_table_create(ctx->bq, bc->dataset, bf->shadow_table, t->load_schema, &to);
    mbq_bq_table_info_free(target);
    if (rc == MBQ_EEXISTS) {
        mbq_error_clear();
        rc = 0;
    }
    return rc;
}

/* Chunks journaled as loaded into a shadow that is gone are loaded again,
 * each read anew under a new attempt (new job ids). */
static int reset_chunks(sync_ctx *ctx, table_job *t, mbq_backfill_chunk *c, int n)
{
    int rc = 0;
    bool any = false;
    for (int i = 0; rc == 0 && i < n; i++) {
        if (c[i].state == MBQ_CHUNK_PLANNED)
            continue;
        any = true;
        mbq_backfill_remove_files(&c[i]);
        c[i].state = MBQ_CHUNK_PLANNED;
        rc = mbq_journal_chunk_save(ctx->j, t->run.id, &c[i]);
    }
    if (any)
        mbq_log(MBQ_LOG_WARN, t->tc->name, "extract",
                "the backfill's shadow table was gone (expired?): its chunks are read again");
    return rc;
}

/* The shadow holds exactly the chunks' rows? BigQuery's numRows counts
 * what load jobs committed; a chunk appended twice or lost would show. */
static int check_shadow(sync_ctx *ctx, table_job *t, const mbq_backfill *bf, int64_t rows,
                        bool *ok)
{
    mbq_bq_table_info *info = NULL;
    int rc = mbq_bq_table_get(&info, ctx->bq, ctx->cfg->bigquery.dataset, bf->shadow_table);
    *ok = rc == 0 && (info->num_rows < 0 || info->num_rows == rows);
    if (rc == 0 && !*ok)
        mbq_error_set(MBQ_EBQ, "shadow table '%s' holds %" PRId64 " rows, its chunks %" PRId64,
                      bf->shadow_table, info->num_rows, rows);
    (void)t;
    mbq_bq_table_info_free(info);
    return rc;
}

/* The swap: one copy job, its id journaled before it runs. */
static int swap(sync_ctx *ctx, table_job *t, mbq_backfill *bf, int64_t rows)
{
    int rc;
    mbq_bq_job *job = NULL;
    if (!bf->copy_job_id) {
        mbq_buf id = MBQ_BUF_INIT;
        char trid[32], att[16];
        snprintf(trid, sizeof trid, "%" PRId64, t->run.id);
        snprintf(att, sizeof att, "%d", t->run.attempt);
        if ((rc = mbq_bq_job_id(&id, "mbq_backfill_copy", t->run.run_id, trid, att,
                                (const char *)NULL)) < 0 ||
            !(bf->copy_job_id = mbq_buf_detach(&id))) {
            mbq_buf_free(&id);
            return rc < 0 ? rc : MBQ_ENOMEM;
        }
        if ((rc = mbq_journal_backfill_set_copy(ctx->j, t->run.id, bf->copy_job_id)) < 0)
            return rc;
    }
    mbq_fault_point("backfill.copy_submit");
    rc = mbq_bq_copy_table(&job, ctx->bq, bf->copy_job_id, ctx->cfg->bigquery.dataset,
                           bf->shadow_table, t->tc->target, MBQ_BQ_WRITE_TRUNCATE);
    if (rc == 0)
        mbq_log(MBQ_LOG_INFO, t->tc->name, "stage",
                "replaced '%s' with the %" PRId64 " rows of '%s' in one copy job%s",
                t->tc->target, rows, bf->shadow_table,
                job->existed ? " (job found from an earlier try)" : "");
    mbq_bq_job_free(job);
    if (rc == MBQ_EBQ) {
        /* The copy ran and failed (a copy is atomic: the target is as it
         * was). The next try derives a new id from its new attempt rather
         * than finding the failed job again. */
        mbq_buf msg = MBQ_BUF_INIT;
        mbq_buf_puts(&msg, mbq_error_last());
        free(bf->copy_job_id);
        bf->copy_job_id = NULL;
        if (mbq_journal_backfill_set_copy(ctx->j, t->run.id, NULL) < 0)
            mbq_log(MBQ_LOG_WARN, t->tc->name, "extract", "cannot forget the failed copy: %s",
                    mbq_error_last());
        mbq_error_set(rc, "%s", mbq_buf_cstr(&msg));
        mbq_buf_free(&msg);
    }
    if (rc == 0)
        mbq_fault_point("backfill.copy_done");
    return rc;
}

static int set_field(char **field, const char *value)
{
    char *copy = NULL;
    if (value && !(copy = mbq_strdup(value)))
        return MBQ_ENOMEM;
    free(*field);
    *field = copy;
    return 0;
}

/* The table run as the commit expects a replace load: the copy is its load
 * job, the shadow its staging table (dropped by the commit's cleanup), the
 * mark its high-water mark, and the window [mark - lookback, mark] read
 * with the mark its tail. */
static int fill_run(table_job *t, const mbq_backfill *bf, int64_t rows, int64_t bytes)
{
    int rc;
    if ((rc = set_field(&t->run.load_mode, "replace")) < 0 ||
        (rc = set_field(&t->run.load_job_id, bf->copy_job_id)) < 0 ||
        (rc = set_field(&t->run.staging_table, bf->shadow_table)) < 0 ||
        (rc = set_field(&t->run.merge_job_id, NULL)) < 0 ||
        (rc = set_field(&t->run.staged_path, NULL)) < 0 ||
        (rc = set_field(&t->run.staged_checksum, NULL)) < 0 ||
        (rc = set_field(&t->run.low, NULL)) < 0 || (rc = set_field(&t->run.high, bf->mark)) < 0 ||
        (rc = set_field(&t->run.tail_low, bf->tail_low)) < 0 ||
        (rc = set_field(&t->run.tail_checksum, bf->tail_checksum)) < 0)
        return rc;
    t->run.staged_rows = rows;
    t->run.staged_bytes = bytes;
    t->rows_synced = rows;
    t->backfilled = bf->mark != NULL;
    return 0;
}

int mbq_backfill_extract(sync_ctx *ctx, table_job *t, bool *done)
{
    mbq_backfill bf = {0};
    mbq_backfill_chunk *c = NULL;
    char *print = NULL;
    bool found = false, planned = false, recreated = false, ok = false;
    int n = 0, rc;
    int64_t rows = 0, bytes = 0;
    *done = false;
    if (!ctx->j || !t->load_schema)
        return 0;
    if ((rc = mbq_journal_backfill_get(ctx->j, &bf, &found, t->run.id)) < 0)
        goto out;
    if (found) {
        /* A backfill in flight goes on whatever the config says now. */
        if ((rc = schema_print(&print, t->load_schema)) < 0)
            goto out;
        if (strcmp(print, bf.schema_print) != 0) {
            if ((rc = discard(ctx, t, &bf, "the source's columns changed")) < 0)
                goto out;
            mbq_backfill_clear(&bf);
            found = false;
        }
    }
    if (!found) {
        if (t->tc->chunk_rows <= 0 || (rc = plan(ctx, t, &planned)) < 0 || !planned)
            goto out;
        if ((rc = mbq_journal_backfill_get(ctx->j, &bf, &found, t->run.id)) < 0)
            goto out;
    }
    if ((rc = mbq_journal_chunks_get(ctx->j, &c, &n, t->run.id)) < 0 ||
        (rc = ensure_shadow(ctx, t, &bf, &recreated)) < 0)
        goto out;
    if (recreated && (rc = reset_chunks(ctx, t, c, n)) < 0)
        goto out;
    if ((rc = mbq_backfill_run_chunks(ctx, t, &bf, c, n)) < 0)
        goto out;
    for (int i = 0; i < n; i++) {
        rows += c[i].rows;
        bytes += c[i].bytes;
    }
    if ((rc = check_shadow(ctx, t, &bf, rows, &ok)) < 0)
        goto out;
    if (!ok) {
        /* Never swap a shadow that is not exactly the chunks: read them
         * all again (the message says why). */
        mbq_buf why = MBQ_BUF_INIT;
        mbq_buf_puts(&why, mbq_error_last());
        rc = discard(ctx, t, &bf, mbq_buf_cstr(&why));
        mbq_buf_free(&why);
        if (rc == 0)
            rc = mbq_error_set(MBQ_EBQ, "table '%s': the backfill's shadow table did not hold "
                                        "its chunks' rows; the next run reads them again",
                               t->tc->name);
        goto out;
    }
    if ((rc = swap(ctx, t, &bf, rows)) < 0 || (rc = fill_run(t, &bf, rows, bytes)) < 0)
        goto out;
    remove_dir(ctx, t, c, n);
    *done = true;
out:
    mbq_backfill_clear(&bf);
    mbq_backfill_chunks_free(c, n);
    free(print);
    return rc;
}
