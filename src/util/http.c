/* A small libcurl wrapper (see mbq/http.h). */
#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mbq/error.h"
#include "mbq/http.h"
#include "mbq/util.h"
#include "mbq/banned.h"

struct mbq_http {
    CURL *curl;
    mbq_http_options opts;
    char *ca_file; /* owned copy of opts.ca_file */
    char errbuf[CURL_ERROR_SIZE]; /* curl's own fixed-size message buffer */
};

/* curl_global_init is not thread-safe on old curls: run it once. */
static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int mbq_http_new(mbq_http **out, const mbq_http_options *opts)
{
    *out = NULL;
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK)
        return mbq_error_set(MBQ_ERR, "cannot initialise libcurl: %s",
                             curl_easy_strerror(global_rc));
    mbq_http *h = mbq_calloc(1, sizeof(*h));
    if (!h)
        return MBQ_ENOMEM;
    mbq_http_options def = MBQ_HTTP_OPTIONS_INIT;
    h->opts = opts ? *opts : def;
    if (h->opts.ca_file && !(h->ca_file = mbq_strdup(h->opts.ca_file))) {
        free(h);
        return MBQ_ENOMEM;
    }
    h->opts.ca_file = h->ca_file;
    h->curl = curl_easy_init();
    if (!h->curl) {
        free(h->ca_file);
        free(h);
        return mbq_error_set(MBQ_ERR, "cannot create a curl handle");
    }
    *out = h;
    return 0;
}

void mbq_http_free(mbq_http *h)
{
    if (!h)
        return;
    curl_easy_cleanup(h->curl);
    free(h->ca_file);
    free(h);
}

void mbq_http_response_free(mbq_http_response *resp)
{
    if (!resp)
        return;
    mbq_buf_free(&resp->body);
    mbq_buf_free(&resp->headers);
    resp->status = 0;
    resp->curl_code = 0;
}

typedef struct body_state {
    const mbq_http_body *b;
    int64_t pos;   /* offset in the whole body */
    int64_t total;
    int failed;    /* a file read failed: abort the transfer */
    int stream_done; /* streamed bodies: the middle part has ended */
    int aborted;     /* the stream asked to abort */
    size_t post_pos;
} body_state;

static size_t read_cb(char *dst, size_t size, size_t nitems, void *ud)
{
    body_state *st = ud;
    const mbq_http_body *b = st->b;
    size_t want = size * nitems;
    size_t done = 0;
    while (done < want && st->pos < st->total) {
        int64_t pos = st->pos;
        size_t room = want - done;
        if (pos < (int64_t)b->pre_len) {
            size_t n = b->pre_len - (size_t)pos;
            if (n > room)
                n = room;
            memcpy(dst + done, b->pre + pos, n);
            done += n;
            st->pos += (int64_t)n;
            continue;
        }
        pos -= (int64_t)b->pre_len;
        if (pos < b->file_len) {
            int64_t left = b->file_len - pos;
            size_t n = (int64_t)room < left ? room : (size_t)left;
            if (fseeko(b->file, (off_t)(b->file_off + pos), SEEK_SET) != 0) {
                st->failed = 1;
                return CURL_READFUNC_ABORT;
            }
            size_t got = fread(dst + done, 1, n, b->file);
            if (got == 0) {
                st->failed = 1;
                return CURL_READFUNC_ABORT;
            }
            done += got;
            st->pos += (int64_t)got;
            continue;
        }
        pos -= b->file_len;
        size_t n = b->post_len - (size_t)pos;
        if (n > room)
            n = room;
        memcpy(dst + done, b->post + pos, n);
        done += n;
        st->pos += (int64_t)n;
    }
    return done;
}

/* A body with a streamed middle part: pre, stream until it ends, post.
 * Positions only grow (no rewind). */
static size_t read_stream_cb(char *dst, size_t size, size_t nitems, void *ud)
{
    body_state *st = ud;
    const mbq_http_body *b = st->b;
    size_t want = size * nitems;
    size_t done = 0;
    while (done < want) {
        if (st->pos < (int64_t)b->pre_len) {
            size_t n = b->pre_len - (size_t)st->pos;
            if (n > want - done)
                n = want - done;
            memcpy(dst + done, b->pre + st->pos, n);
            done += n;
            st->pos += (int64_t)n;
            continue;
        }
        if (!st->stream_done) {
            if (done > 0)
                return done; /* hand over what we have before blocking */
            size_t got = b->stream(b->stream_ud, dst, want);
            if (got == MBQ_HTTP_STREAM_ABORT) {
                st->aborted = 1;
                return CURL_READFUNC_ABORT;
            }
            if (got > 0)
                return got;
            st->stream_done = 1;
            st->post_pos = 0;
            continue;
        }
        if (st->post_pos >= b->post_len)
            break;
        size_t n = b->post_len - st->post_pos;
        if (n > want - done)
            n = want - done;
        memcpy(dst + done, b->post + st->post_pos, n);
        done += n;
        st->post_pos += n;
    }
    return done;
}

static int seek_cb(void *ud, curl_off_t offset, int origin)
{
    body_state *st = ud;
    if (origin != SEEK_SET || offset < 0 || offset > st->total)
        return CURL_SEEKFUNC_CANTSEEK;
    st->pos = offset;
    return CURL_SEEKFUNC_OK;
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *ud)
{
    mbq_buf *b = ud;
    size_t n = size * nmemb;
    if (mbq_buf_append(b, data, n) < 0)
        return 0; /* makes curl fail with CURLE_WRITE_ERROR */
    return n;
}

static size_t header_cb(char *data, size_t size, size_t nmemb, void *ud)
{
    mbq_buf *b = ud;
    size_t n = size * nmemb;
    /* A new status line starts a new response (after "100 Continue" or a
     * redirect): keep only the headers of the last one. */
    if (n >= 5 && memcmp(data, "HTTP/", 5) == 0)
        mbq_buf_clear(b);
    if (mbq_buf_append(b, data, n) < 0)
        return 0;
    return n;
}

/* Did the last response's header block end (its empty line arrived)?
 * Trailers of a chunked body may follow it in the same buffer. */
static bool headers_complete(const mbq_buf *h)
{
    const char *p = mbq_buf_cstr(h);
    return strstr(p, "\n\r\n") || strstr(p, "\n\n");
}

/* Append one header line to *list (curl_slist_append returns NULL on
 * failure and leaves the list as it was). */
static int append_header(struct curl_slist **list, const char *line)
{
    struct curl_slist *n = curl_slist_append(*list, line);
    if (!n)
        return mbq_error_set(MBQ_ENOMEM, "out of memory");
    *list = n;
    return 0;
}

/* The URL without its query string, for messages: resumable upload URLs
 * carry the upload id, which is a bearer capability for the session. */
static void url_for_message(mbq_buf *out, const char *url)
{
    const char *q = strchr(url, '?');
    size_t n = q ? (size_t)(q - url) : strlen(url);
    if (mbq_buf_append(out, url, n) < 0)
        mbq_buf_clear(out);
}

int mbq_http_do(mbq_http *h, mbq_http_response *resp, const mbq_http_request *req)
{
    int rc = 0;
    struct curl_slist *hdrs = NULL;
    mbq_buf where = MBQ_BUF_INIT;
    CURL *c = h->curl;
    body_state st = {req->body, 0, 0, 0, 0, 0, 0};

    mbq_buf_clear(&resp->body);
    mbq_buf_clear(&resp->headers);
    resp->status = 0;
    resp->curl_code = 0;

    /* Keeps the connection cache, drops every option of the last request. */
    curl_easy_reset(c);
    h->errbuf[0] = '\0';
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->errbuf);
    curl_easy_setopt(c, CURLOPT_URL, req->url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_USERAGENT, "mbq/" MBQ_VERSION);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &resp->headers);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, h->opts.tls_verify ? 1L : 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, h->opts.tls_verify ? 2L : 0L);
    /* A private CA (a proxy or private endpoint in front of BigQuery, a
     * test CA) replaces the system bundle; verification stays on. */
    if (h->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, h->ca_file);
    if (h->opts.connect_timeout_ms > 0)
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)h->opts.connect_timeout_ms);
    if (h->opts.timeout_ms > 0)
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)h->opts.timeout_ms);
    if (h->opts.low_speed_time_s > 0) {
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)h->opts.low_speed_time_s);
    }

    bool stream = req->body && req->body->stream;
    for (const char *const *p = req->headers; rc == 0 && p && *p; p++)
        rc = append_header(&hdrs, *p);
    /* No "Expect: 100-continue" round trip before large bodies; a stream of
     * unknown length goes by chunked transfer encoding, never re-sent. */
    if (rc == 0)
        rc = append_header(&hdrs, "Expect:");
    if (rc == 0 && stream)
        rc = append_header(&hdrs, "Transfer-Encoding: chunked");
    if (rc < 0)
        goto done;
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);

    if (stream) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, read_stream_cb);
        curl_easy_setopt(c, CURLOPT_READDATA, &st);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)-1);
        /* Blocking in the read callback can last as long as the producer
         * needs: the low-speed check must not count that as a stall. */
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 0L);
    } else if (req->body) {
        st.total = (int64_t)req->body->pre_len + req->body->file_len + (int64_t)req->body->post_len;
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, read_cb);
        curl_easy_setopt(c, CURLOPT_READDATA, &st);
        if (!req->body->no_resend) {
            curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, seek_cb);
            curl_easy_setopt(c, CURLOPT_SEEKDATA, &st);
        }
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)st.total);
    } else {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    }
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "POST") != 0)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);

    CURLcode cc = curl_easy_perform(c);
    resp->curl_code = (int)cc;
    if (cc != CURLE_OK) {
        url_for_message(&where, req->url);
        if (st.aborted)
            rc = mbq_error_set(MBQ_ERR, "%s '%s': the request body was aborted before its end",
                               req->method, mbq_buf_cstr(&where));
        else if (st.failed)
            rc = mbq_error_set(MBQ_EIO, "cannot read the request body for %s '%s'", req->method,
                               mbq_buf_cstr(&where));
        else
            rc = mbq_error_set(cc == CURLE_OPERATION_TIMEDOUT ? MBQ_ETIMEOUT : MBQ_ENET,
                               "%s '%s': %s", req->method, mbq_buf_cstr(&where),
                               h->errbuf[0] ? h->errbuf : curl_easy_strerror(cc));
        goto done;
    }
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    resp->status = status;
    /* A connection closed inside the header block: curl takes the close as
     * the end of a body-less answer and reports success. It is a cut
     * answer (the request may have been acted on), so it is reported like
     * a connection reset, and retried as one. */
    if (!headers_complete(&resp->headers)) {
        resp->curl_code = (int)CURLE_RECV_ERROR;
        url_for_message(&where, req->url);
        rc = mbq_error_set(MBQ_ENET, "%s '%s': the connection closed inside the response headers",
                           req->method, mbq_buf_cstr(&where));
    }

done:
    curl_slist_free_all(hdrs);
    mbq_buf_free(&where);
    return rc;
}

int mbq_http_response_header(mbq_buf *out, const mbq_http_response *resp, const char *name)
{
    const char *p = mbq_buf_cstr(&resp->headers);
    size_t nlen = strlen(name);
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t llen = eol ? (size_t)(eol - p) : strlen(p);
        if (llen > nlen && strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            const char *v = p + nlen + 1;
            const char *end = p + llen;
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            while (end > v && (end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
                end--;
            return mbq_buf_append(out, v, (size_t)(end - v));
        }
        if (!eol)
            break;
        p = eol + 1;
    }
    return MBQ_ENOTFOUND;
}

bool mbq_http_retryable_curl(int curl_code)
{
    switch ((CURLcode)curl_code) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SEND_FAIL_REWIND: /* a dead connection with no_resend set */
        return true;
    default:
        return false;
    }
}

bool mbq_http_retryable_status(long status)
{
    return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

int64_t mbq_http_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms)
{
    if (base_ms <= 0)
        return 0;
    int64_t ceiling = base_ms;
    for (int i = 0; i < attempt && ceiling < cap_ms; i++)
        ceiling *= 2;
    if (cap_ms > 0 && ceiling > cap_ms)
        ceiling = cap_ms;
    return (int64_t)(mbq_random_u64() % (uint64_t)(ceiling + 1));
}

int mbq_http_url_escape(mbq_buf *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int rc;
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == '~') {
            rc = mbq_buf_putc(out, (char)*p);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            rc = mbq_buf_append(out, e, 3);
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}
