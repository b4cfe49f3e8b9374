/* The key scanner of a reconciliation (see mbq/mysql_keys.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mbq/buf.h"
#include "mbq/error.h"
#include "mbq/log.h"
#include "mbq/mysql_keys.h"
#include "mbq/typemap.h"
#include "mbq/util.h"
#include "mysql_internal.h"
#include "mbq/banned.h"

#define FLUSH_BYTES (1u << 20)

void mbq_key_scan_result_free(mbq_key_scan_result *r)
{
    if (!r)
        return;
    free(r->last_key);
    free(r->hwm);
    memset(r, 0, sizeof *r);
}

/* ---- the last key: one hex string per column, joined by ',' ----------- */

static int put_hex(mbq_buf *b, const char *v, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    int rc = mbq_buf_grow(b, 2 * len + 1);
    for (size_t i = 0; rc == 0 && i < len; i++) {
        b->ptr[b->len++] = digits[(unsigned char)v[i] >> 4];
        b->ptr[b->len++] = digits[(unsigned char)v[i] & 15];
    }
    if (rc == 0)
        b->ptr[b->len] = '\0';
    return rc;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The k-th value of an encoded key into `out` (raw bytes). */
static int key_part(mbq_buf *out, const char *key, size_t k)
{
    const char *p = key;
    for (size_t i = 0; i < k && p; i++)
        p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL;
    if (!p)
        return mbq_error_set(MBQ_ECONFIG, "malformed reconciliation key '%s'", key);
    size_t n = strcspn(p, ",");
    mbq_buf_clear(out);
    if (n % 2)
        return mbq_error_set(MBQ_ECONFIG, "malformed reconciliation key '%s'", key);
    for (size_t i = 0; i < n; i += 2) {
        int hi = hexval(p[i]), lo = hexval(p[i + 1]);
        if (hi < 0 || lo < 0)
            return mbq_error_set(MBQ_ECONFIG, "malformed reconciliation key '%s'", key);
        int rc = mbq_buf_putc(out, (char)(hi * 16 + lo));
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- the statement ---------------------------------------------------- */

static bool is_integer_type(const char *t)
{
    static const char *const ints[] = {"tinyint", "smallint", "mediumint", "int",
                                       "integer", "bigint",   "decimal",   "double",
                                       NULL};
    for (size_t i = 0; ints[i]; i++)
        if (strcmp(t, ints[i]) == 0)
            return true;
    return false;
}

static bool is_binary_type(const mbq_column *c)
{
    return strstr(c->data_type, "binary") || strstr(c->data_type, "blob") ||
           strcmp(c->data_type, "bit") == 0 ||
           (c->charset && strcmp(c->charset, "binary") == 0);
}

/* One key value of the previous chunk as a literal the server compares in
 * the column's own order. Numbers stay numbers: a quoted number compared
 * with a BIGINT is compared as a DOUBLE, which is inexact above 2^53 and
 * would skip or repeat keys. Binary strings go as hex (any byte). Other
 * strings and temporal values are quoted and escaped, so that the column's
 * collation orders them, as it orders the index. */
static int put_value(mbq_buf *sql, mbq_mysql *c, const mbq_column *col, const mbq_buf *v)
{
    if (is_integer_type(col->data_type)) {
        if (v->len == 0 || strspn(v->ptr, "-.0123456789") != v->len)
            return mbq_error_set(MBQ_ECONFIG, "malformed number '%s' in a reconciliation key",
                                 mbq_buf_cstr(v));
        return mbq_buf_append(sql, v->ptr, v->len);
    }
    int rc;
    if (is_binary_type(col)) {
        if ((rc = mbq_buf_puts(sql, "X'")) < 0 || (rc = put_hex(sql, v->ptr ? v->ptr : "", v->len)) < 0)
            return rc;
        return mbq_buf_putc(sql, '\'');
    }
    if ((rc = mbq_buf_grow(sql, 2 * v->len + 3)) < 0)
        return rc;
    sql->ptr[sql->len++] = '\'';
    sql->len += mysql_real_escape_string(c->my, sql->ptr + sql->len,
                                         v->ptr ? v->ptr : "", (unsigned long)v->len);
    sql->ptr[sql->len++] = '\'';
    sql->ptr[sql->len] = '\0';
    return 0;
}

/* WHERE (k1 > a) OR (k1 = a AND k2 > b) OR ... for the key after `after`. */
static int put_after(mbq_buf *sql, mbq_mysql *c, const mbq_column *const *cols, size_t n,
                     const char *after)
{
    mbq_buf v = MBQ_BUF_INIT;
    int rc = mbq_buf_puts(sql, " WHERE ");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = mbq_buf_puts(sql, i ? " OR (" : "(");
        for (size_t k = 0; rc == 0 && k <= i; k++) {
            if ((rc = key_part(&v, after, k)) < 0 ||
                (rc = mbq_buf_puts(sql, k ? " AND " : "")) < 0 ||
                (rc = mbq_buf_quote_mysql_ident(sql, cols[k]->name)) < 0 ||
                (rc = mbq_buf_puts(sql, k < i ? " = " : " > ")) < 0)
                break;
            rc = put_value(sql, c, cols[k], &v);
        }
        if (rc == 0)
            rc = mbq_buf_putc(sql, ')');
    }
    mbq_buf_free(&v);
    return rc;
}

static int build_select(mbq_buf *sql, mbq_mysql *c, const mbq_key_scan_options *o,
                        const mbq_column *const *cols)
{
    const mbq_table_schema *s = o->schema;
    int rc = mbq_buf_puts(sql, "SELECT ");
    for (size_t i = 0; rc == 0 && i < o->n_key; i++) {
        if ((rc = mbq_buf_puts(sql, i ? ", " : "")) == 0)
            rc = mbq_buf_quote_mysql_ident(sql, cols[i]->name);
    }
    if (rc == 0 && (rc = mbq_buf_puts(sql, " FROM ")) == 0 &&
        (rc = mbq_buf_quote_mysql_ident(sql, s->database)) == 0 &&
        (rc = mbq_buf_putc(sql, '.')) == 0)
        rc = mbq_buf_quote_mysql_ident(sql, s->table);
    if (rc == 0 && o->after)
        rc = put_after(sql, c, cols, o->n_key, o->after);
    for (size_t i = 0; rc == 0 && i < o->n_key; i++) {
        if ((rc = mbq_buf_puts(sql, i ? ", " : " ORDER BY ")) == 0)
            rc = mbq_buf_quote_mysql_ident(sql, cols[i]->name);
    }
    return rc ? rc : mbq_buf_printf(sql, " LIMIT %" PRId64, o->limit);
}

/* ---- the scan --------------------------------------------------------- */

static int read_hwm(char **out, mbq_mysql *c, const mbq_key_scan_options *o)
{
    mbq_buf sql = MBQ_BUF_INIT;
    MYSQL_RES *res = NULL;
    MYSQL *my = c->my;
    int rc;
    *out = NULL;
    if ((rc = mbq_buf_puts(&sql, "SELECT MAX(")) < 0 ||
        (rc = mbq_buf_quote_mysql_ident(&sql, o->cursor)) < 0 ||
        (rc = mbq_buf_puts(&sql, ") FROM ")) < 0 ||
        (rc = mbq_buf_quote_mysql_ident(&sql, o->schema->database)) < 0 ||
        (rc = mbq_buf_putc(&sql, '.')) < 0 ||
        (rc = mbq_buf_quote_mysql_ident(&sql, o->schema->table)) < 0)
        goto done;
    if (mysql_real_query(my, sql.ptr, sql.len) != 0 || !(res = mysql_store_result(my))) {
        rc = my_error(c, "cannot read the high-water mark");
        goto done;
    }
    MYSQL_ROW row = mysql_fetch_row(res);
    if (row && row[0] && !(*out = mbq_strdup(row[0])))
        rc = MBQ_ENOMEM;
done:
    if (res)
        mysql_free_result(res);
    mbq_buf_free(&sql);
    return rc;
}

static int write_out(int fd, mbq_buf *b, const char *path)
{
    size_t off = 0;
    while (off < b->len) {
        ssize_t n = write(fd, b->ptr + off, b->len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return mbq_error_set(MBQ_EIO, "cannot write '%s': %s", path, strerror(errno));
        off += (size_t)n;
    }
    mbq_buf_clear(b);
    return 0;
}

/* One row as {"k1":v1,"k2":v2}\n, and its raw values as the last key. */
static int encode_key(mbq_buf *line, mbq_buf *last, MYSQL_ROW row, const unsigned long *lens,
                      const mbq_column *const *cols, size_t n, const char *tname)
{
    int rc = mbq_buf_putc(line, '{');
    mbq_buf_clear(last);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *bq = cols[i]->bq_name ? cols[i]->bq_name : cols[i]->name;
        if (!row[i])
            return mbq_error_set(MBQ_EDATA, "table '%s': key column '%s' is NULL in a row: "
                                            "the key is not unique and cannot be reconciled",
                                 tname, cols[i]->name);
        if ((i && (rc = mbq_buf_putc(line, ',')) < 0) ||
            (rc = mbq_buf_json_string(line, bq, strlen(bq))) < 0 ||
            (rc = mbq_buf_putc(line, ':')) < 0)
            return rc;
        rc = mbq_typemap_encode(line, cols[i]->map.enc, row[i], lens[i]);
        if (rc == 1)
            return mbq_error_set(MBQ_EDATA, "table '%s': key column '%s' holds a zero date, "
                                            "which BigQuery stores as NULL: such a key matches "
                                            "no target row and cannot be reconciled",
                                 tname, cols[i]->name);
        if (rc == 2)
            rc = 0; /* a JSON key that is not JSON: written as a string, like the extract */
        if (rc == 0 && i)
            rc = mbq_buf_putc(last, ',');
        if (rc == 0)
            rc = put_hex(last, row[i], lens[i]);
    }
    return rc ? rc : mbq_buf_puts(line, "}\n");
}

static int stream_rows(mbq_key_scan_result *out, mbq_mysql *c, const mbq_buf *sql, int fd,
                       const char *tmp, const mbq_column *const *cols, size_t n, const char *tname)
{
    MYSQL *my = c->my;
    MYSQL_RES *res = NULL;
    mbq_buf line = MBQ_BUF_INIT, last = MBQ_BUF_INIT;
    int rc = 0;
    if (mysql_real_query(my, sql->ptr, sql->len) != 0 || !(res = mysql_use_result(my))) {
        rc = my_error(c, "key scan failed");
        goto done;
    }
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res)) != NULL) {
        const unsigned long *lens = mysql_fetch_lengths(res);
        if ((rc = encode_key(&line, &last, row, lens, cols, n, tname)) < 0)
            goto done;
        out->rows++;
        if (line.len >= FLUSH_BYTES) {
            out->bytes += (int64_t)line.len;
            if ((rc = write_out(fd, &line, tmp)) < 0)
                goto done;
        }
    }
    if (mysql_errno(my)) {
        rc = my_error(c, "key scan failed");
        goto done;
    }
    out->bytes += (int64_t)line.len;
    if ((rc = write_out(fd, &line, tmp)) < 0)
        goto done;
    if (out->rows > 0 && !(out->last_key = mbq_strdup(last.ptr ? last.ptr : "")))
        rc = MBQ_ENOMEM;
done:
    if (res)
        mysql_free_result(res); /* for use_result this drains what is left */
    mbq_buf_free(&line);
    mbq_buf_free(&last);
    return rc;
}

static int resolve_columns(const mbq_column **cols, const mbq_key_scan_options *o)
{
    for (size_t i = 0; i < o->n_key; i++) {
        if (!(cols[i] = mbq_table_schema_column(o->schema, o->key[i])))
            return mbq_error_set(MBQ_ESCHEMA, "table '%s.%s': key column '%s' does not exist",
                                 o->schema->database, o->schema->table, o->key[i]);
        /* An ENUM or SET sorts by its members' index but compares with a
         * string literal as a string: a chunk's "after the last key" would
         * then skip keys, whose rows would look deleted. */
        if (strcmp(cols[i]->data_type, "enum") == 0 || strcmp(cols[i]->data_type, "set") == 0)
            return mbq_error_set(MBQ_ESCHEMA, "table '%s.%s': key column '%s' is an %s, whose "
                                              "order is not its text's: deletes cannot be "
                                              "reconciled by it (set 'deletes: off')",
                                 o->schema->database, o->schema->table, o->key[i],
                                 cols[i]->data_type);
    }
    return 0;
}

/* fsync the file, rename it into place, fsync the directory. */
static int publish(int fd, const char *tmp, const char *path)
{
    if (fsync(fd) != 0)
        return mbq_error_set(MBQ_EIO, "cannot fsync '%s': %s", tmp, strerror(errno));
    if (rename(tmp, path) != 0)
        return mbq_error_set(MBQ_EIO, "cannot rename '%s': %s", tmp, strerror(errno));
    return mbq_fsync_parent_dir(path);
}

int mbq_mysql_scan_keys(mbq_key_scan_result *out, mbq_mysql *c, const mbq_key_scan_options *o)
{
    int rc, fd = -1;
    bool in_tx = false;
    int64_t t0 = mbq_monotonic_ms();
    mbq_buf sql = MBQ_BUF_INIT, tmp = MBQ_BUF_INIT;
    const mbq_column **cols = NULL;
    memset(out, 0, sizeof *out);
    if (!o || !o->schema || !o->key || o->n_key == 0 || o->limit <= 0 || !o->path ||
        (o->want_hwm && !o->cursor))
        return mbq_error_set(MBQ_ECONFIG, "key scan: a schema, a key, a limit and a path are "
                                          "required");
    const char *tname = o->log_table ? o->log_table : o->schema->table;
    if (!(cols = mbq_calloc(o->n_key, sizeof *cols))) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    if ((rc = resolve_columns(cols, o)) < 0 || (rc = build_select(&sql, c, o, cols)) < 0 ||
        (rc = mbq_buf_printf(&tmp, "%s.tmp", o->path)) < 0)
        goto done;
    fd = open(tmp.ptr, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = mbq_error_set(MBQ_EIO, "cannot create '%s': %s", tmp.ptr, strerror(errno));
        goto done;
    }
    /* The chunk's snapshot: the high-water mark and the keys are read in
     * one consistent state. */
    if ((rc = mbq_mysql_exec(c, "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")) < 0)
        goto done;
    in_tx = true;
    if (o->want_hwm && (rc = read_hwm(&out->hwm, c, o)) < 0)
        goto done;
    mbq_log(MBQ_LOG_DEBUG, tname, "reconcile", "query: %s", mbq_buf_cstr(&sql));
    if ((rc = stream_rows(out, c, &sql, fd, tmp.ptr, cols, o->n_key, tname)) < 0)
        goto done;
    in_tx = false;
    if ((rc = mbq_mysql_exec(c, "COMMIT")) < 0 || (rc = publish(fd, tmp.ptr, o->path)) < 0)
        goto done;
    mbq_log(MBQ_LOG_DEBUG, tname, "reconcile", "scanned %" PRId64 " keys in %" PRId64 " ms",
            out->rows, mbq_monotonic_ms() - t0);
done:
    if (in_tx) {
        /* End the snapshot; the scan's own error is the one reported. */
        mbq_buf msg = MBQ_BUF_INIT;
        mbq_buf_puts(&msg, mbq_error_last());
        if (mbq_mysql_exec(c, "ROLLBACK") < 0)
            mbq_log(MBQ_LOG_DEBUG, tname, "reconcile", "rollback failed: %s", mbq_error_last());
        mbq_error_set(rc, "%s", mbq_buf_cstr(&msg));
        mbq_buf_free(&msg);
    }
    if (fd >= 0)
        close(fd);
    if (rc < 0) {
        if (tmp.ptr)
            unlink(tmp.ptr);
        mbq_key_scan_result_free(out);
        mbq_error_wrap(rc, "table '%s': ", tname);
    }
    mbq_buf_free(&sql);
    mbq_buf_free(&tmp);
    free(cols);
    return rc;
}
