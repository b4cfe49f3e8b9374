/* A MERGE into a partitioned target in partition ranges.
 *
 * BigQuery rejects a query or load job that modifies more than 4,000
 * partitions (quotas page, "Partitioned tables": "Number of partitions
 * modified by a single job"), and a MERGE is one query job. An incremental
 * window that touches rows in more partitions (a backfill, a mass update
 * of old rows) would fail on every run. So before the MERGE the staging
 * table's distinct partition keys of the target's partitioning column are
 * read (one small query), and when they are more than
 * bigquery.max_partitions_per_job, the MERGE runs once per range of at most
 * that many keys: its WHEN MATCHED and WHEN NOT MATCHED clauses only take
 * staged rows whose key lies in the range. The source stays the staging
 * table itself (the emulator cannot MERGE from a subquery, and BigQuery
 * reads it directly either way).
 *
 * Safe to repeat: a MERGE of the same staged rows is idempotent (the later
 * cursor wins), and each range's job id names the run, the table run, the
 * attempt and the range's bounds, so a resumed run finds the ranges done
 * and only runs the others.
 *
 * Keys are compared as integers (UNIX_DATE, UNIX_SECONDS, seconds since
 * 1970 for DATETIME) of the partition's start, never as text, so no time
 * zone conversion is involved (the emulator's casts use America/Los_Angeles,
 * README divergence 15). A matched row whose partitioning value changed
 * also modifies its old partition, which this does not count. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mbq/bq.h"
#include "mbq/error.h"
#include "mbq/log.h"
#include "mbq/util.h"
#include "sync_internal.h"
#include "mbq/banned.h"

/* The integer key of `col` (a quoted, qualified column) for BigQuery time
 * unit partitioning by `unit` of a `type` column; MBQ_ENOTFOUND when the
 * partitioning is not one this knows (then the MERGE runs whole). */
static int put_key(mbq_buf *b, const char *type, const char *unit, const char *col)
{
    if (strcmp(type, "DATE") == 0)
        return mbq_buf_printf(b, "UNIX_DATE(DATE_TRUNC(%s, %s))", col, unit);
    if (strcmp(type, "DATETIME") == 0)
        return mbq_buf_printf(b,
                              "DATETIME_DIFF(DATETIME_TRUNC(%s, %s), DATETIME '1970-01-01 "
                              "00:00:00', SECOND)",
                              col, unit);
    if (strcmp(type, "TIMESTAMP") == 0)
        return mbq_buf_printf(b, "UNIX_SECONDS(TIMESTAMP_TRUNC(%s, %s))", col, unit);
    return MBQ_ENOTFOUND;
}

/* b := prefix + b. */
static int buf_prefix(mbq_buf *b, const char *prefix)
{
    mbq_buf t = MBQ_BUF_INIT;
    int rc = mbq_buf_puts(&t, prefix);
    if (rc == 0)
        rc = mbq_buf_puts(&t, mbq_buf_cstr(b));
    if (rc == 0) {
        mbq_buf_free(b);
        *b = t;
        return 0;
    }
    mbq_buf_free(&t);
    return rc;
}

static bool known_unit(const char *u)
{
    return u && (strcmp(u, "DAY") == 0 || strcmp(u, "HOUR") == 0 || strcmp(u, "MONTH") == 0 ||
                 strcmp(u, "YEAR") == 0);
}

typedef struct key_list {
    bool has_null;
    int64_t *v;
    size_t n, cap;
} key_list;

/* The distinct keys of the staged rows, ascending (NULL apart). */
static int read_keys(key_list *k, sync_ctx *ctx, const table_job *t, const char *key_sql)
{
    int rc;
    mbq_buf sql = MBQ_BUF_INIT, id = MBQ_BUF_INIT;
    mbq_bq_job *job = NULL;
    mbq_bq_rows *rows = NULL;
    char trid[32], att[16];
    snprintf(trid, sizeof trid, "%" PRId64, t->run.id);
    snprintf(att, sizeof att, "%d", t->run.attempt);
    /* The current run's id: a new job per run reads the staging table as
     * it is now. */
    if ((rc = mbq_buf_printf(&sql, "SELECT DISTINCT %s AS k FROM ", key_sql)) < 0 ||
        (rc = mbq_bq_table_ref(&sql, ctx, t->run.staging_table)) < 0 ||
        (rc = mbq_buf_puts(&sql, " ORDER BY k")) < 0 ||
        (rc = mbq_bq_job_id(&id, "mbq_pkeys", ctx->run_id, trid, att, (const char *)NULL)) < 0 ||
        (rc = mbq_bq_query(&job, ctx->bq, id.ptr, sql.ptr, NULL)) < 0 ||
        (rc = mbq_bq_query_rows(&rows, ctx->bq, job, 10000)) < 0)
        goto done;
    while ((rc = mbq_bq_rows_next(rows)) == 1) {
        const char *v = mbq_bq_rows_value(rows, 0);
        if (!v) {
            k->has_null = true;
            continue;
        }
        if (k->n == k->cap) {
            size_t cap = k->cap ? k->cap * 2 : 256;
            int64_t *g = mbq_realloc(k->v, cap * sizeof *g);
            if (!g) {
                rc = MBQ_ENOMEM;
                goto done;
            }
            k->v = g;
            k->cap = cap;
        }
        char *end = NULL;
        k->v[k->n++] = strtoll(v, &end, 10);
        if (!end || *end) {
            rc = mbq_error_set(MBQ_EDATA, "table '%s': partition key '%s' is not an integer",
                               t->tc->name, v);
            goto done;
        }
    }
done:
    mbq_bq_rows_free(rows);
    mbq_bq_job_free(job);
    mbq_buf_free(&sql);
    mbq_buf_free(&id);
    return rc < 0 ? rc : 0;
}

void mbq_merge_ranges_free(mbq_merge_range *r, size_t n)
{
    for (size_t i = 0; r && i < n; i++) {
        free(r[i].cond);
        free(r[i].job_id);
    }
    free(r);
}

/* Range [v[a], v[b]] (with the NULL key when `with_null`) as a condition
 * on the staged row S and its job id. */
static int make_range(mbq_merge_range *r, const table_job *t, const char *key_s, int64_t lo,
                      int64_t hi, bool with_null, bool with_values)
{
    mbq_buf c = MBQ_BUF_INIT, id = MBQ_BUF_INIT;
    char trid[32], att[16], a[32], z[32];
    snprintf(trid, sizeof trid, "%" PRId64, t->run.id);
    snprintf(att, sizeof att, "%d", t->run.attempt);
    snprintf(a, sizeof a, "%s%" PRId64, with_null ? "null_" : "", lo);
    snprintf(z, sizeof z, "%" PRId64, hi);
    int rc = 0;
    if (with_null && with_values)
        rc = mbq_buf_printf(&c, "(%s IS NULL OR %s BETWEEN %" PRId64 " AND %" PRId64 ")", key_s,
                            key_s, lo, hi);
    else if (with_null)
        rc = mbq_buf_printf(&c, "%s IS NULL", key_s);
    else
        rc = mbq_buf_printf(&c, "%s BETWEEN %" PRId64 " AND %" PRId64, key_s, lo, hi);
    if (rc == 0)
        rc = mbq_bq_job_id(&id, "mbq_merge", t->run.run_id, trid, att, "r", a, z,
                           (const char *)NULL);
    if (rc == 0 && (!(r->cond = mbq_buf_detach(&c)) || !(r->job_id = mbq_buf_detach(&id))))
        rc = MBQ_ENOMEM;
    mbq_buf_free(&c);
    mbq_buf_free(&id);
    return rc;
}

int mbq_merge_ranges(mbq_merge_range **out, size_t *n_out, sync_ctx *ctx, const table_job *t)
{
    int rc = 0;
    mbq_bq_table_info *info = NULL;
    mbq_buf col = MBQ_BUF_INIT, key = MBQ_BUF_INIT, key_s = MBQ_BUF_INIT;
    key_list k = {0};
    mbq_merge_range *r = NULL;
    size_t nr = 0;
    const size_t max = (size_t)ctx->cfg->bigquery.max_partitions_per_job;
    *out = NULL;
    *n_out = 0;

    if ((rc = mbq_bq_table_get(&info, ctx->bq, ctx->cfg->bigquery.dataset, t->tc->target)) < 0)
        goto done;
    /* Ingestion-time partitioning (no field) puts new rows in one
     * partition; integer ranges are not read here: the MERGE runs whole. */
    const mbq_bq_field *f = info->partition_field
                                ? mbq_bq_schema_find(info->schema, info->partition_field)
                                : NULL;
    if (!f || !known_unit(info->partition_type))
        goto done;
    /* key: of the staging table's column; key_s: of the MERGE's S row. */
    if ((rc = mbq_buf_quote_bq_ident(&col, f->name)) < 0 ||
        (rc = put_key(&key, f->type, info->partition_type, col.ptr)) < 0 ||
        (rc = buf_prefix(&col, "S.")) < 0 ||
        (rc = put_key(&key_s, f->type, info->partition_type, col.ptr)) < 0) {
        if (rc == MBQ_ENOTFOUND)
            rc = 0;
        goto done;
    }
    if ((rc = read_keys(&k, ctx, t, key.ptr)) < 0)
        goto done;
    size_t total = k.n + (k.has_null ? 1 : 0);
    if (total <= max)
        goto done; /* one MERGE */
    size_t want = (total + max - 1) / max;
    if (!(r = calloc(want, sizeof *r))) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    /* The NULL key (the __NULL__ partition) counts as one in the first
     * range. */
    size_t i = 0;
    bool null_left = k.has_null;
    while (i < k.n || null_left) {
        size_t room = max - (null_left ? 1 : 0);
        size_t take = k.n - i < room ? k.n - i : room;
        if ((rc = make_range(&r[nr], t, key_s.ptr, take ? k.v[i] : 0,
                             take ? k.v[i + take - 1] : 0, null_left, take > 0)) < 0)
            goto done;
        nr++;
        i += take;
        null_left = false;
    }
    mbq_log(MBQ_LOG_INFO, t->tc->name, "merge",
            "the staged rows fall in %zu partitions of '%s': MERGE in %zu ranges of at most %zu",
            total, t->tc->target, nr, max);
    for (size_t j = 0; j < nr; j++)
        mbq_log(MBQ_LOG_DEBUG, t->tc->name, "merge", "range %zu: %s", j + 1, r[j].cond);
    *out = r;
    *n_out = nr;
    r = NULL;
    nr = 0;
done:
    mbq_merge_ranges_free(r, nr);
    mbq_bq_table_info_free(info);
    free(k.v);
    mbq_buf_free(&col);
    mbq_buf_free(&key);
    mbq_buf_free(&key_s);
    return rc;
}
