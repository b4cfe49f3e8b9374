/* Alert policy and message formatting (see mbq/notify.h). The senders are in
 * notify.c; this file does no I/O, so all of it is unit-tested. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mbq/buf.h"
#include "mbq/error.h"
#include "mbq/log.h"
#include "mbq/notify.h"
#include "mbq/util.h"
#include "mbq/banned.h"

/* How many failed/recovered table names a subject lists before "+N more":
 * mail clients show ~80 characters of a subject anyway. */
#define SUBJECT_NAMES_MAX_BYTES 80
/* A run-level failure's subject carries the error, cut here (the body has it whole). */
#define SUBJECT_RUN_ERROR_MAX_BYTES 160

/* RFC 5322 allows 998 bytes per line; a body line longer than this switches
 * the message to quoted-printable, which wraps lines without changing them. */
#define EMAIL_8BIT_LINE_MAX 900

/* ---- policy ---------------------------------------------------------- */

int mbq_table_consecutive_failures(const mbq_table_summary *t)
{
    int prev = t->prev_consecutive_failures > 0 ? t->prev_consecutive_failures : 0;
    return t->result == MBQ_TABLE_FAILED ? prev + 1 : 0;
}

bool mbq_table_started_failing(const mbq_table_summary *t)
{
    return t->result == MBQ_TABLE_FAILED && t->prev_consecutive_failures <= 0;
}

bool mbq_table_recovered(const mbq_table_summary *t)
{
    return t->result != MBQ_TABLE_FAILED && t->prev_consecutive_failures > 0;
}

bool mbq_run_failed(const mbq_run_summary *s)
{
    return s->run_error != NULL;
}

bool mbq_run_recovered(const mbq_run_summary *s)
{
    return !s->run_error && s->prev_run_failures > 0;
}

int mbq_notify_should_send(mbq_alert_on on, const mbq_run_summary *s)
{
    /* A run that stopped before any table has no table to look at: it is
     * one failure of its own (the lock held for too long, the journal
     * unusable, a bug), heard like a table's. */
    if (mbq_run_failed(s))
        return on != MBQ_ALERT_CHANGE || s->prev_run_failures <= 0 ||
               s->prev_exit_code != s->exit_code;
    if (on == MBQ_ALERT_CHANGE && mbq_run_recovered(s))
        return 1;
    switch (on) {
    case MBQ_ALERT_ALWAYS:
        return 1;
    case MBQ_ALERT_FAILURE:
        for (size_t i = 0; i < s->n_tables; i++)
            if (s->tables[i].result == MBQ_TABLE_FAILED || s->tables[i].incident)
                return 1;
        return 0;
    case MBQ_ALERT_CHANGE:
        /* Only transitions: a table broken for a day must not send one alert
         * per cron run, but its breaking and its recovery must be seen (and
         * an incident happens once). */
        for (size_t i = 0; i < s->n_tables; i++)
            if (mbq_table_started_failing(&s->tables[i]) || mbq_table_recovered(&s->tables[i]) ||
                s->tables[i].incident)
                return 1;
        return 0;
    }
    return 0;
}

/* ---- text helpers ---------------------------------------------------- */

static const char *control_to_space(unsigned char c)
{
    return c < 0x20 || c == 0x7F ? " " : NULL;
}

/* Append `s` as one line of clean UTF-8: control characters (a newline in an
 * error message, or CR/LF in a table name that would otherwise let it inject
 * mail headers) become spaces, invalid bytes become U+FFFD. */
static int put_clean(mbq_buf *b, const char *s)
{
    return s ? mbq_buf_put_utf8(b, s, control_to_space) : mbq_buf_puts(b, "(none)");
}

/* 12345 -> "12.3 s", 252000 -> "4 min 12 s", 7380000 -> "2 h 3 min" */
static int put_duration(mbq_buf *b, int64_t ms)
{
    if (ms < 0)
        ms = 0;
    if (ms < 60000)
        return mbq_buf_printf(b, "%lld.%lld s", (long long)(ms / 1000), (long long)(ms % 1000 / 100));
    int64_t s = ms / 1000;
    if (s < 3600)
        return mbq_buf_printf(b, "%lld min %lld s", (long long)(s / 60), (long long)(s % 60));
    return mbq_buf_printf(b, "%lld h %lld min", (long long)(s / 3600), (long long)(s % 3600 / 60));
}

/* "2026-11-26 01:02:03 UTC" */
static int put_utc(mbq_buf *b, int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r(&t, &tm))
        return mbq_error_set(MBQ_EINTERNAL, "cannot convert time %lld", (long long)ms);
    return mbq_buf_printf(b, "%04d-%02d-%02d %02d:%02d:%02d UTC", tm.tm_year + 1900, tm.tm_mon + 1,
                          tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

typedef struct run_counts {
    size_t ok;      /* OK + SKIPPED */
    size_t failed;
    size_t skipped;
    size_t recovered;
    size_t changed; /* tables with schema changes */
    int64_t rows;
} run_counts;

static run_counts count_run(const mbq_run_summary *s)
{
    run_counts c = {0, 0, 0, 0, 0, 0};
    for (size_t i = 0; i < s->n_tables; i++) {
        const mbq_table_summary *t = &s->tables[i];
        if (t->result == MBQ_TABLE_FAILED)
            c.failed++;
        else
            c.ok++;
        if (t->result == MBQ_TABLE_SKIPPED)
            c.skipped++;
        if (mbq_table_recovered(t))
            c.recovered++;
        if (t->n_schema_changes > 0)
            c.changed++;
        if (t->rows_synced > 0)
            c.rows += t->rows_synced;
    }
    return c;
}

/* ", "-separated names of the tables matching `want` (a predicate), at most
 * about SUBJECT_NAMES_MAX_BYTES, then "+N more". */
static int put_names(mbq_buf *b, const mbq_run_summary *s, bool (*want)(const mbq_table_summary *))
{
    size_t start = b->len, shown = 0, total = 0;
    for (size_t i = 0; i < s->n_tables; i++) {
        if (!want(&s->tables[i]))
            continue;
        total++;
        if (b->len - start > SUBJECT_NAMES_MAX_BYTES)
            continue;
        if (shown && mbq_buf_puts(b, ", "))
            return MBQ_ENOMEM;
        if (put_clean(b, s->tables[i].name))
            return MBQ_ENOMEM;
        shown++;
    }
    if (total > shown)
        return mbq_buf_printf(b, ", +%zu more", total - shown);
    return 0;
}

static bool is_failed(const mbq_table_summary *t)
{
    return t->result == MBQ_TABLE_FAILED;
}

static bool has_schema_changes(const mbq_table_summary *t)
{
    return t->n_schema_changes > 0;
}

static int mask_from(mbq_buf *b, size_t start)
{
    if (b->ptr && b->len > start) {
        mbq_secret_mask(b->ptr + start);
        b->len = start + strlen(b->ptr + start);
    }
    return 0;
}

/* ---- subject and body ------------------------------------------------ */

int mbq_notify_format_subject(mbq_buf *out, const mbq_run_summary *s)
{
    size_t start = out->len;
    run_counts c = count_run(s);
    int rc;
    if (mbq_run_failed(s)) {
        rc = mbq_buf_printf(out, "[mbq] FAILED: run stopped (exit %d): ", s->exit_code);
        if (!rc)
            rc = put_clean(out, s->run_error);
        /* The error can be long (paths, SQLite's text): keep the subject
         * one readable line; the body has it whole. */
        if (!rc && out->len - start > SUBJECT_RUN_ERROR_MAX_BYTES) {
            size_t cut = start + SUBJECT_RUN_ERROR_MAX_BYTES;
            while (cut > start && ((unsigned char)out->ptr[cut] & 0xC0) == 0x80)
                cut--; /* not inside a UTF-8 sequence */
            out->len = cut;
            out->ptr[cut] = '\0';
            rc = mbq_buf_puts(out, "...");
        }
    } else if (c.failed) {
        rc = mbq_buf_printf(out, "[mbq] FAILED: %zu of %zu %s failed (", c.failed, s->n_tables,
                            s->n_tables == 1 ? "table" : "tables");
        if (!rc)
            rc = put_names(out, s, is_failed);
        if (!rc)
            rc = mbq_buf_putc(out, ')');
    } else if (mbq_run_recovered(s) && !c.recovered) {
        rc = mbq_buf_printf(out, "[mbq] RECOVERED: runs go through again (after %d stopped, "
                                 "exit %d)", s->prev_run_failures, s->prev_exit_code);
    } else if (c.recovered) {
        rc = mbq_buf_puts(out, "[mbq] RECOVERED: ");
        if (!rc)
            rc = put_names(out, s, mbq_table_recovered);
    } else {
        rc = mbq_buf_printf(out, "[mbq] OK: %zu %s synced, ", c.ok, c.ok == 1 ? "table" : "tables");
        if (!rc)
            rc = mbq_buf_put_count(out, c.rows);
        if (!rc)
            rc = mbq_buf_puts(out, c.rows == 1 ? " row (" : " rows (");
        if (!rc)
            rc = put_duration(out, s->finished_ms - s->started_ms);
        if (!rc)
            rc = mbq_buf_putc(out, ')');
        /* Schema changes deserve a glance even in a success mail. */
        if (!rc && c.changed) {
            rc = mbq_buf_puts(out, ", schema changed: ");
            if (!rc)
                rc = put_names(out, s, has_schema_changes);
        }
    }
    if (rc)
        return rc;
    return mask_from(out, start);
}

static const char *result_word(const mbq_table_summary *t)
{
    switch (t->result) {
    case MBQ_TABLE_OK:
        return "ok";
    case MBQ_TABLE_FAILED:
        return "FAILED";
    case MBQ_TABLE_SKIPPED:
        return "no changes";
    }
    return "?";
}

static int put_stages(mbq_buf *b, const mbq_table_summary *t)
{
    if (!t->n_stages || !t->stages)
        return 0;
    if (mbq_buf_puts(b, " ["))
        return MBQ_ENOMEM;
    for (size_t i = 0; i < t->n_stages; i++) {
        if (i && mbq_buf_puts(b, ", "))
            return MBQ_ENOMEM;
        if (put_clean(b, t->stages[i].stage) || mbq_buf_putc(b, ' ') ||
            put_duration(b, t->stages[i].duration_ms))
            return MBQ_ENOMEM;
    }
    return mbq_buf_putc(b, ']');
}

static int put_host(mbq_buf *b, const mbq_run_summary *s)
{
    if (s->host)
        return put_clean(b, s->host);
    /* HOST_NAME_MAX is 64 on Linux; a truncated name is still useful. */
    char name[256];
    if (gethostname(name, sizeof name) != 0)
        return mbq_buf_puts(b, "unknown host");
    name[sizeof name - 1] = '\0';
    return put_clean(b, name);
}

/* What a run-level exit code means (mbq/exitcode.h), for the alert body. */
static const char *run_exit_meaning(int code)
{
    switch (code) {
    case 69: return "MySQL or BigQuery unreachable";
    case 70: return "internal error, please report it";
    case 74: return "the journal or the local disk";
    case 75: return "another run holds the lock";
    case 77: return "credentials refused";
    default: return "see the error";
    }
}

int mbq_notify_format_text(mbq_buf *out, const mbq_run_summary *s)
{
    size_t start = out->len;
    run_counts c = count_run(s);
    int rc = MBQ_ENOMEM;

    if (mbq_buf_puts(out, "mbq sync run ") || put_clean(out, s->run_id ? s->run_id : "-") ||
        mbq_buf_puts(out, " on ") || put_host(out, s) || mbq_buf_puts(out, "\n\n"))
        goto done;
    if (mbq_buf_puts(out, "Completed: ") || put_utc(out, s->finished_ms) ||
        mbq_buf_puts(out, "\nStarted:   ") || put_utc(out, s->started_ms) ||
        mbq_buf_puts(out, "\nDuration:  ") || put_duration(out, s->finished_ms - s->started_ms) ||
        mbq_buf_puts(out, "\nResult:    "))
        goto done;
    if (mbq_run_failed(s)) {
        if (mbq_buf_printf(out, "the run stopped before any table (exit %d: %s)\n\nERROR\n  ",
                           s->exit_code, run_exit_meaning(s->exit_code)) ||
            put_clean(out, s->run_error) || mbq_buf_putc(out, '\n'))
            goto done;
        if (s->prev_run_failures > 0 &&
            mbq_buf_printf(out, "  failing:  %d runs in a row\n", s->prev_run_failures + 1))
            goto done;
        rc = mask_from(out, start);
        goto done;
    }
    if (c.failed) {
        if (mbq_buf_printf(out, "%zu of %zu %s failed", c.failed, s->n_tables,
                           s->n_tables == 1 ? "table" : "tables"))
            goto done;
    } else if (mbq_buf_printf(out, "all %zu %s ok", s->n_tables,
                              s->n_tables == 1 ? "table" : "tables")) {
        goto done;
    }
    if (mbq_buf_puts(out, ", ") || mbq_buf_put_count(out, c.rows) ||
        mbq_buf_puts(out, c.rows == 1 ? " row synced\n" : " rows synced\n"))
        goto done;

    if (c.failed) {
        if (mbq_buf_puts(out, "\nFAILED TABLES\n"))
            goto done;
        for (size_t i = 0; i < s->n_tables; i++) {
            const mbq_table_summary *t = &s->tables[i];
            if (t->result != MBQ_TABLE_FAILED)
                continue;
            int n = mbq_table_consecutive_failures(t);
            if (mbq_buf_puts(out, "\n") || put_clean(out, t->name) ||
                mbq_buf_puts(out, "\n  stage:    ") || put_clean(out, t->failed_stage) ||
                mbq_buf_puts(out, "\n  error:    ") || put_clean(out, t->error) ||
                mbq_buf_puts(out, "\n  duration: ") || put_duration(out, t->duration_ms) ||
                mbq_buf_puts(out, "\n  failing:  "))
                goto done;
            if (n <= 1 ? mbq_buf_puts(out, "since this run\n")
                       : mbq_buf_printf(out, "%d runs in a row\n", n))
                goto done;
        }
    }

    if (mbq_run_recovered(s) &&
        mbq_buf_printf(out, "\nRuns go through again after %d %s that stopped (last exit %d: %s)\n",
                       s->prev_run_failures, s->prev_run_failures == 1 ? "run" : "runs",
                       s->prev_exit_code, run_exit_meaning(s->prev_exit_code)))
        goto done;
    if (c.recovered) {
        if (mbq_buf_puts(out, "\nRECOVERED\n"))
            goto done;
        for (size_t i = 0; i < s->n_tables; i++) {
            const mbq_table_summary *t = &s->tables[i];
            if (!mbq_table_recovered(t))
                continue;
            if (mbq_buf_puts(out, "  ") || put_clean(out, t->name) ||
                mbq_buf_printf(out, " (after %d failed %s)\n", t->prev_consecutive_failures,
                               t->prev_consecutive_failures == 1 ? "run" : "runs"))
                goto done;
        }
    }

    if (mbq_buf_puts(out, "\nTABLES\n"))
        goto done;
    if (s->n_tables == 0 && mbq_buf_puts(out, "  (none)\n"))
        goto done;
    for (size_t i = 0; i < s->n_tables; i++) {
        const mbq_table_summary *t = &s->tables[i];
        if (mbq_buf_puts(out, "  ") || put_clean(out, t->name) || mbq_buf_puts(out, ": ") ||
            mbq_buf_puts(out, result_word(t)))
            goto done;
        if (t->result == MBQ_TABLE_FAILED) {
            if (mbq_buf_puts(out, " at ") || put_clean(out, t->failed_stage) ||
                mbq_buf_puts(out, " after "))
                goto done;
        } else if (t->result == MBQ_TABLE_OK) {
            if (mbq_buf_puts(out, ", ") || mbq_buf_put_count(out, t->rows_synced) ||
                mbq_buf_puts(out, t->rows_synced == 1 ? " row in " : " rows in "))
                goto done;
        } else if (mbq_buf_puts(out, ", ")) {
            goto done;
        }
        if (put_duration(out, t->duration_ms) || put_stages(out, t))
            goto done;
        if (t->reconciled && (mbq_buf_puts(out, "; deletes: ") ||
                              mbq_buf_put_count(out, t->rows_deleted) ||
                              mbq_buf_puts(out, t->rows_deleted == 1 ? " row removed"
                                                                     : " rows removed")))
            goto done;
        if (mbq_buf_putc(out, '\n'))
            goto done;
    }

    if (c.changed) {
        if (mbq_buf_puts(out, "\nSCHEMA CHANGES\n"))
            goto done;
        for (size_t i = 0; i < s->n_tables; i++) {
            const mbq_table_summary *t = &s->tables[i];
            if (!t->n_schema_changes)
                continue;
            if (mbq_buf_puts(out, "  ") || put_clean(out, t->name) || mbq_buf_puts(out, ":\n"))
                goto done;
            for (size_t j = 0; j < t->n_schema_changes; j++)
                if (mbq_buf_puts(out, "    - ") || put_clean(out, t->schema_changes[j]) ||
                    mbq_buf_putc(out, '\n'))
                    goto done;
        }
    }
    rc = mask_from(out, start);
done:
    return rc;
}

/* ---- email ----------------------------------------------------------- */

/* The bare address of "Name <a@b>" or "a@b", appended as "a@b", one line. */
static int put_address(mbq_buf *b, const char *s)
{
    const char *lt = strchr(s, '<');
    const char *gt = lt ? strchr(lt, '>') : NULL;
    mbq_buf tmp = MBQ_BUF_INIT;
    int rc;
    if (lt && gt)
        rc = mbq_buf_append(&tmp, lt + 1, (size_t)(gt - lt - 1));
    else
        rc = mbq_buf_puts(&tmp, s);
    if (!rc)
        rc = put_clean(b, mbq_buf_cstr(&tmp));
    mbq_buf_free(&tmp);
    return rc;
}

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int put_base64(mbq_buf *b, const unsigned char *p, size_t len)
{
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < len)
            v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < len)
            v |= p[i + 2];
        char q[4] = {b64chars[(v >> 18) & 63], b64chars[(v >> 12) & 63],
                     i + 1 < len ? b64chars[(v >> 6) & 63] : '=',
                     i + 2 < len ? b64chars[v & 63] : '='};
        if (mbq_buf_append(b, q, 4))
            return MBQ_ENOMEM;
    }
    return 0;
}

/* "Subject: ..." folded. ASCII text is folded at spaces to stay near 78
 * columns; anything else is RFC 2047 "=?UTF-8?B?...?=" words of at most 75
 * characters (45 input bytes; 39 on the first line, after "Subject: "),
 * never splitting a UTF-8 sequence, since a
 * decoder handles each encoded word on its own. */
static int put_subject_header(mbq_buf *b, const char *subject)
{
    bool ascii = true;
    for (const unsigned char *p = (const unsigned char *)subject; *p; p++)
        if (*p >= 0x80)
            ascii = false;
    if (mbq_buf_puts(b, "Subject: "))
        return MBQ_ENOMEM;
    if (ascii) {
        size_t col = 9;
        const char *p = subject;
        while (*p) {
            const char *sp = strchr(p + 1, ' ');
            size_t n = sp ? (size_t)(sp - p) : strlen(p);
            /* Fold before a space: the space becomes the continuation's
             * leading whitespace, so unfolding restores the text. */
            if (col + n > 78 && col > 9 && *p == ' ') {
                if (mbq_buf_puts(b, "\r\n"))
                    return MBQ_ENOMEM;
                col = 0;
            }
            if (mbq_buf_append(b, p, n))
                return MBQ_ENOMEM;
            col += n;
            p += n;
        }
        return mbq_buf_puts(b, "\r\n");
    }
    const unsigned char *p = (const unsigned char *)subject;
    size_t len = strlen(subject), i = 0;
    bool first = true;
    while (i < len) {
        size_t n = 0;
        while (i + n < len) {
            size_t k = mbq_utf8_seq_len(p + i + n, len - i - n);
            if (k == 0)
                k = 1; /* put_clean made it valid; be safe anyway */
            if (n + k > (first ? 39u : 45u))
                break;
            n += k;
        }
        if ((!first && mbq_buf_puts(b, "\r\n ")) || mbq_buf_puts(b, "=?UTF-8?B?") ||
            put_base64(b, p + i, n) || mbq_buf_puts(b, "?="))
            return MBQ_ENOMEM;
        first = false;
        i += n;
    }
    return mbq_buf_puts(b, "\r\n");
}

/* RFC 5322 date, always UTC: "Thu, 26 Nov 2026 01:02:03 +0000". Names are
 * spelled out because strftime's %a/%b follow the locale. */
static int put_rfc5322_date(mbq_buf *b, int64_t ms)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r(&t, &tm))
        return mbq_error_set(MBQ_EINTERNAL, "cannot convert time %lld", (long long)ms);
    return mbq_buf_printf(b, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday % 7],
                          tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour,
                          tm.tm_min, tm.tm_sec);
}

/* Quoted-printable (RFC 2045 6.7) of LF-separated text, CRLF line ends,
 * soft breaks before 76 columns. */
static int put_quoted_printable(mbq_buf *b, const char *text)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t col = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p == '\n') {
            if (mbq_buf_puts(b, "\r\n"))
                return MBQ_ENOMEM;
            col = 0;
            continue;
        }
        char enc[3];
        size_t n;
        /* Spaces before a line end would be stripped in transit: encode. */
        bool trailing_space = (*p == ' ' || *p == '\t') && (p[1] == '\n' || p[1] == '\0');
        if ((*p >= 33 && *p <= 126 && *p != '=') || ((*p == ' ' || *p == '\t') && !trailing_space)) {
            enc[0] = (char)*p;
            n = 1;
        } else {
            enc[0] = '=', enc[1] = hex[*p >> 4], enc[2] = hex[*p & 15];
            n = 3;
        }
        if (col + n > 75) {
            if (mbq_buf_puts(b, "=\r\n"))
                return MBQ_ENOMEM;
            col = 0;
        }
        if (mbq_buf_append(b, enc, n))
            return MBQ_ENOMEM;
        col += n;
    }
    return 0;
}

static bool needs_qp(const char *text)
{
    size_t col = 0;
    for (const char *p = text; *p; p++) {
        col = *p == '\n' ? 0 : col + 1;
        if (col > EMAIL_8BIT_LINE_MAX)
            return true;
    }
    return false;
}

int mbq_notify_format_email(mbq_buf *out, const mbq_email_config *cfg, const mbq_run_summary *s,
                            int64_t now_ms)
{
    mbq_buf subject = MBQ_BUF_INIT, body = MBQ_BUF_INIT, domain = MBQ_BUF_INIT;
    int rc;
    char uuid[37];

    if ((rc = mbq_notify_format_subject(&subject, s)) != 0)
        goto done;
    if ((rc = mbq_notify_format_text(&body, s)) != 0)
        goto done;

    /* The Message-ID's right side: the sender's domain identifies us
     * better than a hostname that may not resolve. */
    if (cfg->from && (rc = put_address(&domain, cfg->from)) != 0)
        goto done;
    const char *at = strrchr(mbq_buf_cstr(&domain), '@');
    mbq_uuid(uuid);

    rc = MBQ_ENOMEM;
    if (mbq_buf_puts(out, "From: ") || put_clean(out, cfg->from ? cfg->from : "mbq") ||
        mbq_buf_puts(out, "\r\nTo: "))
        goto done;
    for (size_t i = 0; i < cfg->n_to; i++)
        if ((i && mbq_buf_puts(out, ",\r\n ")) || put_clean(out, cfg->to[i]))
            goto done;
    if (mbq_buf_puts(out, "\r\n") || put_subject_header(out, mbq_buf_cstr(&subject)) ||
        mbq_buf_puts(out, "Date: ") || put_rfc5322_date(out, now_ms) ||
        mbq_buf_printf(out, "\r\nMessage-ID: <mbq.%s@", uuid) ||
        put_clean(out, at && at[1] ? at + 1 : "mbq.invalid") ||
        mbq_buf_puts(out, ">\r\nMIME-Version: 1.0\r\n"
                          "Content-Type: text/plain; charset=utf-8\r\n") ||
        /* RFC 3834: tells vacation responders not to answer. */
        mbq_buf_puts(out, "Auto-Submitted: auto-generated\r\nX-Mailer: mbq/" MBQ_VERSION "\r\n"))
        goto done;
    if (needs_qp(mbq_buf_cstr(&body))) {
        if (mbq_buf_puts(out, "Content-Transfer-Encoding: quoted-printable\r\n\r\n") ||
            put_quoted_printable(out, mbq_buf_cstr(&body)))
            goto done;
    } else {
        if (mbq_buf_puts(out, "Content-Transfer-Encoding: 8bit\r\n\r\n"))
            goto done;
        for (const char *p = mbq_buf_cstr(&body); *p; p++)
            if (*p == '\n' ? mbq_buf_puts(out, "\r\n") : mbq_buf_putc(out, *p))
                goto done;
    }
    rc = 0;
done:
    mbq_buf_free(&subject);
    mbq_buf_free(&body);
    mbq_buf_free(&domain);
    return rc;
}

/* ---- telegram -------------------------------------------------------- */

/* Telegram limits a message to 4096 characters (counted as UTF-16 code
 * units after entity parsing). Counting the escaped text, tags included,
 * over-estimates, so the limit holds. */
static size_t utf16_units(size_t utf8_len)
{
    return utf8_len == 4 ? 2 : 1; /* astral characters are surrogate pairs */
}

/* Append `text` HTML-escaped, stopping before `*budget` UTF-16 units run
 * out. Returns the bytes of `text` consumed. */
static int put_html(mbq_buf *b, const char *text, size_t *budget, size_t *consumed)
{
    const unsigned char *p = (const unsigned char *)text;
    size_t len = strlen(text), i = 0;
    while (i < len) {
        size_t n = mbq_utf8_seq_len(p + i, len - i);
        const char *rep = NULL;
        size_t units;
        if (n == 0) {
            rep = "\xEF\xBF\xBD", units = 1, n = 1;
        } else if (p[i] == '<') {
            rep = "&lt;", units = 4;
        } else if (p[i] == '>') {
            rep = "&gt;", units = 4;
        } else if (p[i] == '&') {
            rep = "&amp;", units = 5;
        } else {
            units = utf16_units(n);
        }
        if (units > *budget)
            break;
        if (rep ? mbq_buf_puts(b, rep) : mbq_buf_append(b, p + i, n))
            return MBQ_ENOMEM;
        *budget -= units;
        i += n;
    }
    *consumed = i;
    return 0;
}

int mbq_notify_format_telegram(mbq_buf *out, const mbq_run_summary *s)
{
    /* Room kept for the truncation note. */
    static const char note[] = "\n\n[truncated: the full report is in the email and the logs]";
    mbq_buf subject = MBQ_BUF_INIT, body = MBQ_BUF_INIT, msg = MBQ_BUF_INIT;
    size_t budget = MBQ_TELEGRAM_MAX_CHARS - (sizeof note - 1), used;
    int rc;

    if ((rc = mbq_notify_format_subject(&subject, s)) != 0)
        goto done;
    if ((rc = mbq_notify_format_text(&body, s)) != 0)
        goto done;
    budget -= 7 + 2; /* <b></b> and the blank line */
    rc = MBQ_ENOMEM;
    if (mbq_buf_puts(&msg, "<b>") || put_html(&msg, mbq_buf_cstr(&subject), &budget, &used) ||
        mbq_buf_puts(&msg, "</b>\n\n"))
        goto done;
    size_t body_start = msg.len;
    if (put_html(&msg, mbq_buf_cstr(&body), &budget, &used))
        goto done;
    if (used < body.len) {
        /* Cut at the last line end when one is near, so no line is left
         * half-shown (and never inside an entity: put_html stops between
         * characters). */
        char *nl = msg.ptr ? strrchr(msg.ptr + body_start, '\n') : NULL;
        if (nl && (size_t)(msg.ptr + msg.len - nl) < 512) {
            msg.len = (size_t)(nl - msg.ptr);
            msg.ptr[msg.len] = '\0';
        }
        if (mbq_buf_puts(&msg, note))
            goto done;
    }
    while (msg.len && msg.ptr[msg.len - 1] == '\n')
        msg.ptr[--msg.len] = '\0';
    if (mbq_buf_append(out, msg.ptr ? msg.ptr : "", msg.len))
        goto done;
    rc = 0;
done:
    mbq_buf_free(&subject);
    mbq_buf_free(&body);
    mbq_buf_free(&msg);
    return rc;
}
