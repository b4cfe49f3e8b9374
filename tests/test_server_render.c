/* Unit tests for the dashboard's snapshot and renderers (src/server/): HTML
 * escaping of hostile table names, errors and events, JSON that stays valid
 * JSON, Prometheus label escaping, one health line per table, the health
 * rule, SVG charts, the token compare and listen address parsing. The
 * snapshot is read from a real journal written through the journal API. */
#include <json-c/json.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mbq/error.h"
#include "mbq/journal.h"
#include "mbq/journal_read.h"
#include "mbq/log.h"
#include "mbq/server.h"
#include "mbq/util.h"
#include "test.h"

/* A name an attacker who can create MySQL tables might choose: markup,
 * quotes, a newline that could forge a metrics or health line, and a byte
 * that is not UTF-8. */
#define HOSTILE "<script>alert(\"x\")</script>&'\nok: fine\xff"
#define HOSTILE_ERR "</td><img src=x onerror=alert(1)> \"quoted\" secret-p4ss"
#define NOW 1800000000000LL

static char dir[64];

static void add_run(mbq_journal *j, const char *table, const char *run_id, int64_t t0, bool ok,
                    int64_t rows, const char *error)
{
    /* Heap strings: the journal API replaces r.state on commit. */
    mbq_table_run r = {0};
    r.run_id = mbq_strdup(run_id);
    r.last_run_id = mbq_strdup(run_id);
    r.table_name = mbq_strdup(table);
    r.state = mbq_strdup("schema-check");
    r.started_ms = t0;
    r.updated_ms = t0;
    CHECK_INT(mbq_journal_table_run_create(j, &r), 0);
    r.low = mbq_strdup("2027-01-01 00:00:00.000000");
    r.high = mbq_strdup("2027-01-15 08:00:00.000000");
    r.staged_rows = rows;
    r.t_schema_ms = 100;
    r.t_extract_ms = 2000;
    r.t_stage_ms = 3000;
    r.t_merge_ms = ok ? 1500 : 0;
    r.t_commit_ms = ok ? 50 : 0;
    r.updated_ms = t0 + 7000;
    free(r.state);
    if (ok) {
        r.state = mbq_strdup("commit-metadata");
        CHECK_INT(mbq_journal_table_run_save(j, &r), 0);
        CHECK_INT(mbq_journal_table_run_commit(j, &r, r.high, "timestamp", rows, t0 + 7000), 0);
    } else {
        r.state = mbq_strdup("failed");
        r.error = mbq_strdup(error);
        r.error_state = mbq_strdup("stage");
        r.finished_ms = t0 + 7000;
        CHECK_INT(mbq_journal_table_run_save(j, &r), 0);
        CHECK_INT(mbq_journal_table_failed(j, table, "stage", error, t0 + 7000), 0);
    }
    mbq_table_run_clear(&r);
}

static void add_event(mbq_journal *j, const char *table, const char *run_id, const char *kind,
                      const char *column, const char *action, const char *detail, int64_t ts)
{
    mbq_event e = {0};
    e.ts_ms = ts;
    e.run_id = (char *)run_id;
    e.table_name = (char *)table;
    e.kind = (char *)kind;
    e.column_name = (char *)column;
    e.new_type = (char *)"STRING";
    e.action = (char *)action;
    e.detail = (char *)detail;
    CHECK_INT(mbq_journal_event_add(j, &e), 0);
}

/* orders: 3 good runs (the last one minutes ago); HOSTILE: one good run,
 * then a failure with a hostile error; stale: a success two days ago. */
static void make_journal(void)
{
    char tmpl[] = "/tmp/mbq-serve-XXXXXX";
    CHECK(mkdtemp(tmpl) != NULL);
    snprintf(dir, sizeof dir, "%s", tmpl);
    mbq_journal *j = NULL;
    CHECK_INT(mbq_journal_open(&j, dir, MBQ_JOURNAL_WRITE), 0);
    if (!j)
        return;
    for (int i = 0; i < 3; i++) {
        char id[16];
        snprintf(id, sizeof id, "run-%d", i);
        add_run(j, "orders", id, NOW - (3 - i) * 600000, true, 100 * (i + 1), NULL);
        add_run(j, HOSTILE, id, NOW - (3 - i) * 600000, i < 2, 10, HOSTILE_ERR);
    }
    add_run(j, "stale", "run-old", NOW - 2 * 86400000LL, true, 5, NULL);
    add_event(j, HOSTILE, "run-1", "schema.add_column", "<b>col</b>", "added", HOSTILE_ERR,
              NOW - 1200000);
    add_event(j, "orders", "run-2", "schema.add_column", "note", "added", "ok", NOW - 600000);
    add_event(j, NULL, "run-2", "alert.sent", NULL, "email", "[mbq] FAILED: " HOSTILE, NOW - 500000);
    add_event(j, NULL, "run-2", "alert.failed", NULL, "telegram", HOSTILE_ERR, NOW - 400000);
    CHECK_INT(mbq_journal_run_start(j, "run-2", NOW - 600000), 0);
    CHECK_INT(mbq_journal_run_finish(j, "run-2", NOW - 590000, 2, 1, 1), 0);
    mbq_journal_close(j);
}

static int load(mbq_dash *d, const char *only, int runs)
{
    mbq_dash_query q = {only, runs, 50, 50};
    int rc = mbq_dash_load(d, dir, NULL, &q, NOW);
    d->healthy_within_ms = 3600000;
    d->refresh_s = 30;
    return rc;
}

/* No markup from the journal reaches the page: every '<' of a journal
 * string is escaped, so the only tags are the renderer's own. */
static void check_no_injection(const char *html)
{
    CHECK(strstr(html, "<script") == NULL);
    CHECK(strstr(html, "<img") == NULL);
    CHECK(strstr(html, "<b>col") == NULL);
    CHECK(strstr(html, "onerror=alert(1)>") == NULL);
    CHECK(strstr(html, "\xff") == NULL);
}

static void test_overview_escapes_hostile_names_and_errors(void)
{
    mbq_dash d;
    mbq_buf b = MBQ_BUF_INIT;
    CHECK_INT(load(&d, NULL, 1), 0);
    CHECK_INT((int)d.n_tables, 3);
    CHECK_INT(mbq_render_overview(&b, &d), 0);
    const char *html = mbq_buf_cstr(&b);
    check_no_injection(html);
    CHECK_CONTAINS(html, "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;");
    /* The link to the table page carries the name percent-encoded. */
    CHECK_CONTAINS(html, "href=\"/table/%3Cscript%3Ealert%28%22x%22%29%3C%2Fscript%3E%26%27%0A");
    CHECK_CONTAINS(html, "<meta http-equiv=\"refresh\" content=\"30\">");
    /* The banner names the failed and the stale table, not orders. */
    CHECK_CONTAINS(html, "2 of 3 configured tables need attention");
    CHECK_CONTAINS(html, "last success 47h 59m ago, more than healthy_within 60m");
    mbq_buf_free(&b);
    mbq_dash_free(&d);
}

static void test_table_page_escapes_and_draws_charts(void)
{
    mbq_dash d;
    mbq_buf b = MBQ_BUF_INIT;
    CHECK_INT(load(&d, HOSTILE, 60), 0);
    CHECK_INT(d.n_tables > 0 ? d.tables[0].n_runs : 0, 3);
    CHECK_INT(mbq_render_table_page(&b, &d), 0);
    const char *html = mbq_buf_cstr(&b);
    check_no_injection(html);
    CHECK_CONTAINS(html, "&lt;/td&gt;&lt;img src=x onerror=alert(1)&gt;");
    CHECK_CONTAINS(html, "&lt;b&gt;col&lt;/b&gt;");
    CHECK_CONTAINS(html, "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" id=\"chart-rows\"");
    CHECK_CONTAINS(html, "id=\"chart-stages\"");
    /* Two good runs and one failed one: three bars of rows, the failed one red. */
    CHECK_CONTAINS(html, "fill=\"#c01c28\"");
    mbq_buf_free(&b);
    mbq_dash_free(&d);
}

static void test_alerts_page_escapes_details(void)
{
    mbq_dash d;
    mbq_buf b = MBQ_BUF_INIT;
    CHECK_INT(load(&d, NULL, 1), 0);
    CHECK_INT(d.n_alerts, 2);
    CHECK_INT(mbq_render_alerts_page(&b, &d), 0);
    check_no_injection(mbq_buf_cstr(&b));
    CHECK_CONTAINS(mbq_buf_cstr(&b), "[mbq] FAILED: &lt;script&gt;");
    mbq_buf_free(&b);
    mbq_dash_free(&d);
}

static void test_secrets_are_masked_in_pages(void)
{
    mbq_dash d;
    mbq_buf b = MBQ_BUF_INIT;
    mbq_secret_register("secret-p4ss");
    CHECK_INT(load(&d, HOSTILE, 10), 0);
    CHECK_INT(mbq_render_table_page(&b, &d), 0);
    CHECK(strstr(mbq_buf_cstr(&b), "secret-p4ss") == NULL);
    mbq_buf_clear(&b);
    CHECK_INT(mbq_render_tables_json(&b, &d), 0);
    CHECK(strstr(mbq_buf_cstr(&b), "secret-p4ss") == NULL);
    mbq_secret_clear();
    mbq_buf_free(&b);
    mbq_dash_free(&d);
}

static void test_json_stays_valid_and_round_trips_names(void)
{
    mbq_dash d;
    mbq_buf b = MBQ_BUF_INIT;
    CHECK_INT(load(&d, NULL, 5), 0);
    CHECK_INT(mbq_render_tables_json(&b, &d), 0);
    json_object *root = json_tokener_parse(mbq_buf_cstr(&b));
    CHECK(root != NULL);
    json_object *tables = NULL, *t = NULL, *v = NULL;
    CHECK(json_object_object_get_ex(root, "tables", &tables));
    CHECK_INT(json_object_array_length(tables), 3);
    /* The journal lists tables by name: '<' sorts before 'o'. */
    t = json_object_array_get_idx(tables, 0);
    json_object_object_get_ex(t, "name", &v);
    /* The byte that is not UTF-8 comes back as U+FFFD. */
    CHECK_STR(json_object_get_string(v), "<script>alert(\"x\")</script>&'\nok: fine\xef\xbf\xbd");
    json_object_object_get_ex(t, "healthy", &v);
    CHECK(!json_object_get_boolean(v));
    json_object_object_get_ex(t, "consecutive_failures", &v);
    CHECK_INT(json_object_get_int(v), 1);
    t = json_object_array_get_idx(tables, 1);
    json_object_object_get_ex(t, "name", &v);
    CHECK_STR(json_object_get_string(v), "orders");
    json_object_object_get_ex(t, "lag_seconds", &v);
    CHECK_INT(json_object_get_int(v), 600 - 7);
    json_object_object_get_ex(t, "source_high_water", &v);
    CHECK_STR(json_object_get_string(v), "2027-01-15 08:00:00.000000");
    json_object_object_get_ex(root, "healthy", &v);
    CHECK(!json_object_get_boolean(v));
    json_object_put(root);
    mbq_buf_free(&b);
    mbq_dash_free(&d);
}

static void test_metrics_escape_labels_and_give_lag(void)
{
    mbq_dash d;
    mbq_buf b = MBQ_BUF_INIT;
    CHECK_INT(load(&d, NULL, 5), 0);
    CHECK_INT(mbq_render_metrics(&b, &d), 0);
    const char *m = mbq_buf_cstr(&b);
    /* Label values escape \" and \n (the text format's rules), and a line
     * never breaks inside a sample. */
    CHECK_CONTAINS(m, "mbq_table_up{table=\"<script>alert(\\\"x\\\")</script>&'\\nok: fine"
                      "\xef\xbf\xbd\"} 0\n");
    CHECK_CONTAINS(m, "mbq_table_up{table=\"orders\"} 1\n");
    CHECK_CONTAINS(m, "mbq_table_lag_seconds{table=\"orders\"} 593.000\n");
    CHECK_CONTAINS(m, "mbq_table_rows_synced{table=\"orders\"} 300\n");
    CHECK_CONTAINS(m, "mbq_table_result{table=\"orders\",result=\"ok\"} 1\n");
    CHECK_CONTAINS(m, "mbq_table_stage_duration_seconds{table=\"orders\",stage=\"extract\"} 2.000\n");
    CHECK_CONTAINS(m, "mbq_table_schema_changes{table=\"orders\"} 1\n");
    CHECK_CONTAINS(m, "mbq_table_healthy{table=\"stale\"} 0\n");
    /* 2027-01-15 08:00:00 UTC */
    CHECK_CONTAINS(m, "mbq_table_cursor_timestamp_seconds{table=\"orders\"} 1800000000.000\n");
    CHECK_CONTAINS(m, "# TYPE mbq_run_rows_synced gauge\n");
    for (const char *line = m; *line;) {
        const char *nl = strchr(line, '\n');
        CHECK(nl != NULL);
        if (!nl)
            break;
        /* Every line is a comment or `name{...} value` / `name value`. */
        CHECK(line[0] == '#' || strncmp(line, "mbq_", 4) == 0);
        line = nl + 1;
    }
    mbq_buf_free(&b);
    mbq_dash_free(&d);
}

static void test_health_lists_each_table_on_one_line(void)
{
    mbq_dash d;
    mbq_buf b = MBQ_BUF_INIT;
    bool healthy = true;
    CHECK_INT(load(&d, NULL, 1), 0);
    CHECK_INT(mbq_render_health(&b, &healthy, &d), 0);
    CHECK(!healthy);
    const char *h = mbq_buf_cstr(&b);
    CHECK_CONTAINS(h, "unhealthy: 2 table(s)\n");
    /* The newline in the name did not make a line that starts "ok". */
    CHECK(strstr(h, "\nok") == NULL);
    CHECK_CONTAINS(h, "stale: last success 47h 59m ago");
    int lines = 0;
    for (const char *p = h; *p; p++)
        lines += *p == '\n';
    CHECK_INT(lines, 3);
    mbq_buf_free(&b);
    mbq_dash_free(&d);
}

static void test_health_rule(void)
{
    mbq_dash d = {0};
    mbq_dash_table t = {0};
    mbq_buf why = MBQ_BUF_INIT;
    d.now_ms = NOW;
    d.healthy_within_ms = 3600000;
    t.configured = true;
    CHECK(!mbq_dash_table_healthy(&d, &t, &why));
    CHECK_STR(mbq_buf_cstr(&why), "never synced successfully");
    t.st.last_success_ms = NOW - 3600000;
    CHECK(mbq_dash_table_healthy(&d, &t, NULL));
    t.st.last_success_ms = NOW - 3600001;
    CHECK(!mbq_dash_table_healthy(&d, &t, NULL));
    t.st.last_success_ms = NOW - 1000;
    t.st.consecutive_failures = 2;
    t.st.last_error_state = (char *)"merge";
    t.st.last_error = (char *)"boom";
    mbq_buf_clear(&why);
    CHECK(!mbq_dash_table_healthy(&d, &t, &why));
    CHECK_STR(mbq_buf_cstr(&why), "2 failed run(s) in a row, last in merge: boom");
    /* An in-flight run does not change the verdict; an unconfigured table
     * is not judged. */
    t.st.consecutive_failures = 0;
    t.in_flight = true;
    CHECK(mbq_dash_table_healthy(&d, &t, NULL));
    t.st.last_success_ms = 0;
    t.configured = false;
    CHECK(mbq_dash_table_healthy(&d, &t, NULL));
    mbq_buf_free(&why);
}

static void test_missing_journal_and_unknown_table(void)
{
    mbq_dash d;
    mbq_dash_query q = {NULL, 1, 0, 0};
    CHECK_INT(mbq_dash_load(&d, "/nonexistent/mbq-state", NULL, &q, NOW), MBQ_ENOTFOUND);
    CHECK_CONTAINS(mbq_error_last(), "no journal at");
    CHECK_INT(load(&d, "no_such_table", 1), MBQ_ENOTFOUND);
    CHECK_CONTAINS(mbq_error_last(), "neither configured nor in the journal");
}

static void test_empty_history_chart(void)
{
    mbq_buf b = MBQ_BUF_INIT;
    CHECK_INT(mbq_render_rows_chart(&b, NULL, 0), 0);
    CHECK_CONTAINS(mbq_buf_cstr(&b), "no finished run yet</text></svg>");
    mbq_buf_free(&b);
}

static void test_escape_and_encode(void)
{
    mbq_buf b = MBQ_BUF_INIT;
    CHECK_INT(mbq_html_escape(&b, "a<b>&\"'\x01\tz"), 0);
    CHECK_STR(mbq_buf_cstr(&b), "a&lt;b&gt;&amp;&quot;&#39;\xef\xbf\xbd\tz");
    mbq_buf_clear(&b);
    CHECK_INT(mbq_url_encode(&b, "a b/%\xc3\xa9~"), 0);
    CHECK_STR(mbq_buf_cstr(&b), "a%20b%2F%25%C3%A9~");
    mbq_buf_free(&b);
}

static void test_cursor_timestamps(void)
{
    int64_t ms = 0;
    CHECK(mbq_dash_cursor_ms(&ms, "1970-01-01 00:00:01.5"));
    CHECK_INT(ms, 1500);
    CHECK(mbq_dash_cursor_ms(&ms, "2027-01-15 08:00:00.000000"));
    CHECK_INT(ms, 1800000000000LL);
    CHECK(!mbq_dash_cursor_ms(&ms, "12345"));
    CHECK(!mbq_dash_cursor_ms(&ms, NULL));
    CHECK(!mbq_dash_cursor_ms(&ms, "2027-01-15 08:00:00 junk"));
}

static void test_token_compare(void)
{
    CHECK(mbq_token_equal("0123456789abcdef", "0123456789abcdef"));
    CHECK(!mbq_token_equal("0123456789abcdeF", "0123456789abcdef"));
    CHECK(!mbq_token_equal("0123456789abcde", "0123456789abcdef"));
    CHECK(!mbq_token_equal("0123456789abcdef0", "0123456789abcdef"));
    CHECK(!mbq_token_equal("", "0123456789abcdef"));
    CHECK(!mbq_token_equal(NULL, "0123456789abcdef"));
}

static void test_listen_parse(void)
{
    struct sockaddr_storage a;
    socklen_t len = 0;
    bool lo = false;
    CHECK_INT(mbq_listen_parse(&a, &len, &lo, "127.0.0.1:8080"), 0);
    CHECK(lo);
    CHECK_INT(mbq_listen_parse(&a, &len, &lo, "127.3.2.1:0"), 0);
    CHECK(lo);
    CHECK_INT(mbq_listen_parse(&a, &len, &lo, "[::1]:8080"), 0);
    CHECK(lo);
    CHECK_INT(mbq_listen_parse(&a, &len, &lo, "0.0.0.0:8080"), 0);
    CHECK(!lo);
    CHECK_INT(mbq_listen_parse(&a, &len, &lo, "[::]:8080"), 0);
    CHECK(!lo);
    CHECK_INT(mbq_listen_parse(&a, &len, &lo, "8080"), MBQ_ECONFIG);
    CHECK_INT(mbq_listen_parse(&a, &len, &lo, "127.0.0.1:99999"), MBQ_ECONFIG);
    CHECK_INT(mbq_listen_parse(&a, &len, &lo, "::1:8080"), MBQ_ECONFIG);
    CHECK_CONTAINS(mbq_error_last(), "invalid listen address '::1:8080'");
}

static void test_non_loopback_needs_a_long_token(void)
{
    mbq_server *s = NULL;
    mbq_server_options o = MBQ_SERVER_OPTIONS_INIT;
    o.state_dir = dir;
    o.listen = "0.0.0.0:0";
    CHECK_INT(mbq_server_start(&s, &o), MBQ_ECONFIG);
    CHECK_CONTAINS(mbq_error_last(), "refusing to listen on '0.0.0.0:0' without a token");
    o.token = "short";
    CHECK_INT(mbq_server_start(&s, &o), MBQ_ECONFIG);
    CHECK_CONTAINS(mbq_error_last(), "too short");
    CHECK(s == NULL);
}

int main(void)
{
    make_journal();
    RUN(test_overview_escapes_hostile_names_and_errors);
    RUN(test_table_page_escapes_and_draws_charts);
    RUN(test_alerts_page_escapes_details);
    RUN(test_secrets_are_masked_in_pages);
    RUN(test_json_stays_valid_and_round_trips_names);
    RUN(test_metrics_escape_labels_and_give_lag);
    RUN(test_health_lists_each_table_on_one_line);
    RUN(test_health_rule);
    RUN(test_missing_journal_and_unknown_table);
    RUN(test_empty_history_chart);
    RUN(test_escape_and_encode);
    RUN(test_cursor_timestamps);
    RUN(test_token_compare);
    RUN(test_listen_parse);
    RUN(test_non_loopback_needs_a_long_token);
    int rc = test_summary();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (dir[0] && system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
    return rc;
}
