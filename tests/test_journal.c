/* Unit tests for the journal (sql/journal migrations, lock, table runs,
 * commit atomicity, refusal of corrupt and newer journals) and the cursor
 * helpers. */
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mbq/error.h"
#include "mbq/journal.h"
#include "mbq/machine.h"
#include "mbq/util.h"
#include "test.h"

static char *new_dir(void)
{
    char tmpl[] = "/tmp/mbq-journal-XXXXXX";
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

static void write_file(const char *dir, const char *name, const void *data, size_t len)
{
    mbq_buf p = MBQ_BUF_INIT;
    mbq_buf_printf(&p, "%s/%s", dir, name);
    int fd = open(p.ptr, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
        if (write(fd, data, len) != (ssize_t)len)
            perror("write");
        close(fd);
    }
    mbq_buf_free(&p);
}

static void test_fresh_journal_is_migrated_to_latest(void)
{
    char *d = new_dir();
    mbq_journal *j = NULL;
    CHECK_INT(mbq_journal_open(&j, d, MBQ_JOURNAL_WRITE), 0);
    CHECK(mbq_migration_count >= 1);
    CHECK_INT(mbq_journal_version(j), mbq_migrations[mbq_migration_count - 1].version);
    mbq_journal_close(j);
    /* Reopening applies nothing and keeps the version. */
    CHECK_INT(mbq_journal_open(&j, d, MBQ_JOURNAL_WRITE), 0);
    CHECK_INT(mbq_journal_version(j), mbq_migrations[mbq_migration_count - 1].version);
    mbq_journal_close(j);
    free(d);
}

static void test_second_writer_gets_locked_error(void)
{
    char *d = new_dir();
    mbq_journal *j = NULL, *j2 = NULL;
    CHECK_INT(mbq_journal_open(&j, d, MBQ_JOURNAL_WRITE), 0);
    /* flock is per open file description: a second open in this process
     * conflicts just as another process would. A child proves the latter. */
    pid_t pid = fork();
    if (pid == 0) {
        int rc = mbq_journal_open(&j2, d, MBQ_JOURNAL_WRITE);
        _exit(rc == MBQ_ELOCKED && strstr(mbq_error_last(), "holds the lock") ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* Read-only opens need no lock. */
    CHECK_INT(mbq_journal_open(&j2, d, MBQ_JOURNAL_READONLY), 0);
    mbq_journal_close(j2);
    mbq_journal_close(j);
    /* Released on close (and by the kernel when a holder dies). */
    CHECK_INT(mbq_journal_open(&j, d, MBQ_JOURNAL_WRITE), 0);
    mbq_journal_close(j);
    free(d);
}

/* `sync --jobs`: worker threads attach their own connections to the journal
 * the process has locked, and write at the same time; every write lands. */
typedef struct attach_arg {
    const char *dir;
    int worker;
    int rc;
} attach_arg;

static void *attach_writer(void *p)
{
    attach_arg *a = p;
    mbq_journal *j = NULL;
    a->rc = mbq_journal_open(&j, a->dir, MBQ_JOURNAL_ATTACH);
    for (int i = 0; a->rc == 0 && i < 50; i++) {
        char table[32], cursor[32];
        snprintf(table, sizeof table, "t%d_%d", a->worker, i % 5);
        snprintf(cursor, sizeof cursor, "%d", i);
        a->rc = mbq_journal_table_set_cursor(j, table, cursor, "integer", 1000 + i);
    }
    mbq_journal_close(j);
    mbq_error_clear();
    return NULL;
}

static void test_attached_connections_write_concurrently(void)
{
    char *d = new_dir();
    mbq_journal *j = NULL, *k = NULL;
    /* Nothing to attach to yet: the WRITE connection creates the file. */
    CHECK_INT(mbq_journal_open(&k, d, MBQ_JOURNAL_ATTACH), MBQ_ENOTFOUND);
    CHECK_INT(mbq_journal_open(&j, d, MBQ_JOURNAL_WRITE), 0);
    /* The lock is the process's: ATTACH does not take it (a second WRITE
     * would get MBQ_ELOCKED, see above). */
    pthread_t th[4];
    attach_arg args[4];
    for (int w = 0; w < 4; w++) {
        args[w] = (attach_arg){d, w, -1};
        CHECK_INT(pthread_create(&th[w], NULL, attach_writer, &args[w]), 0);
    }
    for (int w = 0; w < 4; w++) {
        pthread_join(th[w], NULL);
        CHECK_INT(args[w].rc, 0);
    }
    for (int w = 0; w < 4; w++)
        for (int t = 0; t < 5; t++) {
            char table[32], want[8];
            snprintf(table, sizeof table, "t%d_%d", w, t);
            snprintf(want, sizeof want, "%d", 45 + t); /* the last of i % 5 == t */
            mbq_table_state st = {0};
            CHECK_INT(mbq_journal_table_get(j, &st, table), 0);
            CHECK_STR(st.cursor_value ? st.cursor_value : "(null)", want);
            mbq_table_state_clear(&st);
        }
    mbq_journal_close(j);
    free(d);
}

static void test_garbage_journal_is_refused_not_recreated(void)
{
    char *d = new_dir();
    char garbage[4096];
    for (size_t i = 0; i < sizeof garbage; i++)
        garbage[i] = (char)(i * 7 + 3);
    write_file(d, "state.db", garbage, sizeof garbage);
    mbq_journal *j = NULL;
    CHECK_INT(mbq_journal_open(&j, d, MBQ_JOURNAL_WRITE), MBQ_EJOURNAL);
    CHECK_CONTAINS(mbq_error_last(), "left untouched");
    /* The file is still the garbage: nothing was reset. */
    mbq_buf p = MBQ_BUF_INIT, got = MBQ_BUF_INIT;
    mbq_buf_printf(&p, "%s/state.db", d);
    CHECK_INT(mbq_file_read_all(&got, p.ptr), 0);
    CHECK_INT(got.len, sizeof garbage);
    mbq_buf_free(&p);
    mbq_buf_free(&got);
    free(d);
}

static void test_truncated_journal_is_refused(void)
{
    char *d = new_dir();
    mbq_journal *j = NULL;
    CHECK_INT(mbq_journal_open(&j, d, MBQ_JOURNAL_WRITE), 0);
    mbq_journal_table_set_cursor(j, "t", "2024-01-01 00:00:00.000000", "timestamp", 1);
    mbq_journal_close(j);
    mbq_buf p = MBQ_BUF_INIT;
    mbq_buf_printf(&p, "%s/state.db", d);
    CHECK_INT(truncate(p.ptr, 1000), 0);
    int rc = mbq_journal_open(&j, d, MBQ_JOURNAL_WRITE);
    CHECK(rc == MBQ_EJOURNAL || rc == MBQ_EIO);
    CHECK_CONTAINS(mbq_error_last(), "state.db");
    mbq_buf_free(&p);
    free(d);
}

static void test_empty_journal_file_is_refused(void)
{
    char *d = new_dir();
    write_file(d, "state.db", "", 0);
    mbq_journal *j = NULL;
    CHECK_INT(mbq_journal_open(&j, d, MBQ_JOURNAL_WRITE), MBQ_EJOURNAL);
    CHECK_CONTAINS(mbq_error_last(), "is empty (0 bytes)");
    free(d);
}

static void test_newer_journal_version_is_refused(void)
{
    char *d = new_dir();
    mbq_journal *j = NULL;
    CHECK_INT(mbq_journal_open(&j, d, MBQ_JOURNAL_WRITE), 0);
    mbq_journal_close(j);
    mbq_buf p = MBQ_BUF_INIT;
    mbq_buf_printf(&p, "%s/state.db", d);
    sqlite3 *db = NULL;
    CHECK_INT(sqlite3_open(p.ptr, &db), SQLITE_OK);
    CHECK_INT(sqlite3_exec(db, "PRAGMA user_version = 999", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    CHECK_INT(mbq_journal_open(&j, d, MBQ_JOURNAL_WRITE), MBQ_EJOURNAL);
    CHECK_CONTAINS(mbq_error_last(), "schema version 999, newer than this mbq knows");
    CHECK_INT(mbq_journal_open(&j, d, MBQ_JOURNAL_READONLY), MBQ_EJOURNAL);
    mbq_buf_free(&p);
    free(d);
}

static void test_table_run_lifecycle_and_commit(void)
{
    char *d = new_dir();
    mbq_journal *j = NULL;
    CHECK_INT(mbq_journal_open(&j, d, MBQ_JOURNAL_WRITE), 0);
    CHECK_INT(mbq_journal_run_start(j, "run-1", 1000), 0);

    mbq_table_run r = {0};
    r.run_id = strdup("run-1");
    r.last_run_id = strdup("run-1");
    r.table_name = strdup("orders");
    r.state = strdup("schema-check");
    r.started_ms = r.updated_ms = 1000;
    CHECK_INT(mbq_journal_table_run_create(j, &r), 0);
    CHECK(r.id > 0);

    /* A second in-flight run for the same table is refused by the index. */
    mbq_table_run r2 = {0};
    r2.run_id = strdup("run-1");
    r2.table_name = strdup("orders");
    r2.state = strdup("extract");
    CHECK_INT(mbq_journal_table_run_create(j, &r2), MBQ_EINTERNAL);
    mbq_table_run_clear(&r2);

    free(r.state);
    r.state = strdup("merge");
    r.low = strdup("2024-01-01 00:00:00");
    r.high = strdup("2024-01-02 00:00:00");
    r.staged_rows = 42;
    r.load_mode = strdup("merge");
    r.load_job_id = strdup("job-load");
    r.staged_checksum = strdup("sha256:abc");
    r.tail_low = strdup("2024-01-01 23:55:00.000000");
    r.tail_checksum = strdup("sha256:tail");
    /* A MERGE's numDmlAffectedRows (BigQuery reports it for every DML job):
     * an integer like the other counts, kept as such. */
    r.rows_merged = 613;
    CHECK_INT(mbq_journal_table_run_save(j, &r), 0);

    mbq_table_run got;
    bool found = false;
    CHECK_INT(mbq_journal_table_run_in_flight(j, &got, &found, "orders"), 0);
    CHECK(found);
    CHECK_STR(got.state, "merge");
    CHECK_STR(got.high, "2024-01-02 00:00:00");
    CHECK_INT(got.staged_rows, 42);
    CHECK_INT(got.rows_merged, 613);
    mbq_table_run_clear(&got);

    CHECK_INT(mbq_journal_table_run_commit(j, &r, r.high, "timestamp", 42, 2000), 0);
    CHECK_INT(mbq_journal_table_run_in_flight(j, &got, &found, "orders"), 0);
    CHECK(!found);
    mbq_table_state ts;
    CHECK_INT(mbq_journal_table_get(j, &ts, "orders"), 0);
    CHECK_STR(ts.cursor_value, "2024-01-02 00:00:00");
    CHECK_STR(ts.cursor_kind, "timestamp");
    /* The next run compares its window with the tail, not the whole extract. */
    CHECK_STR(ts.last_checksum, "sha256:tail");
    CHECK_STR(ts.last_low, "2024-01-01 23:55:00.000000");
    CHECK_INT(ts.last_rows, 42);
    CHECK_INT(ts.consecutive_failures, 0);
    mbq_table_state_clear(&ts);

    mbq_table_run *pending = NULL;
    int n = 0;
    CHECK_INT(mbq_journal_mirror_pending(j, &pending, &n), 0);
    CHECK_INT(n, 1);
    mbq_table_runs_free(pending, n);
    CHECK_INT(mbq_journal_mirror_set(j, r.id, "done", "job-meta"), 0);
    CHECK_INT(mbq_journal_mirror_pending(j, &pending, &n), 0);
    CHECK_INT(n, 0);
    mbq_table_runs_free(pending, n);

    CHECK_INT(mbq_journal_table_failed(j, "orders", "extract", "boom", 3000), 0);
    CHECK_INT(mbq_journal_table_failed(j, "orders", "extract", "boom", 3001), 0);
    CHECK_INT(mbq_journal_table_get(j, &ts, "orders"), 0);
    CHECK_INT(ts.consecutive_failures, 2);
    CHECK_STR(ts.last_error, "boom");
    mbq_table_state_clear(&ts);

    mbq_event e = {0};
    e.table_name = "orders";
    e.kind = "schema.add_column";
    e.column_name = "note";
    e.new_type = "STRING";
    e.action = "added";
    CHECK_INT(mbq_journal_event_add(j, &e), 0);
    mbq_event *ev = NULL;
    CHECK_INT(mbq_journal_events_recent(j, &ev, &n, "orders", 5), 0);
    CHECK_INT(n, 1);
    if (n == 1)
        CHECK_STR(ev[0].column_name, "note");
    mbq_events_free(ev, n);

    int interrupted = 0;
    CHECK_INT(mbq_journal_runs_mark_interrupted(j, &interrupted), 0);
    CHECK_INT(interrupted, 1);
    mbq_table_run_clear(&r);
    mbq_journal_close(j);
    free(d);
}

/* A journal written by version 1 of the schema is migrated on open and keeps
 * every committed cursor. */
static void test_migration_from_v1_keeps_cursors(void)
{
    char *d = new_dir();
    mbq_buf p = MBQ_BUF_INIT;
    mbq_buf_printf(&p, "%s/state.db", d);
    sqlite3 *db = NULL;
    CHECK_INT(sqlite3_open(p.ptr, &db), SQLITE_OK);
    CHECK_STR(mbq_migrations[0].name, "001_init.sql");
    CHECK_INT(sqlite3_exec(db, mbq_migrations[0].sql, NULL, NULL, NULL), SQLITE_OK);
    CHECK_INT(sqlite3_exec(db,
                           "PRAGMA user_version = 1;"
                           "INSERT INTO tables (table_name, cursor_value, cursor_kind, updated_ms) "
                           "VALUES ('orders', '2024-05-05 05:05:05.000000', 'timestamp', 1);",
                           NULL, NULL, NULL),
              SQLITE_OK);
    sqlite3_close(db);
    mbq_journal *j = NULL;
    CHECK_INT(mbq_journal_open(&j, d, MBQ_JOURNAL_WRITE), 0);
    CHECK_INT(mbq_journal_version(j), mbq_migrations[mbq_migration_count - 1].version);
    CHECK(mbq_journal_version(j) >= 2);
    mbq_table_state ts;
    CHECK_INT(mbq_journal_table_get(j, &ts, "orders"), 0);
    CHECK_STR(ts.cursor_value, "2024-05-05 05:05:05.000000");
    mbq_table_state_clear(&ts);
    mbq_journal_close(j);
    mbq_buf_free(&p);
    free(d);
}

static void test_cursor_normalize_and_lookback(void)
{
    char *s = NULL;
    CHECK_INT(mbq_cursor_normalize(&s, "timestamp", "2024-03-01 12:00:00"), 0);
    CHECK_STR(s, "2024-03-01 12:00:00.000000");
    free(s);
    CHECK_INT(mbq_cursor_normalize(&s, "timestamp", "2024-03-01T12:00:00.5Z"), 0);
    CHECK_STR(s, "2024-03-01 12:00:00.500000");
    free(s);
    CHECK_INT(mbq_cursor_normalize(&s, "timestamp", "2024-02-30 00:00:00"), MBQ_ECONFIG);
    CHECK_CONTAINS(mbq_error_last(), "cannot parse cursor value '2024-02-30 00:00:00'");
    CHECK_INT(mbq_cursor_normalize(&s, "timestamp", "yesterday"), MBQ_ECONFIG);
    CHECK_INT(mbq_cursor_normalize(&s, "integer", "12x"), MBQ_ECONFIG);
    CHECK_CONTAINS(mbq_error_last(), "expected a whole number");
    CHECK_INT(mbq_cursor_normalize(&s, "integer", "-12"), 0);
    CHECK_STR(s, "-12");
    free(s);
    CHECK_INT(mbq_cursor_minus(&s, "timestamp", "2024-03-01 00:02:00.250000", 5 * 60 * 1000), 0);
    CHECK_STR(s, "2024-02-29 23:57:00.250000");
    free(s);
    CHECK_INT(mbq_cursor_minus(&s, "integer", "100", 5000), 0);
    CHECK_STR(s, "100");
    free(s);
    CHECK_INT(mbq_cursor_minus(&s, "timestamp", "2024-03-01 00:00:00", 0), 0);
    CHECK_STR(s, "2024-03-01 00:00:00");
    free(s);
}

static void test_state_names_round_trip(void)
{
    for (int i = 0; i < MBQ_ST__COUNT; i++) {
        mbq_state s;
        CHECK_INT(mbq_state_parse(&s, mbq_state_name((mbq_state)i)), 0);
        CHECK_INT(s, i);
    }
    mbq_state s;
    CHECK_INT(mbq_state_parse(&s, "bogus"), MBQ_EJOURNAL);
}

int main(void)
{
    RUN(test_fresh_journal_is_migrated_to_latest);
    RUN(test_second_writer_gets_locked_error);
    RUN(test_attached_connections_write_concurrently);
    RUN(test_garbage_journal_is_refused_not_recreated);
    RUN(test_truncated_journal_is_refused);
    RUN(test_empty_journal_file_is_refused);
    RUN(test_newer_journal_version_is_refused);
    RUN(test_table_run_lifecycle_and_commit);
    RUN(test_migration_from_v1_keeps_cursors);
    RUN(test_cursor_normalize_and_lookback);
    RUN(test_state_names_round_trip);
    return test_summary();
}
