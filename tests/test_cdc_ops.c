/* The operator's side of change data capture on a journal filled with SQL
 * (sql/journal/006_cdc.sql): the read accessors, the follower's liveness and
 * lag, reset's re-snapshot, the dashboard's health rule, panel, JSON and
 * /metrics families for cdc tables, and `mbq-state inspect` / `reset` on
 * them (the reset refused while `mbq cdc` holds cdc.lock). */
#include <fcntl.h>
#include <json-c/json.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mbq/config.h"
#include "mbq/error.h"
#include "mbq/journal.h"
#include "mbq/journal_cdc_read.h"
#include "mbq/log.h"
#include "mbq/server.h"
#include "mbq/util.h"
#include "test.h"

static char dir[256];
static char cfg_path[300];
static const int64_t NOW = INT64_C(1767225600000); /* 2026-01-01 00:00:00 UTC */

static void sql(const char *stmt)
{
    char path[320];
    sqlite3 *db = NULL;
    char *err = NULL;
    snprintf(path, sizeof path, "%s/state.db", dir);
    CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    if (sqlite3_exec(db, stmt, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "  sql failed: %s: %s\n", err ? err : "?", stmt);
        test_failed_checks++;
    }
    sqlite3_free(err);
    sqlite3_close(db);
}

/* The follower's state at NOW: running, heard 2 s ago, 3.5 s behind. */
static void fill(int64_t updated_ms, const char *status)
{
    char buf[2048];
    sql("DELETE FROM cdc_stream; DELETE FROM cdc_tables; DELETE FROM cdc_batches;");
    snprintf(buf, sizeof buf,
             "INSERT INTO cdc_stream (id, binlog_file, binlog_pos, gtid, event_ms, heartbeat_ms, "
             "caught_up_ms, lag_ms, pid, status, error, updated_ms) VALUES (1, "
             "'mysql-bin.000007', 4242, '0-1-99', %lld, %lld, %lld, 3500, 1234, '%s', NULL, "
             "%lld);",
             (long long)(NOW - 5000), (long long)updated_ms, (long long)updated_ms,
             status, (long long)updated_ms);
    sql(buf);
    snprintf(buf, sizeof buf,
             "INSERT INTO cdc_tables (table_name, state, snapshot_file, snapshot_pos, "
             "rows_inserted, rows_updated, rows_deleted, last_batch_id, last_applied_ms, error, "
             "updated_ms) VALUES "
             "('orders', 'streaming', 'mysql-bin.000003', 120, 1000, 200, 30, 9, %lld, NULL, %lld),"
             "('items', 'failed', 'mysql-bin.000004', 7, 5, 0, 0, NULL, NULL, "
             "'schema of ''items'' changed: <b>bad</b>', %lld);",
             (long long)(NOW - 1000), (long long)NOW, (long long)NOW);
    sql(buf);
    sql("INSERT INTO cdc_batches (batch_id, from_file, from_pos, to_file, to_pos, state, rows, "
        "closed_ms, committed_ms) VALUES "
        "(8, 'mysql-bin.000007', 100, 'mysql-bin.000007', 200, 'committed', 10, 1000, 1500), "
        "(9, 'mysql-bin.000007', 200, 'mysql-bin.000007', 4242, 'committed', 40, 2000, 2600), "
        "(10, 'mysql-bin.000007', 4242, 'mysql-bin.000007', 5000, 'closed', 3, 3000, NULL);");
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/mbq-cdcops-%d", (int)getpid());
    test_remove_tree(dir);
    CHECK_INT(mkdir(dir, 0700), 0);
    mbq_journal *j = NULL;
    CHECK_INT(mbq_journal_open(&j, dir, MBQ_JOURNAL_WRITE), 0);
    CHECK(mbq_journal_version(j) >= 6);
    mbq_journal_close(j);
    snprintf(cfg_path, sizeof cfg_path, "%s/mbq.yml", dir);
    FILE *f = fopen(cfg_path, "w");
    CHECK(f != NULL);
    if (!f)
        return;
    fprintf(f, "tables:\n"
               "  - {name: orders, primary_key: id, mode: cdc}\n"
               "  - {name: items, primary_key: id, mode: cdc}\n"
               "  - {name: fresh, primary_key: id, mode: cdc}\n"
               "  - {name: plain, primary_key: id}\n"
               "mysql: {user: u, database: shop}\n"
               "bigquery: {project_id: my-project, dataset: ds, "
               "endpoint: 'http://127.0.0.1:9'}\n"
               "state: {dir: %s}\n"
               "cdc: {heartbeat: 2s}\n",
            dir);
    fclose(f);
}

static mbq_config *load_cfg(void)
{
    mbq_config *cfg = NULL;
    CHECK_INT(mbq_config_load(&cfg, cfg_path), 0);
    return cfg;
}

static void test_read_accessors(void)
{
    fill(NOW - 2000, "running");
    mbq_journal *j = NULL;
    CHECK_INT(mbq_journal_open(&j, dir, MBQ_JOURNAL_READONLY), 0);
    if (!j)
        return;
    mbq_cdc_stream_view s;
    bool found = false;
    CHECK_INT(mbq_journal_cdc_read_stream(j, &s, &found), 0);
    CHECK(found);
    CHECK_STR(s.binlog_file, "mysql-bin.000007");
    CHECK_INT(s.binlog_pos, 4242);
    CHECK_STR(s.gtid, "0-1-99");
    CHECK_INT(s.lag_ms, 3500);
    CHECK_INT(s.pid, 1234);
    CHECK_STR(s.status, "running");
    mbq_cdc_stream_view_clear(&s);

    mbq_cdc_table_view t;
    CHECK_INT(mbq_journal_cdc_read_table(j, &t, &found, "orders"), 0);
    CHECK(found);
    CHECK_STR(t.state, "streaming");
    CHECK_STR(t.snapshot_file, "mysql-bin.000003");
    CHECK_INT(t.snapshot_pos, 120);
    CHECK_INT(t.rows_inserted, 1000);
    CHECK_INT(t.rows_updated, 200);
    CHECK_INT(t.rows_deleted, 30);
    CHECK_INT(t.last_batch_id, 9);
    mbq_cdc_table_view_clear(&t);
    CHECK_INT(mbq_journal_cdc_read_table(j, &t, &found, "fresh"), 0);
    CHECK(!found);
    CHECK(t.state == NULL);

    mbq_cdc_table_view *v = NULL;
    size_t n = 0;
    CHECK_INT(mbq_journal_cdc_read_tables(j, &v, &n), 0);
    CHECK_INT(n, 2);
    if (n == 2) {
        CHECK_STR(v[0].table_name, "items");
        CHECK_INT(v[0].last_batch_id, -1);
        CHECK_STR(v[1].table_name, "orders");
    }
    mbq_cdc_table_views_free(v, n);

    mbq_cdc_batches_view b;
    CHECK_INT(mbq_journal_cdc_read_batches(j, &b), 0);
    CHECK_INT(b.pending, 1);
    CHECK_INT(b.committed, 2);
    CHECK_INT(b.last_id, 9);
    CHECK_INT(b.last_rows, 40);
    CHECK_INT(b.last_apply_ms, 600);
    mbq_journal_close(j);
}

static void test_up_and_lag(void)
{
    mbq_cdc_stream_view s = {0};
    s.status = "running";
    s.updated_ms = NOW - 14000;
    s.lag_ms = 2000;
    /* Within 3 heartbeats (5 s: 15 s) it is up, and the lag is journaled. */
    CHECK(mbq_cdc_stream_up(&s, 5000, NOW));
    CHECK_INT(mbq_cdc_lag_now_ms(&s, true, NOW), 2000);
    /* Past them a 'running' follower is a dead one (kill -9): its lag
     * grows with the silence. */
    CHECK(!mbq_cdc_stream_up(&s, 4000, NOW));
    CHECK_INT(mbq_cdc_lag_now_ms(&s, false, NOW), 16000);
    s.status = "stopped";
    s.updated_ms = NOW;
    CHECK(!mbq_cdc_stream_up(&s, 5000, NOW));
    CHECK_INT(mbq_cdc_lag_now_ms(&s, false, NOW), 2000);
    CHECK_INT(mbq_cdc_lag_now_ms(NULL, false, NOW), -1);
}

static void test_resnapshot(void)
{
    fill(NOW, "stopped");
    mbq_journal *j = NULL;
    CHECK_INT(mbq_journal_open(&j, dir, MBQ_JOURNAL_WRITE), 0);
    if (!j)
        return;
    char *old = NULL;
    CHECK_INT(mbq_journal_begin(j), 0);
    CHECK_INT(mbq_journal_cdc_resnapshot(j, &old, "items", NOW + 1), 0);
    CHECK_STR(old, "failed");
    free(old);
    CHECK_INT(mbq_journal_cdc_resnapshot(j, &old, "fresh", NOW + 1), 0);
    CHECK(old == NULL);
    CHECK_INT(mbq_journal_commit(j), 0);
    mbq_cdc_table_view t;
    bool found = false;
    CHECK_INT(mbq_journal_cdc_read_table(j, &t, &found, "items"), 0);
    CHECK_STR(t.state, "resnapshot");
    CHECK(t.error == NULL);
    /* The snapshot position stays for the new snapshot to replace. */
    CHECK_STR(t.snapshot_file, "mysql-bin.000004");
    CHECK_INT(t.updated_ms, NOW + 1);
    mbq_cdc_table_view_clear(&t);
    mbq_journal_close(j);
}

static void load_dash(mbq_dash *d, const mbq_config *cfg, const char *only)
{
    mbq_dash_query q = {only, 5, 5, 5};
    CHECK_INT(mbq_dash_load(d, dir, cfg, &q, NOW), 0);
    d->healthy_within_ms = 3600 * 1000;
}

static const mbq_dash_table *dash_table(const mbq_dash *d, const char *name)
{
    for (size_t i = 0; i < d->n_tables; i++)
        if (strcmp(d->tables[i].name, name) == 0)
            return &d->tables[i];
    return NULL;
}

static void test_health_rule(void)
{
    mbq_config *cfg = load_cfg();
    if (!cfg)
        return;
    mbq_dash d;
    mbq_buf why = MBQ_BUF_INIT;
    fill(NOW - 2000, "running");
    load_dash(&d, cfg, NULL);
    const mbq_dash_table *o = dash_table(&d, "orders"), *it = dash_table(&d, "items"),
                         *fr = dash_table(&d, "fresh"), *pl = dash_table(&d, "plain");
    CHECK(o && it && fr && pl);
    if (o && it && fr && pl) {
        CHECK(d.have_cdc && d.cdc.up);
        CHECK(o->cdc_mode && !pl->cdc_mode);
        CHECK(mbq_dash_table_healthy(&d, o, NULL));
        CHECK_STR(mbq_dash_table_status(&d, o), "streaming");
        CHECK_INT(mbq_dash_lag_ms(&d, o), 3500);
        CHECK(!mbq_dash_table_healthy(&d, it, &why));
        CHECK_CONTAINS(mbq_buf_cstr(&why), "schema of 'items' changed");
        CHECK_STR(mbq_dash_table_status(&d, it), "failed");
        CHECK(!mbq_dash_table_healthy(&d, fr, NULL));
        CHECK_STR(mbq_dash_table_status(&d, fr), "no snapshot");
        CHECK_INT(mbq_dash_lag_ms(&d, fr), -1);
    }
    mbq_dash_free(&d);
    /* Killed -9: 'running' but silent for a minute (heartbeat 2 s). */
    fill(NOW - 60000, "running");
    load_dash(&d, cfg, NULL);
    o = dash_table(&d, "orders");
    mbq_buf_clear(&why);
    CHECK(!d.cdc.up);
    if (o) {
        CHECK(!mbq_dash_table_healthy(&d, o, &why));
        CHECK_CONTAINS(mbq_buf_cstr(&why), "no 'mbq cdc' is following the binlog");
        CHECK_STR(mbq_dash_table_status(&d, o), "down");
        CHECK_INT(mbq_dash_lag_ms(&d, o), 63500);
    }
    mbq_dash_free(&d);
    /* Run from cron with --once: stopped 10 minutes ago is fine. */
    fill(NOW - 600000, "stopped");
    load_dash(&d, cfg, NULL);
    o = dash_table(&d, "orders");
    if (o)
        CHECK(mbq_dash_table_healthy(&d, o, NULL));
    /* ... unless the lag passes healthy_within. */
    d.healthy_within_ms = 60000;
    mbq_buf_clear(&why);
    if (o) {
        CHECK(!mbq_dash_table_healthy(&d, o, &why));
        CHECK_STR(mbq_dash_table_status(&d, o), "down");
    }
    mbq_dash_free(&d);
    mbq_buf_free(&why);
    mbq_config_free(cfg);
}

static void test_metrics_families(void)
{
    mbq_config *cfg = load_cfg();
    if (!cfg)
        return;
    fill(NOW - 2000, "running");
    mbq_dash d;
    mbq_buf m = MBQ_BUF_INIT;
    load_dash(&d, cfg, NULL);
    CHECK_INT(mbq_render_metrics(&m, &d), 0);
    const char *t = mbq_buf_cstr(&m);
    CHECK_CONTAINS(t, "# TYPE mbq_cdc_up gauge\nmbq_cdc_up 1\n");
    CHECK_CONTAINS(t, "mbq_cdc_lag_seconds 3.500\n");
    CHECK_CONTAINS(t, "mbq_cdc_position_info{file=\"mysql-bin.000007\"} 4242\n");
    CHECK_CONTAINS(t, "# TYPE mbq_cdc_rows_applied_total counter\n");
    CHECK_CONTAINS(t, "mbq_cdc_rows_applied_total{table=\"orders\",op=\"insert\"} 1000\n");
    CHECK_CONTAINS(t, "mbq_cdc_rows_applied_total{table=\"orders\",op=\"update\"} 200\n");
    CHECK_CONTAINS(t, "mbq_cdc_rows_applied_total{table=\"orders\",op=\"delete\"} 30\n");
    CHECK_CONTAINS(t, "mbq_cdc_table_state{table=\"items\",state=\"failed\"} 1\n");
    CHECK_CONTAINS(t, "mbq_cdc_batches_pending 1\n");
    /* A followed table is judged by its stream; sync families skip it. */
    CHECK_CONTAINS(t, "mbq_table_healthy{table=\"orders\"} 1\n");
    CHECK(!strstr(t, "mbq_table_up{table=\"orders\"}"));
    CHECK_CONTAINS(t, "mbq_table_up{table=\"plain\"} 0\n");
    mbq_buf_clear(&m);
    /* A dead follower is down, and its lag keeps growing. */
    mbq_dash_free(&d);
    fill(NOW - 60000, "running");
    load_dash(&d, cfg, NULL);
    CHECK_INT(mbq_render_metrics(&m, &d), 0);
    CHECK_CONTAINS(mbq_buf_cstr(&m), "mbq_cdc_up 0\n");
    CHECK_CONTAINS(mbq_buf_cstr(&m), "mbq_cdc_lag_seconds 63.500\n");
    mbq_dash_free(&d);
    mbq_buf_free(&m);

    /* The textfile for `mbq cdc --once`: next to metrics_file. */
    char prom[400], want[420];
    snprintf(prom, sizeof prom, "%s/mbq.prom", dir);
    snprintf(want, sizeof want, "%s/mbq-cdc.prom", dir);
    CHECK_INT(mbq_cdc_metrics_write(prom, dir, cfg, NOW), 0);
    mbq_buf f = MBQ_BUF_INIT;
    CHECK_INT(mbq_file_read_all(&f, want), 0);
    CHECK_CONTAINS(mbq_buf_cstr(&f), "mbq_cdc_position_info{file=\"mysql-bin.000007\"} 4242\n");
    CHECK(!strstr(mbq_buf_cstr(&f), "mbq_table_"));
    struct stat st;
    CHECK_INT(stat(want, &st), 0);
    CHECK_INT(st.st_mode & 0777, 0644);
    mbq_buf_free(&f);
    mbq_config_free(cfg);
}

/* A table name is a label value: quotes, backslashes and newlines are
 * escaped, so that no name can forge a sample. Served without a config,
 * the journal's cdc tables are the families' rows. */
static void test_hostile_name_in_labels(void)
{
    fill(NOW - 2000, "running");
    sql("INSERT INTO cdc_tables (table_name, state, rows_inserted, updated_ms) VALUES "
        "('we\"ird' || char(10) || 'x\\y} 1', 'streaming', 5, 0);");
    mbq_dash d;
    mbq_buf m = MBQ_BUF_INIT;
    load_dash(&d, NULL, NULL);
    CHECK_INT(mbq_render_metrics(&m, &d), 0);
    CHECK_CONTAINS(mbq_buf_cstr(&m),
                   "mbq_cdc_rows_applied_total{table=\"we\\\"ird\\nx\\\\y} 1\",op=\"insert\"} 5\n");
    mbq_dash_free(&d);
    mbq_buf_free(&m);
}

static void test_no_cdc_renders_nothing(void)
{
    fill(NOW, "stopped");
    sql("DELETE FROM cdc_stream; DELETE FROM cdc_tables; DELETE FROM cdc_batches;");
    mbq_config *cfg = NULL;
    const char *y = "tables: [{name: plain, primary_key: id}]\nmysql: {user: u, database: d}\n"
                    "bigquery: {project_id: my-project, dataset: ds}\n";
    CHECK_INT(mbq_config_parse(&cfg, y, strlen(y), "t.yml"), 0);
    mbq_dash d;
    mbq_buf m = MBQ_BUF_INIT;
    load_dash(&d, cfg, NULL);
    CHECK(!d.have_cdc);
    CHECK_INT(mbq_render_metrics(&m, &d), 0);
    CHECK(!strstr(mbq_buf_cstr(&m), "mbq_cdc_"));
    mbq_buf_clear(&m);
    CHECK_INT(mbq_render_overview(&m, &d), 0);
    CHECK(!strstr(mbq_buf_cstr(&m), "Change data capture"));
    mbq_buf_clear(&m);
    CHECK_INT(mbq_render_tables_json(&m, &d), 0);
    CHECK_CONTAINS(mbq_buf_cstr(&m), "\"cdc\":null");
    mbq_dash_free(&d);
    mbq_buf_free(&m);
    mbq_config_free(cfg);
}

static void test_pages_and_json(void)
{
    mbq_config *cfg = load_cfg();
    if (!cfg)
        return;
    fill(NOW - 2000, "running");
    mbq_dash d;
    mbq_buf m = MBQ_BUF_INIT;
    load_dash(&d, cfg, NULL);
    CHECK_INT(mbq_render_overview(&m, &d), 0);
    const char *h = mbq_buf_cstr(&m);
    CHECK_CONTAINS(h, "<h2 id=\"cdc\">Change data capture</h2>");
    CHECK_CONTAINS(h, "<code>mysql-bin.000007:4242</code>");
    CHECK_CONTAINS(h, "<span class=\"badge ok\">running</span> pid 1234");
    CHECK_CONTAINS(h, "<tr class=\"cdc-row\" data-table=\"orders\">");
    CHECK_CONTAINS(h, "<td class=\"num\">1,000</td><td class=\"num\">200</td>"
                      "<td class=\"num\">30</td>");
    /* Journal text is escaped. */
    CHECK_CONTAINS(h, "schema of &#39;items&#39; changed: &lt;b&gt;bad&lt;/b&gt;");
    CHECK(!strstr(h, "<b>bad</b>"));
    CHECK_CONTAINS(h, "<span class=\"badge bad\">no snapshot</span>");
    mbq_buf_clear(&m);
    CHECK_INT(mbq_render_tables_json(&m, &d), 0);
    json_object *root = json_tokener_parse(mbq_buf_cstr(&m));
    CHECK(root != NULL);
    json_object *c = NULL, *x = NULL;
    CHECK(json_object_object_get_ex(root, "cdc", &c));
    CHECK(json_object_object_get_ex(c, "lag_seconds", &x) &&
          json_object_get_double(x) == 3.5);
    CHECK(json_object_object_get_ex(c, "up", &x) && json_object_get_boolean(x));
    mbq_buf_clear(&m);
    json_object_put(root);
    mbq_dash_free(&d);
    load_dash(&d, cfg, "orders");
    CHECK_INT(mbq_render_table_page(&m, &d), 0);
    CHECK_CONTAINS(mbq_buf_cstr(&m), "<dl class=\"facts\" id=\"cdc-table\"><dt>State</dt><dd>"
                                     "<span class=\"badge ok\">streaming</span>");
    CHECK_CONTAINS(mbq_buf_cstr(&m), "<dt>Rows applied (I / U / D)</dt><dd>1,000 / 200 / 30");
    mbq_dash_free(&d);
    mbq_buf_free(&m);
    mbq_config_free(cfg);
}

/* Run `mbq-state ARGS` and return its exit status; stdout into *out. */
static int state_cmd(mbq_buf *out, const char *args)
{
    const char *bin = getenv("MBQ_STATE_BIN");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' %s --config '%s' 2>&1", bin ? bin : "mbq-state", args,
             cfg_path);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0)
        mbq_buf_append(out, buf, n);
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_inspect_cli(void)
{
    fill(NOW - 2000, "running");
    mbq_buf out = MBQ_BUF_INIT;
    CHECK_INT(state_cmd(&out, "inspect --json"), 0);
    json_object *root = json_tokener_parse(mbq_buf_cstr(&out));
    CHECK(root != NULL);
    json_object *c = NULL, *s = NULL, *x = NULL, *tables = NULL;
    CHECK(json_object_object_get_ex(root, "cdc", &c));
    CHECK(json_object_object_get_ex(c, "stream", &s));
    CHECK(json_object_object_get_ex(s, "position", &x));
    json_object *f = json_object_object_get(x, "file");
    CHECK_STR(f ? json_object_get_string(f) : NULL, "mysql-bin.000007");
    CHECK_STR(json_object_get_string(json_object_object_get(s, "gtid")), "0-1-99");
    CHECK_STR(json_object_get_string(json_object_object_get(s, "status")), "running");
    CHECK(json_object_object_get_ex(c, "tables", &tables));
    CHECK_INT(json_object_array_length(tables), 3);
    json_object *o = json_object_array_get_idx(tables, 1);
    CHECK_STR(json_object_get_string(json_object_object_get(o, "name")), "orders");
    json_object *rows = json_object_object_get(o, "rows_applied");
    CHECK_INT(json_object_get_int64(json_object_object_get(rows, "deleted")), 30);
    json_object *fresh = json_object_array_get_idx(tables, 2);
    CHECK_STR(json_object_get_string(json_object_object_get(fresh, "name")), "fresh");
    json_object_put(root);
    mbq_buf_clear(&out);
    CHECK_INT(state_cmd(&out, "inspect"), 0);
    CHECK_CONTAINS(mbq_buf_cstr(&out), "change data capture (mbq cdc):");
    CHECK_CONTAINS(mbq_buf_cstr(&out), "mysql-bin.000007:4242");
    CHECK_CONTAINS(mbq_buf_cstr(&out), "mysql-bin.000003:120");
    mbq_buf_free(&out);
}

static void test_reset_cli(void)
{
    fill(NOW, "stopped");
    mbq_buf out = MBQ_BUF_INIT;
    /* A cdc table has no cursor to set. */
    CHECK_INT(state_cmd(&out, "reset orders --cursor 5 --yes"), 2);
    CHECK_CONTAINS(mbq_buf_cstr(&out), "table 'orders' is in mode cdc: only --full applies");
    mbq_buf_clear(&out);
    /* Without --yes nothing changes. */
    CHECK_INT(state_cmd(&out, "reset orders --full"), 0);
    CHECK_CONTAINS(mbq_buf_cstr(&out), "nothing changed");
    mbq_buf_clear(&out);
    /* While `mbq cdc` holds its lock, the reset is refused (exit 75). */
    char lock[320];
    snprintf(lock, sizeof lock, "%s/cdc.lock", dir);
    int fd = open(lock, O_RDWR | O_CREAT, 0600);
    CHECK(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0);
    CHECK_INT(state_cmd(&out, "reset orders --full --yes"), 75);
    CHECK_CONTAINS(mbq_buf_cstr(&out), "'mbq cdc' is running");
    close(fd);
    mbq_journal *j = NULL;
    mbq_cdc_table_view t;
    bool found = false;
    CHECK_INT(mbq_journal_open(&j, dir, MBQ_JOURNAL_READONLY), 0);
    CHECK_INT(mbq_journal_cdc_read_table(j, &t, &found, "orders"), 0);
    CHECK_STR(t.state, "streaming");
    mbq_cdc_table_view_clear(&t);
    mbq_journal_close(j);
    mbq_buf_clear(&out);
    /* Without it, the table is marked and the reset journaled. */
    CHECK_INT(state_cmd(&out, "reset orders --full --yes"), 0);
    CHECK_CONTAINS(mbq_buf_cstr(&out), "done");
    CHECK_INT(mbq_journal_open(&j, dir, MBQ_JOURNAL_READONLY), 0);
    CHECK_INT(mbq_journal_cdc_read_table(j, &t, &found, "orders"), 0);
    CHECK_STR(t.state, "resnapshot");
    mbq_cdc_table_view_clear(&t);
    mbq_event *ev = NULL;
    int n = 0;
    CHECK_INT(mbq_journal_events_recent(j, &ev, &n, "orders", 1), 0);
    CHECK_INT(n, 1);
    if (n == 1) {
        CHECK_STR(ev[0].kind, "reset");
        CHECK_CONTAINS(ev[0].detail, "cdc state streaming -> resnapshot");
    }
    mbq_events_free(ev, n);
    mbq_journal_close(j);
    mbq_buf_free(&out);
}

int main(void)
{
    setup();
    RUN(test_read_accessors);
    RUN(test_up_and_lag);
    RUN(test_resnapshot);
    RUN(test_health_rule);
    RUN(test_metrics_families);
    RUN(test_hostile_name_in_labels);
    RUN(test_no_cdc_renders_nothing);
    RUN(test_pages_and_json);
    RUN(test_inspect_cli);
    RUN(test_reset_cli);
    test_remove_tree(dir);
    return test_summary();
}
