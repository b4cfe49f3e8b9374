/* The Telegram sender against a local stand-in of the Bot API
 * (tests/standins/telegram_standin.py): the request's path, headers and JSON
 * payload (chat_id, parse_mode, escaped text), the token only in the path,
 * retries on 5xx then an error report, no retry on 4xx, and the token never
 * in an error, a report or a log line (stderr captured) even when the server
 * echoes it and it was never registered as a secret. */
#include "test.h"
#include "test_notify_fixtures.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "mbq/buf.h"
#include "mbq/error.h"
#include "mbq/log.h"
#include "mbq/notify.h"
#include "mbq/util.h"

#define TOKEN "123456789:AAF-secret_Token-for-tests"

typedef struct standin {
    pid_t pid;
    char dir[32];
    mbq_buf url;
    mbq_buf log;
} standin;

static const char *python(void)
{
    return access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
}

static void script_path(mbq_buf *b)
{
    const char *src = getenv("MBQ_SOURCE_DIR");
    if (src && *src) {
        mbq_buf_printf(b, "%s/tests/standins/telegram_standin.py", src);
    } else {
        /* Outside ctest: next to this file. */
        const char *slash = strrchr(__FILE__, '/');
        mbq_buf_append(b, __FILE__, slash ? (size_t)(slash - __FILE__ + 1) : 0);
        mbq_buf_puts(b, "standins/telegram_standin.py");
    }
}

/* Start the stand-in answering `responses`; 0 when it listens. */
static int standin_start(standin *s, const char *responses, int echo_path)
{
    mbq_buf port_file = MBQ_BUF_INIT, script = MBQ_BUF_INIT;
    int rc = -1;
    memset(s, 0, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "/tmp/mbq-tg-XXXXXX");
    if (!mkdtemp(s->dir))
        goto done;
    mbq_buf_printf(&port_file, "%s/port", s->dir);
    mbq_buf_printf(&s->log, "%s/requests.jsonl", s->dir);
    script_path(&script);
    s->pid = fork();
    if (s->pid == 0) {
        execlp(python(), python(), script.ptr, "--port-file", port_file.ptr, "--log", s->log.ptr,
               "--responses", responses, echo_path ? "--echo-path" : "--port=0", (char *)NULL);
        _exit(127);
    }
    int port = s->pid > 0 ? test_wait_port_file(port_file.ptr) : 0;
    if (port) {
        mbq_buf_printf(&s->url, "http://127.0.0.1:%d", port);
        rc = 0;
    }
done:
    if (rc)
        fprintf(stderr, "  cannot start the telegram stand-in (%s)\n", script.ptr);
    mbq_buf_free(&port_file);
    mbq_buf_free(&script);
    return rc;
}

static void standin_stop(standin *s)
{
    mbq_buf b = MBQ_BUF_INIT;
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        waitpid(s->pid, NULL, 0);
    }
    mbq_buf_printf(&b, "%s/port", s->dir);
    unlink(b.ptr);
    unlink(s->log.ptr ? s->log.ptr : "");
    rmdir(s->dir);
    mbq_buf_free(&b);
    mbq_buf_free(&s->url);
    mbq_buf_free(&s->log);
}

/* The requests received, as a json array (caller puts it). */
static json_object *standin_requests(standin *s, mbq_buf *raw)
{
    json_object *arr = json_object_new_array();
    mbq_buf_clear(raw);
    if (mbq_file_read_all(raw, s->log.ptr) != 0)
        return arr;
    char *save = NULL;
    mbq_buf copy = MBQ_BUF_INIT;
    mbq_buf_puts(&copy, raw->ptr);
    for (char *line = strtok_r(copy.ptr, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        json_object_array_add(arr, json_tokener_parse(line));
    mbq_buf_free(&copy);
    return arr;
}

static const char *jstr(json_object *o, const char *key)
{
    json_object *v;
    return o && json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

static mbq_telegram_config tg_cfg(const standin *s)
{
    mbq_telegram_config c;
    memset(&c, 0, sizeof c);
    c.enabled = true;
    c.bot_token = TOKEN;
    c.chat_id = "-1001234567890";
    c.api_url = s->url.ptr;
    c.on = MBQ_ALERT_FAILURE;
    return c;
}

static const mbq_notify_options fast = {3, 10, 5000, 2000};

static void test_payload_and_escaping(void)
{
    standin s;
    if (standin_start(&s, "200", 0) != 0) {
        CHECK(!"stand-in started");
        return;
    }
    mbq_table_summary t[] = {
        {"ord<e>rs&_*[]()~`#+-=|{}.!", MBQ_TABLE_FAILED, 0, 4200, NULL, 0, "merge",
         "Query error: a < b && c > d at [1:2] (see *docs*) _x_ ~y~ `z` #1 +2 -3 =4 |5 {6} .7 !8",
         NULL, 0, 0, 0, false, false, 0},
    };
    mbq_run_summary sum = {"run-tg-1", "h", FIX_STARTED_MS, FIX_FINISHED_MS, t, 1};
    mbq_telegram_config c = tg_cfg(&s);
    int attempts = 0;
    CHECK_INT(mbq_notify_send_telegram(&c, &sum, &fast, &attempts), 0);
    CHECK_INT(attempts, 1);

    mbq_buf raw = MBQ_BUF_INIT;
    json_object *reqs = standin_requests(&s, &raw);
    CHECK_INT(json_object_array_length(reqs), 1);
    json_object *r = json_object_array_get_idx(reqs, 0);
    CHECK_STR(jstr(r, "method"), "POST");
    CHECK_STR(jstr(r, "path"), "/bot" TOKEN "/sendMessage");
    json_object *headers = NULL;
    json_object_object_get_ex(r, "headers", &headers);
    CHECK_STR(jstr(headers, "Content-Type"), "application/json");
    CHECK(strstr(json_object_to_json_string(headers), TOKEN) == NULL);
    const char *body = jstr(r, "body");
    CHECK(body && strstr(body, TOKEN) == NULL);
    json_object *payload = json_tokener_parse(body ? body : "");
    CHECK_STR(jstr(payload, "chat_id"), "-1001234567890");
    CHECK_STR(jstr(payload, "parse_mode"), "HTML");
    json_object *v = NULL;
    CHECK(json_object_object_get_ex(payload, "disable_web_page_preview", &v) &&
          json_object_get_boolean(v));
    const char *text = jstr(payload, "text");
    CHECK(text && strncmp(text, "<b>[mbq] FAILED: 1 of 1 table failed (ord&lt;e&gt;rs&amp;_*[]()"
                                "~`#+-=|{}.!)</b>\n\n", 80) == 0);
    CHECK_CONTAINS(text, "error:    Query error: a &lt; b &amp;&amp; c &gt; d at [1:2] (see *docs*)"
                         " _x_ ~y~ `z` #1 +2 -3 =4 |5 {6} .7 !8");
    CHECK_CONTAINS(text, "stage:    merge");
    /* HTML mode needs exactly <, > and & escaped: nothing else is touched. */
    CHECK(strstr(text ? text : "", "\\") == NULL);
    json_object_put(payload);
    json_object_put(reqs);
    mbq_buf_free(&raw);
    standin_stop(&s);
}

/* A 5xx: retried (3 attempts), then an error with the status and the API's
 * description, the token masked though the server echoed it and it was not
 * registered. The retry warnings in the log hold no token either. */
static void test_5xx_retried_then_reported_without_token(void)
{
    standin s;
    if (standin_start(&s, "503", 1) != 0) {
        CHECK(!"stand-in started");
        return;
    }
    mbq_secret_clear();
    mbq_telegram_config c = tg_cfg(&s);
    mbq_buf err = MBQ_BUF_INIT, raw = MBQ_BUF_INIT, logs = MBQ_BUF_INIT;
    int attempts = 0;
    fix_capture_begin();
    int64_t t0 = mbq_monotonic_ms();
    int rc = mbq_notify_send_telegram(&c, &fix_failure, &fast, &attempts);
    int64_t took = mbq_monotonic_ms() - t0;
    mbq_buf_puts(&err, mbq_error_last());
    fix_capture_end(&logs);
    CHECK_INT(rc, MBQ_ENET);
    CHECK_INT(attempts, 3);
    CHECK(took < 5000);
    CHECK_CONTAINS(mbq_buf_cstr(&err), "cannot send telegram alert to chat '-1001234567890': "
                                       "http 503: Internal Server Error: /bot***/sendMessage");
    CHECK(strstr(mbq_buf_cstr(&err), "AAF-secret") == NULL);
    CHECK_CONTAINS(mbq_buf_cstr(&logs), "telegram alert: attempt 1 of 3 failed");
    CHECK_CONTAINS(mbq_buf_cstr(&logs), "telegram alert: attempt 2 of 3 failed");
    CHECK(strstr(mbq_buf_cstr(&logs), "AAF-secret") == NULL);
    json_object *reqs = standin_requests(&s, &raw);
    CHECK_INT(json_object_array_length(reqs), 3);
    json_object_put(reqs);
    mbq_buf_free(&err);
    mbq_buf_free(&raw);
    mbq_buf_free(&logs);
    standin_stop(&s);
}

static void test_5xx_then_ok_delivers(void)
{
    standin s;
    if (standin_start(&s, "502,200", 0) != 0) {
        CHECK(!"stand-in started");
        return;
    }
    mbq_telegram_config c = tg_cfg(&s);
    int attempts = 0;
    CHECK_INT(mbq_notify_send_telegram(&c, &fix_failure, &fast, &attempts), 0);
    CHECK_INT(attempts, 2);
    standin_stop(&s);
}

/* A 400 (bad request) will not get better by repeating it. */
static void test_4xx_not_retried(void)
{
    standin s;
    if (standin_start(&s, "400", 0) != 0) {
        CHECK(!"stand-in started");
        return;
    }
    mbq_telegram_config c = tg_cfg(&s);
    int attempts = 0;
    CHECK_INT(mbq_notify_send_telegram(&c, &fix_failure, &fast, &attempts), MBQ_ERR);
    CHECK_INT(attempts, 1);
    CHECK_CONTAINS(mbq_error_last(), "http 400: Bad Request");
    standin_stop(&s);
}

/* The API unreachable: network error after the retries, quickly. */
static void test_unreachable_api(void)
{
    mbq_telegram_config c;
    memset(&c, 0, sizeof c);
    c.enabled = true;
    c.bot_token = TOKEN;
    c.chat_id = "42";
    c.api_url = "http://127.0.0.1:9"; /* discard port: nothing listens */
    int attempts = 0;
    CHECK_INT(mbq_notify_send_telegram(&c, &fix_failure, &fast, &attempts), MBQ_ENET);
    CHECK_INT(attempts, 3);
    CHECK_CONTAINS(mbq_error_last(), "cannot send telegram alert to chat '42': ");
    CHECK(strstr(mbq_error_last(), "AAF-secret") == NULL);
    CHECK(strstr(mbq_error_last(), "/bot") == NULL);
}

/* mbq_notify_run applies the policy and reports per channel: under `change`
 * a table that starts failing sends, the same tables still failing do not
 * (no request reaches the API), and a 5xx comes back in the report. */
static void test_run_policy_and_report(void)
{
    standin s;
    if (standin_start(&s, "200,200,500", 0) != 0) {
        CHECK(!"stand-in started");
        return;
    }
    mbq_telegram_config c = tg_cfg(&s);
    c.on = MBQ_ALERT_CHANGE;
    mbq_notify_report rep;
    mbq_buf raw = MBQ_BUF_INIT;

    /* orders starts failing (prev 0): sent. */
    CHECK_INT(mbq_notify_run(&rep, NULL, &c, &fix_failure, &fast), 0);
    CHECK(rep.telegram.attempted && rep.telegram.sent);
    CHECK_INT(rep.telegram.attempts, 1);
    CHECK_STR(rep.telegram.subject, "[mbq] FAILED: 2 of 3 tables failed (orders, customers)");
    CHECK(rep.telegram.message == NULL);
    CHECK(!rep.email.attempted);
    mbq_notify_report_free(&rep);

    /* Next run, both still failing: nothing sent. */
    mbq_table_summary still[3];
    memcpy(still, fix_fail_tables, sizeof still);
    still[0].prev_consecutive_failures = 1;
    still[1].prev_consecutive_failures = 3;
    mbq_run_summary s2 = {"run-2", "h", 0, 10, still, 3};
    CHECK_INT(mbq_notify_run(&rep, NULL, &c, &s2, &fast), 0);
    CHECK(!rep.telegram.attempted && !rep.telegram.sent);
    mbq_notify_report_free(&rep);
    json_object *reqs = standin_requests(&s, &raw);
    CHECK_INT(json_object_array_length(reqs), 1);
    json_object_put(reqs);

    /* Recovery sends; then a failure of the API is reported, not fatal. */
    CHECK_INT(mbq_notify_run(&rep, NULL, &c, &fix_recovery, &fast), 0);
    CHECK(rep.telegram.sent);
    CHECK_STR(rep.telegram.subject, "[mbq] RECOVERED: orders");
    mbq_notify_report_free(&rep);
    c.on = MBQ_ALERT_ALWAYS;
    CHECK_INT(mbq_notify_run(&rep, NULL, &c, &fix_success, &fast), MBQ_ENET);
    CHECK(rep.telegram.attempted && !rep.telegram.sent);
    CHECK_INT(rep.telegram.error, MBQ_ENET);
    CHECK_INT(rep.telegram.attempts, 3);
    CHECK_CONTAINS(rep.telegram.message, "http 500");
    mbq_notify_report_free(&rep);
    mbq_buf_free(&raw);
    standin_stop(&s);
}

int main(void)
{
    mbq_log_set_level(MBQ_LOG_DEBUG);
    RUN(test_payload_and_escaping);
    RUN(test_5xx_retried_then_reported_without_token);
    RUN(test_5xx_then_ok_delivers);
    RUN(test_4xx_not_retried);
    RUN(test_unreachable_api);
    RUN(test_run_policy_and_report);
    return test_summary();
}
