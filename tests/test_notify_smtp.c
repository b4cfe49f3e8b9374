/* Email alerts through the harness's real SMTP server (tools/smtp-sink.py,
 * aiosmtpd): the success, failure (two failed tables, one message),
 * schema-change and recovery mails arrive; their envelope (several
 * recipients), Subject and body are checked from the stored message and the
 * sink's envelope sidecar; AUTH is used when credentials are given; STARTTLS
 * works and an untrusted certificate is refused when verification is on.
 * Each test finds its own mail by a unique run id (the sink is shared). */
#include "test.h"
#include "test_notify_fixtures.h"

#include <dirent.h>
#include <unistd.h>

#include <json-c/json.h>

#include "mbq/buf.h"
#include "mbq/error.h"
#include "mbq/log.h"
#include "mbq/notify.h"
#include "mbq/util.h"

#define PASSWORD "sink-Pass-w0rd"

static const mbq_notify_options fast = {3, 10, 10000, 5000};

static mbq_email_config sink_cfg(void)
{
    static char *to[] = {"ops@example.com", "Data Team <data@example.com>"};
    mbq_email_config c;
    memset(&c, 0, sizeof c);
    c.enabled = true;
    c.host = (char *)test_require_env("MBQ_TEST_SMTP_HOST");
    c.port = (unsigned)atoi(test_require_env("MBQ_TEST_SMTP_PORT"));
    c.tls = "none";
    c.from = "mbq <mbq@example.com>";
    c.to = to;
    c.n_to = 2;
    c.on = MBQ_ALERT_ALWAYS;
    c.tls_verify = true;
    return c;
}

static void unique_run_id(mbq_buf *b, const char *what)
{
    mbq_buf_printf(b, "ntf-%s-%ld-%lld", what, (long)getpid(), (long long)mbq_now_ms());
}

/* The .eml holding `needle` (and its .json sidecar); returns how many
 * messages hold it. Polls up to 10 s for the first. */
static int find_mail(mbq_buf *eml, json_object **meta, const char *needle)
{
    const char *dir = test_require_env("MBQ_TEST_SMTP_MAILDIR");
    int found = 0;
    *meta = NULL;
    for (int tries = 0; tries < 100 && !found; tries++) {
        DIR *d = opendir(dir);
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            size_t n = strlen(e->d_name);
            if (n < 5 || e->d_name[0] == '.' || strcmp(e->d_name + n - 4, ".eml") != 0)
                continue;
            mbq_buf path = MBQ_BUF_INIT, content = MBQ_BUF_INIT, side = MBQ_BUF_INIT;
            mbq_buf_printf(&path, "%s/%s", dir, e->d_name);
            if (mbq_file_read_all(&content, path.ptr) == 0 && strstr(content.ptr, needle)) {
                if (found++ == 0) {
                    mbq_buf_clear(eml);
                    mbq_buf_puts(eml, content.ptr);
                    path.len -= 4;
                    path.ptr[path.len] = '\0';
                    mbq_buf_puts(&path, ".json");
                    if (mbq_file_read_all(&side, path.ptr) == 0)
                        *meta = json_tokener_parse(side.ptr);
                }
            }
            mbq_buf_free(&path);
            mbq_buf_free(&content);
            mbq_buf_free(&side);
        }
        if (d)
            closedir(d);
        if (!found)
            mbq_sleep_ms(100);
    }
    return found;
}

/* The unfolded value of header `name` (e.g. "Subject"). */
static void header(mbq_buf *out, const char *msg, const char *name)
{
    mbq_buf key = MBQ_BUF_INIT;
    mbq_buf_printf(&key, "\n%s: ", name);
    mbq_buf_clear(out);
    const char *end = strstr(msg, "\r\n\r\n");
    const char *p = strstr(msg, key.ptr);
    if (p && (!end || p < end)) {
        p += key.len;
        while (*p && !(p[0] == '\r' && p[1] == '\n' && p[2] != ' ' && p[2] != '\t')) {
            if (*p != '\r' && *p != '\n')
                mbq_buf_putc(out, *p);
            p++;
        }
    }
    mbq_buf_free(&key);
}

static const char *jstr(json_object *o, const char *key)
{
    json_object *v;
    return o && json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

static int jbool(json_object *o, const char *key)
{
    json_object *v;
    return o && json_object_object_get_ex(o, key, &v) && json_object_get_boolean(v);
}

static void check_envelope(json_object *meta)
{
    CHECK_STR(jstr(meta, "mail_from"), "mbq@example.com");
    json_object *rcpt = NULL;
    CHECK(meta && json_object_object_get_ex(meta, "rcpt_tos", &rcpt));
    CHECK_INT(rcpt ? json_object_array_length(rcpt) : 0, 2);
    if (rcpt && json_object_array_length(rcpt) == 2) {
        CHECK_STR(json_object_get_string(json_object_array_get_idx(rcpt, 0)), "ops@example.com");
        CHECK_STR(json_object_get_string(json_object_array_get_idx(rcpt, 1)), "data@example.com");
    }
}

/* Send `base` with a unique run id through mbq_notify_run; on return *eml
 * holds the received message and *meta its envelope. */
static void send_and_fetch(mbq_email_config *c, const mbq_run_summary *base, const char *what,
                           mbq_buf *eml, json_object **meta)
{
    mbq_buf id = MBQ_BUF_INIT;
    unique_run_id(&id, what);
    mbq_run_summary s = *base;
    s.run_id = id.ptr;
    mbq_notify_report rep;
    CHECK_INT(mbq_notify_run(&rep, c, NULL, &s, &fast), 0);
    CHECK(rep.email.attempted && rep.email.sent);
    if (rep.email.message)
        fprintf(stderr, "  send failed: %s\n", rep.email.message);
    mbq_notify_report_free(&rep);
    /* One message per run, whatever the number of failed tables. */
    CHECK_INT(find_mail(eml, meta, id.ptr), 1);
    mbq_buf_free(&id);
}

static void test_success_mail(void)
{
    mbq_email_config c = sink_cfg();
    mbq_buf eml = MBQ_BUF_INIT, h = MBQ_BUF_INIT;
    json_object *meta = NULL;
    send_and_fetch(&c, &fix_success, "ok", &eml, &meta);
    check_envelope(meta);
    CHECK(jstr(meta, "auth_user") == NULL); /* no credentials, no AUTH */
    header(&h, eml.ptr ? eml.ptr : "", "Subject");
    CHECK_STR(h.ptr, "[mbq] OK: 3 tables synced, 1,234 rows (12.3 s)");
    header(&h, eml.ptr ? eml.ptr : "", "To");
    CHECK_STR(h.ptr, "ops@example.com, Data Team <data@example.com>");
    header(&h, eml.ptr ? eml.ptr : "", "Content-Type");
    CHECK_STR(h.ptr, "text/plain; charset=utf-8");
    CHECK_CONTAINS(eml.ptr, "\r\nCompleted: 2026-11-26 01:02:03 UTC\r\n");
    CHECK_CONTAINS(eml.ptr, "\r\n  orders: ok, 1,000 rows in 9.1 s [");
    CHECK_CONTAINS(eml.ptr, "\r\n  items: no changes, 0.1 s\r\n");
    json_object_put(meta);
    mbq_buf_free(&eml);
    mbq_buf_free(&h);
}

/* Two failed tables in one message, sent with AUTH (credentials given). */
static void test_failure_mail_with_auth(void)
{
    mbq_email_config c = sink_cfg();
    c.username = "alerts@example.com";
    c.password = PASSWORD;
    c.on = MBQ_ALERT_FAILURE;
    mbq_buf eml = MBQ_BUF_INIT, h = MBQ_BUF_INIT;
    json_object *meta = NULL;
    send_and_fetch(&c, &fix_failure, "fail", &eml, &meta);
    check_envelope(meta);
    CHECK_STR(jstr(meta, "auth_user"), "alerts@example.com");
    header(&h, eml.ptr ? eml.ptr : "", "Subject");
    CHECK_STR(h.ptr, "[mbq] FAILED: 2 of 3 tables failed (orders, customers)");
    CHECK_CONTAINS(eml.ptr, "\r\norders\r\n  stage:    merge\r\n  error:    bigquery job 'mbq_x' "
                            "failed: Query error: column <qty> & \"price\" mismatch\r\n"
                            "  duration: 4.2 s\r\n");
    CHECK_CONTAINS(eml.ptr, "\r\ncustomers\r\n  stage:    extract\r\n  error:    mysql: Lost "
                            "connection to server during query\r\n  duration: 1.5 s\r\n"
                            "  failing:  3 runs in a row\r\n");
    CHECK(strstr(eml.ptr ? eml.ptr : "", PASSWORD) == NULL);
    json_object_put(meta);
    mbq_buf_free(&eml);
    mbq_buf_free(&h);
}

static void test_schema_change_mail(void)
{
    mbq_email_config c = sink_cfg();
    mbq_buf eml = MBQ_BUF_INIT, h = MBQ_BUF_INIT;
    json_object *meta = NULL;
    send_and_fetch(&c, &fix_schema, "schema", &eml, &meta);
    header(&h, eml.ptr ? eml.ptr : "", "Subject");
    CHECK_STR(h.ptr, "[mbq] OK: 2 tables synced, 10 rows (12.3 s), schema changed: orders");
    CHECK_CONTAINS(eml.ptr, "\r\nSCHEMA CHANGES\r\n  orders:\r\n"
                            "    - added column 'discount' NUMERIC\r\n"
                            "    - type change 'qty' INT64 -> NUMERIC (widened)\r\n");
    json_object_put(meta);
    mbq_buf_free(&eml);
    mbq_buf_free(&h);
}

static void test_recovery_mail(void)
{
    mbq_email_config c = sink_cfg();
    c.on = MBQ_ALERT_CHANGE;
    mbq_buf eml = MBQ_BUF_INIT, h = MBQ_BUF_INIT;
    json_object *meta = NULL;
    send_and_fetch(&c, &fix_recovery, "recovered", &eml, &meta);
    header(&h, eml.ptr ? eml.ptr : "", "Subject");
    CHECK_STR(h.ptr, "[mbq] RECOVERED: orders");
    CHECK_CONTAINS(eml.ptr, "\r\nRECOVERED\r\n  orders (after 3 failed runs)\r\n");
    json_object_put(meta);
    mbq_buf_free(&eml);
    mbq_buf_free(&h);
}

/* STARTTLS on the sink (self-signed certificate): with verification off the
 * mail goes over TLS (the sink records it); with it on, the untrusted
 * certificate is refused at once, without retries. */
static void test_starttls(void)
{
    mbq_email_config c = sink_cfg();
    c.host = "localhost";
    c.tls = "starttls";
    c.username = "alerts@example.com";
    c.password = PASSWORD;
    c.tls_verify = false;
    mbq_buf eml = MBQ_BUF_INIT;
    json_object *meta = NULL;
    send_and_fetch(&c, &fix_failure, "tls", &eml, &meta);
    CHECK(jbool(meta, "tls"));
    CHECK_STR(jstr(meta, "auth_user"), "alerts@example.com");
    json_object_put(meta);

    c.tls_verify = true;
    int attempts = 0;
    CHECK_INT(mbq_notify_send_email(&c, &fix_failure, &fast, &attempts), MBQ_ENET);
    CHECK_INT(attempts, 1);
    CHECK_CONTAINS(mbq_error_last(), "cannot send email alert via 'localhost:");
    CHECK(strstr(mbq_error_last(), PASSWORD) == NULL);
    mbq_buf_free(&eml);
}

int main(void)
{
    test_require_env("MBQ_TEST_SMTP_PORT");
    test_require_env("MBQ_TEST_SMTP_MAILDIR");
    RUN(test_success_mail);
    RUN(test_failure_mail_with_auth);
    RUN(test_schema_change_mail);
    RUN(test_recovery_mail);
    RUN(test_starttls);
    return test_summary();
}
