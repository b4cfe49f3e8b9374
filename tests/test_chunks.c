/* Chunk boundaries of backfills (mysql_chunks.c) against a real MariaDB:
 * composite keys, gaps and skew, character keys in a case- and
 * accent-insensitive collation, binary keys with every byte, temporal,
 * BIGINT UNSIGNED and negative DECIMAL keys. For each, the chunks must
 * partition the table exactly: every row in exactly one chunk, every chunk
 * but the last exactly chunk_rows rows, counted by the server itself with
 * the very conditions the extract uses. Also: keys that cannot bound chunks
 * are refused, and an extract of every chunk gives every row once.
 * Works in database mbq_t_chunks. */

#include "test_mysql_util.h"

#include "mbq/chunks.h"
#include "mbq/error.h"
#include "mbq/journal.h"

#define DB "mbq_t_chunks"

static MYSQL *admin;
static char *dir;

static void setup(void)
{
    tmy_begin(&admin, &dir, DB);
    /* Composite key with skew (id 2 holds 700 rows) and gaps (ids far apart). */
    tmy_exec(admin, "CREATE TABLE " DB ".comp (id INT NOT NULL, k2 VARCHAR(20) NOT NULL, v INT,"
                    " PRIMARY KEY (id, k2))");
    tmy_exec(admin, "INSERT INTO " DB ".comp SELECT 2, CONCAT('k', seq), seq FROM " DB ".seq_1_to_700");
    tmy_exec(admin, "INSERT INTO " DB ".comp SELECT seq * 1000, 'x', seq FROM " DB ".seq_1_to_250");
    tmy_exec(admin, "INSERT INTO " DB ".comp VALUES (-5, 'neg', 0), (2000000000, 'max', 0)");
    /* A case- and accent-insensitive collation orders 'b' < 'C' < 'é' < 'F',
     * unlike their bytes; quotes and backslashes in values. */
    tmy_exec(admin, "CREATE TABLE " DB ".words (w VARCHAR(40) CHARACTER SET utf8mb4 COLLATE "
                    "utf8mb4_general_ci NOT NULL PRIMARY KEY, v INT)");
    tmy_exec(admin, "INSERT INTO " DB ".words SELECT CONCAT(ELT(1 + seq %% 8, 'a', 'B', 'c', 'D',"
                    " 'é', 'F', 'o''q', 'b\\\\s'), LPAD(seq, 4, '0')), seq FROM " DB ".seq_1_to_900");
    tmy_exec(admin, "CREATE TABLE " DB ".latin (w VARCHAR(20) CHARACTER SET latin1 COLLATE "
                    "latin1_swedish_ci NOT NULL PRIMARY KEY)");
    tmy_exec(admin, "INSERT INTO " DB ".latin SELECT CONCAT(IF(seq %% 2, 'Ä', 'z'), seq) FROM "
                    DB ".seq_1_to_333");
    /* Binary keys: every byte value, including 0x00, quote and backslash. */
    tmy_exec(admin, "CREATE TABLE " DB ".bin (b VARBINARY(8) NOT NULL PRIMARY KEY)");
    tmy_exec(admin, "INSERT INTO " DB ".bin SELECT CONCAT(CHAR(seq %% 256), CHAR(seq DIV 256))"
                    " FROM " DB ".seq_0_to_1199");
    /* Temporal + BIGINT UNSIGNED beyond INT64 + negative DECIMAL. */
    tmy_exec(admin, "CREATE TABLE " DB ".mixed (t DATETIME(6) NOT NULL, u BIGINT UNSIGNED NOT "
                    "NULL, d DECIMAL(20,4) NOT NULL, PRIMARY KEY (t, u, d))");
    tmy_exec(admin, "INSERT INTO " DB ".mixed SELECT '2024-01-01 00:00:00' + INTERVAL (seq %% 7)"
                    " SECOND + INTERVAL seq MICROSECOND * 0, 18446744073709551615 - (seq %% 3),"
                    " seq * -1.5 FROM " DB ".seq_1_to_500");
    /* One integer key, split from MIN/MAX and the row estimate: dense ids,
     * a gap, and BIGINT UNSIGNED values near 2^64. */
    tmy_exec(admin, "CREATE TABLE " DB ".ints (id BIGINT UNSIGNED NOT NULL PRIMARY KEY)");
    tmy_exec(admin, "INSERT INTO " DB ".ints SELECT seq FROM " DB ".seq_1_to_800");
    tmy_exec(admin, "INSERT INTO " DB ".ints SELECT 18446744073709551615 - seq FROM " DB
                    ".seq_0_to_199");
    tmy_exec(admin, "ANALYZE TABLE " DB ".ints");
    tmy_exec(admin, "CREATE TABLE " DB ".negs (id INT NOT NULL PRIMARY KEY)");
    tmy_exec(admin, "INSERT INTO " DB ".negs SELECT CAST(seq AS SIGNED) * 7 - 2000 FROM " DB ".seq_1_to_600");
    tmy_exec(admin, "ANALYZE TABLE " DB ".negs");
    tmy_exec(admin, "CREATE TABLE " DB ".small (id INT PRIMARY KEY)");
    tmy_exec(admin, "INSERT INTO " DB ".small VALUES (1), (2), (3)");
    tmy_exec(admin, "CREATE TABLE " DB ".empty (id INT PRIMARY KEY)");
    tmy_exec(admin, "CREATE TABLE " DB ".en (e ENUM('z', 'a') NOT NULL PRIMARY KEY)");
    tmy_exec(admin, "CREATE TABLE " DB ".fl (f DOUBLE NOT NULL PRIMARY KEY)");
}

static mbq_table_schema *schema_of(mbq_mysql *c, const char *table)
{
    mbq_table_schema *s = NULL;
    if (mbq_mysql_table_schema(&s, c, DB, table) < 0)
        fprintf(stderr, "  %s\n", mbq_error_last());
    return s;
}

static long long count_where(const char *table, const char *where)
{
    char *v = tmy_scalar(admin, "SELECT COUNT(*) FROM " DB ".`%s` WHERE %s", table, where);
    long long n = v ? atoll(v) : -1;
    free(v);
    return n;
}

/* Plan `table` by `key` in chunks of `rows` and prove the partition. */
static void check_partition(const char *table, const char *const *key, size_t n_key,
                            int64_t rows, long long want_bounds)
{
    mbq_mysql *c = tmy_connect(DB);
    mbq_table_schema *s = c ? schema_of(c, table) : NULL;
    char **b = NULL;
    size_t n = 0;
    mbq_buf any = MBQ_BUF_INIT;
    if (!s)
        goto done;
    CHECK_INT(mbq_mysql_chunk_bounds(&b, &n, c, s, key, n_key, rows), 0);
    if (want_bounds >= 0)
        CHECK_INT(n, want_bounds); /* < 0: from statistics, any count */
    else
        CHECK(n >= 2);
    char *total_s = tmy_scalar(admin, "SELECT COUNT(*) FROM " DB ".`%s`", table);
    long long total = total_s ? atoll(total_s) : -1, sum = 0;
    free(total_s);
    mbq_buf_puts(&any, "FALSE");
    for (size_t i = 0; i <= n; i++) {
        mbq_buf w = MBQ_BUF_INIT;
        CHECK_INT(mbq_mysql_chunk_where(&w, c, s, key, n_key, i ? b[i - 1] : NULL,
                                        i < n ? b[i] : NULL),
                  0);
        long long got = count_where(table, w.ptr);
        if (want_bounds < 0)
            CHECK(got >= 0); /* integer key from statistics: sizes follow the key's gaps */
        else if (i < n)
            CHECK_INT(got, rows); /* every chunk but the last: exactly chunk_rows */
        else
            CHECK(got >= 1 && got <= rows);
        sum += got;
        mbq_buf_printf(&any, " OR (%s)", w.ptr);
        mbq_buf_free(&w);
    }
    /* Counted once each (the sum) and none left out (the complement). */
    CHECK_INT(sum, total);
    mbq_buf notany = MBQ_BUF_INIT;
    mbq_buf_printf(&notany, "NOT (%s)", any.ptr);
    CHECK_INT(count_where(table, notany.ptr), 0);
    mbq_buf_free(&notany);
done:
    if (b)
        mbq_strv_free(b);
    mbq_buf_free(&any);
    mbq_table_schema_free(s);
    mbq_mysql_close(c);
}

static void test_composite_key_with_skew_and_gaps_partitions_exactly(void)
{
    const char *key[] = {"id", "k2"};
    /* 952 rows: 9 full chunks of 100 and a last one of 52. */
    check_partition("comp", key, 2, 100, 9);
    /* A chunk boundary inside the skewed id (2): the second column decides. */
    check_partition("comp", key, 2, 333, 2);
}

static void test_collated_string_key_partitions_in_collation_order(void)
{
    const char *key[] = {"w"};
    check_partition("words", key, 1, 64, 14); /* 900 rows */
    check_partition("latin", key, 1, 50, 6);  /* 333 rows, latin1 */
}

static void test_binary_key_with_every_byte_partitions_exactly(void)
{
    const char *key[] = {"b"};
    check_partition("bin", key, 1, 97, 12); /* 1200 rows */
}

static void test_datetime_unsigned_and_negative_decimal_key(void)
{
    const char *key[] = {"t", "u", "d"};
    check_partition("mixed", key, 3, 41, 12); /* 500 rows */
}

static void test_integer_key_from_statistics_covers_every_row_once(void)
{
    const char *key[] = {"id"};
    check_partition("ints", key, 1, 100, -1);
    check_partition("negs", key, 1, 50, -1);
}

static void test_small_and_empty_tables_need_no_chunks(void)
{
    const char *key[] = {"id"};
    check_partition("small", key, 1, 3, 0);
    mbq_mysql *c = tmy_connect(DB);
    mbq_table_schema *s = c ? schema_of(c, "empty") : NULL;
    char **b = NULL;
    size_t n = 99;
    if (s) {
        CHECK_INT(mbq_mysql_chunk_bounds(&b, &n, c, s, key, 1, 10), 0);
        CHECK_INT(n, 0);
        CHECK(b == NULL);
    }
    mbq_table_schema_free(s);
    mbq_mysql_close(c);
}

static void test_keys_whose_text_loses_the_order_are_refused(void)
{
    mbq_mysql *c = tmy_connect(DB);
    mbq_table_schema *en = c ? schema_of(c, "en") : NULL, *fl = c ? schema_of(c, "fl") : NULL;
    const char *ke[] = {"e"}, *kf[] = {"f"}, *kx[] = {"nope"};
    if (en && fl) {
        /* ENUM sorts by member number ('z' < 'a'), DOUBLE prints rounded. */
        CHECK_INT(mbq_chunk_key_check(en, ke, 1), MBQ_ESCHEMA);
        CHECK_CONTAINS(mbq_error_last(), "key column 'e'");
        CHECK_INT(mbq_chunk_key_check(fl, kf, 1), MBQ_ESCHEMA);
        CHECK_INT(mbq_chunk_key_check(fl, kx, 1), MBQ_ESCHEMA);
        CHECK_INT(mbq_chunk_key_check(fl, kx, 0), MBQ_ESCHEMA);
    }
    mbq_table_schema_free(en);
    mbq_table_schema_free(fl);
    mbq_mysql_close(c);
}

static void test_damaged_journal_key_is_refused_not_run(void)
{
    mbq_mysql *c = tmy_connect(DB);
    mbq_table_schema *s = c ? schema_of(c, "comp") : NULL;
    const char *key[] = {"id", "k2"};
    mbq_buf w = MBQ_BUF_INIT;
    if (s) {
        CHECK_INT(mbq_mysql_chunk_where(&w, c, s, key, 2, "31", NULL), MBQ_EDATA); /* 1 col */
        CHECK_INT(mbq_mysql_chunk_where(&w, c, s, key, 2, "zz,61", NULL), MBQ_EDATA);
        /* "1 OR 1=1" as the integer column's bytes: not a number. */
        CHECK_INT(mbq_mysql_chunk_where(&w, c, s, key, 2, "31204f5220313d31,61", NULL),
                  MBQ_EDATA);
    }
    mbq_buf_free(&w);
    mbq_table_schema_free(s);
    mbq_mysql_close(c);
}

static void test_key_encoding_is_hex_per_column(void)
{
    const char *v[] = {"a,b", "\0\xff"};
    size_t l[] = {3, 2};
    mbq_buf b = MBQ_BUF_INIT;
    CHECK_INT(mbq_chunk_key_encode(&b, v, l, 2), 0);
    CHECK_STR(b.ptr, "612c62,00ff");
    mbq_buf_free(&b);
}

/* Every chunk extracted with its condition: every row once, in key order. */
static void test_extracting_every_chunk_reads_every_row_once(void)
{
    const char *key[] = {"id", "k2"};
    mbq_mysql *c = tmy_connect(DB);
    mbq_table_schema *s = c ? schema_of(c, "comp") : NULL;
    char **b = NULL;
    size_t n = 0, lines = 0;
    if (!s)
        goto done;
    CHECK_INT(mbq_mysql_chunk_bounds(&b, &n, c, s, key, 2, 150), 0);
    for (size_t i = 0; i <= n; i++) {
        mbq_buf w = MBQ_BUF_INIT, path = MBQ_BUF_INIT;
        mbq_extract_result r = {0};
        mbq_mysql_chunk_where(&w, c, s, key, 2, i ? b[i - 1] : NULL, i < n ? b[i] : NULL);
        mbq_buf_printf(&path, "%s/c%zu.ndjson", dir, i);
        mbq_extract_options o = MBQ_EXTRACT_OPTIONS_INIT;
        o.schema = s;
        o.pk = key;
        o.n_pk = 2;
        o.where = w.ptr;
        o.path = path.ptr;
        o.compress = false;
        CHECK_INT(mbq_mysql_extract(&r, c, &o), 0);
        lines += r.rows;
        mbq_extract_result_free(&r);
        mbq_buf_free(&w);
        mbq_buf_free(&path);
    }
    CHECK_INT(lines, 952);
done:
    if (b)
        mbq_strv_free(b);
    mbq_table_schema_free(s);
    mbq_mysql_close(c);
}

int main(void)
{
    RUN(test_key_encoding_is_hex_per_column);
    test_require_env("MBQ_TEST_MYSQL_PORT");
    setup();
    RUN(test_composite_key_with_skew_and_gaps_partitions_exactly);
    RUN(test_collated_string_key_partitions_in_collation_order);
    RUN(test_binary_key_with_every_byte_partitions_exactly);
    RUN(test_datetime_unsigned_and_negative_decimal_key);
    RUN(test_integer_key_from_statistics_covers_every_row_once);
    RUN(test_small_and_empty_tables_need_no_chunks);
    RUN(test_keys_whose_text_loses_the_order_are_refused);
    RUN(test_damaged_journal_key_is_refused_not_run);
    RUN(test_extracting_every_chunk_reads_every_row_once);
    tmy_end(admin, dir, DB);
    return test_summary();
}
