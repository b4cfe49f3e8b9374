/* Small helpers: checked allocation, time, files. */
#ifndef MBQ_UTIL_H
#define MBQ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "mbq/buf.h"

/* Checked allocation: on failure they set MBQ_ENOMEM's message and return
 * NULL. The caller frees with free(). mbq_strdup(NULL) returns NULL without
 * an error. */
void *mbq_malloc(size_t size);
void *mbq_calloc(size_t n, size_t size);
void *mbq_realloc(void *p, size_t size);
char *mbq_strdup(const char *s);
char *mbq_strndup(const char *s, size_t n);

/* Allocation-failure injection for tests (curl's torture idea): when the
 * environment has MBQ_FAIL_ALLOC=N, the Nth mbq_malloc/calloc/realloc/strdup
 * call fails. Returns how many allocations have been made so far. */
unsigned long mbq_alloc_count(void);

/* Wall clock in milliseconds since the epoch, and a monotonic clock. */
int64_t mbq_now_ms(void);
int64_t mbq_monotonic_ms(void);

/* Append the UTC time `ms` as "2026-11-26T01:02:03.456Z". */
int mbq_buf_time_iso(mbq_buf *b, int64_t ms);

/* Sleep for `ms` milliseconds (restarted on EINTR). */
void mbq_sleep_ms(int64_t ms);

/* A random 64-bit value from the OS (for jitter and ids). */
uint64_t mbq_random_u64(void);

/* A new random UUID as 36 characters + NUL in `out`. */
void mbq_uuid(char out[37]);

/* Files. Each returns 0 or a negative code with a message naming the path. */
int mbq_file_read_all(mbq_buf *out, const char *path);
/* Write `len` bytes to `path` atomically: temp file in the same directory,
 * fsync, rename, fsync the directory. */
int mbq_file_write_atomic(const char *path, const void *data, size_t len);
/* fsync the directory that holds `path`. */
int mbq_fsync_parent_dir(const char *path);
/* mkdir -p with mode 0700 for new directories. */
int mbq_mkdir_p(const char *path);
bool mbq_file_exists(const char *path);

/* Parse durations such as "5m", "30s", "1h", "250ms", "2d" into
 * milliseconds; a bare number is seconds. 0 or MBQ_ECONFIG. */
int mbq_parse_duration_ms(int64_t *out, const char *s);

/* Parse a whole decimal integer (optional sign); rejects trailing garbage. */
int mbq_parse_i64(int64_t *out, const char *s);

/* Levenshtein distance, for "did you mean" suggestions. */
size_t mbq_edit_distance(const char *a, const char *b);

/* Case-sensitive string equality that accepts NULLs. */
bool mbq_streq(const char *a, const char *b);

/* "sha256:<hex>" of a file's content, gunzipped when it is gzip (how the
 * extractor's staged-file checksum is computed, mbq/mysql_source.h). *out
 * is freed by the caller. MBQ_EIO when it cannot be read (or is a damaged
 * gzip file). */
int mbq_file_sha256(char **out, const char *path);

/* Finish the SHA-256 context `sha` (OpenSSL's EVP_MD_CTX) into "sha256:<hex>"
 * in *out (caller frees). 0, MBQ_ENOMEM or MBQ_EINTERNAL. */
struct evp_md_ctx_st;
int mbq_sha256_hex(char **out, struct evp_md_ctx_st *sha);

#endif
