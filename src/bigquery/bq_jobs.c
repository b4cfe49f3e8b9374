/* The BigQuery REST client's jobs (see mbq/bq.h and bq.c): jobs.get and
 * waiting for a job, job failures, the insert-or-look-up of a job id,
 * queries and paging through their rows, scalar queries, job ids, and
 * table copy jobs. */
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

void job_error_forget(mbq_bq *bq)
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
int job_after_insert(mbq_bq_job **out, mbq_bq *bq, int rc, const mbq_http_response *resp,
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
int job_lookup(mbq_bq_job **out, mbq_bq *bq, const char *job_id, const char *location)
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

int job_reference(mbq_buf *b, const mbq_bq *bq, const char *job_id, const char *location)
{
    int rc;
    if ((rc = mbq_buf_puts(b, "\"jobReference\":{\"projectId\":")) < 0 ||
        (rc = bq_json_put_str(b, bq->project)) < 0 || (rc = mbq_buf_puts(b, ",\"jobId\":")) < 0 ||
        (rc = bq_json_put_str(b, job_id)) < 0 || (rc = mbq_buf_puts(b, ",\"location\":")) < 0 ||
        (rc = bq_json_put_str(b, location)) < 0)
        return rc;
    return mbq_buf_putc(b, '}');
}

/* jobs.insert of `body` (a Job resource naming `job_id`), then what the
 * answer means (job_after_insert: a 409 is looked up, a done job checked).
 * jobs.insert carries the job id, so a retry cannot run it twice: a
 * repeated id is refused as a duplicate and looked up. */
static int job_insert(mbq_bq_job **out, mbq_bq *bq, const char *job_id, const char *location,
                      mbq_buf *body)
{
    mbq_buf url = MBQ_BUF_INIT, what = MBQ_BUF_INIT;
    mbq_http_response resp = MBQ_HTTP_RESPONSE_INIT;
    int rc;
    if ((rc = bq_url(&url, bq, "/bigquery/v2", "/jobs")) == 0 &&
        (rc = mbq_buf_printf(&what, "job '%s' failed", job_id)) == 0) {
        mbq_http_body hb;
        bq_json_body(&hb, body);
        bq_req r = {"POST", url.ptr, "application/json", &hb, NULL, what.ptr, true, true};
        rc = bq_call(bq, &resp, &r);
        rc = job_after_insert(out, bq, rc, &resp, job_id, location);
    }
    mbq_http_response_free(&resp);
    mbq_buf_free(&url);
    mbq_buf_free(&what);
    return rc;
}

int mbq_bq_query(mbq_bq_job **out, mbq_bq *bq, const char *job_id, const char *sql,
                 const mbq_bq_query_options *opts)
{
    int rc;
    mbq_buf b = MBQ_BUF_INIT;
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

    if ((rc = mbq_buf_putc(&b, '{')) < 0 || (rc = job_reference(&b, bq, job_id, location)) < 0 ||
        (rc = mbq_buf_puts(&b, ",\"configuration\":{\"query\":{\"query\":")) < 0 ||
        (rc = bq_json_put_str(&b, sql)) < 0 || (rc = mbq_buf_puts(&b, ",\"useLegacySql\":false")) < 0)
        goto done;
    if (opts->default_dataset &&
        ((rc = mbq_buf_puts(&b, ",\"defaultDataset\":{\"projectId\":")) < 0 ||
         (rc = bq_json_put_str(&b, bq->project)) < 0 ||
         (rc = mbq_buf_puts(&b, ",\"datasetId\":")) < 0 ||
         (rc = bq_json_put_str(&b, opts->default_dataset)) < 0 || (rc = mbq_buf_putc(&b, '}')) < 0))
        goto done;
    if ((rc = mbq_buf_puts(&b, "}}}")) < 0)
        goto done;
    rc = job_insert(out, bq, job_id, location, &b);
done:
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

/* ---- copy jobs ------------------------------------------------------------ */

static int table_reference(mbq_buf *b, const mbq_bq *bq, const char *dataset, const char *table)
{
    int rc;
    if ((rc = mbq_buf_puts(b, "{\"projectId\":")) < 0 || (rc = bq_json_put_str(b, bq->project)) < 0 ||
        (rc = mbq_buf_puts(b, ",\"datasetId\":")) < 0 || (rc = bq_json_put_str(b, dataset)) < 0 ||
        (rc = mbq_buf_puts(b, ",\"tableId\":")) < 0 || (rc = bq_json_put_str(b, table)) < 0)
        return rc;
    return mbq_buf_putc(b, '}');
}

int mbq_bq_copy_table(mbq_bq_job **out, mbq_bq *bq, const char *job_id, const char *dataset,
                      const char *src, const char *dst, mbq_bq_write_disposition wd)
{
    int rc;
    mbq_buf b = MBQ_BUF_INIT;
    const char *location = bq->location;
    *out = NULL;

    rc = job_lookup(out, bq, job_id, location);
    if (rc != MBQ_ENOTFOUND)
        goto done;
    /* JobConfigurationTableCopy: sourceTable, destinationTable,
     * writeDisposition, createDisposition (REST reference, Job). */
    if ((rc = mbq_buf_putc(&b, '{')) < 0 || (rc = job_reference(&b, bq, job_id, location)) < 0 ||
        (rc = mbq_buf_puts(&b, ",\"configuration\":{\"copy\":{\"sourceTable\":")) < 0 ||
        (rc = table_reference(&b, bq, dataset, src)) < 0 ||
        (rc = mbq_buf_puts(&b, ",\"destinationTable\":")) < 0 ||
        (rc = table_reference(&b, bq, dataset, dst)) < 0 ||
        (rc = mbq_buf_printf(&b, ",\"writeDisposition\":\"%s\","
                                 "\"createDisposition\":\"CREATE_NEVER\"}}}",
                             write_disp_name(wd))) < 0)
        goto done;
    rc = job_insert(out, bq, job_id, location, &b);
done:
    mbq_buf_free(&b);
    return rc;
}
