/* Helpers shared by the MySQL integration tests (tests/test_mysql_*.c): an
 * admin connection for setup, the mbq config from the harness's environment,
 * reading an extracted file (gzip or plain) and parsing its NDJSON lines. */
#ifndef MBQ_TEST_MYSQL_UTIL_H
#define MBQ_TEST_MYSQL_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>
#include <mysql.h>
#include <zlib.h>

#include "mbq/config.h"
#include "mbq/mysql_source.h"
#include "test.h"

/* printf into a new string (vasprintf is a GNU extension). */
static inline int tmy_vfmt(char **out, const char *fmt, va_list ap)
{
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    *out = NULL;
    if (n < 0 || !(*out = malloc((size_t)n + 1)))
        return -1;
    vsnprintf(*out, (size_t)n + 1, fmt, ap);
    return n;
}

static inline mbq_mysql_config tmy_config(const char *database)
{
    mbq_mysql_config c;
    memset(&c, 0, sizeof c);
    c.host = (char *)test_require_env("MBQ_TEST_MYSQL_HOST");
    c.port = (unsigned)atoi(test_require_env("MBQ_TEST_MYSQL_PORT"));
    c.user = (char *)test_require_env("MBQ_TEST_MYSQL_USER");
    c.password = (char *)test_require_env("MBQ_TEST_MYSQL_PASSWORD");
    c.database = (char *)database;
    c.connect_timeout_s = 10;
    c.read_timeout_s = 60;
    return c;
}

/* mbq's own connection to `db` with tmy_config; NULL (the case is marked
 * failed) when it cannot connect. */
static inline mbq_mysql *tmy_connect(const char *database)
{
    mbq_mysql_config cfg = tmy_config(database);
    mbq_mysql *c = NULL;
    CHECK_INT(mbq_mysql_connect(&c, &cfg), 0);
    return c;
}

/* A plain libmariadb connection as root, for setup and for the "second
 * client" in concurrency tests. Session in UTC like mbq's. */
static inline MYSQL *tmy_admin(void)
{
    MYSQL *m = mysql_init(NULL);
    unsigned t = 10, rw = 120;
    mysql_optionsv(m, MYSQL_OPT_CONNECT_TIMEOUT, &t);
    /* A stuck statement fails the test with a message instead of hanging it
     * until ctest's timeout. */
    mysql_optionsv(m, MYSQL_OPT_READ_TIMEOUT, &rw);
    mysql_optionsv(m, MYSQL_OPT_WRITE_TIMEOUT, &rw);
    mysql_optionsv(m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    if (!mysql_real_connect(m, test_require_env("MBQ_TEST_MYSQL_HOST"),
                            test_require_env("MBQ_TEST_MYSQL_USER"),
                            test_require_env("MBQ_TEST_MYSQL_PASSWORD"), NULL,
                            (unsigned)atoi(test_require_env("MBQ_TEST_MYSQL_PORT")), NULL, 0)) {
        fprintf(stderr, "cannot connect as admin: %s\n", mysql_error(m));
        exit(1);
    }
    if (mysql_query(m, "SET time_zone = '+00:00', sql_mode = '', innodb_lock_wait_timeout = 30") !=
        0) {
        fprintf(stderr, "cannot set up the admin session: %s\n", mysql_error(m));
        exit(1);
    }
    return m;
}

static inline void tmy_exec(MYSQL *m, const char *fmt, ...)
{
    char *sql = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = tmy_vfmt(&sql, fmt, ap);
    va_end(ap);
    if (n < 0)
        exit(1);
    if (mysql_real_query(m, sql, (unsigned long)n) != 0) {
        fprintf(stderr, "setup query failed: %.300s: %s\n", sql, mysql_error(m));
        exit(1);
    }
    MYSQL_RES *r = mysql_store_result(m);
    if (r)
        mysql_free_result(r);
    free(sql);
}

/* The first column of the first row as a new string; NULL for SQL NULL. */
static inline char *tmy_scalar(MYSQL *m, const char *fmt, ...)
{
    char *sql = NULL, *out = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = tmy_vfmt(&sql, fmt, ap);
    va_end(ap);
    if (n < 0 || mysql_real_query(m, sql, (unsigned long)n) != 0) {
        fprintf(stderr, "query failed: %.300s: %s\n", sql ? sql : "", mysql_error(m));
        exit(1);
    }
    MYSQL_RES *r = mysql_store_result(m);
    MYSQL_ROW row = r ? mysql_fetch_row(r) : NULL;
    if (row && row[0]) {
        unsigned long *len = mysql_fetch_lengths(r);
        out = malloc(len[0] + 1);
        memcpy(out, row[0], len[0]);
        out[len[0]] = '\0';
    }
    if (r)
        mysql_free_result(r);
    free(sql);
    return out;
}

/* The whole content of a (maybe gzip) file; NULL when it cannot be read. */
static inline char *tmy_read_file(const char *path, size_t *len_out)
{
    gzFile f = gzopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    int n;
    while ((n = gzread(f, buf + len, (unsigned)(cap - len))) > 0) {
        len += (size_t)n;
        if (len == cap)
            buf = realloc(buf, (cap *= 2) + 1);
    }
    gzclose(f);
    buf[len] = '\0';
    if (len_out)
        *len_out = len;
    return buf;
}

/* Parse every NDJSON line of `text` (strictly: each line one JSON object).
 * Returns the lines as an array of json objects (count in *n), or NULL with
 * a message when a line is not valid JSON. */
static inline json_object **tmy_parse_lines(const char *text, size_t *n)
{
    size_t cap = 16;
    json_object **v = calloc(cap, sizeof *v);
    *n = 0;
    const char *p = text, *end = text + strlen(text);
    while (p < end) {
        /* memchr, not strchr: ASan's strict_string_checks makes every
         * strchr measure the whole rest of the text, quadratic on 30 MB. */
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) {
            fprintf(stderr, "  last line has no newline\n");
            return NULL;
        }
        json_tokener *tok = json_tokener_new();
        json_object *o = json_tokener_parse_ex(tok, p, (int)(nl - p));
        enum json_tokener_error err = json_tokener_get_error(tok);
        size_t used = json_tokener_get_parse_end(tok);
        json_tokener_free(tok);
        if (!o || err != json_tokener_success || used != (size_t)(nl - p) ||
            !json_object_is_type(o, json_type_object)) {
            fprintf(stderr, "  invalid NDJSON line %zu: %.200s\n", *n + 1, p);
            return NULL;
        }
        if (*n == cap)
            v = realloc(v, (cap *= 2) * sizeof *v);
        v[(*n)++] = o;
        p = nl + 1;
    }
    return v;
}

static inline void tmy_free_lines(json_object **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        json_object_put(v[i]);
    free(v);
}

static inline bool tmy_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* A directory for output files, removed by the test's end (best effort). */
static inline char *tmy_tmpdir(void)
{
    char *d = strdup("/tmp/mbq-test-mysql-XXXXXX");
    if (!mkdtemp(d)) {
        perror("mkdtemp");
        exit(1);
    }
    return d;
}

/* A test's start: the admin connection, an output directory and a fresh,
 * empty database `db`. */
static inline void tmy_begin(MYSQL **admin, char **dir, const char *db)
{
    *admin = tmy_admin();
    *dir = tmy_tmpdir();
    tmy_exec(*admin, "DROP DATABASE IF EXISTS `%s`", db);
    tmy_exec(*admin, "CREATE DATABASE `%s`", db);
}

/* ... and its end: the database dropped, the directory removed. */
static inline void tmy_end(MYSQL *admin, char *dir, const char *db)
{
    tmy_exec(admin, "DROP DATABASE `%s`", db);
    mysql_close(admin);
    test_remove_tree(dir);
    free(dir);
    mysql_library_end();
}

#endif
