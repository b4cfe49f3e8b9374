/* Failures of the MySQL source give clear errors and leave no partial file:
 * wrong password (message names host:port and user, never the password),
 * unreachable host (a closed port), missing table / primary key / cursor
 * column, a cursor of the wrong type, the connection killed mid-stream
 * (what a server restart does to a running extract), and an output
 * directory that does not exist. Works in database mbq_t_errors. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "test_mysql_util.h"

#include "mbq/error.h"
#include "mbq/log.h"

#define DB "mbq_t_errors"

static MYSQL *admin;
static char *dir;

static void test_wrong_password_names_server_and_user_not_password(void)
{
    mbq_mysql_config cfg = tmy_config(DB);
    cfg.password = "not-the-right-pw-42";
    mbq_mysql *c = NULL;
    CHECK_INT(mbq_mysql_connect(&c, &cfg), MBQ_EAUTH);
    CHECK(c == NULL);
    char where[128];
    snprintf(where, sizeof where, "cannot connect to MySQL at %s:%u as '%s': Access denied", cfg.host,
             cfg.port, cfg.user);
    CHECK_CONTAINS(mbq_error_last(), where);
    CHECK(strstr(mbq_error_last(), "not-the-right-pw-42") == NULL);
}

static void test_closed_port_is_a_network_error_naming_it(void)
{
    /* A port nobody listens on: bind one, note it, close it. */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    CHECK(bind(s, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(getsockname(s, (struct sockaddr *)&a, &len) == 0);
    close(s);
    mbq_mysql_config cfg = tmy_config(DB);
    cfg.port = ntohs(a.sin_port);
    cfg.host = "127.0.0.1";
    mbq_mysql *c = NULL;
    CHECK_INT(mbq_mysql_connect(&c, &cfg), MBQ_ENET);
    char where[64];
    snprintf(where, sizeof where, "cannot connect to MySQL at 127.0.0.1:%u", cfg.port);
    CHECK_CONTAINS(mbq_error_last(), where);
}

static void test_missing_table_pk_and_cursor_are_named(void)
{
    mbq_mysql *c = tmy_connect(DB);
    mbq_table_schema *s = NULL;
    if (!c)
        return;
    CHECK_INT(mbq_mysql_table_schema(&s, c, DB, "nosuch"), MBQ_ENOTFOUND);
    CHECK_CONTAINS(mbq_error_last(), "table '" DB ".nosuch' does not exist");
    CHECK_INT(mbq_mysql_table_schema(&s, c, DB, "t"), 0);
    if (s) {
        const char *pk_bad[] = {"idx"};
        const char *pk_ok[] = {"id"};
        const char *pk_other[] = {"name"};
        CHECK_INT(mbq_mysql_check_table(NULL, s, pk_bad, 1, NULL), MBQ_ESCHEMA);
        CHECK_CONTAINS(mbq_error_last(), "primary key column 'idx' does not exist");
        CHECK_INT(mbq_mysql_check_table(NULL, s, pk_ok, 0, NULL), MBQ_ESCHEMA);
        mbq_cursor_kind k = MBQ_CURSOR_NONE;
        CHECK_INT(mbq_mysql_check_table(&k, s, pk_ok, 1, "nosuch_at"), MBQ_ESCHEMA);
        CHECK_CONTAINS(mbq_error_last(), "cursor column 'nosuch_at' does not exist");
        CHECK_INT(mbq_mysql_check_table(&k, s, pk_ok, 1, "name"), MBQ_ESCHEMA);
        CHECK_CONTAINS(mbq_error_last(), "cursor column 'name' has type 'varchar(20)'");
        CHECK_INT(mbq_mysql_check_table(&k, s, pk_ok, 1, "updated_at"), 0);
        CHECK_INT(k, MBQ_CURSOR_TIMESTAMP);
        CHECK_INT(mbq_mysql_check_table(&k, s, pk_ok, 1, "ID"), 0);
        CHECK_INT(k, MBQ_CURSOR_INTEGER);
        /* A key other than the PRIMARY KEY is accepted (with a warning). */
        CHECK_INT(mbq_mysql_check_table(&k, s, pk_other, 1, NULL), 0);
        /* The extractor refuses a missing cursor too, and writes nothing. */
        char path[512];
        snprintf(path, sizeof path, "%s/t.json", dir);
        mbq_extract_options o = MBQ_EXTRACT_OPTIONS_INIT;
        o.schema = s;
        o.cursor = "gone";
        o.path = path;
        mbq_extract_result r;
        CHECK_INT(mbq_mysql_extract(&r, c, &o), MBQ_ESCHEMA);
        CHECK(!tmy_exists(path));
    }
    mbq_table_schema_free(s);
    mbq_mysql_close(c);
}

static void test_unwritable_output_directory_is_an_io_error(void)
{
    mbq_mysql *c = tmy_connect(DB);
    mbq_table_schema *s = NULL;
    if (!c)
        return;
    CHECK_INT(mbq_mysql_table_schema(&s, c, DB, "t"), 0);
    mbq_extract_options o = MBQ_EXTRACT_OPTIONS_INIT;
    o.schema = s;
    o.path = "/nonexistent-dir-mbq/x.json";
    mbq_extract_result r;
    CHECK_INT(mbq_mysql_extract(&r, c, &o), MBQ_EIO);
    CHECK_CONTAINS(mbq_error_last(), "cannot create '/nonexistent-dir-mbq/x.json.tmp'");
    /* The connection is still usable (the snapshot was rolled back). */
    CHECK_INT(mbq_mysql_exec(c, "SELECT 1"), 0);
    mbq_table_schema_free(s);
    mbq_mysql_close(c);
}

static void test_row_over_the_size_limit_is_refused_naming_its_key(void)
{
    mbq_mysql *c = tmy_connect(DB);
    mbq_table_schema *s = NULL;
    if (!c)
        return;
    CHECK_INT(mbq_mysql_table_schema(&s, c, DB, "big"), 0);
    char path[600];
    snprintf(path, sizeof path, "%s/toobig.json", dir);
    mbq_extract_options o = MBQ_EXTRACT_OPTIONS_INIT;
    o.schema = s;
    o.path = path;
    /* A small limit stands in for BigQuery's 100 MB: the rows are ~170 bytes. */
    o.max_row_bytes = 100;
    mbq_extract_result r;
    CHECK_INT(mbq_mysql_extract(&r, c, &o), MBQ_EDATA);
    CHECK_CONTAINS(mbq_error_last(), "table 'big': the row with id=1 is");
    CHECK_CONTAINS(mbq_error_last(), "over BigQuery's limit of 100 bytes");
    struct stat st;
    CHECK(stat(path, &st) != 0);
    char tmp[640];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(stat(tmp, &st) != 0);
    mbq_extract_result_free(&r);
    o.max_row_bytes = 0; /* the default (100 MB) takes them */
    CHECK_INT(mbq_mysql_extract(&r, c, &o), 0);
    CHECK_INT(r.rows, 300000);
    mbq_extract_result_free(&r);
    unlink(path);
    mbq_table_schema_free(s);
    mbq_mysql_close(c);
}

/* The KILL is sent from the extract's own file tap (the sink), on its first
 * piece of output: the writer is blocked in it, so the encoder, and with it
 * the reading of the result, stall behind it. The KILL therefore lands while
 * most of the 45 MB result is still on the server, on any machine speed
 * (a watcher thread polling for the temporary file could be too late). */
struct killer {
    char tmp[600];
    unsigned long id;
    int calls;
    int killed;
};

static int kill_from_sink(void *ud, const void *data, size_t len)
{
    struct killer *k = ud;
    (void)data;
    (void)len;
    if (k->calls++ > 0)
        return 0;
    struct stat st;
    MYSQL *m = tmy_admin();
    char sql[64];
    snprintf(sql, sizeof sql, "KILL %lu", k->id);
    k->killed = m && mysql_query(m, sql) == 0 && stat(k->tmp, &st) == 0;
    if (m)
        mysql_close(m);
    return 0;
}

static void test_connection_killed_mid_stream_leaves_no_file(void)
{
    mbq_mysql *c = tmy_connect(DB);
    mbq_table_schema *s = NULL;
    if (!c)
        return;
    CHECK_INT(mbq_mysql_table_schema(&s, c, DB, "big"), 0);
    struct killer k = {.id = mbq_mysql_thread_id(c)};
    char path[512];
    snprintf(path, sizeof path, "%s/big.json", dir);
    snprintf(k.tmp, sizeof k.tmp, "%s.tmp", path);
    mbq_extract_options o = MBQ_EXTRACT_OPTIONS_INIT;
    o.schema = s;
    o.path = path;
    o.compress = false; /* every chunk reaches the file, and the tap, at once */
    o.chunk_bytes = 4096;
    o.sink = kill_from_sink;
    o.sink_ud = &k;
    mbq_extract_result r;
    int rc = mbq_mysql_extract(&r, c, &o);
    CHECK(k.killed); /* the KILL landed while the stream ran */
    CHECK(k.calls > 1); /* and the stream went on until the server's cut reached it */
    CHECK(rc == MBQ_ENET || rc == MBQ_EMYSQL);
    CHECK_CONTAINS(mbq_error_last(), "table 'big' after ");
    CHECK_CONTAINS(mbq_error_last(), "extract stream failed");
    CHECK(!tmy_exists(path));
    CHECK(!tmy_exists(k.tmp));
    CHECK_INT(r.rows, 0); /* the result is cleared on failure */
    mbq_table_schema_free(s);
    mbq_mysql_close(c);
}

int main(void)
{
    test_require_env("MBQ_TEST_MYSQL_PORT");
    tmy_begin(&admin, &dir, DB);
    tmy_exec(admin, "CREATE TABLE " DB ".t (id INT PRIMARY KEY, name VARCHAR(20),"
                    " updated_at TIMESTAMP(3) NULL)");
    tmy_exec(admin, "INSERT INTO " DB ".t VALUES (1, 'a', NOW(3))");
    tmy_exec(admin, "CREATE TABLE " DB ".big (id INT PRIMARY KEY, pad VARCHAR(200))");
    tmy_exec(admin, "INSERT INTO " DB ".big SELECT seq, REPEAT('y', 150) FROM " DB
                    ".seq_1_to_300000");
    RUN(test_wrong_password_names_server_and_user_not_password);
    RUN(test_closed_port_is_a_network_error_naming_it);
    RUN(test_missing_table_pk_and_cursor_are_named);
    RUN(test_unwritable_output_directory_is_an_io_error);
    RUN(test_connection_killed_mid_stream_leaves_no_file);
    RUN(test_row_over_the_size_limit_is_refused_naming_its_key);
    tmy_end(admin, dir, DB);
    return test_summary();
}
