/* Extraction windows against a real MariaDB: inclusive bounds, the high-water
 * mark cap, ordering by (cursor, composite primary key), integer cursors,
 * full-table extraction, empty windows, and a transaction committed by a
 * second client while the stream runs (invisible: the snapshot holds).
 * Works in database mbq_t_window. */

#include "test_mysql_util.h"

#include "mbq/error.h"

#define DB "mbq_t_window"

static MYSQL *admin;
static char *dir;

static void setup(void)
{
    tmy_begin(&admin, &dir, DB);
    tmy_exec(admin, "CREATE TABLE " DB ".ev (id INT NOT NULL, k2 VARCHAR(10) NOT NULL,"
                    " updated_at DATETIME(6), v INT, PRIMARY KEY (id, k2), KEY (updated_at))");
    /* Ties on the cursor at both boundaries; key order differs from insert order. */
    tmy_exec(admin, "INSERT INTO " DB ".ev VALUES"
                    " (5, 'b', '2024-01-01 00:00:01.000000', 1), (5, 'a', '2024-01-01 00:00:01.000000', 1),"
                    " (1, 'z', '2024-01-01 00:00:02.000000', 1), (9, 'a', '2024-01-01 00:00:02.000000', 1),"
                    " (2, 'a', '2024-01-01 00:00:03.000000', 1), (3, 'a', '2024-01-01 00:00:04.000000', 1),"
                    " (4, 'b', '2024-01-01 00:00:04.000000', 1), (4, 'a', '2024-01-01 00:00:04.000000', 1),"
                    " (7, 'a', '2024-01-01 00:00:05.000000', 1), (8, 'n', NULL, 1)");
    tmy_exec(admin, "CREATE TABLE " DB ".seq (id BIGINT UNSIGNED PRIMARY KEY, v VARCHAR(10))");
    tmy_exec(admin, "INSERT INTO " DB ".seq VALUES (1,'a'),(2,'b'),(3,'c'),(4,'d'),(10,'e')");
    tmy_exec(admin, "CREATE TABLE " DB ".empty (id INT PRIMARY KEY)");
}

struct ex {
    int rc;
    mbq_extract_result r;
    json_object **lines;
    size_t n;
    char path[512];
};

static mbq_table_schema *load_schema(mbq_mysql *c, const char *table)
{
    mbq_table_schema *s = NULL;
    if (mbq_mysql_table_schema(&s, c, DB, table) < 0)
        fprintf(stderr, "  %s\n", mbq_error_last());
    return s;
}

/* Extract `table` with cursor/low/high_limit into a fresh file and parse it. */
static void run(struct ex *e, const char *table, const char *cursor, const char *low,
                const char *cap)
{
    static int seq;
    memset(e, 0, sizeof *e);
    mbq_mysql_config cfg = tmy_config(DB);
    mbq_mysql *c = NULL;
    e->rc = mbq_mysql_connect(&c, &cfg);
    if (e->rc)
        return;
    mbq_table_schema *s = load_schema(c, table);
    snprintf(e->path, sizeof e->path, "%s/%s-%d.json", dir, table, ++seq);
    mbq_extract_options o = MBQ_EXTRACT_OPTIONS_INIT;
    o.schema = s;
    o.cursor = cursor;
    o.low = low;
    o.high_limit = cap;
    o.path = e->path;
    o.compress = seq % 2 == 0;
    e->rc = mbq_mysql_extract(&e->r, c, &o);
    if (e->rc)
        fprintf(stderr, "  extract: %s\n", mbq_error_last());
    if (e->rc == 0 && e->r.file_written) {
        char *text = tmy_read_file(e->path, NULL);
        e->lines = text ? tmy_parse_lines(text, &e->n) : NULL;
        free(text);
    }
    mbq_table_schema_free(s);
    mbq_mysql_close(c);
}

static void done(struct ex *e)
{
    tmy_free_lines(e->lines, e->n);
    mbq_extract_result_free(&e->r);
}

/* "id/k2" of line i. */
static const char *key_of(struct ex *e, size_t i, char *buf, size_t len)
{
    json_object *id = NULL, *k2 = NULL;
    json_object_object_get_ex(e->lines[i], "id", &id);
    json_object_object_get_ex(e->lines[i], "k2", &k2);
    snprintf(buf, len, "%s/%s", id ? json_object_get_string(id) : "?",
             k2 ? json_object_get_string(k2) : "");
    return buf;
}

static void check_keys(struct ex *e, const char *const *want, size_t n)
{
    char buf[64];
    CHECK_INT(e->n, n);
    for (size_t i = 0; i < n && i < e->n; i++)
        CHECK_STR(key_of(e, i, buf, sizeof buf), want[i]);
}

static void test_rows_at_low_and_high_are_included_in_cursor_then_key_order(void)
{
    struct ex e;
    run(&e, "ev", "updated_at", "2024-01-01 00:00:02", NULL);
    CHECK_INT(e.rc, 0);
    CHECK_INT(e.r.rows, 7);
    CHECK_STR(e.r.low, "2024-01-01 00:00:02.000000");
    CHECK_STR(e.r.high, "2024-01-01 00:00:05.000000");
    static const char *const want[] = {"1/z", "9/a", "2/a", "3/a", "4/a", "4/b", "7/a"};
    check_keys(&e, want, 7);
    done(&e);
}

static void test_high_limit_caps_the_high_water_mark_inclusively(void)
{
    struct ex e;
    run(&e, "ev", "updated_at", "2024-01-01 00:00:01", "2024-01-01 00:00:04.5");
    CHECK_INT(e.rc, 0);
    CHECK_STR(e.r.high, "2024-01-01 00:00:04.000000");
    static const char *const want[] = {"5/a", "5/b", "1/z", "9/a", "2/a", "3/a", "4/a", "4/b"};
    check_keys(&e, want, 8);
    done(&e);
}

static void test_first_extraction_includes_null_cursor_rows(void)
{
    struct ex e;
    run(&e, "ev", "updated_at", NULL, NULL);
    CHECK_INT(e.rc, 0);
    CHECK_INT(e.r.rows, 10);
    /* A first extraction reads in key order (no filesort of the table),
     * the NULL-cursor row among the others. */
    static const char *const want[] = {"1/z", "2/a", "3/a", "4/a", "4/b", "5/a", "5/b", "7/a",
                                       "8/n", "9/a"};
    check_keys(&e, want, 10);
    /* low is the smallest cursor value, not the first row's. */
    CHECK_STR(e.r.low, "2024-01-01 00:00:01.000000");
    done(&e);
}

static void test_full_table_without_cursor_is_ordered_by_composite_key(void)
{
    struct ex e;
    run(&e, "ev", NULL, NULL, NULL);
    CHECK_INT(e.rc, 0);
    CHECK(e.r.high == NULL);
    static const char *const want[] = {"1/z", "2/a", "3/a", "4/a", "4/b", "5/a", "5/b", "7/a",
                                       "8/n", "9/a"};
    check_keys(&e, want, 10);
    done(&e);
}

static void test_integer_cursor_window(void)
{
    struct ex e;
    run(&e, "seq", "id", "3", NULL);
    CHECK_INT(e.rc, 0);
    CHECK_INT(e.r.rows, 3);
    CHECK_STR(e.r.low, "3");
    CHECK_STR(e.r.high, "10");
    done(&e);
    run(&e, "seq", "id", "3; DROP TABLE x", NULL);
    CHECK_INT(e.rc, MBQ_ECONFIG);
    CHECK_CONTAINS(mbq_error_last(), "is not an integer");
    CHECK(!tmy_exists(e.path));
    done(&e);
}

static void test_empty_window_and_empty_table_write_no_file(void)
{
    struct ex e;
    run(&e, "ev", "updated_at", "2030-01-01", NULL);
    CHECK_INT(e.rc, 0);
    CHECK_INT(e.r.rows, 0);
    CHECK(e.r.high == NULL && e.r.low == NULL && !e.r.file_written);
    CHECK(!tmy_exists(e.path));
    done(&e);
    run(&e, "empty", NULL, NULL, NULL);
    CHECK_INT(e.rc, 0);
    CHECK_INT(e.r.rows, 0);
    CHECK(!tmy_exists(e.path));
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", e.path);
    CHECK(!tmy_exists(tmp));
    done(&e);
}

/* A second client commits, while the first streams, a transaction that
 * changes rows at both ends of the order and adds rows above the high-water
 * mark. The extract must show the table as it was at its snapshot: no row
 * changed, none added, the old high-water mark. The commit is made from the
 * extract's file tap (the sink) on its first piece of output: the writer
 * waits in it, so the encoder and the reading of the result stall behind it
 * and the commit lands while most of the result is still on the server, on
 * any machine speed. */
struct writer_arg {
    char tmp[600];
    int calls;
    int committed_during_stream;
};

static int commit_from_sink(void *ud, const void *data, size_t len)
{
    struct writer_arg *a = ud;
    (void)data;
    (void)len;
    if (a->calls++ > 0)
        return 0;
    MYSQL *m = tmy_admin();
    if (!m)
        return 0;
    struct stat st;
    tmy_exec(m, "START TRANSACTION");
    tmy_exec(m, "UPDATE " DB ".big SET v = 1, updated_at = '2030-01-01' WHERE id IN (1, 200000)");
    tmy_exec(m, "INSERT INTO " DB ".big VALUES (300001, '2030-01-01', 1, 'new')");
    tmy_exec(m, "COMMIT");
    a->committed_during_stream = stat(a->tmp, &st) == 0;
    mysql_close(m);
    return 0;
}

static void test_rows_committed_during_the_stream_are_not_included(void)
{
    tmy_exec(admin, "CREATE TABLE " DB ".big (id INT PRIMARY KEY, updated_at DATETIME(6),"
                    " v INT, pad VARCHAR(100), KEY (updated_at))");
    tmy_exec(admin, "INSERT INTO " DB ".big SELECT seq, '2024-01-01' + INTERVAL seq SECOND, 0,"
                    " REPEAT('x', 80) FROM " DB ".seq_1_to_200000");
    mbq_mysql *c = tmy_connect(DB);
    if (!c)
        return;
    mbq_table_schema *s = load_schema(c, "big");
    struct writer_arg a = {0};
    char path[512];
    snprintf(path, sizeof path, "%s/big.json", dir);
    snprintf(a.tmp, sizeof a.tmp, "%s.tmp", path);
    mbq_extract_options o = MBQ_EXTRACT_OPTIONS_INIT;
    o.schema = s;
    o.cursor = "updated_at";
    o.path = path;
    o.compress = false; /* every chunk reaches the file, and the tap, at once */
    o.chunk_bytes = 4096;
    o.sink = commit_from_sink;
    o.sink_ud = &a;
    mbq_extract_result r;
    int rc = mbq_mysql_extract(&r, c, &o);
    CHECK_INT(rc, 0);
    CHECK(a.committed_during_stream); /* else the test proved nothing */
    CHECK(a.calls > 1);
    CHECK_INT(r.rows, 200000);
    CHECK_STR(r.high, "2024-01-03 07:33:20.000000");
    char *text = tmy_read_file(path, NULL);
    size_t n = 0;
    json_object **lines = text ? tmy_parse_lines(text, &n) : NULL;
    CHECK_INT(n, 200000);
    size_t changed = 0;
    for (size_t i = 0; i < n; i++) {
        json_object *v = NULL;
        json_object_object_get_ex(lines[i], "v", &v);
        changed += json_object_get_int(v) != 0;
    }
    CHECK_INT(changed, 0);
    tmy_free_lines(lines, n);
    free(text);
    mbq_extract_result_free(&r);
    mbq_table_schema_free(s);
    mbq_mysql_close(c);
}

int main(void)
{
    test_require_env("MBQ_TEST_MYSQL_PORT");
    setup();
    RUN(test_rows_at_low_and_high_are_included_in_cursor_then_key_order);
    RUN(test_high_limit_caps_the_high_water_mark_inclusively);
    RUN(test_first_extraction_includes_null_cursor_rows);
    RUN(test_full_table_without_cursor_is_ordered_by_composite_key);
    RUN(test_integer_cursor_window);
    RUN(test_empty_window_and_empty_table_write_no_file);
    RUN(test_rows_committed_during_the_stream_are_not_included);
    tmy_end(admin, dir, DB);
    return test_summary();
}
