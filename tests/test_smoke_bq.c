/* Smoke test: the BigQuery emulator that tools/services.sh starts speaks the
 * BigQuery REST API v2. Through libcurl + json-c, as mbq's bq module does:
 * create a dataset and a table with a schema, insert rows with a query job
 * (INSERT), read them back with jobs.query, and see 404 notFound for a missing
 * table. Works in its own dataset, mbq_smoke_bq. */
#include "test.h"

#include <curl/curl.h>
#include <json-c/json.h>

#include "mbq/buf.h"
#include "mbq/util.h"

#define DATASET "mbq_smoke_bq"

static char base_url[512]; /* http://host:port/bigquery/v2/projects/<project> */
static const char *project;

static size_t on_body(char *data, size_t size, size_t n, void *userdata)
{
    mbq_buf *b = userdata;
    return mbq_buf_append(b, data, size * n) == 0 ? size * n : 0;
}

/* One request to base_url + path. Returns the HTTP status (0 on a transport
 * error) and the parsed JSON body in *out (NULL when empty or not JSON);
 * the caller puts *out. */
static long request(json_object **out, const char *method, const char *path, const char *body)
{
    long status = 0;
    mbq_buf url = MBQ_BUF_INIT, resp = MBQ_BUF_INIT;
    struct curl_slist *hdrs = NULL;
    CURL *c = curl_easy_init();
    *out = NULL;
    if (!c)
        goto done;
    if (mbq_buf_printf(&url, "%s%s", base_url, path) != 0)
        goto done;
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, mbq_buf_cstr(&url));
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
        fprintf(stderr, "  %s %s: %s\n", method, mbq_buf_cstr(&url), curl_easy_strerror(rc));
        goto done;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (resp.len > 0)
        *out = json_tokener_parse(mbq_buf_cstr(&resp));
    if (status >= 300)
        fprintf(stderr, "  (%s %s -> %ld %s)\n", method, path, status, mbq_buf_cstr(&resp));
done:
    curl_slist_free_all(hdrs);
    if (c)
        curl_easy_cleanup(c);
    mbq_buf_free(&url);
    mbq_buf_free(&resp);
    return status;
}

/* j["a"]["b"]... as a string, or NULL. */
static const char *jstr(json_object *j, const char *k1, const char *k2)
{
    json_object *v = NULL;
    if (!j || !json_object_object_get_ex(j, k1, &v))
        return NULL;
    if (k2 && !json_object_object_get_ex(v, k2, &v))
        return NULL;
    return json_object_get_string(v);
}

/* rows[i].f[k].v of a query response, or NULL (also for a SQL NULL). */
static const char *cell(json_object *resp, size_t i, size_t k)
{
    json_object *rows, *row, *f, *v;
    if (!json_object_object_get_ex(resp, "rows", &rows) || json_object_array_length(rows) <= i)
        return NULL;
    row = json_object_array_get_idx(rows, i);
    if (!json_object_object_get_ex(row, "f", &f) || json_object_array_length(f) <= k)
        return NULL;
    if (!json_object_object_get_ex(json_object_array_get_idx(f, k), "v", &v) || !v)
        return NULL;
    return json_object_get_string(v);
}

static void test_create_dataset_and_table(void)
{
    json_object *r = NULL;
    mbq_buf body = MBQ_BUF_INIT;

    /* A rerun against the same services starts clean: 404 when absent. */
    long st = request(&r, "DELETE", "/datasets/" DATASET "?deleteContents=true", NULL);
    CHECK(st == 200 || st == 204 || st == 404);
    json_object_put(r);

    /* The emulator answers a duplicate dataset with 500, not 409 (README,
     * "Emulator divergences"); mbq looks a dataset up before creating it. */
    st = request(&r, "GET", "/datasets/" DATASET, NULL);
    CHECK_INT(st, 404);
    json_object_put(r);

    CHECK_INT(mbq_buf_printf(&body,
                             "{\"datasetReference\":{\"projectId\":\"%s\",\"datasetId\":\"" DATASET
                             "\"},\"location\":\"US\"}",
                             project),
              0);
    st = request(&r, "POST", "/datasets", mbq_buf_cstr(&body));
    CHECK_INT(st, 200);
    CHECK_STR(jstr(r, "datasetReference", "datasetId"), DATASET);
    json_object_put(r);

    mbq_buf_clear(&body);
    CHECK_INT(mbq_buf_printf(&body,
                             "{\"tableReference\":{\"projectId\":\"%s\",\"datasetId\":\"" DATASET
                             "\",\"tableId\":\"items\"},\"schema\":{\"fields\":["
                             "{\"name\":\"id\",\"type\":\"INT64\",\"mode\":\"REQUIRED\"},"
                             "{\"name\":\"name\",\"type\":\"STRING\"},"
                             "{\"name\":\"price\",\"type\":\"NUMERIC\"},"
                             "{\"name\":\"updated_at\",\"type\":\"TIMESTAMP\"}]}}",
                             project),
              0);
    st = request(&r, "POST", "/datasets/" DATASET "/tables", mbq_buf_cstr(&body));
    CHECK_INT(st, 200);
    CHECK_STR(jstr(r, "tableReference", "tableId"), "items");
    json_object_put(r);

    st = request(&r, "GET", "/datasets/" DATASET "/tables/items", NULL);
    CHECK_INT(st, 200);
    json_object_put(r);
    mbq_buf_free(&body);
}

static void test_insert_by_query_job(void)
{
    json_object *r = NULL, *q = json_object_new_object(), *cfg = json_object_new_object(),
                *query = json_object_new_object(), *ref = json_object_new_object();
    char uuid[37];
    mbq_buf job_id = MBQ_BUF_INIT;
    mbq_uuid(uuid);
    CHECK_INT(mbq_buf_printf(&job_id, "mbq-smoke-insert-%s", uuid), 0);

    json_object_object_add(ref, "projectId", json_object_new_string(project));
    json_object_object_add(ref, "jobId", json_object_new_string(mbq_buf_cstr(&job_id)));
    json_object_object_add(q, "jobReference", ref);
    json_object_object_add(query, "query",
                           json_object_new_string(
                               "INSERT INTO `" DATASET ".items` (id, name, price, updated_at) VALUES"
                               " (1, 'alpha', NUMERIC '1.50', TIMESTAMP '2024-01-02 03:04:05.123456+00'),"
                               " (2, 'beta', NUMERIC '-99999.99', NULL),"
                               " (3, 'ω\\'s', NULL, TIMESTAMP '1999-12-31 23:59:59.999999+00')"));
    json_object_object_add(query, "useLegacySql", json_object_new_boolean(0));
    json_object_object_add(cfg, "query", query);
    json_object_object_add(q, "configuration", cfg);

    long st = request(&r, "POST", "/jobs", json_object_to_json_string(q));
    CHECK_INT(st, 200);
    CHECK_STR(jstr(r, "jobReference", "jobId"), mbq_buf_cstr(&job_id));
    /* The emulator finishes a job inside jobs.insert; BigQuery may not. */
    CHECK_STR(jstr(r, "status", "state"), "DONE");
    CHECK(jstr(r, "status", "errorResult") == NULL);
    json_object_put(r);

    /* jobs.get finds it by its client-chosen id. */
    mbq_buf path = MBQ_BUF_INIT;
    CHECK_INT(mbq_buf_printf(&path, "/jobs/%s", mbq_buf_cstr(&job_id)), 0);
    st = request(&r, "GET", mbq_buf_cstr(&path), NULL);
    CHECK_INT(st, 200);
    CHECK_STR(jstr(r, "status", "state"), "DONE");
    json_object_put(r);

    json_object_put(q);
    mbq_buf_free(&path);
    mbq_buf_free(&job_id);
}

static void test_query_reads_rows_back(void)
{
    json_object *r = NULL;
    const char *body = "{\"query\":\"SELECT id, name, CAST(price AS STRING) AS price, updated_at"
                       " FROM `" DATASET ".items` ORDER BY id\",\"useLegacySql\":false}";
    long st = request(&r, "POST", "/queries", body);
    CHECK_INT(st, 200);
    CHECK(r != NULL);
    if (!r)
        return;
    CHECK_STR(jstr(r, "totalRows", NULL), "3");
    CHECK_STR(cell(r, 0, 0), "1");
    CHECK_STR(cell(r, 0, 1), "alpha");
    CHECK_STR(cell(r, 0, 2), "1.5");
    /* TIMESTAMP cells are epoch seconds with microseconds, as in BigQuery. */
    CHECK_STR(cell(r, 0, 3), "1704164645.123456");
    CHECK_STR(cell(r, 1, 2), "-99999.99");
    CHECK(cell(r, 1, 3) == NULL);
    CHECK_STR(cell(r, 2, 1), "ω's");
    CHECK(cell(r, 2, 2) == NULL);
    json_object_put(r);
}

static void test_missing_table_is_404_not_found(void)
{
    json_object *r = NULL, *errs = NULL, *err;
    long st = request(&r, "GET", "/datasets/" DATASET "/tables/no_such_table", NULL);
    CHECK_INT(st, 404);
    CHECK(r != NULL);
    if (r && json_object_object_get_ex(r, "error", &err) &&
        json_object_object_get_ex(err, "errors", &errs) && json_object_array_length(errs) > 0)
        CHECK_STR(jstr(json_object_array_get_idx(errs, 0), "reason", NULL), "notFound");
    else
        CHECK(!"error.errors[0].reason missing");
    json_object_put(r);
}

static void test_drop_dataset(void)
{
    json_object *r = NULL;
    long st = request(&r, "DELETE", "/datasets/" DATASET "?deleteContents=true", NULL);
    CHECK(st == 200 || st == 204);
    json_object_put(r);
}

int main(void)
{
    const char *host = test_require_env("BIGQUERY_EMULATOR_HOST");
    project = test_require_env("MBQ_TEST_BQ_PROJECT");
    snprintf(base_url, sizeof base_url, "http://%s/bigquery/v2/projects/%s", host, project);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    RUN(test_create_dataset_and_table);
    RUN(test_insert_by_query_job);
    RUN(test_query_reads_rows_back);
    RUN(test_missing_table_is_404_not_found);
    RUN(test_drop_dataset);
    curl_global_cleanup();
    return test_summary();
}
