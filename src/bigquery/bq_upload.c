/* The BigQuery REST client's load jobs (see mbq/bq.h and bq.c): the load
 * configuration, resumable upload sessions (open, send in chunks, resume
 * after a failure from the range the server has), load of a whole file,
 * and the streamed load that uploads while the data is being produced. */
#include <errno.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "bq_internal.h"
#include "mbq/bq.h"
#include "mbq/bq_auth.h"
#include "mbq/error.h"
#include "mbq/http.h"
#include "mbq/log.h"
#include "mbq/util.h"
#include "mbq/banned.h"

/* ---- load jobs ----------------------------------------------------------- */

const char *write_disp_name(mbq_bq_write_disposition d)
{
    switch (d) {
    case MBQ_BQ_WRITE_TRUNCATE: return "WRITE_TRUNCATE";
    case MBQ_BQ_WRITE_EMPTY: return "WRITE_EMPTY";
    case MBQ_BQ_WRITE_TRUNCATE_DATA: return "WRITE_TRUNCATE_DATA";
    default: return "WRITE_APPEND";
    }
}

static int load_config(mbq_buf *b, const mbq_bq *bq, const char *job_id,
                       const mbq_bq_load_options *o, const char *location)
{
    int rc;
    if ((rc = mbq_buf_putc(b, '{')) < 0 || (rc = job_reference(b, bq, job_id, location)) < 0 ||
        (rc = mbq_buf_puts(b, ",\"configuration\":{\"load\":{\"destinationTable\":{"
                              "\"projectId\":")) < 0 ||
        (rc = bq_json_put_str(b, bq->project)) < 0 || (rc = mbq_buf_puts(b, ",\"datasetId\":")) < 0 ||
        (rc = bq_json_put_str(b, o->dataset)) < 0 || (rc = mbq_buf_puts(b, ",\"tableId\":")) < 0 ||
        (rc = bq_json_put_str(b, o->table)) < 0 ||
        (rc = mbq_buf_puts(b, "},\"schema\":{\"fields\":")) < 0 ||
        (rc = mbq_bq_schema_to_json(b, o->schema)) < 0)
        return rc;
    return mbq_buf_printf(b,
                          "},\"sourceFormat\":\"NEWLINE_DELIMITED_JSON\","
                          "\"writeDisposition\":\"%s\",\"createDisposition\":\"%s\","
                          "\"ignoreUnknownValues\":false,\"maxBadRecords\":0}}}",
                          write_disp_name(o->write_disposition),
                          o->create_disposition == MBQ_BQ_CREATE_NEVER ? "CREATE_NEVER"
                                                                       : "CREATE_IF_NEEDED");
}

/* The session URI: the Location's path and query (the upload_id names the
 * session) on the configured endpoint. BigQuery's Location names the host
 * the session was opened on, which is the endpoint itself; an endpoint
 * override is the route to BigQuery (a proxy, Private Service Connect, an
 * emulator whose Location says http://0.0.0.0:PORT or its own address), so
 * the pieces must take the same route as the request that opened it. */
static int session_uri(mbq_buf *out, const mbq_bq *bq, const char *loc)
{
    const char *scheme_end = strstr(loc, "://");
    const char *path = loc;
    if (scheme_end) {
        path = strchr(scheme_end + 3, '/');
        if (!path)
            path = "/";
    }
    return mbq_buf_printf(out, "%s%s%s", bq->endpoint, path[0] == '/' ? "" : "/", path);
}

/* Parse "bytes=0-N" from a 308's Range header: the next offset (N+1), or 0
 * when the server has nothing. */
static int64_t range_next(const mbq_http_response *resp)
{
    mbq_buf v = MBQ_BUF_INIT;
    int64_t next = 0;
    if (mbq_http_response_header(&v, resp, "Range") == 0) {
        const char *dash = strchr(mbq_buf_cstr(&v), '-');
        int64_t last;
        if (dash && mbq_parse_i64(&last, dash + 1) == 0 && last >= 0)
            next = last + 1;
    }
    mbq_error_clear();
    mbq_buf_free(&v);
    return next;
}

/* A request of a resumable session failed with `rc`: true after waiting
 * when the session survives it (a dropped connection, a timeout or a 5xx),
 * so the caller asks the server what it has and goes on from there; false
 * (the error set) when it does not, or when the retries are spent. */
static bool session_retry_wait(mbq_bq *bq, const mbq_http_response *resp, int rc, int *failures,
                               int64_t start_ms)
{
    if (rc == MBQ_EEXISTS || rc == MBQ_EIO || rc == MBQ_ENOMEM)
        return false;
    bool retryable = resp->status == 0 ? mbq_http_retryable_curl(resp->curl_code)
                                       : mbq_http_retryable_status(resp->status);
    if (!retryable || *failures >= bq->opts.max_retries)
        return false;
    int64_t delay = mbq_http_backoff_ms(*failures, bq->opts.retry_initial_ms,
                                        bq->opts.retry_max_delay_ms);
    if (mbq_monotonic_ms() - start_ms + delay > bq->opts.retry_max_elapsed_ms)
        return false;
    mbq_log_info("%s; asking the server how much it has, in %lld ms", mbq_error_last(),
                 (long long)delay);
    mbq_sleep_ms(delay);
    (*failures)++;
    bq->retries++;
    return true;
}

/* Send the file through an open resumable session. On success `resp` holds
 * the final 200/201 answer with the Job resource. */
static int resumable_send(mbq_bq *bq, mbq_http_response *resp, const char *uri, FILE *f,
                          int64_t size, const char *job_id)
{
    int rc = 0;
    mbq_buf range = MBQ_BUF_INIT, what = MBQ_BUF_INIT;
    int64_t off = 0;
    int failures = 0;
    bool ask = false; /* ask the server how much it has before sending */
    int64_t start = mbq_monotonic_ms();
    int64_t chunk = bq->opts.upload_chunk_bytes;

    if ((rc = mbq_buf_printf(&what, "upload for job '%s'", job_id)) < 0)
        goto done;
    for (;;) {
        /* After a failure the server, not curl's silent re-send of the
         * same range, decides where to go on: ask it. */
        mbq_http_body body = {NULL, 0, f, 0, 0, NULL, 0, true, NULL, NULL};
        mbq_buf_clear(&range);
        if (ask || size == 0) {
            /* "Content-Range: bytes * / total" with no body: the documented
             * status query of a resumable session. */
            rc = mbq_buf_printf(&range, "Content-Range: bytes */%lld", (long long)size);
        } else {
            int64_t len = size - off;
            if (chunk > 0 && len > chunk)
                len = chunk;
            bool last = off + len == size;
            body.file_off = off;
            body.file_len = len;
            if (last)
                rc = mbq_buf_printf(&range, "Content-Range: bytes %lld-%lld/%lld", (long long)off,
                                    (long long)(off + len - 1), (long long)size);
            else
                rc = mbq_buf_printf(&range, "Content-Range: bytes %lld-%lld/*", (long long)off,
                                    (long long)(off + len - 1));
        }
        if (rc < 0)
            goto done;
        const char *hdrs[] = {range.ptr, NULL};
        bq_req r = {"PUT", uri, "application/octet-stream", &body, hdrs, what.ptr, false, true};
        rc = bq_call(bq, resp, &r);
        if (rc == 0 && (resp->status == 200 || resp->status == 201))
            goto done;
        if (rc == 0 && resp->status == 308) {
            int64_t next = range_next(resp);
            if (next > off || ask)
                failures = 0; /* progress */
            ask = false;
            off = next;
            if (off > size) {
                rc = mbq_error_set(MBQ_EBQ, "bigquery: upload for job '%s': server claims %lld "
                                            "bytes of a %lld-byte file",
                                   job_id, (long long)off, (long long)size);
                goto done;
            }
            if (off == size && size > 0) {
                /* Everything is there but no final answer yet: ask again. */
                ask = true;
            }
            continue;
        }
        if (rc == 0) {
            rc = mbq_error_set(MBQ_EBQ, "bigquery: upload for job '%s': unexpected HTTP %ld",
                               job_id, resp->status);
            goto done;
        }
        if (!session_retry_wait(bq, resp, rc, &failures, start))
            goto done;
        ask = true;
    }
done:
    mbq_buf_free(&range);
    mbq_buf_free(&what);
    return rc;
}

/* Open a resumable upload session for load job `job_id`: its URI into
 * `uri`. `size` < 0 when the length is not known yet (a stream). */
static int session_open(mbq_bq *bq, mbq_buf *uri, const char *job_id, const mbq_buf *cfg,
                        int64_t size)
{
    int rc;
    mbq_buf url = MBQ_BUF_INIT, what = MBQ_BUF_INIT, lenhdr = MBQ_BUF_INIT, loc = MBQ_BUF_INIT;
    mbq_http_response resp = MBQ_HTTP_RESPONSE_INIT;
    const char *hdrs[3] = {"X-Upload-Content-Type: application/octet-stream", NULL, NULL};
    if ((rc = bq_url(&url, bq, "/upload/bigquery/v2", "/jobs?uploadType=resumable")) < 0 ||
        (rc = mbq_buf_printf(&what, "job '%s' failed", job_id)) < 0)
        goto done;
    if (size >= 0) {
        if ((rc = mbq_buf_printf(&lenhdr, "X-Upload-Content-Length: %lld", (long long)size)) < 0)
            goto done;
        hdrs[1] = lenhdr.ptr;
    }
    mbq_http_body body;
    bq_json_body(&body, cfg);
    /* Opening a session changes nothing until data is sent: retry-safe. */
    bq_req r = {"POST", url.ptr, "application/json; charset=UTF-8", &body, hdrs, what.ptr,
                true, true};
    if ((rc = bq_call(bq, &resp, &r)) < 0)
        goto done;
    if (mbq_http_response_header(&loc, &resp, "Location") < 0) {
        rc = mbq_error_set(MBQ_EBQ, "bigquery: job '%s': resumable upload answered without a "
                                    "Location (HTTP %ld)",
                           job_id, resp.status);
        goto done;
    }
    rc = session_uri(uri, bq, loc.ptr);
done:
    mbq_http_response_free(&resp);
    mbq_buf_free(&url);
    mbq_buf_free(&what);
    mbq_buf_free(&lenhdr);
    mbq_buf_free(&loc);
    return rc;
}

int mbq_bq_load_file(mbq_bq_job **out, mbq_bq *bq, const char *job_id,
                     const mbq_bq_load_options *o)
{
    int rc;
    FILE *f = NULL;
    mbq_buf url = MBQ_BUF_INIT, what = MBQ_BUF_INIT, cfg = MBQ_BUF_INIT;
    mbq_buf pre = MBQ_BUF_INIT, post = MBQ_BUF_INIT, ctype = MBQ_BUF_INIT;
    mbq_buf uri = MBQ_BUF_INIT;
    mbq_http_response resp = MBQ_HTTP_RESPONSE_INIT;
    struct stat st;
    *out = NULL;

    if (!o || !o->dataset || !o->table || !o->path || !o->schema)
        return mbq_error_set(MBQ_ECONFIG, "bigquery: load job '%s': dataset, table, path and "
                                          "schema are required",
                             job_id);
    const char *location = o->location ? o->location : bq->location;
    job_error_forget(bq);
    f = fopen(o->path, "rb");
    if (!f || fstat(fileno(f), &st) < 0) {
        rc = mbq_error_set(MBQ_EIO, "bigquery: load job '%s': cannot open '%s': %s", job_id,
                           o->path, strerror(errno));
        goto done;
    }
    int64_t size = (int64_t)st.st_size;

    /* A job with this id exists: a previous run submitted it (and may have
     * crashed before recording the outcome). Never upload a second time. */
    rc = job_lookup(out, bq, job_id, location);
    if (rc != MBQ_ENOTFOUND)
        goto done;

    if ((rc = load_config(&cfg, bq, job_id, o, location)) < 0 ||
        (rc = mbq_buf_printf(&what, "job '%s' failed", job_id)) < 0)
        goto done;

    if (size <= bq->opts.multipart_max_bytes) {
        /* One multipart/related request: the job config, then the data. The
         * boundary is random, so it does not occur in the data. */
        char boundary[40];
        snprintf(boundary, sizeof boundary, "mbq_%016llx",
                 (unsigned long long)mbq_random_u64());
        if ((rc = bq_url(&url, bq, "/upload/bigquery/v2", "/jobs?uploadType=multipart")) < 0 ||
            (rc = mbq_buf_printf(&pre,
                                 "--%s\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
                                 "%s\r\n--%s\r\nContent-Type: application/octet-stream\r\n\r\n",
                                 boundary, cfg.ptr, boundary)) < 0 ||
            (rc = mbq_buf_printf(&post, "\r\n--%s--\r\n", boundary)) < 0 ||
            (rc = mbq_buf_printf(&ctype, "multipart/related; boundary=%s", boundary)) < 0)
            goto done;
        mbq_http_body body = {pre.ptr, pre.len, f, 0, size, post.ptr, post.len, false, NULL, NULL};
        /* Retry-safe: it carries the job id (a duplicate is looked up). */
        bq_req r = {"POST", url.ptr, ctype.ptr, &body, NULL, what.ptr, true, true};
        rc = bq_call(bq, &resp, &r);
    } else {
        rc = session_open(bq, &uri, job_id, &cfg, size);
        if (rc == 0)
            rc = resumable_send(bq, &resp, uri.ptr, f, size, job_id);
    }
    rc = job_after_insert(out, bq, rc, &resp, job_id, location);
done:
    if (f)
        fclose(f);
    mbq_http_response_free(&resp);
    mbq_buf_free(&url);
    mbq_buf_free(&what);
    mbq_buf_free(&cfg);
    mbq_buf_free(&pre);
    mbq_buf_free(&post);
    mbq_buf_free(&ctype);
    mbq_buf_free(&uri);
    return rc;
}

/* Send buf[0..len) as bytes [off, off+len) of a resumable session from
 * memory; `total` < 0 for a middle piece ("a-b/ *"), else the last one
 * ("a-b/total"). A 308 that keeps less than was sent, a dropped
 * connection or a 5xx: ask the server how much it has ("* / *" or
 * "* / total") and send the rest of the piece from there; bounded like
 * every retry. 0 when the server has the piece (a last piece: `resp` holds
 * the 200/201 answer with the Job resource). */
static int stream_put(mbq_bq *bq, mbq_http_response *resp, bool *retried, const char *uri,
                      const char *buf, int64_t len, int64_t off, int64_t total,
                      const char *job_id)
{
    int rc = 0, failures = 0;
    mbq_buf range = MBQ_BUF_INIT, what = MBQ_BUF_INIT;
    int64_t have = off, start = mbq_monotonic_ms();
    bool ask = false;
    char tot[32];
    if (total >= 0)
        snprintf(tot, sizeof tot, "%lld", (long long)total);
    else
        snprintf(tot, sizeof tot, "*");
    if ((rc = mbq_buf_printf(&what, "upload for job '%s'", job_id)) < 0)
        goto done;
    for (;;) {
        mbq_http_body body = {NULL, 0, NULL, 0, 0, NULL, 0, true, NULL, NULL};
        mbq_buf_clear(&range);
        if (ask || have == off + len) {
            rc = mbq_buf_printf(&range, "Content-Range: bytes */%s", tot);
        } else {
            body.pre = buf + (have - off);
            body.pre_len = (size_t)(off + len - have);
            rc = mbq_buf_printf(&range, "Content-Range: bytes %lld-%lld/%s", (long long)have,
                                (long long)(off + len - 1), tot);
        }
        if (rc < 0)
            goto done;
        const char *hdrs[] = {range.ptr, NULL};
        bq_req r = {"PUT", uri, "application/octet-stream", &body, hdrs, what.ptr, false, true};
        rc = bq_call(bq, resp, &r);
        if (rc == 0 && (resp->status == 200 || resp->status == 201) && total < 0) {
            /* Only a request that names the total can complete a session. */
            rc = mbq_error_set(MBQ_EBQ, "bigquery: upload for job '%s': the server completed "
                                        "the upload before its last piece (HTTP %ld)",
                               job_id, resp->status);
            goto done;
        }
        if (rc == 0 && (resp->status == 200 || resp->status == 201))
            goto done;
        if (rc == 0 && resp->status == 308) {
            int64_t next = range_next(resp);
            if (next < have && !ask) {
                rc = mbq_error_set(MBQ_EBQ, "bigquery: upload for job '%s': the server went "
                                            "back from byte %lld to %lld of a stream",
                                   job_id, (long long)have, (long long)next);
                goto done;
            }
            if (next < off || next > off + len) {
                rc = mbq_error_set(MBQ_EBQ, "bigquery: upload for job '%s': the server has "
                                            "%lld bytes, outside the piece at %lld-%lld",
                                   job_id, (long long)next, (long long)off,
                                   (long long)(off + len));
                goto done;
            }
            ask = false;
            have = next;
            if (have == off + len && total < 0)
                goto done; /* a middle piece is in */
            if (have == off + len && ++failures > bq->opts.max_retries) {
                rc = mbq_error_set(MBQ_EBQ, "bigquery: upload for job '%s': all %lld bytes "
                                            "sent, but no final answer",
                                   job_id, (long long)total);
                goto done;
            }
            continue;
        }
        if (rc == 0) {
            rc = mbq_error_set(MBQ_EBQ, "bigquery: upload for job '%s': unexpected HTTP %ld",
                               job_id, resp->status);
            goto done;
        }
        if (!session_retry_wait(bq, resp, rc, &failures, start))
            goto done;
        ask = true;
        *retried = true;
    }
done:
    mbq_buf_free(&range);
    mbq_buf_free(&what);
    return rc;
}

/* A stream with no configured chunk size (0 = "one request" for a file)
 * still goes in pieces: its length is unknown until its end. */
#define STREAM_CHUNK_DEFAULT (8 * 1024 * 1024)

int mbq_bq_load_stream(mbq_bq_job **out, mbq_bq *bq, const char *job_id,
                       const mbq_bq_load_options *o,
                       size_t (*stream)(void *stream_ud, char *dst, size_t cap), void *stream_ud)
{
    int rc;
    mbq_buf cfg = MBQ_BUF_INIT, uri = MBQ_BUF_INIT;
    mbq_http_response resp = MBQ_HTTP_RESPONSE_INIT;
    char *buf = NULL;
    *out = NULL;

    if (!o || !o->dataset || !o->table || !o->schema || !stream)
        return mbq_error_set(MBQ_ECONFIG, "bigquery: load job '%s': dataset, table, schema and "
                                          "a stream are required",
                             job_id);
    const char *location = o->location ? o->location : bq->location;
    job_error_forget(bq);
    int64_t chunk = bq->opts.upload_chunk_bytes > 0 ? bq->opts.upload_chunk_bytes
                                                    : STREAM_CHUNK_DEFAULT;
    /* One byte more than a chunk: a full chunk is sent as a middle piece
     * only once a byte after it proves that it is not the last. */
    if (!(buf = mbq_malloc((size_t)chunk + 1))) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    if ((rc = load_config(&cfg, bq, job_id, o, location)) < 0)
        goto done;
    if ((rc = session_open(bq, &uri, job_id, &cfg, -1)) < 0) {
        rc = job_after_insert(out, bq, rc, &resp, job_id, location); /* 409: look it up */
        goto done;
    }
    int64_t off = 0, len = 0;
    bool retried = false;
    for (;;) {
        size_t n = stream(stream_ud, buf + len, (size_t)(chunk + 1 - len));
        if (n == MBQ_HTTP_STREAM_ABORT) {
            /* The session is never finalized: BigQuery creates no job. */
            rc = mbq_error_set(MBQ_ERR, "bigquery: load job '%s': the stream was aborted; "
                                        "no job was created",
                               job_id);
            goto done;
        }
        len += (int64_t)n;
        if (n > 0 && len <= chunk)
            continue;
        if (n == 0) {
            /* The end: the rest is the last piece (sent even when empty
             * after a middle piece, as "* / total"). */
            rc = stream_put(bq, &resp, &retried, uri.ptr, buf, len, off, off + len, job_id);
            break;
        }
        if ((rc = stream_put(bq, &resp, &retried, uri.ptr, buf, chunk, off, -1, job_id)) < 0)
            goto done;
        off += chunk;
        buf[0] = buf[chunk];
        len = 1;
    }
    rc = job_after_insert(out, bq, rc, &resp, job_id, location);
    if (rc == 0 && retried && (*out)->output_rows < 0) {
        /* A piece went again after a cut, and the job reports no row
         * count: nothing proves the server assembled every byte (BigQuery
         * always reports outputRows; the emulator completes a session on
         * any request). Flag it like a job found by its id, whose content
         * the caller must check. */
        (*out)->existed = true;
    }
done:
    free(buf);
    mbq_http_response_free(&resp);
    mbq_buf_free(&cfg);
    mbq_buf_free(&uri);
    return rc;
}
