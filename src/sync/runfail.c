/* A run that stops before any table: heard like a failed table.
 *
 * A table that fails is journaled, alerted and counted in the metrics by
 * sync.c. A run can also stop before it reaches any table: another run
 * holds the lock (75), the journal is corrupt, newer or on a full disk (74),
 * an internal error (70), or MySQL cannot be reached while finding the
 * tables of a `discover`/pattern entry (69, 77). Such a run has no table to
 * fail, and the journal may be the very thing that is broken, so:
 *
 *   - the streak of such runs lives in a small file of its own,
 *     <state.dir>/run-failures ("exit count first_ms last_ms"), written
 *     atomically and best effort (a full disk must not stop the alert);
 *   - the alert goes through the same channels and policies as a table's
 *     (`change` sends the first of a streak and the recovery, `failure`
 *     every such run);
 *   - the metrics file gets the run's families and keeps the tables' series;
 *   - the BigQuery metadata table gets a row for the run (table_name
 *     '(run)', status 'run_failed') when BigQuery can be reached.
 *
 * Exit 75 is normal on a schedule: a run that outlasts the interval makes
 * the next one find the lock. It counts as a failure only once the lock has
 * been held longer than alerting.lock_alert_after, measured from the lock
 * file's mtime, which the holder sets when it takes the lock (journal.c
 * writes its pid there); below that it only writes its metrics. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mbq/bq.h"
#include "mbq/error.h"
#include "mbq/exitcode.h"
#include "mbq/log.h"
#include "mbq/metrics.h"
#include "mbq/notify.h"
#include "mbq/util.h"
#include "sync_internal.h"
#include "mbq/banned.h"

#define RUNFAIL_FILE "run-failures"

static int state_path(mbq_buf *b, const char *state_dir)
{
    return mbq_buf_printf(b, "%s/%s", state_dir, RUNFAIL_FILE);
}

void mbq_runfail_read(mbq_runfail *out, const char *state_dir)
{
    mbq_buf p = MBQ_BUF_INIT, text = MBQ_BUF_INIT;
    memset(out, 0, sizeof *out);
    if (state_path(&p, state_dir) == 0 && mbq_file_exists(p.ptr) &&
        mbq_file_read_all(&text, p.ptr) == 0) {
        long long first = 0, last = 0;
        int code = 0, count = 0;
        /* A file that does not parse is an empty streak: at worst one more
         * alert. */
        if (sscanf(mbq_buf_cstr(&text), "%d %d %lld %lld", &code, &count, &first, &last) == 4 &&
            count > 0) {
            out->exit_code = code;
            out->count = count;
            out->first_ms = first;
            out->last_ms = last;
        }
    }
    mbq_error_clear();
    mbq_buf_free(&p);
    mbq_buf_free(&text);
}

/* Best effort: the file is only what rate-limits the alerts. */
static void runfail_write(const char *state_dir, const mbq_runfail *st)
{
    mbq_buf p = MBQ_BUF_INIT, text = MBQ_BUF_INIT;
    if (state_path(&p, state_dir) == 0 &&
        mbq_buf_printf(&text, "%d %d %" PRId64 " %" PRId64 "\n", st->exit_code, st->count,
                       st->first_ms, st->last_ms) == 0 &&
        mbq_mkdir_p(state_dir) == 0 && mbq_file_write_atomic(p.ptr, text.ptr, text.len) == 0) {
        mbq_buf_free(&p);
        mbq_buf_free(&text);
        return;
    }
    mbq_log(MBQ_LOG_WARN, NULL, "alert", "cannot record the stopped run in '%s': %s",
            p.ptr ? p.ptr : state_dir, mbq_error_last());
    mbq_error_clear();
    mbq_buf_free(&p);
    mbq_buf_free(&text);
}

void mbq_runfail_clear(const char *state_dir)
{
    mbq_buf p = MBQ_BUF_INIT;
    if (state_path(&p, state_dir) == 0 && unlink(p.ptr) != 0 && errno != ENOENT)
        mbq_log(MBQ_LOG_WARN, NULL, NULL, "cannot remove '%s': %s", p.ptr, strerror(errno));
    mbq_buf_free(&p);
}

/* How long the lock on the state directory has been held: since the
 * holder's write of its pid into the lock file (journal.c take_lock). */
static int64_t lock_held_ms(const char *state_dir, int64_t now_ms)
{
    mbq_buf p = MBQ_BUF_INIT;
    struct stat st;
    int64_t held = 0;
    if (mbq_buf_printf(&p, "%s/lock", state_dir) == 0 && stat(p.ptr, &st) == 0) {
        int64_t since = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
        held = now_ms > since ? now_ms - since : 0;
    }
    mbq_buf_free(&p);
    return held;
}

/* One row for the stopped run in the BigQuery metadata table, when
 * BigQuery can be reached (69 for MySQL leaves BigQuery fine). The job id
 * is the run's own (a uuid): one INSERT per run, never repeated. */
static int metadata_row(const mbq_config *cfg, const char *run_id, int64_t started_ms,
                        int64_t finished_ms, int exit_code)
{
    const mbq_bigquery_config *bc = &cfg->bigquery;
    mbq_bq *bq = NULL;
    mbq_bq_options bo;
    mbq_bq_table_info *info = NULL;
    mbq_bq_job *job = NULL;
    mbq_buf sql = MBQ_BUF_INIT, id = MBQ_BUF_INIT, status = MBQ_BUF_INIT;
    sync_ctx ctx = {0};
    bool exists = false;
    int rc;

    mbq_bq_options_from_config(&bo, bc);
    if ((rc = mbq_bq_new(&bq, &bo)) < 0 ||
        (rc = mbq_bq_location_resolve(bq, &exists, bc->dataset)) < 0)
        goto done;
    if (!exists && (rc = mbq_bq_dataset_ensure(bq, bc->dataset, mbq_bq_location(bq))) < 0)
        goto done;
    rc = mbq_bq_table_get(&info, bq, bc->dataset, bc->metadata_table);
    if (rc == MBQ_ENOTFOUND)
        rc = mbq_bq_table_create(bq, bc->dataset, bc->metadata_table, mbq_sync_metadata_schema(),
                                 NULL);
    if (rc < 0 && rc != MBQ_EEXISTS)
        goto done;
    ctx.cfg = cfg;
    if ((rc = mbq_buf_printf(&status, "run_failed: exit %d", exit_code)) < 0 ||
        (rc = mbq_bq_job_id(&id, "mbq_meta_run", run_id, (const char *)NULL)) < 0 ||
        (rc = mbq_buf_puts(&sql, "INSERT INTO ")) < 0 ||
        (rc = mbq_bq_table_ref(&sql, &ctx, bc->metadata_table)) < 0 ||
        (rc = mbq_buf_printf(&sql, " (table_name, rows_synced, sync_duration_seconds, updated_at, "
                                   "run_id, status) VALUES ('(run)', 0, %.3f, "
                                   "TIMESTAMP_MILLIS(%" PRId64 "), ",
                             (double)(finished_ms - started_ms) / 1000.0, finished_ms)) < 0 ||
        (rc = mbq_buf_quote_bq_string(&sql, run_id)) < 0 || (rc = mbq_buf_puts(&sql, ", ")) < 0 ||
        (rc = mbq_buf_quote_bq_string(&sql, status.ptr)) < 0 || (rc = mbq_buf_putc(&sql, ')')) < 0)
        goto done;
    rc = mbq_bq_query(&job, bq, id.ptr, sql.ptr, NULL);
done:
    mbq_bq_job_free(job);
    mbq_bq_table_info_free(info);
    mbq_bq_free(bq);
    mbq_buf_free(&sql);
    mbq_buf_free(&id);
    mbq_buf_free(&status);
    return rc;
}

static void log_report(const mbq_notify_report *rep)
{
    const struct {
        const char *channel;
        const mbq_notify_result *r;
    } ch[] = {{"email", &rep->email}, {"telegram", &rep->telegram}};
    for (size_t i = 0; i < 2; i++) {
        if (!ch[i].r->attempted)
            continue;
        if (ch[i].r->sent)
            mbq_log(MBQ_LOG_INFO, NULL, "alert", "%s alert sent: %s", ch[i].channel,
                    ch[i].r->subject ? ch[i].r->subject : "");
        else
            mbq_log(MBQ_LOG_WARN, NULL, "alert", "%s alert failed: %s", ch[i].channel,
                    ch[i].r->message ? ch[i].r->message : "");
    }
}

void mbq_runfail_notify(const mbq_config *cfg, const mbq_sync_options *opts, const char *run_id,
                        int64_t started_ms, int exit_code, const char *error)
{
    int64_t now = mbq_now_ms();
    mbq_runfail prev;
    mbq_buf err = MBQ_BUF_INIT;
    mbq_notify_report report = {0};
    const char *metrics = opts->metrics_file ? opts->metrics_file : cfg->metrics_file;

    mbq_runfail_read(&prev, cfg->state_dir);
    mbq_run_summary s = {.run_id = run_id, .started_ms = started_ms, .finished_ms = now};
    s.exit_code = exit_code;
    s.prev_run_failures = prev.count;
    s.prev_exit_code = prev.exit_code;
    if (mbq_buf_puts(&err, error && *error ? error : "the run stopped") < 0)
        goto done;
    if (exit_code == MBQ_EXIT_LOCKED) {
        s.lock_held_ms = lock_held_ms(cfg->state_dir, now);
        if (s.lock_held_ms < cfg->lock_alert_after_ms) {
            /* A run outlasting the schedule's interval: normal. Metrics
             * only (mbq_run_lock_held_seconds shows it growing). */
            if (metrics && mbq_metrics_write_stopped(metrics, &s) < 0)
                mbq_log(MBQ_LOG_WARN, NULL, NULL, "cannot write metrics: %s", mbq_error_last());
            goto done;
        }
        if (mbq_buf_printf(&err, " (held for %" PRId64 " s, alerting.lock_alert_after is %" PRId64
                                 " s)",
                           s.lock_held_ms / 1000, cfg->lock_alert_after_ms / 1000) < 0)
            goto done;
    }
    s.run_error = err.ptr;

    /* The streak goes on whatever the reason; the `change` policy alerts
     * again when the reason (the exit code) changes. */
    mbq_runfail cur = {exit_code, prev.count + 1, prev.count > 0 ? prev.first_ms : now, now};
    runfail_write(cfg->state_dir, &cur);

    if (metrics && mbq_metrics_write_stopped(metrics, &s) < 0)
        mbq_log(MBQ_LOG_WARN, NULL, NULL, "cannot write metrics: %s", mbq_error_last());

    mbq_notify_options no = MBQ_NOTIFY_OPTIONS_INIT;
    const char *fast = getenv("MBQ_NOTIFY_BACKOFF_MS");
    if (fast)
        no.backoff_ms = atoll(fast);
    mbq_notify_run(&report, cfg->email.enabled ? &cfg->email : NULL,
                   cfg->telegram.enabled ? &cfg->telegram : NULL, &s, &no);
    log_report(&report);

    /* Last: BigQuery may be slow to answer, or what is down. */
    if (metadata_row(cfg, run_id, started_ms, mbq_now_ms(), exit_code) < 0)
        mbq_log(MBQ_LOG_WARN, NULL, "mirror", "cannot record the stopped run in '%s': %s",
                cfg->bigquery.metadata_table, mbq_error_last());
done:
    mbq_notify_report_free(&report);
    mbq_buf_free(&err);
}
