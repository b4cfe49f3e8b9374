/* The HTTP client over TLS and HTTP/2, against tests/standins/h2server (Go's
 * net/http, which negotiates "h2" by ALPN as Google's front ends do; the
 * emulator and the other stand-ins speak plain HTTP/1.1). Requests with and
 * without a body, a body-less answer, connection reuse, and certificate
 * verification on by default (the server's certificate is self-signed).
 * The server binary is argv[1] (built by CMake with Go); the test is
 * skipped (77) when CMake found no Go, unless MBQ_REQUIRE_SERVICES=1. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "mbq/error.h"
#include "mbq/http.h"
#include "mbq/util.h"
#include "test.h"

static char tmpdir[] = "/tmp/mbq_http_tls_XXXXXX";
static char base[64];

static mbq_http *client(bool verify)
{
    mbq_http *h = NULL;
    mbq_http_options o = MBQ_HTTP_OPTIONS_INIT;
    o.tls_verify = verify;
    CHECK_INT(mbq_http_new(&h, &o), 0);
    return h;
}

/* The server's JSON answer's field `key` as a string ("" when absent). */
static char *answer_field(const mbq_http_response *r, const char *key)
{
    json_object *o = json_tokener_parse(mbq_buf_cstr(&r->body)), *v = NULL;
    char *s = strdup(o && json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "");
    json_object_put(o);
    return s;
}

static void test_get_and_post_over_http2(void)
{
    mbq_http *h = client(false);
    mbq_http_response r = MBQ_HTTP_RESPONSE_INIT;
    char get_url[128], url[128];
    snprintf(get_url, sizeof get_url, "%s/bigquery/v2/projects/p/datasets/d", base);
    mbq_http_request get = {"GET", get_url, NULL, NULL};
    CHECK_INT(mbq_http_do(h, &r, &get), 0);
    CHECK_INT(r.status, 200);
    /* HTTP/2 was negotiated, and its header block was seen to its end. */
    CHECK(strncmp(mbq_buf_cstr(&r.headers), "HTTP/2 200", 10) == 0);
    char *proto = answer_field(&r, "proto");
    CHECK_STR(proto, "HTTP/2.0");
    free(proto);

    /* A body in three parts (before, a file's range, after), as uploads are
     * sent: every byte arrives. */
    char path[300];
    snprintf(path, sizeof path, "%s/body.bin", tmpdir);
    FILE *f = fopen(path, "w+");
    CHECK(f != NULL);
    if (!f)
        return;
    for (int i = 0; i < 300000; i++)
        fputs("0123456789", f);
    fflush(f);
    const char *pre = "--b\r\n{\"configuration\":{}}\r\n--b\r\n", *post = "\r\n--b--\r\n";
    mbq_http_body body = {pre, strlen(pre), f, 10, 2999980, post, strlen(post), false, NULL,
                          NULL};
    snprintf(url, sizeof url, "%s/upload/bigquery/v2/projects/p/jobs?uploadType=multipart", base);
    mbq_http_request postr = {"POST", url, NULL, &body};
    CHECK_INT(mbq_http_do(h, &r, &postr), 0);
    CHECK_INT(r.status, 200);
    char *n = answer_field(&r, "body_bytes");
    char want[32];
    snprintf(want, sizeof want, "%zu", strlen(pre) + 2999980 + strlen(post));
    CHECK_STR(n, want);
    free(n);
    fclose(f);

    /* A body-less answer is an answer, not a cut one. */
    snprintf(url, sizeof url, "%s/empty", base);
    mbq_http_request empty = {"DELETE", url, NULL, NULL};
    CHECK_INT(mbq_http_do(h, &r, &empty), 0);
    CHECK_INT(r.status, 204);
    CHECK_INT(r.body.len, 0);

    /* Many requests on the one handle (the connection is reused). */
    for (int i = 0; i < 20; i++) {
        CHECK_INT(mbq_http_do(h, &r, &get), 0);
        CHECK_INT(r.status, 200);
    }
    mbq_http_response_free(&r);
    mbq_http_free(h);
}

static void test_certificate_is_verified_by_default(void)
{
    mbq_http *h = client(true);
    mbq_http_response r = MBQ_HTTP_RESPONSE_INIT;
    char url[128];
    snprintf(url, sizeof url, "%s/bigquery/v2/projects/p/datasets/d", base);
    mbq_http_request get = {"GET", url, NULL, NULL};
    CHECK_INT(mbq_http_do(h, &r, &get), MBQ_ENET);
    CHECK_CONTAINS(mbq_error_last(), "GET 'https://127.0.0.1:");
    CHECK_CONTAINS(mbq_error_last(), "certificate");
    CHECK_INT(r.status, 0);
    mbq_http_response_free(&r);
    mbq_http_free(h);
}

int main(int argc, char **argv)
{
    if (argc < 2 || access(argv[1], X_OK) != 0) {
        const char *req = getenv("MBQ_REQUIRE_SERVICES");
        fprintf(stderr, "%s: no HTTP/2 server binary (CMake found no Go to build "
                        "tests/standins/h2server)\n",
                req && strcmp(req, "1") == 0 ? "FAIL" : "SKIP");
        return req && strcmp(req, "1") == 0 ? 1 : 77;
    }
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    char port_file[300];
    snprintf(port_file, sizeof port_file, "%s/port", tmpdir);
    pid_t pid = fork();
    if (pid == 0) {
        execl(argv[1], argv[1], port_file, (char *)NULL);
        _exit(127);
    }
    int port = test_wait_port_file(port_file);
    if (!port) {
        fprintf(stderr, "the HTTP/2 server did not start\n");
        kill(pid, SIGTERM);
        test_remove_tree(tmpdir);
        return 1;
    }
    snprintf(base, sizeof base, "https://127.0.0.1:%d", port);
    RUN(test_get_and_post_over_http2);
    RUN(test_certificate_is_verified_by_default);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    test_remove_tree(tmpdir);
    return test_summary();
}
