/* The BigQuery REST client's dataset and table calls (see mbq/bq.h and
 * bq.c): get, location resolution, ensure, delete and default expirations
 * of datasets; get, create, add columns and delete of tables. */
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

/* ---- datasets ------------------------------------------------------------ */

/* datasets.get: 0 when the dataset exists (with its location and default
 * expirations in *info when info is not NULL), MBQ_ENOTFOUND when not. */
static int dataset_read(mbq_bq *bq, mbq_buf *location_out, int64_t *table_ms,
                        int64_t *partition_ms, const char *dataset)
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
    if (!location_out && !table_ms)
        goto done;
    if ((rc = mbq_bq_json_parse(&root, resp.body.ptr, resp.body.len)) < 0) {
        mbq_error_wrap(rc, "bigquery: dataset '%s': ", dataset);
        goto done;
    }
    const char *loc = mbq_bq_jstr(root, "location");
    if (location_out && loc && (rc = mbq_buf_puts(location_out, loc)) < 0)
        goto done;
    /* Both are int64 sent as JSON strings (REST reference, Dataset). */
    if (table_ms) {
        *table_ms = mbq_bq_jint64(root, "defaultTableExpirationMs", 0);
        *partition_ms = mbq_bq_jint64(root, "defaultPartitionExpirationMs", 0);
    }
done:
    json_object_put(root);
    mbq_http_response_free(&resp);
    mbq_buf_free(&url);
    mbq_buf_free(&what);
    return rc;
}

int mbq_bq_dataset_get(mbq_bq *bq, mbq_buf *location_out, const char *dataset)
{
    return dataset_read(bq, location_out, NULL, NULL, dataset);
}

const char *mbq_bq_location(const mbq_bq *bq) { return bq->location; }
bool mbq_bq_location_configured(const mbq_bq *bq) { return bq->location_configured; }

int mbq_bq_location_resolve(mbq_bq *bq, bool *dataset_exists, const char *dataset)
{
    int rc;
    mbq_buf loc = MBQ_BUF_INIT;
    char *copy = NULL;
    int64_t table_ms = 0, partition_ms = 0;
    *dataset_exists = false;
    rc = dataset_read(bq, &loc, &table_ms, &partition_ms, dataset);
    if (rc == 0) {
        char *name = mbq_strdup(dataset);
        if (!name) {
            rc = MBQ_ENOMEM;
            goto done;
        }
        free(bq->ds_name);
        bq->ds_name = name;
        bq->ds_table_exp_ms = table_ms;
        bq->ds_partition_exp_ms = partition_ms;
    }
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
        (rc = bq_json_put_str(&body, bq->project)) < 0 ||
        (rc = mbq_buf_puts(&body, ",\"datasetId\":")) < 0 ||
        (rc = bq_json_put_str(&body, dataset)) < 0 ||
        (rc = mbq_buf_puts(&body, "},\"location\":")) < 0 ||
        (rc = bq_json_put_str(&body, location ? location : bq->location)) < 0 ||
        (rc = mbq_buf_putc(&body, '}')) < 0)
        goto done;
    mbq_http_body hb;
    bq_json_body(&hb, &body);
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
    *table_ms = *partition_ms = 0;
    if (bq->ds_name && strcmp(bq->ds_name, dataset) == 0) {
        *table_ms = bq->ds_table_exp_ms;
        *partition_ms = bq->ds_partition_exp_ms;
        return 0;
    }
    return dataset_read(bq, NULL, table_ms, partition_ms, dataset);
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
        (rc = bq_json_put_str(&b, bq->project)) < 0 ||
        (rc = mbq_buf_puts(&b, ",\"datasetId\":")) < 0 || (rc = bq_json_put_str(&b, dataset)) < 0 ||
        (rc = mbq_buf_puts(&b, ",\"tableId\":")) < 0 || (rc = bq_json_put_str(&b, table)) < 0 ||
        (rc = mbq_buf_puts(&b, "},\"schema\":{\"fields\":")) < 0 ||
        (rc = mbq_bq_schema_to_json(&b, schema)) < 0 || (rc = mbq_buf_putc(&b, '}')) < 0)
        goto done;
    if (opts->expiration_ms > 0 &&
        (rc = mbq_buf_printf(&b, ",\"expirationTime\":\"%lld\"",
                             (long long)(mbq_now_ms() + opts->expiration_ms))) < 0)
        goto done;
    if (opts->partition_type || opts->partition_field) {
        if ((rc = mbq_buf_puts(&b, ",\"timePartitioning\":{\"type\":")) < 0 ||
            (rc = bq_json_put_str(&b, opts->partition_type ? opts->partition_type : "DAY")) < 0)
            goto done;
        if (opts->partition_field && ((rc = mbq_buf_puts(&b, ",\"field\":")) < 0 ||
                                      (rc = bq_json_put_str(&b, opts->partition_field)) < 0))
            goto done;
        if ((rc = mbq_buf_putc(&b, '}')) < 0)
            goto done;
    }
    if (opts->n_clustering) {
        if ((rc = mbq_buf_puts(&b, ",\"clustering\":{\"fields\":[")) < 0)
            goto done;
        for (size_t i = 0; i < opts->n_clustering; i++)
            if ((i && (rc = mbq_buf_putc(&b, ',')) < 0) ||
                (rc = bq_json_put_str(&b, opts->clustering[i])) < 0)
                goto done;
        if ((rc = mbq_buf_puts(&b, "]}")) < 0)
            goto done;
    }
    if (opts->description && ((rc = mbq_buf_puts(&b, ",\"description\":")) < 0 ||
                              (rc = bq_json_put_str(&b, opts->description)) < 0))
        goto done;
    if ((rc = mbq_buf_putc(&b, '}')) < 0)
        goto done;
    mbq_http_body hb;
    bq_json_body(&hb, &b);
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
        bq_json_body(&hb, &b);
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
