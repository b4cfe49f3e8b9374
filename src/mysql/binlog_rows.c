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

/* One value: text into `b`, *p advanced past its bytes. -1 when the
 * image is shorter than the type says. */
static int decode_value(mbq_buf *b, const bl_column *c, bl_charsets *cs, const uint8_t **pp,
                        const uint8_t *end)
{
    const uint8_t *p = *pp;
    size_t avail = (size_t)(end - p), n = 0, len = 0;
    int rc = 0;
#define NEED(k)                                                                                    \
    do {                                                                                           \
        if (avail < (size_t)(k))                                                                   \
            return -1;                                                                             \
        n = (size_t)(k);                                                                           \
    } while (0)
    switch (c->type) {
    case BT_TINY:
        NEED(1);
        rc = c->is_unsigned ? put_u64(b, p[0]) : put_i64(b, (int8_t)p[0]);
        break;
    case BT_SHORT:
        NEED(2);
        rc = c->is_unsigned ? put_u64(b, bl_le16(p)) : put_i64(b, (int16_t)bl_le16(p));
        break;
    case BT_INT24:
        NEED(3);
        rc = c->is_unsigned ? put_u64(b, bl_le24(p))
                            : put_i64(b, ((int32_t)(bl_le24(p) << 8)) >> 8);
        break;
    case BT_LONG:
        NEED(4);
        rc = c->is_unsigned ? put_u64(b, bl_le32(p)) : put_i64(b, (int32_t)bl_le32(p));
        break;
    case BT_LONGLONG:
        NEED(8);
        rc = c->is_unsigned ? put_u64(b, bl_le64(p)) : put_i64(b, (int64_t)bl_le64(p));
        break;
    case BT_YEAR:
        NEED(1);
        rc = p[0] ? put_u64(b, 1900u + p[0]) : mbq_buf_puts(b, "0000");
        break;
    case BT_FLOAT: {
        NEED(4);
        float f;
        memcpy(&f, p, 4); /* IEEE little-endian, as x86-64 */
        rc = bl_text_double(b, (double)f);
        break;
    }
    case BT_DOUBLE: {
        NEED(8);
        double d;
        memcpy(&d, p, 8);
        rc = bl_text_double(b, d);
        break;
    }
    case BT_NEWDECIMAL: {
        int prec = c->meta >> 8, scale = c->meta & 0xFF;
        NEED(bl_decimal_size(prec, scale));
        rc = bl_text_decimal(b, p, prec, scale);
        break;
    }
    case BT_DATE:
    case BT_NEWDATE:
        NEED(3);
        rc = bl_text_date(b, bl_le24(p));
        break;
    case BT_DATETIME2:
        NEED(5 + (c->meta + 1) / 2);
        rc = bl_text_datetime2(b, p, c->meta);
        break;
    case BT_TIMESTAMP2:
        NEED(4 + (c->meta + 1) / 2);
        rc = bl_text_timestamp2(b, p, c->meta);
        break;
    case BT_TIME2:
        NEED(3 + (c->meta + 1) / 2);
        rc = bl_text_time2(b, p, c->meta);
        break;
    case BT_TIMESTAMP: { /* pre-5.6 format: seconds, no fraction */
        NEED(4);
        uint8_t be[4] = {p[3], p[2], p[1], p[0]};
        rc = bl_text_timestamp2(b, be, 0);
        break;
    }
    case BT_DATETIME: { /* pre-5.6 format: YYYYMMDDhhmmss as an integer */
        NEED(8);
        uint64_t v = bl_le64(p);
        rc = mbq_buf_printf(b, "%04u-%02u-%02u %02u:%02u:%02u", (unsigned)(v / 10000000000ULL),
                            (unsigned)(v / 100000000 % 100), (unsigned)(v / 1000000 % 100),
                            (unsigned)(v / 10000 % 100), (unsigned)(v / 100 % 100),
                            (unsigned)(v % 100));
        break;
    }
    case BT_TIME: { /* pre-5.6 format: [-]HHMMSS as an integer */
        NEED(3);
        int32_t v = ((int32_t)(bl_le24(p) << 8)) >> 8;
        uint32_t a = (uint32_t)(v < 0 ? -v : v);
        rc = mbq_buf_printf(b, "%s%02u:%02u:%02u", v < 0 ? "-" : "", a / 10000, a / 100 % 100,
                            a % 100);
        break;
    }
    case BT_BIT: {
        /* The text protocol sends BIT(n) as its (n + 7) / 8 big-endian
         * bytes, as the row image stores them. */
        NEED((c->meta >> 8) + ((c->meta & 0xFF) ? 1 : 0));
        rc = mbq_buf_append(b, p, n);
        break;
    }
    case BT_ENUM:
        NEED(c->meta);
        rc = put_enum(b, c, n == 1 ? p[0] : bl_le16(p));
        break;
    case BT_SET: {
        NEED(c->meta);
        uint64_t bits = 0;
        for (size_t i = 0; i < n && i < 8; i++)
            bits |= (uint64_t)p[i] << (8 * i);
        rc = put_set(b, c, bits);
        break;
    }
    case BT_VARCHAR:
    case BT_VAR_STRING:
    case BT_STRING: {
        const uint8_t *q = p;
        if (prefixed(&len, &q, end, c->meta > 255 ? 2 : 1) < 0)
            return -1;
        n = (size_t)(q - p) + len;
        if (c->type == BT_STRING && c->cs == CS_BINARY) {
            /* BINARY(n): the image drops the trailing 0x00 padding, the
             * server sends it (Field_string::pack with binary's pad char). */
            uint8_t full[256];
            if (c->ext && len <= c->meta && c->meta <= sizeof full) {
                memcpy(full, q, len);
                memset(full + len, 0, c->meta - len);
                rc = bl_text_ext(b, c->ext, full, c->meta);
                break;
            }
            rc = mbq_buf_append(b, q, len);
            for (size_t i = len; rc == 0 && i < c->meta; i++)
                rc = mbq_buf_putc(b, '\0');
        } else if (c->type == BT_STRING) {
            /* CHAR: the server sends it without trailing spaces. */
            while (len && q[len - 1] == ' ')
                len--;
            rc = put_text(b, c, cs, q, len);
        } else {
            rc = put_text(b, c, cs, q, len);
        }
        break;
    }
    case BT_BLOB:
    case BT_TINY_BLOB:
    case BT_MEDIUM_BLOB:
    case BT_LONG_BLOB:
    case BT_GEOMETRY: {
        const uint8_t *q = p;
        if (prefixed(&len, &q, end, c->meta) < 0)
            return -1;
        n = (size_t)(q - p) + len;
        if (c->type == BT_GEOMETRY) {
            if (len < 4)
                return -1;
            rc = bl_wkb_to_wkt(b, q + 4, len - 4); /* after the SRID */
        } else {
            rc = put_text(b, c, cs, q, len);
        }
        break;
    }
    default:
        return mbq_error_set(MBQ_EDATA, "binlog column type %u is not supported", c->type);
    }
#undef NEED
    *pp = p + n;
    return rc;
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
    if (bl_packed(&ncols, &p, end) < 0 || ncols != t->n)
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
