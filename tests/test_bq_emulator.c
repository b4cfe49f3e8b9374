/* The BigQuery client against goccy/bigquery-emulator (label bigquery,
 * SERVICES): dataset and table lifecycle, add columns by patch, query results
 * over several pages, a multipart and a resumable load read back row by row,
 * and a re-submitted job id that loads nothing twice. Each run works in its
 * own dataset (mbq_bqtest_<pid>_<random>), dropped at the end. */
#include <unistd.h>

#include "mbq/bq.h"
#include "mbq/buf.h"
#include "mbq/error.h"
#include "mbq/util.h"
#include "test.h"

static mbq_bq *bq;
static char dataset[64];
static char tmpdir[] = "/tmp/mbq_bqtest_XXXXXX";

/* Job ids live on in the emulator after the dataset is gone: make them
 * unique per run. Returns a static buffer (one test at a time). */
static const char *jid(const char *name)
{
    static char ids[8][128];
    static int next;
    char *b = ids[next++ % 8];
    snprintf(b, 128, "%s_%s", dataset, name);
    return b;
}

static mbq_bq_schema *row_schema(void)
{
    mbq_bq_schema *s = NULL;
    if (mbq_bq_schema_new(&s) < 0)
        return NULL;
    mbq_bq_schema_add(s, "id", "INT64", MBQ_BQ_REQUIRED, NULL);
    mbq_bq_schema_add(s, "name", "STRING", MBQ_BQ_NULLABLE, NULL);
    mbq_bq_schema_add(s, "amount", "NUMERIC", MBQ_BQ_NULLABLE, NULL);
    return s;
}

/* Writes n rows; the name is padded to make the file `pad` bytes per row
 * larger. Returns the file size. */
static long write_ndjson(const char *path, int n, int pad)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    for (int i = 1; i <= n; i++) {
        if (i % 10 == 0)
            fprintf(f, "{\"id\":%d,\"name\":null,\"amount\":\"%d.25\"}\n", i, i);
        else
            fprintf(f, "{\"id\":%d,\"name\":\"row %d %0*d\",\"amount\":\"%d.25\"}\n", i, i, pad, i,
                    i);
    }
    long size = ftell(f);
    fclose(f);
    return size;
}

/* Reads dataset.table ordered by id and compares each row with what
 * write_ndjson wrote. */
static void check_rows(const char *table, const char *job_id, int n, int pad)
{
    mbq_buf sql = MBQ_BUF_INIT, want = MBQ_BUF_INIT, amount = MBQ_BUF_INIT;
    mbq_bq_job *job = NULL;
    mbq_bq_rows *rows = NULL;
    mbq_buf_printf(&sql, "SELECT id, name, amount FROM `%s.%s` ORDER BY id", dataset, table);
    int rc = mbq_bq_query(&job, bq, job_id, sql.ptr, NULL);
    CHECK_INT(rc, 0);
    if (rc < 0) {
        fprintf(stderr, "  %s\n", mbq_error_last());
        goto done;
    }
    CHECK_INT(mbq_bq_query_rows(&rows, bq, job, 5000), 0);
    int i = 0, bad = 0;
    while ((rc = mbq_bq_rows_next(rows)) == 1) {
        i++;
        mbq_buf_clear(&want);
        mbq_buf_clear(&amount);
        char id[32];
        snprintf(id, sizeof id, "%d", i);
        mbq_buf_printf(&amount, "%d.25", i);
        if (i % 10 != 0)
            mbq_buf_printf(&want, "row %d %0*d", i, pad, i);
        const char *name = mbq_bq_rows_value(rows, 1);
        if (!mbq_streq(mbq_bq_rows_value(rows, 0), id) ||
            !mbq_streq(mbq_bq_rows_value(rows, 2), amount.ptr) ||
            (i % 10 == 0 ? name != NULL : !mbq_streq(name, want.ptr))) {
            if (bad++ < 3)
                fprintf(stderr, "  row %d differs: %s %s %s\n", i, mbq_bq_rows_value(rows, 0),
                        name ? name : "NULL", mbq_bq_rows_value(rows, 2));
        }
    }
    CHECK_INT(rc, 0);
    CHECK_INT(i, n);
    CHECK_INT(bad, 0);
    CHECK_STR(mbq_bq_rows_name(rows, 1), "name");
done:
    mbq_bq_rows_free(rows);
    mbq_bq_job_free(job);
    mbq_buf_free(&sql);
    mbq_buf_free(&want);
    mbq_buf_free(&amount);
}

static long long count_rows(const char *table, const char *job_id)
{
    mbq_buf sql = MBQ_BUF_INIT;
    char *v = NULL;
    long long n = -1;
    mbq_buf_printf(&sql, "SELECT COUNT(*) FROM `%s.%s`", dataset, table);
    if (mbq_bq_query_scalar(&v, bq, job_id, sql.ptr) == 0 && v)
        n = atoll(v);
    else
        fprintf(stderr, "  count: %s\n", mbq_error_last());
    free(v);
    mbq_buf_free(&sql);
    return n;
}

static void test_dataset_lifecycle(void)
{
    mbq_buf loc = MBQ_BUF_INIT;
    CHECK_INT(mbq_bq_dataset_get(bq, NULL, dataset), MBQ_ENOTFOUND);
    CHECK_INT(mbq_bq_dataset_ensure(bq, dataset, "US"), 0);
    /* The emulator answers a duplicate create with 500: ensure looks up. */
    CHECK_INT(mbq_bq_dataset_ensure(bq, dataset, "US"), 0);
    CHECK_INT(mbq_bq_dataset_get(bq, &loc, dataset), 0);
    CHECK_STR(loc.ptr, "US");
    mbq_buf_free(&loc);
}

static void test_table_lifecycle(void)
{
    static const char *const types[] = {"STRING", "INTEGER", "NUMERIC", "BIGNUMERIC", "FLOAT",
                                        "BOOLEAN", "BYTES", "DATE", "DATETIME", "TIME",
                                        "TIMESTAMP", "JSON", "GEOGRAPHY"};
    static const char *const std[] = {"STRING", "INT64", "NUMERIC", "BIGNUMERIC", "FLOAT64",
                                      "BOOL", "BYTES", "DATE", "DATETIME", "TIME",
                                      "TIMESTAMP", "JSON", "GEOGRAPHY"};
    mbq_bq_schema *s = NULL;
    mbq_bq_table_info *info = NULL;
    mbq_bq_schema_new(&s);
    for (size_t i = 0; i < 13; i++) {
        char name[16];
        snprintf(name, sizeof name, "c%zu", i);
        CHECK_INT(mbq_bq_schema_add(s, name, types[i], i == 0 ? MBQ_BQ_REQUIRED : MBQ_BQ_NULLABLE,
                                    i == 1 ? "an integer" : NULL),
                  0);
    }
    const char *cluster[] = {"c0", "c1"};
    mbq_bq_table_options topts = MBQ_BQ_TABLE_OPTIONS_INIT;
    topts.expiration_ms = 3600 * 1000;
    topts.partition_type = "DAY";
    topts.partition_field = "c7";
    topts.clustering = cluster;
    topts.n_clustering = 2;
    CHECK_INT(mbq_bq_table_get(&info, bq, dataset, "lifecycle"), MBQ_ENOTFOUND);
    int64_t before = mbq_now_ms();
    int rc = mbq_bq_table_create(bq, dataset, "lifecycle", s, &topts);
    CHECK_INT(rc, 0);
    if (rc)
        fprintf(stderr, "  %s\n", mbq_error_last());
    CHECK_INT(mbq_bq_table_create(bq, dataset, "lifecycle", s, &topts), MBQ_EEXISTS);
    CHECK_INT(mbq_bq_table_get(&info, bq, dataset, "lifecycle"), 0);
    if (info) {
        CHECK_INT(info->schema->n_fields, 13);
        for (size_t i = 0; i < 13 && i < info->schema->n_fields; i++)
            CHECK_STR(info->schema->fields[i].type, std[i]);
        CHECK_INT(info->schema->fields[0].mode, MBQ_BQ_REQUIRED);
        CHECK_STR(info->schema->fields[1].description, "an integer");
        CHECK_STR(info->partition_type, "DAY");
        CHECK_STR(info->partition_field, "c7");
        CHECK_INT(info->n_clustering, 2);
        CHECK(info->expiration_ms >= before + 3600 * 1000 - 1000 &&
              info->expiration_ms <= mbq_now_ms() + 3600 * 1000 + 1000);
    }
    mbq_bq_table_info_free(info);
    info = NULL;
    CHECK_INT(mbq_bq_table_delete(bq, dataset, "lifecycle"), 0);
    CHECK_INT(mbq_bq_table_get(&info, bq, dataset, "lifecycle"), MBQ_ENOTFOUND);
    CHECK_CONTAINS(mbq_error_last(), "(HTTP 404)");
    CHECK_INT(mbq_bq_table_delete(bq, dataset, "lifecycle"), 0); /* gone already: ok */
    mbq_bq_schema_free(s);
}

static void test_add_columns_by_patch(void)
{
    mbq_bq_schema *s = row_schema(), *add = NULL;
    mbq_bq_table_info *info = NULL;
    size_t added = 99;
    CHECK_INT(mbq_bq_table_create(bq, dataset, "addcols", s, NULL), 0);
    mbq_bq_schema_new(&add);
    mbq_bq_schema_add(add, "id", "INT64", MBQ_BQ_REQUIRED, NULL); /* exists: skipped */
    mbq_bq_schema_add(add, "note", "STRING", MBQ_BQ_REQUIRED, "new");
    mbq_bq_schema_add(add, "seen_at", "TIMESTAMP", MBQ_BQ_NULLABLE, NULL);
    int rc = mbq_bq_table_add_columns(bq, &added, dataset, "addcols", add);
    CHECK_INT(rc, 0);
    if (rc)
        fprintf(stderr, "  %s\n", mbq_error_last());
    CHECK_INT(added, 2);
    CHECK_INT(mbq_bq_table_get(&info, bq, dataset, "addcols"), 0);
    if (info) {
        CHECK_INT(info->schema->n_fields, 5);
        const mbq_bq_field *f = mbq_bq_schema_find(info->schema, "note");
        CHECK(f && f->mode == MBQ_BQ_NULLABLE && strcmp(f->type, "STRING") == 0);
        f = mbq_bq_schema_find(info->schema, "seen_at");
        CHECK(f && strcmp(f->type, "TIMESTAMP") == 0);
        CHECK_INT(mbq_bq_schema_find(info->schema, "id")->mode, MBQ_BQ_REQUIRED);
    }
    mbq_bq_table_info_free(info);
    info = NULL;
    /* Idempotent: a second call finds nothing missing. */
    CHECK_INT(mbq_bq_table_add_columns(bq, &added, dataset, "addcols", add), 0);
    CHECK_INT(added, 0);
    CHECK_INT(mbq_bq_table_get(&info, bq, dataset, "addcols"), 0);
    if (info)
        CHECK_INT(info->schema->n_fields, 5);
    mbq_bq_table_info_free(info);
    /* A column that exists with another type is a schema error. */
    mbq_bq_schema *clash = NULL;
    mbq_bq_schema_new(&clash);
    mbq_bq_schema_add(clash, "name", "INT64", MBQ_BQ_NULLABLE, NULL);
    CHECK_INT(mbq_bq_table_add_columns(bq, NULL, dataset, "addcols", clash), MBQ_ESCHEMA);
    CHECK_CONTAINS(mbq_error_last(), "'name'");
    CHECK_INT(mbq_bq_table_add_columns(bq, NULL, dataset, "nosuch", add), MBQ_ENOTFOUND);
    mbq_bq_schema_free(clash);
    mbq_bq_schema_free(add);
    mbq_bq_schema_free(s);
}

static void test_query_results_over_pages(void)
{
    mbq_bq_schema *s = row_schema();
    mbq_bq_job *job = NULL;
    mbq_bq_rows *rows = NULL;
    mbq_buf sql = MBQ_BUF_INIT;
    CHECK_INT(mbq_bq_table_create(bq, dataset, "paged", s, NULL), 0);
    mbq_buf_printf(&sql,
                   "INSERT INTO `%s.paged` (id, name, amount) SELECT n, IF(MOD(n, 10) = 0, NULL, "
                   "CONCAT('row ', CAST(n AS STRING))), CAST(n AS NUMERIC) + 0.25 "
                   "FROM UNNEST(GENERATE_ARRAY(1, 250)) AS n",
                   dataset);
    int rc = mbq_bq_query(&job, bq, jid("mbq_test_paged_insert"), sql.ptr, NULL);
    CHECK_INT(rc, 0);
    if (rc)
        fprintf(stderr, "  %s\n", mbq_error_last());
    if (job) {
        CHECK_STR(job->state, "DONE");
        CHECK(!job->existed);
        /* The emulator reports no numDmlAffectedRows (-1 = absent); the
         * stand-in test proves the parsing, COUNT(*) the effect. */
        CHECK(job->dml_affected_rows == 250 || job->dml_affected_rows == -1);
    }
    mbq_bq_job_free(job);
    job = NULL;
    CHECK_INT(count_rows("paged", jid("mbq_test_paged_count")), 250);
    mbq_buf_clear(&sql);
    mbq_buf_printf(&sql, "SELECT id, name, amount FROM `%s.paged` ORDER BY id", dataset);
    CHECK_INT(mbq_bq_query(&job, bq, jid("mbq_test_paged_select"), sql.ptr, NULL), 0);
    if (!job)
        goto done;
    CHECK_INT(mbq_bq_query_rows(&rows, bq, job, 100), 0);
    int n = 0;
    while ((rc = mbq_bq_rows_next(rows)) == 1) {
        n++;
        char id[16];
        snprintf(id, sizeof id, "%d", n);
        CHECK_STR(mbq_bq_rows_value(rows, 0), id);
        if (n % 10 == 0)
            CHECK(mbq_bq_rows_value(rows, 1) == NULL);
    }
    CHECK_INT(rc, 0);
    CHECK_INT(n, 250);
    CHECK_INT(mbq_bq_rows_pages(rows), 3); /* 100 + 100 + 50 */
    CHECK_INT(mbq_bq_rows_total(rows), 250);
    CHECK_INT(mbq_bq_rows_ncols(rows), 3);
    CHECK_STR(mbq_bq_rows_name(rows, 2), "amount");
done:
    mbq_bq_rows_free(rows);
    mbq_bq_job_free(job);
    mbq_buf_free(&sql);
    mbq_bq_schema_free(s);
}

static void test_failed_query_names_job(void)
{
    mbq_bq_job *job = NULL;
    mbq_buf sql = MBQ_BUF_INIT;
    mbq_buf_printf(&sql, "SELECT * FROM `%s.no_such_table`", dataset);
    int rc = mbq_bq_query(&job, bq, jid("mbq_test_bad_query"), sql.ptr, NULL);
    CHECK_INT(rc, MBQ_EBQ);
    CHECK(job == NULL);
    CHECK_CONTAINS(mbq_error_last(), "_mbq_test_bad_query' failed: ");
    CHECK_CONTAINS(mbq_error_last(), "no_such_table");
    mbq_buf_free(&sql);
}

static void test_multipart_load_read_back(void)
{
    mbq_buf path = MBQ_BUF_INIT;
    mbq_bq_schema *s = row_schema();
    mbq_bq_job *job = NULL;
    mbq_buf_printf(&path, "%s/small.ndjson", tmpdir);
    CHECK(write_ndjson(path.ptr, 500, 8) > 0);
    mbq_bq_load_options o = MBQ_BQ_LOAD_OPTIONS_INIT;
    o.dataset = dataset;
    o.table = "multipart";
    o.path = path.ptr;
    o.schema = s;
    o.write_disposition = MBQ_BQ_WRITE_TRUNCATE;
    int rc = mbq_bq_load_file(&job, bq, jid("mbq_test_load_multipart"), &o);
    CHECK_INT(rc, 0);
    if (rc)
        fprintf(stderr, "  %s\n", mbq_error_last());
    if (job) {
        CHECK_STR(job->state, "DONE");
        CHECK(!job->existed);
    }
    check_rows("multipart", jid("mbq_test_read_multipart"), 500, 8);
    mbq_bq_job_free(job);
    mbq_bq_schema_free(s);
    mbq_buf_free(&path);
}

static void test_resumable_load_read_back_and_resubmit(void)
{
    mbq_buf path = MBQ_BUF_INIT;
    mbq_bq_schema *s = row_schema();
    mbq_bq_job *job = NULL;
    mbq_buf_printf(&path, "%s/large.ndjson", tmpdir);
    long size = write_ndjson(path.ptr, 30000, 100); /* ~4.5 MiB */
    CHECK(size > 4 * 1024 * 1024);
    mbq_bq_load_options o = MBQ_BQ_LOAD_OPTIONS_INIT;
    o.dataset = dataset;
    o.table = "resumable";
    o.path = path.ptr;
    o.schema = s;
    unsigned before = mbq_bq_request_count(bq);
    int rc = mbq_bq_load_file(&job, bq, jid("mbq_test_load_resumable"), &o);
    CHECK_INT(rc, 0);
    if (rc)
        fprintf(stderr, "  %s\n", mbq_error_last());
    /* jobs.get (404), POST session, one PUT of the whole file: the emulator
     * takes only one PUT, hence upload_chunk_bytes = 0. */
    CHECK_INT(mbq_bq_request_count(bq) - before, 3);
    if (job)
        CHECK(!job->existed);
    mbq_bq_job_free(job);
    job = NULL;
    check_rows("resumable", jid("mbq_test_read_resumable"), 30000, 100);

    /* The same job id again (a resumed run): the job is found, nothing is
     * uploaded, nothing is loaded twice. */
    before = mbq_bq_request_count(bq);
    rc = mbq_bq_load_file(&job, bq, jid("mbq_test_load_resumable"), &o);
    CHECK_INT(rc, 0);
    CHECK(job && job->existed);
    CHECK_INT(mbq_bq_request_count(bq) - before, 2); /* jobs.get + the wait's jobs.get */
    mbq_bq_job_free(job);
    job = NULL;
    CHECK_INT(count_rows("resumable", jid("mbq_test_count_resumable")), 30000);

    /* A re-submitted query job id is not run again either. */
    mbq_buf sql = MBQ_BUF_INIT;
    mbq_buf_printf(&sql, "INSERT INTO `%s.resumable` (id) VALUES (-1)", dataset);
    CHECK_INT(mbq_bq_query(&job, bq, jid("mbq_test_insert_once"), sql.ptr, NULL), 0);
    mbq_bq_job_free(job);
    job = NULL;
    CHECK_INT(mbq_bq_query(&job, bq, jid("mbq_test_insert_once"), sql.ptr, NULL), 0);
    CHECK(job && job->existed);
    mbq_bq_job_free(job);
    CHECK_INT(count_rows("resumable", jid("mbq_test_count_resumable2")), 30001);
    mbq_buf_free(&sql);
    mbq_bq_schema_free(s);
    mbq_buf_free(&path);
}

static void test_bad_row_is_refused_with_job_id(void)
{
    mbq_buf path = MBQ_BUF_INIT;
    mbq_bq_schema *s = row_schema();
    mbq_bq_job *job = NULL;
    mbq_buf_printf(&path, "%s/bad.ndjson", tmpdir);
    FILE *f = fopen(path.ptr, "w");
    if (f) {
        fputs("{\"id\":\"abc\",\"name\":\"x\"}\n", f);
        fclose(f);
    }
    mbq_bq_load_options o = MBQ_BQ_LOAD_OPTIONS_INIT;
    o.dataset = dataset;
    o.table = "badrow";
    o.path = path.ptr;
    o.schema = s;
    int rc = mbq_bq_load_file(&job, bq, jid("mbq_test_load_bad"), &o);
    CHECK(rc < 0);
    CHECK_CONTAINS(mbq_error_last(), "_mbq_test_load_bad' failed");
    mbq_bq_schema_free(s);
    mbq_buf_free(&path);
}

int main(void)
{
    test_require_env("BIGQUERY_EMULATOR_HOST");
    const char *project = getenv("MBQ_TEST_BQ_PROJECT");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(dataset, sizeof dataset, "mbq_bqtest_%d_%04x", (int)getpid(),
             (unsigned)(mbq_random_u64() & 0xffff));
    mbq_bq_options o;
    mbq_bq_options_init(&o);
    o.project = project && *project ? project : "mbq-test";
    o.upload_chunk_bytes = 0;           /* the emulator takes one PUT only */
    o.multipart_max_bytes = 1024 * 1024; /* the 4.5 MiB file goes resumable */
    o.max_retries = 2;
    o.retry_initial_ms = 100;
    o.retry_max_elapsed_ms = 5000;
    o.poll_initial_ms = 50;
    if (mbq_bq_new(&bq, &o) < 0) {
        fprintf(stderr, "mbq_bq_new: %s\n", mbq_error_last());
        return 1;
    }
    CHECK(!mbq_bq_uses_auth(bq));
    RUN(test_dataset_lifecycle);
    RUN(test_table_lifecycle);
    RUN(test_add_columns_by_patch);
    RUN(test_query_results_over_pages);
    RUN(test_failed_query_names_job);
    RUN(test_multipart_load_read_back);
    RUN(test_resumable_load_read_back_and_resubmit);
    RUN(test_bad_row_is_refused_with_job_id);
    mbq_bq_dataset_delete(bq, dataset, true);
    mbq_bq_free(bq);
    test_remove_tree(tmpdir);
    return test_summary();
}
