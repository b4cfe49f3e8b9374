/* The streaming pipeline against MariaDB and the emulator, and against a
 * local HTTP server that watches or cuts the upload request (what BigQuery
 * does with a body that never reaches its end cannot be seen on the
 * emulator, which records a multipart job id before reading the data). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mbq/bq.h"
#include "mbq/error.h"
#include "mbq/pipeline.h"
#include "mbq/util.h"
#include "test.h"
#include "test_mysql_util.h"

#define NROWS 30000

static char db[64], dataset[64], tmpdir[] = "/tmp/mbq_pipeline_XXXXXX";
static mbq_bq *bq;
static mbq_mysql *my;
static mbq_table_schema *src;
static mbq_bq_schema *bqs;

/* ---- a watching / cutting HTTP server ---------------------------------- */

typedef struct watcher {
    int lfd, port;
    size_t cut_after;     /* cut the upload after this many body bytes, then answer nothing */
    size_t body_bytes;    /* what it received of the upload's pieces */
    bool complete;        /* a piece naming the total (the one that completes a session) */
    bool upload_seen;     /* a resumable session was opened */
    bool dead;            /* cut once: every later connection is closed unanswered */
    pthread_t th;
} watcher;

/* The value of header `name` ("Content-Length: ") in buf, or NULL. */
static const char *header_in(const char *buf, const char *name)
{
    const char *h = strstr(buf, name);
    return h ? h + strlen(name) : NULL;
}

/* A resumable upload server that watches: it opens sessions, takes pieces
 * (308 + Range), records whether a last piece (one naming the total) ever
 * came, and cuts the upload for good after cut_after body bytes. */
static void *watch_main(void *arg)
{
    watcher *w = arg;
    for (;;) {
        int fd = accept(w->lfd, NULL, NULL);
        if (fd < 0)
            return NULL;
        char buf[65536];
        size_t have = 0;
        ssize_t n;
        char *eoh = NULL;
        while (!eoh && (n = read(fd, buf + have, sizeof buf - 1 - have)) > 0) {
            have += (size_t)n;
            buf[have] = '\0';
            eoh = strstr(buf, "\r\n\r\n");
        }
        if (!eoh || w->dead) {
            close(fd);
            continue;
        }
        if (strncmp(buf, "GET ", 4) == 0) { /* jobs.get: no such job */
            const char *b = "{\"error\":{\"code\":404,\"message\":\"Not found\",\"errors\":"
                            "[{\"reason\":\"notFound\"}]}}";
            dprintf(fd, "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
                        "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                    strlen(b), b);
            close(fd);
            continue;
        }
        const char *cl = header_in(buf, "Content-Length: ");
        size_t len = cl ? (size_t)strtoull(cl, NULL, 10) : 0;
        size_t body = have - (size_t)(eoh + 4 - buf);
        if (strncmp(buf, "POST ", 5) == 0) { /* open a session */
            while (body < len && (n = read(fd, buf, sizeof buf)) > 0)
                body += (size_t)n;
            w->upload_seen = true;
            dprintf(fd, "HTTP/1.1 200 OK\r\nLocation: http://127.0.0.1:%d/upload?upload_id=w\r\n"
                        "Content-Length: 0\r\nConnection: close\r\n\r\n",
                    w->port);
            close(fd);
            continue;
        }
        const char *cr = header_in(buf, "Content-Range: bytes ");
        if (cr && strncmp(cr, "*/", 2) != 0) {
            const char *slash = strchr(cr, '/');
            if (slash && slash[1] != '*')
                w->complete = true;
        }
        size_t start = w->body_bytes;
        while (body < len && w->body_bytes + body < w->cut_after &&
               (n = read(fd, buf, sizeof buf)) > 0)
            body += (size_t)n;
        w->body_bytes = start + body;
        if (w->body_bytes >= w->cut_after) {
            w->dead = true;
            close(fd); /* cut: no answer */
            continue;
        }
        if (w->body_bytes > 0)
            dprintf(fd, "HTTP/1.1 308 Resume Incomplete\r\nRange: bytes=0-%zu\r\n"
                        "Content-Length: 0\r\nConnection: close\r\n\r\n",
                    w->body_bytes - 1);
        else
            dprintf(fd, "HTTP/1.1 308 Resume Incomplete\r\nContent-Length: 0\r\n"
                        "Connection: close\r\n\r\n");
        close(fd);
    }
}

static void watcher_start(watcher *w, size_t cut_after)
{
    memset(w, 0, sizeof *w);
    w->cut_after = cut_after;
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    w->lfd = socket(AF_INET, SOCK_STREAM, 0);
    bind(w->lfd, (struct sockaddr *)&a, sizeof a);
    listen(w->lfd, 8);
    socklen_t l = sizeof a;
    getsockname(w->lfd, (struct sockaddr *)&a, &l);
    w->port = ntohs(a.sin_port);
    pthread_create(&w->th, NULL, watch_main, w);
}

static void watcher_stop(watcher *w)
{
    shutdown(w->lfd, SHUT_RDWR);
    close(w->lfd);
    pthread_join(w->th, NULL);
}

/* A client of the emulator (endpoint NULL: the environment's), or of a
 * watcher, which gets pieces of 256 KiB so that some go out while rows are
 * still being extracted. */
static mbq_bq *client_for(const char *endpoint)
{
    mbq_bq_options o;
    mbq_bq_options_init(&o);
    const char *project = getenv("MBQ_TEST_BQ_PROJECT");
    o.project = project && *project ? project : "mbq-test";
    o.endpoint = endpoint;
    o.upload_chunk_bytes = endpoint ? 256 * 1024 : 0;
    o.max_retries = 1;
    o.retry_initial_ms = 50;
    o.retry_max_elapsed_ms = 2000;
    o.poll_initial_ms = 50;
    mbq_bq *b = NULL;
    if (mbq_bq_new(&b, &o) < 0)
        fprintf(stderr, "mbq_bq_new: %s\n", mbq_error_last());
    return b;
}

/* ---- helpers ---------------------------------------------------------- */

/* Job ids unique per run: the emulator of a test session outlives one run. */
static const char *jid(const char *base)
{
    static char ids[8][128];
    static int next;
    char *b = ids[next++ % 8];
    snprintf(b, 128, "%s_%s", base, dataset);
    return b;
}

static void extract_options(mbq_extract_options *xo, const char *path)
{
    mbq_extract_options d = MBQ_EXTRACT_OPTIONS_INIT;
    *xo = d;
    xo->schema = src;
    xo->path = path;
    xo->compress = false;
}

static void load_options(mbq_bq_load_options *lo, const char *table)
{
    mbq_bq_load_options d = MBQ_BQ_LOAD_OPTIONS_INIT;
    *lo = d;
    lo->dataset = dataset;
    lo->table = table;
    lo->schema = bqs;
    lo->write_disposition = MBQ_BQ_WRITE_TRUNCATE;
}

static long long bq_count(const char *table)
{
    char sql[256], id[96], *v = NULL;
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM `%s.%s`", dataset, table);
    snprintf(id, sizeof id, "pipe_count_%016llx", (unsigned long long)mbq_random_u64());
    if (mbq_bq_query_scalar(&v, bq, id, sql) < 0) {
        mbq_error_clear();
        return -1; /* no such table */
    }
    long long n = atoll(v);
    free(v);
    return n;
}

static int fail_after_sink(void *ud, const void *data, size_t len)
{
    size_t *left = ud;
    (void)data;
    if (len >= *left)
        return mbq_error_set(MBQ_EIO, "injected: disk full after some rows");
    *left -= len;
    return 0;
}

/* ---- tests ------------------------------------------------------------ */

/* Rows reach BigQuery through one streamed request while the file is
 * written: the job loads every row, the file holds every row, and the pipe
 * never held more than its capacity. */
static void test_stream_loads_and_keeps_the_file(void)
{
    char path[256];
    snprintf(path, sizeof path, "%s/ok.ndjson", tmpdir);
    mbq_extract_options xo;
    mbq_bq_load_options lo;
    extract_options(&xo, path);
    load_options(&lo, "t_ok");
    mbq_pipeline_options po = MBQ_PIPELINE_OPTIONS_INIT;
    po.pipe_bytes = 256 * 1024;
    mbq_extract_result xr;
    mbq_bq_job *job = NULL;
    mbq_pipeline_report rep;
    int rc = mbq_pipeline_extract_load(&xr, &job, my, &xo, bq, jid("pipe_ok_1"), &lo, &po, &rep);
    if (rc < 0)
        fprintf(stderr, "  %s\n", mbq_error_last());
    CHECK_INT(rc, 0);
    CHECK(job != NULL);
    CHECK_INT(xr.rows, NROWS);
    CHECK(xr.file_written && tmy_exists(path));
    CHECK(!rep.upload_failed && !rep.aborted);
    CHECK(rep.pipe_peak_bytes <= 256 * 1024);
    CHECK_INT(bq_count("t_ok"), NROWS);
    /* the same id again: refused before anything is extracted */
    mbq_extract_result xr2;
    mbq_bq_job *job2 = NULL;
    CHECK_INT(mbq_pipeline_extract_load(&xr2, &job2, my, &xo, bq, jid("pipe_ok_1"), &lo, &po, NULL),
              MBQ_EEXISTS);
    mbq_error_clear();
    mbq_bq_job_free(job);
    mbq_extract_result_free(&xr);
}

/* The extract fails mid-way: the request is cut before its end, the server
 * never gets a complete body (what keeps BigQuery from creating the job),
 * no file is left, and on the emulator no row was loaded. */
static void test_extract_failure_aborts_the_upload(void)
{
    char path[256], ep[64];
    snprintf(path, sizeof path, "%s/xfail.ndjson", tmpdir);
    mbq_extract_options xo;
    mbq_bq_load_options lo;
    mbq_extract_result xr;
    mbq_bq_job *job = NULL;
    size_t left = 600 * 1024;

    /* 1. what the server receives */
    watcher w;
    watcher_start(&w, (size_t)1 << 40);
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", w.port);
    mbq_bq *wb = client_for(ep);
    extract_options(&xo, path);
    xo.sink = fail_after_sink;
    xo.sink_ud = &left;
    load_options(&lo, "t_xfail");
    int rc = mbq_pipeline_extract_load(&xr, &job, my, &xo, wb, jid("pipe_xfail_1"), &lo, NULL, NULL);
    CHECK_INT(rc, MBQ_EIO);
    CHECK_CONTAINS(mbq_error_last(), "injected");
    CHECK(job == NULL);
    CHECK(!xr.file_written && !tmy_exists(path));
    watcher_stop(&w);
    CHECK(w.upload_seen); /* the session was opened (the job's metadata sent) */
    CHECK(!w.complete);   /* and never completed */
    mbq_bq_free(wb);

    /* 2. the emulator: nothing loaded (it keeps the job id, see pipeline.h) */
    left = 600 * 1024;
    rc = mbq_pipeline_extract_load(&xr, &job, my, &xo, bq, jid("pipe_xfail_2"), &lo, NULL, NULL);
    CHECK_INT(rc, MBQ_EIO);
    CHECK(job == NULL);
    long long n = bq_count("t_xfail");
    CHECK(n <= 0);
    mbq_error_clear();
}

/* The upload is cut mid-way: the extract still completes (the pipe stops
 * holding it back), the file is whole, and a retry from it loads the rows
 * exactly once (a second retry finds the job). */
static void test_upload_failure_keeps_the_file_for_a_retry(void)
{
    char path[256], ep[64];
    snprintf(path, sizeof path, "%s/ufail.ndjson", tmpdir);
    watcher w;
    watcher_start(&w, 300 * 1024);
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", w.port);
    mbq_bq *wb = client_for(ep);
    mbq_extract_options xo;
    mbq_bq_load_options lo;
    extract_options(&xo, path);
    load_options(&lo, "t_ufail");
    mbq_pipeline_options po = MBQ_PIPELINE_OPTIONS_INIT;
    po.pipe_bytes = 64 * 1024;
    mbq_extract_result xr;
    mbq_bq_job *job = NULL;
    mbq_pipeline_report rep;
    int rc = mbq_pipeline_extract_load(&xr, &job, my, &xo, wb, jid("pipe_ufail_1"), &lo, &po, &rep);
    CHECK(rc < 0);
    CHECK(rep.upload_failed);
    CHECK(job == NULL);
    CHECK(xr.file_written && tmy_exists(path));
    CHECK_INT(xr.rows, NROWS);
    CHECK(xr.checksum != NULL);
    watcher_stop(&w);
    CHECK(!w.complete);
    mbq_bq_free(wb);
    mbq_error_clear();

    lo.path = path;
    CHECK_INT(mbq_bq_load_file(&job, bq, jid("pipe_ufail_1"), &lo), 0);
    CHECK(job && !job->existed);
    mbq_bq_job_free(job);
    job = NULL;
    CHECK_INT(mbq_bq_load_file(&job, bq, jid("pipe_ufail_1"), &lo), 0);
    CHECK(job && job->existed);
    mbq_bq_job_free(job);
    CHECK_INT(bq_count("t_ufail"), NROWS);
    mbq_extract_result_free(&xr);
}

/* No rows, or rows the caller calls unchanged: the request is aborted and
 * no job exists (checked with jobs.get on the watching server's side: the
 * body never completed). */
static void test_unchanged_rows_cost_no_job(void)
{
    char path[256], ep[64];
    snprintf(path, sizeof path, "%s/same.ndjson", tmpdir);
    watcher w;
    watcher_start(&w, (size_t)1 << 40);
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", w.port);
    mbq_bq *wb = client_for(ep);
    mbq_extract_options xo;
    mbq_bq_load_options lo;
    extract_options(&xo, path);
    load_options(&lo, "t_same");
    mbq_pipeline_options po = MBQ_PIPELINE_OPTIONS_INIT;
    po.keep = NULL;
    bool never(void *ud, const mbq_extract_result *r);
    po.keep = never;
    mbq_extract_result xr;
    mbq_bq_job *job = NULL;
    mbq_pipeline_report rep;
    CHECK_INT(mbq_pipeline_extract_load(&xr, &job, my, &xo, wb, jid("pipe_same_1"), &lo, &po, &rep), 0);
    CHECK(job == NULL && rep.aborted);
    CHECK(xr.file_written && xr.rows == NROWS);
    watcher_stop(&w);
    CHECK(!w.complete);
    mbq_bq_free(wb);
    mbq_extract_result_free(&xr);
}

bool never(void *ud, const mbq_extract_result *r)
{
    (void)ud;
    (void)r;
    return false;
}

int main(void)
{
    test_require_env("BIGQUERY_EMULATOR_HOST");
    if (!mkdtemp(tmpdir))
        return 1;
    snprintf(db, sizeof db, "mbq_pipe_%d", (int)getpid());
    snprintf(dataset, sizeof dataset, "mbq_pipe_%d_%04x", (int)getpid(),
             (unsigned)(mbq_random_u64() & 0xffff));
    MYSQL *adm = tmy_admin();
    tmy_exec(adm, "CREATE DATABASE %s", db);
    tmy_exec(adm, "CREATE TABLE %s.t (id BIGINT NOT NULL PRIMARY KEY, note VARCHAR(200) NOT NULL, "
                  "updated_at TIMESTAMP(6) NOT NULL DEFAULT '2000-01-01 00:00:00')", db);
    tmy_exec(adm, "INSERT INTO %s.t SELECT seq, CONCAT('note ', seq, REPEAT('x', seq %% 50)), "
                  "'2024-01-01' + INTERVAL seq SECOND FROM %s.seq_1_to_%d", db, db, NROWS);
    mbq_mysql_config mc = tmy_config(db);
    bq = client_for(NULL);
    if (!bq || mbq_mysql_connect(&my, &mc) < 0 || mbq_mysql_table_schema(&src, my, db, "t") < 0 ||
        mbq_bq_dataset_ensure(bq, dataset, NULL) < 0) {
        fprintf(stderr, "setup: %s\n", mbq_error_last());
        return 1;
    }
    mbq_bq_schema_new(&bqs);
    mbq_bq_schema_add(bqs, "id", "INT64", MBQ_BQ_REQUIRED, NULL);
    mbq_bq_schema_add(bqs, "note", "STRING", MBQ_BQ_REQUIRED, NULL);
    mbq_bq_schema_add(bqs, "updated_at", "TIMESTAMP", MBQ_BQ_REQUIRED, NULL);

    RUN(test_stream_loads_and_keeps_the_file);
    RUN(test_extract_failure_aborts_the_upload);
    RUN(test_upload_failure_keeps_the_file_for_a_retry);
    RUN(test_unchanged_rows_cost_no_job);

    mbq_bq_dataset_delete(bq, dataset, true);
    mbq_bq_schema_free(bqs);
    mbq_table_schema_free(src);
    mbq_mysql_close(my);
    mbq_bq_free(bq);
    tmy_exec(adm, "DROP DATABASE %s", db);
    mysql_close(adm);
    test_remove_tree(tmpdir);
    return test_summary();
}
