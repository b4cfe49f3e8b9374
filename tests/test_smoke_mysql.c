/* Smoke test: the MariaDB that tools/services.sh starts is real and set up as
 * the other tests expect. Through libmariadb: root can create a database and
 * a table, write and read rows back (over TCP and over the socket), and the
 * SELECT-only user mbq_reader can read but neither write nor see other
 * sessions' transactions (no PROCESS privilege). Works in its own database,
 * mbq_smoke_mysql. */
#include "test.h"

#include <mysql.h>
#include <mysqld_error.h>

#define DB "mbq_smoke_mysql"

static MYSQL *connect_as(const char *user, const char *password, int use_socket)
{
    MYSQL *m = mysql_init(NULL);
    if (!m)
        return NULL;
    unsigned timeout_s = 10;
    mysql_optionsv(m, MYSQL_OPT_CONNECT_TIMEOUT, &timeout_s);
    mysql_optionsv(m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    const char *host = test_require_env("MBQ_TEST_MYSQL_HOST");
    unsigned port = (unsigned)atoi(test_require_env("MBQ_TEST_MYSQL_PORT"));
    const char *sock = use_socket ? test_require_env("MBQ_TEST_MYSQL_SOCKET") : NULL;
    if (!mysql_real_connect(m, use_socket ? "localhost" : host, user, password, NULL,
                            use_socket ? 0 : port, sock, 0)) {
        fprintf(stderr, "  cannot connect as '%s' (%s): %s\n", user, use_socket ? "socket" : "tcp",
                mysql_error(m));
        mysql_close(m);
        return NULL;
    }
    return m;
}

static int exec(MYSQL *m, const char *sql)
{
    if (mysql_query(m, sql) != 0) {
        fprintf(stderr, "  query failed: %s: %s\n", sql, mysql_error(m));
        return -1;
    }
    return 0;
}

/* Root creates a database and a table with the types mbq cares about, writes
 * three rows and reads them back with the exact text the server returns. */
/* The query's first value is `want`. */
static void check_scalar(MYSQL *m, const char *sql, const char *want)
{
    CHECK_INT(exec(m, sql), 0);
    MYSQL_RES *res = mysql_store_result(m);
    CHECK(res != NULL);
    if (!res)
        return;
    MYSQL_ROW r = mysql_fetch_row(res);
    CHECK(r != NULL);
    if (r)
        CHECK_STR(r[0], want);
    mysql_free_result(res);
}

static void test_root_writes_and_reads_back_over_tcp(void)
{
    MYSQL *m = connect_as(test_require_env("MBQ_TEST_MYSQL_USER"),
                          test_require_env("MBQ_TEST_MYSQL_PASSWORD"), 0);
    CHECK(m != NULL);
    if (!m)
        return;
    CHECK_INT(exec(m, "DROP DATABASE IF EXISTS " DB), 0);
    CHECK_INT(exec(m, "CREATE DATABASE " DB), 0);
    CHECK_INT(exec(m, "CREATE TABLE " DB ".items ("
                      " id BIGINT UNSIGNED NOT NULL PRIMARY KEY,"
                      " name VARCHAR(64) NOT NULL,"
                      " price DECIMAL(12,2),"
                      " updated_at DATETIME(6) NOT NULL)"),
              0);
    CHECK_INT(exec(m, "INSERT INTO " DB ".items VALUES"
                      " (1, 'alpha', 1.50, '2024-01-02 03:04:05.123456'),"
                      " (18446744073709551615, 'ωmega \xF0\x9F\x98\x80', NULL, '2024-01-02 03:04:06'),"
                      " (2, 'beta', -99999.99, '1999-12-31 23:59:59.999999')"),
              0);
    CHECK_INT(mysql_affected_rows(m), 3);
    CHECK_INT(exec(m, "SELECT id, name, price, updated_at FROM " DB ".items ORDER BY id"), 0);
    MYSQL_RES *res = mysql_store_result(m);
    CHECK(res != NULL);
    if (res) {
        CHECK_INT(mysql_num_rows(res), 3);
        MYSQL_ROW r = mysql_fetch_row(res);
        CHECK(r != NULL);
        if (r) {
            CHECK_STR(r[0], "1");
            CHECK_STR(r[1], "alpha");
            CHECK_STR(r[2], "1.50");
            CHECK_STR(r[3], "2024-01-02 03:04:05.123456");
        }
        r = mysql_fetch_row(res);
        CHECK(r != NULL);
        if (r) {
            CHECK_STR(r[0], "2");
            CHECK_STR(r[2], "-99999.99");
            CHECK_STR(r[3], "1999-12-31 23:59:59.999999");
        }
        r = mysql_fetch_row(res);
        CHECK(r != NULL);
        if (r) {
            CHECK_STR(r[0], "18446744073709551615");
            CHECK_STR(r[1], "ωmega \xF0\x9F\x98\x80");
            CHECK(r[2] == NULL);
        }
        mysql_free_result(res);
    }
    mysql_close(m);
}

/* The socket in MBQ_TEST_MYSQL_SOCKET reaches the same server. */
static void test_root_reads_over_socket(void)
{
    MYSQL *m = connect_as(test_require_env("MBQ_TEST_MYSQL_USER"),
                          test_require_env("MBQ_TEST_MYSQL_PASSWORD"), 1);
    CHECK(m != NULL);
    if (!m)
        return;
    check_scalar(m, "SELECT COUNT(*) FROM " DB ".items", "3");
    mysql_close(m);
}

/* mbq_reader proves least privilege: it reads, it cannot write, and it
 * cannot read information_schema.INNODB_TRX (needs PROCESS). */
static void test_reader_can_select_but_not_write(void)
{
    MYSQL *m = connect_as(test_require_env("MBQ_TEST_MYSQL_RO_USER"),
                          test_require_env("MBQ_TEST_MYSQL_RO_PASSWORD"), 0);
    CHECK(m != NULL);
    if (!m)
        return;
    check_scalar(m, "SELECT name FROM " DB ".items WHERE id = 1", "alpha");
    CHECK(mysql_query(m, "INSERT INTO " DB ".items VALUES (3, 'x', 0, NOW())") != 0);
    CHECK_INT(mysql_errno(m), ER_TABLEACCESS_DENIED_ERROR);
    CHECK(mysql_query(m, "CREATE TABLE " DB ".nope (id INT)") != 0);
    CHECK_INT(mysql_errno(m), ER_TABLEACCESS_DENIED_ERROR);
    CHECK(mysql_query(m, "SELECT * FROM information_schema.INNODB_TRX") != 0);
    CHECK_INT(mysql_errno(m), ER_SPECIFIC_ACCESS_DENIED_ERROR);
    mysql_close(m);
}

static void test_cleanup_database(void)
{
    MYSQL *m = connect_as(test_require_env("MBQ_TEST_MYSQL_USER"),
                          test_require_env("MBQ_TEST_MYSQL_PASSWORD"), 0);
    CHECK(m != NULL);
    if (!m)
        return;
    CHECK_INT(exec(m, "DROP DATABASE " DB), 0);
    mysql_close(m);
}

int main(void)
{
    test_require_env("MBQ_TEST_MYSQL_PORT");
    RUN(test_root_writes_and_reads_back_over_tcp);
    RUN(test_root_reads_over_socket);
    RUN(test_reader_can_select_but_not_write);
    RUN(test_cleanup_database);
    mysql_library_end();
    return test_summary();
}
