/* Reconciliation: the tail of a table's machine that makes deletes in MySQL
 * reach BigQuery (mbq/reconcile.h for the statements, sql/journal/
 * 004_reconcile.sql for what is journaled).
 *
 *   scan --chunk file written--> load --loaded, more keys--> scan
 *                                  \--loaded, last chunk--> apply --counted--> done
 *                                                             \--guard--------> refused
 *
 * scan   one chunk of keys (after the last key loaded) in its own
 *        consistent snapshot into a file; the first chunk's snapshot also
 *        gives the high-water mark. Journaled with the chunk's load job id
 *        before anything is loaded. A kill here scans the chunk again (a
 *        newer snapshot: see "why chunks may mix snapshots" below).
 *   load   the chunk into the staging table (the first chunk truncates it)
 *        under its journaled job id: a resumed load finds the job that ran.
 *        The staging table's row count proves it: keys so far + the chunk.
 *   apply  count what the statement would remove and the live target rows
 *        (journaled), check the guard, then run the one statement under a
 *        journaled job id (a resumed apply finds the job; the counts taken
 *        before it ran stay the reported ones).
 *
 * Why nothing newer than the keys is ever removed: a reconciliation starts
 * only after the table's sync is done, and while it is in flight the next
 * run finishes it before it syncs the table again (sync.c). So when the
 * statement runs, every target row came from a snapshot taken before the
 * first chunk's. A key absent from its chunk's snapshot was deleted by a
 * transaction that committed before that snapshot; if the key was inserted
 * again later, the row is new and the next sync brings it (its cursor is
 * new). On top of that the statement leaves alone every target row whose
 * cursor is above the first snapshot's high-water mark.
 *
 * Why chunks may mix snapshots: the chunks partition the key space in the
 * index's order, so a key that exists throughout is read by exactly one
 * chunk; keys inserted or deleted while the chunks are read are new to the
 * target (not in it) or deleted (rightly removed). One long snapshot over a
 * 100M-row table would hold the server's undo history for the whole scan
 * and restart from zero after a kill; a chunk holds it for one chunk. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mbq/bq.h"
#include "mbq/error.h"
#include "mbq/fault.h"
#include "mbq/journal_reconcile.h"
#include "mbq/log.h"
#include "mbq/mysql_keys.h"
#include "mbq/reconcile.h"
#include "mbq/util.h"
#include "sync_internal.h"
#include "mbq/banned.h"

/* What one reconciliation needs besides its journaled record. */
typedef struct rec_job {
    sync_ctx *ctx;
    table_job *t;
    mbq_reconcile_run r;
    const char **key_bq;        /* BigQuery names of the key columns */
    mbq_bq_schema *key_schema;  /* the staged keys' fields */
    const mbq_column *cursor;   /* the cursor column */
    bool journaled;             /* false in a dry run */
} rec_job;

static int set_s(char **field, const char *value)
{
    char *copy = NULL;
    if (value && !(copy = mbq_strdup(value)))
        return MBQ_ENOMEM;
    free(*field);
    *field = copy;
    return 0;
}

static const char *table_of(const rec_job *rj)
{
    return rj->t->tc->name;
}

/* Journal the record (not in a dry run); `fault` names the fault point
 * reached right after ("reconcile.<state>.enter"). */
static int save(rec_job *rj, const char *fault)
{
    int rc = 0;
    rj->r.updated_ms = mbq_now_ms();
    if (rj->journaled) {
        if ((rc = set_s(&rj->r.last_run_id, rj->ctx->run_id)) < 0 ||
            (rc = mbq_journal_reconcile_save(rj->ctx->j, &rj->r)) < 0)
            return rc;
    }
    if (fault)
        mbq_fault_point(fault);
    return 0;
}

static int enter(rec_job *rj, const char *state)
{
    char fp[64];
    int rc = set_s(&rj->r.state, state);
    if (rc < 0)
        return rc;
    snprintf(fp, sizeof fp, "reconcile.%s.enter", state);
    mbq_log(MBQ_LOG_DEBUG, table_of(rj), "reconcile", "entered '%s'", state);
    return save(rj, fp);
}

static int job_id(char **out, const rec_job *rj, const char *kind, int64_t n)
{
    mbq_buf b = MBQ_BUF_INIT;
    char rid[32], att[16], num[32];
    snprintf(rid, sizeof rid, "%" PRId64, rj->r.id);
    snprintf(att, sizeof att, "%d", rj->r.attempt);
    snprintf(num, sizeof num, "%" PRId64, n);
    int rc = mbq_bq_job_id(&b, kind, rj->r.run_id, rid, att, num, (const char *)NULL);
    if (rc == 0) {
        free(*out);
        if (!(*out = mbq_buf_detach(&b)))
            rc = MBQ_ENOMEM;
    }
    mbq_buf_free(&b);
    return rc;
}

static int chunk_path(mbq_buf *b, const rec_job *rj)
{
    return mbq_buf_printf(b, "%s/reconcile/%s.%" PRId64 ".%d.%" PRId64 ".keys.ndjson",
                          rj->ctx->cfg->state_dir, rj->t->tc->target, rj->r.id, rj->r.attempt,
                          rj->r.chunks);
}

static void remove_chunk(rec_job *rj)
{
    if (rj->r.chunk_path && unlink(rj->r.chunk_path) < 0 && errno != ENOENT)
        mbq_log(MBQ_LOG_WARN, table_of(rj), "reconcile", "cannot remove '%s': %s",
                rj->r.chunk_path, strerror(errno));
}

/* ---- scan -------------------------------------------------------------- */

static int64_t chunk_rows_of(const rec_job *rj)
{
    return rj->t->tc->reconcile_chunk_rows > 0 ? rj->t->tc->reconcile_chunk_rows : 1000000;
}

static int step_scan(rec_job *rj)
{
    mbq_buf path = MBQ_BUF_INIT, dir = MBQ_BUF_INIT;
    mbq_key_scan_result res = {0};
    int rc;
    if ((rc = mbq_buf_printf(&dir, "%s/reconcile", rj->ctx->cfg->state_dir)) < 0 ||
        (rc = mbq_mkdir_p(dir.ptr)) < 0 || (rc = chunk_path(&path, rj)) < 0)
        goto done;
    mbq_key_scan_options o = {0};
    o.schema = rj->t->src;
    o.key = (const char *const *)rj->t->tc->primary_key;
    o.n_key = rj->t->tc->n_primary_key;
    o.cursor = rj->t->tc->updated_column;
    o.want_hwm = !rj->r.hwm_taken;
    o.after = rj->r.last_key;
    o.limit = chunk_rows_of(rj);
    o.path = path.ptr;
    o.log_table = table_of(rj);
    if ((rc = mbq_mysql_scan_keys(&res, rj->ctx->my, &o)) < 0)
        goto done;
    mbq_fault_point("reconcile.scan.done");
    if (!rj->r.hwm_taken) {
        rj->r.hwm_taken = true;
        if ((rc = set_s(&rj->r.hwm, res.hwm)) < 0)
            goto done;
    }
    rj->r.chunk_rows = res.rows;
    if ((rc = set_s(&rj->r.chunk_path, path.ptr)) < 0 ||
        (rc = set_s(&rj->r.chunk_last_key, res.last_key)) < 0 ||
        (rc = job_id(&rj->r.chunk_job_id, rj, "mbq_keys", rj->r.chunks)) < 0)
        goto done;
    rc = enter(rj, "load");
done:
    mbq_key_scan_result_free(&res);
    mbq_buf_free(&path);
    mbq_buf_free(&dir);
    return rc;
}

/* ---- load -------------------------------------------------------------- */

/* The staging table's row count after this chunk: exactly the keys loaded
 * before it plus the chunk. A load job is atomic, so any other count means
 * the job did not load (a cut upload the emulator registered) or the table
 * is not what the journal says (expired, dropped). */
static int staged_count(rec_job *rj, int64_t *n)
{
    mbq_bq_table_info *info = NULL;
    int rc = mbq_bq_table_get(&info, rj->ctx->bq, rj->ctx->cfg->bigquery.dataset,
                              rj->r.staging_table);
    *n = rc == 0 ? info->num_rows : -1;
    mbq_bq_table_info_free(info);
    return rc;
}

static int create_staging(rec_job *rj)
{
    const mbq_bigquery_config *bc = &rj->ctx->cfg->bigquery;
    mbq_bq_table_options to = MBQ_BQ_TABLE_OPTIONS_INIT;
    to.expiration_ms = bc->staging_expiration_ms;
    to.description = "mbq reconciliation keys: dropped after the reconciliation";
    int rc = mbq_bq_table_create(rj->ctx->bq, bc->dataset, rj->r.staging_table, rj->key_schema,
                                 &to);
    return rc == MBQ_EEXISTS ? 0 : rc;
}

static int load_chunk(rec_job *rj, bool *ok)
{
    const mbq_bigquery_config *bc = &rj->ctx->cfg->bigquery;
    mbq_bq_job *job = NULL;
    int64_t n = -1;
    *ok = false;
    mbq_bq_load_options lo = MBQ_BQ_LOAD_OPTIONS_INIT;
    lo.dataset = bc->dataset;
    lo.table = rj->r.staging_table;
    lo.path = rj->r.chunk_path;
    lo.schema = rj->key_schema;
    lo.write_disposition = rj->r.chunks == 0 ? MBQ_BQ_WRITE_TRUNCATE : MBQ_BQ_WRITE_APPEND;
    lo.create_disposition = MBQ_BQ_CREATE_NEVER;
    int rc = mbq_bq_load_file(&job, rj->ctx->bq, rj->r.chunk_job_id, &lo);
    if (rc == 0 && !job->existed && job->output_rows == rj->r.chunk_rows && rj->r.chunks == 0) {
        *ok = true; /* a truncating load that this process saw whole */
    } else if (rc == 0 && (rc = staged_count(rj, &n)) == 0) {
        *ok = n == rj->r.keys + rj->r.chunk_rows;
        if (!*ok)
            mbq_log(MBQ_LOG_WARN, table_of(rj), "reconcile",
                    "staging table '%s' holds %" PRId64 " keys after load job '%s', expected "
                    "%" PRId64,
                    rj->r.staging_table, n, rj->r.chunk_job_id, rj->r.keys + rj->r.chunk_rows);
    }
    mbq_bq_job_free(job);
    return rc;
}

/* Start the key scan again from the first chunk under a new attempt (new
 * file names and job ids): what the staging table holds is not provably
 * what the journal says. */
static int restart(rec_job *rj)
{
    remove_chunk(rj);
    rj->r.attempt++;
    rj->r.chunks = 0;
    rj->r.keys = 0;
    rj->r.hwm_taken = false;
    rj->r.chunk_rows = -1;
    char **clear[] = {&rj->r.last_key, &rj->r.chunk_path, &rj->r.chunk_last_key,
                      &rj->r.chunk_job_id, &rj->r.hwm};
    for (size_t i = 0; i < sizeof clear / sizeof clear[0]; i++) {
        free(*clear[i]);
        *clear[i] = NULL;
    }
    return enter(rj, "scan");
}

static int step_load(rec_job *rj)
{
    int rc = 0;
    bool ok = false;
    if (rj->r.chunks == 0 && (rc = create_staging(rj)) < 0)
        return rc;
    if (rj->r.chunk_rows > 0) {
        if (access(rj->r.chunk_path, R_OK) != 0) {
            /* The chunk's file is gone (a cleaned state directory): its
             * job may have run; the count says. */
            int64_t n = -1;
            if ((rc = staged_count(rj, &n)) < 0)
                return rc;
            ok = n == rj->r.keys + rj->r.chunk_rows;
        } else if ((rc = load_chunk(rj, &ok)) < 0) {
            if (rc == MBQ_EBQ) {
                /* BigQuery refused or failed the job: the retry (next run)
                 * needs a new id, or it would find the failed job. */
                int saved = rc;
                rj->r.attempt++;
                if (job_id(&rj->r.chunk_job_id, rj, "mbq_keys", rj->r.chunks) == 0)
                    save(rj, NULL);
                rc = saved;
            }
            return rc;
        }
        if (!ok)
            return restart(rj);
    }
    mbq_fault_point("reconcile.load.done");
    remove_chunk(rj);
    rj->r.keys += rj->r.chunk_rows;
    rj->r.chunks++;
    bool last = rj->r.chunk_rows < chunk_rows_of(rj);
    if (!last && (rc = set_s(&rj->r.last_key, rj->r.chunk_last_key)) < 0)
        return rc;
    rj->r.chunk_rows = -1;
    if ((rc = set_s(&rj->r.chunk_path, NULL)) < 0 || (rc = set_s(&rj->r.chunk_job_id, NULL)) < 0)
        return rc;
    if (last && (rc = job_id(&rj->r.apply_job_id, rj, "mbq_reconcile", 0)) < 0)
        return rc;
    mbq_log(MBQ_LOG_INFO, table_of(rj), "reconcile", "staged %" PRId64 " keys (%" PRId64
            " chunk%s)", rj->r.keys, rj->r.chunks, rj->r.chunks == 1 ? "" : "s");
    return enter(rj, last ? "apply" : "scan");
}

/* ---- apply ------------------------------------------------------------- */

static int sql_options(mbq_reconcile_sql *o, mbq_buf *target, mbq_buf *keys, mbq_buf *bound,
                       const rec_job *rj)
{
    int rc;
    const char *bq_type = rj->cursor ? mbq_bq_type_name(rj->cursor->map.bq_type) : NULL;
    /* An empty source has no high-water mark: the committed cursor bounds
     * the statement (every target row was synced at or below it). */
    const char *hwm = rj->r.hwm ? rj->r.hwm : rj->t->committed.cursor_value;
    if ((rc = mbq_bq_table_ref(target, rj->ctx, rj->t->tc->target)) < 0 ||
        (rc = mbq_bq_table_ref(keys, rj->ctx, rj->r.staging_table)) < 0)
        return rc;
    if (rj->cursor && !hwm)
        return mbq_error_set(MBQ_EINTERNAL, "table '%s': a reconciliation without a bound",
                             table_of(rj));
    if (rj->cursor && (rc = mbq_reconcile_bound(bound, bq_type, hwm)) < 0)
        return rc;
    memset(o, 0, sizeof *o);
    o->target = target->ptr;
    o->keys = keys->ptr;
    o->key_columns = rj->key_bq;
    o->n_key_columns = rj->t->tc->n_primary_key;
    o->cursor = rj->cursor ? rj->cursor->bq_name : NULL;
    o->bound = rj->cursor ? bound->ptr : NULL;
    /* The journaled mode: a reconciliation started as soft finishes as
     * soft, whatever the config says now. */
    o->mode = mbq_streq(rj->r.mode, "hard") ? MBQ_DELETES_HARD : MBQ_DELETES_SOFT;
    return 0;
}

/* Soft mode's two columns, added to the target when missing (tables.patch,
 * idempotent). */
static int ensure_soft_columns(rec_job *rj)
{
    mbq_bq_schema *s = NULL;
    int rc = mbq_bq_schema_new(&s);
    if (rc == 0)
        rc = mbq_bq_schema_add(s, MBQ_DELETED_COLUMN, "BOOL", MBQ_BQ_NULLABLE,
                               "mbq: TRUE once the row's key is gone from MySQL");
    if (rc == 0)
        rc = mbq_bq_schema_add(s, MBQ_DELETED_AT_COLUMN, "TIMESTAMP", MBQ_BQ_NULLABLE,
                               "mbq: when a reconciliation found the key gone");
    if (rc == 0)
        rc = mbq_bq_table_add_columns(rj->ctx->bq, NULL, rj->ctx->cfg->bigquery.dataset,
                                      rj->t->tc->target, s);
    mbq_bq_schema_free(s);
    return rc;
}

/* The guard's count: rows the statement would remove, live rows. */
static int count(rec_job *rj, const mbq_reconcile_sql *o, int64_t *would, int64_t *live)
{
    mbq_buf sql = MBQ_BUF_INIT;
    mbq_bq_job *job = NULL;
    mbq_bq_rows *rows = NULL;
    char id[37 + 16];
    char uuid[37];
    mbq_uuid(uuid);
    snprintf(id, sizeof id, "mbq_count_%s", uuid); /* a SELECT: any id will do */
    int rc = mbq_reconcile_sql_count(&sql, o);
    if (rc == 0)
        rc = mbq_bq_query(&job, rj->ctx->bq, id, sql.ptr, NULL);
    if (rc == 0)
        rc = mbq_bq_query_rows(&rows, rj->ctx->bq, job, 0);
    if (rc == 0 && (rc = mbq_bq_rows_next(rows)) == 1) {
        const char *a = mbq_bq_rows_value(rows, 0), *b = mbq_bq_rows_value(rows, 1);
        rc = a && b && mbq_parse_i64(would, a) == 0 && mbq_parse_i64(live, b) == 0
                 ? 0
                 : mbq_error_set(MBQ_EBQ, "table '%s': unreadable count", table_of(rj));
    } else if (rc == 0) {
        rc = mbq_error_set(MBQ_EBQ, "table '%s': the count returned no row", table_of(rj));
    }
    mbq_bq_rows_free(rows);
    mbq_bq_job_free(job);
    mbq_buf_free(&sql);
    return rc;
}

/* More than max_delete_fraction of the target: a wrong database, an
 * emptied or truncated table must not wipe BigQuery. */
static bool guard_trips(const rec_job *rj)
{
    double f = rj->t->tc->max_delete_fraction;
    return rj->r.target_rows > 0 && (double)rj->r.rows_deleted > f * (double)rj->r.target_rows;
}

static int refuse(rec_job *rj)
{
    const mbq_table_config *tc = rj->t->tc;
    double pct = 100.0 * (double)rj->r.rows_deleted / (double)rj->r.target_rows;
    mbq_error_set(MBQ_EDATA,
                  "table '%s': reconciliation refused: it would %s %" PRId64 " of %" PRId64
                  " rows (%.1f%%) in BigQuery, more than max_delete_fraction %.2f; if MySQL "
                  "really lost these rows, raise 'max_delete_fraction' for this table (1 turns "
                  "the guard off) and run again",
                  tc->name, mbq_streq(rj->r.mode, "hard") ? "delete" : "flag",
                  rj->r.rows_deleted, rj->r.target_rows, pct, tc->max_delete_fraction);
    mbq_buf msg = MBQ_BUF_INIT;
    mbq_buf_puts(&msg, mbq_error_last());
    int rc = set_s(&rj->r.error, msg.ptr);
    rj->r.finished_ms = mbq_now_ms();
    if (rc == 0)
        rc = enter(rj, "refused");
    if (rc == 0 && rj->journaled &&
        mbq_bq_table_delete(rj->ctx->bq, rj->ctx->cfg->bigquery.dataset, rj->r.staging_table) < 0)
        mbq_log(MBQ_LOG_WARN, table_of(rj), "cleanup",
                "cannot drop staging table '%s' (it expires by itself): %s", rj->r.staging_table,
                mbq_error_last());
    if (rc == 0) {
        rj->t->reconcile_refused = true;
        rc = mbq_error_set(MBQ_EDATA, "%s", mbq_buf_cstr(&msg));
    }
    mbq_buf_free(&msg);
    return rc;
}

static int finish(rec_job *rj)
{
    rj->r.finished_ms = mbq_now_ms();
    rj->t->rows_deleted += rj->r.rows_deleted;
    rj->t->reconciled = true;
    int rc = enter(rj, "done");
    if (rc == 0 && rj->journaled) {
        if (mbq_bq_table_delete(rj->ctx->bq, rj->ctx->cfg->bigquery.dataset,
                                rj->r.staging_table) < 0)
            mbq_log(MBQ_LOG_WARN, table_of(rj), "cleanup",
                    "cannot drop staging table '%s' (it expires by itself): %s",
                    rj->r.staging_table, mbq_error_last());
    }
    return rc;
}

static int step_apply(rec_job *rj)
{
    mbq_buf target = MBQ_BUF_INIT, keys = MBQ_BUF_INIT, bound = MBQ_BUF_INIT, sql = MBQ_BUF_INIT;
    mbq_bq_job *job = NULL;
    mbq_reconcile_sql o;
    bool soft = !mbq_streq(rj->r.mode, "hard");
    int rc;
    if ((soft && (rc = ensure_soft_columns(rj)) < 0) ||
        (rc = sql_options(&o, &target, &keys, &bound, rj)) < 0)
        goto done;
    if (rj->r.target_rows < 0) {
        /* Counted once, before the statement, and journaled: a resumed
         * apply whose statement already ran reports these, not a recount
         * of the result. */
        if ((rc = count(rj, &o, &rj->r.rows_deleted, &rj->r.target_rows)) < 0 ||
            (rc = save(rj, "reconcile.counted")) < 0)
            goto done;
    }
    if (guard_trips(rj)) {
        rc = refuse(rj);
        goto done;
    }
    if (!rj->journaled) {
        rc = finish(rj); /* a dry run counts, and stops there */
        goto done;
    }
    /* Nothing to delete costs no DML job; soft mode always runs, it also
     * clears the flag of keys that are back. */
    if (rj->r.rows_deleted > 0 || soft) {
        if ((rc = mbq_reconcile_sql_apply(&sql, &o)) < 0)
            goto done;
        mbq_log(MBQ_LOG_DEBUG, table_of(rj), "reconcile", "statement: %s", sql.ptr);
        if ((rc = mbq_bq_query(&job, rj->ctx->bq, rj->r.apply_job_id, sql.ptr, NULL)) < 0) {
            if (rc == MBQ_EBQ) {
                rj->r.attempt++;
                if (job_id(&rj->r.apply_job_id, rj, "mbq_reconcile", 0) == 0)
                    save(rj, NULL);
                rc = MBQ_EBQ;
            }
            goto done;
        }
        mbq_fault_point("reconcile.apply.done");
    }
    mbq_log(MBQ_LOG_INFO, table_of(rj), "reconcile",
            "%s %" PRId64 " of %" PRId64 " rows whose key is gone from MySQL (keys: %" PRId64
            ", bound: %s)%s",
            soft ? "flagged" : "deleted", rj->r.rows_deleted, rj->r.target_rows, rj->r.keys,
            rj->r.hwm ? rj->r.hwm : "committed cursor",
            job && job->existed ? " (job found from an earlier try)" : "");
    rc = finish(rj);
done:
    mbq_bq_job_free(job);
    mbq_buf_free(&target);
    mbq_buf_free(&keys);
    mbq_buf_free(&bound);
    mbq_buf_free(&sql);
    return rc;
}

/* ---- driving ----------------------------------------------------------- */

static void rec_job_free(rec_job *rj)
{
    mbq_reconcile_run_clear(&rj->r);
    free(rj->key_bq);
    mbq_bq_schema_free(rj->key_schema);
}

/* The key's BigQuery names and fields, the cursor column (schema-check
 * filled t->src). */
static int rec_job_init(rec_job *rj, sync_ctx *ctx, table_job *t)
{
    const mbq_table_config *tc = t->tc;
    int rc;
    rj->ctx = ctx;
    rj->t = t;
    if (!t->src)
        return mbq_error_set(MBQ_EINTERNAL, "table '%s': reconciliation before schema-check",
                             tc->name);
    if (!(rj->key_bq = mbq_calloc(tc->n_primary_key, sizeof *rj->key_bq)) ||
        (rc = mbq_bq_schema_new(&rj->key_schema)) < 0)
        return MBQ_ENOMEM;
    for (size_t i = 0; i < tc->n_primary_key; i++) {
        const mbq_column *c = mbq_table_schema_column(t->src, tc->primary_key[i]);
        if (!c)
            return mbq_error_set(MBQ_ESCHEMA, "table '%s': key column '%s' is gone", tc->name,
                                 tc->primary_key[i]);
        rj->key_bq[i] = c->bq_name;
        if ((rc = mbq_bq_schema_add(rj->key_schema, c->bq_name, mbq_bq_type_name(c->map.bq_type),
                                    MBQ_BQ_NULLABLE, NULL)) < 0)
            return rc;
    }
    rj->cursor = tc->updated_column ? mbq_table_schema_column(t->src, tc->updated_column) : NULL;
    if (tc->updated_column && !rj->cursor)
        return mbq_error_set(MBQ_ESCHEMA, "table '%s': cursor column '%s' is gone", tc->name,
                             tc->updated_column);
    return 0;
}

static int drive(rec_job *rj)
{
    int64_t t0 = mbq_monotonic_ms();
    int rc = 0;
    for (;;) {
        const char *s = rj->r.state;
        if (mbq_streq(s, "scan"))
            rc = step_scan(rj);
        else if (mbq_streq(s, "load"))
            rc = step_load(rj);
        else if (mbq_streq(s, "apply"))
            rc = step_apply(rj);
        else
            break; /* done, refused */
        if (rc < 0)
            break;
    }
    rj->t->t_reconcile_ms += mbq_monotonic_ms() - t0;
    if (rc < 0 && rj->journaled && !mbq_streq(rj->r.state, "refused")) {
        mbq_buf msg = MBQ_BUF_INIT;
        mbq_buf_puts(&msg, mbq_error_last());
        if (set_s(&rj->r.error, msg.ptr) == 0)
            save(rj, NULL);
        mbq_error_set(rc, "%s", mbq_buf_cstr(&msg));
        mbq_buf_free(&msg);
    }
    return rc;
}

int mbq_reconcile_resume(sync_ctx *ctx, table_job *t)
{
    rec_job rj = {0};
    bool found = false;
    int rc;
    if (!ctx->j || ctx->dry_run)
        return 0;
    if ((rc = mbq_journal_reconcile_in_flight(ctx->j, &rj.r, &found, t->tc->name)) < 0 || !found)
        goto done;
    mbq_log(MBQ_LOG_INFO, t->tc->name, "reconcile",
            "resuming reconciliation %" PRId64 " at '%s' (chunk %" PRId64 ") before the sync",
            rj.r.id, rj.r.state, rj.r.chunks + 1);
    /* The machine's schema-check runs again after this: it is idempotent. */
    if ((rc = mbq_schema_check(ctx, t)) < 0 || (rc = rec_job_init(&rj, ctx, t)) < 0)
        goto done;
    rj.journaled = true;
    rc = drive(&rj);
done:
    rec_job_free(&rj);
    return rc;
}

/* Is a reconciliation of `t` due: deletes on, the sync committed a cursor,
 * and reconcile_every passed since the last one ended? */
static int due(bool *out, sync_ctx *ctx, const table_job *t)
{
    int64_t last = 0;
    *out = false;
    if (t->tc->deletes == MBQ_DELETES_OFF || t->tc->mode == MBQ_MODE_FULL)
        return 0;
    int rc = mbq_journal_reconcile_last_end(ctx->j, &last, t->tc->name);
    if (rc == 0)
        *out = last == 0 || mbq_now_ms() - last >= t->tc->reconcile_every_ms;
    return rc;
}

int mbq_reconcile_if_due(sync_ctx *ctx, table_job *t)
{
    rec_job rj = {0};
    bool is_due = false;
    int rc;
    if (!ctx->j || ctx->dry_run || (rc = due(&is_due, ctx, t)) < 0 || !is_due)
        return 0;
    mbq_buf st = MBQ_BUF_INIT;
    if ((rc = rec_job_init(&rj, ctx, t)) < 0)
        goto done;
    rj.journaled = true;
    rj.r.run_id = mbq_strdup(ctx->run_id);
    rj.r.last_run_id = mbq_strdup(ctx->run_id);
    rj.r.table_name = mbq_strdup(t->tc->name);
    rj.r.mode = mbq_strdup(t->tc->deletes == MBQ_DELETES_HARD ? "hard" : "soft");
    rj.r.started_ms = rj.r.updated_ms = mbq_now_ms();
    rj.r.chunk_rows = rj.r.target_rows = rj.r.rows_deleted = -1;
    if (!rj.r.run_id || !rj.r.last_run_id || !rj.r.table_name || !rj.r.mode) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    if ((rc = mbq_journal_reconcile_create(ctx->j, &rj.r)) < 0)
        goto done;
    if ((rc = mbq_buf_printf(&st, "%s__mbq_keys_%" PRId64, t->tc->target, rj.r.id)) < 0 ||
        (rc = set_s(&rj.r.staging_table, st.ptr)) < 0 || (rc = save(&rj, NULL)) < 0)
        goto done;
    mbq_log(MBQ_LOG_INFO, t->tc->name, "reconcile",
            "reconciliation %" PRId64 " (%s deletes) starts: reading every key in chunks of "
            "%" PRId64,
            rj.r.id, rj.r.mode, chunk_rows_of(&rj));
    mbq_fault_point("reconcile.scan.enter");
    rc = drive(&rj);
done:
    mbq_buf_free(&st);
    rec_job_free(&rj);
    return rc;
}

/* --dry-run: the keys go to a throw-away staging table, the count is
 * printed, nothing is journaled and nothing in the target changes. */
int mbq_reconcile_dry_run(sync_ctx *ctx, table_job *t, int64_t *would, int64_t *live)
{
    rec_job rj = {0};
    char uuid[37];
    mbq_buf st = MBQ_BUF_INIT;
    int rc;
    *would = *live = -1;
    if ((rc = rec_job_init(&rj, ctx, t)) < 0)
        goto done;
    mbq_uuid(uuid);
    rj.r.run_id = mbq_strdup(uuid);
    rj.r.state = mbq_strdup("scan");
    rj.r.mode = mbq_strdup(t->tc->deletes == MBQ_DELETES_HARD ? "hard" : "soft");
    rj.r.chunk_rows = rj.r.target_rows = rj.r.rows_deleted = -1;
    if ((rc = mbq_buf_printf(&st, "%s__mbq_keys_dry_%.8s", t->tc->target, uuid)) < 0 ||
        (rc = set_s(&rj.r.staging_table, st.ptr)) < 0 || !rj.r.run_id || !rj.r.state ||
        !rj.r.mode) {
        rc = rc < 0 ? rc : MBQ_ENOMEM;
        goto done;
    }
    rc = drive(&rj);
    *would = rj.r.rows_deleted;
    *live = rj.r.target_rows;
    if (mbq_bq_table_delete(ctx->bq, ctx->cfg->bigquery.dataset, rj.r.staging_table) < 0)
        mbq_log(MBQ_LOG_WARN, t->tc->name, "reconcile", "cannot drop '%s' (it expires): %s",
                rj.r.staging_table, mbq_error_last());
    remove_chunk(&rj);
done:
    mbq_buf_free(&st);
    rec_job_free(&rj);
    return rc;
}
