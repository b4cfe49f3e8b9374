/* The binlog reader (mbq/binlog.h) against the real MariaDB of the ctest
 * fixture (log_bin, ROW, FULL images and metadata): positions, transactions,
 * DDL, rotation, heartbeats, the table filter, purged files, a lost
 * connection, the settings check and the snapshot hand-off. Works in
 * database mbq_t_binlog. */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "test_binlog_util.h"

#define DB "mbq_t_binlog"

static MYSQL *admin;
static char *dir;

static mbq_binlog_pos mkpos(const char *file, uint64_t pos)
{
    mbq_binlog_pos p;
    memset(&p, 0, sizeof p);
    snprintf(p.file, sizeof p.file, "%s", file);
    p.pos = pos;
    return p;
}

static void test_positions_compare_by_file_number_then_offset(void)
{
    mbq_binlog_pos a = mkpos("mysql-bin.000009", 900), b = mkpos("mysql-bin.000010", 4),
                   c = mkpos("mysql-bin.000010", 5), e = mkpos("", 0);
    CHECK(mbq_binlog_pos_cmp(&a, &b) < 0); /* 9 < 10, though "9" > "1" as text */
    CHECK(mbq_binlog_pos_cmp(&b, &a) > 0);
    CHECK(mbq_binlog_pos_cmp(&b, &c) < 0);
    CHECK_INT(mbq_binlog_pos_cmp(&c, &c), 0);
    CHECK(mbq_binlog_pos_cmp(&e, &a) < 0);
    CHECK(mbq_binlog_pos_cmp(&a, &e) > 0);
    CHECK_INT(mbq_binlog_pos_cmp(&e, &e), 0);
    mbq_binlog_pos big = mkpos("mysql-bin.1000000", 4), small = mkpos("mysql-bin.999999", 8);
    CHECK(mbq_binlog_pos_cmp(&small, &big) < 0);
}

static void test_transaction_gives_its_rows_then_one_commit(void)
{
    tmy_exec(admin, "CREATE TABLE " DB ".t1 (id INT PRIMARY KEY, big BIGINT, d DECIMAL(12,2),"
                    " s VARCHAR(50), dt DATETIME(6), ts TIMESTAMP(3) NULL) DEFAULT CHARSET=utf8mb4");
    mbq_binlog_pos start = tbl_current();
    tmy_exec(admin, "BEGIN");
    tmy_exec(admin, "INSERT INTO " DB ".t1 VALUES (1, -9223372036854775808, -12.5, 'h\xc3\xa9', "
                    "'2024-02-29 23:59:59.000001', '2038-01-19 03:14:07.999'),"
                    " (2, 42, 0.05, '', '1000-01-01 00:00:00', NULL)");
    tmy_exec(admin, "UPDATE " DB ".t1 SET s = 'x', d = 99999.99 WHERE id = 2");
    tmy_exec(admin, "DELETE FROM " DB ".t1 WHERE id = 1");
    tmy_exec(admin, "COMMIT");
    mbq_binlog *b = tbl_open(start, DB, "t1", 1000);
    CHECK(b != NULL);
    if (!b)
        return;
    mbq_binlog_event ev;
    /* A DDL-free stream from `start`: rows, then one COMMIT. */
    CHECK_INT(tbl_next_own(b, &ev, DB), 0);
    CHECK_INT(ev.kind, MBQ_BINLOG_ROWS);
    CHECK_STR(ev.database, DB);
    CHECK_STR(ev.table, "t1");
    CHECK_INT(ev.n_columns, 6);
    CHECK_STR(ev.column_names[5], "ts");
    CHECK_INT(ev.n_rows, 2);
    CHECK(ev.gtid != NULL);
    CHECK(ev.event_ms > 1700000000000LL);
    if (ev.n_rows == 2) {
        CHECK_INT(ev.rows[0].op, 'I');
        CHECK(ev.rows[0].before == NULL);
        CHECK_VAL(&ev.rows[0].after[0], "1");
        CHECK_VAL(&ev.rows[0].after[1], "-9223372036854775808");
        CHECK_VAL(&ev.rows[0].after[2], "-12.50");
        CHECK_VAL(&ev.rows[0].after[3], "h\xc3\xa9");
        CHECK_VAL(&ev.rows[0].after[4], "2024-02-29 23:59:59.000001");
        CHECK_VAL(&ev.rows[0].after[5], "2038-01-19 03:14:07.999");
        CHECK_VAL(&ev.rows[1].after[2], "0.05");
        CHECK_VAL(&ev.rows[1].after[3], "");
        CHECK(ev.rows[1].after[3].data != NULL); /* '' is not NULL */
        CHECK_VAL(&ev.rows[1].after[4], "1000-01-01 00:00:00.000000");
        CHECK(ev.rows[1].after[5].data == NULL);
    }
    CHECK_INT(tbl_next_own(b, &ev, DB), 0);
    CHECK_INT(ev.kind, MBQ_BINLOG_ROWS);
    CHECK_INT(ev.n_rows, 1);
    if (ev.n_rows == 1) {
        CHECK_INT(ev.rows[0].op, 'U');
        CHECK_VAL(&ev.rows[0].before[3], "");
        CHECK_VAL(&ev.rows[0].after[3], "x");
        CHECK_VAL(&ev.rows[0].before[2], "0.05");
        CHECK_VAL(&ev.rows[0].after[2], "99999.99");
    }
    CHECK_INT(tbl_next_own(b, &ev, DB), 0);
    CHECK_INT(ev.kind, MBQ_BINLOG_ROWS);
    if (ev.n_rows == 1) {
        CHECK_INT(ev.rows[0].op, 'D');
        CHECK(ev.rows[0].after == NULL);
        CHECK_VAL(&ev.rows[0].before[0], "1");
    }
    mbq_binlog_pos rows_end = ev.pos;
    CHECK_INT(tbl_next_own(b, &ev, DB), 0);
    CHECK_INT(ev.kind, MBQ_BINLOG_COMMIT);
    CHECK(mbq_binlog_pos_cmp(&ev.pos, &rows_end) > 0);
    /* The COMMIT's position is within the binlog written so far (other
     * tests write beside this one). */
    mbq_binlog_pos end = tbl_current();
    CHECK(mbq_binlog_pos_cmp(&ev.pos, &end) <= 0);
    mbq_binlog_close(b);
}


/* Every DDL statement is its own event, with its database and text; the
 * rows after an ALTER decode with the new columns (their TABLE_MAP). */
static void test_ddl_events_carry_database_and_statement(void)
{
    tmy_exec(admin, "CREATE TABLE " DB ".t2 (id INT PRIMARY KEY, a INT)");
    mbq_binlog_pos start = tbl_current();
    tmy_exec(admin, "USE " DB); /* the event's database is the session's default one */
    tmy_exec(admin, "ALTER TABLE " DB ".t2 ADD COLUMN b VARCHAR(10) AFTER id");
    tmy_exec(admin, "INSERT INTO " DB ".t2 VALUES (1, 'new', 2)");
    tmy_exec(admin, "RENAME TABLE " DB ".t2 TO " DB ".t3");
    tmy_exec(admin, "TRUNCATE TABLE " DB ".t3");
    tmy_exec(admin, "DROP TABLE " DB ".t3");
    tmy_exec(admin, "USE mysql");
    tmy_exec(admin, "CREATE TABLE " DB ".t4 (id INT)");
    mbq_binlog *b = tbl_open(start, DB, "t2", 1000);
    CHECK(b != NULL);
    if (!b)
        return;
    mbq_binlog_event ev;
    static const char *const want[] = {"ALTER TABLE", NULL, NULL, "RENAME TABLE", "TRUNCATE TABLE",
                                       "DROP TABLE"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        CHECK_INT(tbl_next_own(b, &ev, DB), 0);
        if (!want[i]) {
            /* the INSERT: rows with the column added, then its COMMIT */
            if (ev.kind == MBQ_BINLOG_ROWS) {
                CHECK_INT(ev.n_columns, 3);
                CHECK_STR(ev.column_names[1], "b");
                CHECK_VAL(&ev.rows[0].after[1], "new");
                CHECK_VAL(&ev.rows[0].after[2], "2");
            } else {
                CHECK_INT(ev.kind, MBQ_BINLOG_COMMIT);
            }
            continue;
        }
        CHECK_INT(ev.kind, MBQ_BINLOG_DDL);
        CHECK_STR(ev.database, DB);
        CHECK_CONTAINS(ev.statement, want[i]);
        CHECK(ev.gtid != NULL);
    }
    /* Another default database: the statement names the table's. */
    CHECK_INT(tbl_next_own(b, &ev, DB), 0);
    CHECK_INT(ev.kind, MBQ_BINLOG_DDL);
    CHECK_STR(ev.database, "mysql");
    CHECK_CONTAINS(ev.statement, "CREATE TABLE " DB ".t4");
    mbq_binlog_close(b);
}

/* FLUSH BINARY LOGS: the reader gets a ROTATE to the new file and goes on
 * reading there. */
static void test_rotation_moves_to_the_next_file(void)
{
    tmy_exec(admin, "CREATE TABLE " DB ".r (id INT PRIMARY KEY)");
    mbq_binlog_pos start = tbl_current();
    tmy_exec(admin, "INSERT INTO " DB ".r VALUES (1)");
    tmy_exec(admin, "FLUSH BINARY LOGS");
    tmy_exec(admin, "INSERT INTO " DB ".r VALUES (2)");
    mbq_binlog_pos end = tbl_current();
    CHECK(strcmp(start.file, end.file) != 0);
    mbq_binlog *b = tbl_open(start, DB, "r", 1000);
    CHECK(b != NULL);
    if (!b)
        return;
    mbq_binlog_event ev;
    bool rotated = false;
    int rows = 0;
    for (int i = 0; i < 50 && rows < 2; i++) {
        if (mbq_binlog_next(b, &ev, 5000) != 0)
            break;
        if (ev.kind == MBQ_BINLOG_ROTATE && strcmp(ev.pos.file, start.file) != 0) {
            rotated = true;
            CHECK_INT(ev.pos.pos, 4);
        }
        if (ev.kind == MBQ_BINLOG_ROWS) {
            rows++;
            /* (another test may rotate too: the second row is in a later file) */
            CHECK(rows == 1 ? strcmp(ev.pos.file, start.file) == 0
                            : strcmp(ev.pos.file, start.file) != 0);
            CHECK_VAL(&ev.rows[0].after[0], rows == 1 ? "1" : "2");
        }
    }
    CHECK(rotated);
    CHECK_INT(rows, 2);
    tbl_after_rows = true; /* the rows above were read without tbl_next_own */
    CHECK_INT(tbl_next_own(b, &ev, DB), 0);
    CHECK_INT(ev.kind, MBQ_BINLOG_COMMIT);
    CHECK(mbq_binlog_pos_cmp(&ev.pos, &end) <= 0);
    CHECK(strcmp(ev.pos.file, start.file) != 0);
    mbq_binlog_close(b);
}

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* An idle source sends heartbeats at the asked period; a shorter wait
 * times out without an event. */
static void test_idle_source_sends_heartbeats_and_waits_time_out(void)
{
    mbq_binlog *b = tbl_open(tbl_current(), DB, "nothing", 300);
    CHECK(b != NULL);
    if (!b)
        return;
    mbq_binlog_event ev;
    int rc = 0, n = 0;
    /* The start: a ROTATE to the start file, then heartbeats. */
    while (n++ < 10 && (rc = mbq_binlog_next(b, &ev, 3000)) == 0 && ev.kind != MBQ_BINLOG_HEARTBEAT)
        CHECK_INT(ev.kind, MBQ_BINLOG_ROTATE);
    CHECK_INT(rc, 0);
    CHECK_INT(ev.kind, MBQ_BINLOG_HEARTBEAT);
    int64_t t0 = now_ms();
    CHECK_INT(mbq_binlog_next(b, &ev, 3000), 0);
    CHECK_INT(ev.kind, MBQ_BINLOG_HEARTBEAT);
    int64_t period = now_ms() - t0;
    CHECK(period >= 150 && period < 1500); /* asked: 300 ms */
    CHECK_INT(ev.event_ms, 0);
    mbq_binlog_pos end = tbl_current();
    CHECK_INT(mbq_binlog_pos_cmp(&ev.pos, &end), 0);
    t0 = now_ms();
    CHECK_INT(mbq_binlog_next(b, &ev, 50), MBQ_ETIMEOUT);
    int64_t waited = now_ms() - t0;
    CHECK(waited >= 45 && waited < 250);
    mbq_binlog_close(b);
}

/* Rows of other tables are not decoded, their transactions still end with
 * a COMMIT (a resume point). */
static void test_table_filter_passes_only_the_named_tables(void)
{
    tmy_exec(admin, "CREATE TABLE " DB ".fa (id INT PRIMARY KEY)");
    tmy_exec(admin, "CREATE TABLE " DB ".fb (id INT PRIMARY KEY)");
    mbq_binlog_pos start = tbl_current();
    tmy_exec(admin, "BEGIN");
    tmy_exec(admin, "INSERT INTO " DB ".fb VALUES (1)");
    tmy_exec(admin, "INSERT INTO " DB ".fa VALUES (1)");
    tmy_exec(admin, "COMMIT");
    tmy_exec(admin, "INSERT INTO " DB ".fb VALUES (2)");
    tmy_exec(admin, "INSERT INTO " DB ".fa VALUES (3)");
    mbq_binlog *b = tbl_open(start, DB, "fa", 1000);
    CHECK(b != NULL);
    if (!b)
        return;
    mbq_binlog_event ev;
    const mbq_binlog_kind want[] = {MBQ_BINLOG_ROWS, MBQ_BINLOG_COMMIT, MBQ_BINLOG_COMMIT,
                                    MBQ_BINLOG_ROWS, MBQ_BINLOG_COMMIT};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        CHECK_INT(tbl_next_data(b, &ev), 0);
        CHECK_INT(ev.kind, want[i]);
        if (ev.kind == MBQ_BINLOG_ROWS) {
            CHECK_STR(ev.table, "fa");
            CHECK_VAL(&ev.rows[0].after[0], i == 0 ? "1" : "3");
        }
    }
    mbq_binlog_close(b);
}

/* The connection is killed under the reader: MBQ_ENET, to reopen from the
 * last resume point. */
static void test_lost_connection_is_enet(void)
{
    mbq_binlog *b = tbl_open(tbl_current(), DB, "nothing", 1000);
    CHECK(b != NULL);
    if (!b)
        return;
    mbq_binlog_event ev;
    while (mbq_binlog_next(b, &ev, 200) == 0)
        ;
    tmy_exec(admin, "KILL %lu", mbq_binlog_thread_id(b));
    int rc;
    for (int i = 0; i < 10 && (rc = mbq_binlog_next(b, &ev, 5000)) == 0;)
        i++;
    CHECK_INT(rc, MBQ_ENET);
    mbq_binlog_close(b);
}

/* XA transactions log their rows at PREPARE and may still roll back: on a
 * followed table that is an error, not rows handed out as committed; on
 * another table they are passed over. */
static void test_xa_transaction_on_a_followed_table_is_an_error(void)
{
    tmy_exec(admin, "CREATE TABLE " DB ".xa (id INT PRIMARY KEY)");
    tmy_exec(admin, "CREATE TABLE " DB ".xo (id INT PRIMARY KEY)");
    mbq_binlog_pos start = tbl_current();
    tmy_exec(admin, "XA START 'mbq1'");
    tmy_exec(admin, "INSERT INTO " DB ".xa VALUES (1)");
    tmy_exec(admin, "XA END 'mbq1'");
    tmy_exec(admin, "XA PREPARE 'mbq1'");
    tmy_exec(admin, "XA ROLLBACK 'mbq1'");
    tmy_exec(admin, "INSERT INTO " DB ".xo VALUES (2)");
    mbq_binlog_event ev;
    mbq_binlog *b = tbl_open(start, DB, "xa", 1000);
    CHECK(b != NULL);
    if (b) {
        CHECK_INT(tbl_next_data(b, &ev), MBQ_EDATA);
        CHECK_CONTAINS(mbq_error_last(), "does not follow XA transactions");
        mbq_binlog_close(b);
    }
    b = tbl_open(start, DB, "xo", 1000);
    CHECK(b != NULL);
    if (!b)
        return;
    int rc;
    while ((rc = tbl_next_data(b, &ev)) == 0 && ev.kind != MBQ_BINLOG_ROWS)
        ;
    CHECK_INT(rc, 0);
    if (rc == 0) {
        CHECK_STR(ev.table, "xo");
        CHECK_VAL(&ev.rows[0].after[0], "2");
    }
    mbq_binlog_close(b);
}

/* The hand-off: a writer commits rows one by one while a consistent
 * snapshot is taken; every row is either in the snapshot or in the binlog
 * after the snapshot's position, never both, never neither. */
static atomic_int writer_stop, writer_last;

static void *writer(void *arg)
{
    (void)arg;
    MYSQL *m = tmy_admin();
    for (int id = 1; !atomic_load(&writer_stop) || id <= 200; id++) {
        tmy_exec(m, "INSERT INTO " DB ".h VALUES (%d)", id);
        atomic_store(&writer_last, id);
    }
    mysql_close(m);
    mysql_thread_end();
    return NULL;
}

static void test_snapshot_position_hands_off_without_gap_or_overlap(void)
{
    tmy_exec(admin, "CREATE TABLE " DB ".h (id INT PRIMARY KEY)");
    pthread_t th;
    atomic_store(&writer_stop, 0);
    pthread_create(&th, NULL, writer, NULL);
    while (atomic_load(&writer_last) < 50)
        usleep(1000);
    mbq_mysql *c = tmy_connect(DB);
    MYSQL *my = *(MYSQL **)c; /* the connection's first member (mysql_internal.h) */
    mbq_binlog_pos snap;
    char *gtid = NULL;
    CHECK_INT(mbq_mysql_exec(c, "START TRANSACTION WITH CONSISTENT SNAPSHOT"), 0);
    CHECK_INT(mbq_binlog_snapshot_pos(&snap, &gtid, c), 0);
    CHECK(gtid && *gtid);
    static unsigned char in_snap[100000];
    memset(in_snap, 0, sizeof in_snap);
    int n_snap = 0;
    CHECK_INT(mysql_query(my, "SELECT id FROM h"), 0);
    MYSQL_RES *res = mysql_store_result(my);
    MYSQL_ROW row;
    while (res && (row = mysql_fetch_row(res))) {
        in_snap[atoi(row[0])] = 1;
        n_snap++;
    }
    if (res)
        mysql_free_result(res);
    CHECK_INT(mbq_mysql_exec(c, "COMMIT"), 0);
    atomic_store(&writer_stop, 1);
    pthread_join(th, NULL);
    int last = atomic_load(&writer_last);
    CHECK(n_snap >= 50 && n_snap < last); /* the writer went on during the snapshot */
    mbq_binlog_pos end = tbl_current();
    mbq_binlog *b = tbl_open(snap, DB, "h", 1000);
    CHECK(b != NULL);
    int both = 0, from_binlog = 0;
    mbq_binlog_event ev;
    static unsigned char in_binlog[100000];
    memset(in_binlog, 0, sizeof in_binlog);
    while (b && tbl_next_data(b, &ev) == 0) {
        if (ev.kind == MBQ_BINLOG_ROWS) {
            for (size_t r = 0; r < ev.n_rows; r++) {
                char *v = tbl_val(&ev.rows[r].after[0]);
                int id = atoi(v);
                free(v);
                both += in_snap[id];
                in_binlog[id] = 1;
                from_binlog++;
            }
        }
        if (ev.kind == MBQ_BINLOG_COMMIT && mbq_binlog_pos_cmp(&ev.pos, &end) >= 0)
            break;
    }
    CHECK_INT(both, 0);
    int missing = 0;
    for (int id = 1; id <= last; id++)
        missing += !in_snap[id] && !in_binlog[id];
    CHECK_INT(missing, 0);
    CHECK_INT(n_snap + from_binlog, last);
    mbq_binlog_close(b);
    mbq_mysql_close(c);
    free(gtid);
}

int main(void)
{
    test_require_env("MBQ_TEST_MYSQL_PORT");
    RUN(test_positions_compare_by_file_number_then_offset);
    tmy_begin(&admin, &dir, DB);
    RUN(test_transaction_gives_its_rows_then_one_commit);
    RUN(test_ddl_events_carry_database_and_statement);
    RUN(test_rotation_moves_to_the_next_file);
    RUN(test_idle_source_sends_heartbeats_and_waits_time_out);
    RUN(test_table_filter_passes_only_the_named_tables);
    RUN(test_lost_connection_is_enet);
    RUN(test_xa_transaction_on_a_followed_table_is_an_error);
    RUN(test_snapshot_position_hands_off_without_gap_or_overlap);
    tmy_end(admin, dir, DB);
    return test_summary();
}
