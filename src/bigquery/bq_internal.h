/* Internal helpers shared by the BigQuery client's files (bq.c, bq_tables.c,
 * bq_jobs.c, bq_upload.c) and bq_json.c (not public API). */
#ifndef MBQ_BQ_INTERNAL_H
#define MBQ_BQ_INTERNAL_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mbq/bq.h"
#include "mbq/credentials.h"
#include "mbq/buf.h"
#include "mbq/http.h"

/* Parse a whole JSON document (depth-limited by json-c); MBQ_EDATA. */
int mbq_bq_json_parse(json_object **out, const char *json, size_t len);

/* Member access that tolerates any shape: NULL / `def` when `o` is not an
 * object, the key is absent or has another type. */
json_object *mbq_bq_jget(json_object *o, const char *key);
const char *mbq_bq_jstr(json_object *o, const char *key);
int64_t mbq_bq_jint64(json_object *o, const char *key, int64_t def);

int mbq_bq_schema_from_object(mbq_bq_schema **out, json_object *root);
int mbq_bq_job_from_object(mbq_bq_job **out, json_object *root);
int mbq_bq_field_to_json(mbq_buf *out, const mbq_bq_field *f, mbq_bq_mode mode);

/* ---- shared by the client files: bq.c, bq_tables.c, bq_jobs.c, bq_upload.c ---- */

#define DEFAULT_ENDPOINT "https://bigquery.googleapis.com"
#define UPLOAD_QUANTUM (256 * 1024) /* resumable chunks are multiples of this */

struct mbq_bq {
    mbq_bq_options opts;
    char *project;
    char *location;
    bool location_configured; /* given by the caller, not read from the dataset */
    /* The dataset mbq_bq_location_resolve read (datasets.get), kept so
     * mbq_bq_dataset_expirations needs no second request for it. */
    char *ds_name;            /* NULL = none read */
    int64_t ds_table_exp_ms, ds_partition_exp_ms;
    char *endpoint; /* scheme://authority, no trailing slash */
    mbq_http *http;
    mbq_cred *cred; /* NULL = no token sent */
    unsigned requests;
    unsigned retries;
    char *job_error_reason; /* errorResult.reason of the last failed job, or NULL */
};

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

/* Shared between the client files (defined in one, used in another). */
int bq_call(mbq_bq *bq, mbq_http_response *resp, const bq_req *r);
int bq_url(mbq_buf *out, const mbq_bq *bq, const char *prefix, const char *fmt, ...);
int bq_json_put_str(mbq_buf *b, const char *s);
int bq_json_body(mbq_http_body *body, const mbq_buf *b);
void job_error_forget(mbq_bq *bq);
int job_after_insert(mbq_bq_job **out, mbq_bq *bq, int rc, const mbq_http_response *resp,
                     const char *job_id, const char *location);
int job_lookup(mbq_bq_job **out, mbq_bq *bq, const char *job_id, const char *location);
int job_reference(mbq_buf *b, const mbq_bq *bq, const char *job_id, const char *location);
const char *write_disp_name(mbq_bq_write_disposition d);

#endif
