/* The BigQuery client against tests/standins/bq_standin.py, a local server
 * that answers as BigQuery's and Google's token endpoint's documentation says
 * where the emulator does not (EMULATOR.md): a 409 duplicate job looked up, a
 * chunked resumable upload with 308 + Range and a dropped connection resumed
 * by asking "bytes * / total", a job that fails later, 503-then-200 retries,
 * a gzip file uploaded as-is, and the service-account token exchange (RS256
 * verified by the stand-in with the public key; reuse, expiry, 401). */
#include <json-c/json.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "mbq/bq.h"
#include "mbq/bq_auth.h"
#include "mbq/error.h"
#include "mbq/http.h"
#include "mbq/log.h"
#include "mbq/util.h"
#include "test.h"
#include "test_standin.h"

static char tmpdir[] = "/tmp/mbq_bqstandin_XXXXXX";
static char endpoint[64];
static char key_json[300];
static pid_t standin_pid;
static mbq_http *ctl_http;

static int sh(const char *fmt, const char *a, const char *b)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, fmt, a, b);
    return system(cmd);
}

static void control(const char *json) { test_standin_control(ctl_http, endpoint, json); }

/* The stand-in's counters; the caller puts the result. */
static json_object *standin_state(void)
{
    mbq_buf url = MBQ_BUF_INIT;
    mbq_http_response resp = MBQ_HTTP_RESPONSE_INIT;
    mbq_buf_printf(&url, "%s/_state", endpoint);
    mbq_http_request req = {"GET", url.ptr, NULL, NULL};
    json_object *o = NULL;
    if (mbq_http_do(ctl_http, &resp, &req) == 0)
        o = json_tokener_parse(mbq_buf_cstr(&resp.body));
    mbq_http_response_free(&resp);
    mbq_buf_free(&url);
    return o;
}

static int64_t state_int(const char *key)
{
    json_object *o = standin_state();
    int64_t v = json_object_get_int64(json_object_object_get(o, key));
    json_object_put(o);
    return v;
}

static mbq_bq *client(mbq_bq_auth_mode auth, int64_t chunk, int64_t multipart_max)
{
    mbq_bq *bq = NULL;
    mbq_bq_options o;
    mbq_bq_options_init(&o);
    o.project = "standin";
    o.endpoint = endpoint;
    o.auth = auth;
    o.credentials = key_json;
    o.upload_chunk_bytes = chunk;
    o.multipart_max_bytes = multipart_max;
    o.max_retries = 3;
    o.retry_initial_ms = 20;
    o.retry_max_delay_ms = 100;
    o.retry_max_elapsed_ms = 5000;
    o.poll_initial_ms = 10;
    if (mbq_bq_new(&bq, &o) < 0)
        fprintf(stderr, "  mbq_bq_new: %s\n", mbq_error_last());
    return bq;
}

static mbq_bq_schema *schema1(void)
{
    mbq_bq_schema *s = NULL;
    mbq_bq_schema_new(&s);
    mbq_bq_schema_add(s, "n", "INT64", MBQ_BQ_NULLABLE, NULL);
    mbq_bq_schema_add(s, "s", "STRING", MBQ_BQ_NULLABLE, NULL);
    return s;
}

static bool files_equal(const char *a, const char *b)
{
    mbq_buf x = MBQ_BUF_INIT, y = MBQ_BUF_INIT;
    bool eq = mbq_file_read_all(&x, a) == 0 && mbq_file_read_all(&y, b) == 0 && x.len == y.len &&
              memcmp(mbq_buf_cstr(&x), mbq_buf_cstr(&y), x.len) == 0;
    mbq_buf_free(&x);
    mbq_buf_free(&y);
    return eq;
}

static void test_standin_duplicate_job_409_is_looked_up(void)
{
    mbq_bq *bq = client(MBQ_BQ_AUTH_NONE, 0, 1 << 20);
    mbq_bq_job *job = NULL;
    control("{\"fail_next\": [], \"insert_done\": true}");
    CHECK_INT(mbq_bq_query(&job, bq, "dup_job", "INSERT INTO d.t VALUES (1)", NULL), 0);
    mbq_bq_job_free(job);
    job = NULL;
    /* The same id again while the lookup misses it (the answer to an
     * earlier insert was lost, or a concurrent run submitted it): BigQuery
     * answers 409 duplicate, which means "look it up", never an error. */
    control("{\"fail_next\": [404]}");
    int rc = mbq_bq_query(&job, bq, "dup_job", "INSERT INTO d.t VALUES (1)", NULL);
    CHECK_INT(rc, 0);
    CHECK(job && job->existed);
    if (job) {
        CHECK_STR(job->state, "DONE");
        CHECK_INT(job->dml_affected_rows, 3);
        CHECK_INT(job->dml_inserted, 3);
    }
    json_object *st = standin_state();
    CHECK_INT(json_object_get_int64(json_object_object_get(st, "inserts")), 2); /* 2nd: 409 */
    if (json_object_get_int64(json_object_object_get(st, "inserts")) != 2)
        fprintf(stderr, "  state: %s\n", json_object_to_json_string(st));
    json_object_put(st);
    mbq_bq_job_free(job);
    mbq_bq_free(bq);
}

/* The job is created but the answer to jobs.insert is cut where the
 * connection's close ends it (no Content-Length): curl reports success with
 * half a Job resource. mbq must look the job up by its id, not fail the
 * table while the job runs, and never submit it again. */
static void test_standin_unreadable_insert_answer_is_looked_up(void)
{
    mbq_bq *bq = client(MBQ_BQ_AUTH_NONE, 0, 1 << 20);
    mbq_bq_job *job = NULL;
    control("{\"fail_next\": [], \"insert_done\": true, \"cut_insert_answer\": 1}");
    int64_t inserts = state_int("inserts"), gets = state_int("jobs_get");
    int64_t cuts = state_int("cut_answers");
    CHECK_INT(mbq_bq_query(&job, bq, "cut_answer_job", "MERGE d.t AS T USING d.s AS S ON "
                                                       "T.id = S.id WHEN NOT MATCHED THEN "
                                                       "INSERT ROW", NULL), 0);
    CHECK(job && job->existed);
    if (job)
        CHECK_STR(job->state, "DONE");
    CHECK_INT(state_int("inserts") - inserts, 1); /* submitted once */
    CHECK(state_int("jobs_get") - gets >= 2);     /* the lookup before, the wait after */
    CHECK_INT(state_int("cut_answers") - cuts, 1); /* the answer was cut */
    mbq_bq_job_free(job);
    mbq_bq_free(bq);
}

static void test_standin_chunked_resumable_upload_resumes_after_drop(void)
{
    mbq_bq *bq = client(MBQ_BQ_AUTH_NONE, 512 * 1024, 64 * 1024);
    mbq_bq_schema *s = schema1();
    mbq_bq_job *job = NULL;
    mbq_buf path = MBQ_BUF_INIT, got = MBQ_BUF_INIT;
    mbq_buf_printf(&path, "%s/big.ndjson", tmpdir);
    FILE *f = fopen(path.ptr, "w");
    int rows = 0;
    for (; f && ftell(f) < 1400 * 1024; rows++)
        fprintf(f, "{\"n\":%d,\"s\":\"%064d\"}\n", rows, rows);
    if (f)
        fclose(f);
    /* PUT 2 (bytes 512K-1M) is cut after half its body; the server keeps
     * 256 KiB of it, so the client must ask and resume mid-chunk at 768K. */
    control("{\"drop_put_at\": [2], \"puts\": []}");
    mbq_bq_load_options o = MBQ_BQ_LOAD_OPTIONS_INIT;
    o.dataset = "d";
    o.table = "t";
    o.path = path.ptr;
    o.schema = s;
    unsigned retries = mbq_bq_retry_count(bq);
    int rc = mbq_bq_load_file(&job, bq, "resumable_job", &o);
    CHECK_INT(rc, 0);
    if (rc)
        fprintf(stderr, "  %s\n", mbq_error_last());
    if (job)
        CHECK_INT(job->output_rows, rows);
    CHECK(mbq_bq_retry_count(bq) > retries);
    mbq_buf_printf(&got, "%s/upload_resumable_job.bin", tmpdir);
    CHECK(files_equal(path.ptr, got.ptr));
    json_object *st = standin_state();
    json_object *puts = json_object_object_get(st, "puts");
    size_t n = json_object_array_length(puts);
    long size = 0;
    FILE *sf = fopen(path.ptr, "r");
    if (sf) {
        fseek(sf, 0, SEEK_END);
        size = ftell(sf);
        fclose(sf);
    }
    char ask[64], resume[64];
    snprintf(ask, sizeof ask, "bytes */%ld", size);
    snprintf(resume, sizeof resume, "bytes %d-%d/*", 768 * 1024, 1280 * 1024 - 1);
    bool saw_ask = false, saw_resume = false;
    for (size_t i = 0; i < n; i++) {
        const char *cr = json_object_get_string(json_object_array_get_idx(puts, i));
        saw_ask = saw_ask || strcmp(cr, ask) == 0;
        saw_resume = saw_resume || strcmp(cr, resume) == 0;
    }
    CHECK(saw_ask);
    CHECK(saw_resume);
    CHECK_INT(n, 5); /* 0-512K, (dropped), ask, 768K-1280K, 1280K-end */
    json_object_put(st);
    mbq_bq_job_free(job);
    mbq_bq_schema_free(s);
    mbq_buf_free(&path);
    mbq_buf_free(&got);
    mbq_bq_free(bq);
}

static void test_standin_job_failing_later_reports_error_result(void)
{
    mbq_bq *bq = client(MBQ_BQ_AUTH_NONE, 0, 1 << 20);
    mbq_bq_job *job = NULL;
    control("{\"fail_later\": [\"late_fail\"]}");
    int rc = mbq_bq_query(&job, bq, "late_fail", "SELECT CAST('abc' AS INT64)", NULL);
    CHECK_INT(rc, MBQ_EBQ);
    CHECK(job == NULL);
    CHECK_STR(mbq_error_last(),
              "bigquery: job 'late_fail' failed: invalid: Could not parse 'abc' as INT64 for "
              "field n");
    /* jobs.get still gives the failed job, with 0. */
    CHECK_INT(mbq_bq_job_get(&job, bq, "late_fail", NULL), 0);
    if (job)
        CHECK_STR(job->error_reason, "invalid");
    mbq_bq_job_free(job);
    mbq_bq_free(bq);
}

static void test_standin_503_then_200_is_retried(void)
{
    mbq_bq *bq = client(MBQ_BQ_AUTH_NONE, 0, 1 << 20);
    control("{\"fail_next\": [503, 429]}");
    CHECK_INT(mbq_bq_dataset_get(bq, NULL, "d"), 0);
    CHECK_INT(mbq_bq_retry_count(bq), 2);
    /* Bounded: more failures than max_retries give the last error. */
    control("{\"fail_next\": [503, 503, 503, 503, 503]}");
    CHECK_INT(mbq_bq_dataset_get(bq, NULL, "d"), MBQ_EBQ);
    CHECK_STR(mbq_error_last(), "bigquery: dataset 'd': backendError: Backend error, try again "
                                "(HTTP 503)");
    control("{\"fail_next\": []}");
    mbq_bq_free(bq);
    /* A refused connection is retried, then reported. */
    mbq_bq_options o;
    mbq_bq_options_init(&o);
    o.project = "p";
    o.endpoint = "http://127.0.0.1:1";
    o.max_retries = 2;
    o.retry_initial_ms = 10;
    CHECK_INT(mbq_bq_new(&bq, &o), 0);
    CHECK_INT(mbq_bq_dataset_get(bq, NULL, "d"), MBQ_ENET);
    CHECK_INT(mbq_bq_retry_count(bq), 2);
    mbq_bq_free(bq);
}

static void test_standin_gzip_file_uploaded_as_is(void)
{
    mbq_bq *bq = client(MBQ_BQ_AUTH_NONE, 0, 1 << 20);
    mbq_bq_schema *s = schema1();
    mbq_bq_job *job = NULL;
    mbq_buf path = MBQ_BUF_INIT, got = MBQ_BUF_INIT;
    mbq_buf_printf(&path, "%s/rows.ndjson.gz", tmpdir);
    gzFile gz = gzopen(path.ptr, "wb");
    for (int i = 0; gz && i < 1000; i++)
        gzprintf(gz, "{\"n\":%d,\"s\":\"x\"}\n", i);
    if (gz)
        gzclose(gz);
    mbq_bq_load_options o = MBQ_BQ_LOAD_OPTIONS_INIT;
    o.dataset = "d";
    o.table = "t";
    o.path = path.ptr;
    o.schema = s;
    o.write_disposition = MBQ_BQ_WRITE_TRUNCATE;
    CHECK_INT(mbq_bq_load_file(&job, bq, "gzip_job", &o), 0);
    mbq_buf_printf(&got, "%s/upload_gzip_job.bin", tmpdir);
    CHECK(files_equal(path.ptr, got.ptr));
    json_object *st = standin_state();
    json_object *ct = json_object_object_get(st, "upload_content_types");
    CHECK_STR(json_object_get_string(json_object_array_get_idx(ct, 0)), "multipart/related");
    json_object_put(st);
    mbq_bq_job_free(job);
    mbq_bq_schema_free(s);
    mbq_buf_free(&path);
    mbq_buf_free(&got);
    mbq_bq_free(bq);
}

/* The job resource the stand-in holds for `job_id` (as jobs.get returns
 * it); the caller puts the result. */
static json_object *standin_job(const char *job_id)
{
    mbq_buf url = MBQ_BUF_INIT;
    mbq_http_response resp = MBQ_HTTP_RESPONSE_INIT;
    mbq_buf_printf(&url, "%s/bigquery/v2/projects/standin/jobs/%s", endpoint, job_id);
    mbq_http_request req = {"GET", url.ptr, NULL, NULL};
    json_object *o = NULL;
    if (mbq_http_do(ctl_http, &resp, &req) == 0 && resp.status == 200)
        o = json_tokener_parse(mbq_buf_cstr(&resp.body));
    mbq_http_response_free(&resp);
    mbq_buf_free(&url);
    return o;
}

static const char *jpath(json_object *o, const char *a, const char *b, const char *c)
{
    json_object *v = o;
    const char *keys[] = {a, b, c};
    for (int i = 0; i < 3 && v && keys[i]; i++)
        v = json_object_object_get(v, keys[i]);
    return v ? json_object_get_string(v) : "(missing)";
}

/* A load that had to go in parts replaces the target with one copy job
 * (JobConfigurationTableCopy): the staging table over the target with
 * WRITE_TRUNCATE (atomic for readers) and CREATE_NEVER (a vanished target
 * is never recreated by it); submitted again under the same id it is
 * looked up (409), not run twice. */
static void test_standin_copy_job_replaces_target_once(void)
{
    mbq_bq *bq = client(MBQ_BQ_AUTH_NONE, 0, 1 << 20);
    mbq_bq_job *job = NULL;
    control("{\"fail_next\": [], \"insert_done\": true}");
    int64_t inserts = state_int("inserts");
    CHECK_INT(mbq_bq_copy_table(&job, bq, "copy_job_1", "ds", "t__mbq_stage_7_1", "t", MBQ_BQ_WRITE_TRUNCATE), 0);
    CHECK(job && !job->existed && strcmp(job->state, "DONE") == 0);
    mbq_bq_job_free(job);
    job = NULL;
    json_object *j = standin_job("copy_job_1");
    CHECK(j != NULL);
    if (j) {
        json_object *copy = json_object_object_get(json_object_object_get(j, "configuration"),
                                                   "copy");
        CHECK_STR(jpath(copy, "sourceTable", "tableId", NULL), "t__mbq_stage_7_1");
        CHECK_STR(jpath(copy, "sourceTable", "datasetId", NULL), "ds");
        CHECK_STR(jpath(copy, "sourceTable", "projectId", NULL), "standin");
        CHECK_STR(jpath(copy, "destinationTable", "tableId", NULL), "t");
        CHECK_STR(jpath(copy, "writeDisposition", NULL, NULL), "WRITE_TRUNCATE");
        CHECK_STR(jpath(copy, "createDisposition", NULL, NULL), "CREATE_NEVER");
        json_object_put(j);
    }
    /* Again (a resumed run): found by the lookup, never submitted twice;
     * and when the lookup misses it, the 409 is looked up too. */
    CHECK_INT(mbq_bq_copy_table(&job, bq, "copy_job_1", "ds", "t__mbq_stage_7_1", "t", MBQ_BQ_WRITE_TRUNCATE), 0);
    CHECK(job && job->existed);
    mbq_bq_job_free(job);
    job = NULL;
    control("{\"fail_next\": [404]}");
    CHECK_INT(mbq_bq_copy_table(&job, bq, "copy_job_1", "ds", "t__mbq_stage_7_1", "t", MBQ_BQ_WRITE_TRUNCATE), 0);
    CHECK(job && job->existed);
    CHECK_INT(state_int("inserts") - inserts, 2); /* the first, and the one answered 409 */
    mbq_bq_job_free(job);
    mbq_bq_free(bq);
}

static void test_standin_token_exchange_reuse_expiry_and_401(void)
{
    control("{\"require_token\": true, \"expires_in\": 3600}");
    mbq_bq *bq = client(MBQ_BQ_AUTH_SERVICE_ACCOUNT, 0, 1 << 20);
    CHECK(bq && mbq_bq_uses_auth(bq));
    if (!bq)
        return;
    int64_t t0 = state_int("tokens");
    int rc = mbq_bq_dataset_get(bq, NULL, "d");
    CHECK_INT(rc, 0);
    if (rc)
        fprintf(stderr, "  %s\n", mbq_error_last());
    CHECK_INT(mbq_bq_dataset_get(bq, NULL, "d"), 0);
    CHECK_INT(state_int("tokens") - t0, 1); /* reused for the second request */
    json_object *st = standin_state();
    CHECK_INT(json_object_array_length(json_object_object_get(st, "token_errors")), 0);
    json_object_put(st);

    /* A 401 from BigQuery: one refresh, then the request succeeds. */
    control("{\"unauthorized_next\": 1}");
    CHECK_INT(mbq_bq_dataset_get(bq, NULL, "d"), 0);
    CHECK_INT(state_int("tokens") - t0, 2);
    /* 401 again after the refresh: an auth error, no refresh loop. */
    control("{\"unauthorized_next\": 5}");
    CHECK_INT(mbq_bq_dataset_get(bq, NULL, "d"), MBQ_EAUTH);
    CHECK_CONTAINS(mbq_error_last(), "(HTTP 401)");
    CHECK_INT(state_int("tokens") - t0, 3);
    control("{\"unauthorized_next\": 0}");
    mbq_bq_free(bq);

    /* A token that lives 61 s is renewed after 1 s (60 s margin). */
    control("{\"expires_in\": 61}");
    bq = client(MBQ_BQ_AUTH_SERVICE_ACCOUNT, 0, 1 << 20);
    t0 = state_int("tokens");
    CHECK_INT(mbq_bq_dataset_get(bq, NULL, "d"), 0);
    CHECK_INT(mbq_bq_dataset_get(bq, NULL, "d"), 0);
    CHECK_INT(state_int("tokens") - t0, 1);
    mbq_sleep_ms(1200);
    CHECK_INT(mbq_bq_dataset_get(bq, NULL, "d"), 0);
    CHECK_INT(state_int("tokens") - t0, 2);
    st = standin_state();
    json_object *seen = json_object_object_get(st, "tokens_seen");
    size_t n = json_object_array_length(seen);
    const char *last = json_object_get_string(json_object_array_get_idx(seen, n - 1));
    /* The token is registered as a secret: masked wherever it is printed. */
    char *copy = mbq_strdup(last);
    CHECK_STR(mbq_secret_mask(copy), "***");
    free(copy);
    CHECK_INT(json_object_array_length(json_object_object_get(st, "token_errors")), 0);
    json_object_put(st);
    mbq_bq_free(bq);
    control("{\"require_token\": false, \"expires_in\": 3600}");
}

/* ---- location ------------------------------------------------------------ */

/* A dataset in europe-west3: every job insert carries that location and
 * every poll (jobs.get, getQueryResults) asks for it; the stand-in, like
 * BigQuery, answers 404 for a job looked up without it, and fails a job
 * inserted in US against that dataset. A configured location that
 * contradicts the dataset's is refused before any job. */
static void test_standin_location_is_the_datasets_for_every_job_and_poll(void)
{
    mbq_bq *bq = client(MBQ_BQ_AUTH_NONE, 0, 1 << 20);
    mbq_bq_job *job = NULL;
    char *v = NULL;
    bool exists = false;
    control("{\"dataset_location\": \"europe-west3\", \"insert_done\": false, "
            "\"fail_next\": []}");
    /* Unresolved, the client would say US: BigQuery refuses that job. */
    CHECK_INT(mbq_bq_query(&job, bq, "loc_us_job", "SELECT 1", NULL), MBQ_ENOTFOUND);
    CHECK_INT(mbq_bq_location_resolve(bq, &exists, "d"), 0);
    CHECK(exists);
    CHECK_STR(mbq_bq_location(bq), "europe-west3");
    int64_t gets = state_int("jobs_get");
    /* Not done at insert: the result is polled, in the dataset's location. */
    int rc = mbq_bq_query_scalar(&v, bq, "loc_eu_job", "SELECT 1");
    CHECK_INT(rc, 0);
    if (rc)
        fprintf(stderr, "  %s\n", mbq_error_last());
    CHECK_STR(v, "1");
    CHECK(state_int("jobs_get") - gets >= 2); /* the lookup before and the poll */
    json_object *st = standin_state();
    json_object *locs = json_object_object_get(st, "job_locations");
    size_t n = json_object_array_length(locs);
    CHECK_STR(json_object_get_string(json_object_array_get_idx(locs, n - 1)), "europe-west3");
    json_object_put(st);
    /* jobs.get without the location is a 404 on BigQuery too: polls need it. */
    mbq_bq_job *j2 = NULL;
    CHECK_INT(mbq_bq_job_get(&j2, bq, "loc_eu_job", "US"), MBQ_ENOTFOUND);
    CHECK_INT(mbq_bq_job_get(&j2, bq, "loc_eu_job", NULL), 0);
    mbq_bq_job_free(j2);
    free(v);
    mbq_bq_free(bq);

    /* bigquery.location: US against a europe-west3 dataset: a clear error. */
    mbq_bq_options o;
    mbq_bq_options_init(&o);
    o.project = "standin";
    o.endpoint = endpoint;
    o.auth = MBQ_BQ_AUTH_NONE;
    o.location = "US";
    o.max_retries = 1;
    bq = NULL;
    CHECK_INT(mbq_bq_new(&bq, &o), 0);
    CHECK_INT(mbq_bq_location_resolve(bq, &exists, "d"), MBQ_ECONFIG);
    CHECK_STR(mbq_error_last(), "bigquery: 'bigquery.location' is 'US' but dataset 'd' is in "
                                "'europe-west3': jobs must run in the dataset's location (set "
                                "'location: europe-west3' or remove the setting)");
    mbq_bq_free(bq);
    /* The same name in another case is the same location. */
    o.location = "EUROPE-WEST3";
    bq = NULL;
    CHECK_INT(mbq_bq_new(&bq, &o), 0);
    CHECK_INT(mbq_bq_location_resolve(bq, &exists, "d"), 0);
    mbq_bq_free(bq);
    control("{\"dataset_location\": \"US\", \"insert_done\": true}");
}

/* `mbq check` settles the location and then warns about the dataset's
 * default expirations: both come from one datasets.get. */
static void test_standin_dataset_is_read_once_for_location_and_expirations(void)
{
    mbq_bq *bq = client(MBQ_BQ_AUTH_NONE, 0, 1 << 20);
    bool exists = false;
    int64_t table_ms = -1, partition_ms = -1;
    control("{\"dataset_table_expiration_ms\": 5184000000}");
    int64_t gets = state_int("datasets_get");
    CHECK_INT(mbq_bq_location_resolve(bq, &exists, "d"), 0);
    CHECK(exists);
    CHECK_INT(mbq_bq_dataset_expirations(bq, &table_ms, &partition_ms, "d"), 0);
    CHECK(table_ms == 5184000000LL);
    CHECK(partition_ms == 0);
    CHECK_INT(state_int("datasets_get") - gets, 1);
    /* Another dataset is read for itself. */
    CHECK_INT(mbq_bq_dataset_expirations(bq, &table_ms, &partition_ms, "other"), 0);
    CHECK(table_ms == 5184000000LL);
    CHECK_INT(state_int("datasets_get") - gets, 2);
    control("{\"dataset_table_expiration_ms\": null}");
    mbq_bq_free(bq);
}

/* ---- job-level failures -------------------------------------------------- */

/* A job that BigQuery ran and failed reports its errorResult.reason, and
 * the reasons Google's client retries with a new job id are told apart from
 * the permanent ones. */
static void test_standin_failed_job_reason_is_told_transient_or_not(void)
{
    mbq_bq *bq = client(MBQ_BQ_AUTH_NONE, 0, 1 << 20);
    mbq_bq_job *job = NULL;
    control("{\"job_errors\": {\"jf_backend\": \"backendError\", \"jf_rate\": "
            "\"jobRateLimitExceeded\", \"jf_invalid\": \"invalid\"}}");
    CHECK_INT(mbq_bq_query(&job, bq, "jf_backend", "MERGE x", NULL), MBQ_EBQ);
    CHECK_STR(mbq_bq_job_error_reason(bq), "backendError");
    CHECK(mbq_bq_job_reason_transient(mbq_bq_job_error_reason(bq)));
    CHECK_INT(mbq_bq_query(&job, bq, "jf_rate", "MERGE x", NULL), MBQ_EBQ);
    CHECK(mbq_bq_job_reason_transient(mbq_bq_job_error_reason(bq)));
    CHECK_INT(mbq_bq_query(&job, bq, "jf_invalid", "MERGE x", NULL), MBQ_EBQ);
    CHECK_STR(mbq_bq_job_error_reason(bq), "invalid");
    CHECK(!mbq_bq_job_reason_transient(mbq_bq_job_error_reason(bq)));
    /* A request refused at insert is no failed job. */
    control("{\"fail_next\": [400, 400, 400, 400, 400]}");
    CHECK(mbq_bq_query(&job, bq, "jf_refused", "MERGE x", NULL) < 0);
    CHECK(mbq_bq_job_error_reason(bq) == NULL);
    CHECK(mbq_bq_job_reason_transient("internalError"));
    CHECK(mbq_bq_job_reason_transient("rateLimitExceeded"));
    CHECK(!mbq_bq_job_reason_transient("notFound"));
    CHECK(!mbq_bq_job_reason_transient(NULL));
    control("{\"fail_next\": [], \"job_errors\": {}}");
    mbq_bq_free(bq);
}

/* jobs.get may answer 404 for a moment right after BigQuery accepted a job
 * or said 409 for it: asked again briefly, never reported as "no job". */
static void test_standin_404_right_after_insert_or_409_is_asked_again(void)
{
    mbq_bq *bq = client(MBQ_BQ_AUTH_NONE, 0, 1 << 20);
    mbq_bq_job *job = NULL;
    /* Accepted, not done yet, then not found twice. */
    control("{\"insert_done\": false, \"notfound_gets\": 0, \"fail_next\": []}");
    int64_t inserts = state_int("inserts");
    control("{\"fail_next\": [404], \"notfound_gets\": 2}"); /* the lookup: no such job */
    int rc = mbq_bq_query(&job, bq, "race_job", "INSERT INTO d.t VALUES (1)", NULL);
    CHECK_INT(rc, 0);
    if (rc)
        fprintf(stderr, "  %s\n", mbq_error_last());
    CHECK_INT(state_int("inserts") - inserts, 1);
    mbq_bq_job_free(job);
    job = NULL;
    /* The same id again: 409, then 404 once, then the job. */
    control("{\"fail_next\": [404], \"notfound_gets\": 1}");
    rc = mbq_bq_query(&job, bq, "race_job", "INSERT INTO d.t VALUES (1)", NULL);
    CHECK_INT(rc, 0);
    CHECK(job && job->existed);
    CHECK_INT(state_int("inserts") - inserts, 2); /* the second one was the 409 */
    mbq_bq_job_free(job);
    job = NULL;
    /* Bounded: a job that stays not found is reported. */
    control("{\"fail_next\": [404], \"notfound_gets\": 100}");
    rc = mbq_bq_query(&job, bq, "race_job2", "INSERT INTO d.t VALUES (1)", NULL);
    CHECK_INT(rc, MBQ_ENOTFOUND);
    control("{\"insert_done\": true, \"notfound_gets\": 0}");
    mbq_bq_free(bq);
}

/* ---- streamed load ------------------------------------------------------- */

typedef struct gen {
    size_t total, sent, step;
    bool abort_at_end;
} gen;

/* Rows "{"n":i}\n" until `total` bytes (the last row cut to fit is fine for
 * a byte comparison), `step` bytes per call. */
static size_t gen_read(void *ud, char *dst, size_t cap)
{
    gen *g = ud;
    if (g->sent >= g->total)
        return g->abort_at_end ? MBQ_HTTP_STREAM_ABORT : 0;
    size_t n = g->total - g->sent;
    if (n > cap)
        n = cap;
    if (n > g->step)
        n = g->step;
    for (size_t i = 0; i < n; i++)
        dst[i] = (char)('a' + (g->sent + i) % 26);
    g->sent += n;
    return n;
}

static bool upload_is_gen(const char *job_id, size_t total)
{
    mbq_buf path = MBQ_BUF_INIT, got = MBQ_BUF_INIT;
    mbq_buf_printf(&path, "%s/upload_%s.bin", tmpdir, job_id);
    bool ok = mbq_file_read_all(&got, path.ptr) == 0 && got.len == total;
    for (size_t i = 0; ok && i < total; i++)
        ok = got.ptr[i] == (char)('a' + i % 26);
    mbq_buf_free(&path);
    mbq_buf_free(&got);
    return ok;
}

/* A stream of unknown length goes through a resumable session in pieces of
 * the chunk size, each with its length (Google's upload server refuses a
 * multipart body in chunked transfer encoding: the stand-in answers 411);
 * a piece cut mid-body is resumed from what the server kept; an aborted
 * stream never completes the session, so no job exists. */
static void test_standin_stream_load_goes_by_resumable_pieces(void)
{
    mbq_bq *bq = client(MBQ_BQ_AUTH_NONE, 512 * 1024, 1 << 20);
    mbq_bq_schema *s = schema1();
    mbq_bq_job *job = NULL;
    mbq_bq_load_options o = MBQ_BQ_LOAD_OPTIONS_INIT;
    o.dataset = "d";
    o.table = "t";
    o.schema = s;
    size_t total = 1300 * 1024;
    json_object *st = standin_state();
    size_t puts0 = json_object_array_length(json_object_object_get(st, "puts"));
    json_object_put(st);
    int64_t chunked0 = state_int("chunked_multipart");
    /* The second piece (512K-1M) is cut after half its body; the server
     * keeps 256 KiB of it: the client asks and resumes mid-piece. */
    char ctl[96];
    snprintf(ctl, sizeof ctl, "{\"drop_put_at\": [%zu], \"fail_next\": []}", puts0 + 2);
    control(ctl);
    gen g = {total, 0, 10000, false};
    int rc = mbq_bq_load_stream(&job, bq, "stream_job", &o, gen_read, &g);
    CHECK_INT(rc, 0);
    if (rc)
        fprintf(stderr, "  %s\n", mbq_error_last());
    CHECK(job && !job->existed);
    CHECK(upload_is_gen("stream_job", total));
    CHECK_INT(state_int("chunked_multipart") - chunked0, 0);
    st = standin_state();
    json_object *puts = json_object_object_get(st, "puts");
    size_t n = json_object_array_length(puts);
    const char *want[] = {"bytes 0-524287/*", "bytes 524288-1048575/*", "bytes */*",
                          "bytes 786432-1048575/*", "bytes 1048576-1331199/1331200"};
    CHECK_INT(n - puts0, 5);
    for (size_t i = 0; i < 5 && puts0 + i < n; i++)
        CHECK_STR(json_object_get_string(json_object_array_get_idx(puts, puts0 + i)), want[i]);
    json_object_put(st);
    mbq_bq_job_free(job);
    job = NULL;

    /* Aborted after two pieces went out: no job. */
    control("{\"drop_put_at\": []}");
    int64_t inserts = state_int("inserts");
    gen a = {600 * 1024, 0, 10000, true};
    CHECK_INT(mbq_bq_load_stream(&job, bq, "stream_abort_job", &o, gen_read, &a), MBQ_ERR);
    CHECK(job == NULL);
    CHECK_INT(state_int("inserts") - inserts, 0);
    mbq_bq_job *j2 = NULL;
    CHECK_INT(mbq_bq_job_get(&j2, bq, "stream_abort_job", NULL), MBQ_ENOTFOUND);
    mbq_error_clear();

    /* A stream that ends exactly at a piece boundary: the last piece is a
     * whole chunk, named with the total. */
    gen e = {1024 * 1024, 0, 65536, false};
    CHECK_INT(mbq_bq_load_stream(&job, bq, "stream_even_job", &o, gen_read, &e), 0);
    CHECK(upload_is_gen("stream_even_job", 1024 * 1024));
    mbq_bq_job_free(job);
    job = NULL;

    /* A server that completes the session on a middle piece (what the
     * emulator does, never BigQuery): not a success. */
    control("{\"complete_any_put\": true}");
    gen m = {1024 * 1024, 0, 65536, false};
    CHECK_INT(mbq_bq_load_stream(&job, bq, "stream_early_job", &o, gen_read, &m), MBQ_EBQ);
    CHECK_CONTAINS(mbq_error_last(), "completed the upload before its last piece");
    CHECK(job == NULL);
    control("{\"complete_any_put\": false}");
    mbq_bq_schema_free(s);
    mbq_bq_free(bq);
}

int main(void)
{
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    char port_file[300], pub[300], key[300];
    snprintf(port_file, sizeof port_file, "%s/port", tmpdir);
    snprintf(key, sizeof key, "%s/key.pem", tmpdir);
    snprintf(pub, sizeof pub, "%s/pub.pem", tmpdir);
    snprintf(key_json, sizeof key_json, "%s/key.json", tmpdir);
    /* A fresh key pair per run; the private half never leaves tmpdir. */
    if (sh("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out '%s'%s",
           key, " 2>/dev/null") != 0) {
        fprintf(stderr, "cannot generate a key pair with openssl\n");
        return 1;
    }
    if (sh("openssl pkey -in '%s' -pubout -out '%s' 2>/dev/null", key, pub) != 0) {
        fprintf(stderr, "cannot generate a key pair with openssl\n");
        return 1;
    }
    const char *args[] = {tmpdir, pub, "mbq-test@standin.iam.gserviceaccount.com", NULL};
    standin_pid = test_standin_start(endpoint, sizeof endpoint, "bq_standin.py", port_file, args);
    if (standin_pid < 0)
        return 1;
    /* The key file names the stand-in's token endpoint. */
    mbq_buf pem = MBQ_BUF_INIT, js = MBQ_BUF_INIT;
    mbq_file_read_all(&pem, key);
    mbq_buf_puts(&js, "{\"type\":\"service_account\",\"private_key_id\":\"test-key-id\","
                      "\"private_key\":");
    mbq_buf_json_string(&js, pem.ptr, pem.len);
    mbq_buf_printf(&js, ",\"client_email\":\"mbq-test@standin.iam.gserviceaccount.com\","
                        "\"token_uri\":\"%s/token\"}",
                   endpoint);
    mbq_file_write_atomic(key_json, js.ptr, js.len);
    chmod(key_json, 0600);
    mbq_buf_free(&pem);
    mbq_buf_free(&js);
    mbq_http_new(&ctl_http, NULL);

    RUN(test_standin_duplicate_job_409_is_looked_up);
    RUN(test_standin_unreadable_insert_answer_is_looked_up);
    RUN(test_standin_chunked_resumable_upload_resumes_after_drop);
    RUN(test_standin_job_failing_later_reports_error_result);
    RUN(test_standin_503_then_200_is_retried);
    RUN(test_standin_gzip_file_uploaded_as_is);
    RUN(test_standin_copy_job_replaces_target_once);
    RUN(test_standin_token_exchange_reuse_expiry_and_401);
    RUN(test_standin_location_is_the_datasets_for_every_job_and_poll);
    RUN(test_standin_dataset_is_read_once_for_location_and_expirations);
    RUN(test_standin_failed_job_reason_is_told_transient_or_not);
    RUN(test_standin_404_right_after_insert_or_409_is_asked_again);
    RUN(test_standin_stream_load_goes_by_resumable_pieces);

    mbq_http_free(ctl_http);
    test_standin_stop(standin_pid);
    test_remove_tree(tmpdir);
    return test_summary();
}
