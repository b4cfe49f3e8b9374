/* The credential object every type shares: token cache, refresh before
 * expiry, retries of the token request, and the HTTP and JSON helpers of the
 * token exchanges (see mbq/credentials.h and cred_internal.h). */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cred_internal.h"
#include "mbq/error.h"
#include "mbq/log.h"
#include "mbq/util.h"
#include "mbq/banned.h"

void mbq_cred_options_init(mbq_cred_options *opts)
{
    mbq_http_options http = MBQ_HTTP_OPTIONS_INIT;
    memset(opts, 0, sizeof(*opts));
    opts->refresh_margin_ms = 60000;
    opts->max_retries = 5;
    opts->retry_max_elapsed_ms = 60000;
    opts->retry_initial_ms = 500;
    opts->metadata_ping_ms = 500;
    opts->http = http;
    opts->http.timeout_ms = 60000;
}

static void wipe_free(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

int cred_new(mbq_cred **out, const cred_ops *ops, void *impl, const char *source,
             const mbq_cred_options *opts)
{
    int rc = 0;
    mbq_cred *c = mbq_calloc(1, sizeof(*c));
    *out = NULL;
    if (!c) {
        if (impl)
            ops->free_impl(impl);
        return MBQ_ENOMEM;
    }
    c->ops = ops;
    c->impl = impl;
    if (opts)
        c->opts = *opts;
    else
        mbq_cred_options_init(&c->opts);
    c->opts.http.ca_file = NULL; /* copied by mbq_http_new, not kept */
    c->source = mbq_strdup(source);
    if (!c->source) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    if ((rc = mbq_http_new(&c->http, opts ? &opts->http : &c->opts.http)) < 0)
        goto done;
    *out = c;
    c = NULL;
done:
    mbq_cred_free(c);
    return rc;
}

void mbq_cred_free(mbq_cred *c)
{
    if (!c)
        return;
    if (c->impl)
        c->ops->free_impl(c->impl);
    mbq_http_free(c->http);
    wipe_free(c->token);
    free(c->source);
    free(c->principal);
    free(c->project);
    free(c->quota_project);
    free(c);
}

const char *mbq_cred_kind(const mbq_cred *c) { return c->ops->kind; }
const char *mbq_cred_source(const mbq_cred *c) { return c->source; }
const char *mbq_cred_quota_project(const mbq_cred *c) { return c->quota_project; }
unsigned mbq_cred_fetch_count(const mbq_cred *c) { return c->fetches; }

void mbq_cred_invalidate(mbq_cred *c)
{
    wipe_free(c->token);
    c->token = NULL;
    c->token_expiry_ms = 0;
    if (c->ops->invalidate)
        c->ops->invalidate(c);
}

int mbq_cred_token(const char **out, mbq_cred *c)
{
    int rc = 0;
    *out = NULL;
    if (c->token && mbq_now_ms() < c->token_expiry_ms - c->opts.refresh_margin_ms) {
        *out = c->token;
        return 0;
    }
    int64_t start = mbq_monotonic_ms();
    for (int attempt = 0;; attempt++) {
        bool retry = false;
        char *token = NULL;
        int64_t expiry_ms = 0;
        rc = c->ops->fetch(c, &token, &expiry_ms, &retry);
        if (rc == 0) {
            wipe_free(c->token);
            c->token = token;
            c->token_expiry_ms = expiry_ms;
            c->fetches++;
            *out = c->token;
            return 0;
        }
        if (!retry || attempt >= c->opts.max_retries)
            return rc;
        int64_t delay = mbq_http_backoff_ms(attempt, c->opts.retry_initial_ms, 32000);
        if (mbq_monotonic_ms() - start + delay > c->opts.retry_max_elapsed_ms)
            return rc;
        mbq_log_debug("token request failed (%s), retrying in %lld ms", mbq_error_last(),
                      (long long)delay);
        mbq_sleep_ms(delay);
    }
}

int mbq_cred_principal(mbq_buf *out, mbq_cred *c)
{
    int rc;
    if (!c->principal && c->ops->principal && (rc = c->ops->principal(c)) < 0)
        return rc;
    return mbq_buf_puts(out, c->principal ? c->principal : "unknown principal");
}

const char *mbq_cred_project(mbq_cred *c)
{
    if (!c->project && !c->project_looked && c->ops->project) {
        c->project_looked = true;
        if (c->ops->project(c) < 0) {
            mbq_log_debug("no project id from %s: %s", c->source, mbq_error_last());
            mbq_error_clear();
        }
    }
    return c->project;
}

/* ---- helpers ------------------------------------------------------------- */

void cred_secret(const char *s)
{
    /* Short values ("", "Bearer") would mask harmless text everywhere;
     * every real secret here is far longer. */
    if (s && strlen(s) >= 8)
        mbq_secret_register(s);
}

const char *cred_json_str(json_object *o, const char *key)
{
    json_object *v;
    if (!o || !json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &v) ||
        !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

json_object *cred_json_parse(const char *data, size_t len)
{
    json_tokener *tok = json_tokener_new();
    if (!tok)
        return NULL;
    json_object *root = json_tokener_parse_ex(tok, data, (int)len);
    if (root && json_tokener_get_error(tok) != json_tokener_success) {
        json_object_put(root);
        root = NULL;
    }
    json_tokener_free(tok);
    return root;
}

/* The reason a token endpoint gives: OAuth's {"error", "error_description"}
 * (RFC 6749 section 5.2, what oauth2.googleapis.com and STS answer) or
 * Google's API error {"error": {"message", "status"}} (IAM Credentials). */
static void refusal_reason(mbq_buf *out, json_object *root)
{
    json_object *e;
    const char *err = cred_json_str(root, "error");
    const char *desc = cred_json_str(root, "error_description");
    if (err) {
        mbq_buf_printf(out, "%s%s%s", err, desc ? ": " : "", desc ? desc : "");
        return;
    }
    if (root && json_object_object_get_ex(root, "error", &e) &&
        json_object_is_type(e, json_type_object)) {
        const char *st = cred_json_str(e, "status");
        const char *msg = cred_json_str(e, "message");
        mbq_buf_printf(out, "%s%s%s", st ? st : "error", msg ? ": " : "", msg ? msg : "");
        return;
    }
    mbq_buf_puts(out, "no error given");
}

/* The URL without its query string, which may carry a token. */
static void url_for_message(mbq_buf *out, const char *url)
{
    const char *q = strchr(url, '?');
    mbq_buf_append(out, url, q ? (size_t)(q - url) : strlen(url));
}

static int cred_request(mbq_http_response *resp, bool *retry, mbq_cred *c, const char *what,
                        const char *method, const char *url, const char *const *headers,
                        const char *body, size_t body_len)
{
    int rc;
    mbq_buf where = MBQ_BUF_INIT;
    mbq_http_body b = {body, body_len, NULL, 0, 0, NULL, 0, false, NULL, NULL};
    mbq_http_request req = {method, url, headers, body ? &b : NULL};
    url_for_message(&where, url);
    rc = mbq_http_do(c->http, resp, &req);
    if (rc < 0) {
        *retry = mbq_http_retryable_curl(resp->curl_code);
        mbq_error_wrap(rc, "%s: cannot reach '%s': ", what, mbq_buf_cstr(&where));
    } else if (resp->status != 200) {
        mbq_buf reason = MBQ_BUF_INIT;
        json_object *root = cred_json_parse(mbq_buf_cstr(&resp->body), resp->body.len);
        refusal_reason(&reason, root);
        json_object_put(root);
        *retry = mbq_http_retryable_status(resp->status);
        long st = resp->status;
        rc = mbq_error_set(st == 400 || st == 401 || st == 403 ? MBQ_EAUTH : MBQ_ERR,
                           "%s: '%s' refused: %s (HTTP %ld)", what, mbq_buf_cstr(&where),
                           mbq_buf_cstr(&reason), st);
        mbq_buf_free(&reason);
    }
    mbq_buf_free(&where);
    return rc;
}

int cred_post(json_object **root, long *status, bool *retry, mbq_cred *c, const char *what,
              const char *url, const char *const *headers, const char *body, size_t body_len)
{
    mbq_http_response resp = MBQ_HTTP_RESPONSE_INIT;
    *root = NULL;
    *retry = false;
    int rc = cred_request(&resp, retry, c, what, "POST", url, headers, body, body_len);
    *status = resp.status;
    if (rc == 0) {
        *root = cred_json_parse(mbq_buf_cstr(&resp.body), resp.body.len);
        if (!*root || !json_object_is_type(*root, json_type_object)) {
            json_object_put(*root);
            *root = NULL;
            rc = mbq_error_set(MBQ_ERR, "%s: the answer is not a JSON object", what);
        }
    }
    /* A refusal names the credential it was for: with several sources
     * (impersonation over ADC) the user must know which one to fix. */
    if (rc == MBQ_EAUTH)
        mbq_error_wrap(rc, "%s: ", c->source);
    if (resp.body.ptr)
        OPENSSL_cleanse(resp.body.ptr, resp.body.len);
    mbq_http_response_free(&resp);
    return rc;
}

int cred_get(mbq_buf *out, long *status, bool *retry, mbq_cred *c, const char *what,
             const char *url, const char *const *headers)
{
    mbq_http_response resp = MBQ_HTTP_RESPONSE_INIT;
    *retry = false;
    int rc = cred_request(&resp, retry, c, what, "GET", url, headers, NULL, 0);
    *status = resp.status;
    if (rc == 0)
        rc = mbq_buf_append(out, resp.body.ptr ? resp.body.ptr : "", resp.body.len);
    if (resp.body.ptr)
        OPENSSL_cleanse(resp.body.ptr, resp.body.len);
    mbq_http_response_free(&resp);
    return rc;
}

int cred_oauth_token(char **token, int64_t *expiry_ms, json_object *root, int64_t start_ms,
                     const char *what)
{
    json_object *exp;
    const char *t = cred_json_str(root, "access_token");
    int64_t expires_in = 3600;
    if (json_object_object_get_ex(root, "expires_in", &exp))
        expires_in = json_object_get_int64(exp);
    if (!t || !*t || expires_in <= 0)
        return mbq_error_set(MBQ_ERR, "%s: the answer has no usable access_token/expires_in",
                             what);
    cred_secret(t);
    if (!(*token = mbq_strdup(t)))
        return MBQ_ENOMEM;
    /* Measured from before the request: the token may not outlive that. */
    *expiry_ms = start_ms + expires_in * 1000;
    return 0;
}

int cred_read_file(mbq_buf *out, const char *path, const char *what, bool secret_file)
{
    int rc = 0;
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mbq_error_set(MBQ_EAUTH, "cannot read %s '%s': %s", what, path, strerror(errno));
    if (fstat(fd, &st) < 0) {
        rc = mbq_error_set(MBQ_EAUTH, "cannot read %s '%s': %s", what, path, strerror(errno));
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = mbq_error_set(MBQ_EAUTH, "%s '%s' is not a regular file", what, path);
        goto done;
    }
    if (st.st_size > 1024 * 1024) {
        rc = mbq_error_set(MBQ_EAUTH, "%s '%s' is too large (over 1 MiB)", what, path);
        goto done;
    }
    if (secret_file && (st.st_mode & (S_IRGRP | S_IROTH)))
        mbq_log_warn("%s '%s' is readable by %s (mode %03o): run 'chmod 600' on it", what, path,
                     (st.st_mode & S_IROTH) ? "everyone" : "its group",
                     (unsigned)(st.st_mode & 0777));
    /* One allocation of the final size: no stale copy left by a regrowth. */
    if ((rc = mbq_buf_grow(out, (size_t)st.st_size + 1)) < 0)
        goto done;
    for (;;) {
        size_t room = out->cap - out->len - 1;
        if (room == 0)
            break;
        ssize_t n = read(fd, out->ptr + out->len, room);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = mbq_error_set(MBQ_EAUTH, "cannot read %s '%s': %s", what, path,
                               strerror(errno));
            goto done;
        }
        if (n == 0)
            break;
        out->len += (size_t)n;
    }
    out->ptr[out->len] = '\0';
done:
    close(fd);
    return rc;
}

static int b64url_decode(mbq_buf *out, const char *s, size_t n)
{
    unsigned v = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        int d = ch >= 'A' && ch <= 'Z'   ? ch - 'A'
                : ch >= 'a' && ch <= 'z' ? ch - 'a' + 26
                : ch >= '0' && ch <= '9' ? ch - '0' + 52
                : ch == '-' || ch == '+' ? 62
                : ch == '_' || ch == '/' ? 63
                : ch == '='              ? -2
                                         : -1;
        if (d == -2)
            break;
        if (d < 0)
            return MBQ_ERR;
        v = (v << 6) | (unsigned)d;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (mbq_buf_putc(out, (char)((v >> bits) & 0xff)) < 0)
                return MBQ_ENOMEM;
        }
    }
    return 0;
}

int cred_jwt_email(mbq_buf *out, const char *id_token)
{
    int rc = MBQ_ENOTFOUND;
    mbq_buf claims = MBQ_BUF_INIT;
    const char *p1 = id_token ? strchr(id_token, '.') : NULL;
    const char *p2 = p1 ? strchr(p1 + 1, '.') : NULL;
    if (!p2)
        return MBQ_ENOTFOUND;
    if (b64url_decode(&claims, p1 + 1, (size_t)(p2 - p1 - 1)) == 0 && claims.len) {
        json_object *root = cred_json_parse(claims.ptr, claims.len);
        const char *email = cred_json_str(root, "email");
        if (email && *email)
            rc = mbq_buf_puts(out, email);
        json_object_put(root);
    }
    mbq_buf_free(&claims);
    return rc;
}

static int two_digits(const char *s)
{
    if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
        return -1;
    return (s[0] - '0') * 10 + (s[1] - '0');
}

int mbq_cred_parse_rfc3339_ms(int64_t *out, const char *s)
{
    /* 2014-10-02T15:01:23.045123456Z: generateAccessToken's expireTime
     * (google.protobuf.Timestamp in JSON, always UTC with "Z"). */
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (!s || strlen(s) < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
        s[13] != ':' || s[16] != ':')
        return MBQ_ERR;
    int y1 = two_digits(s), y2 = two_digits(s + 2), mo = two_digits(s + 5),
        d = two_digits(s + 8), h = two_digits(s + 11), mi = two_digits(s + 14),
        se = two_digits(s + 17);
    if (y1 < 0 || y2 < 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 ||
        mi > 59 || se < 0 || se > 60)
        return MBQ_ERR;
    const char *p = s + 19;
    int64_t ms = 0;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, digits++)
            if (digits < 3)
                ms = ms * 10 + (*p - '0');
        if (digits == 0)
            return MBQ_ERR;
        for (; digits < 3; digits++)
            ms *= 10;
    }
    if (!(strcmp(p, "Z") == 0 || strcmp(p, "z") == 0 || strcmp(p, "+00:00") == 0))
        return MBQ_ERR;
    tm.tm_year = y1 * 100 + y2 - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = se;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return MBQ_ERR;
    *out = (int64_t)t * 1000 + ms;
    return 0;
}
