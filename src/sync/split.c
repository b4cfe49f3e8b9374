/* Splitting a staged file into parts under BigQuery's per-file limit
 * (mbq/split.h).
 *
 * The size of a gzip part is only known once it is finished, so the writer
 * bounds it: every `flush_every` input bytes the deflate stream is flushed
 * (Z_SYNC_FLUSH), after which everything so far is out and counted. A line
 * is added only if the bytes out so far plus zlib's worst case for the
 * input since the last flush plus that line (deflateBound, which includes
 * the gzip trailer) stay within the bound. A flush costs a few bytes; one
 * per MiB is nothing. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "mbq/buf.h"
#include "mbq/error.h"
#include "mbq/fault.h"
#include "mbq/split.h"
#include "mbq/util.h"
#include "mbq/banned.h"

typedef struct part_writer {
    const mbq_split_options *o;
    int fd;
    mbq_buf tmp, path;
    z_stream z;
    bool z_open;
    EVP_MD_CTX *sha;
    int64_t rows, out_bytes, since_flush, flush_every;
    unsigned char zbuf[64 * 1024];
} part_writer;

static int write_all(part_writer *w, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t k = write(w->fd, p, len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return mbq_error_set(MBQ_EIO, "cannot write '%s': %s", w->tmp.ptr, strerror(errno));
        p += k;
        len -= (size_t)k;
        w->out_bytes += k;
    }
    return 0;
}

static int deflate_out(part_writer *w, const void *data, size_t len, int flush)
{
    w->z.next_in = (Bytef *)data;
    w->z.avail_in = (uInt)len;
    int zr;
    do {
        w->z.next_out = w->zbuf;
        w->z.avail_out = sizeof w->zbuf;
        zr = deflate(&w->z, flush);
        if (zr == Z_STREAM_ERROR)
            return mbq_error_set(MBQ_EINTERNAL, "deflate failed for '%s'", w->tmp.ptr);
        size_t have = sizeof w->zbuf - w->z.avail_out;
        int rc = have ? write_all(w, w->zbuf, have) : 0;
        if (rc < 0)
            return rc;
    } while (w->z.avail_out == 0 || (flush == Z_FINISH && zr != Z_STREAM_END));
    return 0;
}

static int part_open(part_writer *w, int part)
{
    int rc;
    mbq_buf_clear(&w->path);
    mbq_buf_clear(&w->tmp);
    if ((rc = mbq_buf_printf(&w->path, "%s.part%04d", w->o->path, part)) < 0 ||
        (rc = mbq_buf_printf(&w->tmp, "%s.tmp", w->path.ptr)) < 0)
        return rc;
    w->fd = open(w->tmp.ptr, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (w->fd < 0)
        return mbq_error_set(MBQ_EIO, "cannot create '%s': %s", w->tmp.ptr, strerror(errno));
    w->rows = w->out_bytes = w->since_flush = 0;
    if (!(w->sha = EVP_MD_CTX_new()) || EVP_DigestInit_ex(w->sha, EVP_sha256(), NULL) != 1)
        return mbq_error_set(MBQ_ENOMEM, "cannot start sha-256");
    if (w->o->gzip) {
        memset(&w->z, 0, sizeof w->z);
        if (deflateInit2(&w->z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            return mbq_error_set(MBQ_ENOMEM, "cannot start gzip for '%s'", w->tmp.ptr);
        w->z_open = true;
    }
    return 0;
}

/* Would `len` more bytes keep the part within the bound? */
static bool part_fits(part_writer *w, size_t len)
{
    int64_t max = w->o->max_part_bytes;
    if (!w->o->gzip)
        return w->out_bytes + (int64_t)len <= max;
    return w->out_bytes + (int64_t)deflateBound(&w->z, (uLong)(w->since_flush + (int64_t)len)) <=
           max;
}

static int part_add(part_writer *w, const char *line, size_t len)
{
    int rc;
    if (EVP_DigestUpdate(w->sha, line, len) != 1)
        return mbq_error_set(MBQ_EINTERNAL, "sha-256 update failed");
    w->rows++;
    if (!w->o->gzip)
        return write_all(w, line, len);
    w->since_flush += (int64_t)len;
    int flush = w->since_flush >= w->flush_every ? Z_SYNC_FLUSH : Z_NO_FLUSH;
    if ((rc = deflate_out(w, line, len, flush)) < 0)
        return rc;
    if (flush == Z_SYNC_FLUSH)
        w->since_flush = 0;
    return 0;
}

/* Finish, fsync and rename the current part; describe it in *p. */
static int part_close(part_writer *w, mbq_load_part *p, int part)
{
    int rc = 0;
    if (w->z_open) {
        rc = deflate_out(w, "", 0, Z_FINISH);
        deflateEnd(&w->z);
        w->z_open = false;
    }
    if (rc == 0 && fsync(w->fd) != 0)
        rc = mbq_error_set(MBQ_EIO, "cannot fsync '%s': %s", w->tmp.ptr, strerror(errno));
    if (close(w->fd) != 0 && rc == 0)
        rc = mbq_error_set(MBQ_EIO, "cannot close '%s': %s", w->tmp.ptr, strerror(errno));
    w->fd = -1;
    if (rc == 0 && rename(w->tmp.ptr, w->path.ptr) != 0)
        rc = mbq_error_set(MBQ_EIO, "cannot rename '%s' to '%s': %s", w->tmp.ptr, w->path.ptr,
                           strerror(errno));
    if (rc == 0)
        rc = mbq_sha256_hex(&p->checksum, w->sha);
    EVP_MD_CTX_free(w->sha);
    w->sha = NULL;
    if (rc < 0)
        return rc;
    p->part = part;
    p->rows = w->rows;
    p->bytes = w->out_bytes;
    if (!(p->path = mbq_strdup(w->path.ptr)))
        return MBQ_ENOMEM;
    return 0;
}

static void writer_abort(part_writer *w)
{
    if (w->z_open)
        deflateEnd(&w->z);
    w->z_open = false;
    if (w->fd >= 0) {
        close(w->fd);
        unlink(w->tmp.ptr);
    }
    w->fd = -1;
    EVP_MD_CTX_free(w->sha);
    w->sha = NULL;
}

static int grow_parts(mbq_load_part **v, int n, int *cap)
{
    if (n < *cap)
        return 0;
    int c = *cap ? *cap * 2 : 8;
    mbq_load_part *g = mbq_realloc(*v, (size_t)c * sizeof *g);
    if (!g)
        return MBQ_ENOMEM;
    memset(g + *cap, 0, (size_t)(c - *cap) * sizeof *g);
    *v = g;
    *cap = c;
    return 0;
}

/* One line (with its '\n') into the current part, opening the next part
 * when it would not fit. */
static int put_line(part_writer *w, mbq_load_part **parts, int *n, int *cap, const char *line,
                    size_t len)
{
    int rc;
    if (w->fd >= 0 && w->rows > 0 && !part_fits(w, len)) {
        if ((rc = grow_parts(parts, *n, cap)) < 0 ||
            (rc = part_close(w, &(*parts)[*n], *n + 1)) < 0)
            return rc;
        (*n)++;
    }
    if (w->fd < 0 && (rc = part_open(w, *n + 1)) < 0)
        return rc;
    if (!part_fits(w, len))
        return mbq_error_set(MBQ_EDATA,
                             "staged file '%s': row %" PRId64 " alone (%zu bytes) is larger than "
                             "bigquery.max_load_file_size (%" PRId64 " bytes)",
                             w->o->path, w->rows + 1, len, w->o->max_part_bytes);
    return part_add(w, line, len);
}

int mbq_split_file(mbq_load_part **out, int *n_out, bool *mismatch, const mbq_split_options *o)
{
    int rc = 0, n = 0, cap = 0;
    mbq_load_part *parts = NULL;
    part_writer w = {.o = o, .fd = -1, .tmp = MBQ_BUF_INIT, .path = MBQ_BUF_INIT};
    mbq_buf line = MBQ_BUF_INIT;
    char *sum = NULL;
    int64_t rows = 0;
    EVP_MD_CTX *all = EVP_MD_CTX_new();
    gzFile in = gzopen(o->path, "rb"); /* reads plain files as they are, too */
    *out = NULL;
    *n_out = 0;
    *mismatch = false;
    w.flush_every = o->max_part_bytes / 8 < 1024 * 1024 ? o->max_part_bytes / 8 : 1024 * 1024;
    if (!all || EVP_DigestInit_ex(all, EVP_sha256(), NULL) != 1) {
        rc = mbq_error_set(MBQ_ENOMEM, "cannot start sha-256");
        goto done;
    }
    if (!in) {
        rc = mbq_error_set(MBQ_EIO, "cannot open '%s': %s", o->path, strerror(errno));
        goto done;
    }
    char buf[64 * 1024];
    for (;;) {
        int k = gzread(in, buf, sizeof buf);
        if (k < 0) {
            int e;
            const char *msg = gzerror(in, &e);
            rc = mbq_error_set(MBQ_EIO, "cannot read '%s': %s", o->path, msg);
            goto done;
        }
        if (k == 0)
            break;
        if (EVP_DigestUpdate(all, buf, (size_t)k) != 1) {
            rc = mbq_error_set(MBQ_EINTERNAL, "sha-256 update failed");
            goto done;
        }
        const char *p = buf, *end = buf + k;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t take = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
            if ((rc = mbq_buf_append(&line, p, take)) < 0)
                goto done;
            p += take;
            if (!nl)
                break;
            if ((rc = put_line(&w, &parts, &n, &cap, line.ptr, line.len)) < 0)
                goto done;
            rows++;
            mbq_buf_clear(&line);
        }
    }
    if (line.len > 0) {
        *mismatch = true;
        rc = mbq_error_set(MBQ_EIO, "staged file '%s' ends inside a row", o->path);
        goto done;
    }
    if (w.fd >= 0) {
        if ((rc = grow_parts(&parts, n, &cap)) < 0 || (rc = part_close(&w, &parts[n], n + 1)) < 0)
            goto done;
        n++;
    }
    if ((rc = mbq_sha256_hex(&sum, all)) < 0)
        goto done;
    if ((o->expect_rows >= 0 && rows != o->expect_rows) ||
        (o->expect_checksum && strcmp(sum, o->expect_checksum) != 0)) {
        *mismatch = true;
        rc = mbq_error_set(MBQ_EIO,
                           "staged file '%s' holds %" PRId64 " rows with %s, not what was "
                           "extracted (%" PRId64 " rows with %s)",
                           o->path, rows, sum, o->expect_rows,
                           o->expect_checksum ? o->expect_checksum : "any checksum");
        goto done;
    }
    if ((rc = mbq_fsync_parent_dir(o->path)) < 0)
        goto done;
    mbq_fault_point("split.done");
    *out = parts;
    *n_out = n;
    parts = NULL;
    n = 0;
done:
    writer_abort(&w);
    if (parts) {
        mbq_split_remove(parts, n);
        mbq_load_parts_free(parts, n);
    }
    if (in)
        gzclose(in);
    EVP_MD_CTX_free(all);
    free(sum);
    mbq_buf_free(&line);
    mbq_buf_free(&w.tmp);
    mbq_buf_free(&w.path);
    return rc;
}

void mbq_split_remove(const mbq_load_part *parts, int n)
{
    for (int i = 0; i < n; i++)
        if (parts[i].path)
            unlink(parts[i].path);
}
