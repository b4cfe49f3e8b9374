/* The MySQL/MariaDB source (see mbq/mysql_source.h): connection, schema
 * introspection from information_schema, and the streaming extraction.
 *
 * Extraction pipeline (two threads, bounded memory):
 *
 *   server --text protocol, mysql_use_result--> main thread: encode rows into
 *   1 MiB chunks --queue of 4 chunks--> writer thread: SHA-256, deflate,
 *   write(<path>.tmp) with write-behind ... fsync, rename(<path>), fsync(dir)
 *
 * The main thread never holds more than one row from the server (use_result)
 * plus the chunk it fills; the queue holds at most four chunks, so peak
 * memory does not depend on the table's size. */
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
#include "mbq/banned.h"

struct mbq_mysql {
    MYSQL *my;
    char *where; /* host:port or socket */
    char *user;
};

const char *mbq_mysql_where(const mbq_mysql *c)
{
    return c->where;
}

void mbq_mysql_thread_end(void)
{
    mysql_thread_end();
}

unsigned long mbq_mysql_thread_id(const mbq_mysql *c)
{
    return mysql_thread_id(c->my);
}

/* The mbq error code for a libmariadb/server error number. */
static int code_for_errno(unsigned e)
{
    switch (e) {
    case ER_ACCESS_DENIED_ERROR:
    case ER_DBACCESS_DENIED_ERROR:
    case ER_TABLEACCESS_DENIED_ERROR:
    case ER_COLUMNACCESS_DENIED_ERROR:
    case 1698: /* ER_ACCESS_DENIED_NO_PASSWORD_ERROR */
        return MBQ_EAUTH;
    case CR_CONNECTION_ERROR:
    case CR_CONN_HOST_ERROR:
    case CR_UNKNOWN_HOST:
    case CR_SERVER_GONE_ERROR:
    case CR_SERVER_LOST:
    case CR_SSL_CONNECTION_ERROR:
    case ER_CONNECTION_KILLED:
    case ER_SERVER_SHUTDOWN:
    case ER_NET_READ_ERROR:
    case ER_NET_READ_INTERRUPTED:
    case ER_NET_WRITE_INTERRUPTED:
        return MBQ_ENET;
    default:
        return MBQ_EMYSQL;
    }
}

/* Record the connection's current error: "<what>: <server message>". */
static int my_error(mbq_mysql *c, const char *what)
{
    unsigned e = mysql_errno(c->my);
    return mbq_error_set(e ? code_for_errno(e) : MBQ_EMYSQL, "%s: %s (MySQL at %s, error %u)",
                         what, mysql_error(c->my), c->where, e);
}

int mbq_mysql_exec(mbq_mysql *c, const char *sql)
{
    if (mysql_real_query(c->my, sql, strlen(sql)) != 0)
        return my_error(c, "query failed");
    /* Drain a result set if the statement produced one. */
    MYSQL_RES *res = mysql_store_result(c->my);
    if (res)
        mysql_free_result(res);
    else if (mysql_field_count(c->my) != 0)
        return my_error(c, "query failed");
    return 0;
}

int mbq_mysql_connect(mbq_mysql **out, const mbq_mysql_config *cfg)
{
    int rc = 0;
    mbq_mysql *c = mbq_calloc(1, sizeof *c);
    mbq_buf where = MBQ_BUF_INIT;
    *out = NULL;
    if (!c)
        return MBQ_ENOMEM;
    const char *host = cfg->host && *cfg->host ? cfg->host : "127.0.0.1";
    unsigned port = cfg->port ? cfg->port : 3306;
    if (cfg->socket && *cfg->socket)
        rc = mbq_buf_printf(&where, "%s", cfg->socket);
    else
        rc = mbq_buf_printf(&where, "%s:%u", host, port);
    if (rc < 0)
        goto done;
    if (!(c->where = mbq_buf_detach(&where)) || !(c->user = mbq_strdup(cfg->user ? cfg->user : ""))) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    if (cfg->password)
        mbq_secret_register(cfg->password);
    if (!(c->my = mysql_init(NULL))) {
        rc = mbq_error_set(MBQ_ENOMEM, "cannot initialise the MySQL client library");
        goto done;
    }
    unsigned ct = cfg->connect_timeout_s > 0 ? (unsigned)cfg->connect_timeout_s : 10;
    unsigned rt = cfg->read_timeout_s > 0 ? (unsigned)cfg->read_timeout_s : 600;
    mysql_optionsv(c->my, MYSQL_OPT_CONNECT_TIMEOUT, &ct);
    mysql_optionsv(c->my, MYSQL_OPT_READ_TIMEOUT, &rt);
    mysql_optionsv(c->my, MYSQL_OPT_WRITE_TIMEOUT, &rt);
    mysql_optionsv(c->my, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    if (cfg->ssl) {
        my_bool on = 1, verify = cfg->ssl_verify_server_cert ? 1 : 0;
        mysql_ssl_set(c->my, cfg->ssl_key, cfg->ssl_cert, cfg->ssl_ca, NULL, NULL);
        mysql_optionsv(c->my, MYSQL_OPT_SSL_ENFORCE, &on);
        mysql_optionsv(c->my, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &verify);
        if (!verify)
            mbq_log_warn("mysql: TLS to %s without verifying the server certificate "
                         "(ssl.verify_server_cert is false): the connection can be intercepted",
                         c->where);
    }
    bool sock = cfg->socket && *cfg->socket;
    if (!mysql_real_connect(c->my, sock ? "localhost" : host, cfg->user, cfg->password,
                            cfg->database, sock ? 0 : port, sock ? cfg->socket : NULL, 0)) {
        unsigned e = mysql_errno(c->my);
        rc = mbq_error_set(code_for_errno(e), "cannot connect to MySQL at %s as '%s': %s",
                           c->where, c->user, mysql_error(c->my));
        goto done;
    }
    /* Connector/C enforces TLS (MYSQL_OPT_SSL_ENFORCE) only when it also
     * verifies the certificate: with verification off it falls back to
     * plain text against a server without TLS. TLS that was asked for is
     * never optional: check that the session is encrypted. */
    if (cfg->ssl && !sock && !mysql_get_ssl_cipher(c->my)) {
        rc = mbq_error_set(MBQ_ENET,
                           "cannot connect to MySQL at %s as '%s': mysql.ssl asks for TLS but "
                           "the server did not start it (the connection was not used)",
                           c->where, c->user);
        goto done;
    }
    /* Session for faithful reading: TIMESTAMPs in UTC, utf8mb4 text, no
     * sql_mode that changes values or quoting (PAD_CHAR_TO_FULL_LENGTH,
     * ANSI_QUOTES, NO_BACKSLASH_ESCAPES), and a net_write_timeout as long as
     * our read timeout so a slow disk on our side does not make the server
     * drop the stream. */
    char set[256];
    snprintf(set, sizeof set,
             "SET NAMES utf8mb4, time_zone = '+00:00', sql_mode = 'NO_ENGINE_SUBSTITUTION', "
             "net_write_timeout = %u",
             rt);
    if ((rc = mbq_mysql_exec(c, set)) < 0 ||
        (rc = mbq_mysql_exec(c, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")) < 0) {
        mbq_error_wrap(rc, "cannot set up the MySQL session: ");
        goto done;
    }
    *out = c;
    c = NULL;
done:
    mbq_buf_free(&where);
    mbq_mysql_close(c);
    return rc;
}

void mbq_mysql_close(mbq_mysql *c)
{
    if (!c)
        return;
    if (c->my)
        mysql_close(c->my);
    free(c->where);
    free(c->user);
    free(c);
}

/* ---- introspection ----------------------------------------------------- */

/* Append `s` as a quoted, escaped MySQL string literal. */
static int put_literal(mbq_buf *b, mbq_mysql *c, const char *s)
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

static int query_store(MYSQL_RES **res, mbq_mysql *c, const mbq_buf *sql)
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

/* ---- the writer thread ------------------------------------------------- */

#define NSLOTS 4
#define WRITE_BEHIND (8u << 20)

typedef struct writer {
    int fd;
    const char *path;  /* the temp file, for messages */
    bool compress;
    z_stream zs;
    bool zinit;
    unsigned char *zout;
    size_t zout_cap;
    EVP_MD_CTX *sha;
    uint64_t file_bytes, raw_bytes;
    uint64_t started_bytes; /* file bytes whose writeback was started */
    int (*sink)(void *ud, const void *data, size_t len); /* tap on the file's bytes */
    void *sink_ud;

    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;         /* any change of the queues or flags */
    mbq_buf slot[NSLOTS];
    int full[NSLOTS];          /* FIFO of filled slots */
    size_t full_head, full_n;
    int free_[NSLOTS];         /* stack of empty slots */
    size_t free_n;
    bool closing;              /* main has submitted its last chunk */
    int err;                   /* first error of the writer thread */
    char *errmsg;
} writer;

static int write_all(writer *w, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(w->fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return mbq_error_set(MBQ_EIO, "cannot write '%s': %s", w->path, strerror(errno));
        if (w->sink) {
            int src = w->sink(w->sink_ud, p, (size_t)n);
            if (src < 0)
                return mbq_error_wrap(src, "'%s': ", w->path);
        }
        p += n;
        len -= (size_t)n;
        w->file_bytes += (uint64_t)n;
    }
    /* Write-behind: start the disk writes of each WRITE_BEHIND bytes now,
     * so the final fsync waits for the last few MiB, not for the whole
     * file (0.09 s of a 1M-row extract's 1.3 s here), and a big extract
     * never leaves gigabytes dirty. Only a hint: fsync stays the proof. */
    if (w->file_bytes - w->started_bytes >= WRITE_BEHIND) {
        (void)sync_file_range(w->fd, (off_t)w->started_bytes,
                              (off_t)(w->file_bytes - w->started_bytes), SYNC_FILE_RANGE_WRITE);
        w->started_bytes = w->file_bytes;
    }
    return 0;
}

static int deflate_out(writer *w, const void *data, size_t len, int flush)
{
    w->zs.next_in = (unsigned char *)(uintptr_t)data;
    w->zs.avail_in = (uInt)len;
    do {
        w->zs.next_out = w->zout;
        w->zs.avail_out = (uInt)w->zout_cap;
        int zr = deflate(&w->zs, flush);
        if (zr == Z_STREAM_ERROR)
            return mbq_error_set(MBQ_EINTERNAL, "gzip of '%s' failed", w->path);
        size_t have = w->zout_cap - w->zs.avail_out;
        if (have && write_all(w, w->zout, have) < 0)
            return MBQ_EIO;
    } while (w->zs.avail_out == 0 || (flush == Z_FINISH && w->zs.avail_in > 0));
    return 0;
}

static int writer_consume(writer *w, const mbq_buf *b)
{
    if (b->len == 0)
        return 0;
    w->raw_bytes += b->len;
    if (EVP_DigestUpdate(w->sha, b->ptr, b->len) != 1)
        return mbq_error_set(MBQ_EINTERNAL, "sha-256 update failed");
    if (!w->compress)
        return write_all(w, b->ptr, b->len);
    /* zlib's avail_in is 32-bit: feed a huge chunk in pieces. */
    const char *p = b->ptr;
    size_t left = b->len;
    while (left > 0) {
        size_t n = left > (1u << 30) ? (1u << 30) : left;
        if (deflate_out(w, p, n, Z_NO_FLUSH) < 0)
            return MBQ_EIO;
        p += n;
        left -= n;
    }
    return 0;
}

static void *writer_main(void *arg)
{
    writer *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->full_n == 0 && !w->closing)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->full_n == 0)
            break;
        int i = w->full[w->full_head];
        w->full_head = (w->full_head + 1) % NSLOTS;
        w->full_n--;
        int failed = w->err;
        pthread_mutex_unlock(&w->mu);
        /* After a failure keep draining, so the encoder never blocks. */
        int rc = failed ? 0 : writer_consume(w, &w->slot[i]);
        pthread_mutex_lock(&w->mu);
        if (rc < 0 && !w->err) {
            w->err = rc;
            w->errmsg = mbq_strdup(mbq_error_last());
            mbq_error_clear(); /* the per-thread message would outlive the thread */
        }
        mbq_buf_clear(&w->slot[i]);
        w->free_[w->free_n++] = i;
        pthread_cond_broadcast(&w->cv);
    }
    int failed = w->err;
    pthread_mutex_unlock(&w->mu);
    if (!failed && w->compress) {
        int rc = deflate_out(w, "", 0, Z_FINISH);
        if (rc < 0) {
            pthread_mutex_lock(&w->mu);
            w->err = rc;
            w->errmsg = mbq_strdup(mbq_error_last());
            pthread_mutex_unlock(&w->mu);
        }
    }
    /* The thread's error message (thread-local) dies with the thread: free
     * it, its text was copied to w->errmsg for the encoder's side. */
    mbq_error_clear();
    return NULL;
}

static int writer_start(writer *w, int fd, const char *path, bool compress, int level,
                        const mbq_extract_options *o)
{
    memset(w, 0, sizeof *w);
    w->sink = o->sink;
    w->sink_ud = o->sink_ud;
    w->fd = fd;
    w->path = path;
    w->compress = compress;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    for (int i = 0; i < NSLOTS; i++)
        w->free_[w->free_n++] = i;
    if (!(w->sha = EVP_MD_CTX_new()) || EVP_DigestInit_ex(w->sha, EVP_sha256(), NULL) != 1)
        return mbq_error_set(MBQ_ENOMEM, "cannot start sha-256");
    if (compress) {
        w->zout_cap = 256 * 1024;
        if (!(w->zout = mbq_malloc(w->zout_cap)))
            return MBQ_ENOMEM;
        /* windowBits 15 + 16: a gzip header and trailer, not zlib's. */
        if (deflateInit2(&w->zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            return mbq_error_set(MBQ_ENOMEM, "cannot start gzip");
        w->zinit = true;
    }
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0)
        return mbq_error_set(MBQ_ERR, "cannot start the writer thread");
    w->started = true;
    return 0;
}

/* An empty chunk to fill, or NULL when the writer has failed. */
static mbq_buf *writer_get(writer *w)
{
    pthread_mutex_lock(&w->mu);
    while (w->free_n == 0 && !w->err)
        pthread_cond_wait(&w->cv, &w->mu);
    mbq_buf *b = w->err ? NULL : &w->slot[w->free_[--w->free_n]];
    pthread_mutex_unlock(&w->mu);
    return b;
}

static void writer_submit(writer *w, mbq_buf *b)
{
    pthread_mutex_lock(&w->mu);
    w->full[(w->full_head + w->full_n) % NSLOTS] = (int)(b - w->slot);
    w->full_n++;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Stop the thread after it has written what was submitted; returns the
 * writer's error (re-recorded on this thread) or 0. */
static void writer_join(writer *w)
{
    if (!w->started)
        return;
    pthread_mutex_lock(&w->mu);
    w->closing = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    w->started = false;
}

static int writer_finish(writer *w)
{
    writer_join(w);
    if (w->err)
        return mbq_error_set(w->err, "%s", w->errmsg ? w->errmsg : "writer failed");
    return 0;
}

static void writer_free(writer *w)
{
    if (w->started) {
        /* Error path: make the thread drain and exit without finishing. */
        pthread_mutex_lock(&w->mu);
        if (!w->err)
            w->err = MBQ_ERR;
        pthread_mutex_unlock(&w->mu);
        writer_join(w); /* the caller's error message stays */
    }
    if (w->zinit)
        deflateEnd(&w->zs);
    free(w->zout);
    if (w->sha)
        EVP_MD_CTX_free(w->sha);
    for (int i = 0; i < NSLOTS; i++)
        mbq_buf_free(&w->slot[i]);
    free(w->errmsg);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
}

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
