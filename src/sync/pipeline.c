/* Streaming extract + load (see mbq/pipeline.h). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "mbq/error.h"
#include "mbq/http.h"
#include "mbq/log.h"
#include "mbq/pipeline.h"
#include "mbq/util.h"
#include "mbq/banned.h"

/* ---- the pipe: a ring buffer under one mutex -------------------------- */

typedef enum pipe_state { PIPE_OPEN = 0, PIPE_COMMITTED, PIPE_ABORTED } pipe_state;

struct mbq_pipe {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* any change: data in, data out, end, reader gone */
    char *buf;
    size_t cap, head, used, peak;
    pipe_state state;
    bool reader_gone;
};

int mbq_pipe_new(mbq_pipe **out, size_t capacity_bytes)
{
    *out = NULL;
    mbq_pipe *p = mbq_calloc(1, sizeof *p);
    if (!p)
        return MBQ_ENOMEM;
    p->cap = capacity_bytes ? capacity_bytes : 4u << 20;
    if (!(p->buf = mbq_malloc(p->cap))) {
        free(p);
        return MBQ_ENOMEM;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    *out = p;
    return 0;
}

void mbq_pipe_free(mbq_pipe *p)
{
    if (!p)
        return;
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->buf);
    free(p);
}

int mbq_pipe_write(mbq_pipe *p, const void *data, size_t len)
{
    const char *src = data;
    pthread_mutex_lock(&p->mu);
    while (len > 0) {
        while (p->used == p->cap && !p->reader_gone)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->reader_gone)
            break; /* the upload failed: the file alone carries the data */
        size_t tail = (p->head + p->used) % p->cap;
        size_t n = p->cap - p->used;
        if (n > p->cap - tail)
            n = p->cap - tail; /* contiguous room up to the end of the ring */
        if (n > len)
            n = len;
        memcpy(p->buf + tail, src, n);
        p->used += n;
        if (p->used > p->peak)
            p->peak = p->used;
        src += n;
        len -= n;
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return 0;
}

void mbq_pipe_end(mbq_pipe *p, bool commit)
{
    pthread_mutex_lock(&p->mu);
    if (p->state == PIPE_OPEN)
        p->state = commit ? PIPE_COMMITTED : PIPE_ABORTED;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

size_t mbq_pipe_read(void *pipe, char *dst, size_t cap)
{
    mbq_pipe *p = pipe;
    size_t n = 0;
    pthread_mutex_lock(&p->mu);
    while (p->used == 0 && p->state == PIPE_OPEN)
        pthread_cond_wait(&p->cv, &p->mu);
    if (p->state == PIPE_ABORTED) {
        /* Never hand out the rest: the request must not reach its end. */
        n = MBQ_HTTP_STREAM_ABORT;
    } else if (p->used > 0) {
        n = p->used;
        if (n > p->cap - p->head)
            n = p->cap - p->head;
        if (n > cap)
            n = cap;
        memcpy(dst, p->buf + p->head, n);
        p->head = (p->head + n) % p->cap;
        p->used -= n;
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return n;
}

void mbq_pipe_reader_gone(mbq_pipe *p)
{
    pthread_mutex_lock(&p->mu);
    p->reader_gone = true;
    p->used = 0;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

size_t mbq_pipe_peak_bytes(const mbq_pipe *p)
{
    return p->peak;
}

/* ---- extract + load --------------------------------------------------- */

typedef struct uploader {
    mbq_pipe *pipe;
    mbq_bq *bq;
    const char *job_id;
    const mbq_bq_load_options *lo;
    mbq_bq_job *job;
    int rc;
    char *errmsg; /* mbq_error_last() is per thread: carried over by hand */
} uploader;

static void *upload_main(void *arg)
{
    uploader *u = arg;
    u->rc = mbq_bq_load_stream(&u->job, u->bq, u->job_id, u->lo, mbq_pipe_read, u->pipe);
    if (u->rc < 0) {
        u->errmsg = mbq_strdup(mbq_error_last());
        /* From now on the extract writes the file only. */
        mbq_pipe_reader_gone(u->pipe);
    }
    /* The per-thread message would outlive the thread, also after a
     * success (a piece retried after a cut leaves its error behind). */
    mbq_error_clear();
    return NULL;
}

typedef struct tap {
    mbq_pipe *pipe;
    int (*inner)(void *ud, const void *data, size_t len);
    void *inner_ud;
} tap;

static int tap_write(void *ud, const void *data, size_t len)
{
    tap *t = ud;
    if (t->inner) {
        int rc = t->inner(t->inner_ud, data, len);
        if (rc < 0)
            return rc;
    }
    return mbq_pipe_write(t->pipe, data, len);
}

int mbq_pipeline_extract_load(mbq_extract_result *xr, mbq_bq_job **job, mbq_mysql *c,
                              const mbq_extract_options *xo, mbq_bq *bq, const char *job_id,
                              const mbq_bq_load_options *lo, const mbq_pipeline_options *po,
                              mbq_pipeline_report *report)
{
    int rc;
    mbq_pipe *pipe = NULL;
    mbq_bq_job *prior = NULL;
    uploader u = {0};
    bool started = false;
    pthread_t th;
    mbq_pipeline_options def = MBQ_PIPELINE_OPTIONS_INIT;
    mbq_pipeline_report rep = {0};
    int64_t t0 = mbq_monotonic_ms();
    if (!po)
        po = &def;
    *job = NULL;
    memset(xr, 0, sizeof *xr);

    /* A pipeline needs a job id of its own: an existing job was made from
     * another extract, and its data cannot be told apart from ours. */
    rc = mbq_bq_job_get(&prior, bq, job_id, lo->location);
    mbq_bq_job_free(prior);
    if (rc == 0) {
        rc = mbq_error_set(MBQ_EEXISTS, "pipeline: load job '%s' exists already: a streamed "
                                        "load needs a new job id",
                           job_id);
        goto done;
    }
    if (rc != MBQ_ENOTFOUND)
        goto done;
    mbq_error_clear();

    if ((rc = mbq_pipe_new(&pipe, po->pipe_bytes)) < 0)
        goto done;
    u.pipe = pipe;
    u.bq = bq;
    u.job_id = job_id;
    u.lo = lo;
    if (pthread_create(&th, NULL, upload_main, &u) != 0) {
        rc = mbq_error_set(MBQ_ERR, "pipeline: cannot start the upload thread");
        goto done;
    }
    started = true;

    mbq_extract_options eo = *xo;
    tap tp = {pipe, xo->sink, xo->sink_ud};
    eo.sink = tap_write;
    eo.sink_ud = &tp;
    int xrc = mbq_mysql_extract(xr, c, &eo);
    rep.extract_ms = mbq_monotonic_ms() - t0;
    bool commit = xrc == 0 && xr->rows > 0 && (!po->keep || po->keep(po->keep_ud, xr));
    /* Only now may the request reach its end: the file is renamed. The
     * load's own time (BigQuery reading the body, the job running) is what
     * the upload thread waits for from here. */
    int64_t t1 = mbq_monotonic_ms();
    mbq_pipe_end(pipe, commit);
    pthread_join(th, NULL);
    started = false;
    rep.aborted = !commit;
    if (xrc < 0) {
        rc = xrc; /* the extract's message is still this thread's */
        mbq_bq_job_free(u.job);
        u.job = NULL;
        goto done;
    }
    if (!commit) {
        /* No rows, or unchanged: the aborted request created no job. */
        mbq_bq_job_free(u.job);
        u.job = NULL;
        mbq_error_clear();
        rc = 0;
        goto done;
    }
    if (u.rc == 0) {
        *job = u.job;
        u.job = NULL;
        rep.load_wait_ms = mbq_monotonic_ms() - t1;
        rc = 0;
        goto done;
    }
    rep.upload_failed = true;
    mbq_log(MBQ_LOG_WARN, lo->table, "stage", "streamed upload of job '%s' failed: %s", job_id,
            u.errmsg ? u.errmsg : "unknown error");
    if (u.rc == MBQ_EBQ && !po->retry_job_id) {
        /* BigQuery refused the rows themselves: a retry would too. */
        rc = mbq_error_set(u.rc, "%s", u.errmsg ? u.errmsg : "streamed upload failed");
        goto done;
    }
    if (!po->retry_job_id) {
        rc = mbq_error_set(u.rc, "%s (the file '%s' is complete: load it again)",
                           u.errmsg ? u.errmsg : "streamed upload failed", xo->path);
        goto done;
    }
    /* The request may have reached its end before it failed (an answer lost
     * on the way back): then the job ran and counted our rows. */
    prior = NULL;
    if (mbq_bq_job_get(&prior, bq, job_id, lo->location) == 0 && prior->state &&
        strcmp(prior->state, "DONE") == 0 && !prior->error_reason &&
        prior->output_rows == (int64_t)xr->rows) {
        *job = prior;
        rep.load_wait_ms = mbq_monotonic_ms() - t1;
        rc = 0;
        goto done;
    }
    mbq_bq_job_free(prior);
    mbq_error_clear();
    mbq_bq_load_options rl = *lo;
    rl.path = xo->path;
    rep.retried = true;
    rc = mbq_bq_load_file(job, bq, po->retry_job_id, &rl);
    rep.load_wait_ms = mbq_monotonic_ms() - t1;

done:
    if (started) {
        mbq_pipe_end(pipe, false);
        pthread_join(th, NULL);
    }
    if (pipe)
        rep.pipe_peak_bytes = mbq_pipe_peak_bytes(pipe);
    if (report)
        *report = rep;
    mbq_bq_job_free(u.job);
    free(u.errmsg);
    mbq_pipe_free(pipe);
    return rc;
}
