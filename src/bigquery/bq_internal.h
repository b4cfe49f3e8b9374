/* Internal helpers shared by src/bq.c and src/bq_json.c (not public API). */
#ifndef MBQ_BQ_INTERNAL_H
#define MBQ_BQ_INTERNAL_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#include "mbq/bq.h"
#include "mbq/buf.h"

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

#endif
