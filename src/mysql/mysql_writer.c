/* The MySQL/MariaDB source's writer thread (see mysql_source.c for the
 * pipeline): it takes the chunks the extraction fills from a queue of
 * NSLOTS buffers, hashes them with SHA-256, deflates them when asked, and
 * writes them to the temp file with write-behind, so that the main thread
 * only reads rows from the server and encodes them. */
#define _GNU_SOURCE /* sync_file_range */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mysql.h>
#include <mysqld_error.h>
#include <errmsg.h>
#include <openssl/evp.h>
#include <zlib.h>

#include "mbq/buf.h"
#include "mbq/error.h"
#include "mbq/fault.h"
#include "mbq/log.h"
#include "mbq/machine.h"
#include "mbq/mysql_source.h"
#include "mbq/util.h"

#include "mysql_internal.h"
#include "mbq/banned.h"

/* ---- the writer thread ------------------------------------------------- */

static int write_all(writer *w, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(w->fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return mbq_error_set(MBQ_EIO, "cannot write '%s': %s", w->path, strerror(errno));
        if (w->sink) {
            int src = w->sink(w->sink_ud, p, (size_t)n);
            if (src < 0)
                return mbq_error_wrap(src, "'%s': ", w->path);
        }
        p += n;
        len -= (size_t)n;
        w->file_bytes += (uint64_t)n;
    }
    /* Write-behind: start the disk writes of each WRITE_BEHIND bytes now,
     * so the final fsync waits for the last few MiB, not for the whole
     * file (0.09 s of a 1M-row extract's 1.3 s here), and a big extract
     * never leaves gigabytes dirty. Only a hint: fsync stays the proof. */
    if (w->file_bytes - w->started_bytes >= WRITE_BEHIND) {
        (void)sync_file_range(w->fd, (off_t)w->started_bytes,
                              (off_t)(w->file_bytes - w->started_bytes), SYNC_FILE_RANGE_WRITE);
        w->started_bytes = w->file_bytes;
    }
    return 0;
}

static int deflate_out(writer *w, const void *data, size_t len, int flush)
{
    w->zs.next_in = (unsigned char *)(uintptr_t)data;
    w->zs.avail_in = (uInt)len;
    do {
        w->zs.next_out = w->zout;
        w->zs.avail_out = (uInt)w->zout_cap;
        int zr = deflate(&w->zs, flush);
        if (zr == Z_STREAM_ERROR)
            return mbq_error_set(MBQ_EINTERNAL, "gzip of '%s' failed", w->path);
        size_t have = w->zout_cap - w->zs.avail_out;
        if (have && write_all(w, w->zout, have) < 0)
            return MBQ_EIO;
    } while (w->zs.avail_out == 0 || (flush == Z_FINISH && w->zs.avail_in > 0));
    return 0;
}

static int writer_consume(writer *w, const mbq_buf *b)
{
    if (b->len == 0)
        return 0;
    w->raw_bytes += b->len;
    if (EVP_DigestUpdate(w->sha, b->ptr, b->len) != 1)
        return mbq_error_set(MBQ_EINTERNAL, "sha-256 update failed");
    if (!w->compress)
        return write_all(w, b->ptr, b->len);
    /* zlib's avail_in is 32-bit: feed a huge chunk in pieces. */
    const char *p = b->ptr;
    size_t left = b->len;
    while (left > 0) {
        size_t n = left > (1u << 30) ? (1u << 30) : left;
        if (deflate_out(w, p, n, Z_NO_FLUSH) < 0)
            return MBQ_EIO;
        p += n;
        left -= n;
    }
    return 0;
}

static void *writer_main(void *arg)
{
    writer *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->full_n == 0 && !w->closing)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->full_n == 0)
            break;
        int i = w->full[w->full_head];
        w->full_head = (w->full_head + 1) % NSLOTS;
        w->full_n--;
        int failed = w->err;
        pthread_mutex_unlock(&w->mu);
        /* After a failure keep draining, so the encoder never blocks. */
        int rc = failed ? 0 : writer_consume(w, &w->slot[i]);
        pthread_mutex_lock(&w->mu);
        if (rc < 0 && !w->err) {
            w->err = rc;
            w->errmsg = mbq_strdup(mbq_error_last());
            mbq_error_clear(); /* the per-thread message would outlive the thread */
        }
        mbq_buf_clear(&w->slot[i]);
        w->free_[w->free_n++] = i;
        pthread_cond_broadcast(&w->cv);
    }
    int failed = w->err;
    pthread_mutex_unlock(&w->mu);
    if (!failed && w->compress) {
        int rc = deflate_out(w, "", 0, Z_FINISH);
        if (rc < 0) {
            pthread_mutex_lock(&w->mu);
            w->err = rc;
            w->errmsg = mbq_strdup(mbq_error_last());
            pthread_mutex_unlock(&w->mu);
        }
    }
    /* The thread's error message (thread-local) dies with the thread: free
     * it, its text was copied to w->errmsg for the encoder's side. */
    mbq_error_clear();
    return NULL;
}

int writer_start(writer *w, int fd, const char *path, bool compress, int level,
                        const mbq_extract_options *o)
{
    memset(w, 0, sizeof *w);
    w->sink = o->sink;
    w->sink_ud = o->sink_ud;
    w->fd = fd;
    w->path = path;
    w->compress = compress;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    for (int i = 0; i < NSLOTS; i++)
        w->free_[w->free_n++] = i;
    if (!(w->sha = EVP_MD_CTX_new()) || EVP_DigestInit_ex(w->sha, EVP_sha256(), NULL) != 1)
        return mbq_error_set(MBQ_ENOMEM, "cannot start sha-256");
    if (compress) {
        w->zout_cap = 256 * 1024;
        if (!(w->zout = mbq_malloc(w->zout_cap)))
            return MBQ_ENOMEM;
        /* windowBits 15 + 16: a gzip header and trailer, not zlib's. */
        if (deflateInit2(&w->zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            return mbq_error_set(MBQ_ENOMEM, "cannot start gzip");
        w->zinit = true;
    }
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0)
        return mbq_error_set(MBQ_ERR, "cannot start the writer thread");
    w->started = true;
    return 0;
}

/* An empty chunk to fill, or NULL when the writer has failed. */
mbq_buf *writer_get(writer *w)
{
    pthread_mutex_lock(&w->mu);
    while (w->free_n == 0 && !w->err)
        pthread_cond_wait(&w->cv, &w->mu);
    mbq_buf *b = w->err ? NULL : &w->slot[w->free_[--w->free_n]];
    pthread_mutex_unlock(&w->mu);
    return b;
}

void writer_submit(writer *w, mbq_buf *b)
{
    pthread_mutex_lock(&w->mu);
    w->full[(w->full_head + w->full_n) % NSLOTS] = (int)(b - w->slot);
    w->full_n++;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Stop the thread after it has written what was submitted; returns the
 * writer's error (re-recorded on this thread) or 0. */
static void writer_join(writer *w)
{
    if (!w->started)
        return;
    pthread_mutex_lock(&w->mu);
    w->closing = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    w->started = false;
}

int writer_finish(writer *w)
{
    writer_join(w);
    if (w->err)
        return mbq_error_set(w->err, "%s", w->errmsg ? w->errmsg : "writer failed");
    return 0;
}

void writer_free(writer *w)
{
    if (w->started) {
        /* Error path: make the thread drain and exit without finishing. */
        pthread_mutex_lock(&w->mu);
        if (!w->err)
            w->err = MBQ_ERR;
        pthread_mutex_unlock(&w->mu);
        writer_join(w); /* the caller's error message stays */
    }
    if (w->zinit)
        deflateEnd(&w->zs);
    free(w->zout);
    if (w->sha)
        EVP_MD_CTX_free(w->sha);
    for (int i = 0; i < NSLOTS; i++)
        mbq_buf_free(&w->slot[i]);
    free(w->errmsg);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
}
