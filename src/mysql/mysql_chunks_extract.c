/* A whole table extracted in key-range chunks on several connections (see
 * mbq/chunks.h, mbq_mysql_extract_chunked): the read side of a backfill. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mbq/chunks.h"
#include "mbq/error.h"
#include "mbq/journal.h"
#include "mbq/log.h"
#include "mbq/util.h"
#include "mbq/banned.h"

typedef struct xpool {
    const mbq_mysql_config *cfg;
    const mbq_extract_options *base;
    const char *dir;
    char **bounds;
    size_t n_bounds;
    size_t next;
    int rc;
    mbq_buf msg;
    mbq_chunked_result *out;
    pthread_mutex_t mu;
} xpool;

static int one_chunk(xpool *p, mbq_mysql *c, size_t i, mbq_extract_result *res)
{
    mbq_buf where = MBQ_BUF_INIT, path = MBQ_BUF_INIT;
    const mbq_extract_options *b = p->base;
    int rc = mbq_mysql_chunk_where(&where, c, b->schema, b->pk, b->n_pk,
                                   i ? p->bounds[i - 1] : NULL,
                                   i < p->n_bounds ? p->bounds[i] : NULL);
    if (rc == 0)
        rc = mbq_buf_printf(&path, "%s/c%05zu.ndjson%s", p->dir, i + 1, b->compress ? ".gz" : "");
    if (rc == 0) {
        mbq_extract_options o = *b;
        o.where = where.ptr;
        o.path = path.ptr;
        o.progress = NULL;
        rc = mbq_mysql_extract(res, c, &o);
    }
    mbq_buf_free(&where);
    mbq_buf_free(&path);
    return rc;
}

static void work(xpool *p, mbq_mysql *c)
{
    for (;;) {
        pthread_mutex_lock(&p->mu);
        size_t i = p->rc == 0 && p->next <= p->n_bounds ? p->next++ : SIZE_MAX;
        pthread_mutex_unlock(&p->mu);
        if (i == SIZE_MAX)
            return;
        mbq_extract_result res = {0};
        int rc = one_chunk(p, c, i, &res);
        pthread_mutex_lock(&p->mu);
        if (rc < 0 && p->rc == 0) {
            p->rc = rc;
            mbq_buf_printf(&p->msg, "chunk %zu: %s", i + 1, mbq_error_last());
        } else if (rc == 0) {
            p->out->rows += res.rows;
            p->out->bytes += res.bytes;
            p->out->raw_bytes += res.raw_bytes;
            p->out->chunks++;
        }
        pthread_mutex_unlock(&p->mu);
        mbq_extract_result_free(&res);
    }
}

static void *thread_main(void *arg)
{
    xpool *p = arg;
    mbq_mysql *c = NULL;
    if (mbq_mysql_connect(&c, p->cfg) == 0)
        work(p, c);
    else
        mbq_log(MBQ_LOG_WARN, NULL, "extract", "a chunk worker cannot connect: %s",
                mbq_error_last());
    mbq_mysql_close(c);
    mbq_mysql_thread_end();
    mbq_error_clear();
    return NULL;
}

int mbq_mysql_extract_chunked(mbq_chunked_result *out, mbq_mysql *c, const mbq_mysql_config *cfg,
                              const mbq_extract_options *base, const char *dir,
                              int64_t chunk_rows, int jobs)
{
    xpool p = {0};
    pthread_t *th = NULL;
    int started = 0, rc;
    int64_t t0 = mbq_monotonic_ms();
    memset(out, 0, sizeof *out);
    if (base->cursor)
        return mbq_error_set(MBQ_ECONFIG, "a chunked extract reads every row: no cursor");
    if ((rc = mbq_mkdir_p(dir)) < 0 ||
        (rc = mbq_mysql_chunk_bounds(&p.bounds, &p.n_bounds, c, base->schema, base->pk,
                                     base->n_pk, chunk_rows)) < 0)
        return rc;
    out->plan_ms = mbq_monotonic_ms() - t0;
    p.cfg = cfg;
    p.base = base;
    p.dir = dir;
    p.out = out;
    if (pthread_mutex_init(&p.mu, NULL) != 0) {
        mbq_strv_free(p.bounds);
        return mbq_error_set(MBQ_ERR, "cannot create a lock");
    }
    if (jobs > 1 && (th = mbq_calloc((size_t)jobs, sizeof *th)))
        for (int k = 1; k < jobs; k++) {
            if (pthread_create(&th[k], NULL, thread_main, &p) != 0)
                break;
            started = k;
        }
    work(&p, c);
    for (int k = 1; k <= started; k++)
        pthread_join(th[k], NULL);
    free(th);
    rc = p.rc;
    if (rc < 0)
        mbq_error_set(rc, "%s", mbq_buf_cstr(&p.msg));
    out->elapsed_ms = mbq_monotonic_ms() - t0;
    pthread_mutex_destroy(&p.mu);
    mbq_buf_free(&p.msg);
    if (p.bounds)
        mbq_strv_free(p.bounds);
    return rc;
}
