/* The binlog reader (mbq/binlog.h) against the real MariaDB of the ctest
 * fixture (log_bin, ROW, FULL images and metadata): positions, transactions,
 * DDL, rotation, heartbeats, the table filter, purged files, a lost
 * connection, the settings check and the snapshot hand-off. Works in
 * database mbq_t_binlog. */
#include <pthread.h>
#include <stdatomic.h>

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
    CHECK_INT(tbl_next_data(b, &ev), 0);
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
    CHECK_INT(tbl_next_data(b, &ev), 0);
    CHECK_INT(ev.kind, MBQ_BINLOG_ROWS);
    CHECK_INT(ev.n_rows, 1);
    if (ev.n_rows == 1) {
        CHECK_INT(ev.rows[0].op, 'U');
        CHECK_VAL(&ev.rows[0].before[3], "");
        CHECK_VAL(&ev.rows[0].after[3], "x");
        CHECK_VAL(&ev.rows[0].before[2], "0.05");
        CHECK_VAL(&ev.rows[0].after[2], "99999.99");
    }
    CHECK_INT(tbl_next_data(b, &ev), 0);
    CHECK_INT(ev.kind, MBQ_BINLOG_ROWS);
    if (ev.n_rows == 1) {
        CHECK_INT(ev.rows[0].op, 'D');
        CHECK(ev.rows[0].after == NULL);
        CHECK_VAL(&ev.rows[0].before[0], "1");
    }
    mbq_binlog_pos rows_end = ev.pos;
    CHECK_INT(tbl_next_data(b, &ev), 0);
    CHECK_INT(ev.kind, MBQ_BINLOG_COMMIT);
    CHECK(mbq_binlog_pos_cmp(&ev.pos, &rows_end) > 0);
    /* The COMMIT's position is the end of binlog: nothing more to read. */
    mbq_binlog_pos end = tbl_current();
    CHECK_INT(mbq_binlog_pos_cmp(&ev.pos, &end), 0);
    mbq_binlog_close(b);
}

int main(void)
{
    test_require_env("MBQ_TEST_MYSQL_PORT");
    RUN(test_positions_compare_by_file_number_then_offset);
    tmy_begin(&admin, &dir, DB);
    RUN(test_transaction_gives_its_rows_then_one_commit);
    tmy_end(admin, dir, DB);
    return test_summary();
}
