/* A small libcurl wrapper for the BigQuery client and the token exchange.
 *
 * One mbq_http holds one curl easy handle that is reused for every request,
 * so connections stay alive between requests to the same host (curl keeps
 * its connection cache in the easy handle). TLS peer and host verification
 * are on for https unless the caller turns them off explicitly.
 *
 * mbq_http_do() performs exactly one request: it never retries. Callers
 * decide what is safe to retry (see mbq_http_retryable_curl and
 * mbq_http_backoff_ms) because only they know whether a request mutates
 * something and whether it carries an idempotency key. */
#ifndef MBQ_HTTP_H
#define MBQ_HTTP_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "mbq/buf.h"

typedef struct mbq_http mbq_http;

typedef struct mbq_http_options {
    int64_t connect_timeout_ms; /* 0 = curl's default */
    int64_t timeout_ms;         /* whole request; 0 = none */
    int64_t low_speed_time_s;   /* abort when below 1 byte/s for this long; 0 = off */
    bool tls_verify;            /* verify peer and host name for https (default true) */
    const char *ca_file;        /* PEM CA bundle to verify against instead of the system's
                                   (copied by mbq_http_new); NULL = the system's */
} mbq_http_options;

#define MBQ_HTTP_OPTIONS_INIT {10000, 0, 300, true, NULL}

/* The request body: `pre`, then `file_len` bytes of `file` from `file_off`,
 * then `post`. Any part may be empty. The file is read with pread-like
 * seeks, so a request can be sent again (curl rewinds on redirects and
 * on a dead reused connection) unless no_resend is set. */
typedef struct mbq_http_body {
    const char *pre;
    size_t pre_len;
    FILE *file;
    int64_t file_off;
    int64_t file_len;
    const char *post;
    size_t post_len;
    /* Forbid curl's silent re-send of the body (it resends once when a
     * reused connection turns out dead): the transfer then fails with
     * CURLE_SEND_FAIL_REWIND and the caller decides (resumable chunks ask
     * the server how much it has instead). */
    bool no_resend;
    /* A middle part of unknown length, in place of the file (file NULL,
     * file_len 0): pulled by calling stream(stream_ud, dst, cap), which may
     * block, returns how many bytes it put into dst, 0 at its end, or
     * MBQ_HTTP_STREAM_ABORT to abort the transfer before the rest of the body
     * (post, and the final zero-length chunk) is sent, so that the server
     * never receives a complete request. The body goes with chunked transfer
     * encoding and is never re-sent (no_resend is implied). */
    size_t (*stream)(void *stream_ud, char *dst, size_t cap);
    void *stream_ud;
} mbq_http_body;

#define MBQ_HTTP_STREAM_ABORT ((size_t)-1)

typedef struct mbq_http_request {
    const char *method;             /* "GET", "POST", "PUT", "PATCH", "DELETE" */
    const char *url;
    const char *const *headers;     /* "Name: value" strings, NULL-terminated; may be NULL */
    const mbq_http_body *body;      /* NULL = no body */
} mbq_http_request;

typedef struct mbq_http_response {
    long status;                    /* HTTP status; 0 when no response arrived */
    mbq_buf body;
    mbq_buf headers;                /* raw header lines of the last response */
    int curl_code;                  /* CURLcode of the transfer (0 = ok) */
} mbq_http_response;

#define MBQ_HTTP_RESPONSE_INIT {0, MBQ_BUF_INIT, MBQ_BUF_INIT, 0}

/* Create a client. *out is freed with mbq_http_free. MBQ_ENOMEM or MBQ_ERR
 * when curl cannot be initialised. */
int mbq_http_new(mbq_http **out, const mbq_http_options *opts);
void mbq_http_free(mbq_http *h);

/* Perform one request; `resp` is cleared first and filled. Returns 0 when a
 * response arrived (whatever its status), MBQ_ETIMEOUT when curl timed out,
 * MBQ_ENET for other transfer failures (resp->curl_code says which), with a
 * message naming the method and URL (without query string, which may hold
 * upload ids). A connection closed inside the response headers is such a
 * failure (curl_code CURLE_RECV_ERROR), not an empty answer. */
int mbq_http_do(mbq_http *h, mbq_http_response *resp, const mbq_http_request *req);

/* Release the buffers of a response. */
void mbq_http_response_free(mbq_http_response *resp);

/* The value of response header `name` (case-insensitive) of the last
 * response, trimmed, appended to `out`. 0 when found, MBQ_ENOTFOUND when
 * absent, MBQ_ENOMEM. */
int mbq_http_response_header(mbq_buf *out, const mbq_http_response *resp, const char *name);

/* Is the transfer error a connection failure worth retrying (couldn't
 * connect, send/recv error, empty reply, partial file, timeout)? */
bool mbq_http_retryable_curl(int curl_code);

/* Is the HTTP status worth retrying (429, 500, 502, 503, 504)? */
bool mbq_http_retryable_status(long status);

/* Exponential backoff with full jitter (AWS architecture blog, "Exponential
 * Backoff And Jitter"): a random delay in [0, min(cap, base * 2^attempt)].
 * `attempt` counts from 0. */
int64_t mbq_http_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms);

/* Append `s` percent-encoded for a URL path segment or query value. */
int mbq_http_url_escape(mbq_buf *out, const char *s);

#endif
