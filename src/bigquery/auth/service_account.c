/* Service-account JWT auth for BigQuery (see mbq/bq_auth.h), and the
 * service_account credential type of mbq/credentials.h built on it. */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cred_internal.h"
#include "mbq/bq_auth.h"
#include "mbq/error.h"
#include "mbq/log.h"
#include "mbq/util.h"
#include "mbq/banned.h"

struct mbq_bq_auth {
    mbq_bq_auth_options opts;
    char *path;
    char *client_email;
    char *private_key_id; /* may be NULL */
    char *token_uri;
    char *project_id;     /* may be NULL */
    EVP_PKEY *pkey;
    mbq_http *http;
    char *token;          /* cached access token, NULL when none */
    int64_t token_expiry_ms; /* mbq_now_ms() time it expires */
    unsigned fetches;
};

void mbq_bq_auth_options_init(mbq_bq_auth_options *opts)
{
    mbq_http_options http = MBQ_HTTP_OPTIONS_INIT;
    memset(opts, 0, sizeof(*opts));
    opts->scope = NULL;
    opts->refresh_margin_ms = 60000;
    opts->max_retries = 5;
    opts->retry_max_elapsed_ms = 60000;
    opts->retry_initial_ms = 500;
    opts->http = http;
    opts->http.timeout_ms = 60000;
}

int mbq_base64url_encode(mbq_buf *out, const void *data, size_t len)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *p = data;
    if (mbq_buf_grow(out, (len + 2) / 3 * 4) < 0)
        return MBQ_ENOMEM;
    out->ptr[out->len] = '\0'; /* grow alone leaves a new buffer unterminated */
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        char q[4] = {tab[v >> 18], tab[(v >> 12) & 63], tab[(v >> 6) & 63], tab[v & 63]};
        if (mbq_buf_append(out, q, 4) < 0)
            return MBQ_ENOMEM;
    }
    if (len - i == 1) {
        unsigned v = (unsigned)p[i] << 16;
        char q[2] = {tab[v >> 18], tab[(v >> 12) & 63]};
        return mbq_buf_append(out, q, 2);
    }
    if (len - i == 2) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
        char q[3] = {tab[v >> 18], tab[(v >> 12) & 63], tab[(v >> 6) & 63]};
        return mbq_buf_append(out, q, 3);
    }
    return 0;
}

/* Read the key file in one allocation sized from fstat, so that no partial
 * copy of the key is left behind in memory freed by a growing buffer; the
 * caller wipes it with OPENSSL_cleanse. Warns when group/other may read it. */
static int read_key_file(char **out, size_t *out_len, const char *path)
{
    int rc = 0;
    char *data = NULL;
    struct stat stt;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mbq_error_set(MBQ_EAUTH, "cannot read service-account key file '%s': %s", path,
                             strerror(errno));
    if (fstat(fd, &stt) < 0) {
        rc = mbq_error_set(MBQ_EAUTH, "cannot read service-account key file '%s': %s", path,
                           strerror(errno));
        goto done;
    }
    if (!S_ISREG(stt.st_mode)) {
        rc = mbq_error_set(MBQ_EAUTH, "service-account key file '%s' is not a regular file", path);
        goto done;
    }
    if (stt.st_mode & (S_IRGRP | S_IROTH))
        mbq_log_warn("service-account key file '%s' is readable by %s (mode %03o): "
                     "run 'chmod 600' on it",
                     path, (stt.st_mode & S_IROTH) ? "everyone" : "its group",
                     (unsigned)(stt.st_mode & 0777));
    if (stt.st_size > 1024 * 1024) {
        rc = mbq_error_set(MBQ_EAUTH, "service-account key file '%s' is too large to be a key",
                           path);
        goto done;
    }
    size_t size = (size_t)stt.st_size;
    data = mbq_malloc(size + 1);
    if (!data) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(fd, data + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = mbq_error_set(MBQ_EAUTH, "cannot read service-account key file '%s': %s", path,
                               strerror(errno));
            goto done;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    data[got] = '\0';
    *out = data;
    *out_len = got;
    data = NULL;
done:
    if (data) {
        OPENSSL_cleanse(data, (size_t)stt.st_size);
        free(data);
    }
    close(fd);
    return rc;
}

static const char *json_str(json_object *o, const char *key)
{
    json_object *v;
    if (!o || !json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &v) ||
        !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

/* Register the PEM and each of its base64 lines, so that even a partial
 * leak of the key (a line quoted by some library) is masked. */
static void register_pem_secret(const char *pem)
{
    mbq_secret_register(pem);
    const char *p = pem;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p) : strlen(p);
        if (n >= 16 && p[0] != '-') {
            char *line = mbq_strndup(p, n);
            if (line) {
                mbq_secret_register(line);
                OPENSSL_cleanse(line, n);
                free(line);
            }
        }
        if (!eol)
            break;
        p = eol + 1;
    }
}

/* The service account of the parsed key `root` (read from `path`, which
 * errors name). */
static int auth_from_json(mbq_bq_auth **out, const char *path, json_object *root,
                          const mbq_bq_auth_options *opts)
{
    int rc = 0;
    BIO *bio = NULL;
    mbq_bq_auth *a = NULL;
    *out = NULL;
    const char *pem = json_str(root, "private_key");
    const char *email = json_str(root, "client_email");
    const char *uri = json_str(root, "token_uri");
    const char *missing = !pem ? "private_key" : !email ? "client_email" : !uri ? "token_uri" : NULL;
    if (missing) {
        rc = mbq_error_set(MBQ_EAUTH, "service-account key file '%s' has no \"%s\"", path, missing);
        goto done;
    }
    register_pem_secret(pem);

    a = mbq_calloc(1, sizeof(*a));
    if (!a) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    if (opts)
        a->opts = *opts;
    else
        mbq_bq_auth_options_init(&a->opts);
    a->path = mbq_strdup(path);
    a->client_email = mbq_strdup(email);
    a->token_uri = mbq_strdup(uri);
    const char *kid = json_str(root, "private_key_id");
    a->private_key_id = kid ? mbq_strdup(kid) : NULL;
    const char *project = json_str(root, "project_id");
    a->project_id = project ? mbq_strdup(project) : NULL;
    if (!a->path || !a->client_email || !a->token_uri || (kid && !a->private_key_id) ||
        (project && !a->project_id)) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    bio = BIO_new_mem_buf(pem, -1);
    if (!bio) {
        rc = mbq_error_set(MBQ_ENOMEM, "out of memory");
        goto done;
    }
    a->pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    if (!a->pkey || EVP_PKEY_get_base_id(a->pkey) != EVP_PKEY_RSA) {
        rc = mbq_error_set(MBQ_EAUTH,
                           "service-account key file '%s': \"private_key\" is not an RSA private "
                           "key in PEM form",
                           path);
        goto done;
    }
    if ((rc = mbq_http_new(&a->http, &a->opts.http)) < 0)
        goto done;
    *out = a;
    a = NULL;
done:
    BIO_free(bio);
    mbq_bq_auth_free(a);
    return rc;
}

int mbq_bq_auth_new(mbq_bq_auth **out, const char *path, const mbq_bq_auth_options *opts)
{
    int rc = 0;
    char *data = NULL;
    size_t data_len = 0;
    json_object *root = NULL;

    *out = NULL;
    if (!path || !*path)
        path = getenv("GOOGLE_APPLICATION_CREDENTIALS");
    if (!path || !*path)
        return mbq_error_set(MBQ_EAUTH, "no BigQuery credentials: set bigquery.credentials to a "
                                        "service-account key file or GOOGLE_APPLICATION_CREDENTIALS");
    if ((rc = read_key_file(&data, &data_len, path)) < 0)
        goto done;

    enum json_tokener_error jerr = json_tokener_success;
    json_tokener *tok = json_tokener_new();
    if (!tok) {
        rc = mbq_error_set(MBQ_ENOMEM, "out of memory");
        goto done;
    }
    root = json_tokener_parse_ex(tok, data, (int)data_len);
    jerr = json_tokener_get_error(tok);
    json_tokener_free(tok);
    if (!root || jerr != json_tokener_success || !json_object_is_type(root, json_type_object)) {
        rc = mbq_error_set(MBQ_EAUTH, "service-account key file '%s' is not a JSON object", path);
        goto done;
    }
    const char *type = json_str(root, "type");
    if (!type) {
        rc = mbq_error_set(MBQ_EAUTH, "service-account key file '%s' has no \"type\"", path);
        goto done;
    }
    if (strcmp(type, "service_account") != 0) {
        rc = mbq_error_set(MBQ_EAUTH,
                           "credentials file '%s' is of type '%s', not 'service_account'",
                           path, type);
        goto done;
    }
    rc = auth_from_json(out, path, root, opts);

done:
    json_object_put(root); /* json-c frees its strings; the PEM copy inside is gone with it */
    if (data) {
        OPENSSL_cleanse(data, data_len);
        free(data);
    }
    return rc;
}

void mbq_bq_auth_free(mbq_bq_auth *a)
{
    if (!a)
        return;
    EVP_PKEY_free(a->pkey);
    mbq_http_free(a->http);
    if (a->token) {
        OPENSSL_cleanse(a->token, strlen(a->token));
        free(a->token);
    }
    free(a->path);
    free(a->client_email);
    free(a->private_key_id);
    free(a->token_uri);
    free(a->project_id);
    free(a);
}

void mbq_bq_auth_invalidate(mbq_bq_auth *a)
{
    if (a->token) {
        OPENSSL_cleanse(a->token, strlen(a->token));
        free(a->token);
        a->token = NULL;
    }
    a->token_expiry_ms = 0;
}

unsigned mbq_bq_auth_fetch_count(const mbq_bq_auth *a)
{
    return a->fetches;
}

static int b64_json(mbq_buf *out, json_object *o)
{
    const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                          JSON_C_TO_STRING_NOSLASHESCAPE);
    if (!s)
        return mbq_error_set(MBQ_ENOMEM, "out of memory");
    return mbq_base64url_encode(out, s, strlen(s));
}

int mbq_bq_auth_jwt(mbq_buf *out, mbq_bq_auth *a, int64_t iat_s)
{
    int rc = 0;
    json_object *hdr = json_object_new_object();
    json_object *cl = json_object_new_object();
    EVP_MD_CTX *md = NULL;
    unsigned char *sig = NULL;
    size_t sig_len = 0;
    size_t start = out->len;

    if (!hdr || !cl) {
        rc = mbq_error_set(MBQ_ENOMEM, "out of memory");
        goto done;
    }
    /* json_object_object_add fails only on allocation failure; a failed add
     * leaves the value unowned, so check each. */
    if (json_object_object_add(hdr, "alg", json_object_new_string("RS256")) ||
        json_object_object_add(hdr, "typ", json_object_new_string("JWT")) ||
        (a->private_key_id &&
         json_object_object_add(hdr, "kid", json_object_new_string(a->private_key_id))) ||
        json_object_object_add(cl, "iss", json_object_new_string(a->client_email)) ||
        json_object_object_add(cl, "scope",
                               json_object_new_string(a->opts.scope ? a->opts.scope : MBQ_BQ_SCOPE)) ||
        json_object_object_add(cl, "aud", json_object_new_string(a->token_uri)) ||
        json_object_object_add(cl, "iat", json_object_new_int64(iat_s)) ||
        json_object_object_add(cl, "exp", json_object_new_int64(iat_s + 3600))) {
        rc = mbq_error_set(MBQ_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = b64_json(out, hdr)) < 0 || (rc = mbq_buf_putc(out, '.')) < 0 ||
        (rc = b64_json(out, cl)) < 0)
        goto done;

    md = EVP_MD_CTX_new();
    if (!md) {
        rc = mbq_error_set(MBQ_ENOMEM, "out of memory");
        goto done;
    }
    const unsigned char *signing_input = (const unsigned char *)out->ptr + start;
    size_t signing_len = out->len - start;
    if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, a->pkey) != 1 ||
        EVP_DigestSign(md, NULL, &sig_len, signing_input, signing_len) != 1) {
        rc = mbq_error_set(MBQ_EAUTH, "cannot sign the token request with the key in '%s'",
                           a->path);
        goto done;
    }
    sig = mbq_malloc(sig_len);
    if (!sig) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    if (EVP_DigestSign(md, sig, &sig_len, signing_input, signing_len) != 1) {
        rc = mbq_error_set(MBQ_EAUTH, "cannot sign the token request with the key in '%s'",
                           a->path);
        goto done;
    }
    if ((rc = mbq_buf_putc(out, '.')) < 0 || (rc = mbq_base64url_encode(out, sig, sig_len)) < 0)
        goto done;

done:
    if (rc < 0 && out->ptr) {
        out->len = start;
        out->ptr[start] = '\0';
    }
    free(sig);
    EVP_MD_CTX_free(md);
    json_object_put(hdr);
    json_object_put(cl);
    return rc;
}

/* One exchange: 0 with the token stored, MBQ_EAUTH when refused (not worth
 * retrying), other codes with *retry set when a retry may succeed. */
static int fetch_once(mbq_bq_auth *a, bool *retry)
{
    int rc = 0;
    mbq_buf form = MBQ_BUF_INIT;
    mbq_http_response resp = MBQ_HTTP_RESPONSE_INIT;
    json_object *root = NULL;
    static const char *const headers[] = {"Content-Type: application/x-www-form-urlencoded",
                                          "Accept: application/json", NULL};
    *retry = false;
    int64_t now_ms = mbq_now_ms();
    if ((rc = mbq_buf_puts(&form, "grant_type=")) < 0 ||
        (rc = mbq_http_url_escape(&form, "urn:ietf:params:oauth:grant-type:jwt-bearer")) < 0 ||
        (rc = mbq_buf_puts(&form, "&assertion=")) < 0 ||
        (rc = mbq_bq_auth_jwt(&form, a, now_ms / 1000)) < 0)
        goto done;
    mbq_http_body body = {form.ptr, form.len, NULL, 0, 0, NULL, 0, false, NULL, NULL};
    mbq_http_request req = {"POST", a->token_uri, headers, &body};
    rc = mbq_http_do(a->http, &resp, &req);
    if (rc < 0) {
        *retry = mbq_http_retryable_curl(resp.curl_code);
        /* Name the key file: the token_uri comes from it, and it is what
         * the user has to look at (a wrong or unreachable token_uri). */
        mbq_error_wrap(rc, "cannot get a BigQuery access token from '%s' (key file '%s'): ",
                       a->token_uri, a->path);
        goto done;
    }
    json_tokener *tok = json_tokener_new();
    if (!tok) {
        rc = mbq_error_set(MBQ_ENOMEM, "out of memory");
        goto done;
    }
    root = json_tokener_parse_ex(tok, mbq_buf_cstr(&resp.body), (int)resp.body.len);
    json_tokener_free(tok);
    if (resp.status != 200) {
        /* Google answers {"error": "invalid_grant", "error_description": ...}. */
        const char *err = json_str(root, "error");
        const char *desc = json_str(root, "error_description");
        *retry = mbq_http_retryable_status(resp.status);
        rc = mbq_error_set(resp.status == 400 || resp.status == 401 || resp.status == 403
                               ? MBQ_EAUTH
                               : MBQ_ERR,
                           "token endpoint '%s' refused the service account '%s' (key file "
                           "'%s'): %s%s%s (HTTP %ld)",
                           a->token_uri, a->client_email, a->path, err ? err : "no error given",
                           desc ? ": " : "", desc ? desc : "", resp.status);
        goto done;
    }
    const char *token = json_str(root, "access_token");
    json_object *exp;
    int64_t expires_in = 3600;
    if (root && json_object_object_get_ex(root, "expires_in", &exp))
        expires_in = json_object_get_int64(exp);
    if (!token || !*token || expires_in <= 0) {
        rc = mbq_error_set(MBQ_ERR,
                           "token endpoint '%s' answered without a usable access_token/expires_in",
                           a->token_uri);
        goto done;
    }
    mbq_secret_register(token);
    mbq_bq_auth_invalidate(a);
    a->token = mbq_strdup(token);
    if (!a->token) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    /* Measured from before the request: the token may not outlive that. */
    a->token_expiry_ms = now_ms + expires_in * 1000;
    a->fetches++;

done:
    if (form.ptr)
        OPENSSL_cleanse(form.ptr, form.len);
    mbq_buf_free(&form);
    if (resp.body.ptr)
        OPENSSL_cleanse(resp.body.ptr, resp.body.len);
    mbq_http_response_free(&resp);
    json_object_put(root);
    return rc;
}

int mbq_bq_auth_token(const char **out, mbq_bq_auth *a)
{
    int rc = 0;
    *out = NULL;
    if (a->token && mbq_now_ms() < a->token_expiry_ms - a->opts.refresh_margin_ms) {
        *out = a->token;
        return 0;
    }
    int64_t start = mbq_monotonic_ms();
    for (int attempt = 0;; attempt++) {
        bool retry = false;
        rc = fetch_once(a, &retry);
        if (rc == 0) {
            *out = a->token;
            return 0;
        }
        if (!retry || attempt >= a->opts.max_retries)
            return rc;
        int64_t delay = mbq_http_backoff_ms(attempt, a->opts.retry_initial_ms, 32000);
        if (mbq_monotonic_ms() - start + delay > a->opts.retry_max_elapsed_ms)
            return rc;
        mbq_log_debug("token request failed (%s), retrying in %lld ms", mbq_error_last(),
                      (long long)delay);
        mbq_sleep_ms(delay);
    }
}

/* ---- the service_account credential type (mbq/credentials.h) ------------ */

/* The key object keeps its own cache and retries; the credential asks it for
 * a fresh token each time its own cache runs out, so that the margin and the
 * forced refresh after a 401 work as for every other type. */
static int sa_fetch(mbq_cred *c, char **token, int64_t *expiry_ms, bool *retry)
{
    mbq_bq_auth *a = c->impl;
    const char *t = NULL;
    *retry = false; /* mbq_bq_auth_token retried already */
    mbq_bq_auth_invalidate(a);
    int rc = mbq_bq_auth_token(&t, a);
    if (rc < 0)
        return rc;
    if (!(*token = mbq_strdup(t)))
        return MBQ_ENOMEM;
    *expiry_ms = a->token_expiry_ms;
    return 0;
}

static void sa_free(void *impl) { mbq_bq_auth_free(impl); }

static const cred_ops sa_ops = {"service_account", sa_fetch, NULL, NULL, NULL, sa_free};

int cred_service_account_new(mbq_cred **out, const char *path, const char *origin,
                             json_object *root, const mbq_cred_options *opts)
{
    int rc;
    mbq_bq_auth *a = NULL;
    mbq_bq_auth_options ao;
    mbq_buf src = MBQ_BUF_INIT;
    mbq_cred_options co;
    *out = NULL;
    if (!opts) {
        mbq_cred_options_init(&co);
        opts = &co;
    }
    mbq_bq_auth_options_init(&ao);
    ao.refresh_margin_ms = opts->refresh_margin_ms;
    ao.max_retries = opts->max_retries;
    ao.retry_max_elapsed_ms = opts->retry_max_elapsed_ms;
    ao.retry_initial_ms = opts->retry_initial_ms;
    ao.http = opts->http;
    if ((rc = auth_from_json(&a, path, root, &ao)) < 0)
        goto done;
    if ((rc = mbq_buf_printf(&src, "service-account key %s '%s'", origin, path)) < 0)
        goto done;
    const char *email = a->client_email;
    const char *project = a->project_id;
    if ((rc = cred_new(out, &sa_ops, a, mbq_buf_cstr(&src), opts)) < 0) {
        a = NULL; /* cred_new freed it */
        goto done;
    }
    a = NULL;
    (*out)->principal = mbq_strdup(email);
    (*out)->project = project ? mbq_strdup(project) : NULL;
    if (!(*out)->principal || (project && !(*out)->project)) {
        rc = MBQ_ENOMEM;
        mbq_cred_free(*out);
        *out = NULL;
    }
done:
    mbq_bq_auth_free(a);
    mbq_buf_free(&src);
    return rc;
}
