/* MySQL/MariaDB -> BigQuery type mapping and value encoding.
 *
 * One column's MySQL type (as information_schema describes it) maps to one
 * BigQuery type and one value encoding: how the text-protocol value the
 * server sends for it becomes a value in BigQuery's NDJSON load format. The
 * rule for every type is in docs/type-mapping.md; the code here is that table.
 *
 * The guiding rule is "never silently lossy": a value either reaches
 * BigQuery exactly, or the mapping says in the documentation what it becomes
 * (zero dates -> NULL, counted and logged). Unknown types are an error, not
 * a guess. */
#ifndef MBQ_TYPEMAP_H
#define MBQ_TYPEMAP_H

#include <stdbool.h>
#include <stddef.h>

#include "mbq/buf.h"

typedef enum mbq_bq_type {
    MBQ_BQ_INT64 = 0,
    MBQ_BQ_NUMERIC,
    MBQ_BQ_BIGNUMERIC,
    MBQ_BQ_FLOAT64,
    MBQ_BQ_BOOL,
    MBQ_BQ_STRING,
    MBQ_BQ_BYTES,
    MBQ_BQ_DATE,
    MBQ_BQ_DATETIME,
    MBQ_BQ_TIME,
    MBQ_BQ_TIMESTAMP,
    MBQ_BQ_JSON,
    MBQ_BQ_GEOGRAPHY,
} mbq_bq_type;

/* How a value (the server's text-protocol bytes) is written into NDJSON. */
typedef enum mbq_value_enc {
    MBQ_ENC_INT = 0,   /* decimal integer text, a bare JSON number; beyond +-(2^53 - 1) a
                          JSON string (BigQuery: larger INT64 in JSON loads as strings) */
    MBQ_ENC_DECIMAL,   /* decimal text (DECIMAL, BIGINT UNSIGNED), as a JSON string */
    MBQ_ENC_FLOAT,     /* FLOAT: the SELECT casts to DOUBLE; written as the shortest
                          decimal that reads back as the same float32 */
    MBQ_ENC_DOUBLE,    /* DOUBLE: the server's round-trip text, as a bare JSON number */
    MBQ_ENC_BIT,       /* BIT(n <= 63): big-endian bytes -> unsigned decimal, a bare number
                          (a string beyond 2^53 - 1, as MBQ_ENC_INT) */
    MBQ_ENC_BIT_DECIMAL, /* BIT(64): the same decimal as a JSON string (NUMERIC) */
    MBQ_ENC_STRING,    /* text as a JSON string; invalid UTF-8 -> U+FFFD */
    MBQ_ENC_BYTES,     /* binary as a base64 JSON string */
    MBQ_ENC_DATE,      /* 'YYYY-MM-DD'; zero dates -> NULL */
    MBQ_ENC_DATETIME,  /* 'YYYY-MM-DD HH:MM:SS[.ffffff]'; zero dates -> NULL */
    MBQ_ENC_TIMESTAMP, /* 'YYYY-MM-DD HH:MM:SS.ffffff+00:00' (session is UTC); zero -> NULL */
    MBQ_ENC_TIME,      /* '[-]HHH:MM:SS[.ffffff]' kept as the server prints it (STRING) */
    MBQ_ENC_JSON,      /* the JSON document itself (a load takes a JSON column's value
                          raw: a string would stay a string); not JSON -> its text */
    MBQ_ENC_WKT,       /* spatial: the SELECT wraps it in ST_AsText(); WKT as a JSON string */
} mbq_value_enc;

/* A MySQL column type as information_schema.COLUMNS gives it. */
typedef struct mbq_mysql_type {
    const char *data_type;   /* DATA_TYPE, e.g. "bigint" (any case) */
    const char *column_type; /* COLUMN_TYPE, e.g. "bigint(20) unsigned"; may be NULL */
    int precision;           /* NUMERIC_PRECISION (DECIMAL p, BIT n), -1 when NULL */
    int scale;               /* NUMERIC_SCALE, -1 when NULL */
    bool is_json;            /* a JSON column (MariaDB: LONGTEXT + CHECK json_valid) */
} mbq_mysql_type;

typedef struct mbq_type_mapping {
    mbq_bq_type bq_type;
    mbq_value_enc enc;
} mbq_type_mapping;

/* Map one column type. Returns 0, or MBQ_ESCHEMA ("unsupported MySQL type
 * 'x'") for a type with no defined mapping. */
int mbq_typemap_column(mbq_type_mapping *out, const mbq_mysql_type *t);

/* "INT64", "NUMERIC", ... (static strings). */
const char *mbq_bq_type_name(mbq_bq_type t);

/* Append the NDJSON value for one non-NULL field (`val`, `len` bytes from the
 * text protocol) to `out`. Returns 0 when written, 1 when the value has no
 * BigQuery value and must be written as NULL (zero dates: nothing was
 * appended), 2 when a JSON column's text is not a JSON document and was
 * written as a JSON string holding the text (to be counted and reported),
 * MBQ_ENOMEM, or MBQ_EDATA when the server sent a value that does not fit
 * its declared type (message names the encoding and the value). */
int mbq_typemap_encode(mbq_buf *out, mbq_value_enc enc, const char *val, size_t len);

/* Append the base64 (RFC 4648, padded) form of `len` bytes, unquoted. */
int mbq_base64_append(mbq_buf *out, const void *data, size_t len);

/* BigQuery column name for a MySQL column name, by this rule (documented in
 * docs/type-mapping.md):
 *   - every character (UTF-8 sequence or invalid byte) other than ASCII
 *     letters, digits and '_' becomes '_';
 *   - a name starting with a digit, or empty, gets a '_' prefix;
 *   - a name starting (case-insensitively) with a prefix BigQuery reserves
 *     (_TABLE_, _FILE_, _PARTITION, _ROW_TIMESTAMP, __ROOT__, _COLIDENTIFIER)
 *     gets a "c" prefix;
 *   - a name longer than 300 characters is cut to 291 and gets "_" + 8 hex
 *     digits of the FNV-1a hash of the MySQL name.
 * Appends the name to `out`; sets *changed (may be NULL) when the result
 * differs from the input. Returns 0 or MBQ_ENOMEM. */
int mbq_typemap_bq_column_name(mbq_buf *out, bool *changed, const char *mysql_name);

/* Map all `n` column names of one table at once: out[i] is a new string
 * (the caller frees each and the array with free()). BigQuery names are
 * case-insensitive, so after the per-name rule, every mapped name that
 * collides case-insensitively with another gets "_" + 8 hex digits of the
 * FNV-1a hash of its MySQL name (a name that needed no change keeps it).
 * Returns 0, MBQ_ENOMEM, or MBQ_ESCHEMA when names still collide (message
 * names both MySQL columns). */
int mbq_typemap_bq_column_names(char ***out, const char *const *mysql_names, size_t n);

#endif
