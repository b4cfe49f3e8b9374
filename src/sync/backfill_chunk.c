/* The chunks of a backfill (see backfill.c): each read in its own short
 * snapshot and appended to the shadow table by its own load job, spread
 * over `--jobs` workers, each with its own MySQL connection, BigQuery
 * client and journal connection (MBQ_JOURNAL_ATTACH), as sync.c's workers.
 *
 * A chunk's states (sql/journal/005_backfill.sql) and what a kill in each
 * leaves:
 *   planned    nothing read, or a file half written (<path>.tmp, removed by
 *              the extract's failure or left to the directory's cleanup):
 *              read it, under attempt + 1.
 *   extracted  the file is complete and its job id journaled; the job may
 *              or may not exist: load under the same id, which finds a job
 *              that ran (BigQuery refuses a second job with a known id) and
 *              waits for it, so the rows are appended once.
 *   loaded     done; its file is gone.
 * Memory per worker: the extract's bounded writer queue (4 x 1 MiB hand-off
 * buffers, mysql_use_result streaming) and one upload request's buffer. */
#include <inttypes.h>
#include <pthread.h>
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
#include "mbq/progress.h"
#include "mbq/split.h"
#include "mbq/util.h"
#include "backfill_internal.h"
#include "mbq/banned.h"

typedef struct pool {
    sync_ctx *ctx;
    table_job *t;
    const mbq_backfill *bf;
    mbq_backfill_chunk *c;
    int n;
    int next;            /* the next chunk index to look at */
    int failed_rc;       /* the first error; the others stop taking chunks */
    mbq_buf failed_msg;
    int loaded, total;   /* chunks */
    int loaded_here;     /* chunks loaded by this run (the ETA's rate) */
    int64_t rows, bytes; /* in loaded chunks */
    mbq_progress *prog;
    int64_t start_ms;
    pthread_mutex_t mu;
} pool;

void mbq_backfill_remove_files(const mbq_backfill_chunk *c)
{
    if (!c->path)
        return;
    mbq_buf p = MBQ_BUF_INIT;
    unlink(c->path);
    if (mbq_buf_printf(&p, "%s.tmp", c->path) == 0)
        unlink(p.ptr);
    for (int k = 1; k < 100000; k++) {
        mbq_buf_clear(&p);
        if (mbq_buf_printf(&p, "%s.part%04d", c->path, k) < 0 || unlink(p.ptr) < 0)
            break;
    }
    mbq_buf_free(&p);
}

/* mbq_chunk_<run>_<table run>_c<chunk>_<attempt>[_p<part>] */
static int chunk_job_id(char **out, const table_job *t, const mbq_backfill_chunk *c, int part)
{
    mbq_buf b = MBQ_BUF_INIT;
    char trid[32], ck[32], att[16];
    snprintf(trid, sizeof trid, "%" PRId64, t->run.id);
    snprintf(ck, sizeof ck, part ? "c%d_p%d" : "c%d", c->chunk, part);
    snprintf(att, sizeof att, "%d", c->attempt);
    int rc = mbq_bq_job_id(&b, "mbq_chunk", t->run.run_id, trid, ck, att, (const char *)NULL);
    if (rc == 0 && !(*out = mbq_buf_detach(&b)))
        rc = MBQ_ENOMEM;
    mbq_buf_free(&b);
    return rc;
}

/* Read chunk c in its own snapshot into a new file; journal it. */
static int extract_chunk(sync_ctx *ctx, table_job *t, mbq_backfill_chunk *c)
{
    mbq_buf dir = MBQ_BUF_INIT, path = MBQ_BUF_INIT, where = MBQ_BUF_INIT;
    mbq_extract_result res = {0};
    const char *const *key = (const char *const *)t->tc->primary_key;
    int rc;
    mbq_backfill_remove_files(c);
    c->attempt++;
    free(c->job_id);
    free(c->path);
    c->job_id = c->path = NULL;
    if ((rc = mbq_backfill_dir(&dir, ctx, t)) < 0 || (rc = mbq_mkdir_p(dir.ptr)) < 0 ||
        (rc = mbq_buf_printf(&path, "%s/c%d.%d.ndjson%s", dir.ptr, c->chunk, c->attempt,
                             ctx->cfg->bigquery.compress ? ".gz" : "")) < 0 ||
        (rc = mbq_mysql_chunk_where(&where, ctx->my, t->src, key, t->tc->n_primary_key,
                                    c->key_after, c->key_upto)) < 0)
        goto done;
    mbq_extract_options eo = MBQ_EXTRACT_OPTIONS_INIT;
    eo.schema = t->src;
    eo.pk = key;
    eo.n_pk = t->tc->n_primary_key;
    eo.where = where.ptr;
    eo.path = path.ptr;
    eo.compress = ctx->cfg->bigquery.compress;
    eo.log_table = t->tc->name;
    if ((rc = mbq_mysql_extract(&res, ctx->my, &eo)) < 0)
        goto done;
    c->rows = (int64_t)res.rows;
    c->bytes = (int64_t)res.bytes;
    /* BigQuery's per-file limit holds by construction: a chunk file above
     * bigquery.max_load_file_size loads in parts, their size fixed now. */
    c->part_bytes = c->bytes > ctx->cfg->bigquery.max_load_file_bytes
                        ? ctx->cfg->bigquery.max_load_file_bytes
                        : 0;
    if (res.rows == 0) {
        c->state = MBQ_CHUNK_LOADED; /* rows deleted since the plan: nothing to load */
    } else {
        c->state = MBQ_CHUNK_EXTRACTED;
        if (!(c->path = mbq_buf_detach(&path)) || (rc = chunk_job_id(&c->job_id, t, c, 0)) < 0) {
            rc = rc < 0 ? rc : MBQ_ENOMEM;
            goto done;
        }
    }
    if ((rc = mbq_journal_chunk_save(ctx->j, t->run.id, c)) < 0)
        goto done;
    mbq_fault_point("backfill.chunk_extracted");
done:
    if (rc < 0 && path.ptr)
        unlink(path.ptr);
    mbq_extract_result_free(&res);
    mbq_buf_free(&dir);
    mbq_buf_free(&path);
    mbq_buf_free(&where);
    return rc;
}

/* Append one file of `rows` rows to the shadow as job `job_id`. */
static int load_one(sync_ctx *ctx, table_job *t, const mbq_backfill *bf, const char *file,
                    const char *job_id, int64_t rows, bool *job_failed)
{
    mbq_bq_job *job = NULL;
    mbq_bq_load_options lo = MBQ_BQ_LOAD_OPTIONS_INIT;
    lo.dataset = ctx->cfg->bigquery.dataset;
    lo.table = bf->shadow_table;
    lo.path = file;
    lo.schema = t->load_schema;
    lo.write_disposition = MBQ_BQ_WRITE_APPEND;
    lo.create_disposition = MBQ_BQ_CREATE_NEVER;
    mbq_fault_point("backfill.load_submit");
    int rc = mbq_bq_load_file(&job, ctx->bq, job_id, &lo);
    /* MBQ_EBQ from the call: BigQuery refused the job or it failed. */
    if (job_failed)
        *job_failed = rc == MBQ_EBQ;
    /* BigQuery reports outputRows for every load. A job found by its id
     * that reports another count (or none: an appended table cannot be
     * counted for one job) is not proof the rows are in: stop, never load
     * again blindly (that could append them twice). */
    if (rc == 0 && (job->output_rows >= 0 ? job->output_rows != rows : job->existed))
        rc = mbq_error_set(MBQ_EBQ,
                           "chunk load job '%s' reports %" PRId64 " rows where %" PRId64
                           " were read",
                           job_id, job->output_rows, rows);
    mbq_bq_job_free(job);
    return rc;
}

static int load_parts(sync_ctx *ctx, table_job *t, const mbq_backfill *bf,
                      const mbq_backfill_chunk *c)
{
    mbq_load_part *parts = NULL;
    int np = 0, rc;
    bool mismatch = false;
    size_t pl = strlen(c->path);
    mbq_split_options so = {c->path, pl > 3 && strcmp(c->path + pl - 3, ".gz") == 0,
                            c->part_bytes, c->rows, NULL};
    /* The same file cut at the same size gives the same parts: a part's job
     * found by its id holds exactly that part. */
    if ((rc = mbq_split_file(&parts, &np, &mismatch, &so)) < 0)
        return rc;
    for (int i = 0; rc == 0 && i < np; i++) {
        char *id = NULL;
        if ((rc = chunk_job_id(&id, t, c, parts[i].part)) == 0)
            rc = load_one(ctx, t, bf, parts[i].path, id, parts[i].rows, NULL);
        free(id);
    }
    mbq_split_remove(parts, np);
    mbq_load_parts_free(parts, np);
    return rc;
}

/* The file of an extracted chunk is gone (cleaned by hand). If its job
 * provably never ran, read it again; if it ran, it is loaded. */
static int file_lost(sync_ctx *ctx, table_job *t, mbq_backfill_chunk *c, bool *loaded)
{
    mbq_bq_job *job = NULL;
    char *id = NULL;
    int rc = c->part_bytes ? chunk_job_id(&id, t, c, 1) : 0;
    if (rc < 0)
        return rc;
    rc = mbq_bq_job_get(&job, ctx->bq, id ? id : c->job_id, NULL);
    *loaded = false;
    if (rc == MBQ_ENOTFOUND) {
        mbq_error_clear();
        mbq_log(MBQ_LOG_WARN, t->tc->name, "extract",
                "chunk %d: file '%s' is gone and was never loaded: reading it again", c->chunk,
                c->path);
        rc = extract_chunk(ctx, t, c);
    } else if (rc == 0 && !c->part_bytes && job->state && strcmp(job->state, "DONE") == 0 &&
               !job->error_reason && job->output_rows == c->rows) {
        *loaded = true;
    } else if (rc == 0) {
        rc = mbq_error_set(MBQ_EDATA,
                           "table '%s': chunk %d's file '%s' is gone and its load job '%s' "
                           "cannot prove it holds the chunk; run 'mbq-state reset %s --full "
                           "--yes' to start the backfill again",
                           t->tc->name, c->chunk, c->path, id ? id : c->job_id, t->tc->name);
    }
    mbq_bq_job_free(job);
    free(id);
    return rc;
}

static int do_chunk(sync_ctx *ctx, table_job *t, const mbq_backfill *bf, mbq_backfill_chunk *c)
{
    int rc = 0;
    bool loaded = false;
    int64_t t0 = mbq_monotonic_ms(), t1;
    if (c->state == MBQ_CHUNK_PLANNED && (rc = extract_chunk(ctx, t, c)) < 0)
        return rc;
    if (c->state == MBQ_CHUNK_EXTRACTED && !mbq_file_exists(c->path) &&
        (rc = file_lost(ctx, t, c, &loaded)) < 0)
        return rc;
    t1 = mbq_monotonic_ms();
    if (c->state == MBQ_CHUNK_EXTRACTED && !loaded) {
        bool job_failed = false;
        rc = c->part_bytes ? load_parts(ctx, t, bf, c)
                           : load_one(ctx, t, bf, c->path, c->job_id, c->rows, &job_failed);
        if (rc == MBQ_EBQ && job_failed) {
            /* The job ran and failed: it appended nothing (a load is
             * atomic). The next try needs a new id, or it would find the
             * failed job again; the file is the same. (A chunk in parts
             * keeps its ids: a new attempt would load again the parts
             * that did go in.) */
            char *fresh = NULL;
            mbq_buf msg = MBQ_BUF_INIT;
            mbq_buf_puts(&msg, mbq_error_last());
            c->attempt++;
            if (chunk_job_id(&fresh, t, c, 0) == 0) {
                free(c->job_id);
                c->job_id = fresh;
                if (mbq_journal_chunk_save(ctx->j, t->run.id, c) < 0)
                    mbq_log(MBQ_LOG_WARN, t->tc->name, "extract",
                            "chunk %d: cannot record its new job id: %s", c->chunk,
                            mbq_error_last());
            }
            mbq_error_set(rc, "%s", mbq_buf_cstr(&msg));
            mbq_buf_free(&msg);
        }
        if (rc < 0)
            return rc;
    }
    if (c->state == MBQ_CHUNK_EXTRACTED) {
        mbq_fault_point("backfill.chunk_load_done");
        c->state = MBQ_CHUNK_LOADED;
        if ((rc = mbq_journal_chunk_save(ctx->j, t->run.id, c)) < 0)
            return rc;
        mbq_backfill_remove_files(c);
        mbq_fault_point("backfill.chunk_loaded");
    }
    mbq_log(MBQ_LOG_INFO, t->tc->name, "extract",
            "chunk %d: %" PRId64 " rows, %" PRId64 " bytes (read %" PRId64 " ms, load %" PRId64
            " ms)",
            c->chunk, c->rows, c->bytes, t1 - t0, mbq_monotonic_ms() - t1);
    return 0;
}

static void progress_draw(pool *p)
{
    int64_t elapsed = mbq_monotonic_ms() - p->start_ms;
    int64_t eta = p->loaded_here > 0 ? elapsed * (p->total - p->loaded) / p->loaded_here : -1;
    mbq_progress_chunks(p->prog, p->loaded, p->total, eta);
    mbq_progress_update(p->prog, p->rows, p->bytes);
}

/* The next chunk to do, or -1; also -1 once a worker failed. */
static int take(pool *p)
{
    int i = -1;
    pthread_mutex_lock(&p->mu);
    while (p->failed_rc == 0 && p->next < p->n && i < 0) {
        if (p->c[p->next].state != MBQ_CHUNK_LOADED)
            i = p->next;
        p->next++;
    }
    pthread_mutex_unlock(&p->mu);
    return i;
}

static void work(pool *p, sync_ctx *ctx)
{
    int i;
    while ((i = take(p)) >= 0) {
        int rc = do_chunk(ctx, p->t, p->bf, &p->c[i]);
        pthread_mutex_lock(&p->mu);
        if (rc < 0 && p->failed_rc == 0) {
            p->failed_rc = rc;
            mbq_buf_printf(&p->failed_msg, "table '%s': chunk %d: %s", p->t->tc->name,
                           p->c[i].chunk, mbq_error_last());
        } else if (rc == 0) {
            p->loaded++;
            p->loaded_here++;
            p->rows += p->c[i].rows;
            p->bytes += p->c[i].bytes;
            progress_draw(p);
        }
        pthread_mutex_unlock(&p->mu);
    }
}

typedef struct worker {
    pool *p;
    sync_ctx ctx; /* its own connections */
    const char *location;
    pthread_t thread;
} worker;

static void *worker_main(void *arg)
{
    worker *w = arg;
    const mbq_config *cfg = w->ctx.cfg;
    int rc = mbq_journal_open(&w->ctx.j, cfg->state_dir, MBQ_JOURNAL_ATTACH);
    if (rc == 0)
        rc = mbq_mysql_connect(&w->ctx.my, &cfg->mysql);
    if (rc == 0) {
        mbq_bq_options bo;
        mbq_bq_options_from_config(&bo, &cfg->bigquery);
        bo.location = w->location;
        rc = mbq_bq_new(&w->ctx.bq, &bo);
    }
    if (rc == 0)
        work(w->p, &w->ctx);
    else
        /* The run's own connection still works the chunks: fewer at once. */
        mbq_log(MBQ_LOG_WARN, w->p->t->tc->name, "extract",
                "a backfill worker cannot connect, fewer chunks at a time: %s", mbq_error_last());
    mbq_bq_free(w->ctx.bq);
    mbq_mysql_close(w->ctx.my);
    mbq_journal_close(w->ctx.j);
    mbq_mysql_thread_end();
    mbq_error_clear();
    return NULL;
}

int mbq_backfill_run_chunks(sync_ctx *ctx, table_job *t, const mbq_backfill *bf,
                            mbq_backfill_chunk *c, int n)
{
    pool p = {0};
    worker *ws = NULL;
    int started = 0, n_workers = ctx->jobs > 1 ? ctx->jobs : 1;
    int64_t t0 = mbq_monotonic_ms();
    mbq_buf label = MBQ_BUF_INIT;
    p.ctx = ctx;
    p.t = t;
    p.bf = bf;
    p.c = c;
    p.n = n;
    p.total = n;
    p.start_ms = t0;
    for (int i = 0; i < n; i++)
        if (c[i].state == MBQ_CHUNK_LOADED) {
            p.loaded++;
            p.rows += c[i].rows;
            p.bytes += c[i].bytes;
        }
    if (pthread_mutex_init(&p.mu, NULL) != 0)
        return mbq_error_set(MBQ_ERR, "cannot create the backfill's lock");
    if (mbq_buf_printf(&label, "%s backfill", t->tc->name) == 0)
        mbq_progress_new(&p.prog, label.ptr,
                         ctx->progress ? MBQ_PROGRESS_AUTO : MBQ_PROGRESS_OFF);
    mbq_log(MBQ_LOG_INFO, t->tc->name, "extract",
            "backfill: %d of %d chunks loaded, %d workers", p.loaded, n, n_workers);
    if (n - p.loaded < n_workers)
        n_workers = n - p.loaded > 0 ? n - p.loaded : 1;
    if (n_workers > 1 && !(ws = mbq_calloc((size_t)n_workers, sizeof *ws)))
        n_workers = 1;
    mbq_fault_enabled(); /* read the environment once, before any thread */
    for (int k = 1; k < n_workers; k++) {
        ws[k].p = &p;
        ws[k].ctx = *ctx;
        ws[k].ctx.j = NULL;
        ws[k].ctx.my = NULL;
        ws[k].ctx.bq = NULL;
        ws[k].location = ctx->bq ? mbq_bq_location(ctx->bq) : NULL;
        if (pthread_create(&ws[k].thread, NULL, worker_main, &ws[k]) != 0)
            break;
        started = k;
    }
    work(&p, ctx); /* the calling thread is worker 0, on the run's connections */
    for (int k = 1; k <= started; k++)
        pthread_join(ws[k].thread, NULL);
    free(ws);
    t->run.t_extract_ms += mbq_monotonic_ms() - t0;
    int rc = p.failed_rc;
    if (rc < 0) {
        mbq_progress_free(p.prog);
        mbq_error_set(rc, "%s", mbq_buf_cstr(&p.failed_msg));
    } else {
        mbq_progress_finish(p.prog);
        if (p.loaded < n)
            rc = mbq_error_set(MBQ_EINTERNAL, "table '%s': backfill ended with %d of %d chunks",
                               t->tc->name, p.loaded, n);
    }
    pthread_mutex_destroy(&p.mu);
    mbq_buf_free(&p.failed_msg);
    mbq_buf_free(&label);
    return rc;
}
