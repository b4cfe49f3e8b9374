/* One `mbq sync`: the run that drives every table through the state machine
 * (machine.c), then mirrors metadata, alerts and writes metrics.
 *
 * Order matters for safety:
 *   1. the lock (journal open) before anything else: one writer at a time;
 *   2. table runs left in flight by a killed process are resumed from their
 *      journaled state before any new run starts for that table;
 *   3. the BigQuery metadata mirror only after the local commit, and its
 *      failure never fails a table (it is retried by the next run);
 *   4. alerts last: a failing notifier is logged and journaled, never fatal. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mbq/bq.h"
#include "mbq/discover.h"
#include "mbq/error.h"
#include "mbq/exitcode.h"
#include "mbq/fault.h"
#include "mbq/journal.h"
#include "mbq/log.h"
#include "mbq/machine.h"
#include "mbq/metrics.h"
#include "mbq/mysql_source.h"
#include "mbq/notify.h"
#include "mbq/util.h"
#include "sync_internal.h"
#include "mbq/banned.h"

static void table_job_clear(table_job *t)
{
    mbq_table_state_clear(&t->committed);
    mbq_table_run_clear(&t->run);
    mbq_table_schema_free(t->src);
    mbq_bq_schema_free(t->stage_schema);
    mbq_bq_schema_free(t->load_schema);
    for (size_t i = 0; i < t->n_changes; i++)
        free(t->changes[i]);
    free(t->changes);
    free(t->error);
    free(t->failed_state);
    memset(t, 0, sizeof *t);
}

/* Remove staged files that no in-flight table run refers to: leftovers of a
 * run killed after its commit but before its cleanup. */
static void remove_orphan_files(sync_ctx *ctx, table_job *jobs, size_t n)
{
    DIR *d = opendir(ctx->staging_dir);
    if (!d)
        return;
    struct dirent *e;
    mbq_buf path = MBQ_BUF_INIT;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        mbq_buf_clear(&path);
        if (mbq_buf_printf(&path, "%s/%s", ctx->staging_dir, e->d_name) < 0)
            break;
        bool used = false;
        /* A staged file, or one of its parts (<staged file>.partNNNN). */
        for (size_t i = 0; i < n && !used; i++) {
            const char *sp = jobs[i].run.staged_path;
            size_t sl = sp ? strlen(sp) : 0;
            used = sp && strncmp(sp, path.ptr, sl) == 0 &&
                   (path.ptr[sl] == '\0' || strncmp(path.ptr + sl, ".part", 5) == 0);
        }
        if (!used && unlink(path.ptr) == 0)
            mbq_log(MBQ_LOG_DEBUG, NULL, NULL, "removed orphan staging file '%s'", path.ptr);
    }
    closedir(d);
    mbq_buf_free(&path);
}

static int table_run_start(sync_ctx *ctx, table_job *t);

/* Load a table's committed state and its in-flight run, or start a new run
 * in schema-check. */
static int table_job_open(sync_ctx *ctx, table_job *t, const mbq_table_config *tc)
{
    int rc;
    bool found = false;
    t->tc = tc;
    t->started_ms = mbq_now_ms();
    t->target_rows = -1;
    if (ctx->j && ctx->dry_run) {
        if ((rc = mbq_journal_table_get(ctx->j, &t->committed, tc->name)) < 0 ||
            (rc = mbq_journal_table_run_in_flight(ctx->j, &t->run, &found, tc->name)) < 0)
            return rc;
        t->resumed = found;
        if (!found && !(t->run.state = mbq_strdup("schema-check")))
            return MBQ_ENOMEM;
        return 0;
    }
    if (!ctx->j) {
        t->committed.table_name = mbq_strdup(tc->name);
        t->run.state = mbq_strdup("schema-check");
        return t->run.state ? 0 : MBQ_ENOMEM;
    }
    if ((rc = mbq_journal_table_get(ctx->j, &t->committed, tc->name)) < 0)
        return rc;
    t->prev_failures = t->committed.consecutive_failures;
    if ((rc = mbq_journal_table_run_in_flight(ctx->j, &t->run, &found, tc->name)) < 0)
        return rc;
    if (found) {
        t->resumed = true;
        mbq_log(MBQ_LOG_INFO, tc->name, t->run.state,
                "resuming table run %" PRId64 " (started by run %s, attempt %d)", t->run.id,
                t->run.run_id, t->run.attempt);
        return 0;
    }
    return table_run_start(ctx, t);
}

/* A new table run of t->tc in schema-check, journaled. */
static int table_run_start(sync_ctx *ctx, table_job *t)
{
    const mbq_table_config *tc = t->tc;
    t->run.run_id = mbq_strdup(ctx->run_id);
    t->run.last_run_id = mbq_strdup(ctx->run_id);
    t->run.table_name = mbq_strdup(tc->name);
    t->run.state = mbq_strdup("schema-check");
    if (!t->run.run_id || !t->run.last_run_id || !t->run.table_name || !t->run.state)
        return MBQ_ENOMEM;
    t->run.started_ms = t->run.updated_ms = mbq_now_ms();
    return mbq_journal_table_run_create(ctx->j, &t->run);
}

/* Journal a table's failure: the run stays in flight at the state where it
 * failed (so the next run resumes there), with the error. */
static void table_job_fail(sync_ctx *ctx, table_job *t, int err)
{
    t->result = err;
    t->error = mbq_strdup(mbq_error_last());
    t->failed_state = mbq_strdup(t->in_reconcile ? "reconcile"
                                 : t->run.state ? t->run.state
                                                : "schema-check");
    mbq_log(MBQ_LOG_ERROR, t->tc->name, t->failed_state, "%s", mbq_error_last());
    if (!ctx->j || ctx->dry_run)
        return;
    free(t->run.error);
    free(t->run.error_state);
    t->run.error = mbq_strdup(t->error);
    t->run.error_state = mbq_strdup(t->failed_state);
    t->run.updated_ms = mbq_now_ms();
    if (t->run.id && mbq_journal_table_run_save(ctx->j, &t->run) < 0)
        mbq_log(MBQ_LOG_ERROR, t->tc->name, NULL, "cannot journal the failure: %s",
                mbq_error_last());
    if (mbq_journal_table_failed(ctx->j, t->tc->name, t->failed_state, t->error, mbq_now_ms()) < 0)
        mbq_log(MBQ_LOG_ERROR, t->tc->name, NULL, "cannot journal the failure: %s",
                mbq_error_last());
}

const mbq_bq_schema *mbq_sync_metadata_schema(void)
{
    static mbq_bq_schema *s;
    if (!s && mbq_bq_schema_new(&s) == 0) {
        mbq_bq_schema_add(s, "table_name", "STRING", MBQ_BQ_REQUIRED, "MySQL table");
        mbq_bq_schema_add(s, "target_table", "STRING", MBQ_BQ_NULLABLE, "BigQuery table");
        mbq_bq_schema_add(s, "last_sync_timestamp", "STRING", MBQ_BQ_NULLABLE,
                          "committed cursor (MySQL text form)");
        mbq_bq_schema_add(s, "cursor_kind", "STRING", MBQ_BQ_NULLABLE, "timestamp or integer");
        mbq_bq_schema_add(s, "rows_synced", "INT64", MBQ_BQ_NULLABLE, NULL);
        mbq_bq_schema_add(s, "sync_duration_seconds", "FLOAT64", MBQ_BQ_NULLABLE, NULL);
        mbq_bq_schema_add(s, "updated_at", "TIMESTAMP", MBQ_BQ_NULLABLE, "commit time");
        mbq_bq_schema_add(s, "run_id", "STRING", MBQ_BQ_NULLABLE, NULL);
        mbq_bq_schema_add(s, "table_run_id", "INT64", MBQ_BQ_NULLABLE, NULL);
        mbq_bq_schema_add(s, "load_mode", "STRING", MBQ_BQ_NULLABLE, "merge or replace");
        mbq_bq_schema_add(s, "status", "STRING", MBQ_BQ_NULLABLE, NULL);
        mbq_bq_schema_add(s, "rows_deleted", "INT64", MBQ_BQ_NULLABLE,
                          "rows a reconciliation deleted (hard) or flagged (soft)");
    }
    return s;
}

/* One pending table run as a VALUES tuple "(...)" of the mirror's INSERT. */
static int mirror_row_sql(mbq_buf *b, sync_ctx *ctx, const mbq_table_run *r)
{
    mbq_table_state ts;
    int rc = mbq_journal_table_get(ctx->j, &ts, r->table_name);
    if (rc < 0)
        return rc;
    const mbq_table_config *tc = mbq_config_table(ctx->cfg, r->table_name);
    /* The cursor this run committed: its high, else the one before. */
    const char *cur = r->high ? r->high : ts.cursor_value;
    if ((rc = mbq_buf_putc(b, '(')) < 0 || (rc = mbq_buf_quote_bq_string(b, r->table_name)) < 0 ||
        (rc = mbq_buf_puts(b, ", ")) < 0 ||
        (rc = mbq_buf_quote_bq_string(b, tc ? tc->target : r->table_name)) < 0 ||
        (rc = mbq_buf_puts(b, ", ")) < 0 ||
        (rc = cur ? mbq_buf_quote_bq_string(b, cur) : mbq_buf_puts(b, "NULL")) < 0 ||
        (rc = mbq_buf_puts(b, ", ")) < 0 ||
        (rc = ts.cursor_kind ? mbq_buf_quote_bq_string(b, ts.cursor_kind)
                             : mbq_buf_puts(b, "NULL")) < 0 ||
        (rc = mbq_buf_printf(b, ", %" PRId64 ", %.3f, TIMESTAMP_MILLIS(%" PRId64 "), ",
                             r->staged_rows, (double)(r->finished_ms - r->started_ms) / 1000.0,
                             r->finished_ms)) < 0 ||
        (rc = mbq_buf_quote_bq_string(b, r->last_run_id)) < 0 ||
        (rc = mbq_buf_printf(b, ", %" PRId64 ", ", r->id)) < 0 ||
        (rc = r->load_mode ? mbq_buf_quote_bq_string(b, r->load_mode)
                           : mbq_buf_puts(b, "NULL")) < 0 ||
        (rc = mbq_buf_printf(b, ", '%s')", r->staged_rows > 0 ? "synced" : "no_changes")) < 0)
        goto done;
done:
    mbq_table_state_clear(&ts);
    return rc;
}

/* Insert pending[first..last] (those not mirrored yet) as one INSERT job,
 * `sql` holding its text. The job id is journaled first: if we die after
 * the job ran, the next run finds it instead of inserting the rows again. */
static int mirror_batch(sync_ctx *ctx, mbq_table_run *pending, int first, int last,
                        const mbq_buf *sql)
{
    int rc;
    mbq_buf id = MBQ_BUF_INIT;
    mbq_bq_job *job = NULL;
    char a[32], z[32];
    snprintf(a, sizeof a, "%" PRId64, pending[first].id);
    snprintf(z, sizeof z, "%" PRId64, pending[last].id);
    if ((rc = mbq_bq_job_id(&id, "mbq_meta", ctx->run_id, a, z, (const char *)NULL)) < 0 ||
        (rc = mbq_journal_begin(ctx->j)) < 0)
        goto done;
    for (int i = first; i <= last && rc == 0; i++)
        if (!mbq_streq(pending[i].mirror_state, "done"))
            rc = mbq_journal_mirror_set(ctx->j, pending[i].id, "pending", id.ptr);
    if (rc < 0) {
        mbq_journal_rollback(ctx->j);
        goto done;
    }
    if ((rc = mbq_journal_commit(ctx->j)) < 0)
        goto done;
    mbq_log(MBQ_LOG_DEBUG, NULL, "mirror", "INSERT of table runs %s..%s: %zu bytes", a, z,
            sql->len);
    if ((rc = mbq_bq_query(&job, ctx->bq, id.ptr, sql->ptr, NULL)) < 0) {
        if (rc == MBQ_EBQ) {
            /* BigQuery refused the INSERT: the rows are not there, and the
             * next run must not take this job id's lookup as proof that
             * they are (the emulator even reports such jobs as DONE without
             * an error, EMULATOR.md 3). Forget the id; keep the error. */
            int saved = rc;
            mbq_buf msg = MBQ_BUF_INIT;
            mbq_buf_puts(&msg, mbq_error_last());
            for (int i = first; i <= last; i++)
                if (!mbq_streq(pending[i].mirror_state, "done"))
                    mbq_journal_mirror_set(ctx->j, pending[i].id, "pending", NULL);
            rc = mbq_error_set(saved, "%s", mbq_buf_cstr(&msg));
            mbq_buf_free(&msg);
        }
        goto done;
    }
    mbq_fault_point("mirror.done");
    for (int i = first; i <= last && rc == 0; i++)
        if (!mbq_streq(pending[i].mirror_state, "done"))
            rc = mbq_journal_mirror_set(ctx->j, pending[i].id, "done", id.ptr);
done:
    mbq_bq_job_free(job);
    mbq_buf_free(&id);
    return rc;
}

/* Mirror every committed table run whose metadata is not in BigQuery yet
 * (append-only history: one row per committed table run), in as few INSERT
 * jobs as BigQuery's limits allow. An unresolved GoogleSQL query is at most
 * 1 MB ("Maximum unresolved GoogleSQL query length", quotas page, query
 * jobs): after weeks of failed mirrors thousands of rows are pending, and
 * one INSERT of them all would be refused on every run, forever. So rows
 * go in batches whose text stays within bigquery.max_query_size. The rows
 * are literals, not parameters, so the 10,000-parameter limit never
 * applies. */
static int mirror_metadata(sync_ctx *ctx)
{
    int rc, n = 0, rows = 0, batches = 0;
    mbq_table_run *pending = NULL;
    mbq_buf sql = MBQ_BUF_INIT, row = MBQ_BUF_INIT, head = MBQ_BUF_INIT;
    mbq_bq_table_info *info = NULL;
    const mbq_bigquery_config *bc = &ctx->cfg->bigquery;

    if ((rc = mbq_journal_mirror_pending(ctx->j, &pending, &n)) < 0 || n == 0)
        goto done;
    /* A mirror job from an earlier run may have landed before the process
     * died: look it up rather than insert the rows twice. */
    for (int i = 0; i < n; i++) {
        if (!pending[i].mirror_job_id)
            continue;
        mbq_bq_job *prior = NULL;
        int grc = mbq_bq_job_get(&prior, ctx->bq, pending[i].mirror_job_id, NULL);
        bool landed = grc == 0 && prior->state && strcmp(prior->state, "DONE") == 0 &&
                      !prior->error_reason;
        mbq_bq_job_free(prior);
        if (landed) {
            if ((rc = mbq_journal_mirror_set(ctx->j, pending[i].id, "done",
                                             pending[i].mirror_job_id)) < 0)
                goto done;
            free(pending[i].mirror_state);
            pending[i].mirror_state = mbq_strdup("done");
        }
    }
    rc = mbq_bq_table_get(&info, ctx->bq, bc->dataset, bc->metadata_table);
    if (rc == MBQ_ENOTFOUND)
        rc = mbq_bq_table_create(ctx->bq, bc->dataset, bc->metadata_table, mbq_sync_metadata_schema(),
                                 NULL);
    if (rc < 0 && rc != MBQ_EEXISTS)
        goto done;
    rc = 0;
    if ((rc = mbq_buf_puts(&head, "INSERT INTO ")) < 0 ||
        (rc = mbq_bq_table_ref(&head, ctx, bc->metadata_table)) < 0 ||
        (rc = mbq_buf_puts(&head, " (table_name, target_table, last_sync_timestamp, cursor_kind, "
                                  "rows_synced, sync_duration_seconds, updated_at, run_id, "
                                  "table_run_id, load_mode, status) VALUES ")) < 0)
        goto done;
    size_t max = (size_t)bc->max_query_bytes;
    int first = -1, last = -1;
    for (int i = 0; i <= n; i++) {
        bool more = i < n;
        if (more && mbq_streq(pending[i].mirror_state, "done"))
            continue;
        mbq_buf_clear(&row);
        if (more && (rc = mirror_row_sql(&row, ctx, &pending[i])) < 0)
            goto done;
        /* Send what is gathered when this row would take it over the bound
         * (a row alone always goes: one row is a few hundred bytes). */
        if (first >= 0 && (!more || sql.len + 2 + row.len > max)) {
            if ((rc = mirror_batch(ctx, pending, first, last, &sql)) < 0)
                goto done;
            batches++;
            first = -1;
        }
        if (!more)
            break;
        if (first < 0) {
            mbq_buf_clear(&sql);
            if ((rc = mbq_buf_append(&sql, head.ptr, head.len)) < 0)
                goto done;
            first = i;
        } else if ((rc = mbq_buf_puts(&sql, ", ")) < 0) {
            goto done;
        }
        if ((rc = mbq_buf_append(&sql, row.ptr, row.len)) < 0)
            goto done;
        last = i;
        rows++;
    }
    if (rows > 0)
        mbq_log(MBQ_LOG_INFO, NULL, "mirror", "mirrored %d table run(s) into '%s' in %d INSERT(s)",
                rows, bc->metadata_table, batches);
done:
    mbq_bq_table_info_free(info);
    mbq_table_runs_free(pending, n);
    mbq_buf_free(&sql);
    mbq_buf_free(&row);
    mbq_buf_free(&head);
    return rc;
}

/* Journal what the notifiers did: every alert sent, and every failure. */
static void journal_alerts(sync_ctx *ctx, const mbq_notify_report *rep)
{
    const struct {
        const char *channel;
        const mbq_notify_result *r;
    } ch[] = {{"email", &rep->email}, {"telegram", &rep->telegram}};
    for (size_t i = 0; i < 2; i++) {
        if (!ch[i].r->attempted)
            continue;
        mbq_event e = {0};
        e.run_id = (char *)ctx->run_id;
        e.kind = ch[i].r->sent ? "alert.sent" : "alert.failed";
        e.action = (char *)ch[i].channel;
        e.detail = ch[i].r->sent ? ch[i].r->subject : ch[i].r->message;
        if (ch[i].r->sent)
            mbq_log(MBQ_LOG_INFO, NULL, "alert", "%s alert sent: %s", ch[i].channel,
                    ch[i].r->subject ? ch[i].r->subject : "");
        else
            mbq_log(MBQ_LOG_WARN, NULL, "alert", "%s alert failed (the sync is not affected): %s",
                    ch[i].channel, ch[i].r->message ? ch[i].r->message : "");
        if (mbq_journal_event_add(ctx->j, &e) < 0)
            mbq_log(MBQ_LOG_WARN, NULL, "alert", "cannot journal the alert: %s",
                    mbq_error_last());
    }
}

static void print_dry_run(const sync_ctx *ctx, const table_job *t)
{
    printf("table %s -> %s.%s\n", t->tc->name, ctx->cfg->bigquery.dataset, t->tc->target);
    if (t->result < 0) {
        printf("  would fail at %s: %s\n", t->failed_state ? t->failed_state : "?",
               t->error ? t->error : "");
        return;
    }
    if (t->tc->mode == MBQ_MODE_FULL || !t->tc->updated_column)
        printf("  mode: full refresh (every row, loaded with WRITE_TRUNCATE into the target)\n");
    else if (!t->committed.cursor_value)
        printf("  mode: incremental; first sync: every row, loaded straight into the target\n");
    else {
        char *low = NULL;
        mbq_cursor_minus(&low, t->committed.cursor_kind, t->committed.cursor_value,
                         t->tc->lookback_ms);
        printf("  mode: incremental; window: %s >= '%s' (committed cursor '%s'), then MERGE\n",
               t->tc->updated_column, low ? low : "?", t->committed.cursor_value);
        free(low);
    }
    if (t->resumed)
        printf("  would resume the in-flight run %" PRId64 " at state '%s'%s\n", t->run.id,
               t->run.state,
               mbq_streq(t->run.state, "schema-check") || mbq_streq(t->run.state, "extract")
                   ? ""
                   : ", then sync what changed since its snapshot");
    if (t->n_changes == 0)
        printf("  schema: no changes\n");
    for (size_t i = 0; i < t->n_changes; i++)
        printf("  schema: %s\n", t->changes[i]);
}

/* What a reconciliation would do now: keys read and staged in a
 * throw-away table, the target only counted. */
static void print_dry_run_deletes(sync_ctx *ctx, table_job *t)
{
    const mbq_table_config *tc = t->tc;
    int64_t would = -1, live = -1;
    if (tc->deletes == MBQ_DELETES_OFF) {
        if (tc->mode != MBQ_MODE_FULL)
            printf("  deletes: off (rows deleted in MySQL stay in BigQuery)\n");
        return;
    }
    if (t->target_rows < 0) {
        printf("  deletes: %s; nothing to reconcile before the first sync\n",
               tc->deletes == MBQ_DELETES_HARD ? "hard" : "soft");
        return;
    }
    int rc = mbq_reconcile_dry_run(ctx, t, &would, &live);
    if (rc < 0 && !t->reconcile_refused) {
        printf("  deletes: would fail: %s\n", mbq_error_last());
        return;
    }
    printf("  deletes: %s; would %s %" PRId64 " of %" PRId64 " rows whose key is gone from "
           "MySQL%s\n",
           tc->deletes == MBQ_DELETES_HARD ? "hard" : "soft",
           tc->deletes == MBQ_DELETES_HARD ? "delete" : "flag", would, live,
           t->reconcile_refused ? " (refused by max_delete_fraction: nothing would change)" : "");
}

/* The resumed table run took its snapshot in an earlier process, before this
 * run started: rows written since then are not in it, and a run that stopped
 * there would exit 0 with the table behind (a cron user would read that exit
 * as "current"). A new table run, a window from the cursor the resumed run
 * just committed, brings the table up to this run's start. A resumed run
 * that extracted again in this process (it resumed at schema-check or
 * extract, or its staged file was gone) read a snapshot taken after the run
 * started and needs none. */
static int catch_up(sync_ctx *ctx, table_job *t)
{
    int rc;
    int64_t rows = t->rows_synced;
    int64_t resumed_id = t->run.id;
    /* The table's figures for this run cover both table runs (the journal
     * keeps each run's own). */
    t->resumed_t_ms[0] = t->run.t_schema_ms;
    t->resumed_t_ms[1] = t->run.t_extract_ms;
    t->resumed_t_ms[2] = t->run.t_stage_ms;
    t->resumed_t_ms[3] = t->run.t_merge_ms;
    t->resumed_t_ms[4] = t->run.t_commit_ms;

    mbq_table_state_clear(&t->committed);
    mbq_table_run_clear(&t->run);
    if ((rc = mbq_journal_table_get(ctx->j, &t->committed, t->tc->name)) < 0 ||
        (rc = table_run_start(ctx, t)) < 0)
        return rc;
    mbq_log(MBQ_LOG_INFO, t->tc->name, "schema-check",
            "resumed table run %" PRId64 " read an earlier snapshot: table run %" PRId64
            " catches up from cursor %s",
            resumed_id, t->run.id,
            t->committed.cursor_value ? t->committed.cursor_value : "(none: full refresh)");
    t->resumed = false;
    t->unchanged = false;
    t->extracted_here = false;
    t->backfilled = false;
    t->rows_synced = 0;
    rc = mbq_machine_drive(ctx, t);
    t->rows_synced += rows;
    t->unchanged = t->unchanged && t->rows_synced == 0;
    return rc;
}

/* Drive one table (a dry run only checks its schema); true when it synced. */
static bool run_table(sync_ctx *ctx, table_job *t)
{
    int64_t t0 = mbq_monotonic_ms();
    /* A reconciliation left in flight is finished before the table syncs
     * again: its statement must meet a target that holds nothing newer
     * than its keys (reconcile.c). */
    t->in_reconcile = !ctx->dry_run;
    int rc = ctx->dry_run ? 0 : mbq_reconcile_resume(ctx, t);
    if (rc == 0)
        t->in_reconcile = false;
    if (rc == 0)
        rc = ctx->dry_run ? mbq_schema_check(ctx, t) : mbq_machine_drive(ctx, t);
    /* A chunked backfill read each chunk in its own snapshot: it catches up
     * from the mark it took before the first one (backfill.c). */
    if (rc == 0 && !ctx->dry_run && ((t->resumed && !t->extracted_here) || t->backfilled))
        rc = catch_up(ctx, t);
    if (rc == 0 && !ctx->dry_run) {
        t->in_reconcile = true;
        rc = mbq_reconcile_if_due(ctx, t);
    }
    if (rc < 0)
        table_job_fail(ctx, t, rc);
    else if (!ctx->dry_run)
        mbq_log(MBQ_LOG_INFO, t->tc->name, "done", "synced %" PRId64 " rows in %.1f s%s",
                t->rows_synced, (double)(mbq_monotonic_ms() - t0) / 1000.0,
                t->unchanged ? " (no changes)" : "");
    if (ctx->dry_run)
        print_dry_run(ctx, t);
    if (ctx->dry_run && rc == 0)
        print_dry_run_deletes(ctx, t);
    return rc == 0;
}

/* ---- parallel tables (`--jobs N`) --------------------------------------
 *
 * Tables are independent: each worker thread takes the next table of the
 * run and drives it with its own MySQL connection, BigQuery client and
 * journal connection (MBQ_JOURNAL_ATTACH: the process holds the lock;
 * SQLite serialises the short writes). Worker 0 is the run's own context
 * (already connected), so a worker that cannot connect just leaves.
 * Everything a table run journals is the same as when tables run one after
 * another, so a run killed with several tables in flight resumes each of
 * them like any other. */
typedef struct worker_pool {
    table_job *jobs;
    size_t n_jobs;
    size_t next; /* the next table to take */
    int ok, failed;
    pthread_mutex_t mu;
} worker_pool;

typedef struct worker {
    worker_pool *pool;
    sync_ctx ctx;
    const char *location; /* the run's resolved location (the dataset's) */
    bool own; /* ctx's connections are this worker's (not the run's) */
    pthread_t thread;
} worker;

static int worker_connect(worker *w)
{
    const mbq_config *cfg = w->ctx.cfg;
    int rc = mbq_journal_open(&w->ctx.j, cfg->state_dir, MBQ_JOURNAL_ATTACH);
    if (rc == 0)
        rc = mbq_mysql_connect(&w->ctx.my, &cfg->mysql);
    if (rc == 0) {
        mbq_bq_options bo;
        mbq_bq_options_from_config(&bo, &cfg->bigquery);
        bo.location = w->location; /* read once by the run: the dataset's */
        rc = mbq_bq_new(&w->ctx.bq, &bo);
    }
    return rc;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    worker_pool *p = w->pool;
    if (w->own && worker_connect(w) < 0) {
        /* Worker 0 runs on the run's own connections, so every table still
         * gets a worker: leave them to the others rather than fail them
         * (the server's max_connections or the user's limit reached). */
        mbq_log(MBQ_LOG_WARN, NULL, NULL,
                "a parallel worker cannot connect, fewer tables run at a time: %s",
                mbq_error_last());
    } else {
        for (;;) {
            pthread_mutex_lock(&p->mu);
            size_t i = p->next < p->n_jobs ? p->next++ : p->n_jobs;
            pthread_mutex_unlock(&p->mu);
            if (i == p->n_jobs)
                break;
            bool ok = run_table(&w->ctx, &p->jobs[i]);
            pthread_mutex_lock(&p->mu);
            ok ? p->ok++ : p->failed++;
            pthread_mutex_unlock(&p->mu);
        }
    }
    if (w->own) {
        mbq_bq_free(w->ctx.bq);
        mbq_mysql_close(w->ctx.my);
        mbq_journal_close(w->ctx.j);
        mbq_mysql_thread_end();
        mbq_error_clear(); /* the thread's message dies with it */
    }
    return NULL;
}

static void run_tables(sync_ctx *ctx, table_job *jobs, size_t n_jobs, int n_workers, int *ok,
                       int *failed)
{
    if (n_workers > (int)n_jobs)
        n_workers = (int)n_jobs;
    if (n_workers <= 1) {
        for (size_t i = 0; i < n_jobs; i++)
            run_table(ctx, &jobs[i]) ? (*ok)++ : (*failed)++;
        return;
    }
    worker_pool pool = {jobs, n_jobs, 0, 0, 0, PTHREAD_MUTEX_INITIALIZER};
    worker *ws = mbq_calloc((size_t)n_workers, sizeof *ws);
    if (!ws) { /* no memory for workers: one after another */
        run_tables(ctx, jobs, n_jobs, 1, ok, failed);
        return;
    }
    mbq_fault_enabled(); /* read the environment once, before any thread */
    mbq_log(MBQ_LOG_INFO, NULL, NULL, "syncing %zu tables, %d at a time", n_jobs, n_workers);
    int started = 0;
    for (int k = 0; k < n_workers; k++) {
        ws[k].pool = &pool;
        ws[k].ctx = *ctx;
        ws[k].ctx.progress = false; /* one terminal line cannot show several tables */
        ws[k].own = k > 0;
        ws[k].location = ctx->bq ? mbq_bq_location(ctx->bq) : NULL;
        if (ws[k].own) {
            ws[k].ctx.j = NULL;
            ws[k].ctx.my = NULL;
            ws[k].ctx.bq = NULL;
        }
        if (k > 0 && pthread_create(&ws[k].thread, NULL, worker_main, &ws[k]) != 0) {
            mbq_log(MBQ_LOG_WARN, NULL, NULL, "cannot start worker %d: fewer tables at a time",
                    k + 1);
            break;
        }
        started = k + 1;
    }
    worker_main(&ws[0]); /* the calling thread is worker 0 */
    for (int k = 1; k < started; k++)
        pthread_join(ws[k].thread, NULL);
    *ok += pool.ok;
    *failed += pool.failed;
    pthread_mutex_destroy(&pool.mu);
    free(ws);
}

/* The exit code of a run whose tables ran: 0, 1, or the connection's
 * (69, 77) when it failed them all. */
static int run_exit_code(int failed, int conn_rc)
{
    if (failed == 0)
        return MBQ_EXIT_OK;
    return conn_rc < 0 ? mbq_exit_for_error(conn_rc) : MBQ_EXIT_TABLE_FAILED;
}

static bool table_selected(const mbq_sync_options *opts, const char *name)
{
    if (!opts->tables)
        return true;
    for (size_t i = 0; i < opts->n_tables; i++)
        if (strcmp(opts->tables[i], name) == 0)
            return true;
    return false;
}

/* The tables the config's patterns take (mbq/discover.h), added to the
 * run's jobs after the ones named in the config; the skipped and dropped
 * ones are reported. */
static int discover_jobs(sync_ctx *ctx, mbq_discovery **disc, table_job **jobs, size_t *n_jobs,
                         const mbq_sync_options *opts)
{
    char **known = NULL;
    int rc = 0;
    if (ctx->j && (rc = mbq_journal_table_names(ctx->j, &known)) < 0)
        return rc;
    rc = mbq_discover(disc, ctx->my, ctx->cfg, known);
    mbq_strv_free(known);
    if (rc < 0)
        return rc;
    const mbq_discovery *d = *disc;
    table_job *more = mbq_realloc(*jobs, (*n_jobs + d->n + 1) * sizeof *more);
    if (!more)
        return MBQ_ENOMEM;
    *jobs = more;
    size_t taken = 0;
    for (size_t i = 0; i < d->n; i++) {
        const mbq_discovered_table *dt = &d->tables[i];
        if (dt->skipped) {
            mbq_log(MBQ_LOG_WARN, dt->name, NULL, "not synced: %s", dt->why);
            continue;
        }
        if (!table_selected(opts, dt->name))
            continue;
        table_job *t = &more[(*n_jobs)++];
        memset(t, 0, sizeof *t);
        if ((rc = table_job_open(ctx, t, &dt->tc)) < 0)
            return rc;
        taken++;
    }
    /* A --tables name only a pattern could take must be one it took:
     * a run that silently syncs nothing would read as success. */
    for (size_t k = 0; opts->tables && k < opts->n_tables; k++) {
        const char *name = opts->tables[k];
        if (mbq_config_table(ctx->cfg, name))
            continue;
        const mbq_discovered_table *dt = NULL;
        for (size_t i = 0; i < d->n && !dt; i++)
            if (strcmp(d->tables[i].name, name) == 0)
                dt = &d->tables[i];
        if (!dt)
            return mbq_error_set(MBQ_ECONFIG, "table '%s' is not in database '%s'", name,
                                 ctx->cfg->mysql.database);
        if (dt->skipped)
            return mbq_error_set(MBQ_ECONFIG, "table '%s' is not synced: %s", name, dt->why);
    }
    for (size_t i = 0; i < d->n_dropped; i++)
        mbq_log(MBQ_LOG_WARN, d->dropped[i], NULL,
                "synced before but gone from MySQL: not synced any more; its BigQuery table "
                "is kept");
    mbq_log(MBQ_LOG_INFO, NULL, NULL, "discovered %zu table(s) to sync", taken);
    return 0;
}

int mbq_sync_run(const mbq_config *cfg, const mbq_sync_options *opts)
{
    int rc = 0, exit_code = MBQ_EXIT_OK;
    char run_id[37];
    sync_ctx ctx = {0};
    table_job *jobs = NULL;
    size_t n_jobs = 0;
    mbq_discovery *disc = NULL;
    mbq_table_summary *sums = NULL;
    mbq_notify_report report = {0};
    bool summarized = false; /* the tables' summary went to alerts and metrics */
    const char *metrics_file = opts->metrics_file ? opts->metrics_file : cfg->metrics_file;
    int64_t started = mbq_now_ms();
    const mbq_bigquery_config *bc = &cfg->bigquery;

    mbq_uuid(run_id);
    ctx.cfg = cfg;
    ctx.run_id = run_id;
    ctx.dry_run = opts->dry_run;
    ctx.progress = opts->progress;
    ctx.jobs = opts->jobs;

    for (size_t i = 0; opts->tables && i < opts->n_tables; i++) {
        if (!mbq_config_table(cfg, opts->tables[i]) && mbq_pattern_for(cfg, opts->tables[i]) < 0) {
            mbq_error_set(MBQ_ECONFIG, "table '%s' is not in the config '%s'", opts->tables[i],
                          cfg->path);
            return mbq_exit_for_error(MBQ_ECONFIG);
        }
    }

    if (opts->dry_run) {
        rc = mbq_journal_open(&ctx.j, cfg->state_dir, MBQ_JOURNAL_READONLY);
        if (rc == MBQ_ENOTFOUND)
            rc = 0;
    } else {
        rc = mbq_journal_open(&ctx.j, cfg->state_dir, MBQ_JOURNAL_WRITE);
    }
    if (rc < 0) {
        exit_code = mbq_exit_for_error(rc);
        goto done;
    }
    if (!opts->dry_run) {
        int interrupted = 0;
        if ((rc = mbq_journal_runs_mark_interrupted(ctx.j, &interrupted)) < 0 ||
            (rc = mbq_journal_run_start(ctx.j, run_id, started)) < 0) {
            exit_code = mbq_exit_for_error(rc);
            goto done;
        }
        if (interrupted)
            mbq_log(MBQ_LOG_WARN, NULL, NULL,
                    "%d earlier run(s) did not finish (killed?): their tables resume now",
                    interrupted);
    }
    mbq_log(MBQ_LOG_INFO, NULL, NULL, "run %s started%s", run_id,
            opts->dry_run ? " (dry run: nothing is changed)" : "");

    mbq_buf sd = MBQ_BUF_INIT;
    if ((rc = mbq_buf_printf(&sd, "%s/staging", cfg->state_dir)) < 0 ||
        !(ctx.staging_dir = mbq_buf_detach(&sd)) ||
        (!opts->dry_run && (rc = mbq_mkdir_p(ctx.staging_dir)) < 0)) {
        mbq_buf_free(&sd);
        exit_code = mbq_exit_for_error(rc < 0 ? rc : MBQ_ENOMEM);
        goto done;
    }

    jobs = mbq_calloc(cfg->n_tables ? cfg->n_tables : 1, sizeof *jobs);
    if (!jobs) {
        exit_code = MBQ_EXIT_SOFTWARE;
        goto done;
    }
    for (size_t i = 0; i < cfg->n_tables; i++) {
        if (!table_selected(opts, cfg->tables[i].name))
            continue;
        /* Followed through the binlog by `mbq cdc` (mbq/cdc.h): a sync of
         * its own would race the follower's MERGEs. */
        if (cfg->tables[i].mode == MBQ_MODE_CDC) {
            if (opts->tables)
                mbq_log(MBQ_LOG_INFO, cfg->tables[i].name, NULL,
                        "in mode cdc: followed by 'mbq cdc', not synced here");
            continue;
        }
        table_job *t = &jobs[n_jobs++];
        if ((rc = table_job_open(&ctx, t, &cfg->tables[i])) < 0) {
            exit_code = mbq_exit_for_error(rc);
            goto done;
        }
    }
    /* Connections. A failure here fails every table (journaled, alerted)
     * with the same clear error. */
    int conn_rc = mbq_mysql_connect(&ctx.my, &cfg->mysql);
    if (conn_rc == 0) {
        mbq_bq_options bo;
        mbq_bq_options_from_config(&bo, bc);
        conn_rc = mbq_bq_new(&ctx.bq, &bo);
        /* Every job and poll runs in the dataset's location. */
        bool exists = false;
        if (conn_rc == 0)
            conn_rc = mbq_bq_location_resolve(ctx.bq, &exists, bc->dataset);
        if (conn_rc == 0 && !exists && opts->dry_run)
            printf("dataset %s would be created in %s\n", bc->dataset, mbq_bq_location(ctx.bq));
        else if (conn_rc == 0 && !exists)
            conn_rc = mbq_bq_dataset_ensure(ctx.bq, bc->dataset, mbq_bq_location(ctx.bq));
    }

    if (conn_rc == 0 && cfg->n_patterns > 0 &&
        (rc = discover_jobs(&ctx, &disc, &jobs, &n_jobs, opts)) < 0) {
        exit_code = mbq_exit_for_error(rc);
        goto done;
    }
    if (conn_rc == 0 && opts->dry_run)
        mbq_discovery_print(stdout, cfg, disc);
    if (conn_rc < 0 && n_jobs == 0) {
        /* Only patterns, and MySQL cannot say which tables they take: the
         * run stops before any table (alerted as such below). */
        mbq_error_set(conn_rc, "cannot find the tables to sync: %s", mbq_error_last());
        exit_code = mbq_exit_for_error(conn_rc);
        goto done;
    }
    /* Only once every table of the run is known: a file no in-flight run
     * of them refers to is a leftover (a pattern's tables included, so
     * never when discovery could not run). */
    if (!opts->dry_run && (cfg->n_patterns == 0 || disc))
        remove_orphan_files(&ctx, jobs, n_jobs);

    int ok = 0, failed = 0;
    if (conn_rc < 0) {
        for (size_t i = 0; i < n_jobs; i++) {
            mbq_error_set(conn_rc, "%s", mbq_error_last());
            table_job_fail(&ctx, &jobs[i], conn_rc);
            failed++;
        }
    } else {
        /* A dry run prints a plan per table: one after another. */
        int n_workers = opts->dry_run ? 1 : opts->jobs;
        run_tables(&ctx, jobs, n_jobs, n_workers, &ok, &failed);
    }
    if (opts->dry_run) {
        exit_code = failed ? MBQ_EXIT_TABLE_FAILED : MBQ_EXIT_OK;
        goto done;
    }
    if (conn_rc == 0 && mirror_metadata(&ctx) < 0)
        mbq_log(MBQ_LOG_WARN, NULL, "mirror",
                "metadata mirror to BigQuery failed (retried next run; data is committed): %s",
                mbq_error_last());
    else if (conn_rc == 0 && mbq_reconcile_mirror(&ctx) < 0)
        mbq_log(MBQ_LOG_WARN, NULL, "mirror",
                "reconciliation mirror to BigQuery failed (retried next run): %s",
                mbq_error_last());

    /* The summary for alerts and metrics. */
    int64_t finished = mbq_now_ms();
    sums = mbq_calloc(n_jobs ? n_jobs : 1, sizeof *sums);
    mbq_stage_timing *timings = mbq_calloc(n_jobs ? n_jobs * 5 : 1, sizeof *timings);
    if (sums && timings) {
        for (size_t i = 0; i < n_jobs; i++) {
            table_job *t = &jobs[i];
            mbq_table_summary *s = &sums[i];
            mbq_stage_timing *st = &timings[i * 5];
            const int64_t *rt = t->resumed_t_ms;
            st[0] = (mbq_stage_timing){"schema-check", t->run.t_schema_ms + rt[0]};
            st[1] = (mbq_stage_timing){"extract", t->run.t_extract_ms + rt[1]};
            st[2] = (mbq_stage_timing){"stage", t->run.t_stage_ms + rt[2]};
            st[3] = (mbq_stage_timing){"merge", t->run.t_merge_ms + rt[3]};
            st[4] = (mbq_stage_timing){"commit-metadata", t->run.t_commit_ms + rt[4]};
            s->name = t->tc->name;
            s->result = t->result < 0 ? MBQ_TABLE_FAILED
                        : (t->unchanged || t->rows_synced == 0) ? MBQ_TABLE_SKIPPED
                                                                : MBQ_TABLE_OK;
            s->rows_synced = t->rows_synced;
            s->duration_ms = finished - t->started_ms;
            s->stages = st;
            s->n_stages = 5;
            s->failed_stage = t->failed_state;
            s->error = t->error;
            s->schema_changes = (const char *const *)t->changes;
            s->n_schema_changes = t->n_changes;
            s->prev_consecutive_failures = t->prev_failures;
            s->incident = t->target_lost && t->result == 0;
            s->last_success_ms = t->result < 0 ? t->committed.last_success_ms : finished;
            s->reconciled = t->reconciled;
            s->rows_deleted = t->rows_deleted;
        }
        mbq_run_summary summary = {.run_id = run_id, .started_ms = started, .finished_ms = finished,
                                   .tables = sums, .n_tables = n_jobs};
        /* Runs that stopped before any table since the last one that went
         * through: this one ends the streak (the `change` policy's
         * recovery). */
        mbq_runfail streak;
        mbq_runfail_read(&streak, cfg->state_dir);
        summary.prev_run_failures = streak.count;
        summary.prev_exit_code = streak.exit_code;
        summary.exit_code = run_exit_code(failed, conn_rc);
        mbq_notify_options no = MBQ_NOTIFY_OPTIONS_INIT;
        const char *fast = getenv("MBQ_NOTIFY_BACKOFF_MS");
        if (fast)
            no.backoff_ms = atoll(fast);
        mbq_notify_run(&report, cfg->email.enabled ? &cfg->email : NULL,
                       cfg->telegram.enabled ? &cfg->telegram : NULL, &summary, &no);
        journal_alerts(&ctx, &report);
        if (metrics_file && mbq_metrics_write(metrics_file, &summary) < 0)
            mbq_log(MBQ_LOG_WARN, NULL, NULL, "cannot write metrics: %s", mbq_error_last());
        if (streak.count > 0)
            mbq_runfail_clear(cfg->state_dir);
        summarized = true;
    }
    free(timings);

    exit_code = run_exit_code(failed, conn_rc);
    mbq_journal_run_finish(ctx.j, run_id, mbq_now_ms(), ok, failed, exit_code);
    mbq_log(failed ? MBQ_LOG_WARN : MBQ_LOG_INFO, NULL, NULL,
            "run %s finished: %d table(s) ok, %d failed, %.1f s", run_id, ok, failed,
            (double)(mbq_now_ms() - started) / 1000.0);
done:
    if (exit_code != MBQ_EXIT_OK && n_jobs == 0 && mbq_error_last()[0])
        mbq_log(MBQ_LOG_ERROR, NULL, NULL, "%s", mbq_error_last());
    /* A usage error (a --tables name no entry takes) is the caller's to
     * read on stderr, not an operator's alert. */
    if (exit_code != MBQ_EXIT_OK && exit_code != MBQ_EXIT_USAGE && !summarized &&
        !opts->dry_run) {
        /* Stopped before the tables' summary (lock, journal, a bug): no
         * table carries this failure, so it is alerted on its own. */
        mbq_buf why = MBQ_BUF_INIT;
        mbq_buf_puts(&why, mbq_error_last());
        mbq_runfail_notify(cfg, opts, run_id, started, exit_code, mbq_buf_cstr(&why));
        mbq_error_set(MBQ_ERR, "%s", mbq_buf_cstr(&why)); /* what cmd_sync prints */
        mbq_buf_free(&why);
    }
    mbq_notify_report_free(&report);
    mbq_discovery_free(disc);
    free(sums);
    for (size_t i = 0; i < n_jobs; i++)
        table_job_clear(&jobs[i]);
    free(jobs);
    mbq_bq_free(ctx.bq);
    mbq_mysql_close(ctx.my);
    mbq_journal_close(ctx.j);
    free(ctx.staging_dir);
    return exit_code;
}
