/* Alert policy and message formatting (no I/O): the decision per policy over
 * a sequence of runs, the subjects, the plain-text body, the RFC 5322
 * message (headers, RFC 2047, quoted-printable, CRLF) and the Telegram HTML
 * text (escaping, the 4096-character limit), and secret masking in all. */
#include "test.h"
#include "test_notify_fixtures.h"

#include <stdint.h>

#include "mbq/buf.h"
#include "mbq/log.h"
#include "mbq/notify.h"

/* ---- policy ---------------------------------------------------------- */

/* One table over five runs, prev failures carried as the journal would:
 * ok, fail (starts), fail (still), ok (recovers), ok. */
static void test_policy_sequence_per_mode(void)
{
    static const mbq_table_result results[] = {MBQ_TABLE_OK, MBQ_TABLE_FAILED, MBQ_TABLE_FAILED,
                                               MBQ_TABLE_OK, MBQ_TABLE_OK};
    static const int want_change[] = {0, 1, 0, 1, 0};
    static const int want_failure[] = {0, 1, 1, 0, 0};
    int prev = 0;
    for (int i = 0; i < 5; i++) {
        mbq_table_summary t = {"orders", results[i], 0, 10, NULL, 0, NULL, NULL, NULL, 0, prev, 0, false, false, 0};
        mbq_run_summary s = {"r", "h", 0, 10, &t, 1};
        if (results[i] == MBQ_TABLE_FAILED) {
            t.failed_stage = "merge";
            t.error = "boom";
        }
        test_current = "test_policy_sequence_per_mode";
        CHECK_INT(mbq_notify_should_send(MBQ_ALERT_CHANGE, &s), want_change[i]);
        CHECK_INT(mbq_notify_should_send(MBQ_ALERT_FAILURE, &s), want_failure[i]);
        CHECK_INT(mbq_notify_should_send(MBQ_ALERT_ALWAYS, &s), 1);
        prev = mbq_table_consecutive_failures(&t);
    }
    CHECK_INT(prev, 0);
}

/* With two tables, one still failing does not send under `change`, but a
 * second one starting to fail does; a skipped (no changes) run recovers. */
static void test_policy_change_multi_table(void)
{
    mbq_table_summary t[2] = {
        {"a", MBQ_TABLE_FAILED, 0, 1, NULL, 0, "extract", "x", NULL, 0, 5, 0, false, false, 0},
        {"b", MBQ_TABLE_OK, 1, 1, NULL, 0, NULL, NULL, NULL, 0, 0, 0, false, false, 0},
    };
    mbq_run_summary s = {"r", "h", 0, 1, t, 2};
    CHECK_INT(mbq_notify_should_send(MBQ_ALERT_CHANGE, &s), 0);
    t[1].result = MBQ_TABLE_FAILED;
    CHECK_INT(mbq_notify_should_send(MBQ_ALERT_CHANGE, &s), 1);
    t[1].result = MBQ_TABLE_OK;
    t[0].result = MBQ_TABLE_SKIPPED;
    CHECK_INT(mbq_notify_should_send(MBQ_ALERT_CHANGE, &s), 1);
    CHECK(mbq_table_recovered(&t[0]));
    /* No tables at all: only `always` sends. */
    mbq_run_summary empty = {"r", "h", 0, 1, NULL, 0};
    CHECK_INT(mbq_notify_should_send(MBQ_ALERT_CHANGE, &empty), 0);
    CHECK_INT(mbq_notify_should_send(MBQ_ALERT_FAILURE, &empty), 0);
    CHECK_INT(mbq_notify_should_send(MBQ_ALERT_ALWAYS, &empty), 1);
}

/* A table that synced after an incident (its target vanished and was
 * reloaded in full) alerts under `failure` and `change` like a failure. */
static void test_policy_incident_alerts(void)
{
    mbq_table_summary t = {"a", MBQ_TABLE_OK, 5, 1, NULL, 0, NULL, NULL, NULL, 0, 0, 0, false, false, 0};
    mbq_run_summary s = {"r", "h", 0, 1, &t, 1};
    CHECK_INT(mbq_notify_should_send(MBQ_ALERT_FAILURE, &s), 0);
    CHECK_INT(mbq_notify_should_send(MBQ_ALERT_CHANGE, &s), 0);
    t.incident = true;
    CHECK_INT(mbq_notify_should_send(MBQ_ALERT_FAILURE, &s), 1);
    CHECK_INT(mbq_notify_should_send(MBQ_ALERT_CHANGE, &s), 1);
}

/* ---- subjects and body ------------------------------------------------ */

static void check_subject(const mbq_run_summary *s, const char *want)
{
    mbq_buf b = MBQ_BUF_INIT;
    CHECK_INT(mbq_notify_format_subject(&b, s), 0);
    CHECK_STR(mbq_buf_cstr(&b), want);
    mbq_buf_free(&b);
}

static void test_subjects(void)
{
    check_subject(&fix_success, "[mbq] OK: 3 tables synced, 1,234 rows (12.3 s)");
    check_subject(&fix_failure, "[mbq] FAILED: 2 of 3 tables failed (orders, customers)");
    check_subject(&fix_recovery, "[mbq] RECOVERED: orders");
    check_subject(&fix_schema, "[mbq] OK: 2 tables synced, 10 rows (12.3 s), schema changed: orders");
}

/* Many failed tables: the subject stays short and says how many it left out. */
static void test_subject_many_failures_truncated(void)
{
    mbq_table_summary t[40];
    static char names[40][32];
    for (int i = 0; i < 40; i++) {
        snprintf(names[i], sizeof names[i], "table_%02d", i);
        mbq_table_summary x = {names[i], MBQ_TABLE_FAILED, 0, 1, NULL, 0, "extract", "e",
                               NULL, 0, 0, 0, false, false, 0};
        t[i] = x;
    }
    mbq_run_summary s = {"r", "h", 0, 1, t, 40};
    mbq_buf b = MBQ_BUF_INIT;
    CHECK_INT(mbq_notify_format_subject(&b, &s), 0);
    CHECK_CONTAINS(mbq_buf_cstr(&b), "[mbq] FAILED: 40 of 40 tables failed (table_00, table_01");
    CHECK_CONTAINS(mbq_buf_cstr(&b), " more)");
    CHECK(b.len < 160);
    mbq_buf_free(&b);
}

/* A table name with CR/LF cannot break the subject into a second header. */
static void test_subject_control_chars_flattened(void)
{
    mbq_table_summary t = {"evil\r\nBcc: victim@example.com", MBQ_TABLE_FAILED, 0, 1, NULL, 0,
                           "merge", "e", NULL, 0, 0, 0, false, false, 0};
    mbq_run_summary s = {"r", "h", 0, 1, &t, 1};
    mbq_buf b = MBQ_BUF_INIT;
    CHECK_INT(mbq_notify_format_subject(&b, &s), 0);
    CHECK(strchr(mbq_buf_cstr(&b), '\n') == NULL);
    CHECK(strchr(mbq_buf_cstr(&b), '\r') == NULL);
    mbq_buf_free(&b);
}

static void test_body_failure_lists_every_failed_table(void)
{
    mbq_buf b = MBQ_BUF_INIT;
    CHECK_INT(mbq_notify_format_text(&b, &fix_failure), 0);
    const char *t = mbq_buf_cstr(&b);
    CHECK_CONTAINS(t, "mbq sync run run-fixture on db1.example");
    CHECK_CONTAINS(t, "Completed: 2026-11-26 01:02:03 UTC");
    CHECK_CONTAINS(t, "Duration:  12.3 s");
    CHECK_CONTAINS(t, "Result:    2 of 3 tables failed, 12 rows synced");
    CHECK_CONTAINS(t, "\norders\n  stage:    merge\n  error:    bigquery job 'mbq_x' failed: "
                      "Query error: column <qty> & \"price\" mismatch\n  duration: 4.2 s\n"
                      "  failing:  since this run\n");
    CHECK_CONTAINS(t, "\ncustomers\n  stage:    extract\n  error:    mysql: Lost connection to "
                      "server during query\n  duration: 1.5 s\n  failing:  3 runs in a row\n");
    CHECK_CONTAINS(t, "  orders: FAILED at merge after 4.2 s\n");
    CHECK_CONTAINS(t, "  items: ok, 12 rows in 0.8 s\n");
    mbq_buf_free(&b);
}

static void test_body_success_schema_and_recovery(void)
{
    mbq_buf b = MBQ_BUF_INIT;
    CHECK_INT(mbq_notify_format_text(&b, &fix_success), 0);
    CHECK_CONTAINS(mbq_buf_cstr(&b), "Result:    all 3 tables ok, 1,234 rows synced");
    CHECK_CONTAINS(mbq_buf_cstr(&b), "  orders: ok, 1,000 rows in 9.1 s [schema-check 0.1 s, "
                                     "extract 4.0 s, stage 3.0 s, merge 2.0 s, commit-metadata 0.0 s]");
    CHECK_CONTAINS(mbq_buf_cstr(&b), "  items: no changes, 0.1 s\n");
    CHECK(strstr(mbq_buf_cstr(&b), "FAILED") == NULL);
    mbq_buf_clear(&b);

    CHECK_INT(mbq_notify_format_text(&b, &fix_schema), 0);
    CHECK_CONTAINS(mbq_buf_cstr(&b), "SCHEMA CHANGES\n  orders:\n"
                                     "    - added column 'discount' NUMERIC\n"
                                     "    - type change 'qty' INT64 -> NUMERIC (widened)\n");
    mbq_buf_clear(&b);

    CHECK_INT(mbq_notify_format_text(&b, &fix_recovery), 0);
    CHECK_CONTAINS(mbq_buf_cstr(&b), "RECOVERED\n  orders (after 3 failed runs)\n");
    mbq_buf_free(&b);
}

/* Bytes that are not UTF-8 (a latin1 MySQL error) become U+FFFD. */
static void test_body_invalid_utf8_replaced(void)
{
    mbq_table_summary t = {"t\xe9st", MBQ_TABLE_FAILED, 0, 1, NULL, 0, "extract",
                           "bad \xff\xfe bytes", NULL, 0, 0, 0, false, false, 0};
    mbq_run_summary s = {"r", "h", 0, 1, &t, 1};
    mbq_buf b = MBQ_BUF_INIT;
    CHECK_INT(mbq_notify_format_text(&b, &s), 0);
    CHECK_CONTAINS(mbq_buf_cstr(&b), "t\xEF\xBF\xBDst");
    CHECK_CONTAINS(mbq_buf_cstr(&b), "bad \xEF\xBF\xBD\xEF\xBF\xBD bytes");
    mbq_buf_free(&b);
}

/* ---- email ----------------------------------------------------------- */

static mbq_email_config email_cfg(void)
{
    static char *to[] = {"ops@example.com", "Data Team <data@example.com>"};
    mbq_email_config c;
    memset(&c, 0, sizeof c);
    c.enabled = true;
    c.from = "mbq <mbq@alerts.example.com>";
    c.to = to;
    c.n_to = 2;
    c.tls_verify = true;
    return c;
}

static int b64val(char c)
{
    const char *a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *p = strchr(a, c);
    return c && p ? (int)(p - a) : -1;
}

/* Decode the =?UTF-8?B?..?= words of a folded Subject header. */
static void decode_2047(mbq_buf *out, const char *hdr)
{
    const char *p = hdr;
    while ((p = strstr(p, "=?UTF-8?B?")) != NULL) {
        p += 10;
        unsigned acc = 0;
        int bits = 0;
        for (; *p && *p != '?'; p++) {
            int v = b64val(*p);
            if (v < 0)
                continue;
            acc = (acc << 6) | (unsigned)v;
            bits += 6;
            if (bits >= 8) {
                bits -= 8;
                mbq_buf_putc(out, (char)((acc >> bits) & 0xFF));
            }
        }
    }
}

static void test_email_headers_and_crlf(void)
{
    mbq_email_config c = email_cfg();
    mbq_buf b = MBQ_BUF_INIT;
    CHECK_INT(mbq_notify_format_email(&b, &c, &fix_failure, FIX_FINISHED_MS + 1000), 0);
    const char *m = mbq_buf_cstr(&b);
    CHECK(strncmp(m, "From: mbq <mbq@alerts.example.com>\r\n", 36) == 0);
    CHECK_CONTAINS(m, "\r\nTo: ops@example.com,\r\n Data Team <data@example.com>\r\n");
    CHECK_CONTAINS(m, "\r\nSubject: [mbq] FAILED: 2 of 3 tables failed (orders, customers)\r\n");
    CHECK_CONTAINS(m, "\r\nDate: Thu, 26 Nov 2026 01:02:04 +0000\r\n");
    CHECK_CONTAINS(m, "\r\nMessage-ID: <mbq.");
    CHECK_CONTAINS(m, "@alerts.example.com>\r\n");
    CHECK_CONTAINS(m, "\r\nMIME-Version: 1.0\r\n");
    CHECK_CONTAINS(m, "\r\nContent-Type: text/plain; charset=utf-8\r\n");
    CHECK_CONTAINS(m, "\r\nContent-Transfer-Encoding: 8bit\r\n\r\nmbq sync run run-fixture");
    CHECK_CONTAINS(m, "\r\n  stage:    merge\r\n");
    /* Every LF is part of a CRLF: SMTP forbids bare LFs. */
    for (size_t i = 0; i < b.len; i++)
        if (m[i] == '\n' && (i == 0 || m[i - 1] != '\r')) {
            CHECK(!"bare LF in the message");
            break;
        }
    mbq_buf_free(&b);
}

static void test_email_subject_rfc2047(void)
{
    static const char name[] = "zam\xC3\xB3wienia_\xE2\x82\xAC_\xF0\x9F\x93\xA6_long_enough_"
                               "to_need_two_encoded_words";
    mbq_table_summary t = {name, MBQ_TABLE_FAILED, 0, 1, NULL, 0, "merge", "e", NULL, 0, 0, 0, false, false, 0};
    mbq_run_summary s = {"r", "h", 0, 1, &t, 1};
    mbq_email_config c = email_cfg();
    mbq_buf b = MBQ_BUF_INIT, subj = MBQ_BUF_INIT, want = MBQ_BUF_INIT;
    CHECK_INT(mbq_notify_format_email(&b, &c, &s, FIX_FINISHED_MS), 0);
    const char *h = strstr(mbq_buf_cstr(&b), "\r\nSubject: ");
    const char *end = h ? strstr(h, "\r\nDate: ") : NULL;
    CHECK(h && end);
    if (h && end) {
        mbq_buf hdr = MBQ_BUF_INIT;
        mbq_buf_append(&hdr, h + 2, (size_t)(end - h - 2));
        CHECK_CONTAINS(mbq_buf_cstr(&hdr), "Subject: =?UTF-8?B?");
        CHECK_CONTAINS(mbq_buf_cstr(&hdr), "?=\r\n =?UTF-8?B?"); /* folded, two words */
        /* No header line passes 78 characters, no raw 8-bit byte. */
        size_t col = 0;
        for (const char *p = hdr.ptr; *p; p++) {
            col = *p == '\n' ? 0 : col + 1;
            CHECK(col <= 78);
            CHECK((unsigned char)*p < 0x80);
        }
        decode_2047(&subj, mbq_buf_cstr(&hdr));
        mbq_buf_printf(&want, "[mbq] FAILED: 1 of 1 table failed (%s)", name);
        CHECK_STR(mbq_buf_cstr(&subj), mbq_buf_cstr(&want));
        mbq_buf_free(&hdr);
    }
    mbq_buf_free(&b);
    mbq_buf_free(&subj);
    mbq_buf_free(&want);
}

/* An error line longer than SMTP's line limit switches the body to
 * quoted-printable with soft breaks; no line passes 76 characters. */
static void test_email_long_line_quoted_printable(void)
{
    mbq_buf err = MBQ_BUF_INIT, b = MBQ_BUF_INIT;
    for (int i = 0; i < 300; i++)
        mbq_buf_puts(&err, "x=y ");
    mbq_table_summary t = {"orders", MBQ_TABLE_FAILED, 0, 1, NULL, 0, "merge", err.ptr, NULL, 0,
                           0, 0, false, false, 0};
    mbq_run_summary s = {"r", "h", 0, 1, &t, 1};
    mbq_email_config c = email_cfg();
    CHECK_INT(mbq_notify_format_email(&b, &c, &s, FIX_FINISHED_MS), 0);
    const char *m = mbq_buf_cstr(&b);
    CHECK_CONTAINS(m, "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
    CHECK_CONTAINS(m, "x=3Dy x=3Dy");
    const char *body = strstr(m, "\r\n\r\n");
    size_t col = 0;
    for (const char *p = body ? body : ""; *p; p++) {
        col = *p == '\n' ? 0 : col + 1;
        if (col > 77) {
            CHECK(!"quoted-printable line longer than 76 characters");
            break;
        }
    }
    mbq_buf_free(&err);
    mbq_buf_free(&b);
}

/* ---- telegram -------------------------------------------------------- */

/* Every '&' starts one of the three entities and '<' only opens <b>/</b>:
 * what Telegram's HTML parser accepts. */
static void check_html_clean(const char *s)
{
    for (const char *p = s; *p; p++) {
        if (*p == '&')
            CHECK(strncmp(p, "&lt;", 4) == 0 || strncmp(p, "&gt;", 4) == 0 ||
                  strncmp(p, "&amp;", 5) == 0);
        if (*p == '<')
            CHECK(strncmp(p, "<b>", 3) == 0 || strncmp(p, "</b>", 4) == 0);
        if (*p == '>')
            CHECK(p - s >= 2 && (strncmp(p - 2, "<b>", 3) == 0 ||
                                  (p - s >= 3 && strncmp(p - 3, "</b>", 4) == 0)));
    }
}

static size_t utf16_len(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p & 0xC0) != 0x80)
            n++;
        if ((*p & 0xF8) == 0xF0)
            n++;
    }
    return n;
}

static void test_telegram_html_escaping(void)
{
    mbq_table_summary t[] = {
        {"a<b>&c", MBQ_TABLE_FAILED, 0, 1, NULL, 0, "merge", "x < y && z > 1 <i>not a tag</i>",
         NULL, 0, 0, 0, false, false, 0},
    };
    mbq_run_summary s = {"r", "h", 0, 1, t, 1};
    mbq_buf b = MBQ_BUF_INIT;
    CHECK_INT(mbq_notify_format_telegram(&b, &s), 0);
    const char *m = mbq_buf_cstr(&b);
    static const char head[] = "<b>[mbq] FAILED: 1 of 1 table failed (a&lt;b&gt;&amp;c)</b>\n\n";
    CHECK(strncmp(m, head, sizeof head - 1) == 0);
    CHECK_CONTAINS(m, "error:    x &lt; y &amp;&amp; z &gt; 1 &lt;i&gt;not a tag&lt;/i&gt;");
    check_html_clean(m);
    mbq_buf_free(&b);
}

/* 500 failing tables with long errors full of escapes: the text stays within
 * 4096 UTF-16 units, ends with the note, and no entity is cut. */
static void test_telegram_truncated_under_limit(void)
{
    static mbq_table_summary t[500];
    static char names[500][32];
    for (int i = 0; i < 500; i++) {
        snprintf(names[i], sizeof names[i], "t\xF0\x9F\x93\xA6_%03d&", i);
        mbq_table_summary x = {names[i], MBQ_TABLE_FAILED, 0, 1, NULL, 0, "extract",
                               "<<<&&&>>> \xE2\x82\xAC error", NULL, 0, 0, 0, false, false, 0};
        t[i] = x;
    }
    mbq_run_summary s = {"r", "h", 0, 1000, t, 500};
    mbq_buf b = MBQ_BUF_INIT;
    CHECK_INT(mbq_notify_format_telegram(&b, &s), 0);
    CHECK(utf16_len(mbq_buf_cstr(&b)) <= MBQ_TELEGRAM_MAX_CHARS);
    CHECK(utf16_len(mbq_buf_cstr(&b)) > 3500);
    CHECK_CONTAINS(mbq_buf_cstr(&b), "[truncated: the full report is in the email and the logs]");
    check_html_clean(mbq_buf_cstr(&b));
    mbq_buf_free(&b);
}

/* ---- secrets --------------------------------------------------------- */

/* A registered secret quoted in an error (say a DSN in a MySQL message) is
 * masked in subject, body, email and Telegram text. */
static void test_secrets_masked_in_every_format(void)
{
    mbq_secret_register("hunter2-smtp-pass");
    mbq_table_summary t = {"orders", MBQ_TABLE_FAILED, 0, 1, NULL, 0, "extract",
                           "cannot connect mysql://u:hunter2-smtp-pass@db", NULL, 0, 0, 0, false, false, 0};
    mbq_run_summary s = {"r", "h", 0, 1, &t, 1};
    mbq_email_config c = email_cfg();
    mbq_buf b = MBQ_BUF_INIT;
    CHECK_INT(mbq_notify_format_text(&b, &s), 0);
    CHECK_INT(mbq_notify_format_email(&b, &c, &s, 0), 0);
    CHECK_INT(mbq_notify_format_telegram(&b, &s), 0);
    CHECK(strstr(mbq_buf_cstr(&b), "hunter2") == NULL);
    CHECK_CONTAINS(mbq_buf_cstr(&b), "mysql://u:***@db");
    mbq_buf_free(&b);
    mbq_secret_clear();
}

int main(void)
{
    RUN(test_policy_sequence_per_mode);
    RUN(test_policy_change_multi_table);
    RUN(test_policy_incident_alerts);
    RUN(test_subjects);
    RUN(test_subject_many_failures_truncated);
    RUN(test_subject_control_chars_flattened);
    RUN(test_body_failure_lists_every_failed_table);
    RUN(test_body_success_schema_and_recovery);
    RUN(test_body_invalid_utf8_replaced);
    RUN(test_email_headers_and_crlf);
    RUN(test_email_subject_rfc2047);
    RUN(test_email_long_line_quoted_printable);
    RUN(test_telegram_html_escaping);
    RUN(test_telegram_truncated_under_limit);
    RUN(test_secrets_masked_in_every_format);
    return test_summary();
}
