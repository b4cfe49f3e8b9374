/* Parsing of BigQuery JSON: schemas, error bodies, Job and Table resources
 * (see mbq/bq.h). Everything here accepts any input without crashing: the
 * bodies come from the network, and a fuzz harness feeds these functions. */
#include <ctype.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bq_internal.h"
#include "mbq/bq.h"
#include "mbq/error.h"
#include "mbq/util.h"
#include "mbq/banned.h"

int mbq_bq_json_parse(json_object **out, const char *json, size_t len)
{
    *out = NULL;
    if (!json || len == 0)
        return mbq_error_set(MBQ_EDATA, "empty JSON");
    if (len > INT_MAX)
        return mbq_error_set(MBQ_EDATA, "JSON document too large");
    json_tokener *tok = json_tokener_new(); /* default depth limit 32 */
    if (!tok)
        return mbq_error_set(MBQ_ENOMEM, "out of memory");
    json_object *o = json_tokener_parse_ex(tok, json, (int)len);
    enum json_tokener_error err = json_tokener_get_error(tok);
    json_tokener_free(tok);
    if (!o || err != json_tokener_success) {
        json_object_put(o);
        if (err == json_tokener_continue || err == json_tokener_error_parse_eof)
            return mbq_error_set(MBQ_EDATA, "JSON cut short after %zu bytes", len);
        return mbq_error_set(MBQ_EDATA, "invalid JSON: %s", json_tokener_error_desc(err));
    }
    *out = o;
    return 0;
}

json_object *mbq_bq_jget(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!o || !json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &v))
        return NULL;
    return v;
}

const char *mbq_bq_jstr(json_object *o, const char *key)
{
    json_object *v = mbq_bq_jget(o, key);
    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* BigQuery sends int64 values as JSON strings ("numRows": "250"); accept
 * numbers too. */
int64_t mbq_bq_jint64(json_object *o, const char *key, int64_t def)
{
    json_object *v = mbq_bq_jget(o, key);
    if (!v)
        return def;
    if (json_object_is_type(v, json_type_int))
        return json_object_get_int64(v);
    if (json_object_is_type(v, json_type_string)) {
        int64_t x;
        if (mbq_parse_i64(&x, json_object_get_string(v)) == 0)
            return x;
    }
    return def;
}

/* ---- types and schema ---------------------------------------------------- */

static const struct {
    const char *name;
    const char *std;
} type_names[] = {
    {"STRING", "STRING"},     {"BYTES", "BYTES"},         {"INT64", "INT64"},
    {"INTEGER", "INT64"},     {"FLOAT64", "FLOAT64"},     {"FLOAT", "FLOAT64"},
    {"NUMERIC", "NUMERIC"},   {"BIGNUMERIC", "BIGNUMERIC"}, {"BIGDECIMAL", "BIGNUMERIC"},
    {"BOOL", "BOOL"},         {"BOOLEAN", "BOOL"},        {"DATE", "DATE"},
    {"DATETIME", "DATETIME"}, {"TIME", "TIME"},           {"TIMESTAMP", "TIMESTAMP"},
    {"JSON", "JSON"},         {"GEOGRAPHY", "GEOGRAPHY"}, {"RECORD", "RECORD"},
    {"STRUCT", "RECORD"},     {"INTERVAL", "INTERVAL"},   {"RANGE", "RANGE"},
};

const char *mbq_bq_type_normalize(const char *type)
{
    if (!type)
        return NULL;
    for (size_t i = 0; i < sizeof(type_names) / sizeof(type_names[0]); i++)
        if (strcasecmp(type, type_names[i].name) == 0)
            return type_names[i].std;
    return NULL;
}

const char *mbq_bq_mode_name(mbq_bq_mode mode)
{
    switch (mode) {
    case MBQ_BQ_REQUIRED: return "REQUIRED";
    case MBQ_BQ_REPEATED: return "REPEATED";
    default: return "NULLABLE";
    }
}

int mbq_bq_schema_new(mbq_bq_schema **out)
{
    *out = mbq_calloc(1, sizeof(**out));
    return *out ? 0 : MBQ_ENOMEM;
}

void mbq_bq_schema_free(mbq_bq_schema *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_fields; i++) {
        free(s->fields[i].name);
        free(s->fields[i].type);
        free(s->fields[i].description);
        free(s->fields[i].definition);
    }
    free(s->fields);
    free(s);
}

/* Append without validating the type (used for what BigQuery returned). */
static int schema_push(mbq_bq_schema *s, const char *name, const char *type, mbq_bq_mode mode,
                       const char *description)
{
    if (s->n_fields == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        mbq_bq_field *f = mbq_realloc(s->fields, cap * sizeof(*f));
        if (!f)
            return MBQ_ENOMEM;
        s->fields = f;
        s->cap = cap;
    }
    mbq_bq_field *f = &s->fields[s->n_fields];
    memset(f, 0, sizeof(*f));
    f->name = mbq_strdup(name);
    f->type = mbq_strdup(type);
    f->description = description ? mbq_strdup(description) : NULL;
    f->mode = mode;
    if (!f->name || !f->type || (description && !f->description)) {
        free(f->name);
        free(f->type);
        free(f->description);
        return MBQ_ENOMEM;
    }
    s->n_fields++;
    return 0;
}

int mbq_bq_schema_add(mbq_bq_schema *s, const char *name, const char *type, mbq_bq_mode mode,
                      const char *description)
{
    if (!name || !*name)
        return mbq_error_set(MBQ_ECONFIG, "a BigQuery column needs a name");
    const char *std = mbq_bq_type_normalize(type);
    if (!std)
        return mbq_error_set(MBQ_ECONFIG, "column '%s': unknown BigQuery type '%s'", name,
                             type ? type : "");
    if (mode != MBQ_BQ_NULLABLE && mode != MBQ_BQ_REQUIRED && mode != MBQ_BQ_REPEATED)
        return mbq_error_set(MBQ_ECONFIG, "column '%s': invalid mode", name);
    return schema_push(s, name, std, mode, description);
}

const mbq_bq_field *mbq_bq_schema_find(const mbq_bq_schema *s, const char *name)
{
    for (size_t i = 0; s && i < s->n_fields; i++)
        if (strcasecmp(s->fields[i].name, name) == 0)
            return &s->fields[i];
    return NULL;
}

int mbq_bq_field_to_json(mbq_buf *out, const mbq_bq_field *f, mbq_bq_mode mode)
{
    int rc;
    if ((rc = mbq_buf_puts(out, "{\"name\":")) < 0 ||
        (rc = mbq_buf_json_string(out, f->name, strlen(f->name))) < 0 ||
        (rc = mbq_buf_puts(out, ",\"type\":")) < 0 ||
        (rc = mbq_buf_json_string(out, f->type, strlen(f->type))) < 0 ||
        (rc = mbq_buf_printf(out, ",\"mode\":\"%s\"", mbq_bq_mode_name(mode))) < 0)
        return rc;
    if (f->description &&
        ((rc = mbq_buf_puts(out, ",\"description\":")) < 0 ||
         (rc = mbq_buf_json_string(out, f->description, strlen(f->description))) < 0))
        return rc;
    /* The rest of the field's definition ("{...}" without its braces). */
    size_t dlen = f->definition ? strlen(f->definition) : 0;
    if (dlen > 2 && ((rc = mbq_buf_putc(out, ',')) < 0 ||
                     (rc = mbq_buf_append(out, f->definition + 1, dlen - 2)) < 0))
        return rc;
    return mbq_buf_putc(out, '}');
}

int mbq_bq_schema_to_json(mbq_buf *out, const mbq_bq_schema *s)
{
    int rc = mbq_buf_putc(out, '[');
    for (size_t i = 0; rc == 0 && i < s->n_fields; i++) {
        if (i && (rc = mbq_buf_putc(out, ',')) < 0)
            break;
        rc = mbq_bq_field_to_json(out, &s->fields[i], s->fields[i].mode);
    }
    if (rc == 0)
        rc = mbq_buf_putc(out, ']');
    return rc;
}

/* Upper-case copy of an unknown type name, so comparisons stay simple. */
static char *upper_dup(const char *s)
{
    char *u = mbq_strdup(s);
    for (char *p = u; p && *p; p++)
        *p = (char)toupper((unsigned char)*p);
    return u;
}

/* Keep what a field's JSON says beyond name, type, mode and description
 * (policyTags, maxLength, defaultValueExpression, nested fields, ...) as
 * dst->definition; with `only` (NULL-terminated), keep just those keys. */
static int field_definition(mbq_bq_field *dst, json_object *f, const char *const *only)
{
    static const char *const own[] = {"name", "type", "mode", "description", NULL};
    json_object *rest = json_object_new_object();
    int rc = 0;
    if (!rest)
        return MBQ_ENOMEM;
    if (json_object_is_type(f, json_type_object)) {
        json_object_object_foreach(f, key, val)
        {
            bool skip = false, listed = !only;
            for (size_t i = 0; own[i]; i++)
                skip = skip || strcmp(key, own[i]) == 0;
            for (size_t i = 0; only && only[i]; i++)
                listed = listed || strcmp(key, only[i]) == 0;
            if (skip || !listed)
                continue;
            if (json_object_object_add(rest, key, json_object_get(val)) != 0) {
                rc = MBQ_ENOMEM;
                goto done;
            }
        }
    }
    free(dst->definition);
    dst->definition = NULL;
    if (json_object_object_length(rest) > 0) {
        const char *txt = json_object_to_json_string_ext(rest, JSON_C_TO_STRING_PLAIN);
        if (!txt || !(dst->definition = mbq_strdup(txt)))
            rc = MBQ_ENOMEM;
    }
done:
    json_object_put(rest);
    return rc;
}

int mbq_bq_schema_carry(mbq_bq_schema *load, const mbq_bq_schema *target)
{
    /* Attributes that only mean something for the type they were set for:
     * kept when the type stays, dropped when a rebuild changes it (BigQuery
     * refuses e.g. a maxLength on an INT64). Policy tags and data policies
     * are access control: kept whatever happens, so that a reload never
     * makes a protected column readable. */
    static const char *const access[] = {"policyTags", "dataPolicies", NULL};
    int rc = 0;
    json_object *def = NULL;
    for (size_t i = 0; rc == 0 && i < load->n_fields; i++) {
        mbq_bq_field *f = &load->fields[i];
        const mbq_bq_field *have = mbq_bq_schema_find(target, f->name);
        if (!have)
            continue;
        bool same_type = strcmp(have->type, f->type) == 0;
        f->mode = have->mode;
        if (have->description && !f->description &&
            !(f->description = mbq_strdup(have->description))) {
            rc = MBQ_ENOMEM;
            break;
        }
        if (!have->definition)
            continue;
        if ((rc = mbq_bq_json_parse(&def, have->definition, strlen(have->definition))) < 0)
            break;
        rc = field_definition(f, def, same_type ? NULL : access);
        json_object_put(def);
        def = NULL;
    }
    return rc;
}

int mbq_bq_schema_from_object(mbq_bq_schema **out, json_object *root)
{
    int rc = 0;
    mbq_bq_schema *s = NULL;
    json_object *fields = root;
    *out = NULL;
    /* A Table resource, a TableSchema or a bare field array. */
    if (json_object_is_type(fields, json_type_object) && mbq_bq_jget(fields, "schema"))
        fields = mbq_bq_jget(fields, "schema");
    if (json_object_is_type(fields, json_type_object))
        fields = mbq_bq_jget(fields, "fields");
    if (!fields) {
        /* A table with no columns has no "fields" at all. */
        if (json_object_is_type(root, json_type_object))
            return mbq_bq_schema_new(out);
        return mbq_error_set(MBQ_EDATA, "schema JSON is neither an object nor a field array");
    }
    if (!json_object_is_type(fields, json_type_array))
        return mbq_error_set(MBQ_EDATA, "schema \"fields\" is not an array");
    if ((rc = mbq_bq_schema_new(&s)) < 0)
        goto done;
    size_t n = json_object_array_length(fields);
    for (size_t i = 0; i < n; i++) {
        json_object *f = json_object_array_get_idx(fields, i);
        const char *name = mbq_bq_jstr(f, "name");
        const char *type = mbq_bq_jstr(f, "type");
        const char *mode = mbq_bq_jstr(f, "mode");
        const char *desc = mbq_bq_jstr(f, "description");
        if (!name || !*name || !type) {
            rc = mbq_error_set(MBQ_EDATA, "schema field %zu has no name or type", i);
            goto done;
        }
        mbq_bq_mode m = MBQ_BQ_NULLABLE;
        if (mode && strcasecmp(mode, "REQUIRED") == 0)
            m = MBQ_BQ_REQUIRED;
        else if (mode && strcasecmp(mode, "REPEATED") == 0)
            m = MBQ_BQ_REPEATED;
        const char *std = mbq_bq_type_normalize(type);
        if (std) {
            rc = schema_push(s, name, std, m, desc);
        } else {
            char *u = upper_dup(type);
            rc = u ? schema_push(s, name, u, m, desc) : MBQ_ENOMEM;
            free(u);
        }
        if (rc < 0 || (rc = field_definition(&s->fields[s->n_fields - 1], f, NULL)) < 0)
            goto done;
    }
    *out = s;
    s = NULL;
done:
    mbq_bq_schema_free(s);
    return rc;
}

int mbq_bq_schema_from_json(mbq_bq_schema **out, const char *json, size_t len)
{
    json_object *root = NULL;
    *out = NULL;
    int rc = mbq_bq_json_parse(&root, json, len);
    if (rc == 0)
        rc = mbq_bq_schema_from_object(out, root);
    json_object_put(root);
    return rc;
}

/* ---- errors -------------------------------------------------------------- */

int mbq_bq_parse_error(mbq_bq_error_info *out, const char *body, size_t len)
{
    int rc = 0;
    json_object *root = NULL;
    memset(out, 0, sizeof(*out));
    if (mbq_bq_json_parse(&root, body, len) < 0) {
        mbq_error_clear();
        return 0; /* not JSON: no details */
    }
    json_object *err = mbq_bq_jget(root, "error");
    if (!err || !json_object_is_type(err, json_type_object))
        goto done;
    out->code = (long)mbq_bq_jint64(err, "code", 0);
    const char *msg = mbq_bq_jstr(err, "message");
    const char *reason = NULL;
    json_object *errors = mbq_bq_jget(err, "errors");
    if (errors && json_object_is_type(errors, json_type_array) &&
        json_object_array_length(errors) > 0) {
        json_object *e0 = json_object_array_get_idx(errors, 0);
        reason = mbq_bq_jstr(e0, "reason");
        if (!msg || !*msg)
            msg = mbq_bq_jstr(e0, "message");
    }
    if (!reason || !*reason)
        reason = mbq_bq_jstr(err, "status");
    if (reason && *reason && !(out->reason = mbq_strdup(reason))) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    if (msg && *msg && !(out->message = mbq_strdup(msg))) {
        rc = MBQ_ENOMEM;
        goto done;
    }
done:
    if (rc < 0)
        mbq_bq_error_info_free(out);
    json_object_put(root);
    return rc;
}

void mbq_bq_error_info_free(mbq_bq_error_info *info)
{
    free(info->reason);
    free(info->message);
    memset(info, 0, sizeof(*info));
}

bool mbq_bq_job_reason_transient(const char *reason)
{
    /* The reasons for which Google's Python client starts a failed job
     * again (googleapis/python-bigquery, google/cloud/bigquery/retry.py,
     * job_retry_reasons): the job failed on BigQuery's side, not on what
     * it was asked to do. */
    static const char *const transient[] = {"rateLimitExceeded", "backendError",
                                            "internalError", "jobRateLimitExceeded", NULL};
    for (size_t i = 0; reason && transient[i]; i++)
        if (strcmp(reason, transient[i]) == 0)
            return true;
    return false;
}

bool mbq_bq_reason_retryable(const char *reason)
{
    /* https://cloud.google.com/bigquery/docs/error-messages: these three
     * are the ones BigQuery documents as "retry with backoff". */
    return reason && (strcmp(reason, "rateLimitExceeded") == 0 ||
                      strcmp(reason, "backendError") == 0 || strcmp(reason, "internalError") == 0);
}

/* ---- jobs ---------------------------------------------------------------- */

void mbq_bq_job_free(mbq_bq_job *j)
{
    if (!j)
        return;
    free(j->job_id);
    free(j->location);
    free(j->state);
    free(j->error_reason);
    free(j->error_message);
    free(j->statement_type);
    free(j);
}

static int dup_opt(char **dst, const char *s)
{
    if (!s)
        return 0;
    *dst = mbq_strdup(s);
    return *dst ? 0 : MBQ_ENOMEM;
}

int mbq_bq_job_from_object(mbq_bq_job **out, json_object *root)
{
    int rc = 0;
    *out = NULL;
    if (!json_object_is_type(root, json_type_object))
        return mbq_error_set(MBQ_EDATA, "job resource is not a JSON object");
    mbq_bq_job *j = mbq_calloc(1, sizeof(*j));
    if (!j)
        return MBQ_ENOMEM;
    json_object *ref = mbq_bq_jget(root, "jobReference");
    json_object *status = mbq_bq_jget(root, "status");
    json_object *er = mbq_bq_jget(status, "errorResult");
    json_object *stats = mbq_bq_jget(root, "statistics");
    json_object *load = mbq_bq_jget(stats, "load");
    json_object *query = mbq_bq_jget(stats, "query");
    json_object *dml = mbq_bq_jget(query, "dmlStats");
    const char *id = mbq_bq_jstr(ref, "jobId");
    const char *state = mbq_bq_jstr(status, "state");
    if (!id) {
        rc = mbq_error_set(MBQ_EDATA, "job resource without jobReference.jobId");
        goto done;
    }
    /* The emulator's upload response has no status at all: not known to be
     * done, so the caller polls jobs.get. */
    if (!state)
        state = "PENDING";
    if ((rc = dup_opt(&j->job_id, id)) < 0 || (rc = dup_opt(&j->state, state)) < 0 ||
        (rc = dup_opt(&j->location, mbq_bq_jstr(ref, "location"))) < 0 ||
        (rc = dup_opt(&j->statement_type, mbq_bq_jstr(query, "statementType"))) < 0)
        goto done;
    if (er && json_object_is_type(er, json_type_object)) {
        const char *reason = mbq_bq_jstr(er, "reason");
        const char *msg = mbq_bq_jstr(er, "message");
        if ((rc = dup_opt(&j->error_reason, reason ? reason : "unknown")) < 0 ||
            (rc = dup_opt(&j->error_message, msg ? msg : "no message")) < 0)
            goto done;
    }
    j->output_rows = mbq_bq_jint64(load, "outputRows", -1);
    j->dml_affected_rows = mbq_bq_jint64(query, "numDmlAffectedRows", -1);
    j->dml_inserted = mbq_bq_jint64(dml, "insertedRowCount", -1);
    j->dml_updated = mbq_bq_jint64(dml, "updatedRowCount", -1);
    j->dml_deleted = mbq_bq_jint64(dml, "deletedRowCount", -1);
    j->total_bytes_processed = mbq_bq_jint64(query, "totalBytesProcessed",
                                             mbq_bq_jint64(stats, "totalBytesProcessed", -1));
    *out = j;
    j = NULL;
done:
    mbq_bq_job_free(j);
    return rc;
}

int mbq_bq_job_from_json(mbq_bq_job **out, const char *json, size_t len)
{
    json_object *root = NULL;
    *out = NULL;
    int rc = mbq_bq_json_parse(&root, json, len);
    if (rc == 0)
        rc = mbq_bq_job_from_object(out, root);
    json_object_put(root);
    return rc;
}

/* ---- tables -------------------------------------------------------------- */

void mbq_bq_table_info_free(mbq_bq_table_info *t)
{
    if (!t)
        return;
    mbq_bq_schema_free(t->schema);
    free(t->type);
    free(t->partition_type);
    free(t->partition_field);
    for (size_t i = 0; i < t->n_clustering; i++)
        free(t->clustering[i]);
    free(t->clustering);
    free(t->etag);
    free(t);
}

int mbq_bq_table_info_from_json(mbq_bq_table_info **out, const char *json, size_t len)
{
    int rc = 0;
    json_object *root = NULL;
    mbq_bq_table_info *t = NULL;
    *out = NULL;
    if ((rc = mbq_bq_json_parse(&root, json, len)) < 0)
        goto done;
    if (!json_object_is_type(root, json_type_object)) {
        rc = mbq_error_set(MBQ_EDATA, "table resource is not a JSON object");
        goto done;
    }
    t = mbq_calloc(1, sizeof(*t));
    if (!t) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    json_object *schema = mbq_bq_jget(root, "schema");
    if (schema)
        rc = mbq_bq_schema_from_object(&t->schema, schema);
    else
        rc = mbq_bq_schema_new(&t->schema);
    if (rc < 0)
        goto done;
    json_object *tp = mbq_bq_jget(root, "timePartitioning");
    if ((rc = dup_opt(&t->type, mbq_bq_jstr(root, "type"))) < 0 ||
        (rc = dup_opt(&t->etag, mbq_bq_jstr(root, "etag"))) < 0 ||
        (rc = dup_opt(&t->partition_type, mbq_bq_jstr(tp, "type"))) < 0 ||
        (rc = dup_opt(&t->partition_field, mbq_bq_jstr(tp, "field"))) < 0)
        goto done;
    t->num_rows = mbq_bq_jint64(root, "numRows", -1);
    t->expiration_ms = mbq_bq_jint64(root, "expirationTime", 0);
    json_object *cf = mbq_bq_jget(mbq_bq_jget(root, "clustering"), "fields");
    if (cf && json_object_is_type(cf, json_type_array)) {
        size_t n = json_object_array_length(cf);
        if (n) {
            t->clustering = mbq_calloc(n, sizeof(char *));
            if (!t->clustering) {
                rc = MBQ_ENOMEM;
                goto done;
            }
        }
        for (size_t i = 0; i < n; i++) {
            json_object *v = json_object_array_get_idx(cf, i);
            if (!json_object_is_type(v, json_type_string))
                continue;
            if (!(t->clustering[t->n_clustering] = mbq_strdup(json_object_get_string(v)))) {
                rc = MBQ_ENOMEM;
                goto done;
            }
            t->n_clustering++;
        }
    }
    *out = t;
    t = NULL;
done:
    mbq_bq_table_info_free(t);
    json_object_put(root);
    return rc;
}
