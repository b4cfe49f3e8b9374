/* Key-range chunk boundaries of a table (see mbq/chunks.h). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <mysql.h>

#include "mbq/chunks.h"
#include "mbq/error.h"
#include "mbq/journal.h"
#include "mbq/util.h"
#include "mysql_internal.h"
#include "mbq/banned.h"

typedef enum key_kind {
    KEY_NONE = 0,
    KEY_NUMBER, /* integers, DECIMAL, YEAR: a bare literal (digits checked) */
    KEY_TEXT,   /* strings and temporal types: an escaped literal, compared in the
                   column's collation (a literal is coercible, the column implicit:
                   MySQL "Collation Coercibility in Expressions") */
    KEY_BINARY, /* binary strings: X'hex', compared byte by byte */
} key_kind;

static key_kind kind_of(const mbq_column *col)
{
    static const char *const numbers[] = {"tinyint", "smallint", "mediumint", "int",
                                          "integer", "bigint",   "decimal",   "year"};
    static const char *const texts[] = {"char",     "varchar",  "tinytext", "text",
                                        "mediumtext", "longtext", "date",   "datetime",
                                        "timestamp", "time"};
    static const char *const binaries[] = {"binary",   "varbinary",  "tinyblob",
                                           "blob",     "mediumblob", "longblob"};
    const char *t = col->data_type ? col->data_type : "";
    if (col->is_json)
        return KEY_NONE;
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++)
        if (strcasecmp(t, numbers[i]) == 0)
            return KEY_NUMBER;
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        if (strcasecmp(t, texts[i]) == 0)
            return col->charset && strcasecmp(col->charset, "binary") == 0 ? KEY_BINARY
                                                                           : KEY_TEXT;
    for (size_t i = 0; i < sizeof binaries / sizeof binaries[0]; i++)
        if (strcasecmp(t, binaries[i]) == 0)
            return KEY_BINARY;
    return KEY_NONE;
}

/* The key's columns in s, or an error naming the one that cannot be used. */
static int key_columns(const mbq_column **cols, const mbq_table_schema *s,
                       const char *const *key, size_t n_key)
{
    if (n_key == 0)
        return mbq_error_set(MBQ_ESCHEMA, "table '%s': chunks need a primary key", s->table);
    for (size_t i = 0; i < n_key; i++) {
        const mbq_column *col = mbq_table_schema_column(s, key[i]);
        if (!col)
            return mbq_error_set(MBQ_ESCHEMA, "table '%s': key column '%s' does not exist",
                                 s->table, key[i]);
        if (kind_of(col) == KEY_NONE)
            return mbq_error_set(MBQ_ESCHEMA,
                                 "table '%s': key column '%s' of type '%s' cannot bound "
                                 "chunks (its text form does not keep the server's order)",
                                 s->table, key[i], col->column_type ? col->column_type : "?");
        if (cols)
            cols[i] = col;
    }
    return 0;
}

int mbq_chunk_key_check(const mbq_table_schema *s, const char *const *key, size_t n_key)
{
    return key_columns(NULL, s, key, n_key);
}

int mbq_chunk_key_encode(mbq_buf *out, const char *const *values, const size_t *lens, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        if (i && mbq_buf_putc(out, ',') < 0)
            return MBQ_ENOMEM;
        if (mbq_buf_grow(out, 2 * lens[i] + 1) < 0)
            return MBQ_ENOMEM;
        for (size_t k = 0; k < lens[i]; k++) {
            unsigned char ch = (unsigned char)values[i][k];
            out->ptr[out->len++] = hex[ch >> 4];
            out->ptr[out->len++] = hex[ch & 15];
        }
        out->ptr[out->len] = '\0';
    }
    return 0;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

/* Decode column i of an encoded key into `out` (raw bytes). */
static int decode_part(mbq_buf *out, const char *enc, size_t i)
{
    const char *p = enc;
    for (size_t k = 0; k < i && p; k++) {
        p = strchr(p, ',');
        p = p ? p + 1 : NULL;
    }
    if (!p)
        return mbq_error_set(MBQ_EDATA, "chunk key '%s' has fewer columns than the key", enc);
    size_t n = strcspn(p, ",");
    if (n % 2)
        return mbq_error_set(MBQ_EDATA, "chunk key '%s' is not hex", enc);
    mbq_buf_clear(out);
    for (size_t k = 0; k < n; k += 2) {
        int hi = hexval(p[k]), lo = hexval(p[k + 1]);
        if (hi < 0 || lo < 0)
            return mbq_error_set(MBQ_EDATA, "chunk key '%s' is not hex", enc);
        if (mbq_buf_putc(out, (char)(hi << 4 | lo)) < 0)
            return MBQ_ENOMEM;
    }
    return 0;
}

static size_t key_parts(const char *enc)
{
    size_t n = 1;
    for (const char *p = enc; *p; p++)
        n += *p == ',';
    return n;
}

/* One value of column `col` as a SQL literal. */
static int put_value(mbq_buf *sql, mbq_mysql *c, const mbq_column *col, const mbq_buf *v)
{
    static const char hex[] = "0123456789abcdef";
    switch (kind_of(col)) {
    case KEY_NUMBER: {
        /* Digits, one sign, one point: nothing else reaches the statement. */
        size_t signs = 0, points = 0, digits = 0;
        for (size_t i = 0; i < v->len; i++) {
            char ch = v->ptr[i];
            if (ch == '-' && i == 0)
                signs++;
            else if (ch == '.')
                points++;
            else if (ch >= '0' && ch <= '9')
                digits++;
            else
                digits = 0, points = 2;
        }
        if (!digits || points > 1 || signs > 1)
            return mbq_error_set(MBQ_EDATA, "chunk key value '%s' of column '%s' is not a number",
                                 mbq_buf_cstr(v), col->name);
        return mbq_buf_append(sql, v->ptr, v->len);
    }
    case KEY_BINARY:
        if (mbq_buf_puts(sql, "X'") < 0 || mbq_buf_grow(sql, 2 * v->len + 2) < 0)
            return MBQ_ENOMEM;
        for (size_t i = 0; i < v->len; i++) {
            unsigned char ch = (unsigned char)v->ptr[i];
            sql->ptr[sql->len++] = hex[ch >> 4];
            sql->ptr[sql->len++] = hex[ch & 15];
        }
        sql->ptr[sql->len] = '\0';
        return mbq_buf_putc(sql, '\'');
    case KEY_TEXT:
        if (mbq_buf_grow(sql, 2 * v->len + 3) < 0)
            return MBQ_ENOMEM;
        sql->ptr[sql->len++] = '\'';
        sql->len += mysql_real_escape_string(c->my, sql->ptr + sql->len, v->ptr ? v->ptr : "",
                                             (unsigned long)v->len);
        sql->ptr[sql->len++] = '\'';
        sql->ptr[sql->len] = '\0';
        return 0;
    default:
        return mbq_error_set(MBQ_ESCHEMA, "key column '%s' cannot bound chunks", col->name);
    }
}

/* (k1, ..., kn) op (v1, ..., vn) in lexicographic order, op '>' or '<='
 * (upper bounds inclusive): the first column alone bounds the index range,
 * then the exact comparison. Written out rather than as a row constructor,
 * which not every MariaDB version turns into an index range. */
static int put_compare(mbq_buf *sql, mbq_mysql *c, const mbq_column **cols, size_t n,
                       const char *enc, bool lower)
{
    mbq_buf v = MBQ_BUF_INIT;
    int rc = 0;
    if (key_parts(enc) != n) {
        rc = mbq_error_set(MBQ_EDATA, "chunk key '%s' does not have the key's %zu columns", enc,
                           n);
        goto done;
    }
#define P(x)                                                                                       \
    do {                                                                                           \
        if ((rc = (x)) < 0)                                                                        \
            goto done;                                                                             \
    } while (0)
    P(decode_part(&v, enc, 0));
    P(mbq_buf_puts(sql, "("));
    P(mbq_buf_quote_mysql_ident(sql, cols[0]->name));
    P(mbq_buf_puts(sql, lower ? (n == 1 ? " > " : " >= ") : " <= "));
    P(put_value(sql, c, cols[0], &v));
    if (n > 1) {
        P(mbq_buf_puts(sql, " AND ("));
        for (size_t i = 0; i < n; i++) {
            P(mbq_buf_puts(sql, i ? " OR (" : "("));
            for (size_t k = 0; k <= i; k++) {
                P(decode_part(&v, enc, k));
                P(mbq_buf_puts(sql, k ? " AND " : ""));
                P(mbq_buf_quote_mysql_ident(sql, cols[k]->name));
                const char *op = k < i ? " = " : lower ? " > " : i + 1 == n ? " <= " : " < ";
                P(mbq_buf_puts(sql, op));
                P(put_value(sql, c, cols[k], &v));
            }
            P(mbq_buf_puts(sql, ")"));
        }
        P(mbq_buf_puts(sql, ")"));
    }
    P(mbq_buf_puts(sql, ")"));
#undef P
done:
    mbq_buf_free(&v);
    return rc;
}

int mbq_mysql_chunk_where(mbq_buf *out, mbq_mysql *c, const mbq_table_schema *s,
                          const char *const *key, size_t n_key, const char *after,
                          const char *upto)
{
    const mbq_column **cols = mbq_calloc(n_key ? n_key : 1, sizeof *cols);
    int rc = cols ? key_columns(cols, s, key, n_key) : MBQ_ENOMEM;
    if (rc == 0 && !after && !upto)
        rc = mbq_buf_puts(out, "TRUE");
    if (rc == 0 && after)
        rc = put_compare(out, c, cols, n_key, after, true);
    if (rc == 0 && after && upto)
        rc = mbq_buf_puts(out, " AND ");
    if (rc == 0 && upto)
        rc = put_compare(out, c, cols, n_key, upto, false);
    free(cols);
    return rc;
}

static int put_table(mbq_buf *b, const mbq_table_schema *s)
{
    int rc = mbq_buf_quote_mysql_ident(b, s->database);
    if (rc == 0)
        rc = mbq_buf_putc(b, '.');
    return rc ? rc : mbq_buf_quote_mysql_ident(b, s->table);
}

/* The key of the row chunk_rows rows after `after` (NULL = from the start),
 * encoded into *next; NULL when fewer rows remain. */
static int next_bound(char **next, mbq_mysql *c, const mbq_table_schema *s,
                      const char *const *key, size_t n_key, const char *after,
                      int64_t chunk_rows)
{
    mbq_buf sql = MBQ_BUF_INIT, enc = MBQ_BUF_INIT;
    MYSQL_RES *res = NULL;
    const char **vals = NULL;
    size_t *lens = NULL;
    int rc = mbq_buf_puts(&sql, "SELECT ");
    *next = NULL;
    for (size_t i = 0; rc == 0 && i < n_key; i++)
        if ((rc = mbq_buf_puts(&sql, i ? ", " : "")) == 0)
            rc = mbq_buf_quote_mysql_ident(&sql, key[i]);
    if (rc == 0 && (rc = mbq_buf_puts(&sql, " FROM ")) == 0 && (rc = put_table(&sql, s)) == 0 &&
        after && (rc = mbq_buf_puts(&sql, " WHERE ")) == 0)
        rc = mbq_mysql_chunk_where(&sql, c, s, key, n_key, after, NULL);
    for (size_t i = 0; rc == 0 && i < n_key; i++)
        if ((rc = mbq_buf_puts(&sql, i ? ", " : " ORDER BY ")) == 0)
            rc = mbq_buf_quote_mysql_ident(&sql, key[i]);
    if (rc == 0)
        rc = mbq_buf_printf(&sql, " LIMIT 1 OFFSET %lld", (long long)(chunk_rows - 1));
    if (rc < 0 || (rc = query_store(&res, c, &sql)) < 0)
        goto done;
    MYSQL_ROW row = mysql_fetch_row(res);
    if (!row)
        goto done;
    unsigned long *l = mysql_fetch_lengths(res);
    if (!(vals = mbq_calloc(n_key, sizeof *vals)) || !(lens = mbq_calloc(n_key, sizeof *lens))) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < n_key; i++) {
        if (!row[i]) {
            rc = mbq_error_set(MBQ_ESCHEMA, "table '%s': key column '%s' holds NULL",
                               s->table, key[i]);
            goto done;
        }
        vals[i] = row[i];
        lens[i] = l[i];
    }
    if ((rc = mbq_chunk_key_encode(&enc, vals, lens, n_key)) == 0 &&
        !(*next = mbq_buf_detach(&enc)))
        rc = MBQ_ENOMEM;
done:
    if (res)
        mysql_free_result(res);
    free(vals);
    free(lens);
    mbq_buf_free(&sql);
    mbq_buf_free(&enc);
    return rc;
}

static bool is_integer_column(const mbq_column *col)
{
    static const char *const ints[] = {"tinyint", "smallint", "mediumint", "int", "integer",
                                       "bigint"};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (col->data_type && strcasecmp(col->data_type, ints[i]) == 0)
            return true;
    return false;
}

/* Parse an integer column's text (signed, or BIGINT UNSIGNED up to 2^64-1). */
static bool parse_i128(__int128 *out, const char *txt)
{
    const char *p = txt;
    bool neg = *p == '-';
    __int128 v = 0;
    p += neg;
    if (!*p || strspn(p, "0123456789") != strlen(p) || strlen(p) > 20)
        return false;
    for (; *p; p++)
        v = v * 10 + (*p - '0');
    *out = neg ? -v : v;
    return true;
}

static int put_i128(mbq_buf *b, __int128 v)
{
    char tmp[48];
    size_t n = 0;
    bool neg = v < 0;
    unsigned __int128 u = neg ? (unsigned __int128)(-(v + 1)) + 1 : (unsigned __int128)v;
    do {
        tmp[n++] = (char)('0' + (int)(u % 10));
        u /= 10;
    } while (u);
    if (neg && mbq_buf_putc(b, '-') < 0)
        return MBQ_ENOMEM;
    while (n)
        if (mbq_buf_putc(b, tmp[--n]) < 0)
            return MBQ_ENOMEM;
    return 0;
}

/* One integer key column: boundaries from the key's range and the table's
 * row estimate (information_schema.TABLES.TABLE_ROWS, InnoDB's sampled
 * statistics), as mydumper splits integer keys: no walk of the table, at
 * the price of chunks as uneven as the key's gaps and skew (each still
 * exact: the bounds are values, every row falls in one chunk). */
static int integer_bounds(char ***out, size_t *n, mbq_mysql *c, const mbq_table_schema *s,
                          const char *key, int64_t chunk_rows)
{
    mbq_buf sql = MBQ_BUF_INIT, enc = MBQ_BUF_INIT, txt = MBQ_BUF_INIT;
    MYSQL_RES *res = NULL;
    char **v = NULL;
    __int128 lo = 0, hi = 0;
    int rc = mbq_buf_puts(&sql, "SELECT MIN(");
    if (rc == 0 && (rc = mbq_buf_quote_mysql_ident(&sql, key)) == 0 &&
        (rc = mbq_buf_puts(&sql, "), MAX(")) == 0 &&
        (rc = mbq_buf_quote_mysql_ident(&sql, key)) == 0 &&
        (rc = mbq_buf_puts(&sql, "), (SELECT TABLE_ROWS FROM information_schema.TABLES WHERE "
                                 "TABLE_SCHEMA = ")) == 0 &&
        (rc = put_literal(&sql, c, s->database)) == 0 &&
        (rc = mbq_buf_puts(&sql, " AND TABLE_NAME = ")) == 0 &&
        (rc = put_literal(&sql, c, s->table)) == 0 && (rc = mbq_buf_puts(&sql, ") FROM ")) == 0)
        rc = put_table(&sql, s);
    if (rc < 0 || (rc = query_store(&res, c, &sql)) < 0)
        goto done;
    MYSQL_ROW row = mysql_fetch_row(res);
    if (!row || !row[0] || !row[1] || !row[2])
        goto done; /* empty table */
    if (!parse_i128(&lo, row[0]) || !parse_i128(&hi, row[1])) {
        rc = mbq_error_set(MBQ_EMYSQL, "table '%s': key '%s' range '%s'..'%s' is not integer",
                           s->table, key, row[0], row[1]);
        goto done;
    }
    long long est = atoll(row[2]);
    __int128 chunks = est > chunk_rows ? (est + chunk_rows - 1) / chunk_rows : 1;
    __int128 span = hi - lo + 1;
    if (chunks > span)
        chunks = span;
    if (chunks <= 1)
        goto done;
    __int128 step = (span + chunks - 1) / chunks;
    if (!(v = mbq_calloc((size_t)chunks + 1, sizeof *v))) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    for (__int128 b = lo - 1 + step; b < hi; b += step) {
        const char *vals[1];
        size_t lens[1];
        mbq_buf_clear(&txt);
        mbq_buf_clear(&enc);
        if ((rc = put_i128(&txt, b)) < 0)
            goto done;
        vals[0] = txt.ptr;
        lens[0] = txt.len;
        if ((rc = mbq_chunk_key_encode(&enc, vals, lens, 1)) < 0)
            goto done;
        if (!(v[*n] = mbq_buf_detach(&enc))) {
            rc = MBQ_ENOMEM;
            goto done;
        }
        (*n)++;
    }
    if (*n > 0) {
        *out = v;
        v = NULL;
    }
done:
    if (v)
        mbq_strv_free(v);
    if (rc < 0)
        *n = 0;
    if (res)
        mysql_free_result(res);
    mbq_buf_free(&sql);
    mbq_buf_free(&enc);
    mbq_buf_free(&txt);
    return rc;
}

int mbq_mysql_chunk_bounds(char ***out, size_t *n, mbq_mysql *c, const mbq_table_schema *s,
                           const char *const *key, size_t n_key, int64_t chunk_rows)
{
    char **v = NULL, *next = NULL;
    size_t cap = 0;
    int rc;
    *out = NULL;
    *n = 0;
    if (chunk_rows < 1)
        return mbq_error_set(MBQ_ECONFIG, "chunk_rows must be at least 1");
    if ((rc = mbq_chunk_key_check(s, key, n_key)) < 0)
        return rc;
    if (n_key == 1 && is_integer_column(mbq_table_schema_column(s, key[0])))
        return integer_bounds(out, n, c, s, key[0], chunk_rows);
    for (;;) {
        if ((rc = next_bound(&next, c, s, key, n_key, *n ? v[*n - 1] : NULL, chunk_rows)) < 0)
            goto fail;
        if (!next)
            break;
        if (*n + 2 > cap) {
            cap = cap ? cap * 2 : 16;
            char **grown = mbq_realloc(v, cap * sizeof *v);
            if (!grown) {
                free(next);
                rc = MBQ_ENOMEM;
                goto fail;
            }
            v = grown;
        }
        v[(*n)++] = next;
        v[*n] = NULL;
    }
    if (*n > 0) {
        /* A table of exactly k * chunk_rows rows would end in an empty
         * chunk: its last bound is the table's last key, which the open
         * last chunk covers anyway. */
        char *after = NULL;
        if ((rc = next_bound(&after, c, s, key, n_key, v[*n - 1], 1)) < 0)
            goto fail;
        if (!after) {
            free(v[--(*n)]);
            v[*n] = NULL;
        }
        free(after);
    }
    if (*n == 0) {
        free(v);
        v = NULL;
    }
    *out = v;
    return 0;
fail:
    if (v)
        v[*n] = NULL;
    mbq_strv_free(v);
    *n = 0;
    return rc;
}

int mbq_mysql_cursor_max(char **out, mbq_mysql *c, const mbq_table_schema *s,
                         const char *cursor)
{
    mbq_buf sql = MBQ_BUF_INIT;
    MYSQL_RES *res = NULL;
    int rc;
    *out = NULL;
    if ((rc = mbq_buf_puts(&sql, "SELECT MAX(")) < 0 ||
        (rc = mbq_buf_quote_mysql_ident(&sql, cursor)) < 0 ||
        (rc = mbq_buf_puts(&sql, ") FROM ")) < 0 || (rc = put_table(&sql, s)) < 0 ||
        (rc = query_store(&res, c, &sql)) < 0)
        goto done;
    MYSQL_ROW row = mysql_fetch_row(res);
    if (row && row[0] && !(*out = mbq_strdup(row[0])))
        rc = MBQ_ENOMEM;
done:
    if (res)
        mysql_free_result(res);
    mbq_buf_free(&sql);
    return rc;
}
