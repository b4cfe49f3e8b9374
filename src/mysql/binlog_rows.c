/* Rows events (WRITE/UPDATE/DELETE_ROWS v1 and v2) -> the rows of
 * binlog.h, each value in the snapshot path's text form. Layout: MySQL's
 * libbinlogevents Rows_event and sql/field.cc pack(), MariaDB KB
 * "Rows_event_v1/v2". All of an event's values go into one arena (no
 * allocation per value); they are pointed to once the event is decoded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mbq/error.h"
#include "mbq/util.h"

#include "binlog_internal.h"
#include "mbq/banned.h"

void bl_rows_free(bl_rows *r)
{
    mbq_buf_free(&r->arena);
    free(r->vals);
    free(r->rows);
    memset(r, 0, sizeof *r);
}

static int put_u64(mbq_buf *b, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return mbq_buf_append(b, tmp + i, sizeof tmp - i);
}

static int put_i64(mbq_buf *b, int64_t v)
{
    if (v >= 0)
        return put_u64(b, (uint64_t)v);
    int rc = mbq_buf_putc(b, '-');
    return rc ? rc : put_u64(b, (uint64_t)0 - (uint64_t)v);
}

/* Text in the column's charset -> UTF-8. */
static int put_text(mbq_buf *b, const bl_column *c, bl_charsets *cs, const uint8_t *p, size_t n)
{
    switch (c->cs) {
    case CS_LATIN1:
        return bl_text_latin1(b, p, n);
    case CS_ICONV:
        return bl_text_iconv(b, cs, c->iconv_idx, p, n);
    default:
        return mbq_buf_append(b, p, n);
    }
}

static int put_set(mbq_buf *b, const bl_column *c, uint64_t bits)
{
    int rc = 0;
    bool first = true;
    for (size_t k = 0; rc == 0 && k < c->n_members && k < 64; k++) {
        if (!(bits >> k & 1))
            continue;
        if (!first)
            rc = mbq_buf_putc(b, ',');
        if (rc == 0)
            rc = mbq_buf_puts(b, c->members[k]);
        first = false;
    }
    return rc;
}

static int put_enum(mbq_buf *b, const bl_column *c, uint64_t idx)
{
    /* 0 is the "invalid value" the server stores as '' */
    if (idx == 0)
        return 0;
    if (idx > c->n_members)
        return mbq_error_set(MBQ_EDATA, "ENUM index %llu beyond the %zu members",
                             (unsigned long long)idx, c->n_members);
    return mbq_buf_puts(b, c->members[idx - 1]);
}

/* A length-prefixed field's length: `lb` little-endian bytes. */
static int prefixed(size_t *len, const uint8_t **p, const uint8_t *end, size_t lb)
{
    if ((size_t)(end - *p) < lb)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < lb; i++)
        v |= (uint64_t)(*p)[i] << (8 * i);
    *p += lb;
    if (v > (uint64_t)(end - *p))
        return -1;
    *len = (size_t)v;
    return 0;
}

/* The bytes a fixed-size value takes in the image; 0 for the types whose
 * values carry a length (strings, blobs, spatial). */
static size_t fixed_size(const bl_column *c)
{
    switch (c->type) {
    case BT_TINY: case BT_YEAR: return 1;
    case BT_SHORT: return 2;
    case BT_INT24: case BT_DATE: case BT_NEWDATE: case BT_TIME: return 3;
    case BT_LONG: case BT_FLOAT: case BT_TIMESTAMP: return 4;
    case BT_LONGLONG: case BT_DOUBLE: case BT_DATETIME: return 8;
    case BT_NEWDECIMAL: return bl_decimal_size(c->meta >> 8, c->meta & 0xFF);
    case BT_DATETIME2: return 5 + (c->meta + 1) / 2u;
    case BT_TIMESTAMP2: return 4 + (c->meta + 1) / 2u;
    case BT_TIME2: return 3 + (c->meta + 1) / 2u;
    case BT_BIT: return (c->meta >> 8) + ((c->meta & 0xFF) ? 1u : 0u);
    case BT_ENUM: case BT_SET: return c->meta;
    default: return 0;
    }
}

static int decode_int(mbq_buf *b, const bl_column *c, const uint8_t *p)
{
    switch (c->type) {
    case BT_TINY:
        return c->is_unsigned ? put_u64(b, p[0]) : put_i64(b, (int8_t)p[0]);
    case BT_SHORT:
        return c->is_unsigned ? put_u64(b, bl_le16(p)) : put_i64(b, (int16_t)bl_le16(p));
    case BT_INT24:
        return c->is_unsigned ? put_u64(b, bl_le24(p))
                              : put_i64(b, ((int32_t)(bl_le24(p) << 8)) >> 8);
    case BT_LONG:
        return c->is_unsigned ? put_u64(b, bl_le32(p)) : put_i64(b, (int32_t)bl_le32(p));
    default: /* BT_LONGLONG */
        return c->is_unsigned ? put_u64(b, bl_le64(p)) : put_i64(b, (int64_t)bl_le64(p));
    }
}

/* The pre-5.6 temporal formats, still in tables created before it. */
static int decode_old_temporal(mbq_buf *b, const bl_column *c, const uint8_t *p)
{
    if (c->type == BT_TIMESTAMP) { /* seconds, no fraction */
        uint8_t be[4] = {p[3], p[2], p[1], p[0]};
        return bl_text_timestamp2(b, be, 0);
    }
    if (c->type == BT_DATETIME) { /* YYYYMMDDhhmmss as an integer */
        uint64_t v = bl_le64(p);
        return mbq_buf_printf(b, "%04u-%02u-%02u %02u:%02u:%02u", (unsigned)(v / 10000000000ULL),
                              (unsigned)(v / 100000000 % 100), (unsigned)(v / 1000000 % 100),
                              (unsigned)(v / 10000 % 100), (unsigned)(v / 100 % 100),
                              (unsigned)(v % 100));
    }
    int32_t v = ((int32_t)(bl_le24(p) << 8)) >> 8; /* TIME: [-]HHMMSS */
    uint32_t a = (uint32_t)(v < 0 ? -v : v);
    return mbq_buf_printf(b, "%s%02u:%02u:%02u", v < 0 ? "-" : "", a / 10000, a / 100 % 100,
                          a % 100);
}

/* A fixed-size value whose `n` bytes are at p. */
static int decode_fixed(mbq_buf *b, const bl_column *c, const uint8_t *p, size_t n)
{
    switch (c->type) {
    case BT_TINY: case BT_SHORT: case BT_INT24: case BT_LONG: case BT_LONGLONG:
        return decode_int(b, c, p);
    case BT_YEAR:
        return p[0] ? put_u64(b, 1900u + p[0]) : mbq_buf_puts(b, "0000");
    case BT_FLOAT: {
        float f;
        memcpy(&f, p, 4); /* IEEE little-endian, as x86-64 and arm64 */
        return bl_text_double(b, (double)f);
    }
    case BT_DOUBLE: {
        double d;
        memcpy(&d, p, 8);
        return bl_text_double(b, d);
    }
    case BT_NEWDECIMAL:
        return bl_text_decimal(b, p, c->meta >> 8, c->meta & 0xFF);
    case BT_DATE: case BT_NEWDATE:
        return bl_text_date(b, bl_le24(p));
    case BT_DATETIME2:
        return bl_text_datetime2(b, p, c->meta);
    case BT_TIMESTAMP2:
        return bl_text_timestamp2(b, p, c->meta);
    case BT_TIME2:
        return bl_text_time2(b, p, c->meta);
    case BT_BIT:
        /* The text protocol sends BIT(n) as its (n + 7) / 8 big-endian
         * bytes, as the row image stores them. */
        return mbq_buf_append(b, p, n);
    case BT_ENUM:
        return put_enum(b, c, n == 1 ? p[0] : bl_le16(p));
    case BT_SET: {
        uint64_t bits = 0;
        for (size_t i = 0; i < n && i < 8; i++)
            bits |= (uint64_t)p[i] << (8 * i);
        return put_set(b, c, bits);
    }
    default:
        return decode_old_temporal(b, c, p);
    }
}

/* CHAR/BINARY: `len` bytes at q of a column of c->meta bytes. */
static int decode_char(mbq_buf *b, const bl_column *c, bl_charsets *cs, const uint8_t *q,
                       size_t len)
{
    if (c->cs == CS_BINARY) {
        /* BINARY(n): the image drops the trailing 0x00 padding, the server
         * sends it (Field_string::pack with binary's pad char). */
        uint8_t full[256];
        if (c->ext && len <= c->meta && c->meta <= sizeof full) {
            memcpy(full, q, len);
            memset(full + len, 0, c->meta - len);
            return bl_text_ext(b, c->ext, full, c->meta);
        }
        int rc = mbq_buf_append(b, q, len);
        for (size_t i = len; rc == 0 && i < c->meta; i++)
            rc = mbq_buf_putc(b, '\0');
        return rc;
    }
    /* CHAR: the server sends it without trailing spaces, and the image
     * holds it so already (Field_string::pack, lengthsp); stripping bytes
     * again would cut a UCS-2/UTF-16 character ending in 0x20, so only the
     * single-byte-space charsets are. */
    while ((c->cs == CS_UTF8 || c->cs == CS_LATIN1) && len && q[len - 1] == ' ')
        len--;
    return put_text(b, c, cs, q, len);
}

/* A value with a length prefix: strings, blobs, spatial. -1 when the image
 * is shorter than it says. */
static int decode_var(mbq_buf *b, const bl_column *c, bl_charsets *cs, const uint8_t **pp,
                      const uint8_t *end)
{
    const uint8_t *q = *pp;
    size_t len = 0, lb;
    bool var = c->type == BT_VARCHAR || c->type == BT_VAR_STRING || c->type == BT_STRING;
    if (var)
        lb = c->meta > 255 ? 2 : 1;
    else if (c->type == BT_BLOB || c->type == BT_TINY_BLOB || c->type == BT_MEDIUM_BLOB ||
             c->type == BT_LONG_BLOB || c->type == BT_GEOMETRY)
        lb = c->meta;
    else
        return mbq_error_set(MBQ_EDATA, "binlog column type %u is not supported", c->type);
    if (prefixed(&len, &q, end, lb) < 0)
        return -1;
    *pp = q + len;
    if (c->type == BT_STRING)
        return decode_char(b, c, cs, q, len);
    if (c->type == BT_GEOMETRY) {
        if (len < 4)
            return -1;
        return bl_wkb_to_wkt(b, q + 4, len - 4); /* after the SRID */
    }
    return put_text(b, c, cs, q, len);
}

/* One value: text into `b`, *pp advanced past its bytes. -1 when the
 * image is shorter than the type says. */
static int decode_value(mbq_buf *b, const bl_column *c, bl_charsets *cs, const uint8_t **pp,
                        const uint8_t *end)
{
    size_t n = fixed_size(c);
    if (n == 0)
        return decode_var(b, c, cs, pp, end);
    if ((size_t)(end - *pp) < n)
        return -1;
    const uint8_t *p = *pp;
    *pp += n;
    return decode_fixed(b, c, p, n);
}

static int grow_vals(bl_rows *r, size_t need)
{
    if (need <= r->vals_cap)
        return 0;
    size_t cap = r->vals_cap ? r->vals_cap * 2 : 64;
    while (cap < need)
        cap *= 2;
    mbq_binlog_value *v = realloc(r->vals, cap * sizeof *v);
    if (!v)
        return mbq_error_set(MBQ_ENOMEM, "out of memory");
    r->vals = v;
    r->vals_cap = cap;
    return 0;
}

/* One row image: the null bitmap over the present columns, then their
 * values. Values are stored as arena offsets (data = offset + 1, NULL for
 * SQL NULL) until bl_rows fixes them up. */
static int decode_image(bl_rows *r, size_t at, const bl_table *t, const uint8_t *present,
                        size_t n_present, const uint8_t **pp, const uint8_t *end, bl_charsets *cs)
{
    const uint8_t *p = *pp, *nulls = p;
    size_t nb = (n_present + 7) / 8;
    if ((size_t)(end - p) < nb)
        return -1;
    p += nb;
    size_t k = 0;
    for (size_t i = 0; i < t->n; i++) {
        mbq_binlog_value *v = &r->vals[at + i];
        v->data = NULL;
        v->len = 0;
        if (!(present[i / 8] >> (i % 8) & 1)) {
            /* binlog_row_image is not FULL: a value we do not have is not
             * a NULL, and guessing would corrupt the target. */
            return mbq_error_set(MBQ_EDATA,
                                 "column '%s' is missing from the row image "
                                 "(binlog_row_image must be FULL)",
                                 t->cols[i].name);
        }
        bool is_null = nulls[k / 8] >> (k % 8) & 1;
        k++;
        if (is_null)
            continue;
        size_t start = r->arena.len;
        int rc = decode_value(&r->arena, &t->cols[i], cs, &p, end);
        if (rc == -1)
            return -1;
        if (rc < 0)
            return mbq_error_wrap(rc, "column '%s': ", t->cols[i].name);
        v->data = (const char *)(uintptr_t)(start + 1);
        v->len = r->arena.len - start;
    }
    *pp = p;
    return 0;
}

static size_t popcount_bits(const uint8_t *bits, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += bits[i / 8] >> (i % 8) & 1;
    return c;
}

int bl_rows_decode(bl_rows *r, const bl_table *t, int kind, const uint8_t *p, size_t len,
                   bl_charsets *cs)
{
    const uint8_t *end = p + len;
    uint64_t ncols;
    int rc = 0;
    bool v2 = kind >= 30 && kind <= 32;
    char op = (kind == 23 || kind == 30) ? 'I' : (kind == 24 || kind == 31) ? 'U' : 'D';
    mbq_buf_clear(&r->arena);
    r->n_rows = 0;
    /* An empty value must point somewhere: NULL data means SQL NULL. */
    if (mbq_buf_grow(&r->arena, 256) < 0)
        return MBQ_ENOMEM;
    if (len < 8)
        goto bad;
    p += 8; /* table id (6), flags (2) */
    if (v2) {
        if ((size_t)(end - p) < 2 || bl_le16(p) < 2 || bl_le16(p) > (size_t)(end - p))
            goto bad;
        p += bl_le16(p); /* extra data, its length included */
    }
    /* A table of no columns has no row that takes a byte: never loop on one. */
    if (t->n == 0 || bl_packed(&ncols, &p, end) < 0 || ncols != t->n)
        goto bad;
    size_t bm = (t->n + 7) / 8;
    const uint8_t *present = p, *present2 = p;
    if ((size_t)(end - p) < bm * (op == 'U' ? 2 : 1))
        goto bad;
    p += bm;
    if (op == 'U') {
        present2 = p;
        p += bm;
    }
    size_t np1 = popcount_bits(present, t->n), np2 = popcount_bits(present2, t->n);
    size_t per_row = t->n * (op == 'U' ? 2 : 1);
    while (p < end) {
        if ((rc = grow_vals(r, (r->n_rows + 1) * per_row)) < 0)
            goto done;
        size_t at = r->n_rows * per_row;
        rc = decode_image(r, at, t, present, np1, &p, end, cs);
        if (rc == 0 && op == 'U')
            rc = decode_image(r, at + t->n, t, present2, np2, &p, end, cs);
        if (rc == -1)
            goto bad;
        if (rc < 0)
            goto done;
        r->n_rows++;
    }
    if (r->rows_cap < r->n_rows) {
        mbq_binlog_row *nr = realloc(r->rows, r->n_rows * sizeof *nr);
        if (!nr) {
            rc = mbq_error_set(MBQ_ENOMEM, "out of memory");
            goto done;
        }
        r->rows = nr;
        r->rows_cap = r->n_rows;
    }
    /* The arena has stopped growing: offsets become pointers. */
    for (size_t i = 0; i < r->n_rows * per_row; i++)
        if (r->vals[i].data)
            r->vals[i].data = r->arena.ptr + ((uintptr_t)r->vals[i].data - 1);
    for (size_t i = 0; i < r->n_rows; i++) {
        mbq_binlog_value *img = r->vals + i * per_row;
        r->rows[i].op = op;
        r->rows[i].before = op == 'I' ? NULL : img;
        r->rows[i].after = op == 'D' ? NULL : op == 'U' ? img + t->n : img;
    }
    return 0;
bad:
    rc = mbq_error_set(MBQ_EDATA, "malformed rows event for '%s.%s' (row %zu)", t->database,
                       t->table, r->n_rows + 1);
done:
    return rc;
}
