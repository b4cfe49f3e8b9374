/* The dashboard's HTTP server on libmicrohttpd (see mbq/server.h).
 *
 * Why libmicrohttpd: a GNU library packaged by Debian (libmicrohttpd-dev),
 * maintained for two decades, written for embedding in C programs, with the
 * limits this server needs built in: a connection cap overall and per IP, an
 * idle timeout, and a per-connection memory pool that bounds the request
 * head (a larger one gets 431 and the connection is closed). Its internal
 * threads poll every socket non-blocking, so a slow client holds one slot
 * until the timeout, never a thread.
 *
 * Each request opens the journal read-only, reads one snapshot and closes
 * it (src/server/dash.c): SQLite's WAL lets readers run beside the one
 * writer without blocking it (https://www.sqlite.org/wal.html, "readers do
 * not block writers and a writer does not block readers"). */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mbq/error.h"
#include "mbq/log.h"
#include "mbq/server.h"
#include "mbq/util.h"
#include "mbq/banned.h"

struct mbq_server {
    struct MHD_Daemon *daemon;
    mbq_server_options opts;
    unsigned port;
    /* The journal, opened read-only once and kept (see journal_get); the
     * mutex serializes the requests that read it (each takes about a
     * millisecond). */
    pthread_mutex_t mu;
    mbq_journal *j;
    dev_t dev;
    ino_t ino;
};

/* Nothing may be loaded from elsewhere, nothing may run: the pages are
 * plain HTML with inline SVG and one stylesheet of our own. */
static const char csp[] = "default-src 'none'; style-src 'self'; img-src 'self'; "
                          "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/* ---- listen address and token ---- */

static bool is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
            return true;
        /* ::ffff:127.x.y.z, an IPv4 loopback address mapped. */
        return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127;
    }
    return false;
}

int mbq_listen_parse(struct sockaddr_storage *out, socklen_t *len, bool *loopback,
                     const char *listen)
{
    struct addrinfo hints, *res = NULL;
    char *host = NULL;
    const char *port = NULL;
    int rc = 0;
    memset(out, 0, sizeof *out);
    if (!listen || !*listen)
        return mbq_error_set(MBQ_ECONFIG, "empty listen address (want HOST:PORT)");
    if (listen[0] == '[') {
        const char *end = strchr(listen, ']');
        if (end && end[1] == ':') {
            host = strndup(listen + 1, (size_t)(end - listen - 1));
            port = end + 2;
        }
    } else {
        const char *colon = strrchr(listen, ':');
        if (colon && !memchr(listen, ':', (size_t)(colon - listen))) {
            host = strndup(listen, (size_t)(colon - listen));
            port = colon + 1;
        }
    }
    int64_t port_n = -1;
    if (!host || !*host || !port || mbq_parse_i64(&port_n, port) < 0 || port_n < 0 ||
        port_n > 65535) {
        rc = mbq_error_set(MBQ_ECONFIG, "invalid listen address '%s' (want HOST:PORT, e.g. "
                                        "127.0.0.1:8080 or [::1]:8080)", listen);
        goto done;
    }
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai != 0 || !res) {
        rc = mbq_error_set(MBQ_ECONFIG, "cannot resolve listen address '%s': %s", listen,
                           gai_strerror(gai));
        goto done;
    }
    memcpy(out, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    *loopback = is_loopback(res->ai_addr);
done:
    if (res)
        freeaddrinfo(res);
    free(host);
    return rc;
}

bool mbq_token_equal(const char *presented, const char *expected)
{
    /* Every byte of the expected token is compared whatever the presented
     * one holds, and differences are OR-ed, not branched on: the time taken
     * depends on the expected length only. */
    size_t n = strlen(expected), m = presented ? strlen(presented) : 0;
    unsigned char diff = (unsigned char)(n != m);
    for (size_t i = 0; i < n; i++) {
        unsigned char p = i < m ? (unsigned char)presented[i] : 0;
        diff |= (unsigned char)(p ^ (unsigned char)expected[i]);
    }
    return diff == 0 && presented != NULL;
}

/* ---- responses ---- */

static enum MHD_Result respond(struct MHD_Connection *c, unsigned status, const char *type,
                               mbq_buf *body)
{
    /* For HEAD the whole response is built too: libmicrohttpd sends its
     * headers (Content-Length included) and leaves the body out. */
    struct MHD_Response *r = MHD_create_response_from_buffer(
        body->len, body->len ? body->ptr : (void *)"", MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(r, "Content-Security-Policy", csp);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    if (status == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"mbq\"");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result respond_text(struct MHD_Connection *c, unsigned status, const char *text)
{
    mbq_buf b = MBQ_BUF_INIT;
    enum MHD_Result ret = MHD_NO;
    if (mbq_buf_puts(&b, text) == 0 && mbq_buf_putc(&b, '\n') == 0)
        ret = respond(c, status, "text/plain; charset=utf-8", &b);
    mbq_buf_free(&b);
    return ret;
}

static enum MHD_Result respond_error_page(struct MHD_Connection *c, unsigned status,
                                          const char *msg)
{
    mbq_buf b = MBQ_BUF_INIT;
    enum MHD_Result ret = MHD_NO;
    if (mbq_render_error_page(&b, (int)status, msg) == 0)
        ret = respond(c, status, "text/html; charset=utf-8", &b);
    mbq_buf_free(&b);
    return ret;
}

/* ---- routes ---- */

typedef enum route_kind {
    R_OVERVIEW, R_TABLE, R_ALERTS, R_JSON, R_METRICS, R_HEALTH, R_CSS, R_ICON, R_NONE
} route_kind;

static route_kind route_of(const char *url, const char **arg)
{
    static const struct {
        const char *path;
        route_kind kind;
    } exact[] = {{"/", R_OVERVIEW},      {"/alerts", R_ALERTS},   {"/api/tables", R_JSON},
                 {"/metrics", R_METRICS}, {"/healthz", R_HEALTH}, {"/style.css", R_CSS},
                 {"/favicon.svg", R_ICON}};
    *arg = NULL;
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
        if (strcmp(url, exact[i].path) == 0)
            return exact[i].kind;
    /* libmicrohttpd hands the path percent-decoded: the rest is the name. */
    if (strncmp(url, "/table/", 7) == 0 && url[7]) {
        *arg = url + 7;
        return R_TABLE;
    }
    return R_NONE;
}

static void query_for(mbq_dash_query *q, route_kind kind, const char *arg)
{
    memset(q, 0, sizeof *q);
    q->runs_per_table = 1;
    switch (kind) {
    case R_TABLE:
        q->only_table = arg;
        q->runs_per_table = 60;
        q->events_per_table = 50;
        break;
    case R_ALERTS: q->alerts = 100; break;
    case R_JSON:
    case R_METRICS: q->runs_per_table = 5; break;
    default: break;
    }
}

static int render(mbq_buf *b, unsigned *status, const char **type, route_kind kind,
                  const mbq_dash *d)
{
    bool healthy = true;
    int rc;
    *status = MHD_HTTP_OK;
    *type = "text/html; charset=utf-8";
    switch (kind) {
    case R_OVERVIEW: return mbq_render_overview(b, d);
    case R_TABLE: return mbq_render_table_page(b, d);
    case R_ALERTS: return mbq_render_alerts_page(b, d);
    case R_JSON: *type = "application/json"; return mbq_render_tables_json(b, d);
    case R_METRICS:
        /* The Prometheus text exposition format, version 0.0.4. */
        *type = "text/plain; version=0.0.4; charset=utf-8";
        return mbq_render_metrics(b, d);
    case R_HEALTH:
        *type = "text/plain; charset=utf-8";
        rc = mbq_render_health(b, &healthy, d);
        *status = healthy ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE;
        return rc;
    default: return MBQ_EINTERNAL;
    }
}

/* The kept journal handle, opened on first use and again when state.db is
 * another file than the one open (restored from a backup, recreated).
 * Kept, because opening costs a file open, a schema read and a check of
 * the WAL index on every request, and an idle open connection costs
 * nothing: it holds no lock and no snapshot, so it never holds up the
 * sync's writes or checkpoints (https://www.sqlite.org/wal.html). Each
 * request reads inside one short read transaction (mbq_dash_read). Called
 * with s->mu held. */
static int journal_get(struct mbq_server *s, mbq_journal **out)
{
    mbq_buf path = MBQ_BUF_INIT;
    struct stat st;
    int rc = mbq_buf_printf(&path, "%s/state.db", s->opts.state_dir);
    bool same = rc == 0 && s->j && stat(mbq_buf_cstr(&path), &st) == 0 && st.st_dev == s->dev &&
                st.st_ino == s->ino;
    if (rc == 0 && !same) {
        mbq_journal_close(s->j);
        s->j = NULL;
        if ((rc = mbq_journal_open(&s->j, s->opts.state_dir, MBQ_JOURNAL_READONLY)) == 0 &&
            stat(mbq_buf_cstr(&path), &st) == 0) {
            s->dev = st.st_dev;
            s->ino = st.st_ino;
        }
    }
    *out = s->j;
    mbq_buf_free(&path);
    return rc;
}

/* A page from the journal: load the snapshot the route needs, render. */
static enum MHD_Result serve_dynamic(struct mbq_server *s, struct MHD_Connection *c,
                                     route_kind kind, const char *arg)
{
    mbq_dash d;
    mbq_dash_query q;
    mbq_buf b = MBQ_BUF_INIT;
    unsigned status = MHD_HTTP_OK;
    const char *type = "text/html; charset=utf-8";
    enum MHD_Result ret;
    query_for(&q, kind, arg);
    mbq_journal *j = NULL;
    pthread_mutex_lock(&s->mu);
    int rc = journal_get(s, &j);
    bool no_journal = rc < 0;
    if (rc == 0)
        rc = mbq_dash_read(&d, j, s->opts.state_dir, s->opts.cfg, &q, mbq_now_ms());
    else
        memset(&d, 0, sizeof d);
    /* After a failed read the handle may be what is wrong (the file was
     * replaced under it, or damaged): the next request opens it again. */
    if (rc < 0 && rc != MBQ_ENOTFOUND) {
        mbq_journal_close(s->j);
        s->j = NULL;
    }
    pthread_mutex_unlock(&s->mu);
    if (rc == 0) {
        d.healthy_within_ms = s->opts.healthy_within_ms;
        d.refresh_s = s->opts.refresh_s;
        rc = render(&b, &status, &type, kind, &d);
    }
    if (rc < 0) {
        /* The journal may not exist yet (no sync ran) or be mid-migration:
         * 503 says "try later"; an unknown table is 404. */
        mbq_buf msg = MBQ_BUF_INIT;
        unsigned code = rc == MBQ_ENOTFOUND && kind == R_TABLE && !no_journal
                            ? MHD_HTTP_NOT_FOUND
                            : MHD_HTTP_SERVICE_UNAVAILABLE;
        mbq_buf_printf(&msg, "%s%s", kind == R_HEALTH ? "unhealthy: " : "", mbq_error_last());
        mbq_log(MBQ_LOG_WARN, NULL, "serve", "%s", mbq_buf_cstr(&msg));
        ret = kind == R_HEALTH || kind == R_METRICS || kind == R_JSON
                  ? respond_text(c, code, mbq_buf_cstr(&msg))
                  : respond_error_page(c, code, mbq_buf_cstr(&msg));
        mbq_buf_free(&msg);
    } else {
        ret = respond(c, status, type, &b);
    }
    mbq_dash_free(&d);
    mbq_buf_free(&b);
    /* The message lives in this worker thread's storage, which
     * libmicrohttpd's threads never free when they exit: drop it now. */
    mbq_error_clear();
    return ret;
}

static bool authorized(const struct mbq_server *s, struct MHD_Connection *c)
{
    if (!s->opts.token)
        return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    /* RFC 6750 section 2.1: "Bearer" then one space then the token; the
     * scheme name is case-insensitive (RFC 7235 section 2.1). */
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return mbq_token_equal(NULL, s->opts.token);
    return mbq_token_equal(h + 7, s->opts.token);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls)
{
    struct mbq_server *s = cls;
    (void)version, (void)upload_data, (void)con_cls;
    bool head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    /* Read-only: anything but GET and HEAD is refused before it is read. */
    if (!head && strcmp(method, MHD_HTTP_METHOD_GET) != 0)
        return respond_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed: GET or HEAD");
    /* A body on a GET is not read either: answering on the first call makes
     * libmicrohttpd close the connection instead of reading it. */
    if (*upload_data_size > 0)
        return respond_text(c, MHD_HTTP_BAD_REQUEST, "a GET request has no body");
    if (!authorized(s, c))
        return respond_text(c, MHD_HTTP_UNAUTHORIZED, "unauthorized: send 'Authorization: "
                                                      "Bearer <token>'");
    const char *arg = NULL;
    route_kind kind = route_of(url, &arg);
    mbq_buf b = MBQ_BUF_INIT;
    enum MHD_Result ret;
    switch (kind) {
    case R_NONE: return respond_error_page(c, MHD_HTTP_NOT_FOUND, "no such page");
    case R_CSS:
        if (mbq_buf_puts(&b, mbq_dash_css) < 0)
            return MHD_NO;
        ret = respond(c, MHD_HTTP_OK, "text/css; charset=utf-8", &b);
        mbq_buf_free(&b);
        return ret;
    case R_ICON:
        if (mbq_buf_puts(&b, mbq_dash_favicon_svg) < 0)
            return MHD_NO;
        ret = respond(c, MHD_HTTP_OK, "image/svg+xml", &b);
        mbq_buf_free(&b);
        return ret;
    default: return serve_dynamic(s, c, kind, arg);
    }
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    mbq_buf b = MBQ_BUF_INIT;
    if (mbq_buf_vprintf(&b, fmt, ap) == 0) {
        while (b.len && (b.ptr[b.len - 1] == '\n'))
            b.ptr[--b.len] = '\0';
        mbq_log(MBQ_LOG_DEBUG, NULL, "serve", "libmicrohttpd: %s", mbq_buf_cstr(&b));
    }
    mbq_buf_free(&b);
}

/* ---- start and stop ---- */

static int check_options(bool *loopback, struct sockaddr_storage *addr, socklen_t *alen,
                         const mbq_server_options *o)
{
    int rc = mbq_listen_parse(addr, alen, loopback, o->listen);
    if (rc < 0)
        return rc;
    if (o->token && strlen(o->token) < MBQ_SERVER_TOKEN_MIN)
        return mbq_error_set(MBQ_ECONFIG, "the token is too short (%zu characters, at least %d)",
                             strlen(o->token), MBQ_SERVER_TOKEN_MIN);
    /* Off the loopback interface anyone on the network could read every
     * table name, cursor and error: only with a token. */
    if (!*loopback && !o->token)
        return mbq_error_set(MBQ_ECONFIG, "refusing to listen on '%s' without a token: a "
                                          "non-loopback address needs MBQ_SERVE_TOKEN set (at "
                                          "least %d characters; clients send 'Authorization: "
                                          "Bearer <token>')", o->listen, MBQ_SERVER_TOKEN_MIN);
    return 0;
}

int mbq_server_start(mbq_server **out, const mbq_server_options *opts)
{
    struct sockaddr_storage addr;
    socklen_t alen = 0;
    bool loopback = false;
    int rc;
    *out = NULL;
    if (!opts->state_dir)
        return mbq_error_set(MBQ_ECONFIG, "no state directory to serve");
    if ((rc = check_options(&loopback, &addr, &alen, opts)) < 0)
        return rc;
    struct mbq_server *s = mbq_calloc(1, sizeof *s);
    if (!s)
        return MBQ_ENOMEM;
    s->opts = *opts;
    pthread_mutex_init(&s->mu, NULL);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    unsigned per_ip = opts->max_connections / 2 ? opts->max_connections / 2 : 1;
    s->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, handle, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)(opts->threads ? opts->threads : 1),
        MHD_OPTION_CONNECTION_LIMIT, opts->max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        per_ip, MHD_OPTION_CONNECTION_TIMEOUT, opts->timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, opts->memory_limit, MHD_OPTION_EXTERNAL_LOGGER,
        mhd_log, NULL, MHD_OPTION_END);
    if (!s->daemon) {
        rc = mbq_error_set(MBQ_EIO, "cannot listen on '%s' (address in use, or not an address "
                                    "of this machine)", opts->listen);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return rc;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : 0;
    *out = s;
    return 0;
}

unsigned mbq_server_port(const mbq_server *s)
{
    return s->port;
}

void mbq_server_stop(mbq_server *s)
{
    if (!s)
        return;
    if (s->daemon)
        MHD_stop_daemon(s->daemon);
    mbq_journal_close(s->j);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
