/* The BigQuery REST client (see mbq/bq.h). */
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

#define DEFAULT_ENDPOINT "https://bigquery.googleapis.com"
#define UPLOAD_QUANTUM (256 * 1024) /* resumable chunks are multiples of this */

struct mbq_bq {
    mbq_bq_options opts;
    char *project;
    char *location;
    bool location_configured; /* given by the caller, not read from the dataset */
    char *endpoint; /* scheme://authority, no trailing slash */
    mbq_http *http;
    mbq_bq_auth *auth; /* NULL = no token sent */
    unsigned requests;
    unsigned retries;
    char *job_error_reason; /* errorResult.reason of the last failed job, or NULL */
};

void mbq_bq_options_init(mbq_bq_options *o)
{
    memset(o, 0, sizeof(*o));
    o->location = NULL;
    o->auth = MBQ_BQ_AUTH_AUTO;
    o->connect_timeout_ms = 10000;
    o->request_timeout_ms = 600000;
    o->job_timeout_ms = 6LL * 3600 * 1000;
    o->max_retries = 8;
    o->retry_max_elapsed_ms = 600000;
    o->retry_initial_ms = 1000;
    o->retry_max_delay_ms = 32000;
    o->poll_initial_ms = 200;
    o->poll_max_ms = 5000;
    o->upload_chunk_bytes = 8 * 1024 * 1024;
    o->multipart_max_bytes = 5 * 1024 * 1024;
    o->tls_verify = true;
}

int mbq_bq_new(mbq_bq **out, const mbq_bq_options *opts)
{
    int rc = 0;
    mbq_bq *bq = NULL;
    mbq_buf ep = MBQ_BUF_INIT;
    *out = NULL;

    if (!opts->project || !*opts->project)
        return mbq_error_set(MBQ_ECONFIG, "bigquery: no project id given");
    if (opts->upload_chunk_bytes < 0 || opts->upload_chunk_bytes % UPLOAD_QUANTUM != 0)
        return mbq_error_set(MBQ_ECONFIG,
                             "bigquery: upload chunk size %lld is not a multiple of 256 KiB "
                             "(BigQuery's resumable upload requires it; 0 = one request)",
                             (long long)opts->upload_chunk_bytes);

    /* The endpoint: explicit, else the emulator convention (host:port, the
     * variable the Google client libraries read), else BigQuery itself. */
    bool override = true;
    const char *e = opts->endpoint;
    if (!e || !*e) {
        e = getenv("BIGQUERY_EMULATOR_HOST");
        if (e && *e && !strstr(e, "://") && (rc = mbq_buf_puts(&ep, "http://")) < 0)
            goto done;
    }
    if (!e || !*e) {
        e = DEFAULT_ENDPOINT;
        override = false;
    }
    if ((rc = mbq_buf_puts(&ep, e)) < 0)
        goto done;
    while (ep.len && ep.ptr[ep.len - 1] == '/')
        ep.ptr[--ep.len] = '\0';
    if (strncmp(mbq_buf_cstr(&ep), "http://", 7) != 0 &&
        strncmp(mbq_buf_cstr(&ep), "https://", 8) != 0) {
        rc = mbq_error_set(MBQ_ECONFIG, "bigquery: endpoint '%s' is not an http(s) URL",
                           mbq_buf_cstr(&ep));
        goto done;
    }

    bq = mbq_calloc(1, sizeof(*bq));
    if (!bq) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    bq->opts = *opts;
    bq->project = mbq_strdup(opts->project);
    bq->location_configured = opts->location && *opts->location;
    bq->location = mbq_strdup(bq->location_configured ? opts->location : "US");
    bq->endpoint = mbq_buf_detach(&ep);
    if (!bq->project || !bq->location || !bq->endpoint) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    bq->opts.project = bq->project;
    bq->opts.location = bq->location;
    bq->opts.endpoint = bq->endpoint;
    bq->opts.credentials = NULL; /* not kept: only the auth object needs it */
    bq->opts.ca_file = NULL;     /* not kept: the HTTP clients copy it */

    mbq_http_options hopts = MBQ_HTTP_OPTIONS_INIT;
    hopts.connect_timeout_ms = opts->connect_timeout_ms;
    hopts.timeout_ms = opts->request_timeout_ms;
    hopts.tls_verify = opts->tls_verify;
    hopts.ca_file = opts->ca_file;
    if (!opts->tls_verify && strncmp(bq->endpoint, "https://", 8) == 0)
        mbq_log_warn("bigquery: TLS certificate verification is off for '%s'", bq->endpoint);
    if ((rc = mbq_http_new(&bq->http, &hopts)) < 0)
        goto done;

    bool want_auth = opts->auth == MBQ_BQ_AUTH_SERVICE_ACCOUNT ||
                     (opts->auth == MBQ_BQ_AUTH_AUTO && !override);
    if (want_auth) {
        mbq_bq_auth_options aopts;
        mbq_bq_auth_options_init(&aopts);
        aopts.http.connect_timeout_ms = opts->connect_timeout_ms;
        aopts.http.tls_verify = opts->tls_verify;
        aopts.http.ca_file = opts->ca_file;
        aopts.max_retries = opts->max_retries;
        aopts.retry_max_elapsed_ms = opts->retry_max_elapsed_ms;
        aopts.retry_initial_ms = opts->retry_initial_ms;
        if ((rc = mbq_bq_auth_new(&bq->auth, opts->credentials, &aopts)) < 0)
            goto done;
    }
    *out = bq;
    bq = NULL;
done:
    mbq_buf_free(&ep);
    mbq_bq_free(bq);
    return rc;
}

void mbq_bq_free(mbq_bq *bq)
{
    if (!bq)
        return;
    mbq_http_free(bq->http);
    mbq_bq_auth_free(bq->auth);
    free(bq->project);
    free(bq->location);
    free(bq->endpoint);
    free(bq->job_error_reason);
    free(bq);
}

const char *mbq_bq_endpoint(const mbq_bq *bq) { return bq->endpoint; }
bool mbq_bq_uses_auth(const mbq_bq *bq) { return bq->auth != NULL; }
unsigned mbq_bq_request_count(const mbq_bq *bq) { return bq->requests; }
unsigned mbq_bq_retry_count(const mbq_bq *bq) { return bq->retries; }

/* ---- requests ------------------------------------------------------------ */

typedef struct bq_req {
    const char *method;
    const char *url;
    const char *content_type;        /* NULL = none */
    const mbq_http_body *body;       /* NULL = none */
    const char *const *headers;      /* extra, NULL-terminated; may be NULL */
    const char *what;                /* subject for messages: "table 'd.t'", "job 'x'" */
    bool retry;                      /* safe to send again */
    bool job_insert;                 /* a duplicate job id means "look it up" */
} bq_req;

/* Does this refusal of a jobs.insert say that the job id exists? BigQuery
 * answers 409 duplicate; goccy/bigquery-emulator answers 500 internalError
 * (uploads) or 400 jobInternalError (queries) "job X is already created"
 * (EMULATOR.md point 1), so the message decides, before any retry. */
static bool is_duplicate_job(long status, const mbq_bq_error_info *ei)
{
    if (status == 409)
        return true;
    if (status != 400 && status != 500)
        return false;
    const char *m = ei->message ? ei->message : "";
    return strstr(m, "already created") || strstr(m, "already exists");
}

static int status_code(long status)
{
    switch (status) {
    case 404: return MBQ_ENOTFOUND;
    case 409: return MBQ_EEXISTS;
    case 401: return MBQ_EAUTH;
    default: return MBQ_EBQ;
    }
}

/* Send a request with auth, retries and error decoding. Returns 0 for any
 * status below 400 (resp filled: 200, 201, 308), else a negative code with
 * the message "bigquery: <what>: <reason>: <message> (HTTP n)"; for a
 * job_insert refused as a duplicate, MBQ_EEXISTS. resp holds the last
 * response either way. */
static int bq_call(mbq_bq *bq, mbq_http_response *resp, const bq_req *r)
{
    int rc = 0;
    mbq_buf auth_hdr = MBQ_BUF_INIT;
    mbq_buf ct_hdr = MBQ_BUF_INIT;
    mbq_bq_error_info ei = {0, NULL, NULL};
    const char *hdrs[16];
    bool refreshed = false;
    int64_t start = mbq_monotonic_ms();

    for (int attempt = 0;;) {
        size_t nh = 0;
        mbq_buf_clear(&auth_hdr);
        mbq_buf_clear(&ct_hdr);
        mbq_bq_error_info_free(&ei);
        if (bq->auth) {
            const char *token;
            if ((rc = mbq_bq_auth_token(&token, bq->auth)) < 0)
                goto done;
            if ((rc = mbq_buf_printf(&auth_hdr, "Authorization: Bearer %s", token)) < 0)
                goto done;
            hdrs[nh++] = auth_hdr.ptr;
        }
        if (r->content_type) {
            if ((rc = mbq_buf_printf(&ct_hdr, "Content-Type: %s", r->content_type)) < 0)
                goto done;
            hdrs[nh++] = ct_hdr.ptr;
        }
        hdrs[nh++] = "Accept: application/json";
        for (const char *const *p = r->headers; p && *p && nh < 15; p++)
            hdrs[nh++] = *p;
        hdrs[nh] = NULL;

        mbq_http_request req = {r->method, r->url, hdrs, r->body};
        bq->requests++;
        rc = mbq_http_do(bq->http, resp, &req);
        bool retryable;
        if (rc < 0) {
            if (rc == MBQ_EIO || rc == MBQ_ENOMEM)
                goto done;
            retryable = mbq_http_retryable_curl(resp->curl_code);
            mbq_error_wrap(rc, "bigquery: %s: ", r->what);
        } else if (resp->status < 400) {
            rc = 0;
            goto done;
        } else {
            if ((rc = mbq_bq_parse_error(&ei, resp->body.ptr, resp->body.len)) < 0)
                goto done;
            if (resp->status == 401 && bq->auth && !refreshed) {
                /* The token may have been revoked or expired early: get a
                 * new one, once, without counting it as a retry. */
                refreshed = true;
                mbq_bq_auth_invalidate(bq->auth);
                continue;
            }
            if (r->job_insert && is_duplicate_job(resp->status, &ei)) {
                rc = mbq_error_set(MBQ_EEXISTS, "bigquery: %s: the job id exists already (HTTP %ld)",
                                   r->what, resp->status);
                goto done;
            }
            retryable = mbq_http_retryable_status(resp->status) ||
                        mbq_bq_reason_retryable(ei.reason);
            rc = mbq_error_set(status_code(resp->status), "bigquery: %s: %s: %s (HTTP %ld)",
                               r->what, ei.reason ? ei.reason : "error",
                               ei.message ? ei.message : "no message", resp->status);
        }
        if (!r->retry || !retryable || attempt >= bq->opts.max_retries)
            goto done;
        int64_t delay = mbq_http_backoff_ms(attempt, bq->opts.retry_initial_ms,
                                            bq->opts.retry_max_delay_ms);
        if (mbq_monotonic_ms() - start + delay > bq->opts.retry_max_elapsed_ms)
            goto done;
        mbq_log_debug("%s; retry %d in %lld ms", mbq_error_last(), attempt + 1, (long long)delay);
        mbq_sleep_ms(delay);
        attempt++;
        bq->retries++;
    }
done:
    mbq_bq_error_info_free(&ei);
    if (auth_hdr.ptr)
        memset(auth_hdr.ptr, 0, auth_hdr.len);
    mbq_buf_free(&auth_hdr);
    mbq_buf_free(&ct_hdr);
    return rc;
}

/* {endpoint}{prefix}/projects/{project}{path-with-escaped-args} */
static int bq_url(mbq_buf *out, const mbq_bq *bq, const char *prefix, const char *fmt, ...)
{
    int rc;
    if ((rc = mbq_buf_printf(out, "%s%s/projects/", bq->endpoint, prefix)) < 0 ||
        (rc = mbq_http_url_escape(out, bq->project)) < 0)
        return rc;
    /* fmt holds literal text and %s for path segments, which get escaped. */
    va_list ap;
    va_start(ap, fmt);
    for (const char *p = fmt; *p && rc == 0; p++) {
        if (p[0] == '%' && p[1] == 's') {
            rc = mbq_http_url_escape(out, va_arg(ap, const char *));
            p++;
        } else {
            rc = mbq_buf_putc(out, *p);
        }
    }
    va_end(ap);
    return rc;
}

static int json_put_str(mbq_buf *b, const char *s)
{
    return mbq_buf_json_string(b, s, strlen(s));
}

static int json_body(mbq_http_body *body, const mbq_buf *b)
{
    memset(body, 0, sizeof(*body));
    body->pre = mbq_buf_cstr(b);
    body->pre_len = b->len;
    return 0;
}

/* ---- datasets ------------------------------------------------------------ */

int mbq_bq_dataset_get(mbq_bq *bq, mbq_buf *location_out, const char *dataset)
{
    int rc;
    mbq_buf url = MBQ_BUF_INIT, what = MBQ_BUF_INIT;
    mbq_http_response resp = MBQ_HTTP_RESPONSE_INIT;
    json_object *root = NULL;
    if ((rc = bq_url(&url, bq, "/bigquery/v2", "/datasets/%s", dataset)) < 0 ||
        (rc = mbq_buf_printf(&what, "dataset '%s'", dataset)) < 0)
        goto done;
    bq_req r = {"GET", url.ptr, NULL, NULL, NULL, what.ptr, true, false};
    if ((rc = bq_call(bq, &resp, &r)) < 0)
        goto done;
    if (location_out) {
        if ((rc = mbq_bq_json_parse(&root, resp.body.ptr, resp.body.len)) < 0) {
            mbq_error_wrap(rc, "bigquery: dataset '%s': ", dataset);
            goto done;
        }
        const char *loc = mbq_bq_jstr(root, "location");
        if (loc && (rc = mbq_buf_puts(location_out, loc)) < 0)
            goto done;
    }
done:
    json_object_put(root);
    mbq_http_response_free(&resp);
    mbq_buf_free(&url);
    mbq_buf_free(&what);
    return rc;
}

const char *mbq_bq_location(const mbq_bq *bq) { return bq->location; }
bool mbq_bq_location_configured(const mbq_bq *bq) { return bq->location_configured; }

int mbq_bq_location_resolve(mbq_bq *bq, bool *dataset_exists, const char *dataset)
{
    int rc;
    mbq_buf loc = MBQ_BUF_INIT;
    char *copy = NULL;
    *dataset_exists = false;
    rc = mbq_bq_dataset_get(bq, &loc, dataset);
    if (rc == MBQ_ENOTFOUND) {
        /* Not created yet: it will be created where the config says (or
         * in US), and its jobs run there. */
        mbq_error_clear();
        rc = 0;
        goto done;
    }
    if (rc < 0)
        goto done;
    *dataset_exists = true;
    if (loc.len == 0)
        goto done; /* no location in the answer: keep what we have */
    /* Location names compare case-insensitively ("eu" is "EU"). */
    if (bq->location_configured && strcasecmp(bq->location, loc.ptr) != 0) {
        rc = mbq_error_set(MBQ_ECONFIG,
                           "bigquery: 'bigquery.location' is '%s' but dataset '%s' is in '%s': "
                           "jobs must run in the dataset's location (set 'location: %s' or "
                           "remove the setting)",
                           bq->location, dataset, loc.ptr, loc.ptr);
        goto done;
    }
    if (!(copy = mbq_strdup(loc.ptr))) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    free(bq->location);
    bq->location = copy;
    bq->opts.location = copy;
done:
    mbq_buf_free(&loc);
    return rc;
}

int mbq_bq_dataset_ensure(mbq_bq *bq, const char *dataset, const char *location)
{
    int rc;
    mbq_buf url = MBQ_BUF_INIT, what = MBQ_BUF_INIT, body = MBQ_BUF_INIT;
    mbq_http_response resp = MBQ_HTTP_RESPONSE_INIT;
    /* Look up first: the emulator answers a duplicate create with 500, which
     * a retrying client would repeat until it gives up (EMULATOR.md 2). */
    rc = mbq_bq_dataset_get(bq, NULL, dataset);
    if (rc != MBQ_ENOTFOUND)
        goto done;
    mbq_error_clear();
    if ((rc = bq_url(&url, bq, "/bigquery/v2", "/datasets")) < 0 ||
        (rc = mbq_buf_printf(&what, "create dataset '%s'", dataset)) < 0 ||
        (rc = mbq_buf_puts(&body, "{\"datasetReference\":{\"projectId\":")) < 0 ||
        (rc = json_put_str(&body, bq->project)) < 0 ||
        (rc = mbq_buf_puts(&body, ",\"datasetId\":")) < 0 ||
        (rc = json_put_str(&body, dataset)) < 0 ||
        (rc = mbq_buf_puts(&body, "},\"location\":")) < 0 ||
        (rc = json_put_str(&body, location ? location : bq->location)) < 0 ||
        (rc = mbq_buf_putc(&body, '}')) < 0)
        goto done;
    mbq_http_body hb;
    json_body(&hb, &body);
    /* A repeated create answers 409 on BigQuery, so retrying is safe. */
    bq_req r = {"POST", url.ptr, "application/json", &hb, NULL, what.ptr, true, false};
    rc = bq_call(bq, &resp, &r);
    if (rc == MBQ_EEXISTS) {
        mbq_error_clear();
        rc = 0;
    }
done:
    mbq_http_response_free(&resp);
    mbq_buf_free(&url);
    mbq_buf_free(&what);
    mbq_buf_free(&body);
    return rc;
}

int mbq_bq_dataset_delete(mbq_bq *bq, const char *dataset, bool delete_contents)
{
    int rc;
    mbq_buf url = MBQ_BUF_INIT, what = MBQ_BUF_INIT;
    mbq_http_response resp = MBQ_HTTP_RESPONSE_INIT;
    if ((rc = bq_url(&url, bq, "/bigquery/v2", "/datasets/%s", dataset)) < 0 ||
        (delete_contents && (rc = mbq_buf_puts(&url, "?deleteContents=true")) < 0) ||
        (rc = mbq_buf_printf(&what, "delete dataset '%s'", dataset)) < 0)
        goto done;
    bq_req r = {"DELETE", url.ptr, NULL, NULL, NULL, what.ptr, true, false};
    rc = bq_call(bq, &resp, &r);
    if (rc == MBQ_ENOTFOUND) {
        mbq_error_clear();
        rc = 0;
    }
done:
    mbq_http_response_free(&resp);
    mbq_buf_free(&url);
    mbq_buf_free(&what);
    return rc;
}

int mbq_bq_dataset_expirations(mbq_bq *bq, int64_t *table_ms, int64_t *partition_ms,
                               const char *dataset)
{
    int rc;
    mbq_buf url = MBQ_BUF_INIT, what = MBQ_BUF_INIT;
    mbq_http_response resp = MBQ_HTTP_RESPONSE_INIT;
    json_object *root = NULL;
    *table_ms = *partition_ms = 0;
    if ((rc = bq_url(&url, bq, "/bigquery/v2", "/datasets/%s", dataset)) < 0 ||
        (rc = mbq_buf_printf(&what, "dataset '%s'", dataset)) < 0)
        goto done;
    bq_req r = {"GET", url.ptr, NULL, NULL, NULL, what.ptr, true, false};
    if ((rc = bq_call(bq, &resp, &r)) < 0)
        goto done;
    if ((rc = mbq_bq_json_parse(&root, resp.body.ptr, resp.body.len)) < 0) {
        mbq_error_wrap(rc, "bigquery: dataset '%s': ", dataset);
        goto done;
    }
    /* Both are int64 sent as JSON strings (REST reference, Dataset). */
    *table_ms = mbq_bq_jint64(root, "defaultTableExpirationMs", 0);
    *partition_ms = mbq_bq_jint64(root, "defaultPartitionExpirationMs", 0);
done:
    json_object_put(root);
    mbq_http_response_free(&resp);
    mbq_buf_free(&url);
    mbq_buf_free(&what);
    return rc;
}

/* ---- tables -------------------------------------------------------------- */

/* GET the table: the parsed info and/or the raw response body. */
static int table_fetch(mbq_bq *bq, mbq_bq_table_info **info, mbq_buf *raw, const char *dataset,
                       const char *table)
{
    int rc;
    mbq_buf url = MBQ_BUF_INIT, what = MBQ_BUF_INIT;
    mbq_http_response resp = MBQ_HTTP_RESPONSE_INIT;
    if ((rc = bq_url(&url, bq, "/bigquery/v2", "/datasets/%s/tables/%s", dataset, table)) < 0 ||
        (rc = mbq_buf_printf(&what, "table '%s.%s'", dataset, table)) < 0)
        goto done;
    bq_req r = {"GET", url.ptr, NULL, NULL, NULL, what.ptr, true, false};
    if ((rc = bq_call(bq, &resp, &r)) < 0)
        goto done;
    if (info && (rc = mbq_bq_table_info_from_json(info, resp.body.ptr, resp.body.len)) < 0) {
        mbq_error_wrap(rc, "bigquery: table '%s.%s': ", dataset, table);
        goto done;
    }
    if (raw)
        rc = mbq_buf_append(raw, resp.body.ptr ? resp.body.ptr : "", resp.body.len);
done:
    mbq_http_response_free(&resp);
    mbq_buf_free(&url);
    mbq_buf_free(&what);
    return rc;
}

int mbq_bq_table_get(mbq_bq_table_info **out, mbq_bq *bq, const char *dataset, const char *table)
{
    *out = NULL;
    return table_fetch(bq, out, NULL, dataset, table);
}

int mbq_bq_table_create(mbq_bq *bq, const char *dataset, const char *table,
                        const mbq_bq_schema *schema, const mbq_bq_table_options *opts)
{
    int rc;
    mbq_buf url = MBQ_BUF_INIT, what = MBQ_BUF_INIT, b = MBQ_BUF_INIT;
    mbq_http_response resp = MBQ_HTTP_RESPONSE_INIT;
    mbq_bq_table_options def = MBQ_BQ_TABLE_OPTIONS_INIT;
    if (!opts)
        opts = &def;
    if ((rc = bq_url(&url, bq, "/bigquery/v2", "/datasets/%s/tables", dataset)) < 0 ||
        (rc = mbq_buf_printf(&what, "create table '%s.%s'", dataset, table)) < 0 ||
        (rc = mbq_buf_puts(&b, "{\"tableReference\":{\"projectId\":")) < 0 ||
        (rc = json_put_str(&b, bq->project)) < 0 ||
        (rc = mbq_buf_puts(&b, ",\"datasetId\":")) < 0 || (rc = json_put_str(&b, dataset)) < 0 ||
        (rc = mbq_buf_puts(&b, ",\"tableId\":")) < 0 || (rc = json_put_str(&b, table)) < 0 ||
        (rc = mbq_buf_puts(&b, "},\"schema\":{\"fields\":")) < 0 ||
        (rc = mbq_bq_schema_to_json(&b, schema)) < 0 || (rc = mbq_buf_putc(&b, '}')) < 0)
        goto done;
    if (opts->expiration_ms > 0 &&
        (rc = mbq_buf_printf(&b, ",\"expirationTime\":\"%lld\"",
                             (long long)(mbq_now_ms() + opts->expiration_ms))) < 0)
        goto done;
    if (opts->partition_type || opts->partition_field) {
        if ((rc = mbq_buf_puts(&b, ",\"timePartitioning\":{\"type\":")) < 0 ||
            (rc = json_put_str(&b, opts->partition_type ? opts->partition_type : "DAY")) < 0)
            goto done;
        if (opts->partition_field && ((rc = mbq_buf_puts(&b, ",\"field\":")) < 0 ||
                                      (rc = json_put_str(&b, opts->partition_field)) < 0))
            goto done;
        if ((rc = mbq_buf_putc(&b, '}')) < 0)
            goto done;
    }
    if (opts->n_clustering) {
        if ((rc = mbq_buf_puts(&b, ",\"clustering\":{\"fields\":[")) < 0)
            goto done;
        for (size_t i = 0; i < opts->n_clustering; i++)
            if ((i && (rc = mbq_buf_putc(&b, ',')) < 0) ||
                (rc = json_put_str(&b, opts->clustering[i])) < 0)
                goto done;
        if ((rc = mbq_buf_puts(&b, "]}")) < 0)
            goto done;
    }
    if (opts->description && ((rc = mbq_buf_puts(&b, ",\"description\":")) < 0 ||
                              (rc = json_put_str(&b, opts->description)) < 0))
        goto done;
    if ((rc = mbq_buf_putc(&b, '}')) < 0)
        goto done;
    mbq_http_body hb;
    json_body(&hb, &b);
    /* Retrying is safe: a table created by an earlier attempt gives 409,
     * which the caller sees as MBQ_EEXISTS. */
    bq_req r = {"POST", url.ptr, "application/json", &hb, NULL, what.ptr, true, false};
    rc = bq_call(bq, &resp, &r);
done:
    mbq_http_response_free(&resp);
    mbq_buf_free(&url);
    mbq_buf_free(&what);
    mbq_buf_free(&b);
    return rc;
}

int mbq_bq_table_add_columns(mbq_bq *bq, size_t *added, const char *dataset, const char *table,
                             const mbq_bq_schema *fields)
{
    int rc = 0;
    mbq_buf raw = MBQ_BUF_INIT, url = MBQ_BUF_INIT, what = MBQ_BUF_INIT, b = MBQ_BUF_INIT;
    mbq_buf etag_hdr = MBQ_BUF_INIT;
    mbq_http_response resp = MBQ_HTTP_RESPONSE_INIT;
    json_object *root = NULL;
    mbq_bq_schema *cur = NULL;
    if (added)
        *added = 0;

    for (int round = 0;; round++) {
        size_t n_new = 0;
        mbq_buf_clear(&raw);
        mbq_buf_clear(&b);
        mbq_buf_clear(&etag_hdr);
        json_object_put(root);
        root = NULL;
        mbq_bq_schema_free(cur);
        cur = NULL;
        if ((rc = table_fetch(bq, NULL, &raw, dataset, table)) < 0)
            goto done;
        if ((rc = mbq_bq_json_parse(&root, raw.ptr, raw.len)) < 0 ||
            (rc = mbq_bq_schema_from_object(&cur, root)) < 0) {
            mbq_error_wrap(rc, "bigquery: table '%s.%s': ", dataset, table);
            goto done;
        }
        /* The patch sends the current fields as BigQuery returned them (with
         * any nested fields, policy tags, descriptions) plus the new ones:
         * tables.patch replaces the whole schema. */
        const char *fields_json = "[]";
        json_object *cf = mbq_bq_jget(mbq_bq_jget(root, "schema"), "fields");
        if (cf && json_object_is_type(cf, json_type_array) && json_object_array_length(cf) > 0)
            fields_json = json_object_to_json_string_ext(cf, JSON_C_TO_STRING_PLAIN);
        if (!fields_json) {
            rc = mbq_error_set(MBQ_ENOMEM, "out of memory");
            goto done;
        }
        size_t flen = strlen(fields_json);
        if ((rc = mbq_buf_puts(&b, "{\"schema\":{\"fields\":")) < 0 ||
            (rc = mbq_buf_append(&b, fields_json, flen - 1)) < 0) /* without the ']' */
            goto done;
        for (size_t i = 0; i < fields->n_fields; i++) {
            const mbq_bq_field *f = &fields->fields[i];
            const mbq_bq_field *have = mbq_bq_schema_find(cur, f->name);
            if (have) {
                if (strcmp(have->type, f->type) != 0) {
                    rc = mbq_error_set(MBQ_ESCHEMA,
                                       "bigquery: table '%s.%s': column '%s' exists with type %s, "
                                       "not %s",
                                       dataset, table, f->name, have->type, f->type);
                    goto done;
                }
                continue;
            }
            /* Skip duplicates within `fields` itself. */
            bool dup = false;
            for (size_t k = 0; k < i; k++)
                dup = dup || strcasecmp(fields->fields[k].name, f->name) == 0;
            if (dup)
                continue;
            if ((n_new > 0 || flen > 2) && (rc = mbq_buf_putc(&b, ',')) < 0)
                goto done;
            /* BigQuery refuses to add a REQUIRED column to a table with rows. */
            if ((rc = mbq_bq_field_to_json(&b, f,
                                           f->mode == MBQ_BQ_REPEATED ? MBQ_BQ_REPEATED
                                                                      : MBQ_BQ_NULLABLE)) < 0)
                goto done;
            n_new++;
        }
        if (n_new == 0)
            goto done; /* idempotent: nothing missing, nothing sent */
        if ((rc = mbq_buf_puts(&b, "]}}")) < 0)
            goto done;

        const char *etag = mbq_bq_jstr(root, "etag");
        const char *extra[2] = {NULL, NULL};
        if (etag) {
            if ((rc = mbq_buf_printf(&etag_hdr, "If-Match: %s", etag)) < 0)
                goto done;
            extra[0] = etag_hdr.ptr;
        }
        mbq_buf_clear(&url);
        mbq_buf_clear(&what);
        if ((rc = bq_url(&url, bq, "/bigquery/v2", "/datasets/%s/tables/%s", dataset, table)) < 0 ||
            (rc = mbq_buf_printf(&what, "add columns to table '%s.%s'", dataset, table)) < 0)
            goto done;
        mbq_http_body hb;
        json_body(&hb, &b);
        /* Retrying is safe: the patch states the whole resulting schema, and
         * with If-Match a changed table gives 412 instead of a second change. */
        bq_req r = {"PATCH", url.ptr, "application/json", &hb, extra, what.ptr, true, false};
        rc = bq_call(bq, &resp, &r);
        if (rc < 0 && resp.status == 412 && round < 4) {
            mbq_error_clear();
            continue; /* the table changed since we read it: read it again */
        }
        if (rc == 0 && added)
            *added = n_new;
        goto done;
    }
done:
    json_object_put(root);
    mbq_bq_schema_free(cur);
    mbq_http_response_free(&resp);
    mbq_buf_free(&raw);
    mbq_buf_free(&url);
    mbq_buf_free(&what);
    mbq_buf_free(&b);
    mbq_buf_free(&etag_hdr);
    return rc;
}

int mbq_bq_table_delete(mbq_bq *bq, const char *dataset, const char *table)
{
    int rc;
    mbq_buf url = MBQ_BUF_INIT, what = MBQ_BUF_INIT;
    mbq_http_response resp = MBQ_HTTP_RESPONSE_INIT;
    if ((rc = bq_url(&url, bq, "/bigquery/v2", "/datasets/%s/tables/%s", dataset, table)) < 0 ||
        (rc = mbq_buf_printf(&what, "delete table '%s.%s'", dataset, table)) < 0)
        goto done;
    bq_req r = {"DELETE", url.ptr, NULL, NULL, NULL, what.ptr, true, false};
    rc = bq_call(bq, &resp, &r);
    if (rc == MBQ_ENOTFOUND) {
        mbq_error_clear();
        rc = 0; /* gone already: what the caller wanted */
    }
done:
    mbq_http_response_free(&resp);
    mbq_buf_free(&url);
    mbq_buf_free(&what);
    return rc;
}

/* ---- jobs ---------------------------------------------------------------- */

int mbq_bq_job_get(mbq_bq_job **out, mbq_bq *bq, const char *job_id, const char *location)
{
    int rc;
    mbq_buf url = MBQ_BUF_INIT, what = MBQ_BUF_INIT;
    mbq_http_response resp = MBQ_HTTP_RESPONSE_INIT;
    *out = NULL;
    if ((rc = bq_url(&url, bq, "/bigquery/v2", "/jobs/%s?location=%s", job_id,
                     location ? location : bq->location)) < 0 ||
        (rc = mbq_buf_printf(&what, "job '%s'", job_id)) < 0)
        goto done;
    bq_req r = {"GET", url.ptr, NULL, NULL, NULL, what.ptr, true, false};
    if ((rc = bq_call(bq, &resp, &r)) < 0)
        goto done;
    if ((rc = mbq_bq_job_from_json(out, resp.body.ptr, resp.body.len)) < 0)
        mbq_error_wrap(rc, "bigquery: job '%s': ", job_id);
done:
    mbq_http_response_free(&resp);
    mbq_buf_free(&url);
    mbq_buf_free(&what);
    return rc;
}

const char *mbq_bq_job_error_reason(const mbq_bq *bq) { return bq->job_error_reason; }

static void job_error_forget(mbq_bq *bq)
{
    free(bq->job_error_reason);
    bq->job_error_reason = NULL;
}

static int job_failed(mbq_bq *bq, const mbq_bq_job *j, const char *job_id)
{
    job_error_forget(bq);
    bq->job_error_reason = mbq_strdup(j->error_reason); /* NULL on ENOMEM: "not transient" */
    return mbq_error_set(MBQ_EBQ, "bigquery: job '%s' failed: %s: %s", job_id, j->error_reason,
                         j->error_message);
}

/* Hand `j` (owned) out when it is DONE without error, else turn it into the
 * error. */
static int job_finish(mbq_bq_job **out, mbq_bq *bq, mbq_bq_job *j, const char *job_id)
{
    if (j->error_reason) {
        int rc = job_failed(bq, j, job_id);
        mbq_bq_job_free(j);
        return rc;
    }
    *out = j;
    return 0;
}

int mbq_bq_job_wait(mbq_bq_job **out, mbq_bq *bq, const char *job_id, const char *location)
{
    int rc;
    int64_t start = mbq_monotonic_ms();
    int64_t delay = bq->opts.poll_initial_ms;
    *out = NULL;
    job_error_forget(bq);
    for (;;) {
        mbq_bq_job *j = NULL;
        if ((rc = mbq_bq_job_get(&j, bq, job_id, location)) < 0)
            return rc;
        if (strcmp(j->state, "DONE") == 0)
            return job_finish(out, bq, j, job_id);
        mbq_bq_job_free(j);
        if (mbq_monotonic_ms() - start + delay > bq->opts.job_timeout_ms)
            return mbq_error_set(MBQ_ETIMEOUT,
                                 "bigquery: job '%s' is not done after %lld ms (still running "
                                 "in BigQuery; a later run waits for it again)",
                                 job_id, (long long)(mbq_monotonic_ms() - start));
        mbq_sleep_ms(delay);
        delay = delay * 2 > bq->opts.poll_max_ms ? bq->opts.poll_max_ms : delay * 2;
    }
}

/* Wait for a job that BigQuery has just said exists (an accepted insert, a
 * 409 duplicate): a jobs.get that answers 404 right then is a known race of
 * BigQuery's (googleapis/python-bigquery issue 2134, which made the Python
 * client's job_retry treat NotFound as retryable), not a missing job. Asked
 * again briefly, bounded by max_retries and retry_max_elapsed_ms. */
static int job_wait_known(mbq_bq_job **out, mbq_bq *bq, const char *job_id, const char *location)
{
    int64_t start = mbq_monotonic_ms();
    for (int attempt = 0;; attempt++) {
        int rc = mbq_bq_job_wait(out, bq, job_id, location);
        if (rc != MBQ_ENOTFOUND || attempt >= bq->opts.max_retries)
            return rc;
        int64_t delay = mbq_http_backoff_ms(attempt, bq->opts.retry_initial_ms,
                                            bq->opts.retry_max_delay_ms);
        if (mbq_monotonic_ms() - start + delay > bq->opts.retry_max_elapsed_ms)
            return rc;
        mbq_log_info("bigquery: job '%s' is not found right after BigQuery accepted it; asking "
                     "again in %lld ms",
                     job_id, (long long)delay);
        mbq_error_clear();
        mbq_sleep_ms(delay);
        bq->retries++;
    }
}

/* The job id was known before this call: wait for that job, never submit. */
static int job_existing(mbq_bq_job **out, mbq_bq *bq, const char *job_id, const char *location)
{
    int rc = job_wait_known(out, bq, job_id, location);
    if (rc == 0)
        (*out)->existed = true;
    return rc;
}

/* After jobs.insert answered: a duplicate -> look it up; errorResult in the
 * insert response -> failed (the emulator reports a failure only there,
 * EMULATOR.md 3); DONE -> done; else poll. */
static int job_after_insert(mbq_bq_job **out, mbq_bq *bq, int rc, const mbq_http_response *resp,
                            const char *job_id, const char *location)
{
    mbq_bq_job *j = NULL;
    if (rc == MBQ_EEXISTS) {
        mbq_log_info("bigquery: job '%s' exists already: waiting for it instead", job_id);
        mbq_error_clear();
        return job_existing(out, bq, job_id, location);
    }
    if (rc < 0)
        return rc;
    if ((rc = mbq_bq_job_from_json(&j, resp->body.ptr, resp->body.len)) < 0) {
        /* A success whose Job resource is unreadable (a body cut where the
         * connection's close ends it, a proxy's page): the job was created,
         * so its id says how it went. */
        mbq_log_warn("bigquery: job '%s': the answer to its submission is unreadable (%s): "
                     "looking it up",
                     job_id, mbq_error_last());
        mbq_error_clear();
        return job_existing(out, bq, job_id, location);
    }
    if (j->error_reason || strcmp(j->state, "DONE") == 0)
        return job_finish(out, bq, j, job_id);
    mbq_bq_job_free(j);
    return job_wait_known(out, bq, job_id, location);
}

/* Look the id up before submitting: 0 with *out when it exists (done or
 * failed), MBQ_ENOTFOUND (message cleared) when it does not. */
static int job_lookup(mbq_bq_job **out, mbq_bq *bq, const char *job_id, const char *location)
{
    mbq_bq_job *j = NULL;
    *out = NULL;
    int rc = mbq_bq_job_get(&j, bq, job_id, location);
    if (rc == MBQ_ENOTFOUND) {
        mbq_error_clear();
        return rc;
    }
    if (rc < 0)
        return rc;
    mbq_bq_job_free(j);
    mbq_log_info("bigquery: job '%s' exists already: waiting for it instead of submitting it",
                 job_id);
    return job_existing(out, bq, job_id, location);
}

static int job_reference(mbq_buf *b, const mbq_bq *bq, const char *job_id, const char *location)
{
    int rc;
    if ((rc = mbq_buf_puts(b, "\"jobReference\":{\"projectId\":")) < 0 ||
        (rc = json_put_str(b, bq->project)) < 0 || (rc = mbq_buf_puts(b, ",\"jobId\":")) < 0 ||
        (rc = json_put_str(b, job_id)) < 0 || (rc = mbq_buf_puts(b, ",\"location\":")) < 0 ||
        (rc = json_put_str(b, location)) < 0)
        return rc;
    return mbq_buf_putc(b, '}');
}

int mbq_bq_query(mbq_bq_job **out, mbq_bq *bq, const char *job_id, const char *sql,
                 const mbq_bq_query_options *opts)
{
    int rc;
    mbq_buf url = MBQ_BUF_INIT, what = MBQ_BUF_INIT, b = MBQ_BUF_INIT;
    mbq_http_response resp = MBQ_HTTP_RESPONSE_INIT;
    mbq_bq_query_options def = MBQ_BQ_QUERY_OPTIONS_INIT;
    if (!opts)
        opts = &def;
    const char *location = opts->location ? opts->location : bq->location;
    *out = NULL;
    job_error_forget(bq);

    /* Look the id up first. On BigQuery a duplicate insert would only give
     * 409, but the emulator runs a duplicate query's statement again before
     * refusing it (EMULATOR.md 1): a re-run DML would apply twice. */
    rc = job_lookup(out, bq, job_id, location);
    if (rc != MBQ_ENOTFOUND)
        goto done;

    if ((rc = bq_url(&url, bq, "/bigquery/v2", "/jobs")) < 0 ||
        (rc = mbq_buf_printf(&what, "job '%s' failed", job_id)) < 0 ||
        (rc = mbq_buf_putc(&b, '{')) < 0 ||
        (rc = job_reference(&b, bq, job_id, location)) < 0 ||
        (rc = mbq_buf_puts(&b, ",\"configuration\":{\"query\":{\"query\":")) < 0 ||
        (rc = json_put_str(&b, sql)) < 0 || (rc = mbq_buf_puts(&b, ",\"useLegacySql\":false")) < 0)
        goto done;
    if (opts->default_dataset &&
        ((rc = mbq_buf_puts(&b, ",\"defaultDataset\":{\"projectId\":")) < 0 ||
         (rc = json_put_str(&b, bq->project)) < 0 ||
         (rc = mbq_buf_puts(&b, ",\"datasetId\":")) < 0 ||
         (rc = json_put_str(&b, opts->default_dataset)) < 0 || (rc = mbq_buf_putc(&b, '}')) < 0))
        goto done;
    if ((rc = mbq_buf_puts(&b, "}}}")) < 0)
        goto done;
    mbq_http_body hb;
    json_body(&hb, &b);
    /* jobs.insert carries the job id, so a retry cannot run it twice: a
     * repeated id is refused as a duplicate and looked up. */
    bq_req r = {"POST", url.ptr, "application/json", &hb, NULL, what.ptr, true, true};
    rc = bq_call(bq, &resp, &r);
    rc = job_after_insert(out, bq, rc, &resp, job_id, location);
done:
    mbq_http_response_free(&resp);
    mbq_buf_free(&url);
    mbq_buf_free(&what);
    mbq_buf_free(&b);
    return rc;
}

/* ---- query results ------------------------------------------------------- */

struct mbq_bq_rows {
    mbq_bq *bq;
    char *job_id;
    char *location;
    int64_t page_size;
    json_object *page;     /* the current getQueryResults response */
    json_object *rows;     /* page's "rows" array (borrowed) */
    size_t idx;            /* next row in `rows` */
    char *page_token;      /* NULL after the last page */
    bool started;
    char **names;
    size_t ncols;
    const char **values;   /* current row; borrowed from `page` */
    int64_t total;
    unsigned pages;
};

void mbq_bq_rows_free(mbq_bq_rows *r)
{
    if (!r)
        return;
    free(r->job_id);
    free(r->location);
    json_object_put(r->page);
    free(r->page_token);
    for (size_t i = 0; i < r->ncols; i++)
        free(r->names[i]);
    free(r->names);
    free(r->values);
    free(r);
}

/* Fetch the next page into r->page. */
static int rows_fetch(mbq_bq_rows *r)
{
    int rc = 0;
    mbq_buf url = MBQ_BUF_INIT, what = MBQ_BUF_INIT;
    mbq_http_response resp = MBQ_HTTP_RESPONSE_INIT;
    mbq_bq *bq = r->bq;
    int64_t start = mbq_monotonic_ms();
    int64_t delay = bq->opts.poll_initial_ms;

    if ((rc = mbq_buf_printf(&what, "results of job '%s'", r->job_id)) < 0)
        goto done;
    for (;;) {
        mbq_buf_clear(&url);
        if ((rc = bq_url(&url, bq, "/bigquery/v2", "/queries/%s?location=%s", r->job_id,
                         r->location)) < 0)
            goto done;
        if (r->page_size > 0 &&
            (rc = mbq_buf_printf(&url, "&maxResults=%lld", (long long)r->page_size)) < 0)
            goto done;
        if (r->page_token && ((rc = mbq_buf_puts(&url, "&pageToken=")) < 0 ||
                              (rc = mbq_http_url_escape(&url, r->page_token)) < 0))
            goto done;
        bq_req q = {"GET", url.ptr, NULL, NULL, NULL, what.ptr, true, false};
        if ((rc = bq_call(bq, &resp, &q)) < 0)
            goto done;
        json_object_put(r->page);
        r->page = NULL;
        r->rows = NULL;
        if ((rc = mbq_bq_json_parse(&r->page, resp.body.ptr, resp.body.len)) < 0) {
            mbq_error_wrap(rc, "bigquery: results of job '%s': ", r->job_id);
            goto done;
        }
        json_object *complete = mbq_bq_jget(r->page, "jobComplete");
        if (!complete || json_object_get_boolean(complete))
            break;
        /* getQueryResults answers jobComplete=false until the job is done. */
        if (mbq_monotonic_ms() - start + delay > bq->opts.job_timeout_ms) {
            rc = mbq_error_set(MBQ_ETIMEOUT, "bigquery: results of job '%s' not ready in time",
                               r->job_id);
            goto done;
        }
        mbq_sleep_ms(delay);
        delay = delay * 2 > bq->opts.poll_max_ms ? bq->opts.poll_max_ms : delay * 2;
    }
    r->pages++;
    r->idx = 0;
    r->total = mbq_bq_jint64(r->page, "totalRows", r->total);
    json_object *rows = mbq_bq_jget(r->page, "rows");
    r->rows = rows && json_object_is_type(rows, json_type_array) ? rows : NULL;
    free(r->page_token);
    r->page_token = NULL;
    const char *tok = mbq_bq_jstr(r->page, "pageToken");
    if (tok && *tok && !(r->page_token = mbq_strdup(tok))) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    if (!r->names) {
        mbq_bq_schema *s = NULL;
        json_object *schema = mbq_bq_jget(r->page, "schema");
        if (schema)
            rc = mbq_bq_schema_from_object(&s, schema);
        else
            rc = mbq_bq_schema_new(&s);
        if (rc < 0) {
            mbq_error_wrap(rc, "bigquery: results of job '%s': ", r->job_id);
            goto done;
        }
        /* Take the names over from the schema. */
        r->names = mbq_calloc(s->n_fields + 1, sizeof(char *));
        r->values = mbq_calloc(s->n_fields + 1, sizeof(char *));
        if (!r->names || !r->values) {
            mbq_bq_schema_free(s);
            rc = MBQ_ENOMEM;
            goto done;
        }
        for (size_t i = 0; i < s->n_fields; i++) {
            r->names[i] = s->fields[i].name;
            s->fields[i].name = NULL;
        }
        r->ncols = s->n_fields;
        for (size_t i = 0; i < s->n_fields; i++)
            s->fields[i].name = mbq_strdup(""); /* keep schema_free simple */
        mbq_bq_schema_free(s);
    }
done:
    mbq_http_response_free(&resp);
    mbq_buf_free(&url);
    mbq_buf_free(&what);
    return rc;
}

int mbq_bq_query_rows(mbq_bq_rows **out, mbq_bq *bq, const mbq_bq_job *job, int64_t page_size)
{
    *out = NULL;
    mbq_bq_rows *r = mbq_calloc(1, sizeof(*r));
    if (!r)
        return MBQ_ENOMEM;
    r->bq = bq;
    r->page_size = page_size;
    r->total = -1;
    r->job_id = mbq_strdup(job->job_id);
    r->location = mbq_strdup(job->location ? job->location : bq->location);
    if (!r->job_id || !r->location) {
        mbq_bq_rows_free(r);
        return MBQ_ENOMEM;
    }
    *out = r;
    return 0;
}

int mbq_bq_rows_next(mbq_bq_rows *r)
{
    int rc;
    for (;;) {
        if (!r->started) {
            r->started = true;
            if ((rc = rows_fetch(r)) < 0)
                return rc;
        }
        if (r->rows && r->idx < json_object_array_length(r->rows))
            break;
        if (!r->page_token)
            return 0;
        if ((rc = rows_fetch(r)) < 0)
            return rc;
    }
    json_object *row = json_object_array_get_idx(r->rows, r->idx++);
    json_object *f = mbq_bq_jget(row, "f");
    if (!f || !json_object_is_type(f, json_type_array) ||
        json_object_array_length(f) != r->ncols)
        return mbq_error_set(MBQ_EDATA, "bigquery: results of job '%s': malformed row %zu",
                             r->job_id, r->idx - 1);
    for (size_t i = 0; i < r->ncols; i++) {
        json_object *v = mbq_bq_jget(json_object_array_get_idx(f, i), "v");
        if (!v || json_object_is_type(v, json_type_null))
            r->values[i] = NULL;
        else if (json_object_is_type(v, json_type_string))
            r->values[i] = json_object_get_string(v);
        else
            r->values[i] = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
    }
    return 1;
}

size_t mbq_bq_rows_ncols(const mbq_bq_rows *r) { return r->ncols; }

const char *mbq_bq_rows_name(const mbq_bq_rows *r, size_t i)
{
    return i < r->ncols ? r->names[i] : NULL;
}

const char *mbq_bq_rows_value(const mbq_bq_rows *r, size_t i)
{
    return i < r->ncols ? r->values[i] : NULL;
}

int64_t mbq_bq_rows_total(const mbq_bq_rows *r) { return r->total; }
unsigned mbq_bq_rows_pages(const mbq_bq_rows *r) { return r->pages; }

int mbq_bq_query_scalar(char **out, mbq_bq *bq, const char *job_id, const char *sql)
{
    int rc;
    mbq_bq_job *job = NULL;
    mbq_bq_rows *rows = NULL;
    *out = NULL;
    if ((rc = mbq_bq_query(&job, bq, job_id, sql, NULL)) < 0 ||
        (rc = mbq_bq_query_rows(&rows, bq, job, 1)) < 0 || (rc = mbq_bq_rows_next(rows)) < 0)
        goto done;
    if (rc == 0 || mbq_bq_rows_ncols(rows) == 0) {
        rc = mbq_error_set(MBQ_ENOTFOUND, "bigquery: query job '%s' returned no row", job_id);
        goto done;
    }
    rc = 0;
    const char *v = mbq_bq_rows_value(rows, 0);
    if (v && !(*out = mbq_strdup(v)))
        rc = MBQ_ENOMEM;
done:
    mbq_bq_rows_free(rows);
    mbq_bq_job_free(job);
    return rc;
}

/* ---- job ids ------------------------------------------------------------- */

static bool id_char_ok(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
}

int mbq_bq_job_id(mbq_buf *out, const char *prefix, ...)
{
    int rc = 0;
    mbq_buf id = MBQ_BUF_INIT;
    bool changed = false;
    EVP_MD_CTX *md = NULL;
    unsigned char hash[EVP_MAX_MD_SIZE];
    unsigned hlen = 0;
    va_list ap;

    if (!prefix || !*prefix)
        return mbq_error_set(MBQ_ECONFIG, "a job id needs a prefix");
    md = EVP_MD_CTX_new();
    if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        rc = mbq_error_set(MBQ_ENOMEM, "cannot hash the job id");
        goto done;
    }
    va_start(ap, prefix);
    for (const char *part = prefix; part; part = va_arg(ap, const char *)) {
        if (part != prefix && (rc = mbq_buf_putc(&id, '_')) < 0)
            break;
        /* NUL separates parts in the hash, so ("a_b","c") != ("a","b_c"). */
        EVP_DigestUpdate(md, part, strlen(part) + 1);
        for (const unsigned char *p = (const unsigned char *)part; *p && rc == 0; p++) {
            bool ok = id_char_ok(*p);
            changed = changed || !ok;
            rc = mbq_buf_putc(&id, ok ? (char)*p : '_');
        }
        if (rc < 0)
            break;
    }
    va_end(ap);
    if (rc < 0)
        goto done;
    /* BigQuery: "letters, numbers, underscores, dashes; max 1,024". */
    if (id.len > 1024) {
        changed = true;
        id.len = 1024 - 17;
        id.ptr[id.len] = '\0';
    }
    if (changed) {
        if (EVP_DigestFinal_ex(md, hash, &hlen) != 1) {
            rc = mbq_error_set(MBQ_ERR, "cannot hash the job id");
            goto done;
        }
        if ((rc = mbq_buf_putc(&id, '_')) < 0)
            goto done;
        for (unsigned i = 0; i < 8 && i < hlen; i++)
            if ((rc = mbq_buf_printf(&id, "%02x", hash[i])) < 0)
                goto done;
    }
    rc = mbq_buf_append(out, mbq_buf_cstr(&id), id.len);
done:
    EVP_MD_CTX_free(md);
    mbq_buf_free(&id);
    return rc;
}

/* ---- load jobs ----------------------------------------------------------- */

static const char *write_disp_name(mbq_bq_write_disposition d)
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
        (rc = json_put_str(b, bq->project)) < 0 || (rc = mbq_buf_puts(b, ",\"datasetId\":")) < 0 ||
        (rc = json_put_str(b, o->dataset)) < 0 || (rc = mbq_buf_puts(b, ",\"tableId\":")) < 0 ||
        (rc = json_put_str(b, o->table)) < 0 ||
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
    json_body(&body, cfg);
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

/* ---- copy jobs ------------------------------------------------------------ */

static int table_reference(mbq_buf *b, const mbq_bq *bq, const char *dataset, const char *table)
{
    int rc;
    if ((rc = mbq_buf_puts(b, "{\"projectId\":")) < 0 || (rc = json_put_str(b, bq->project)) < 0 ||
        (rc = mbq_buf_puts(b, ",\"datasetId\":")) < 0 || (rc = json_put_str(b, dataset)) < 0 ||
        (rc = mbq_buf_puts(b, ",\"tableId\":")) < 0 || (rc = json_put_str(b, table)) < 0)
        return rc;
    return mbq_buf_putc(b, '}');
}

int mbq_bq_copy_table(mbq_bq_job **out, mbq_bq *bq, const char *job_id, const char *dataset,
                      const char *src, const char *dst, mbq_bq_write_disposition wd)
{
    int rc;
    mbq_buf url = MBQ_BUF_INIT, what = MBQ_BUF_INIT, b = MBQ_BUF_INIT;
    mbq_http_response resp = MBQ_HTTP_RESPONSE_INIT;
    const char *location = bq->location;
    *out = NULL;

    rc = job_lookup(out, bq, job_id, location);
    if (rc != MBQ_ENOTFOUND)
        goto done;
    /* JobConfigurationTableCopy: sourceTable, destinationTable,
     * writeDisposition, createDisposition (REST reference, Job). */
    if ((rc = bq_url(&url, bq, "/bigquery/v2", "/jobs")) < 0 ||
        (rc = mbq_buf_printf(&what, "job '%s' failed", job_id)) < 0 ||
        (rc = mbq_buf_putc(&b, '{')) < 0 ||
        (rc = job_reference(&b, bq, job_id, location)) < 0 ||
        (rc = mbq_buf_puts(&b, ",\"configuration\":{\"copy\":{\"sourceTable\":")) < 0 ||
        (rc = table_reference(&b, bq, dataset, src)) < 0 ||
        (rc = mbq_buf_puts(&b, ",\"destinationTable\":")) < 0 ||
        (rc = table_reference(&b, bq, dataset, dst)) < 0 ||
        (rc = mbq_buf_printf(&b, ",\"writeDisposition\":\"%s\","
                                 "\"createDisposition\":\"CREATE_NEVER\"}}}",
                             write_disp_name(wd))) < 0)
        goto done;
    mbq_http_body hb;
    json_body(&hb, &b);
    bq_req r = {"POST", url.ptr, "application/json", &hb, NULL, what.ptr, true, true};
    rc = bq_call(bq, &resp, &r);
    rc = job_after_insert(out, bq, rc, &resp, job_id, location);
done:
    mbq_http_response_free(&resp);
    mbq_buf_free(&url);
    mbq_buf_free(&what);
    mbq_buf_free(&b);
    return rc;
}
