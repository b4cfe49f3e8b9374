/* Decoding rows from the binlog and encoding them as NDJSON must cost the
 * client no more CPU per row than the snapshot path's extract of the same
 * rows: the table of bench/table.sh (bigint unsigned, int, enum,
 * decimal(12,2), varchar(200), json, datetime(6), timestamp(6)), N rows
 * inserted in one statement, read back through mbq_binlog_next with every
 * value encoded by mbq_typemap_encode into lines, against mbq_mysql_extract
 * (plain NDJSON) of the same table. CPU time of the process, so the
 * extract's writer thread counts. The comparison is made in builds without
 * sanitizers (ASan changes the balance); a sanitizer build prints the
 * figures. MBQ_BINLOG_SPEED_ROWS sets N (default
 * 100000); the figures are printed. Works in database mbq_t_binlog_speed. */
#include <time.h>

#include "test_binlog_util.h"

#include "mbq/typemap.h"

#define DB "mbq_t_binlog_speed"

static MYSQL *admin;
static char *dir;

static double cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void create_table(long rows)
{
    tmy_exec(admin, "CREATE TABLE " DB ".b (id BIGINT UNSIGNED NOT NULL PRIMARY KEY, qty INT NOT NULL,"
                    " status ENUM('new','paid','shipped','cancelled') NOT NULL, price DECIMAL(12,2) NOT NULL,"
                    " note VARCHAR(200) NOT NULL, attrs JSON, created_at DATETIME(6) NOT NULL,"
                    " updated_at TIMESTAMP(6) NOT NULL DEFAULT '2000-01-01 00:00:00', KEY (updated_at))");
    tmy_exec(admin, "INSERT INTO " DB ".b SELECT seq, seq %% 1000, 1 + seq %% 4, (seq %% 100000) / 100,"
                    " CONCAT('note ', seq, ' ', REPEAT(CHAR(97 + seq %% 26), 20 + seq %% 100)),"
                    " JSON_OBJECT('k', seq %% 17, 'tags', JSON_ARRAY('a', seq %% 5), 's', CONCAT('v', seq)),"
                    " '2024-01-01' + INTERVAL seq SECOND + INTERVAL (seq %% 1000000) MICROSECOND,"
                    " '2024-06-01' + INTERVAL seq SECOND + INTERVAL (seq %% 999999) MICROSECOND"
                    " FROM " DB ".seq_1_to_%ld",
             rows);
}

/* Read the binlog from `start` up to `end`, encoding every after image as
 * the extract would; returns the rows. */
static long decode_and_encode(mbq_binlog *b, const mbq_table_schema *s, mbq_binlog_pos end,
                              uint64_t *bytes)
{
    mbq_buf line = MBQ_BUF_INIT;
    char **keys = calloc(s->n_columns, sizeof *keys);
    size_t *keylen = calloc(s->n_columns, sizeof *keylen);
    for (size_t i = 0; i < s->n_columns; i++) {
        mbq_buf k = MBQ_BUF_INIT;
        mbq_buf_json_string(&k, s->columns[i].bq_name, strlen(s->columns[i].bq_name));
        mbq_buf_putc(&k, ':');
        keylen[i] = k.len;
        keys[i] = mbq_buf_detach(&k);
    }
    long rows = 0;
    mbq_binlog_event ev;
    while (tbl_next_data(b, &ev) == 0) {
        for (size_t r = 0; ev.kind == MBQ_BINLOG_ROWS && r < ev.n_rows; r++, rows++) {
            const mbq_binlog_value *v = ev.rows[r].after;
            mbq_buf_clear(&line);
            mbq_buf_putc(&line, '{');
            bool first = true;
            for (size_t i = 0; i < s->n_columns; i++) {
                if (!v[i].data)
                    continue;
                if (!first)
                    mbq_buf_putc(&line, ',');
                mbq_buf_append(&line, keys[i], keylen[i]);
                if (mbq_typemap_encode(&line, s->columns[i].map.enc, v[i].data, v[i].len) < 0)
                    CHECK(0);
                first = false;
            }
            mbq_buf_append(&line, "}\n", 2);
            *bytes += line.len;
        }
        if (ev.kind == MBQ_BINLOG_COMMIT && mbq_binlog_pos_cmp(&ev.pos, &end) >= 0)
            break;
    }
    for (size_t i = 0; i < s->n_columns; i++)
        free(keys[i]);
    free(keys);
    free(keylen);
    mbq_buf_free(&line);
    return rows;
}

static void test_binlog_decoding_costs_no_more_cpu_per_row_than_the_extract(void)
{
    const char *env = getenv("MBQ_BINLOG_SPEED_ROWS");
    long n = env ? atol(env) : 100000;
    mbq_binlog_pos start = tbl_current();
    create_table(n);
    mbq_binlog_pos end = tbl_current();
    mbq_mysql *c = tmy_connect(DB);
    mbq_table_schema *s = NULL;
    CHECK_INT(mbq_mysql_table_schema(&s, c, DB, "b"), 0);
    if (!s)
        return;

    mbq_binlog *b = tbl_open(start, DB, "b", 5000);
    CHECK(b != NULL);
    if (!b)
        return;
    uint64_t bytes = 0;
    double t0 = cpu_s();
    long rows = decode_and_encode(b, s, end, &bytes);
    double binlog_cpu = cpu_s() - t0;
    mbq_binlog_close(b);
    CHECK_INT(rows, n);

    char path[512];
    snprintf(path, sizeof path, "%s/b.ndjson", dir);
    mbq_extract_options o = MBQ_EXTRACT_OPTIONS_INIT;
    o.schema = s;
    o.path = path;
    o.compress = false;
    mbq_extract_result r;
    memset(&r, 0, sizeof r);
    t0 = cpu_s();
    CHECK_INT(mbq_mysql_extract(&r, c, &o), 0);
    double extract_cpu = cpu_s() - t0;
    CHECK_INT(r.rows, n);
    CHECK_INT(r.raw_bytes, bytes); /* the same NDJSON, byte count for byte count */
    printf("  %ld rows: binlog decode+encode %.3f s CPU (%.0f rows/s, %.2f us/row); "
           "extract (plain) %.3f s CPU (%.0f rows/s, %.2f us/row)\n",
           n, binlog_cpu, n / binlog_cpu, binlog_cpu * 1e6 / n, extract_cpu, n / extract_cpu,
           extract_cpu * 1e6 / n);
#if defined(__SANITIZE_ADDRESS__)
    /* ASan taxes the reader's many small appends more than the extract's
     * row copies: the comparison holds for the optimised build only. */
    (void)binlog_cpu;
    printf("  (sanitizer build: figures only, the comparison runs in a plain build)\n");
#else
    CHECK(binlog_cpu <= extract_cpu * 1.1);
#endif
    mbq_extract_result_free(&r);
    mbq_table_schema_free(s);
    mbq_mysql_close(c);
}

int main(void)
{
    test_require_env("MBQ_TEST_MYSQL_PORT");
    tmy_begin(&admin, &dir, DB);
    RUN(test_binlog_decoding_costs_no_more_cpu_per_row_than_the_extract);
    tmy_end(admin, dir, DB);
    return test_summary();
}
