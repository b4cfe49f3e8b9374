/* Unit tests of change data capture without servers: the journal's cdc
 * writes (sql/journal/006_cdc.sql), the apply statements, and the batch
 * writer driven by scripted binlog events (snapshot skip, op/seq lines,
 * primary-key changes, close + journal, discard). */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mbq/error.h"
#include "mbq/journal.h"
#include "mbq/journal_cdc.h"
#include "mbq/util.h"
#include "../src/sync/cdc_internal.h"
#include "test.h"

static char *new_dir(void)
{
    char tmpl[] = "/tmp/mbq-cdc-XXXXXX";
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    mbq_buf b = MBQ_BUF_INIT;
    char tmp[4096];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        mbq_buf_append(&b, tmp, n);
    fclose(f);
    if (!b.ptr)
        return strdup("");
    return mbq_buf_detach(&b);
}

/* ---- journal ---- */

static void test_journal_snapshot_then_stream(void)
{
    char *d = new_dir();
    mbq_journal *j = NULL;
    CHECK_INT(mbq_journal_open(&j, d, MBQ_JOURNAL_WRITE), 0);
    mbq_cdc_table t = {0};
    CHECK_INT(mbq_journal_cdc_table_get(j, &t, "orders"), 0);
    CHECK(t.state == NULL);
    mbq_cdc_table_clear(&t);

    mbq_cdc_table s = {0};
    s.table_name = (char *)"orders";
    s.snapshot_file = (char *)"mysql-bin.000003";
    s.snapshot_pos = 1234;
    s.snapshot_path = (char *)"/x/snap.ndjson";
    s.snapshot_checksum = (char *)"sha256:ab";
    s.snapshot_rows = 7;
    s.snapshot_job_id = (char *)"job1";
    CHECK_INT(mbq_journal_cdc_snapshot_taken(j, &s, 1000), 0);
    CHECK_INT(mbq_journal_cdc_table_get(j, &t, "orders"), 0);
    CHECK_STR(t.state, "snapshot");
    CHECK_STR(t.snapshot_job_id, "job1");
    CHECK_INT(t.snapshot_pos, 1234);
    mbq_cdc_table_clear(&t);

    mbq_cdc_stream st;
    bool found = true;
    CHECK_INT(mbq_journal_cdc_stream_get(j, &st, &found), 0);
    CHECK(!found);
    /* The first snapshot loaded starts the stream at its position. */
    CHECK_INT(mbq_journal_cdc_snapshot_done(j, "orders", 2000), 0);
    CHECK_INT(mbq_journal_cdc_table_get(j, &t, "orders"), 0);
    CHECK_STR(t.state, "streaming");
    CHECK(t.snapshot_path == NULL);
    mbq_cdc_table_clear(&t);
    CHECK_INT(mbq_journal_cdc_stream_get(j, &st, &found), 0);
    CHECK(found);
    CHECK_STR(st.binlog_file, "mysql-bin.000003");
    CHECK_INT(st.binlog_pos, 1234);
    CHECK_STR(st.status, "stopped");
    mbq_cdc_stream_clear(&st);
    /* A later snapshot never moves an existing stream. */
    s.table_name = (char *)"items";
    s.snapshot_pos = 9999;
    CHECK_INT(mbq_journal_cdc_snapshot_taken(j, &s, 3000), 0);
    CHECK_INT(mbq_journal_cdc_snapshot_done(j, "items", 3000), 0);
    CHECK_INT(mbq_journal_cdc_stream_get(j, &st, &found), 0);
    CHECK_INT(st.binlog_pos, 1234);
    mbq_cdc_stream_clear(&st);

    CHECK_INT(mbq_journal_cdc_stream_status(j, "running", 42, NULL, 4000), 0);
    CHECK_INT(mbq_journal_cdc_stream_heard(j, true, 0, 5000), 0);
    CHECK_INT(mbq_journal_cdc_stream_get(j, &st, &found), 0);
    CHECK_STR(st.status, "running");
    CHECK_INT(st.pid, 42);
    CHECK_INT(st.heartbeat_ms, 5000);
    CHECK_INT(st.caught_up_ms, 5000);
    CHECK_INT(st.lag_ms, 0);
    mbq_cdc_stream_clear(&st);
    CHECK_INT(mbq_journal_cdc_stream_heard(j, false, 700, 6000), 0);
    CHECK_INT(mbq_journal_cdc_stream_get(j, &st, &found), 0);
    CHECK_INT(st.caught_up_ms, 5000);
    CHECK_INT(st.lag_ms, 700);
    mbq_cdc_stream_clear(&st);
    CHECK_INT(mbq_journal_cdc_stream_move(j, "mysql-bin.000004", 4, "0-1-9", 123, 7000), 0);
    CHECK_INT(mbq_journal_cdc_stream_get(j, &st, &found), 0);
    CHECK_STR(st.binlog_file, "mysql-bin.000004");
    CHECK_STR(st.gtid, "0-1-9");
    mbq_cdc_stream_clear(&st);
    mbq_journal_close(j);
    free(d);
}

static void fill_batch(mbq_cdc_batch *b, mbq_cdc_batch_table *bt)
{
    memset(b, 0, sizeof *b);
    memset(bt, 0, sizeof *bt);
    b->from_file = (char *)"mysql-bin.000003";
    b->from_pos = 1234;
    b->to_file = (char *)"mysql-bin.000003";
    b->to_pos = 5000;
    b->to_gtid = (char *)"0-1-5";
    b->transactions = 2;
    b->rows = 3;
    b->first_event_ms = 100;
    b->last_event_ms = 200;
    bt->table_name = (char *)"orders";
    bt->state = (char *)"closed";
    bt->path = (char *)"/x/b.ndjson";
    bt->checksum = (char *)"sha256:cd";
    bt->rows = 3;
    bt->staging_table = (char *)"orders__mbq_cdc_x";
    bt->rows_inserted = 2;
    bt->rows_deleted = 1;
    b->tables = bt;
    b->n_tables = 1;
}

static void test_journal_batch_close_commit(void)
{
    char *d = new_dir();
    mbq_journal *j = NULL;
    CHECK_INT(mbq_journal_open(&j, d, MBQ_JOURNAL_WRITE), 0);
    mbq_cdc_table s = {0};
    s.table_name = (char *)"orders";
    s.snapshot_file = (char *)"mysql-bin.000003";
    s.snapshot_pos = 1234;
    CHECK_INT(mbq_journal_cdc_snapshot_taken(j, &s, 1), 0);
    CHECK_INT(mbq_journal_cdc_snapshot_done(j, "orders", 2), 0);

    mbq_cdc_batch b;
    mbq_cdc_batch_table bt;
    fill_batch(&b, &bt);
    CHECK_INT(mbq_journal_cdc_batch_close(j, &b, 10), 0);
    CHECK(b.batch_id > 0);

    /* A resume finds it closed, with its table part. */
    mbq_cdc_batch open;
    bool found = false;
    CHECK_INT(mbq_journal_cdc_batch_open_get(j, &open, &found), 0);
    CHECK(found);
    CHECK_INT(open.batch_id, b.batch_id);
    CHECK_INT(open.n_tables, 1);
    if (open.n_tables == 1) {
        CHECK_STR(open.tables[0].path, "/x/b.ndjson");
        CHECK_STR(open.tables[0].staging_table, "orders__mbq_cdc_x");
        open.tables[0].attempt = 1;
        free(open.tables[0].state);
        open.tables[0].state = strdup("merged");
        open.tables[0].merge_job_id = strdup("m1");
        CHECK_INT(mbq_journal_cdc_batch_table_save(j, open.batch_id, &open.tables[0], 11), 0);
    }
    mbq_cdc_batch_clear(&open);
    CHECK_INT(mbq_journal_cdc_batch_open_get(j, &open, &found), 0);
    CHECK(found && open.n_tables == 1 && strcmp(open.tables[0].state, "merged") == 0);
    CHECK_INT(open.tables[0].attempt, 1);

    /* The commit moves the stream and adds the counters in one go. */
    CHECK_INT(mbq_journal_cdc_batch_commit(j, &open, 50, 12), 0);
    mbq_cdc_batch_clear(&open);
    CHECK_INT(mbq_journal_cdc_batch_open_get(j, &open, &found), 0);
    CHECK(!found);
    mbq_cdc_stream st;
    CHECK_INT(mbq_journal_cdc_stream_get(j, &st, &found), 0);
    CHECK_INT(st.binlog_pos, 5000);
    CHECK_STR(st.gtid, "0-1-5");
    CHECK_INT(st.lag_ms, 50);
    mbq_cdc_stream_clear(&st);
    mbq_cdc_table t;
    CHECK_INT(mbq_journal_cdc_table_get(j, &t, "orders"), 0);
    CHECK_INT(t.rows_inserted, 2);
    CHECK_INT(t.rows_deleted, 1);
    mbq_cdc_table_clear(&t);
    /* Committing twice is refused (the batch is no longer closed). */
    fill_batch(&b, &bt);
    CHECK_INT(mbq_journal_cdc_batch_close(j, &b, 20), 0);
    CHECK_INT(mbq_journal_cdc_batch_commit(j, &b, 0, 21), 0);
    CHECK(mbq_journal_cdc_batch_commit(j, &b, 0, 22) < 0);
    CHECK_INT(mbq_journal_cdc_table_get(j, &t, "orders"), 0);
    CHECK_INT(t.rows_inserted, 4);
    mbq_cdc_table_clear(&t);
    /* An abandoned batch is not resumed and does not move the stream. */
    fill_batch(&b, &bt);
    b.to_pos = 9000;
    CHECK_INT(mbq_journal_cdc_batch_close(j, &b, 30), 0);
    CHECK_INT(mbq_journal_cdc_batch_abandon(j, b.batch_id, 31), 0);
    CHECK_INT(mbq_journal_cdc_batch_open_get(j, &open, &found), 0);
    CHECK(!found);
    CHECK_INT(mbq_journal_cdc_stream_get(j, &st, &found), 0);
    CHECK_INT(st.binlog_pos, 5000);
    mbq_cdc_stream_clear(&st);
    mbq_journal_close(j);
    free(d);
}

/* ---- statements ---- */

static void test_sql_last_and_merge(void)
{
    mbq_buf b = MBQ_BUF_INIT;
    const char *key[] = {"id"};
    const char *cols[] = {"id", "v"};
    CHECK_INT(cdc_sql_last(&b, "`p`.`d`.`s`", "`p`.`d`.`s_last`", key, 1), 0);
    CHECK_STR(b.ptr, "CREATE OR REPLACE TABLE `p`.`d`.`s_last` AS SELECT * FROM `p`.`d`.`s` "
                     "WHERE TRUE QUALIFY ROW_NUMBER() OVER (PARTITION BY `id` ORDER BY `_mbq_seq` DESC) = 1");
    mbq_buf_clear(&b);
    CHECK_INT(cdc_sql_merge(&b, "`p`.`d`.`t`", "`p`.`d`.`s_last`", key, 1, cols, 2,
                            MBQ_DELETES_HARD),
              0);
    CHECK_STR(b.ptr, "MERGE `p`.`d`.`t` T USING `p`.`d`.`s_last` S ON T.`id` = S.`id` "
                     "WHEN MATCHED AND S.`_mbq_op` = 'D' THEN DELETE "
                     "WHEN MATCHED THEN UPDATE SET `id` = S.`id`, `v` = S.`v` "
                     "WHEN NOT MATCHED AND S.`_mbq_op` != 'D' THEN INSERT (`id`, `v`) "
                     "VALUES (S.`id`, S.`v`)");
    mbq_buf_clear(&b);
    CHECK_INT(cdc_sql_merge(&b, "T1", "S1", key, 1, cols, 2, MBQ_DELETES_SOFT), 0);
    CHECK_STR(b.ptr, "MERGE T1 T USING S1 S ON T.`id` = S.`id` "
                     "WHEN MATCHED THEN UPDATE SET `id` = S.`id`, `v` = S.`v`, "
                     "`_mbq_deleted` = (S.`_mbq_op` = 'D'), `_mbq_deleted_at` = "
                     "IF(S.`_mbq_op` = 'D', CURRENT_TIMESTAMP(), NULL) "
                     "WHEN NOT MATCHED AND S.`_mbq_op` != 'D' THEN INSERT (`id`, `v`, "
                     "`_mbq_deleted`) VALUES (S.`id`, S.`v`, FALSE)");
    mbq_buf_clear(&b);
    CHECK_INT(cdc_sql_merge(&b, "T1", "S1", key, 1, cols, 2, MBQ_DELETES_OFF), 0);
    CHECK(strstr(b.ptr, "DELETE") == NULL);
    mbq_buf_clear(&b);
    const char *k2[] = {"a", "b"};
    CHECK_INT(cdc_sql_last(&b, "S", "L", k2, 2), 0);
    CHECK_CONTAINS(b.ptr, "PARTITION BY `a`, `b` ORDER BY");
    mbq_buf_clear(&b);
    CHECK(cdc_sql_last(&b, "S", "L", k2, 0) < 0);
    mbq_buf_free(&b);
}

/* ---- the batch writer ---- */

static mbq_table_schema *schema_id_v(void)
{
    mbq_table_schema *s = calloc(1, sizeof *s);
    s->database = strdup("db");
    s->table = strdup("orders");
    s->n_columns = 2;
    s->columns = calloc(2, sizeof *s->columns);
    const char *names[] = {"id", "v"};
    for (int i = 0; i < 2; i++) {
        s->columns[i].name = strdup(names[i]);
        s->columns[i].bq_name = strdup(names[i]);
        s->columns[i].data_type = strdup(i ? "varchar" : "int");
        s->columns[i].column_type = strdup(i ? "varchar(10)" : "int(11)");
        s->columns[i].map.enc = i ? MBQ_ENC_STRING : MBQ_ENC_INT;
        s->columns[i].map.bq_type = i ? MBQ_BQ_STRING : MBQ_BQ_INT64;
    }
    return s;
}

static mbq_config test_cfg;

static void setup_ctx(cdc_ctx *c, cdc_table *t, char **pk, const char *dir, mbq_journal *j)
{
    memset(c, 0, sizeof *c);
    memset(t, 0, sizeof *t);
    memset(&test_cfg, 0, sizeof test_cfg);
    test_cfg.mysql.database = (char *)"db";
    c->s.cfg = &test_cfg;
    c->s.j = j;
    c->s.staging_dir = strdup(dir);
    t->tc.name = (char *)"orders";
    t->tc.target = (char *)"orders";
    t->tc.primary_key = pk;
    t->tc.n_primary_key = 1;
    t->fd = -1;
    t->job.src = schema_id_v();
    t->streaming = true;
    snprintf(t->snapshot.file, sizeof t->snapshot.file, "mysql-bin.000002");
    t->snapshot.pos = 500;
    c->tables = t;
    c->n_tables = 1;
    snprintf(c->from.file, sizeof c->from.file, "mysql-bin.000002");
    c->from.pos = 400;
}

static mbq_binlog_event rows_event(const char *file, uint64_t pos, const mbq_binlog_row *rows,
                                   size_t n)
{
    static const char *const cols[] = {"v", "id"}; /* the TABLE_MAP's order, not the schema's */
    mbq_binlog_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = MBQ_BINLOG_ROWS;
    snprintf(ev.pos.file, sizeof ev.pos.file, "%s", file);
    ev.pos.pos = pos;
    ev.event_ms = 1700000000000;
    ev.database = "db";
    ev.table = "orders";
    ev.n_columns = 2;
    ev.column_names = cols;
    ev.rows = rows;
    ev.n_rows = n;
    return ev;
}

#define V(s) {s, sizeof s - 1}

static void test_batch_lines_and_close(void)
{
    char *d = new_dir();
    mbq_journal *j = NULL;
    CHECK_INT(mbq_journal_open(&j, d, MBQ_JOURNAL_WRITE), 0);
    char *pk[] = {(char *)"id"};
    cdc_ctx c;
    cdc_table t;
    setup_ctx(&c, &t, pk, d, j);
    CHECK_INT(cdc_table_prepare(&t), 0);

    mbq_binlog_value a1[] = {V("x"), V("1")}, a2[] = {V("y"), V("2")};
    mbq_binlog_value b2[] = {V("y2"), V("2")}, b3[] = {V("y2"), V("3")};
    mbq_binlog_value nullv[] = {{NULL, 0}, V("4")};
    /* In the snapshot (before position 500): skipped. */
    mbq_binlog_row r0[] = {{'I', NULL, a1}};
    mbq_binlog_event ev = rows_event("mysql-bin.000002", 450, r0, 1);
    CHECK_INT(cdc_batch_add(&c, &t, &ev), 0);
    CHECK_INT(c.rows, 0);
    /* After it: an insert, an update, a key change (D + I), a NULL, a delete. */
    mbq_binlog_row r1[] = {{'I', NULL, a1}, {'I', NULL, a2}, {'U', a2, b2}, {'U', b2, b3},
                           {'I', NULL, nullv}, {'D', a1, NULL}};
    ev = rows_event("mysql-bin.000003", 100, r1, 6);
    CHECK_INT(cdc_batch_add(&c, &t, &ev), 0);
    CHECK_INT(c.rows, 7);
    CHECK_INT(t.n_ins, 4);
    CHECK_INT(t.n_upd, 1);
    CHECK_INT(t.n_del, 2);
    snprintf(c.boundary.file, sizeof c.boundary.file, "mysql-bin.000003");
    c.boundary.pos = 200;
    c.transactions = 1;

    mbq_cdc_batch b;
    CHECK_INT(cdc_batch_close(&c, &b), 0);
    CHECK(b.batch_id > 0);
    CHECK_INT(b.n_tables, 1);
    if (b.n_tables == 1) {
        char *text = slurp(b.tables[0].path);
        CHECK_STR(text, "{\"v\":\"x\",\"id\":1,\"_mbq_op\":\"I\",\"_mbq_seq\":0}\n"
                        "{\"v\":\"y\",\"id\":2,\"_mbq_op\":\"I\",\"_mbq_seq\":1}\n"
                        "{\"v\":\"y2\",\"id\":2,\"_mbq_op\":\"U\",\"_mbq_seq\":2}\n"
                        "{\"v\":\"y2\",\"id\":2,\"_mbq_op\":\"D\",\"_mbq_seq\":3}\n"
                        "{\"v\":\"y2\",\"id\":3,\"_mbq_op\":\"I\",\"_mbq_seq\":4}\n"
                        "{\"id\":4,\"_mbq_op\":\"I\",\"_mbq_seq\":5}\n"
                        "{\"v\":\"x\",\"id\":1,\"_mbq_op\":\"D\",\"_mbq_seq\":6}\n");
        char *sum = NULL;
        CHECK_INT(mbq_file_sha256(&sum, b.tables[0].path), 0);
        CHECK_STR(sum, b.tables[0].checksum);
        CHECK_CONTAINS(b.tables[0].staging_table, "orders__mbq_cdc_");
        free(sum);
        free(text);
        unlink(b.tables[0].path);
    }
    mbq_cdc_batch open;
    bool found = false;
    CHECK_INT(mbq_journal_cdc_batch_open_get(j, &open, &found), 0);
    CHECK(found && open.rows == 7 && open.to_pos == 200 && open.from_pos == 400);
    mbq_cdc_batch_clear(&open);
    mbq_cdc_batch_clear(&b);

    /* An empty batch journals nothing. */
    CHECK_INT(cdc_batch_close(&c, &b), 0);
    CHECK_INT(b.batch_id, 0);
    /* A discarded batch leaves no file behind. */
    mbq_binlog_row r2[] = {{'I', NULL, a1}};
    ev = rows_event("mysql-bin.000003", 300, r2, 1);
    CHECK_INT(cdc_batch_add(&c, &t, &ev), 0);
    char *path = t.path ? strdup(t.path) : NULL;
    CHECK(path != NULL);
    cdc_batch_discard(&c);
    CHECK(path && access(path, F_OK) != 0);
    CHECK_INT(c.rows, 0);
    free(path);

    cdc_table_free(&t);
    free(c.s.staging_dir);
    mbq_journal_close(j);
    free(d);
}

/* A value that cannot be encoded fails the event with the column and the
 * position named, and leaves no half line. */
static void test_batch_bad_value(void)
{
    char *d = new_dir();
    mbq_journal *j = NULL;
    CHECK_INT(mbq_journal_open(&j, d, MBQ_JOURNAL_WRITE), 0);
    char *pk[] = {(char *)"id"};
    cdc_ctx c;
    cdc_table t;
    setup_ctx(&c, &t, pk, d, j);
    CHECK_INT(cdc_table_prepare(&t), 0);
    mbq_binlog_value bad[] = {V("x"), V("12ab")};
    mbq_binlog_row r[] = {{'I', NULL, bad}};
    mbq_binlog_event ev = rows_event("mysql-bin.000003", 100, r, 1);
    CHECK(cdc_batch_add(&c, &t, &ev) < 0);
    CHECK_CONTAINS(mbq_error_last(), "column 'id'");
    CHECK_CONTAINS(mbq_error_last(), "mysql-bin.000003:100");
    CHECK_INT(t.out.len, 0);
    cdc_batch_discard(&c);
    cdc_table_free(&t);
    free(c.s.staging_dir);
    mbq_journal_close(j);
    free(d);
}

int main(void)
{
    RUN(test_journal_snapshot_then_stream);
    RUN(test_journal_batch_close_commit);
    RUN(test_sql_last_and_merge);
    RUN(test_batch_lines_and_close);
    RUN(test_batch_bad_value);
    return test_summary();
}
