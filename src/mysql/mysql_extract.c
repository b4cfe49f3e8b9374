/* The MySQL/MariaDB source's streaming extraction (see mysql_source.c for
 * the pipeline): the SELECT with its cursor bounds, the high-water mark,
 * row encoding into chunks handed to the writer thread, the tail of a full
 * extraction, and mbq_mysql_extract itself. */
#define _GNU_SOURCE /* sync_file_range */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mysql.h>
#include <mysqld_error.h>
#include <errmsg.h>
#include <openssl/evp.h>
#include <zlib.h>

#include "mbq/buf.h"
#include "mbq/error.h"
#include "mbq/fault.h"
#include "mbq/log.h"
#include "mbq/machine.h"
#include "mbq/mysql_source.h"
#include "mbq/util.h"

#include "mysql_internal.h"
#include "mbq/banned.h"

/* ---- extraction -------------------------------------------------------- */

void mbq_extract_result_free(mbq_extract_result *r)
{
    if (!r)
        return;
    free(r->checksum);
    free(r->low);
    free(r->high);
    free(r->tail_from);
    free(r->tail_checksum);
    free(r->not_json_first);
    free(r->binlog_file);
    free(r->binlog_gtid);
    memset(r, 0, sizeof *r);
}

/* A cursor bound as SQL: a bare integer for integer cursors (validated, so
 * nothing but digits reaches the statement), else an escaped literal. */
static int put_bound(mbq_buf *b, mbq_mysql *c, mbq_cursor_kind kind, const char *v,
                     const char *what)
{
    if (kind == MBQ_CURSOR_INTEGER) {
        const char *p = v;
        if (*p == '-')
            p++;
        if (!*p || strspn(p, "0123456789") != strlen(p) || strlen(p) > 20)
            return mbq_error_set(MBQ_ECONFIG, "%s '%s' is not an integer (the cursor is an "
                                              "integer column)", what, v);
        return mbq_buf_puts(b, v);
    }
    return put_literal(b, c, v);
}

static int put_table(mbq_buf *b, const mbq_table_schema *s)
{
    int rc = mbq_buf_quote_mysql_ident(b, s->database);
    if (rc == 0)
        rc = mbq_buf_putc(b, '.');
    return rc ? rc : mbq_buf_quote_mysql_ident(b, s->table);
}

/* SELECT MAX(cursor) ... inside the snapshot. *high = NULL when no row. */
static int read_high(char **high, mbq_mysql *c, const mbq_extract_options *o,
                     mbq_cursor_kind kind)
{
    mbq_buf sql = MBQ_BUF_INIT;
    MYSQL_RES *res = NULL;
    int rc;
    *high = NULL;
    if ((rc = mbq_buf_puts(&sql, "SELECT MAX(")) < 0 ||
        (rc = mbq_buf_quote_mysql_ident(&sql, o->cursor)) < 0 ||
        (rc = mbq_buf_puts(&sql, ") FROM ")) < 0 || (rc = put_table(&sql, o->schema)) < 0)
        goto done;
    const char *sep = " WHERE ";
    if (o->low) {
        if ((rc = mbq_buf_puts(&sql, sep)) < 0 ||
            (rc = mbq_buf_quote_mysql_ident(&sql, o->cursor)) < 0 ||
            (rc = mbq_buf_puts(&sql, " >= ")) < 0 ||
            (rc = put_bound(&sql, c, kind, o->low, "low bound")) < 0)
            goto done;
        sep = " AND ";
    }
    if (o->where) {
        if ((rc = mbq_buf_puts(&sql, sep)) < 0 || (rc = mbq_buf_puts(&sql, "(")) < 0 ||
            (rc = mbq_buf_puts(&sql, o->where)) < 0 || (rc = mbq_buf_puts(&sql, ")")) < 0)
            goto done;
        sep = " AND ";
    }
    if (o->high_limit) {
        if ((rc = mbq_buf_puts(&sql, sep)) < 0 ||
            (rc = mbq_buf_quote_mysql_ident(&sql, o->cursor)) < 0 ||
            (rc = mbq_buf_puts(&sql, " <= ")) < 0 ||
            (rc = put_bound(&sql, c, kind, o->high_limit, "high limit")) < 0)
            goto done;
    }
    if ((rc = query_store(&res, c, &sql)) < 0)
        goto done;
    MYSQL_ROW row = mysql_fetch_row(res);
    if (row && row[0] && !(*high = mbq_strdup(row[0])))
        rc = MBQ_ENOMEM;
done:
    if (res)
        mysql_free_result(res);
    mbq_buf_free(&sql);
    return rc;
}

static int build_select(mbq_buf *sql, mbq_mysql *c, const mbq_extract_options *o,
                        mbq_cursor_kind kind, const char *high, const char *const *pk, size_t n_pk,
                        bool order_by_cursor)
{
    const mbq_table_schema *s = o->schema;
    int rc = mbq_buf_puts(sql, "SELECT ");
    for (size_t i = 0; rc == 0 && i < s->n_columns; i++) {
        const mbq_column *col = &s->columns[i];
        if (i)
            rc = mbq_buf_puts(sql, ", ");
        /* FLOAT: the server prints 6 digits (lossy); as DOUBLE it gives
         * the exact binary value, which the encoder shortens again.
         * Spatial: the text protocol would send WKB with an SRID prefix. */
        if (rc == 0 && col->map.enc == MBQ_ENC_FLOAT)
            rc = mbq_buf_puts(sql, "CAST(");
        else if (rc == 0 && col->map.enc == MBQ_ENC_WKT)
            rc = mbq_buf_puts(sql, "ST_AsText(");
        if (rc == 0)
            rc = mbq_buf_quote_mysql_ident(sql, col->name);
        if (rc == 0 && col->map.enc == MBQ_ENC_FLOAT)
            rc = mbq_buf_puts(sql, " AS DOUBLE)");
        else if (rc == 0 && col->map.enc == MBQ_ENC_WKT)
            rc = mbq_buf_puts(sql, ")");
    }
    if (rc == 0)
        rc = mbq_buf_puts(sql, " FROM ");
    if (rc == 0)
        rc = put_table(sql, s);
    if (rc == 0 && o->cursor) {
        rc = mbq_buf_puts(sql, " WHERE ");
        if (rc == 0 && o->low) {
            if ((rc = mbq_buf_quote_mysql_ident(sql, o->cursor)) == 0 &&
                (rc = mbq_buf_puts(sql, " >= ")) == 0 &&
                (rc = put_bound(sql, c, kind, o->low, "low bound")) == 0 &&
                (rc = mbq_buf_puts(sql, " AND ")) == 0 &&
                (rc = mbq_buf_quote_mysql_ident(sql, o->cursor)) == 0 &&
                (rc = mbq_buf_puts(sql, " <= ")) == 0)
                rc = put_bound(sql, c, kind, high, "high-water mark");
        } else if (rc == 0) {
            /* The first extraction also takes rows whose cursor is NULL:
             * no later window would ever include them. */
            if ((rc = mbq_buf_puts(sql, "(")) == 0 &&
                (rc = mbq_buf_quote_mysql_ident(sql, o->cursor)) == 0 &&
                (rc = mbq_buf_puts(sql, " IS NULL OR ")) == 0 &&
                (rc = mbq_buf_quote_mysql_ident(sql, o->cursor)) == 0 &&
                (rc = mbq_buf_puts(sql, " <= ")) == 0 &&
                (rc = put_bound(sql, c, kind, high, "high-water mark")) == 0)
                rc = mbq_buf_puts(sql, ")");
        }
    }
    if (rc == 0 && o->where && (rc = mbq_buf_puts(sql, o->cursor ? " AND (" : " WHERE (")) == 0 &&
        (rc = mbq_buf_puts(sql, o->where)) == 0)
        rc = mbq_buf_puts(sql, ")");
    const char *sep = " ORDER BY ";
    if (rc == 0 && o->cursor && order_by_cursor) {
        if ((rc = mbq_buf_puts(sql, sep)) == 0)
            rc = mbq_buf_quote_mysql_ident(sql, o->cursor);
        sep = ", ";
    }
    for (size_t i = 0; rc == 0 && i < n_pk; i++) {
        if (o->cursor && order_by_cursor && strcasecmp(pk[i], o->cursor) == 0)
            continue;
        if ((rc = mbq_buf_puts(sql, sep)) == 0)
            rc = mbq_buf_quote_mysql_ident(sql, pk[i]);
        sep = ", ";
    }
    return rc;
}

/* The binlog position of the snapshot just started on `c`. MariaDB keeps
 * binlog_snapshot_file/_position per connection: inside a transaction
 * started WITH CONSISTENT SNAPSHOT they name the binlog position matching
 * exactly what the snapshot sees (MariaDB KB "Enhancements for START
 * TRANSACTION WITH CONSISTENT SNAPSHOT"), with no FLUSH TABLES WITH READ
 * LOCK. gtid_binlog_pos is read as well, for the journal (it is not tied to
 * the snapshot and used only for display). */
static int read_snapshot_pos(mbq_extract_result *out, mbq_mysql *c)
{
    MYSQL_RES *res = NULL;
    mbq_buf q = MBQ_BUF_INIT;
    int rc = mbq_buf_puts(&q, "SHOW SESSION STATUS WHERE Variable_name IN "
                              "('binlog_snapshot_file', 'binlog_snapshot_position')");
    if (rc == 0)
        rc = query_store(&res, c, &q);
    MYSQL_ROW row;
    while (rc == 0 && (row = mysql_fetch_row(res)) != NULL) {
        if (!row[0] || !row[1])
            continue;
        if (strcmp(row[0], "Binlog_snapshot_file") == 0 && !out->binlog_file &&
            !(out->binlog_file = mbq_strdup(row[1])))
            rc = MBQ_ENOMEM;
        else if (strcmp(row[0], "Binlog_snapshot_position") == 0)
            out->binlog_pos = strtoull(row[1], NULL, 10);
    }
    if (res)
        mysql_free_result(res);
    res = NULL;
    if (rc == 0 && (!out->binlog_file || !out->binlog_file[0]))
        rc = mbq_error_set(MBQ_ECONFIG, "the server reports no binlog snapshot position "
                                        "(binlog_snapshot_file is empty): is log_bin on?");
    mbq_buf_clear(&q);
    if (rc == 0 && (rc = mbq_buf_puts(&q, "SELECT @@GLOBAL.gtid_binlog_pos")) == 0) {
        if (query_store(&res, c, &q) == 0) {
            row = mysql_fetch_row(res);
            out->binlog_gtid = mbq_strdup(row && row[0] ? row[0] : "");
            if (!out->binlog_gtid)
                rc = MBQ_ENOMEM;
        } else {
            mbq_error_clear(); /* no such variable (MySQL): no GTID shown */
        }
    }
    if (res)
        mysql_free_result(res);
    mbq_buf_free(&q);
    return rc;
}

/* "k1=v1, k2=v2" for the row's key columns (values cut at 64 bytes), for
 * messages that name a row. */
static void row_key(mbq_buf *b, MYSQL_ROW row, const unsigned long *lens,
                    const mbq_table_schema *s, const char *const *pk, size_t n_pk)
{
    for (size_t k = 0; k < n_pk; k++) {
        const mbq_column *kc = mbq_table_schema_column(s, pk[k]);
        size_t ki = kc ? (size_t)(kc - s->columns) : 0;
        mbq_buf_printf(b, "%s%s=%.*s", k ? ", " : "", pk[k],
                       row[ki] ? (int)(lens[ki] > 64 ? 64 : lens[ki]) : 4,
                       row[ki] ? row[ki] : "NULL");
    }
}

/* Encode one row's fields as `{"key":value,...` (without the closing "}\n")
 * into `cur`: NULLs leave their key out, a zero date becomes NULL (counted
 * in *zero_dates), a JSON column's value that is not JSON is written as a
 * string (*not_json_col = its column). On error `cur` is cut back to where
 * the row started. The hot loop of every extract. */
static int encode_row(mbq_buf *cur, MYSQL_ROW row, const unsigned long *lens,
                      const mbq_table_schema *s, char *const *keys, const size_t *keylen,
                      uint64_t *zero_dates, int *not_json_col, const char *tname)
{
    size_t row_start = cur->len;
    int rc = mbq_buf_putc(cur, '{');
    if (rc < 0)
        return rc;
    bool first = true;
    for (size_t i = 0; i < s->n_columns; i++) {
        if (!row[i])
            continue; /* NULL: the key is left out */
        size_t mark = cur->len;
        /* ',"key":' with one capacity check (the hot loop). */
        if (cur->cap - cur->len < keylen[i] + 2 && (rc = mbq_buf_grow(cur, keylen[i] + 1)) < 0)
            return rc;
        if (!first)
            cur->ptr[cur->len++] = ',';
        memcpy(cur->ptr + cur->len, keys[i], keylen[i]);
        cur->len += keylen[i];
        cur->ptr[cur->len] = '\0';
        rc = mbq_typemap_encode(cur, s->columns[i].map.enc, row[i], lens[i]);
        if (rc == 1) {
            cur->len = mark; /* zero date -> NULL */
            cur->ptr[mark] = '\0';
            (*zero_dates)++;
            continue;
        }
        if (rc == 2) {
            *not_json_col = (int)i;
            rc = 0;
        }
        if (rc < 0) {
            mbq_error_wrap(rc, "table '%s', column '%s': ", tname, s->columns[i].name);
            cur->len = row_start;
            cur->ptr[row_start] = '\0';
            return rc;
        }
        first = false;
    }
    return 0;
}

/* The tail of a full (unordered) extract, in the same snapshot: the rows the
 * next run's first window [tail_from, high] will read, read the way it will
 * read them (ORDER BY cursor, key) and hashed line by line, so that an
 * unchanged table is recognised then. A tail of more than TAIL_MAX_ROWS rows
 * (a bulk load sharing one timestamp) is not worth a second pass: no tail
 * checksum, and the next run merges that window once. */
#define TAIL_MAX_ROWS 100000

static int full_extract_tail(mbq_extract_result *out, mbq_mysql *c, const mbq_extract_options *o,
                             mbq_cursor_kind kind, const char *high, const char *const *pk,
                             size_t n_pk, char *const *keys, const size_t *keylen,
                             const char *tname)
{
    int rc;
    mbq_buf sql = MBQ_BUF_INIT, line = MBQ_BUF_INIT;
    MYSQL_RES *res = NULL;
    EVP_MD_CTX *sha = NULL;
    mbq_extract_options to = *o;
    to.low = out->tail_from;
    uint64_t zero = 0, n = 0;

    if ((rc = mbq_buf_puts(&sql, "SELECT COUNT(*) FROM ")) < 0 ||
        (rc = put_table(&sql, o->schema)) < 0 || (rc = mbq_buf_puts(&sql, " WHERE ")) < 0 ||
        (rc = mbq_buf_quote_mysql_ident(&sql, o->cursor)) < 0 ||
        (rc = mbq_buf_puts(&sql, " >= ")) < 0 ||
        (rc = put_bound(&sql, c, kind, out->tail_from, "tail bound")) < 0 ||
        (rc = query_store(&res, c, &sql)) < 0)
        goto done;
    MYSQL_ROW row = mysql_fetch_row(res);
    uint64_t count = row && row[0] ? strtoull(row[0], NULL, 10) : 0;
    mysql_free_result(res);
    res = NULL;
    if (count > TAIL_MAX_ROWS) {
        mbq_log(MBQ_LOG_DEBUG, tname, "extract",
                "%llu rows share the last window: no tail checksum (the next run merges them)",
                (unsigned long long)count);
        goto done;
    }
    mbq_buf_clear(&sql);
    if ((rc = build_select(&sql, c, &to, kind, high, pk, n_pk, true)) < 0)
        goto done;
    if (mysql_real_query(c->my, sql.ptr, sql.len) != 0 || !(res = mysql_use_result(c->my))) {
        rc = my_error(c, "tail query failed");
        goto done;
    }
    if (!(sha = EVP_MD_CTX_new()) || EVP_DigestInit_ex(sha, EVP_sha256(), NULL) != 1) {
        rc = mbq_error_set(MBQ_ENOMEM, "cannot start sha-256");
        goto done;
    }
    while ((row = mysql_fetch_row(res))) {
        mbq_buf_clear(&line);
        int not_json_col = -1; /* counted by the main pass */
        if ((rc = encode_row(&line, row, mysql_fetch_lengths(res), o->schema, keys, keylen, &zero,
                             &not_json_col, tname)) < 0 ||
            (rc = mbq_buf_append(&line, "}\n", 2)) < 0)
            goto done;
        if (EVP_DigestUpdate(sha, line.ptr, line.len) != 1) {
            rc = mbq_error_set(MBQ_EINTERNAL, "sha-256 update failed");
            goto done;
        }
        n++;
    }
    if (mysql_errno(c->my)) {
        rc = my_error(c, "tail query failed");
        goto done;
    }
    if ((rc = mbq_sha256_hex(&out->tail_checksum, sha)) == 0)
        out->tail_rows = n;
done:
    if (rc < 0)
        mbq_error_wrap(rc, "table '%s': ", tname);
    if (res)
        mysql_free_result(res);
    if (sha)
        EVP_MD_CTX_free(sha);
    mbq_buf_free(&sql);
    mbq_buf_free(&line);
    return rc;
}

/* Compare a cursor value as the server sent it (`a`, `alen` bytes) with
 * `b`, in the cursor's order: integers by value, timestamps as
 * 'YYYY-MM-DD HH:MM:SS.ffffff' with missing parts read as zeros (the server
 * prints DATE and DATETIME(0..5) shorter). Returns <0, 0, >0. */
static int cursor_cmp(mbq_cursor_kind kind, const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    if (kind == MBQ_CURSOR_INTEGER) {
        bool an = alen && a[0] == '-', bn = blen && b[0] == '-';
        if (an != bn)
            return an ? -1 : 1;
        int sign = an ? -1 : 1;
        a += an, alen -= an, b += bn, blen -= bn;
        while (alen > 1 && *a == '0')
            a++, alen--;
        while (blen > 1 && *b == '0')
            b++, blen--;
        if (alen != blen)
            return sign * (alen < blen ? -1 : 1);
        int c = memcmp(a, b, alen);
        return sign * (c < 0 ? -1 : c > 0);
    }
    static const char zero[] = "0000-00-00 00:00:00.000000";
    for (size_t i = 0; i < sizeof zero - 1; i++) {
        char ca = i < alen ? a[i] : (i == 10 ? ' ' : i == 19 ? '.' : zero[i]);
        char cb = i < blen ? b[i] : (i == 10 ? ' ' : i == 19 ? '.' : zero[i]);
        if (ca != cb)
            return (unsigned char)ca < (unsigned char)cb ? -1 : 1;
    }
    return 0;
}

int mbq_mysql_extract(mbq_extract_result *out, mbq_mysql *c, const mbq_extract_options *o)
{
    int rc = 0;
    int64_t t0 = mbq_monotonic_ms();
    const mbq_table_schema *s = o ? o->schema : NULL;
    mbq_buf sql = MBQ_BUF_INIT, tmp = MBQ_BUF_INIT;
    char **keys = NULL;
    size_t *keylen = NULL;
    const char *const *pk = NULL;
    const char **pk_names = NULL;
    size_t n_pk = 0;
    MYSQL_RES *res = NULL;
    bool in_tx = false, have_writer = false;
    int fd = -1;
    writer w;
    char *high = NULL;
    EVP_MD_CTX *tail_sha = NULL;
    uint64_t handed_bytes = 0;
    bool in_tail = false;
    mbq_cursor_kind kind = MBQ_CURSOR_NONE;
    size_t cursor_idx = 0;

    memset(out, 0, sizeof *out);
    if (!s || !o->path || !*o->path)
        return mbq_error_set(MBQ_ECONFIG, "extract: a schema and an output path are required");
    const char *tname = o->log_table ? o->log_table : s->table;

    /* Key order for ORDER BY: the given names, else the table's PRIMARY KEY. */
    if (o->pk && o->n_pk) {
        pk = o->pk;
        n_pk = o->n_pk;
    } else if (s->n_pk) {
        if (!(pk_names = mbq_calloc(s->n_pk, sizeof *pk_names)))
            return MBQ_ENOMEM;
        for (size_t i = 0; i < s->n_pk; i++)
            pk_names[i] = s->columns[s->pk[i]].name;
        pk = pk_names;
        n_pk = s->n_pk;
    }
    for (size_t i = 0; i < n_pk; i++)
        if (!mbq_table_schema_column(s, pk[i])) {
            rc = mbq_error_set(MBQ_ESCHEMA, "table '%s.%s': primary key column '%s' does not exist",
                               s->database, s->table, pk[i]);
            goto done;
        }
    if (o->cursor) {
        const mbq_column *col = mbq_table_schema_column(s, o->cursor);
        if (!col) {
            rc = mbq_error_set(MBQ_ESCHEMA, "table '%s.%s': cursor column '%s' does not exist",
                               s->database, s->table, o->cursor);
            goto done;
        }
        cursor_idx = (size_t)(col - s->columns);
        kind = o->cursor_kind != MBQ_CURSOR_NONE ? o->cursor_kind : mbq_cursor_kind_of(col);
        if (kind == MBQ_CURSOR_NONE) {
            rc = mbq_error_set(MBQ_ESCHEMA, "table '%s.%s': cursor column '%s' of type '%s' "
                                            "cannot be a cursor",
                               s->database, s->table, o->cursor, col->column_type);
            goto done;
        }
    }

    /* "key": prefixes, JSON-escaped once. */
    if (!(keys = mbq_calloc(s->n_columns, sizeof *keys)) ||
        !(keylen = mbq_calloc(s->n_columns, sizeof *keylen))) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < s->n_columns; i++) {
        mbq_buf_clear(&tmp);
        const char *bq = s->columns[i].bq_name ? s->columns[i].bq_name : s->columns[i].name;
        if ((rc = mbq_buf_json_string(&tmp, bq, strlen(bq))) < 0 ||
            (rc = mbq_buf_putc(&tmp, ':')) < 0)
            goto done;
        keylen[i] = tmp.len;
        if (!(keys[i] = mbq_buf_detach(&tmp))) {
            rc = MBQ_ENOMEM;
            goto done;
        }
    }

    /* The snapshot: every read below sees one consistent state. The high-
     * water mark is read inside it, so rows committed after it are neither
     * counted in MAX nor streamed. */
    if ((rc = mbq_mysql_exec(c, "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")) < 0) {
        mbq_error_wrap(rc, "table '%s': cannot start the snapshot: ", tname);
        goto done;
    }
    in_tx = true;
    if (o->want_binlog_pos && (rc = read_snapshot_pos(out, c)) < 0) {
        mbq_error_wrap(rc, "table '%s': cannot read the snapshot's binlog position: ", tname);
        goto done;
    }
    if (o->cursor) {
        if ((rc = read_high(&high, c, o, kind)) < 0) {
            mbq_error_wrap(rc, "table '%s': cannot read the high-water mark: ", tname);
            goto done;
        }
        if (!high)
            goto finish; /* nothing in the window: no file */
    }
    /* A first or full extraction (no low bound) reads in key order: a scan
     * of the clustered index, where cursor order would make the server sort
     * the whole table (a filesort of every row in its tmpdir). Its tail
     * checksum then comes from a second, small query (full_extract_tail). */
    bool full_scan = o->cursor && !o->low;
    if (o->want_tail && high) {
        rc = mbq_cursor_minus(&out->tail_from, kind == MBQ_CURSOR_TIMESTAMP ? "timestamp" : "integer",
                              high, kind == MBQ_CURSOR_TIMESTAMP ? o->tail_lookback_ms : 0);
        if (rc < 0 || (!full_scan && (!(tail_sha = EVP_MD_CTX_new()) ||
                                      EVP_DigestInit_ex(tail_sha, EVP_sha256(), NULL) != 1))) {
            rc = rc < 0 ? rc : mbq_error_set(MBQ_ENOMEM, "cannot start sha-256");
            goto done;
        }
    }
    if ((rc = build_select(&sql, c, o, kind, high, pk, n_pk, !full_scan)) < 0)
        goto done;
    mbq_log(MBQ_LOG_DEBUG, tname, "extract", "query: %s", mbq_buf_cstr(&sql));

    mbq_buf_clear(&tmp);
    if ((rc = mbq_buf_printf(&tmp, "%s.tmp", o->path)) < 0)
        goto done;
    fd = open(tmp.ptr, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = mbq_error_set(MBQ_EIO, "cannot create '%s': %s", tmp.ptr, strerror(errno));
        goto done;
    }
    have_writer = true;
    if ((rc = writer_start(&w, fd, tmp.ptr, o->compress,
                           o->compress_level > 0 && o->compress_level <= 9 ? o->compress_level
                                                                          : 1,
                           o)) < 0)
        goto done;

    if (mysql_real_query(c->my, sql.ptr, sql.len) != 0) {
        rc = my_error(c, "extract query failed");
        mbq_error_wrap(rc, "table '%s': ", tname);
        goto done;
    }
    if (!(res = mysql_use_result(c->my))) {
        rc = my_error(c, "extract query failed");
        mbq_error_wrap(rc, "table '%s': ", tname);
        goto done;
    }
    if (mysql_num_fields(res) != s->n_columns) {
        rc = mbq_error_set(MBQ_EINTERNAL, "table '%s': the query returned %u columns, expected %zu",
                           tname, mysql_num_fields(res), s->n_columns);
        goto done;
    }

    size_t chunk = o->chunk_bytes ? o->chunk_bytes : 1024 * 1024;
    size_t max_row = o->max_row_bytes ? o->max_row_bytes : (size_t)100 * 1000 * 1000;
    bool faults = mbq_fault_enabled();
    mbq_buf *cur = writer_get(&w);
    if (!cur) {
        rc = writer_finish(&w);
        goto done;
    }
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res))) {
        unsigned long *lens = mysql_fetch_lengths(res);
        size_t row_start = cur->len;
        int not_json_col = -1;
        if ((rc = encode_row(cur, row, lens, s, keys, keylen, &out->zero_dates, &not_json_col,
                             tname)) < 0)
            goto done;
        if ((rc = mbq_buf_append(cur, "}\n", 2)) < 0)
            goto done;
        if (not_json_col >= 0 && out->not_json++ == 0) {
            mbq_buf where = MBQ_BUF_INIT;
            mbq_buf_printf(&where, "column '%s' of the row with ", s->columns[not_json_col].name);
            row_key(&where, row, lens, s, pk, n_pk);
            out->not_json_first = mbq_buf_detach(&where);
            mbq_buf_free(&where);
        }
        if (cur->len - row_start > max_row) {
            mbq_buf key = MBQ_BUF_INIT;
            row_key(&key, row, lens, s, pk, n_pk);
            rc = mbq_error_set(MBQ_EDATA,
                               "table '%s': the row with %s is %zu bytes as JSON, over "
                               "BigQuery's limit of %zu bytes for a row in a load job",
                               tname, mbq_buf_cstr(&key), cur->len - row_start, max_row);
            mbq_buf_free(&key);
            goto done;
        }
        /* Rows come in cursor order, NULL cursors first: once one row is in
         * the tail, every later row is. */
        if (tail_sha && !in_tail && row[cursor_idx] &&
            cursor_cmp(kind, row[cursor_idx], lens[cursor_idx], out->tail_from) >= 0)
            in_tail = true;
        if (in_tail) {
            if (EVP_DigestUpdate(tail_sha, cur->ptr + row_start, cur->len - row_start) != 1) {
                rc = mbq_error_set(MBQ_EINTERNAL, "sha-256 update failed");
                goto done;
            }
            out->tail_rows++;
        }
        /* low: the smallest cursor value extracted (rows come in cursor
         * order unless this is a full scan). */
        if (o->cursor && row[cursor_idx] &&
            (!out->low ||
             (full_scan && cursor_cmp(kind, row[cursor_idx], lens[cursor_idx], out->low) < 0))) {
            free(out->low);
            if (!(out->low = mbq_strndup(row[cursor_idx], lens[cursor_idx]))) {
                rc = MBQ_ENOMEM;
                goto done;
            }
        }
        out->rows++;
        if (cur->len >= chunk) {
            handed_bytes += cur->len;
            writer_submit(&w, cur);
            if (o->progress)
                o->progress(o->progress_ud, out->rows, handed_bytes);
            if (faults)
                mbq_fault_point("extract.mid");
            if (!(cur = writer_get(&w))) {
                rc = writer_finish(&w);
                goto done;
            }
        }
    }
    /* NULL from mysql_fetch_row is the end or an error (connection killed,
     * server gone, net timeout): only errno tells them apart. */
    if (mysql_errno(c->my)) {
        rc = my_error(c, "extract stream failed");
        mbq_error_wrap(rc, "table '%s' after %llu rows: ", tname, (unsigned long long)out->rows);
        goto done;
    }
    writer_submit(&w, cur);
    mysql_free_result(res);
    res = NULL;
    if ((rc = writer_finish(&w)) < 0)
        goto done;
    if (full_scan && out->tail_from && out->rows > 0 &&
        (rc = full_extract_tail(out, c, o, kind, high, pk, n_pk, keys, keylen, tname)) < 0)
        goto done;

finish:
    in_tx = false;
    if ((rc = mbq_mysql_exec(c, "COMMIT")) < 0) {
        mbq_error_wrap(rc, "table '%s': ", tname);
        goto done;
    }
    if (fd >= 0 && out->rows == 0) {
        /* No rows (a full extract of an empty table): no file, as with an
         * empty cursor window. */
        close(fd);
        fd = -1;
        unlink(tmp.ptr);
    } else if (fd >= 0) {
        if (fsync(fd) != 0) {
            rc = mbq_error_set(MBQ_EIO, "cannot fsync '%s': %s", tmp.ptr, strerror(errno));
            goto done;
        }
        int cr = close(fd);
        fd = -1;
        if (cr != 0) {
            rc = mbq_error_set(MBQ_EIO, "cannot close '%s': %s", tmp.ptr, strerror(errno));
            goto done;
        }
        if ((rc = mbq_sha256_hex(&out->checksum, w.sha)) < 0)
            goto done;
        if (tail_sha && (rc = mbq_sha256_hex(&out->tail_checksum, tail_sha)) < 0)
            goto done;
        mbq_fault_point("extract.before_rename");
        if (rename(tmp.ptr, o->path) != 0) {
            rc = mbq_error_set(MBQ_EIO, "cannot rename '%s' to '%s': %s", tmp.ptr, o->path,
                               strerror(errno));
            goto done;
        }
        out->file_written = true;
        if ((rc = mbq_fsync_parent_dir(o->path)) < 0)
            goto done;
        out->bytes = w.file_bytes;
        out->raw_bytes = w.raw_bytes;
        out->high = high;
        high = NULL;
    }
    if (out->rows == 0) {
        free(out->low);
        out->low = NULL;
    }
    if (out->zero_dates)
        mbq_log(MBQ_LOG_WARN, tname, "extract",
                "%llu zero dates (year, month or day 0) have no BigQuery value and were "
                "written as NULL",
                (unsigned long long)out->zero_dates);
    if (out->not_json)
        mbq_log(MBQ_LOG_WARN, tname, "extract",
                "%llu values of JSON columns are not JSON documents and were written as JSON "
                "strings holding their text (the first: %s)",
                (unsigned long long)out->not_json,
                out->not_json_first ? out->not_json_first : "?");

done:
    if (res)
        mysql_free_result(res); /* for use_result this drains what is left */
    if (have_writer)
        writer_free(&w);
    if (rc < 0) {
        if (in_tx) {
            /* Best effort: after a lost connection there is nothing to end. */
            if (mysql_real_query(c->my, "ROLLBACK", 8) != 0)
                mbq_log_debug("rollback after a failed extract failed: %s", mysql_error(c->my));
        }
        if (fd >= 0)
            close(fd);
        if (tmp.ptr && tmp.len)
            unlink(tmp.ptr);
        if (out->file_written)
            unlink(o->path);
        mbq_extract_result_free(out);
    }
    out->elapsed_ms = mbq_monotonic_ms() - t0;
    if (keys)
        for (size_t i = 0; i < s->n_columns; i++)
            free(keys[i]);
    free(keys);
    free(keylen);
    free(pk_names);
    free(high);
    if (tail_sha)
        EVP_MD_CTX_free(tail_sha);
    mbq_buf_free(&sql);
    mbq_buf_free(&tmp);
    return rc;
}
