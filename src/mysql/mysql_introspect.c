/* The MySQL/MariaDB source's schema introspection (see
 * mbq/mysql_source.h and mysql_source.c): a table's columns from
 * information_schema (types, ENUM/SET members, JSON columns), the cursor
 * kind of a column, whether a key is unique, and the check that a table
 * can be synced with its configured cursor. */
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

/* ---- introspection ----------------------------------------------------- */

/* Append `s` as a quoted, escaped MySQL string literal. */
int put_literal(mbq_buf *b, mbq_mysql *c, const char *s)
{
    size_t n = strlen(s);
    if (mbq_buf_grow(b, 2 * n + 3) < 0)
        return MBQ_ENOMEM;
    b->ptr[b->len++] = '\'';
    b->len += mysql_real_escape_string(c->my, b->ptr + b->len, s, (unsigned long)n);
    b->ptr[b->len++] = '\'';
    b->ptr[b->len] = '\0';
    return 0;
}

int query_store(MYSQL_RES **res, mbq_mysql *c, const mbq_buf *sql)
{
    *res = NULL;
    if (mysql_real_query(c->my, sql->ptr, sql->len) != 0)
        return my_error(c, "query failed");
    if (!(*res = mysql_store_result(c->my)))
        return my_error(c, "cannot read query result");
    return 0;
}

static char *dup_or_null(const char *s)
{
    return s ? mbq_strdup(s) : NULL;
}

static int to_int(const char *s, int dflt)
{
    return s ? atoi(s) : dflt;
}

/* ENUM('a','b''c') / SET(...) members, as COLUMN_TYPE prints them ('' for a
 * quote inside a member). */
static int parse_members(mbq_column *col)
{
    const char *p = strchr(col->column_type, '(');
    mbq_buf m = MBQ_BUF_INIT;
    int rc = 0;
    if (!p)
        return 0;
    p++;
    while (*p == '\'') {
        p++;
        mbq_buf_clear(&m);
        for (; *p; p++) {
            if (*p == '\'' && p[1] == '\'') {
                rc = mbq_buf_putc(&m, '\'');
                p++;
            } else if (*p == '\'') {
                break;
            } else {
                rc = mbq_buf_putc(&m, *p);
            }
            if (rc < 0)
                goto done;
        }
        if (*p != '\'')
            break;
        p++;
        char **v = mbq_realloc(col->values, (col->n_values + 1) * sizeof *v);
        if (!v) {
            rc = MBQ_ENOMEM;
            goto done;
        }
        col->values = v;
        if (!(v[col->n_values] = mbq_strdup(mbq_buf_cstr(&m)))) {
            rc = MBQ_ENOMEM;
            goto done;
        }
        col->n_values++;
        if (*p == ',')
            p++;
    }
done:
    mbq_buf_free(&m);
    return rc;
}

static void column_free(mbq_column *col)
{
    free(col->name);
    free(col->bq_name);
    free(col->data_type);
    free(col->column_type);
    free(col->charset);
    free(col->default_value);
    for (size_t i = 0; i < col->n_values; i++)
        free(col->values[i]);
    free(col->values);
}

void mbq_table_schema_free(mbq_table_schema *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_columns; i++)
        column_free(&s->columns[i]);
    free(s->columns);
    free(s->pk);
    free(s->database);
    free(s->table);
    free(s);
}

const mbq_column *mbq_table_schema_column(const mbq_table_schema *s, const char *name)
{
    for (size_t i = 0; i < s->n_columns; i++)
        if (strcasecmp(s->columns[i].name, name) == 0)
            return &s->columns[i];
    return NULL;
}

/* MariaDB's JSON is LONGTEXT with CHECK (json_valid(`col`)): find those. */
static int mark_json_columns(mbq_table_schema *s, mbq_mysql *c, const mbq_buf *where)
{
    mbq_buf sql = MBQ_BUF_INIT, name = MBQ_BUF_INIT;
    MYSQL_RES *res = NULL;
    int rc = mbq_buf_printf(&sql, "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
                                  "WHERE CONSTRAINT_SCHEMA = %s",
                            mbq_buf_cstr(where));
    if (rc < 0)
        goto done;
    if (mysql_real_query(c->my, sql.ptr, sql.len) != 0) {
        /* MySQL 8 has no TABLE_NAME here, but it has a real JSON type. */
        if (mysql_errno(c->my) == ER_BAD_FIELD_ERROR || mysql_errno(c->my) == ER_UNKNOWN_TABLE)
            goto done;
        rc = my_error(c, "cannot read check constraints");
        goto done;
    }
    if (!(res = mysql_store_result(c->my))) {
        rc = my_error(c, "cannot read check constraints");
        goto done;
    }
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res))) {
        const char *p = row[0];
        if (!p || strncasecmp(p, "json_valid(`", 12) != 0)
            continue;
        p += 12;
        mbq_buf_clear(&name);
        for (; *p; p++) {
            if (p[0] == '`' && p[1] == '`')
                p++;
            else if (p[0] == '`')
                break;
            if ((rc = mbq_buf_putc(&name, *p)) < 0)
                goto done;
        }
        if (strcmp(p, "`)") != 0)
            continue;
        for (size_t i = 0; i < s->n_columns; i++)
            if (strcasecmp(s->columns[i].name, mbq_buf_cstr(&name)) == 0)
                s->columns[i].is_json = true;
    }
done:
    if (res)
        mysql_free_result(res);
    mbq_buf_free(&sql);
    mbq_buf_free(&name);
    return rc;
}

int mbq_mysql_table_schema(mbq_table_schema **out, mbq_mysql *c, const char *database,
                           const char *table)
{
    mbq_table_schema *s = mbq_calloc(1, sizeof *s);
    mbq_buf sql = MBQ_BUF_INIT, where = MBQ_BUF_INIT;
    MYSQL_RES *res = NULL;
    char **names = NULL, **bq = NULL;
    int rc = 0;
    *out = NULL;
    if (!s)
        return MBQ_ENOMEM;
    if (!(s->database = mbq_strdup(database)) || !(s->table = mbq_strdup(table))) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    /* TABLE_SCHEMA = '<db>' AND TABLE_NAME = '<t>', reused by each query. */
    if ((rc = put_literal(&where, c, database)) < 0)
        goto done;
    if ((rc = mbq_buf_puts(&sql, "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, "
                                 "COLUMN_DEFAULT, CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, "
                                 "NUMERIC_SCALE, DATETIME_PRECISION, CHARACTER_SET_NAME "
                                 "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ")) < 0 ||
        (rc = mbq_buf_puts(&sql, mbq_buf_cstr(&where))) < 0 ||
        (rc = mbq_buf_puts(&sql, " AND TABLE_NAME = ")) < 0 ||
        (rc = put_literal(&sql, c, table)) < 0 ||
        (rc = mbq_buf_puts(&sql, " ORDER BY ORDINAL_POSITION")) < 0)
        goto done;
    if ((rc = query_store(&res, c, &sql)) < 0)
        goto done;
    my_ulonglong n = mysql_num_rows(res);
    if (n == 0) {
        rc = mbq_error_set(MBQ_ENOTFOUND,
                           "table '%s.%s' does not exist (or user '%s' cannot see it) on MySQL at %s",
                           database, table, c->user, c->where);
        goto done;
    }
    if (!(s->columns = mbq_calloc((size_t)n, sizeof *s->columns))) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res))) {
        mbq_column *col = &s->columns[s->n_columns++];
        col->name = dup_or_null(row[0]);
        col->data_type = dup_or_null(row[1] ? row[1] : "");
        col->column_type = dup_or_null(row[2] ? row[2] : "");
        col->charset = dup_or_null(row[9]);
        col->default_value = dup_or_null(row[4]);
        if (!col->name || !col->data_type || !col->column_type || (row[9] && !col->charset) ||
            (row[4] && !col->default_value)) {
            rc = MBQ_ENOMEM;
            goto done;
        }
        for (char *p = col->data_type; *p; p++)
            *p = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
        col->nullable = row[3] && strcmp(row[3], "YES") == 0;
        /* MariaDB prints a NULL default as the text NULL (literals quoted). */
        col->has_default = row[4] && strcmp(row[4], "NULL") != 0;
        col->max_length = row[5] ? strtoll(row[5], NULL, 10) : -1;
        col->precision = to_int(row[6], -1);
        col->scale = to_int(row[7], -1);
        col->datetime_precision = to_int(row[8], -1);
        col->is_unsigned = strstr(col->column_type, "unsigned") != NULL;
        if (strcmp(col->data_type, "enum") == 0 || strcmp(col->data_type, "set") == 0)
            if ((rc = parse_members(col)) < 0)
                goto done;
        if (strcmp(col->data_type, "json") == 0)
            col->is_json = true;
    }
    mysql_free_result(res);
    res = NULL;

    /* The PRIMARY KEY, in key order. */
    mbq_buf_clear(&sql);
    if ((rc = mbq_buf_puts(&sql, "SELECT COLUMN_NAME FROM information_schema.STATISTICS "
                                 "WHERE INDEX_NAME = 'PRIMARY' AND TABLE_SCHEMA = ")) < 0 ||
        (rc = mbq_buf_puts(&sql, mbq_buf_cstr(&where))) < 0 ||
        (rc = mbq_buf_puts(&sql, " AND TABLE_NAME = ")) < 0 ||
        (rc = put_literal(&sql, c, table)) < 0 ||
        (rc = mbq_buf_puts(&sql, " ORDER BY SEQ_IN_INDEX")) < 0)
        goto done;
    if ((rc = query_store(&res, c, &sql)) < 0)
        goto done;
    if (!(s->pk = mbq_calloc((size_t)mysql_num_rows(res) + 1, sizeof *s->pk))) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    while ((row = mysql_fetch_row(res))) {
        for (size_t i = 0; row[0] && i < s->n_columns; i++)
            if (strcasecmp(s->columns[i].name, row[0]) == 0) {
                s->columns[i].pk_ordinal = (unsigned)s->n_pk + 1;
                s->pk[s->n_pk++] = i;
                break;
            }
    }
    mysql_free_result(res);
    res = NULL;

    /* JSON columns, restricted to this table. */
    mbq_buf_clear(&sql);
    if ((rc = mbq_buf_puts(&sql, mbq_buf_cstr(&where))) < 0 ||
        (rc = mbq_buf_puts(&sql, " AND TABLE_NAME = ")) < 0 ||
        (rc = put_literal(&sql, c, table)) < 0)
        goto done;
    if ((rc = mark_json_columns(s, c, &sql)) < 0)
        goto done;

    /* Types and BigQuery names. */
    if (!(names = mbq_calloc(s->n_columns, sizeof *names))) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < s->n_columns; i++) {
        mbq_column *col = &s->columns[i];
        mbq_mysql_type t = {col->data_type, col->column_type, col->precision, col->scale,
                            col->is_json};
        if ((rc = mbq_typemap_column(&col->map, &t)) < 0) {
            mbq_error_wrap(rc, "table '%s.%s', column '%s': ", database, table, col->name);
            goto done;
        }
        names[i] = col->name;
    }
    if ((rc = mbq_typemap_bq_column_names(&bq, (const char *const *)names, s->n_columns)) < 0) {
        mbq_error_wrap(rc, "table '%s.%s': ", database, table);
        goto done;
    }
    for (size_t i = 0; i < s->n_columns; i++)
        s->columns[i].bq_name = bq[i];
    free(bq);
    *out = s;
    s = NULL;
done:
    if (res)
        mysql_free_result(res);
    free(names);
    mbq_buf_free(&sql);
    mbq_buf_free(&where);
    mbq_table_schema_free(s);
    return rc;
}

mbq_cursor_kind mbq_cursor_kind_of(const mbq_column *col)
{
    static const char *const ts[] = {"date", "datetime", "timestamp", NULL};
    static const char *const ints[] = {"tinyint", "smallint", "mediumint", "int",
                                       "integer", "bigint", NULL};
    for (size_t i = 0; ts[i]; i++)
        if (strcmp(col->data_type, ts[i]) == 0)
            return MBQ_CURSOR_TIMESTAMP;
    for (size_t i = 0; ints[i]; i++)
        if (strcmp(col->data_type, ints[i]) == 0)
            return MBQ_CURSOR_INTEGER;
    return MBQ_CURSOR_NONE;
}

int mbq_mysql_key_is_unique(bool *out, mbq_mysql *c, const mbq_table_schema *s,
                            const char *const *key, size_t n_key)
{
    int rc = 0;
    MYSQL_RES *res = NULL;
    mbq_buf sql = MBQ_BUF_INIT;
    *out = false;
    /* A UNIQUE index admits many NULLs: every key column must be NOT NULL. */
    for (size_t i = 0; i < n_key; i++) {
        const mbq_column *col = mbq_table_schema_column(s, key[i]);
        if (!col || col->nullable)
            return 0;
    }
    /* An index that is unique and made of exactly the key's columns (in any
     * order: uniqueness does not depend on it). */
    rc = mbq_buf_puts(&sql, "SELECT INDEX_NAME FROM information_schema.STATISTICS WHERE "
                            "TABLE_SCHEMA = ");
    if (rc == 0)
        rc = put_literal(&sql, c, s->database);
    if (rc == 0)
        rc = mbq_buf_puts(&sql, " AND TABLE_NAME = ");
    if (rc == 0)
        rc = put_literal(&sql, c, s->table);
    if (rc == 0)
        rc = mbq_buf_printf(&sql, " AND NON_UNIQUE = 0 GROUP BY INDEX_NAME HAVING COUNT(*) = %zu "
                                  "AND SUM(COLUMN_NAME IN (", n_key);
    for (size_t i = 0; rc == 0 && i < n_key; i++) {
        const mbq_column *col = mbq_table_schema_column(s, key[i]);
        if (i)
            rc = mbq_buf_putc(&sql, ',');
        if (rc == 0)
            rc = put_literal(&sql, c, col ? col->name : key[i]);
    }
    if (rc == 0)
        rc = mbq_buf_printf(&sql, ")) = %zu", n_key);
    if (rc == 0 && (rc = query_store(&res, c, &sql)) == 0)
        *out = mysql_num_rows(res) > 0;
    if (res)
        mysql_free_result(res);
    mbq_buf_free(&sql);
    return rc;
}

int mbq_mysql_check_table(mbq_cursor_kind *kind_out, const mbq_table_schema *s,
                          const char *const *pk, size_t n_pk, const char *cursor)
{
    if (kind_out)
        *kind_out = MBQ_CURSOR_NONE;
    if (n_pk == 0)
        return mbq_error_set(MBQ_ESCHEMA, "table '%s.%s': no primary key configured",
                             s->database, s->table);
    bool same = n_pk == s->n_pk;
    for (size_t i = 0; i < n_pk; i++) {
        const mbq_column *col = mbq_table_schema_column(s, pk[i]);
        if (!col)
            return mbq_error_set(MBQ_ESCHEMA,
                                 "table '%s.%s': primary key column '%s' does not exist",
                                 s->database, s->table, pk[i]);
        if (col->pk_ordinal != i + 1)
            same = false;
    }
    if (!same)
        mbq_log(MBQ_LOG_WARN, s->table, "schema-check",
                "table '%s.%s': the configured primary key differs from the table's %s; "
                "mbq relies on the configured columns being unique and does not check it",
                s->database, s->table, s->n_pk ? "PRIMARY KEY" : "(absent) PRIMARY KEY");
    if (cursor) {
        const mbq_column *col = mbq_table_schema_column(s, cursor);
        if (!col)
            return mbq_error_set(MBQ_ESCHEMA, "table '%s.%s': cursor column '%s' does not exist",
                                 s->database, s->table, cursor);
        mbq_cursor_kind k = mbq_cursor_kind_of(col);
        if (k == MBQ_CURSOR_NONE)
            return mbq_error_set(MBQ_ESCHEMA,
                                 "table '%s.%s': cursor column '%s' has type '%s'; a cursor must "
                                 "be DATETIME, TIMESTAMP, DATE or an integer",
                                 s->database, s->table, cursor, col->column_type);
        if (kind_out)
            *kind_out = k;
    }
    return 0;
}
