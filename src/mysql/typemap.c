/* MySQL -> BigQuery type mapping and NDJSON value encoding (see mbq/typemap.h
 * and docs/type-mapping.md, which must change together with this file). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "mbq/error.h"
#include "mbq/typemap.h"
#include "mbq/util.h"
#include "mbq/banned.h"

const char *mbq_bq_type_name(mbq_bq_type t)
{
    switch (t) {
    case MBQ_BQ_INT64: return "INT64";
    case MBQ_BQ_NUMERIC: return "NUMERIC";
    case MBQ_BQ_BIGNUMERIC: return "BIGNUMERIC";
    case MBQ_BQ_FLOAT64: return "FLOAT64";
    case MBQ_BQ_BOOL: return "BOOL";
    case MBQ_BQ_STRING: return "STRING";
    case MBQ_BQ_BYTES: return "BYTES";
    case MBQ_BQ_DATE: return "DATE";
    case MBQ_BQ_DATETIME: return "DATETIME";
    case MBQ_BQ_TIME: return "TIME";
    case MBQ_BQ_TIMESTAMP: return "TIMESTAMP";
    case MBQ_BQ_JSON: return "JSON";
    case MBQ_BQ_GEOGRAPHY: return "GEOGRAPHY";
    }
    return "?";
}

static int type_is(const char *dt, const char *const *names)
{
    for (; *names; names++)
        if (strcasecmp(dt, *names) == 0)
            return 1;
    return 0;
}

/* BIT(n)'s n: information_schema gives it as NUMERIC_PRECISION; fall back to
 * the "(n)" of COLUMN_TYPE. */
static int bit_width(const mbq_mysql_type *t)
{
    if (t->precision > 0)
        return t->precision;
    const char *p = t->column_type ? strchr(t->column_type, '(') : NULL;
    return p ? atoi(p + 1) : 1;
}

int mbq_typemap_column(mbq_type_mapping *out, const mbq_mysql_type *t)
{
    static const char *const small_ints[] = {"tinyint", "smallint", "mediumint", "int",
                                             "integer", "year", NULL};
    static const char *const decimals[] = {"decimal", "numeric", "fixed", NULL};
    static const char *const doubles[] = {"double", "real", "double precision", NULL};
    static const char *const texts[] = {"char", "varchar", "tinytext", "text", "mediumtext",
                                        "longtext", "enum", "set", "inet4", "inet6",
                                        "uuid", NULL};
    static const char *const binaries[] = {"binary", "varbinary", "tinyblob", "blob",
                                           "mediumblob", "longblob", NULL};
    static const char *const spatial[] = {"geometry", "point", "linestring", "polygon",
                                          "multipoint", "multilinestring", "multipolygon",
                                          "geometrycollection", "geomcollection", NULL};
    const char *dt = t->data_type ? t->data_type : "";
    bool is_unsigned = t->column_type && strstr(t->column_type, "unsigned");

    /* Signed and unsigned integers up to INT UNSIGNED (4294967295) fit INT64.
     * TINYINT(1) is not BOOL: it holds -128..127 and 2 would become true. */
    if (type_is(dt, small_ints)) {
        *out = (mbq_type_mapping){MBQ_BQ_INT64, MBQ_ENC_INT};
    } else if (strcasecmp(dt, "bigint") == 0) {
        /* BIGINT UNSIGNED reaches 18446744073709551615 > INT64's max. */
        *out = is_unsigned ? (mbq_type_mapping){MBQ_BQ_NUMERIC, MBQ_ENC_DECIMAL}
                           : (mbq_type_mapping){MBQ_BQ_INT64, MBQ_ENC_INT};
    } else if (type_is(dt, decimals)) {
        /* NUMERIC: 29 integer digits, scale <= 9; BIGNUMERIC: 38 integer
         * digits (38.77), scale <= 38. Anything wider stays exact as text. */
        int p = t->precision >= 0 ? t->precision : 10, s = t->scale >= 0 ? t->scale : 0;
        if (p - s <= 29 && s <= 9)
            *out = (mbq_type_mapping){MBQ_BQ_NUMERIC, MBQ_ENC_DECIMAL};
        else if (p - s <= 38 && s <= 38)
            *out = (mbq_type_mapping){MBQ_BQ_BIGNUMERIC, MBQ_ENC_DECIMAL};
        else
            *out = (mbq_type_mapping){MBQ_BQ_STRING, MBQ_ENC_DECIMAL};
    } else if (strcasecmp(dt, "float") == 0) {
        *out = (mbq_type_mapping){MBQ_BQ_FLOAT64, MBQ_ENC_FLOAT};
    } else if (type_is(dt, doubles)) {
        *out = (mbq_type_mapping){MBQ_BQ_FLOAT64, MBQ_ENC_DOUBLE};
    } else if (strcasecmp(dt, "bit") == 0) {
        *out = bit_width(t) <= 63 ? (mbq_type_mapping){MBQ_BQ_INT64, MBQ_ENC_BIT}
                                  : (mbq_type_mapping){MBQ_BQ_NUMERIC, MBQ_ENC_BIT_DECIMAL};
    } else if (strcasecmp(dt, "json") == 0 || (t->is_json && type_is(dt, texts))) {
        *out = (mbq_type_mapping){MBQ_BQ_JSON, MBQ_ENC_JSON};
    } else if (type_is(dt, texts)) {
        *out = (mbq_type_mapping){MBQ_BQ_STRING, MBQ_ENC_STRING};
    } else if (type_is(dt, binaries)) {
        *out = (mbq_type_mapping){MBQ_BQ_BYTES, MBQ_ENC_BYTES};
    } else if (strcasecmp(dt, "date") == 0) {
        *out = (mbq_type_mapping){MBQ_BQ_DATE, MBQ_ENC_DATE};
    } else if (strcasecmp(dt, "datetime") == 0) {
        *out = (mbq_type_mapping){MBQ_BQ_DATETIME, MBQ_ENC_DATETIME};
    } else if (strcasecmp(dt, "timestamp") == 0) {
        *out = (mbq_type_mapping){MBQ_BQ_TIMESTAMP, MBQ_ENC_TIMESTAMP};
    } else if (strcasecmp(dt, "time") == 0) {
        /* MySQL TIME spans -838:59:59..838:59:59; BigQuery TIME is a time of
         * day. The server's own text keeps sign, hours beyond 24 and fsp. */
        *out = (mbq_type_mapping){MBQ_BQ_STRING, MBQ_ENC_TIME};
    } else if (type_is(dt, spatial)) {
        /* GEOGRAPHY only takes WGS84 lon/lat; MySQL geometries are often
         * planar (SRID 0) and would fail to load, so keep the WKT text. */
        *out = (mbq_type_mapping){MBQ_BQ_STRING, MBQ_ENC_WKT};
    } else {
        return mbq_error_set(MBQ_ESCHEMA, "unsupported MySQL type '%s'",
                             t->column_type ? t->column_type : dt);
    }
    return 0;
}

/* ---- value encoding ---------------------------------------------------- */

/* The bytes of the 8 in `w` that JSON cannot copy as is (a control
 * character, '"', '\\') or that are non-ASCII (to be checked as UTF-8), as
 * a mask of their high bits. The "has less than" / "has zero byte" bit
 * tricks: a borrow can flag a byte above a real match, never one below it,
 * so the mask is exact for "any byte" and for the lowest flagged byte. */
static inline uint64_t word_care_mask(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
    uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');
    return (w | ((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((b - ones) & ~b)) & high;
}

static inline bool is_digit(unsigned char c)
{
    return (unsigned)(c - '0') < 10; /* not isdigit(): no locale table */
}

/* Copy the run of plain bytes at p (printable ASCII other than '"' and
 * '\\') to o and return its length: the hot loop of extraction. Blocks of
 * 16 (SSE2) or 8 bytes are stored before they are looked at, then the first
 * byte that needs care is found in the block's mask; nothing is stored past
 * o + (end - p). */
static inline size_t copy_plain(char *o, const unsigned char *p, const unsigned char *end)
{
    const unsigned char *start = p;
#ifdef __SSE2__
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\');
    const __m128i space = _mm_set1_epi8(0x20);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        _mm_storeu_si128((__m128i *)(void *)(o + (p - start)), v);
        /* signed < 0x20 also catches the non-ASCII bytes (negative) */
        __m128i care = _mm_or_si128(_mm_cmplt_epi8(v, space),
                                    _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)));
        unsigned m = (unsigned)_mm_movemask_epi8(care);
        if (m)
            return (size_t)(p - start) + (size_t)__builtin_ctz(m);
        p += 16;
    }
#endif
    while (end - p >= 8) {
        uint64_t w, care;
        memcpy(&w, p, 8);
        memcpy(o + (p - start), &w, 8);
        if ((care = word_care_mask(w)) != 0) {
#if defined(__GNUC__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            return (size_t)(p - start) + (size_t)__builtin_ctzll(care) / 8;
#else
            break;
#endif
        }
        p += 8;
    }
    for (; p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\'; p++)
        o[p - start] = (char)*p;
    return (size_t)(p - start);
}

/* For writers that could not reserve a value's worst case: keep room at o
 * for the `left` input bytes still to copy plus one escape (the buffer may
 * move; o follows it). */
static inline int room_for(mbq_buf *b, char **o, size_t left)
{
    if ((size_t)(b->ptr + b->cap - 1 - *o) >= left + 8)
        return 0;
    b->len = (size_t)(*o - b->ptr);
    if (mbq_buf_grow(b, left + left / 2 + 8) < 0)
        return MBQ_ENOMEM;
    *o = b->ptr + b->len;
    return 0;
}

/* Copy the UTF-8 sequence at *p to o, or U+FFFD for a byte that does not
 * start one (a binary collation, a broken client: the line stays valid JSON
 * that BigQuery accepts); returns the new o and advances *p. */
static inline char *put_utf8_or_fffd(char *o, const unsigned char **p, const unsigned char *end)
{
    size_t seq = mbq_utf8_seq_len(*p, (size_t)(end - *p));
    if (seq == 0) {
        memcpy(o, "\xef\xbf\xbd", 3);
        (*p)++;
        return o + 3;
    }
    memcpy(o, *p, seq);
    *p += seq;
    return o + seq;
}

/* A JSON string literal, written straight into the buffer's memory: no
 * call per character, runs of plain ASCII a block at a time (copy_plain).
 * The buffer keeps at least (input left + 6) bytes free, enough for the
 * run and any single escape; values up to 64 KiB reserve their worst case
 * (6 bytes per input byte) once and skip the checks. */
static int json_string(mbq_buf *b, const unsigned char *p, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *end = p + len;
    bool reserved = len <= 65536;
    if (mbq_buf_grow(b, reserved ? len * 6 + 2 : len + 8) < 0)
        return MBQ_ENOMEM;
    char *o = b->ptr + b->len;
    *o++ = '"';
    while (p < end) {
        if (!reserved && room_for(b, &o, (size_t)(end - p)) < 0)
            return MBQ_ENOMEM;
        size_t n = copy_plain(o, p, end);
        o += n;
        p += n;
        if (p == end)
            break;
        unsigned c = *p;
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
            p++;
        } else if (c < 0x20) {
            *o++ = '\\';
            switch (c) {
            case '\n': *o++ = 'n'; break;
            case '\r': *o++ = 'r'; break;
            case '\t': *o++ = 't'; break;
            case '\b': *o++ = 'b'; break;
            case '\f': *o++ = 'f'; break;
            default:
                *o++ = 'u';
                *o++ = '0';
                *o++ = '0';
                *o++ = hex[c >> 4];
                *o++ = hex[c & 15];
            }
            p++;
        } else {
            o = put_utf8_or_fffd(o, &p, end);
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->ptr);
    b->ptr[b->len] = '\0';
    return 0;
}

int mbq_base64_append(mbq_buf *out, const void *data, size_t len)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = data;
    size_t n = (len + 2) / 3 * 4;
    if (mbq_buf_grow(out, n) < 0)
        return MBQ_ENOMEM;
    char *o = out->ptr + out->len;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        o[0] = tbl[v >> 18];
        o[1] = tbl[(v >> 12) & 63];
        o[2] = tbl[(v >> 6) & 63];
        o[3] = tbl[v & 63];
        o += 4;
    }
    if (i < len) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)p[i + 1] << 8;
        o[0] = tbl[v >> 18];
        o[1] = tbl[(v >> 12) & 63];
        o[2] = i + 1 < len ? tbl[(v >> 6) & 63] : '=';
        o[3] = '=';
        o += 4;
    }
    out->len = (size_t)(o - out->ptr);
    out->ptr[out->len] = '\0';
    return 0;
}

/* A date part 'YYYY-MM-DD' with a zero year, month or day has no BigQuery
 * value (DATE starts at 0001-01-01): MySQL's zero dates and NO_ZERO_IN_DATE
 * violations both land here. */
static int is_zero_date(const char *v, size_t len)
{
    if (len < 10)
        return 1;
    return memcmp(v, "0000", 4) == 0 || memcmp(v + 5, "00", 2) == 0 ||
           memcmp(v + 8, "00", 2) == 0;
}

static int bad_value(const char *what, const char *v, size_t len)
{
    return mbq_error_set(MBQ_EDATA, "cannot encode %s value '%.*s'", what,
                         (int)(len > 64 ? 64 : len), v);
}

/* FLOAT arrives as the DOUBLE the SELECT cast it to. Print the shortest
 * decimal that reads back as the same float32 (what MySQL's own float
 * output aims for, but the server rounds to 6 digits, which is lossy). */
static int encode_float(mbq_buf *out, const char *v, size_t len)
{
    char in[64], txt[32];
    if (len == 0 || len >= sizeof in)
        return bad_value("FLOAT", v, len);
    memcpy(in, v, len);
    in[len] = '\0';
    char *end;
    errno = 0;
    double d = strtod(in, &end);
    if (*end || !isfinite(d))
        return bad_value("FLOAT", v, len);
    float f = (float)d;
    /* A double beyond FLOAT's range (3.402887e+38: found by fuzz_encoder)
     * becomes inf, which JSON cannot hold; a FLOAT column never sends it. */
    if (!isfinite(f))
        return bad_value("FLOAT", v, len);
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(txt, sizeof txt, "%.*g", prec, (double)f);
        if (strtof(txt, NULL) == f)
            break;
    }
    return mbq_buf_puts(out, txt);
}

/* The largest integer a JSON reader that uses doubles keeps exactly
 * (2^53 - 1). BigQuery's documentation for JSON loads: an INT64 outside
 * +-(2^53 - 1) must be passed as a string to avoid data corruption. */
#define JSON_SAFE_INT 9007199254740991ULL
#define JSON_SAFE_INT_TEXT "9007199254740991"

static int encode_bit(mbq_buf *out, const char *v, size_t len, bool quoted)
{
    if (len > 8)
        return bad_value("BIT", "(binary)", 8);
    uint64_t x = 0;
    for (size_t i = 0; i < len; i++)
        x = x << 8 | (unsigned char)v[i];
    quoted = quoted || x > JSON_SAFE_INT; /* see MBQ_ENC_INT */
    return mbq_buf_printf(out, quoted ? "\"%llu\"" : "%llu", (unsigned long long)x);
}

static int quoted_copy(mbq_buf *out, const char *v, size_t len)
{
    /* Dates, times and decimals from the server are plain ASCII; anything
     * else (control bytes, quotes: fuzz_encoder found a DATETIME with a NUL
     * written raw) goes through the escaping writer, so the line stays JSON. */
    if (mbq_buf_grow(out, len + 2) < 0)
        return MBQ_ENOMEM;
    char *o = out->ptr + out->len;
    const unsigned char *p = (const unsigned char *)v;
    if (copy_plain(o + 1, p, p + len) != len)
        return mbq_buf_json_string(out, v, len);
    o[0] = '"';
    o[len + 1] = '"';
    out->len += len + 2;
    out->ptr[out->len] = '\0';
    return 0;
}

/* Is v[0..len) 'YYYY-MM-DD HH:MM:SS' with an optional '.' and 1 to 6
 * fractional digits, as the server prints a TIMESTAMP? The value is copied
 * into the JSON string without escaping, so only this exact shape may pass:
 * fuzz_encoder found a non-ASCII byte in the date part written raw, which
 * made the NDJSON line invalid UTF-8. */
static bool timestamp_text_ok(const char *v, size_t len)
{
    static const char shape[] = "dddd-dd-dd dd:dd:dd";
    if (len < 19 || len == 20 || len > 26)
        return false;
    for (size_t i = 0; i < 19; i++) {
        if (shape[i] == 'd' ? !is_digit((unsigned char)v[i]) : v[i] != shape[i])
            return false;
    }
    if (len > 19 && v[19] != '.')
        return false;
    for (size_t i = 20; i < len; i++) {
        if (!is_digit((unsigned char)v[i]))
            return false;
    }
    return true;
}

static int encode_timestamp(mbq_buf *out, const char *v, size_t len)
{
    /* 'YYYY-MM-DD HH:MM:SS[.f{1,6}]' in the session's UTC -> always six
     * fractional digits and an explicit offset (the emulator refuses
     * anything else, BigQuery accepts it). */
    if (!timestamp_text_ok(v, len))
        return bad_value("TIMESTAMP", v, len);
    if (mbq_buf_grow(out, 36) < 0)
        return MBQ_ENOMEM;
    char *o = out->ptr + out->len;
    *o++ = '"';
    memcpy(o, v, 19);
    o += 19;
    *o++ = '.';
    size_t nf = len > 20 ? len - 20 : 0;
    memcpy(o, v + 20, nf);
    for (size_t i = nf; i < 6; i++)
        o[i] = '0';
    o += 6;
    memcpy(o, "+00:00\"", 7);
    o += 7;
    out->len = (size_t)(o - out->ptr);
    out->ptr[out->len] = '\0';
    return 0;
}

/* Is val[0..len) a JSON number (RFC 8259, section 6)? The server's text
 * always is; anything else (a protocol error, a future server printing
 * "nan" or "inf") must be refused rather than written into NDJSON, where
 * it would make the whole load fail or, worse, be read as something else.
 * Found by tests/fuzz/fuzz_encoder.c. */
static bool json_number_ok(const char *v, size_t len)
{
    size_t i = 0;
    if (i < len && v[i] == '-')
        i++;
    if (i >= len || !is_digit((unsigned char)v[i]))
        return false;
    if (v[i] == '0')
        i++;
    else
        while (i < len && is_digit((unsigned char)v[i]))
            i++;
    if (i < len && v[i] == '.') {
        size_t d = ++i;
        while (i < len && is_digit((unsigned char)v[i]))
            i++;
        if (i == d)
            return false;
    }
    if (i < len && (v[i] == 'e' || v[i] == 'E')) {
        i++;
        if (i < len && (v[i] == '+' || v[i] == '-'))
            i++;
        size_t d = i;
        while (i < len && is_digit((unsigned char)v[i]))
            i++;
        if (i == d)
            return false;
    }
    return i == len;
}

/* A JSON document (MySQL's JSON, MariaDB's json_valid LONGTEXT) written as
 * the value itself, not as a string holding its text: a load job takes a
 * JSON column's NDJSON value as it is, so a string would stay a JSON string
 * in BigQuery ("{\"a\":1}", with JSON_VALUE(doc, '$.a') NULL). The text is
 * checked against RFC 8259 while it is copied, in one pass and without
 * recursion: whitespace between tokens is dropped (a newline there would end
 * the NDJSON line), strings go through copy_plain, a control character in
 * one is escaped and invalid UTF-8 becomes U+FFFD, as in any string.
 * Returns 0, MBQ_ENOMEM, or 2 when the text is not one JSON value (nothing
 * appended). */
#define JSON_DEPTH_MAX 500 /* BigQuery's nesting limit for JSON */

enum { J_VALUE, J_VALUE_OR_CLOSE, J_KEY, J_KEY_OR_CLOSE, J_COLON, J_NEXT };

static int json_raw(mbq_buf *b, const unsigned char *p, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *end = p + len;
    const size_t start = b->len;
    bool reserved = len <= 65536; /* worst case: 6 bytes out for 1 in (\u0001) */
    if (mbq_buf_grow(b, reserved ? len * 6 + 8 : len + 8) < 0)
        return MBQ_ENOMEM;
    char *o = b->ptr + b->len;
    char open[JSON_DEPTH_MAX]; /* '{' or '[' of each open container */
    int depth = 0, state = J_VALUE;
    for (;;) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
            p++;
        if (p == end)
            break;
        if (!reserved && room_for(b, &o, (size_t)(end - p)) < 0)
            return MBQ_ENOMEM;
        unsigned c = *p;
        if (state == J_NEXT) {
            if (depth == 0)
                goto not_json; /* something after the value */
            if (c == ',') {
                state = open[depth - 1] == '{' ? J_KEY : J_VALUE;
            } else if ((c == '}' && open[depth - 1] == '{') || (c == ']' && open[depth - 1] == '[')) {
                depth--;
            } else {
                goto not_json;
            }
            *o++ = (char)c;
            p++;
            continue;
        }
        if (state == J_COLON) {
            if (c != ':')
                goto not_json;
            *o++ = ':';
            p++;
            state = J_VALUE;
            continue;
        }
        if ((state == J_KEY_OR_CLOSE && c == '}') || (state == J_VALUE_OR_CLOSE && c == ']')) {
            depth--;
            *o++ = (char)c;
            p++;
            state = J_NEXT;
            continue;
        }
        if ((state == J_KEY || state == J_KEY_OR_CLOSE) && c != '"')
            goto not_json;
        if (c == '{' || c == '[') {
            if (depth == JSON_DEPTH_MAX)
                goto not_json;
            open[depth++] = (char)c;
            *o++ = (char)c;
            p++;
            state = c == '{' ? J_KEY_OR_CLOSE : J_VALUE_OR_CLOSE;
        } else if (c == '"') {
            *o++ = '"';
            p++;
            for (;;) {
                size_t n = copy_plain(o, p, end);
                o += n;
                p += n;
                if (p == end)
                    goto not_json; /* unterminated */
                c = *p;
                if (c == '"') {
                    *o++ = '"';
                    p++;
                    break;
                }
                if (c == '\\') {
                    if (end - p < 2)
                        goto not_json;
                    unsigned e = p[1];
                    size_t n_esc = 2;
                    if (e == 'u') {
                        if (end - p < 6)
                            goto not_json;
                        for (int k = 2; k < 6; k++)
                            if (!isxdigit(p[k]))
                                goto not_json;
                        n_esc = 6;
                    } else if (!strchr("\"\\/bfnrt", (int)e) || e == 0) {
                        goto not_json;
                    }
                    memcpy(o, p, n_esc);
                    o += n_esc;
                    p += n_esc;
                } else if (c < 0x20) {
                    memcpy(o, "\\u00", 4);
                    o[4] = hex[c >> 4];
                    o[5] = hex[c & 15];
                    o += 6;
                    p++;
                } else {
                    o = put_utf8_or_fffd(o, &p, end);
                }
                if (!reserved && room_for(b, &o, (size_t)(end - p)) < 0)
                    return MBQ_ENOMEM;
            }
            state = state == J_KEY || state == J_KEY_OR_CLOSE ? J_COLON : J_NEXT;
        } else if (c == '-' || is_digit((unsigned char)c)) {
            const unsigned char *q = p;
            while (q < end && (is_digit(*q) || *q == '-' || *q == '+' || *q == '.' || *q == 'e' ||
                               *q == 'E'))
                q++;
            if (!json_number_ok((const char *)p, (size_t)(q - p)))
                goto not_json;
            memcpy(o, p, (size_t)(q - p));
            o += q - p;
            p = q;
            state = J_NEXT;
        } else {
            static const char *const lits[] = {"true", "false", "null"};
            size_t i = c == 't' ? 0 : c == 'f' ? 1 : c == 'n' ? 2 : 3;
            if (i == 3)
                goto not_json;
            size_t n = strlen(lits[i]);
            if ((size_t)(end - p) < n || memcmp(p, lits[i], n) != 0)
                goto not_json;
            memcpy(o, lits[i], n);
            o += n;
            p += n;
            state = J_NEXT;
        }
    }
    if (state != J_NEXT || depth != 0)
        goto not_json;
    b->len = (size_t)(o - b->ptr);
    b->ptr[b->len] = '\0';
    return 0;
not_json:
    b->len = start;
    b->ptr[start] = '\0';
    return 2;
}

int mbq_typemap_encode(mbq_buf *out, mbq_value_enc enc, const char *val, size_t len)
{
    switch (enc) {
    case MBQ_ENC_INT: {
        /* Integers: an optional '-' and digits. YEAR and ZEROFILL columns
         * arrive zero-padded ("0000", "00042"), which JSON does not allow
         * in a number: drop the leading zeros, keep one digit. */
        size_t i = len && val[0] == '-' ? 1 : 0, start = i;
        if (i >= len)
            return bad_value("INT64", val, len);
        for (size_t k = i; k < len; k++)
            if (!is_digit((unsigned char)val[k]))
                return bad_value("INT64", val, len);
        while (i + 1 < len && val[i] == '0')
            i++;
        bool zero = i + 1 == len && val[i] == '0';
        /* Beyond +-(2^53 - 1) as a string (BigQuery's advice for INT64 in
         * JSON loads): BIGINT keys such as snowflake ids stay exact. */
        size_t nd = len - i, safe = sizeof JSON_SAFE_INT_TEXT - 1;
        bool big = nd > safe || (nd == safe && memcmp(val + i, JSON_SAFE_INT_TEXT, safe) > 0);
        int rc = big ? mbq_buf_putc(out, '"') : 0;
        if (rc == 0 && start && !zero)
            rc = mbq_buf_putc(out, '-');
        if (rc == 0)
            rc = mbq_buf_append(out, val + i, len - i);
        return rc == 0 && big ? mbq_buf_putc(out, '"') : rc;
    }
    case MBQ_ENC_DOUBLE:
        /* The server's double text is a valid JSON number (round-trip
         * precision). */
        if (!json_number_ok(val, len))
            return bad_value(enc == MBQ_ENC_INT ? "INT64" : "DOUBLE", val, len);
        return mbq_buf_append(out, val, len);
    case MBQ_ENC_DECIMAL:
        return quoted_copy(out, val, len);
    case MBQ_ENC_FLOAT:
        return encode_float(out, val, len);
    case MBQ_ENC_BIT:
        return encode_bit(out, val, len, false);
    case MBQ_ENC_BIT_DECIMAL:
        return encode_bit(out, val, len, true);
    case MBQ_ENC_BYTES: {
        int rc = mbq_buf_putc(out, '"');
        if (rc == 0)
            rc = mbq_base64_append(out, val, len);
        return rc ? rc : mbq_buf_putc(out, '"');
    }
    case MBQ_ENC_DATE:
    case MBQ_ENC_DATETIME:
        if (is_zero_date(val, len))
            return 1;
        return quoted_copy(out, val, len);
    case MBQ_ENC_TIMESTAMP:
        if (is_zero_date(val, len))
            return 1;
        return encode_timestamp(out, val, len);
    case MBQ_ENC_JSON: {
        int rc = json_raw(out, (const unsigned char *)val, len);
        if (rc != 2)
            return rc;
        /* Not a JSON document (a MariaDB column whose check was added
         * without validating old rows): its text, as a JSON string, and
         * the caller counts it. */
        rc = json_string(out, (const unsigned char *)val, len);
        return rc < 0 ? rc : 2;
    }
    case MBQ_ENC_STRING:
    case MBQ_ENC_TIME:
    case MBQ_ENC_WKT:
        return json_string(out, (const unsigned char *)val, len);
    }
    return mbq_error_set(MBQ_EINTERNAL, "unknown value encoding %d", (int)enc);
}

/* ---- column names ------------------------------------------------------ */

static uint32_t fnv1a(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return h;
}

#define BQ_NAME_MAX 300

int mbq_typemap_bq_column_name(mbq_buf *out, bool *changed, const char *name)
{
    static const char *const reserved[] = {"_TABLE_", "_FILE_", "_PARTITION", "_ROW_TIMESTAMP",
                                           "__ROOT__", "_COLIDENTIFIER", NULL};
    mbq_buf b = MBQ_BUF_INIT;
    int rc = 0;
    const unsigned char *p = (const unsigned char *)name;
    size_t len = strlen(name);
    if (len == 0 || isdigit(*p))
        rc = mbq_buf_putc(&b, '_');
    while (rc == 0 && *p) {
        if (isalnum(*p) || *p == '_') {
            rc = mbq_buf_putc(&b, (char)*p);
            p++;
        } else {
            /* One '_' per character, not per byte: "größe" -> "gr__e". */
            size_t n = *p >= 0x80 ? mbq_utf8_seq_len(p, strlen((const char *)p)) : 1;
            rc = mbq_buf_putc(&b, '_');
            p += n ? n : 1;
        }
    }
    for (size_t i = 0; rc == 0 && reserved[i]; i++) {
        size_t n = strlen(reserved[i]);
        if (b.len >= n && strncasecmp(mbq_buf_cstr(&b), reserved[i], n) == 0) {
            mbq_buf tmp = MBQ_BUF_INIT;
            rc = mbq_buf_putc(&tmp, 'c');
            if (rc == 0)
                rc = mbq_buf_append(&tmp, b.ptr, b.len);
            mbq_buf_free(&b);
            b = tmp;
            break;
        }
    }
    if (rc == 0 && b.len > BQ_NAME_MAX) {
        b.len = BQ_NAME_MAX - 9;
        b.ptr[b.len] = '\0';
        rc = mbq_buf_printf(&b, "_%08x", fnv1a(name));
    }
    if (rc == 0) {
        if (changed)
            *changed = strcmp(mbq_buf_cstr(&b), name) != 0;
        rc = mbq_buf_append(out, b.ptr ? b.ptr : "", b.len);
    }
    mbq_buf_free(&b);
    return rc;
}

int mbq_typemap_bq_column_names(char ***out, const char *const *names, size_t n)
{
    int rc = 0;
    char **res = mbq_calloc(n ? n : 1, sizeof *res);
    bool *changed = mbq_calloc(n ? n : 1, sizeof *changed);
    mbq_buf b = MBQ_BUF_INIT;
    *out = NULL;
    if (!res || !changed) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        mbq_buf_clear(&b);
        if ((rc = mbq_typemap_bq_column_name(&b, &changed[i], names[i])) < 0)
            goto done;
        if (!(res[i] = mbq_strdup(mbq_buf_cstr(&b)))) {
            rc = MBQ_ENOMEM;
            goto done;
        }
    }
    /* Collisions: only changed names move (MySQL names are unique
     * case-insensitively, so two unchanged names cannot collide). */
    for (size_t i = 0; i < n; i++) {
        if (!changed[i])
            continue;
        bool clash = false;
        for (size_t j = 0; j < n && !clash; j++)
            clash = j != i && strcasecmp(res[i], res[j]) == 0;
        if (!clash)
            continue;
        mbq_buf_clear(&b);
        size_t keep = strlen(res[i]);
        if (keep > BQ_NAME_MAX - 9)
            keep = BQ_NAME_MAX - 9;
        if ((rc = mbq_buf_append(&b, res[i], keep)) < 0 ||
            (rc = mbq_buf_printf(&b, "_%08x", fnv1a(names[i]))) < 0)
            goto done;
        char *s = mbq_strdup(mbq_buf_cstr(&b));
        if (!s) {
            rc = MBQ_ENOMEM;
            goto done;
        }
        free(res[i]);
        res[i] = s;
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (strcasecmp(res[i], res[j]) == 0) {
                rc = mbq_error_set(MBQ_ESCHEMA,
                                   "columns '%s' and '%s' both map to BigQuery column '%s'",
                                   names[i], names[j], res[i]);
                goto done;
            }
    *out = res;
    res = NULL;
done:
    if (res) {
        for (size_t i = 0; i < n; i++)
            free(res[i]);
        free(res);
    }
    free(changed);
    mbq_buf_free(&b);
    return rc;
}
