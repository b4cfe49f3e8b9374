/* TABLE_MAP events: the table's columns, types and, with
 * binlog_row_metadata=FULL, names, signedness, charsets and ENUM/SET
 * members. Layout: MySQL's libbinlogevents Table_map_event (the optional
 * metadata MariaDB adopted in 10.5), MariaDB KB "Table_map_log_event". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mbq/error.h"
#include "mbq/util.h"

#include "binlog_internal.h"
#include "mbq/banned.h"

/* Optional metadata field types of a TABLE_MAP (MySQL's
 * Table_map_log_event::Optional_metadata_field_type). */
enum {
    OM_SIGNEDNESS = 1, OM_DEFAULT_CHARSET, OM_COLUMN_CHARSET, OM_COLUMN_NAME, OM_SET_STR_VALUE,
    OM_ENUM_STR_VALUE, OM_GEOMETRY_TYPE, OM_SIMPLE_PRIMARY_KEY, OM_PRIMARY_KEY_WITH_PREFIX,
    OM_ENUM_AND_SET_DEFAULT_CHARSET, OM_ENUM_AND_SET_COLUMN_CHARSET,
};

/* The columns the SIGNEDNESS bitmap has a bit for. MariaDB counts YEAR
 * too (MySQL does not): a table (INT, YEAR, INT, INT UNSIGNED) gets 0x50
 * from MariaDB 10.11, four bits. */
static bool is_numeric(uint8_t t)
{
    return t == BT_YEAR || t == BT_TINY || t == BT_SHORT || t == BT_INT24 || t == BT_LONG ||
           t == BT_LONGLONG ||
           t == BT_NEWDECIMAL || t == BT_FLOAT || t == BT_DOUBLE;
}

/* The columns the charset fields count. GEOMETRY is one (its base class
 * is BLOB): MariaDB 10.11 writes collation 63 for it in COLUMN_CHARSET. */
static bool is_character(uint8_t t)
{
    return t == BT_GEOMETRY || t == BT_STRING || t == BT_VAR_STRING || t == BT_VARCHAR ||
           t == BT_BLOB ||
           t == BT_TINY_BLOB || t == BT_MEDIUM_BLOB || t == BT_LONG_BLOB;
}

static bool is_enum_set(uint8_t t)
{
    return t == BT_ENUM || t == BT_SET;
}

void bl_table_free(bl_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; t->cols && i < t->n; i++) {
        free(t->cols[i].name);
        for (size_t k = 0; k < t->cols[i].n_members; k++)
            free(t->cols[i].members[k]);
        free(t->cols[i].members);
    }
    free(t->cols);
    free(t->names);
    free(t->raw);
    free(t->database);
    free(t->table);
    memset(t, 0, sizeof *t);
}

/* Metadata the decoders can trust: anything else is a malformed event
 * (the decoders index tables and size fields by these). */
static bool meta_ok(const bl_column *c)
{
    switch (c->type) {
    case BT_NEWDECIMAL: {
        int p = c->meta >> 8, s = c->meta & 0xFF;
        return p >= 1 && p <= 65 && s <= 38 && s <= p;
    }
    case BT_TIMESTAMP2: case BT_DATETIME2: case BT_TIME2:
        return c->meta <= 6;
    case BT_BLOB: case BT_TINY_BLOB: case BT_MEDIUM_BLOB: case BT_LONG_BLOB: case BT_GEOMETRY:
    case BT_JSON:
        return c->meta >= 1 && c->meta <= 4;
    case BT_ENUM:
        return c->meta == 1 || c->meta == 2;
    case BT_SET:
        return c->meta >= 1 && c->meta <= 8;
    case BT_BIT:
        return (c->meta >> 8) <= 8 && (c->meta & 0xFF) < 8 && c->meta != 0;
    case BT_FLOAT:
        return c->meta == 4;
    case BT_DOUBLE:
        return c->meta == 8;
    default:
        return true;
    }
}

/* Read each column's type metadata (the per-type bytes of the metadata
 * block) into cols[i].meta, resolving STRING's real type. */
static int parse_type_meta(bl_table *t, const uint8_t *types, const uint8_t *m, size_t mlen)
{
    const uint8_t *end = m + mlen;
    for (size_t i = 0; i < t->n; i++) {
        bl_column *c = &t->cols[i];
        c->type = types[i];
        size_t need = 0;
        switch (c->type) {
        case BT_FLOAT: case BT_DOUBLE: case BT_BLOB: case BT_GEOMETRY: case BT_JSON:
        case BT_TIMESTAMP2: case BT_DATETIME2: case BT_TIME2: case BT_TINY_BLOB:
        case BT_MEDIUM_BLOB: case BT_LONG_BLOB:
            need = 1;
            break;
        case BT_VARCHAR: case BT_VAR_STRING: case BT_NEWDECIMAL: case BT_BIT: case BT_STRING:
        case BT_ENUM: case BT_SET:
            need = 2;
            break;
        default:
            need = 0;
        }
        if ((size_t)(end - m) < need)
            return -1;
        if (need == 1) {
            c->meta = m[0];
        } else if (need == 2 && (c->type == BT_VARCHAR || c->type == BT_VAR_STRING)) {
            c->meta = (uint16_t)bl_le16(m);
        } else if (need == 2 && c->type == BT_NEWDECIMAL) {
            c->meta = (uint16_t)(m[0] << 8 | m[1]); /* precision, scale */
        } else if (need == 2 && c->type == BT_BIT) {
            c->meta = (uint16_t)(m[1] << 8 | m[0]); /* bytes, bits % 8 */
        } else if (need == 2) {
            /* Field_string::save_field_metadata: a length above 255 keeps
             * its two high bits, inverted, in bits 4-5 of the type byte. */
            uint8_t rt = m[0], len = m[1];
            if ((rt & 0x30) != 0x30) {
                c->meta = (uint16_t)(len | (((rt & 0x30) ^ 0x30) << 4));
                rt |= 0x30;
            } else {
                c->meta = len;
            }
            c->type = rt;
        }
        m += need;
        if (!meta_ok(c))
            return -1;
    }
    return 0;
}

static int dup_str(char **out, const uint8_t *p, size_t n)
{
    if (!(*out = malloc(n + 1)))
        return MBQ_ENOMEM;
    memcpy(*out, p, n);
    (*out)[n] = '\0';
    return 0;
}

/* Column charsets: DEFAULT_CHARSET (a default, then (column, collation)
 * pairs for the others) or COLUMN_CHARSET (one per column), counting only
 * the columns `pick` selects. */
static int parse_charsets(bl_table *t, const uint8_t *p, const uint8_t *end, bool per_column,
                          bool (*pick)(uint8_t), const bl_charsets *cs)
{
    uint64_t coll = 0, idx;
    size_t k = 0;
    uint64_t *colls = calloc(t->n + 1, sizeof *colls);
    if (!colls)
        return MBQ_ENOMEM;
    if (!per_column) {
        if (bl_packed(&coll, &p, end) < 0)
            goto bad;
        for (size_t i = 0; i < t->n; i++)
            colls[i] = coll;
        while (p < end) {
            if (bl_packed(&idx, &p, end) < 0 || bl_packed(&coll, &p, end) < 0)
                goto bad;
            k = 0;
            for (size_t i = 0; i < t->n; i++)
                if (pick(t->cols[i].type) && k++ == idx)
                    colls[i] = coll;
        }
    }
    for (size_t i = 0; i < t->n; i++) {
        if (!pick(t->cols[i].type))
            continue;
        if (per_column && bl_packed(&colls[i], &p, end) < 0)
            goto bad;
        bl_column *c = &t->cols[i];
        c->cs = CS_UTF8;
        for (size_t j = 0; j < cs->n; j++)
            if (cs->ids[j] == colls[i]) {
                c->cs = cs->kind[j];
                c->iconv_idx = cs->iconv_idx[j];
            }
    }
    free(colls);
    return 0;
bad:
    free(colls);
    return -1;
}

static int parse_members(bl_table *t, const uint8_t *p, const uint8_t *end, uint8_t type)
{
    for (size_t i = 0; i < t->n; i++) {
        bl_column *c = &t->cols[i];
        if (c->type != type)
            continue;
        uint64_t n, len;
        /* A second member list for the column (the field repeated) is a
         * damaged event: the first would be lost (fuzz_binlog). */
        if (c->members || bl_packed(&n, &p, end) < 0 || n > (uint64_t)(end - p) ||
            !(c->members = calloc(n + 1, sizeof(char *))))
            return -1;
        for (c->n_members = 0; c->n_members < n; c->n_members++) {
            if (bl_packed(&len, &p, end) < 0 || len > (uint64_t)(end - p) ||
                dup_str(&c->members[c->n_members], p, (size_t)len) < 0)
                return -1;
            p += len;
        }
    }
    return 0;
}

/* ENUM/SET members are in the column's charset: keep them as UTF-8. */
static int members_to_utf8(bl_table *t, bl_charsets *cs)
{
    for (size_t i = 0; i < t->n; i++) {
        bl_column *c = &t->cols[i];
        for (size_t k = 0; c->cs != CS_UTF8 && c->cs != CS_BINARY && k < c->n_members; k++) {
            mbq_buf b = MBQ_BUF_INIT;
            const uint8_t *s = (const uint8_t *)c->members[k];
            size_t len = strlen(c->members[k]);
            int rc = c->cs == CS_LATIN1 ? bl_text_latin1(&b, s, len)
                                        : bl_text_iconv(&b, cs, c->iconv_idx, s, len);
            if (rc < 0 || !b.ptr) {
                mbq_buf_free(&b);
                return rc < 0 ? rc : 0;
            }
            free(c->members[k]);
            c->members[k] = mbq_buf_detach(&b);
        }
    }
    return 0;
}

static int parse_optional(bl_table *t, const uint8_t *p, const uint8_t *end, const bl_charsets *cs)
{
    while (p < end) {
        uint8_t ft = *p++;
        uint64_t flen;
        if (bl_packed(&flen, &p, end) < 0 || flen > (uint64_t)(end - p))
            return -1;
        const uint8_t *f = p, *fend = p + flen;
        p = fend;
        int rc = 0;
        switch (ft) {
        case OM_SIGNEDNESS: {
            size_t k = 0;
            for (size_t i = 0; i < t->n; i++) {
                if (!is_numeric(t->cols[i].type))
                    continue;
                if (k / 8 >= flen)
                    return -1;
                t->cols[i].is_unsigned = (f[k / 8] >> (7 - k % 8)) & 1;
                k++;
            }
            break;
        }
        case OM_DEFAULT_CHARSET:
        case OM_COLUMN_CHARSET:
            rc = parse_charsets(t, f, fend, ft == OM_COLUMN_CHARSET, is_character, cs);
            break;
        case OM_ENUM_AND_SET_DEFAULT_CHARSET:
        case OM_ENUM_AND_SET_COLUMN_CHARSET:
            rc = parse_charsets(t, f, fend, ft == OM_ENUM_AND_SET_COLUMN_CHARSET, is_enum_set, cs);
            break;
        case OM_COLUMN_NAME:
            for (size_t i = 0; i < t->n && rc == 0; i++) {
                uint64_t len;
                if (bl_packed(&len, &f, fend) < 0 || len > (uint64_t)(fend - f))
                    return -1;
                free(t->cols[i].name);
                rc = dup_str(&t->cols[i].name, f, (size_t)len);
                f += len;
            }
            break;
        case OM_SET_STR_VALUE:
            rc = parse_members(t, f, fend, BT_SET);
            break;
        case OM_ENUM_STR_VALUE:
            rc = parse_members(t, f, fend, BT_ENUM);
            break;
        default:
            break; /* geometry types, primary keys: not needed */
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

int bl_table_parse(bl_table *t, const uint8_t *p, size_t len, const bl_charsets *cs)
{
    const uint8_t *end = p + len;
    uint64_t n, mlen;
    int rc = 0;
    memset(t, 0, sizeof *t);
    if (len < 10)
        goto bad;
    t->id = bl_le48(p);
    p += 8;
    size_t dl = *p++;
    /* A name longer than the event is malformed, not an empty table (a
     * failed length check must not reach `fail` with rc 0: found by
     * fuzz_binlog, whose rows decode then looped on a table of 0 columns). */
    if ((size_t)(end - p) < dl + 2)
        goto bad;
    if ((rc = dup_str(&t->database, p, dl)) < 0)
        goto fail;
    p += dl + 1;
    size_t tl = *p++;
    if ((size_t)(end - p) < tl + 1)
        goto bad;
    if ((rc = dup_str(&t->table, p, tl)) < 0)
        goto fail;
    p += tl + 1;
    if (bl_packed(&n, &p, end) < 0 || n > (uint64_t)(end - p) || n == 0)
        goto bad;
    t->n = (size_t)n;
    const uint8_t *types = p;
    p += n;
    if (!(t->cols = calloc(t->n, sizeof *t->cols)) ||
        !(t->names = calloc(t->n, sizeof *t->names))) {
        rc = MBQ_ENOMEM;
        goto fail;
    }
    if (bl_packed(&mlen, &p, end) < 0 || mlen > (uint64_t)(end - p) ||
        parse_type_meta(t, types, p, (size_t)mlen) < 0)
        goto bad;
    p += mlen;
    if ((size_t)(end - p) < (t->n + 7) / 8)
        goto bad;
    p += (t->n + 7) / 8; /* nullability: the row image's null bits suffice */
    for (size_t i = 0; i < t->n; i++)
        t->cols[i].cs = CS_UTF8;
    if ((rc = parse_optional(t, p, end, cs)) == -1)
        goto bad;
    if (rc < 0 || (rc = members_to_utf8(t, (bl_charsets *)cs)) < 0)
        goto fail;
    for (size_t i = 0; i < t->n; i++) {
        if (!t->cols[i].name) {
            /* binlog_row_metadata is not FULL: no names, positions only. */
            char tmp[32];
            snprintf(tmp, sizeof tmp, "@%zu", i + 1);
            if ((rc = dup_str(&t->cols[i].name, (const uint8_t *)tmp, strlen(tmp))) < 0)
                goto fail;
        }
        t->names[i] = t->cols[i].name;
    }
    return 0;
bad:
    rc = mbq_error_set(MBQ_EDATA, "malformed TABLE_MAP event for '%s.%s'",
                       t->database ? t->database : "?", t->table ? t->table : "?");
fail:
    bl_table_free(t);
    return rc;
}
