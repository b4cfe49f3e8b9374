/* Small helpers (see mbq/util.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <libgen.h>
#include <uuid/uuid.h>
#include <openssl/evp.h>
#include <zlib.h>

#include "mbq/buf.h"
#include "mbq/error.h"
#include "mbq/exitcode.h"
#include "mbq/util.h"
#include "mbq/banned.h"

static unsigned long alloc_calls;
static long alloc_fail_at = -1;

/* Returns 1 when this allocation should fail on purpose (MBQ_FAIL_ALLOC). */
static int alloc_should_fail(void)
{
    if (alloc_fail_at == -1) {
        const char *s = getenv("MBQ_FAIL_ALLOC");
        alloc_fail_at = s && atol(s) > 0 ? atol(s) : 0;
    }
    unsigned long n = __atomic_add_fetch(&alloc_calls, 1, __ATOMIC_RELAXED);
    return alloc_fail_at > 0 && n == (unsigned long)alloc_fail_at;
}

unsigned long mbq_alloc_count(void)
{
    return alloc_calls;
}

void *mbq_malloc(size_t size)
{
    void *p = alloc_should_fail() ? NULL : malloc(size ? size : 1);
    if (!p)
        mbq_error_set(MBQ_ENOMEM, "out of memory (%zu bytes)", size);
    return p;
}

void *mbq_calloc(size_t n, size_t size)
{
    void *p = alloc_should_fail() ? NULL : calloc(n ? n : 1, size ? size : 1);
    if (!p)
        mbq_error_set(MBQ_ENOMEM, "out of memory (%zu x %zu bytes)", n, size);
    return p;
}

void *mbq_realloc(void *old, size_t size)
{
    void *p = alloc_should_fail() ? NULL : realloc(old, size ? size : 1);
    if (!p)
        mbq_error_set(MBQ_ENOMEM, "out of memory (%zu bytes)", size);
    return p;
}

char *mbq_strndup(const char *s, size_t n)
{
    if (!s)
        return NULL;
    char *p = mbq_malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

char *mbq_strdup(const char *s)
{
    return s ? mbq_strndup(s, strlen(s)) : NULL;
}

int64_t mbq_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t mbq_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int mbq_buf_time_iso(mbq_buf *b, int64_t ms)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r(&secs, &tm))
        return mbq_buf_puts(b, "invalid-time");
    return mbq_buf_printf(b, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                          tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                          (int)(ms % 1000));
}

void mbq_sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

uint64_t mbq_random_u64(void)
{
    uint64_t v = 0;
    if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v)
        v = (uint64_t)mbq_monotonic_ms() * 6364136223846793005ULL + (uint64_t)getpid();
    return v;
}

void mbq_uuid(char out[37])
{
    uuid_t u;
    uuid_generate_random(u);
    uuid_unparse_lower(u, out);
}

int mbq_file_read_all(mbq_buf *out, const char *path)
{
    int rc = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return mbq_error_set(errno == ENOENT ? MBQ_ENOTFOUND : MBQ_EIO, "cannot open '%s': %s",
                             path, strerror(errno));
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if ((rc = mbq_buf_append(out, chunk, n)) < 0)
            goto done;
    }
    if (ferror(f))
        rc = mbq_error_set(MBQ_EIO, "cannot read '%s': %s", path, strerror(errno));
done:
    fclose(f);
    return rc;
}

int mbq_fsync_parent_dir(const char *path)
{
    int rc = 0;
    char *copy = mbq_strdup(path);
    if (!copy)
        return MBQ_ENOMEM;
    const char *dir = dirname(copy);
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0 || fsync(fd) < 0)
        rc = mbq_error_set(MBQ_EIO, "cannot fsync directory '%s': %s", dir, strerror(errno));
    if (fd >= 0)
        close(fd);
    free(copy);
    return rc;
}

int mbq_file_write_atomic(const char *path, const void *data, size_t len)
{
    int rc = 0, fd = -1;
    mbq_buf tmp = MBQ_BUF_INIT;
    if ((rc = mbq_buf_printf(&tmp, "%s.tmp.%d", path, (int)getpid())) < 0)
        return rc;
    fd = open(tmp.ptr, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = mbq_error_set(MBQ_EIO, "cannot create '%s': %s", tmp.ptr, strerror(errno));
        goto done;
    }
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            rc = mbq_error_set(MBQ_EIO, "cannot write '%s': %s", tmp.ptr, strerror(errno));
            goto done;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) < 0) {
        rc = mbq_error_set(MBQ_EIO, "cannot fsync '%s': %s", tmp.ptr, strerror(errno));
        goto done;
    }
    close(fd);
    fd = -1;
    if (rename(tmp.ptr, path) < 0) {
        rc = mbq_error_set(MBQ_EIO, "cannot rename '%s' to '%s': %s", tmp.ptr, path,
                           strerror(errno));
        goto done;
    }
    rc = mbq_fsync_parent_dir(path);
done:
    if (fd >= 0)
        close(fd);
    if (rc < 0 && tmp.ptr)
        unlink(tmp.ptr);
    mbq_buf_free(&tmp);
    return rc;
}

int mbq_mkdir_p(const char *path)
{
    int rc = 0;
    char *copy = mbq_strdup(path);
    if (!copy)
        return MBQ_ENOMEM;
    for (char *p = copy + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(copy, 0700) < 0 && errno != EEXIST) {
                rc = mbq_error_set(MBQ_EIO, "cannot create directory '%s': %s", copy,
                                   strerror(errno));
                goto done;
            }
            *p = saved;
            if (!saved)
                break;
        }
    }
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
        rc = mbq_error_set(MBQ_EIO, "'%s' is not a directory", path);
done:
    free(copy);
    return rc;
}

bool mbq_file_exists(const char *path)
{
    return access(path, F_OK) == 0;
}

int mbq_parse_i64(int64_t *out, const char *s)
{
    if (!s || !*s)
        return mbq_error_set(MBQ_ECONFIG, "empty number");
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s)
        return mbq_error_set(MBQ_ECONFIG, "'%s' is not a whole number", s);
    *out = v;
    return 0;
}

int mbq_parse_duration_ms(int64_t *out, const char *s)
{
    if (!s || !*s)
        return mbq_error_set(MBQ_ECONFIG, "empty duration");
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0)
        goto bad;
    double mult;
    if (*end == '\0' || strcmp(end, "s") == 0)
        mult = 1000;
    else if (strcmp(end, "ms") == 0)
        mult = 1;
    else if (strcmp(end, "m") == 0)
        mult = 60000;
    else if (strcmp(end, "h") == 0)
        mult = 3600000;
    else if (strcmp(end, "d") == 0)
        mult = 86400000;
    else
        goto bad;
    if (v * mult > 9.2e18)
        goto bad;
    *out = (int64_t)(v * mult);
    return 0;
bad:
    return mbq_error_set(MBQ_ECONFIG,
                         "invalid duration '%s' (use a number with ms, s, m, h or d, e.g. '5m')",
                         s);
}

size_t mbq_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return la > lb ? la : lb;
    size_t row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t prev = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cur = row[j];
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = prev + cost;
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            prev = cur;
        }
    }
    return row[lb];
}

bool mbq_streq(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return strcmp(a, b) == 0;
}

int mbq_exit_for_error(int err)
{
    switch (err) {
    case 0: return MBQ_EXIT_OK;
    case MBQ_ECONFIG: return MBQ_EXIT_USAGE;
    case MBQ_ELOCKED: return MBQ_EXIT_LOCKED;
    case MBQ_EIO:
    case MBQ_EJOURNAL: return MBQ_EXIT_IOERR;
    case MBQ_EAUTH: return MBQ_EXIT_NOPERM;
    case MBQ_ENET:
    case MBQ_ETIMEOUT:
    case MBQ_EMYSQL:
    case MBQ_EBQ: return MBQ_EXIT_UNAVAILABLE;
    case MBQ_EINTERNAL:
    case MBQ_ENOMEM: return MBQ_EXIT_SOFTWARE;
    default: return MBQ_EXIT_TABLE_FAILED;
    }
}

int mbq_sha256_hex(char **out, struct evp_md_ctx_st *sha)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    mbq_buf b = MBQ_BUF_INIT;
    if (EVP_DigestFinal_ex(sha, md, &n) != 1)
        return mbq_error_set(MBQ_EINTERNAL, "sha-256 final failed");
    int rc = mbq_buf_puts(&b, "sha256:");
    for (unsigned i = 0; rc == 0 && i < n; i++)
        rc = mbq_buf_printf(&b, "%02x", md[i]);
    if (rc == 0 && !(*out = mbq_buf_detach(&b)))
        rc = MBQ_ENOMEM;
    mbq_buf_free(&b);
    return rc;
}

int mbq_file_sha256(char **out, const char *path)
{
    int rc = 0;
    EVP_MD_CTX *sha = EVP_MD_CTX_new();
    /* gzread reads a file that is not gzip as it is. */
    gzFile gz = gzopen(path, "rb");
    char *chunk = mbq_malloc(1 << 16);
    *out = NULL;
    if (!sha || !chunk || EVP_DigestInit_ex(sha, EVP_sha256(), NULL) != 1) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    if (!gz) {
        rc = mbq_error_set(MBQ_EIO, "cannot open '%s': %s", path, strerror(errno));
        goto done;
    }
    for (;;) {
        int got = gzread(gz, chunk, 1 << 16);
        if (got < 0) {
            int zerr = 0;
            rc = mbq_error_set(MBQ_EIO, "cannot read '%s': %s", path, gzerror(gz, &zerr));
            goto done;
        }
        if (got == 0)
            break;
        if (EVP_DigestUpdate(sha, chunk, (size_t)got) != 1) {
            rc = mbq_error_set(MBQ_EINTERNAL, "sha-256 update failed");
            goto done;
        }
    }
    rc = mbq_sha256_hex(out, sha);
done:
    if (gz)
        gzclose(gz);
    free(chunk);
    EVP_MD_CTX_free(sha);
    return rc;
}
