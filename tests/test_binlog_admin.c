/* The binlog reader against a source that is not set up for it or goes
 * away: the settings and privileges check, a purged start file, the server
 * stopped under the reader. These change the server for everyone (SET
 * GLOBAL, PURGE BINARY LOGS, a restart), so the test runs alone (ctest
 * RUN_SERIAL) and puts every setting back. Works in mbq_t_binlog_admin. */
#include <sys/wait.h>

#include "test_binlog_util.h"

#define DB "mbq_t_binlog_admin"

static MYSQL *admin;
static char *dir;

static int check_as(const char *user, const char *password)
{
    mbq_mysql_config cfg = tmy_config(NULL);
    cfg.user = (char *)user;
    cfg.password = (char *)password;
    mbq_mysql *c = NULL;
    int rc = mbq_mysql_connect(&c, &cfg);
    CHECK_INT(rc, 0);
    if (rc == 0)
        rc = mbq_binlog_check(c);
    mbq_mysql_close(c);
    return rc;
}

/* Each wrong setting is named with its value and what it must be; the
 * setting is put back right after. */
static void expect_setting(const char *var, const char *bad, const char *good, const char *msg)
{
    tmy_exec(admin, "SET GLOBAL %s = '%s'", var, bad);
    int rc = check_as(getenv("MBQ_TEST_MYSQL_USER"), getenv("MBQ_TEST_MYSQL_PASSWORD"));
    const char *err = mbq_error_last();
    char *copy = strdup(err ? err : "");
    tmy_exec(admin, "SET GLOBAL %s = '%s'", var, good);
    CHECK_INT(rc, MBQ_ECONFIG);
    CHECK_CONTAINS(copy, msg);
    free(copy);
}

static void test_check_names_the_wrong_setting(void)
{
    CHECK_INT(check_as(getenv("MBQ_TEST_MYSQL_USER"), getenv("MBQ_TEST_MYSQL_PASSWORD")), 0);
    expect_setting("binlog_format", "STATEMENT", "ROW",
                   "binlog_format is STATEMENT; change data capture needs ROW");
    expect_setting("binlog_format", "MIXED", "ROW",
                   "binlog_format is MIXED; change data capture needs ROW");
    expect_setting("binlog_row_image", "MINIMAL", "FULL",
                   "binlog_row_image is MINIMAL; change data capture needs FULL");
    expect_setting("binlog_row_metadata", "MINIMAL", "FULL",
                   "binlog_row_metadata is MINIMAL; change data capture needs FULL");
    CHECK_INT(check_as(getenv("MBQ_TEST_MYSQL_USER"), getenv("MBQ_TEST_MYSQL_PASSWORD")), 0);
}

static void test_check_names_the_missing_privilege(void)
{
    tmy_exec(admin, "DROP USER IF EXISTS 'mbq_bl_none'@'%%', 'mbq_bl_slave'@'%%', 'mbq_bl_ok'@'%%'");
    tmy_exec(admin, "CREATE USER 'mbq_bl_none'@'%%' IDENTIFIED BY 'pw1'");
    tmy_exec(admin, "GRANT SELECT ON *.* TO 'mbq_bl_none'@'%%'");
    tmy_exec(admin, "CREATE USER 'mbq_bl_slave'@'%%' IDENTIFIED BY 'pw2'");
    /* REPLICATION SLAVE ADMIN is another privilege: it must not pass */
    tmy_exec(admin, "GRANT SELECT, REPLICATION SLAVE ADMIN, REPLICATION SLAVE ON *.* TO 'mbq_bl_slave'@'%%'");
    tmy_exec(admin, "CREATE USER 'mbq_bl_ok'@'%%' IDENTIFIED BY 'pw3'");
    tmy_exec(admin, "GRANT SELECT, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'mbq_bl_ok'@'%%'");

    CHECK_INT(check_as("mbq_bl_none", "pw1"), MBQ_EAUTH);
    CHECK_CONTAINS(mbq_error_last(), "lacks the REPLICATION SLAVE privilege");
    CHECK_CONTAINS(mbq_error_last(), "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'mbq_bl_none'@'%'");
    CHECK_INT(check_as("mbq_bl_slave", "pw2"), MBQ_EAUTH);
    CHECK_CONTAINS(mbq_error_last(), "BINLOG MONITOR");
    CHECK_INT(check_as("mbq_bl_ok", "pw3"), 0);

    /* open checks too, before asking for the binlog */
    mbq_mysql_config cfg = tmy_config(NULL);
    cfg.user = "mbq_bl_none";
    cfg.password = "pw1";
    mbq_binlog_options o;
    memset(&o, 0, sizeof o);
    o.mysql = &cfg;
    o.server_id = 4243;
    mbq_binlog *b = NULL;
    CHECK_INT(mbq_binlog_open(&b, &o), MBQ_EAUTH);
    CHECK(b == NULL);
    /* the user that passes the check can read */
    cfg.user = "mbq_bl_ok";
    cfg.password = "pw3";
    o.start = tbl_current();
    CHECK_INT(mbq_binlog_open(&b, &o), 0);
    mbq_binlog_event ev;
    CHECK_INT(mbq_binlog_next(b, &ev, 5000), 0);
    mbq_binlog_close(b);
    tmy_exec(admin, "DROP USER 'mbq_bl_none'@'%%', 'mbq_bl_slave'@'%%', 'mbq_bl_ok'@'%%'");
}

/* A start position in a purged file cannot be served: MBQ_ENOTFOUND with
 * the message binlog.h promises, nothing skipped. */
static void test_purged_start_file_is_enotfound(void)
{
    mbq_binlog_pos old = tbl_current();
    tmy_exec(admin, "FLUSH BINARY LOGS");
    tmy_exec(admin, "FLUSH BINARY LOGS");
    mbq_binlog_pos now = tbl_current();
    mbq_mysql *c = tmy_connect(NULL);
    bool exists = true;
    /* The server keeps a file a dump thread still reads: a reader closed
     * by the test before may take a moment to go. */
    for (int i = 0; i < 50 && exists; i++) {
        tmy_exec(admin, "PURGE BINARY LOGS TO '%s'", now.file);
        CHECK_INT(mbq_binlog_file_exists(&exists, c, old.file), 0);
        if (exists)
            usleep(100000);
    }
    CHECK(!exists);
    CHECK_INT(mbq_binlog_file_exists(&exists, c, now.file), 0);
    CHECK(exists);
    mbq_mysql_close(c);
    mbq_binlog_options o;
    mbq_mysql_config cfg = tmy_config(NULL);
    memset(&o, 0, sizeof o);
    o.mysql = &cfg;
    o.server_id = 4244;
    o.start = old;
    mbq_binlog *b = NULL;
    CHECK_INT(mbq_binlog_open(&b, &o), MBQ_ENOTFOUND);
    char want[400];
    snprintf(want, sizeof want, "binlog file '%s' is no longer on the server", old.file);
    CHECK_CONTAINS(mbq_error_last(), want);
    CHECK_CONTAINS(mbq_error_last(), "re-snapshot with mbq-state reset TABLE --full");
    CHECK(b == NULL);
    mbq_binlog_close(b);
}

static int services(const char *what)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "bash '%s/tools/services.sh' %s '%s' >/dev/null 2>&1",
             test_require_env("MBQ_SOURCE_DIR"), what, test_require_env("MBQ_TEST_SERVICES_DIR"));
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The server goes away under a reader waiting for events: MBQ_ENET. */
static void test_server_stopped_mid_read_is_enet(void)
{
    mbq_binlog *b = tbl_open(tbl_current(), DB, "nothing", 1000);
    CHECK(b != NULL);
    if (!b)
        return;
    mbq_binlog_event ev;
    while (mbq_binlog_next(b, &ev, 200) == 0)
        ;
    mysql_close(admin);
    CHECK_INT(services("stop-mysql"), 0);
    int rc = 0;
    for (int i = 0; i < 20 && (rc = mbq_binlog_next(b, &ev, 5000)) == 0; i++)
        ;
    CHECK_INT(rc, MBQ_ENET);
    mbq_binlog_close(b);
    CHECK_INT(services("start-mysql"), 0);
    admin = tmy_admin();
}

/* A source that writes no checksums (binlog_checksum=NONE) is read too,
 * and when it turns them on (a new file) the reader follows. */
static void test_source_without_checksums_is_read(void)
{
    tmy_exec(admin, "CREATE TABLE " DB ".nc (id INT PRIMARY KEY, s VARCHAR(10))");
    tmy_exec(admin, "SET GLOBAL binlog_checksum = 'NONE'"); /* rotates the binlog */
    mbq_binlog_pos start = tbl_current();
    tmy_exec(admin, "INSERT INTO " DB ".nc VALUES (1, 'x')");
    mbq_binlog *b = tbl_open(start, DB, "nc", 1000);
    tmy_exec(admin, "SET GLOBAL binlog_checksum = 'CRC32'");
    CHECK(b != NULL);
    if (!b)
        return;
    mbq_binlog_event ev;
    CHECK_INT(tbl_next_data(b, &ev), 0);
    CHECK_INT(ev.kind, MBQ_BINLOG_ROWS);
    if (ev.kind == MBQ_BINLOG_ROWS)
        CHECK_VAL(&ev.rows[0].after[1], "x");
    CHECK_INT(tbl_next_data(b, &ev), 0);
    CHECK_INT(ev.kind, MBQ_BINLOG_COMMIT);
    /* checksums on again: the next file's events carry them */
    tmy_exec(admin, "INSERT INTO " DB ".nc VALUES (2, 'y')");
    CHECK_INT(tbl_next_data(b, &ev), 0);
    CHECK_INT(ev.kind, MBQ_BINLOG_ROWS);
    if (ev.kind == MBQ_BINLOG_ROWS)
        CHECK_VAL(&ev.rows[0].after[1], "y");
    CHECK_INT(tbl_next_data(b, &ev), 0);
    CHECK_INT(ev.kind, MBQ_BINLOG_COMMIT);
    mbq_binlog_close(b);
}

/* A row larger than one protocol packet (16 MiB): the event arrives in
 * several packets and decodes whole. */
static void test_event_larger_than_a_packet_decodes_whole(void)
{
    char *old = tmy_scalar(admin, "SELECT @@global.max_allowed_packet");
    tmy_exec(admin, "SET GLOBAL max_allowed_packet = %d", 64 << 20);
    MYSQL *m = tmy_admin(); /* a session with the new limit */
    tmy_exec(m, "CREATE TABLE " DB ".big (id INT PRIMARY KEY, b LONGBLOB)");
    mbq_binlog_pos start = tbl_current();
    tmy_exec(m, "INSERT INTO " DB ".big VALUES (1, REPEAT(x'00FF41', 7000000))");
    mysql_close(m);
    tmy_exec(admin, "SET GLOBAL max_allowed_packet = %s", old);
    free(old);
    mbq_binlog *b = tbl_open(start, DB, "big", 1000);
    CHECK(b != NULL);
    if (!b)
        return;
    mbq_binlog_event ev;
    CHECK_INT(tbl_next_data(b, &ev), 0);
    CHECK_INT(ev.kind, MBQ_BINLOG_ROWS);
    if (ev.kind == MBQ_BINLOG_ROWS && ev.n_rows == 1) {
        const mbq_binlog_value *v = &ev.rows[0].after[1];
        CHECK_INT(v->len, 21000000);
        CHECK(v->data && memcmp(v->data, "\x00\xff\x41", 3) == 0 &&
              memcmp(v->data + v->len - 3, "\x00\xff\x41", 3) == 0);
    }
    CHECK_INT(tbl_next_data(b, &ev), 0);
    CHECK_INT(ev.kind, MBQ_BINLOG_COMMIT);
    mbq_binlog_close(b);
}

int main(void)
{
    test_require_env("MBQ_TEST_MYSQL_PORT");
    tmy_begin(&admin, &dir, DB);
    RUN(test_check_names_the_wrong_setting);
    RUN(test_check_names_the_missing_privilege);
    RUN(test_source_without_checksums_is_read);
    RUN(test_event_larger_than_a_packet_decodes_whole);
    RUN(test_purged_start_file_is_enotfound);
    RUN(test_server_stopped_mid_read_is_enet);
    tmy_end(admin, dir, DB);
    return test_summary();
}
