/* The MySQL/MariaDB source (see mbq/mysql_source.h): connection, schema
 * introspection from information_schema, and the streaming extraction.
 * This file holds the connection (connect, close, errors, exec); the
 * introspection is in mysql_introspect.c, the writer thread in
 * mysql_writer.c and the extraction in mysql_extract.c, sharing
 * mysql_internal.h.
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

#include "mysql_internal.h"
#include "mbq/banned.h"

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
int my_error(mbq_mysql *c, const char *what)
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
