/* The BigQuery REST client (see mbq/bq.h): the client object (options,
 * creation, accessors) and the request machinery every call goes through
 * (bq_call with its retries and error mapping, URL building, JSON bodies).
 * Datasets and tables are in bq_tables.c, jobs, query results and copies in
 * bq_jobs.c, load jobs and their uploads in bq_upload.c; they share
 * bq_internal.h. */
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
#include "mbq/credentials.h"
#include "mbq/error.h"
#include "mbq/http.h"
#include "mbq/log.h"
#include "mbq/util.h"
#include "mbq/banned.h"

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

/* The credentials for auth mode SERVICE_ACCOUNT (a named file of any type:
 * bigquery.credentials or GOOGLE_APPLICATION_CREDENTIALS), ADC or AUTO (the
 * lookup chain), then impersonation when asked. */
static int bq_credentials(mbq_cred **out, const mbq_bq_options *opts)
{
    int rc;
    mbq_cred *base = NULL;
    mbq_cred_options co;
    mbq_cred_options_init(&co);
    co.http.connect_timeout_ms = opts->connect_timeout_ms;
    co.http.tls_verify = opts->tls_verify;
    co.http.ca_file = opts->ca_file;
    co.max_retries = opts->max_retries;
    co.retry_max_elapsed_ms = opts->retry_max_elapsed_ms;
    co.retry_initial_ms = opts->retry_initial_ms;
    *out = NULL;
    if (opts->auth == MBQ_BQ_AUTH_SERVICE_ACCOUNT) {
        const char *path = opts->credentials;
        if (!path || !*path)
            path = getenv("GOOGLE_APPLICATION_CREDENTIALS");
        if (!path || !*path)
            return mbq_error_set(MBQ_EAUTH,
                                 "no BigQuery credentials: set bigquery.credentials to a "
                                 "credentials file or GOOGLE_APPLICATION_CREDENTIALS (or "
                                 "bigquery.auth: adc to look for them)");
        rc = mbq_cred_from_file(&base, path, &co);
    } else {
        rc = mbq_cred_default(&base, opts->credentials, &co);
    }
    if (rc < 0)
        return rc;
    if (opts->impersonate && *opts->impersonate)
        return mbq_cred_impersonate(out, base, opts->impersonate, NULL, NULL, &co);
    *out = base;
    return 0;
}

int mbq_bq_new(mbq_bq **out, const mbq_bq_options *opts)
{
    int rc = 0;
    mbq_bq *bq = NULL;
    mbq_buf ep = MBQ_BUF_INIT;
    *out = NULL;

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
    bool want_auth = opts->auth == MBQ_BQ_AUTH_SERVICE_ACCOUNT || opts->auth == MBQ_BQ_AUTH_ADC ||
                     (opts->auth == MBQ_BQ_AUTH_AUTO && !override);
    if (want_auth && (rc = bq_credentials(&bq->cred, opts)) < 0)
        goto done;
    if (bq->cred)
        mbq_log_debug("bigquery: credentials: %s (%s)", mbq_cred_source(bq->cred),
                      mbq_cred_kind(bq->cred));
    /* No project in the config: the one the credentials name (a key's
     * project_id, the metadata server's project), as Google's libraries
     * take it from google.auth.default(). */
    const char *project = opts->project && *opts->project ? opts->project
                          : bq->cred                       ? mbq_cred_project(bq->cred)
                                                           : NULL;
    if (!project) {
        rc = mbq_error_set(MBQ_ECONFIG, "bigquery: no project id given (set "
                                        "bigquery.project_id%s)",
                           bq->cred ? "; the credentials name none" : "");
        goto done;
    }
    bq->project = mbq_strdup(project);
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
    bq->opts.credentials = NULL; /* not kept: only the credentials need it */
    bq->opts.impersonate = NULL;
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
    mbq_cred_free(bq->cred);
    free(bq->project);
    free(bq->location);
    free(bq->ds_name);
    free(bq->endpoint);
    free(bq->job_error_reason);
    free(bq);
}

const char *mbq_bq_endpoint(const mbq_bq *bq) { return bq->endpoint; }
bool mbq_bq_uses_auth(const mbq_bq *bq) { return bq->cred != NULL; }
mbq_cred *mbq_bq_credentials(mbq_bq *bq) { return bq->cred; }
const char *mbq_bq_project(const mbq_bq *bq) { return bq->project; }
unsigned mbq_bq_request_count(const mbq_bq *bq) { return bq->requests; }
unsigned mbq_bq_retry_count(const mbq_bq *bq) { return bq->retries; }

/* ---- requests ------------------------------------------------------------ */

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
int bq_call(mbq_bq *bq, mbq_http_response *resp, const bq_req *r)
{
    int rc = 0;
    mbq_buf auth_hdr = MBQ_BUF_INIT;
    mbq_buf ct_hdr = MBQ_BUF_INIT;
    mbq_buf quota_hdr = MBQ_BUF_INIT;
    mbq_bq_error_info ei = {0, NULL, NULL};
    const char *hdrs[16];
    bool refreshed = false;
    int64_t start = mbq_monotonic_ms();

    for (int attempt = 0;;) {
        size_t nh = 0;
        mbq_buf_clear(&auth_hdr);
        mbq_buf_clear(&ct_hdr);
        mbq_buf_clear(&quota_hdr);
        mbq_bq_error_info_free(&ei);
        if (bq->cred) {
            const char *token, *quota = mbq_cred_quota_project(bq->cred);
            if ((rc = mbq_cred_token(&token, bq->cred)) < 0)
                goto done;
            if ((rc = mbq_buf_printf(&auth_hdr, "Authorization: Bearer %s", token)) < 0)
                goto done;
            hdrs[nh++] = auth_hdr.ptr;
            /* User credentials bill their quota project (Google's client
             * libraries send it the same way). */
            if (quota && (rc = mbq_buf_printf(&quota_hdr, "x-goog-user-project: %s", quota)) < 0)
                goto done;
            if (quota)
                hdrs[nh++] = quota_hdr.ptr;
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
            if (resp->status == 401 && bq->cred && !refreshed) {
                /* The token may have been revoked or expired early: get a
                 * new one, once, without counting it as a retry. */
                refreshed = true;
                mbq_cred_invalidate(bq->cred);
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
    mbq_buf_free(&quota_hdr);
    return rc;
}

/* {endpoint}{prefix}/projects/{project}{path-with-escaped-args} */
int bq_url(mbq_buf *out, const mbq_bq *bq, const char *prefix, const char *fmt, ...)
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

int bq_json_put_str(mbq_buf *b, const char *s)
{
    return mbq_buf_json_string(b, s, strlen(s));
}

int bq_json_body(mbq_http_body *body, const mbq_buf *b)
{
    memset(body, 0, sizeof(*body));
    body->pre = mbq_buf_cstr(b);
    body->pre_len = b->len;
    return 0;
}
