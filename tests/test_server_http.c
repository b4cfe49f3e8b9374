/* The dashboard's HTTP server (src/server/server.c) on a real socket: the
 * routes and their headers, GET/HEAD only, the bearer token, the bounds on
 * request size, and that slow or idle clients neither stall other clients
 * nor stay connected past the timeout. No external service: the journal is
 * written here through the journal API. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mbq/error.h"
#include "mbq/journal.h"
#include "mbq/server.h"
#include "mbq/util.h"
#include "test.h"

#define TOKEN "0123456789abcdef-token"

static char dir[64];

typedef struct reply {
    long status;
    mbq_buf body;
    mbq_buf headers;
    double seconds;
} reply;

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    mbq_buf_append(ud, p, size * n);
    return size * n;
}

/* One request with curl; `auth` is a whole Authorization header or NULL. */
static void request(reply *r, unsigned port, const char *method, const char *path,
                    const char *auth)
{
    memset(r, 0, sizeof *r);
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (strcmp(method, "POST") == 0)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "x=1");
    if (auth)
        h = curl_slist_append(h, auth);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r->headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_getinfo(c, CURLINFO_TOTAL_TIME, &r->seconds);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
}

static void reply_free(reply *r)
{
    mbq_buf_free(&r->body);
    mbq_buf_free(&r->headers);
}

static void make_journal(void)
{
    char tmpl[] = "/tmp/mbq-http-XXXXXX";
    CHECK(mkdtemp(tmpl) != NULL);
    snprintf(dir, sizeof dir, "%s", tmpl);
    mbq_journal *j = NULL;
    CHECK_INT(mbq_journal_open(&j, dir, MBQ_JOURNAL_WRITE), 0);
    CHECK_INT(mbq_journal_table_failed(j, "orders", "merge", "boom", mbq_now_ms()), 0);
    mbq_journal_close(j);
}

static mbq_server *start(const char *token, unsigned timeout_s)
{
    mbq_server *s = NULL;
    mbq_server_options o = MBQ_SERVER_OPTIONS_INIT;
    o.listen = "127.0.0.1:0";
    o.state_dir = dir;
    o.token = token;
    o.timeout_s = timeout_s;
    o.max_connections = 16;
    CHECK_INT(mbq_server_start(&s, &o), 0);
    CHECK(s && mbq_server_port(s) > 0);
    return s;
}

static int connect_raw(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static void test_routes_and_security_headers(void)
{
    mbq_server *s = start(NULL, 10);
    unsigned port = s ? mbq_server_port(s) : 0;
    reply r;
    request(&r, port, "GET", "/", NULL);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(mbq_buf_cstr(&r.headers), "Content-Security-Policy: default-src 'none'; "
                                             "style-src 'self'");
    CHECK_CONTAINS(mbq_buf_cstr(&r.headers), "X-Content-Type-Options: nosniff");
    CHECK_CONTAINS(mbq_buf_cstr(&r.body), "data-table=\"orders\"");
    reply_free(&r);
    request(&r, port, "GET", "/table/orders", NULL);
    CHECK_INT(r.status, 200);
    reply_free(&r);
    request(&r, port, "GET", "/table/nope", NULL);
    CHECK_INT(r.status, 404);
    reply_free(&r);
    request(&r, port, "GET", "/etc/passwd", NULL);
    CHECK_INT(r.status, 404);
    reply_free(&r);
    request(&r, port, "GET", "/healthz", NULL);
    CHECK_INT(r.status, 503);
    CHECK_CONTAINS(mbq_buf_cstr(&r.body), "orders: 1 failed run(s) in a row, last in merge: boom");
    reply_free(&r);
    request(&r, port, "GET", "/metrics", NULL);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(mbq_buf_cstr(&r.headers), "Content-Type: text/plain; version=0.0.4");
    CHECK_CONTAINS(mbq_buf_cstr(&r.body), "mbq_table_up{table=\"orders\"} 0\n");
    reply_free(&r);
    request(&r, port, "GET", "/api/tables", NULL);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(mbq_buf_cstr(&r.headers), "Content-Type: application/json");
    reply_free(&r);
    request(&r, port, "HEAD", "/", NULL);
    CHECK_INT(r.status, 200);
    /* HEAD gives GET's headers, Content-Length included, and no body. */
    CHECK_INT(r.body.len, 0);
    CHECK(strstr(mbq_buf_cstr(&r.headers), "Content-Length: 0") == NULL);
    reply_free(&r);
    mbq_server_stop(s);
}

static void test_only_get_and_head(void)
{
    mbq_server *s = start(NULL, 10);
    unsigned port = s ? mbq_server_port(s) : 0;
    const char *methods[] = {"POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        reply r;
        request(&r, port, methods[i], "/", NULL);
        CHECK_INT(r.status, 405);
        CHECK_CONTAINS(mbq_buf_cstr(&r.headers), "Allow: GET, HEAD");
        reply_free(&r);
    }
    mbq_server_stop(s);
}

static void test_bearer_token(void)
{
    mbq_server *s = start(TOKEN, 10);
    unsigned port = s ? mbq_server_port(s) : 0;
    reply r;
    const char *paths[] = {"/", "/metrics", "/healthz", "/api/tables", "/table/orders"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        request(&r, port, "GET", paths[i], NULL);
        CHECK_INT(r.status, 401);
        CHECK_CONTAINS(mbq_buf_cstr(&r.headers), "WWW-Authenticate: Bearer");
        CHECK(strstr(mbq_buf_cstr(&r.body), "orders") == NULL);
        reply_free(&r);
    }
    request(&r, port, "GET", "/", "Authorization: Bearer " TOKEN "x");
    CHECK_INT(r.status, 401);
    reply_free(&r);
    request(&r, port, "GET", "/", "Authorization: Basic " TOKEN);
    CHECK_INT(r.status, 401);
    reply_free(&r);
    request(&r, port, "GET", "/", "Authorization: Bearer " TOKEN);
    CHECK_INT(r.status, 200);
    reply_free(&r);
    mbq_server_stop(s);
}

/* A request head larger than the connection's memory limit is refused
 * with 431 (Request Header Fields Too Large), never buffered without bound. */
static void test_oversized_request_is_refused(void)
{
    mbq_server *s = start(NULL, 10);
    unsigned port = s ? mbq_server_port(s) : 0;
    mbq_buf big = MBQ_BUF_INIT;
    mbq_buf_puts(&big, "X-Big: ");
    for (int i = 0; i < 100000; i++)
        mbq_buf_putc(&big, 'a');
    reply r;
    request(&r, port, "GET", "/", mbq_buf_cstr(&big));
    CHECK_INT(r.status, 431);
    reply_free(&r);
    mbq_buf_free(&big);
    mbq_server_stop(s);
}

/* Clients that send half a request and stop (slowloris) hold a connection
 * each, not a thread: others are answered at once, and the idle ones are
 * dropped after the timeout. */
static void test_slow_clients_do_not_stall_the_server(void)
{
    mbq_server *s = start(NULL, 2);
    unsigned port = s ? mbq_server_port(s) : 0;
    int fds[6];
    for (int i = 0; i < 6; i++) {
        fds[i] = connect_raw(port);
        CHECK(fds[i] >= 0);
        if (fds[i] >= 0 && write(fds[i], "GET / HTTP/1.1\r\nHost: x\r\n", 25) != 25)
            CHECK(0);
    }
    reply r;
    request(&r, port, "GET", "/metrics", NULL);
    CHECK_INT(r.status, 200);
    CHECK(r.seconds < 1.0);
    reply_free(&r);
    /* The idle connections are closed by the server within the timeout
     * (2 s) plus a margin: a read returns end of file. */
    int64_t t0 = mbq_monotonic_ms();
    for (int i = 0; i < 6; i++) {
        if (fds[i] < 0)
            continue;
        struct pollfd p = {fds[i], POLLIN, 0};
        char buf[256];
        int ready = poll(&p, 1, 6000);
        CHECK(ready == 1);
        ssize_t n = ready == 1 ? read(fds[i], buf, sizeof buf) : 1;
        CHECK(n <= 0 || (n > 0 && strncmp(buf, "HTTP/1.1 408", 12) == 0));
        close(fds[i]);
    }
    CHECK(mbq_monotonic_ms() - t0 < 6000);
    mbq_server_stop(s);
}

static void new_journal(const char *d, const char *table)
{
    mbq_journal *j = NULL;
    CHECK_INT(mbq_journal_open(&j, d, MBQ_JOURNAL_WRITE), 0);
    CHECK_INT(mbq_journal_table_failed(j, table, "merge", "boom", mbq_now_ms()), 0);
    mbq_journal_close(j);
}

/* The server keeps the journal open between requests; a journal that
 * appears after it started, or is replaced (restored from a backup), is
 * what it shows next. */
static void test_journal_that_appears_or_is_replaced(void)
{
    char a[] = "/tmp/mbq-http-a-XXXXXX", b[] = "/tmp/mbq-http-b-XXXXXX";
    CHECK(mkdtemp(a) && mkdtemp(b));
    mbq_server *s = NULL;
    mbq_server_options o = MBQ_SERVER_OPTIONS_INIT;
    o.listen = "127.0.0.1:0";
    o.state_dir = a;
    CHECK_INT(mbq_server_start(&s, &o), 0);
    unsigned port = s ? mbq_server_port(s) : 0;
    reply r;
    request(&r, port, "GET", "/healthz", NULL);
    CHECK_INT(r.status, 503);
    CHECK_CONTAINS(mbq_buf_cstr(&r.body), "unhealthy: no journal at");
    reply_free(&r);
    request(&r, port, "GET", "/table/orders", NULL);
    CHECK_INT(r.status, 503);
    reply_free(&r);
    new_journal(a, "first");
    request(&r, port, "GET", "/", NULL);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(mbq_buf_cstr(&r.body), "data-table=\"first\"");
    reply_free(&r);
    new_journal(b, "second");
    mbq_buf from = MBQ_BUF_INIT, to = MBQ_BUF_INIT;
    mbq_buf_printf(&from, "%s/state.db", b);
    mbq_buf_printf(&to, "%s/state.db", a);
    CHECK_INT(rename(mbq_buf_cstr(&from), mbq_buf_cstr(&to)), 0);
    request(&r, port, "GET", "/", NULL);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(mbq_buf_cstr(&r.body), "data-table=\"second\"");
    CHECK(strstr(mbq_buf_cstr(&r.body), "data-table=\"first\"") == NULL);
    reply_free(&r);
    mbq_server_stop(s);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", a, b);
    CHECK_INT(system(cmd), 0);
    mbq_buf_free(&from);
    mbq_buf_free(&to);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    make_journal();
    RUN(test_routes_and_security_headers);
    RUN(test_only_get_and_head);
    RUN(test_bearer_token);
    RUN(test_oversized_request_is_refused);
    RUN(test_slow_clients_do_not_stall_the_server);
    RUN(test_journal_that_appears_or_is_replaced);
    int rc = test_summary();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (dir[0] && system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
    curl_global_cleanup();
    return rc;
}
