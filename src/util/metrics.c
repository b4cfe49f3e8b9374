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

int mbq_metrics_write(const char *path, const mbq_run_summary *s)
{
    mbq_buf b = MBQ_BUF_INIT;
    int rc = mbq_metrics_format(&b, s);
    if (rc)
        goto done;
    /* Atomic replace: node_exporter may read the file at any moment, and
     * a partial file would be rejected (or worse, read as partial data). */
    rc = mbq_file_write_atomic(path, mbq_buf_cstr(&b), b.len);
    if (rc) {
        rc = mbq_error_wrap(rc, "cannot write metrics file: ");
        goto done;
    }
    /* mbq_file_write_atomic creates 0600 files (right for staging data),
     * but node_exporter usually runs as another user and must read this
     * one; metrics hold no secrets. */
    if (chmod(path, 0644) != 0)
        rc = mbq_error_set(MBQ_EIO, "cannot make metrics file '%s' readable: %s", path,
                           strerror(errno));
done:
    mbq_buf_free(&b);
    return rc;
}
