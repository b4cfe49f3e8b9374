/* Prometheus text-format metrics (see mbq/metrics.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mbq/buf.h"
#include "mbq/error.h"
#include "mbq/metrics.h"
#include "mbq/notify.h"
#include "mbq/util.h"
#include "mbq/version.h"
#include "mbq/banned.h"

/* The text format's only escapes in a label value: \\, \" and \n. */
static const char *label_escape(unsigned char c)
{
    return c == '\\' ? "\\\\" : c == '"' ? "\\\"" : c == '\n' ? "\\n" : NULL;
}

/* A label value in quotes. The format requires UTF-8 label values (a table
 * name in latin1 would make the collector reject the whole file): invalid
 * bytes become U+FFFD. */
static int put_label_value(mbq_buf *b, const char *s)
{
    if (mbq_buf_putc(b, '"') || mbq_buf_put_utf8(b, s ? s : "", label_escape))
        return MBQ_ENOMEM;
    return mbq_buf_putc(b, '"');
}

static int put_family(mbq_buf *b, const char *name, const char *help)
{
    return mbq_buf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
}

/* Milliseconds as seconds with millisecond precision, no float rounding. */
static int put_seconds(mbq_buf *b, int64_t ms)
{
    if (ms < 0)
        return mbq_buf_printf(b, "-%lld.%03lld", (long long)(-ms / 1000), (long long)(-ms % 1000));
    return mbq_buf_printf(b, "%lld.%03lld", (long long)(ms / 1000), (long long)(ms % 1000));
}

/* `name{table="t"` (caller closes or adds labels). */
static int put_table_sample(mbq_buf *b, const char *name, const mbq_table_summary *t)
{
    if (mbq_buf_puts(b, name) || mbq_buf_puts(b, "{table=") || put_label_value(b, t->name))
        return MBQ_ENOMEM;
    return 0;
}

static int64_t last_success_ms(const mbq_run_summary *s, const mbq_table_summary *t)
{
    if (t->last_success_ms > 0)
        return t->last_success_ms;
    return t->result != MBQ_TABLE_FAILED ? s->finished_ms : 0;
}

static const char *const result_names[] = {"ok", "failed", "skipped"};

static int put_run_families(mbq_buf *out, const mbq_run_summary *s, const size_t n_result[3],
                            int64_t rows);

int mbq_metrics_format(mbq_buf *out, const mbq_run_summary *s)
{
    size_t n_result[3] = {0, 0, 0};
    int64_t rows = 0;
    const mbq_table_summary *t;
    size_t i;

#define EACH_TABLE for (i = 0, t = s->tables; i < s->n_tables; i++, t++)
    if (put_family(out, "mbq_table_up", "Whether the table's last sync succeeded (1) or failed (0)."))
        return MBQ_ENOMEM;
    EACH_TABLE
    {
        if (put_table_sample(out, "mbq_table_up", t) ||
            mbq_buf_printf(out, "} %d\n", t->result == MBQ_TABLE_FAILED ? 0 : 1))
            return MBQ_ENOMEM;
    }

    if (put_family(out, "mbq_table_result",
                   "The table's result in the last run (1 for the current result)."))
        return MBQ_ENOMEM;
    EACH_TABLE
    {
        for (int r = 0; r < 3; r++)
            if (put_table_sample(out, "mbq_table_result", t) ||
                mbq_buf_printf(out, ",result=\"%s\"} %d\n", result_names[r], (int)t->result == r))
                return MBQ_ENOMEM;
    }

    if (put_family(out, "mbq_table_rows_synced", "Rows synced in the last run."))
        return MBQ_ENOMEM;
    EACH_TABLE
    {
        if (put_table_sample(out, "mbq_table_rows_synced", t) ||
            mbq_buf_printf(out, "} %lld\n", (long long)t->rows_synced))
            return MBQ_ENOMEM;
    }

    /* Only tables whose reconciliation ran in this run have a sample: a
     * missing sample is "not reconciled", not "nothing deleted". */
    if (put_family(out, "mbq_table_rows_deleted",
                   "Rows deleted (hard) or flagged (soft) by the last run's reconciliation."))
        return MBQ_ENOMEM;
    EACH_TABLE
    {
        if (t->reconciled && (put_table_sample(out, "mbq_table_rows_deleted", t) ||
                              mbq_buf_printf(out, "} %lld\n", (long long)t->rows_deleted)))
            return MBQ_ENOMEM;
    }

    if (put_family(out, "mbq_table_sync_duration_seconds", "Time the table took in the last run."))
        return MBQ_ENOMEM;
    EACH_TABLE
    {
        if (put_table_sample(out, "mbq_table_sync_duration_seconds", t) || mbq_buf_puts(out, "} ") ||
            put_seconds(out, t->duration_ms) || mbq_buf_putc(out, '\n'))
            return MBQ_ENOMEM;
    }

    if (put_family(out, "mbq_table_stage_duration_seconds",
                   "Time each state of the table's sync took in the last run."))
        return MBQ_ENOMEM;
    EACH_TABLE
    {
        for (size_t j = 0; j < t->n_stages; j++)
            if (put_table_sample(out, "mbq_table_stage_duration_seconds", t) ||
                mbq_buf_puts(out, ",stage=") || put_label_value(out, t->stages[j].stage) ||
                mbq_buf_puts(out, "} ") || put_seconds(out, t->stages[j].duration_ms) ||
                mbq_buf_putc(out, '\n'))
                return MBQ_ENOMEM;
    }

    if (put_family(out, "mbq_table_last_success_timestamp_seconds",
                   "Unix time of the table's last successful sync (0 = never)."))
        return MBQ_ENOMEM;
    EACH_TABLE
    {
        if (put_table_sample(out, "mbq_table_last_success_timestamp_seconds", t) ||
            mbq_buf_puts(out, "} ") || put_seconds(out, last_success_ms(s, t)) ||
            mbq_buf_putc(out, '\n'))
            return MBQ_ENOMEM;
    }

    if (put_family(out, "mbq_table_consecutive_failures",
                   "Failed runs in a row for the table, the last run included."))
        return MBQ_ENOMEM;
    EACH_TABLE
    {
        if (put_table_sample(out, "mbq_table_consecutive_failures", t) ||
            mbq_buf_printf(out, "} %d\n", mbq_table_consecutive_failures(t)))
            return MBQ_ENOMEM;
    }

    if (put_family(out, "mbq_table_schema_changes", "Schema changes applied in the last run."))
        return MBQ_ENOMEM;
    EACH_TABLE
    {
        if (put_table_sample(out, "mbq_table_schema_changes", t) ||
            mbq_buf_printf(out, "} %zu\n", t->n_schema_changes))
            return MBQ_ENOMEM;
        if (t->result >= MBQ_TABLE_OK && t->result <= MBQ_TABLE_SKIPPED)
            n_result[t->result]++;
        if (t->rows_synced > 0)
            rows += t->rows_synced;
    }
#undef EACH_TABLE

    return put_run_families(out, s, n_result, rows);
}

/* The families of the run as a whole, after the tables' (or alone, for a
 * run that stopped before any table). */
static int put_run_families(mbq_buf *out, const mbq_run_summary *s, const size_t n_result[3],
                            int64_t rows)
{
    /* The info-metric idiom: constant 1, the facts in labels, so a query
     * can join them onto any other series (e.g. to see which build a
     * failing host runs). */
    if (put_family(out, "mbq_build_info", "The running mbq's version and build commit (always 1).") ||
        mbq_buf_puts(out, "mbq_build_info{version=") || put_label_value(out, mbq_version()) ||
        mbq_buf_puts(out, ",commit=") || put_label_value(out, mbq_version_commit()) ||
        mbq_buf_puts(out, "} 1\n"))
        return MBQ_ENOMEM;
    if (put_family(out, "mbq_run_exit_code", "Exit code of the last run (0 ok, 1 a table failed, "
                                             "69, 70, 74, 75, 77: see the README).") ||
        mbq_buf_printf(out, "mbq_run_exit_code %d\n", s->exit_code))
        return MBQ_ENOMEM;
    if (put_family(out, "mbq_run_stopped",
                   "1 when the last run stopped before any table (lock held too long, journal, "
                   "internal error, MySQL unreachable while finding tables), else 0.") ||
        mbq_buf_printf(out, "mbq_run_stopped %d\n", mbq_run_failed(s) ? 1 : 0))
        return MBQ_ENOMEM;
    if (put_family(out, "mbq_run_consecutive_stopped",
                   "Runs in a row that stopped before any table, the last run included.") ||
        mbq_buf_printf(out, "mbq_run_consecutive_stopped %d\n",
                       mbq_run_failed(s) ? (s->prev_run_failures > 0 ? s->prev_run_failures : 0) + 1
                                         : 0))
        return MBQ_ENOMEM;
    if (s->exit_code == 75 &&
        (put_family(out, "mbq_run_lock_held_seconds",
                    "How long another run had held the state directory's lock when the last run "
                    "found it taken.") ||
         mbq_buf_puts(out, "mbq_run_lock_held_seconds ") || put_seconds(out, s->lock_held_ms) ||
         mbq_buf_putc(out, '\n')))
        return MBQ_ENOMEM;
    if (put_family(out, "mbq_run_timestamp_seconds", "Unix time the last run finished.") ||
        mbq_buf_puts(out, "mbq_run_timestamp_seconds ") || put_seconds(out, s->finished_ms) ||
        mbq_buf_putc(out, '\n'))
        return MBQ_ENOMEM;
    if (put_family(out, "mbq_run_duration_seconds", "Duration of the last run.") ||
        mbq_buf_puts(out, "mbq_run_duration_seconds ") ||
        put_seconds(out, s->finished_ms - s->started_ms) || mbq_buf_putc(out, '\n'))
        return MBQ_ENOMEM;
    if (put_family(out, "mbq_run_tables", "Tables by result in the last run."))
        return MBQ_ENOMEM;
    for (int r = 0; r < 3; r++)
        if (mbq_buf_printf(out, "mbq_run_tables{result=\"%s\"} %zu\n", result_names[r], n_result[r]))
            return MBQ_ENOMEM;
    if (put_family(out, "mbq_run_rows_synced", "Rows synced by the last run, all tables.") ||
        mbq_buf_printf(out, "mbq_run_rows_synced %lld\n", (long long)rows))
        return MBQ_ENOMEM;
    return 0;
}

static int write_file(const char *path, const mbq_buf *b)
{
    int rc;
    /* Atomic replace: node_exporter may read the file at any moment, and
     * a partial file would be rejected (or worse, read as partial data). */
    rc = mbq_file_write_atomic(path, mbq_buf_cstr(b), b->len);
    if (rc)
        return mbq_error_wrap(rc, "cannot write metrics file: ");
    /* mbq_file_write_atomic creates 0600 files (right for staging data),
     * but node_exporter usually runs as another user and must read this
     * one; metrics hold no secrets. */
    if (chmod(path, 0644) != 0)
        rc = mbq_error_set(MBQ_EIO, "cannot make metrics file '%s' readable: %s", path,
                           strerror(errno));
    return rc;
}

int mbq_metrics_write(const char *path, const mbq_run_summary *s)
{
    mbq_buf b = MBQ_BUF_INIT;
    int rc = mbq_metrics_format(&b, s);
    if (rc == 0)
        rc = write_file(path, &b);
    mbq_buf_free(&b);
    return rc;
}

/* Is `line` a sample, HELP or TYPE line of a per-table family? */
static bool is_table_line(const char *line, size_t len)
{
    static const char prefix[] = "mbq_table_";
    if (len >= 7 && (strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# TYPE ", 7) == 0)) {
        line += 7;
        len -= 7;
    }
    return len >= sizeof prefix - 1 && strncmp(line, prefix, sizeof prefix - 1) == 0;
}

int mbq_metrics_write_stopped(const char *path, const mbq_run_summary *s)
{
    mbq_buf old = MBQ_BUF_INIT, b = MBQ_BUF_INIT;
    size_t n_result[3] = {0, 0, 0};
    int rc = 0;
    /* The tables' series stay as the last run that ran them wrote them:
     * a run that found the lock taken says nothing new about any table,
     * and dropping them would make "table stale" alerts see no data. */
    if (mbq_file_exists(path) && mbq_file_read_all(&old, path) == 0) {
        const char *p = mbq_buf_cstr(&old), *end = p + old.len;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
            if (is_table_line(p, len) &&
                ((rc = mbq_buf_append(&b, p, len)) < 0 || (rc = mbq_buf_putc(&b, '\n')) < 0))
                goto done;
            p += len + 1;
        }
    }
    mbq_error_clear(); /* an unreadable old file only costs the tables' series */
    if ((rc = put_run_families(&b, s, n_result, 0)) < 0)
        goto done;
    rc = write_file(path, &b);
done:
    mbq_buf_free(&old);
    mbq_buf_free(&b);
    return rc;
}
