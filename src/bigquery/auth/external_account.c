/* external_account credentials: workload identity federation (Google's
 * "external_account" file, AIP-4117; google-auth's external_account.py and
 * identity_pool.py; golang.org/x/oauth2/google/externalaccount).
 *
 * A subject token from credential_source ({"file": PATH} or {"url": URL,
 * "headers": {...}}, read as "text" or as "json" member
 * format.subject_token_field_name; {"executable": ...} only when
 * GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1, executable.c) is exchanged at
 * token_url (Google's STS, RFC 8693 token exchange) for a federated access
 * token; with service_account_impersonation_url that token then buys a
 * service account's token (impersonated.c). The subject token is read anew
 * for every exchange: files and metadata URLs rotate it (a Kubernetes
 * projected token lives an hour). */
#include <ctype.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "cred_internal.h"
#include "mbq/error.h"
#include "mbq/util.h"
#include "mbq/banned.h"

typedef struct ext_impl {
    char *path; /* the credentials file, for messages */
    char *audience;
    char *subject_token_type;
    char *token_url;
    char *client_id;     /* optional client authentication (Basic) */
    char *client_secret;
    char *user_project;  /* workforce_pool_user_project */
    char *src_file;
    char *src_url;
    char **src_headers;  /* "Name: value", NULL-terminated */
    json_object *exe;    /* credential_source.executable (a reference kept) */
    char *field;         /* NULL = text */
} ext_impl;

static void ext_free(void *impl)
{
    ext_impl *x = impl;
    free(x->path);
    free(x->audience);
    free(x->subject_token_type);
    free(x->token_url);
    free(x->client_id);
    if (x->client_secret) {
        OPENSSL_cleanse(x->client_secret, strlen(x->client_secret));
        free(x->client_secret);
    }
    free(x->user_project);
    free(x->src_file);
    free(x->src_url);
    for (char **h = x->src_headers; h && *h; h++)
        free(*h);
    free(x->src_headers);
    json_object_put(x->exe);
    free(x->field);
    free(x);
}

/* The token in `raw` per the format: text trimmed of surrounding white
 * space (as Go's library does: a file written by `echo` ends in a newline),
 * or the JSON member. Appended to `out`. */
static int parse_subject(mbq_buf *out, const ext_impl *x, const char *raw, size_t len,
                         const char *where)
{
    int rc = 0;
    if (!x->field) {
        while (len && isspace((unsigned char)*raw)) {
            raw++;
            len--;
        }
        while (len && isspace((unsigned char)raw[len - 1]))
            len--;
        if (len == 0)
            return mbq_error_set(MBQ_EAUTH, "subject token source %s is empty", where);
        return mbq_buf_append(out, raw, len);
    }
    json_object *root = cred_json_parse(raw, len);
    const char *t = cred_json_str(root, x->field);
    if (!t || !*t)
        rc = mbq_error_set(MBQ_EAUTH, "subject token source %s is not a JSON object with a "
                                      "string \"%s\"",
                           where, x->field);
    else
        rc = mbq_buf_puts(out, t);
    json_object_put(root);
    return rc;
}

int cred_executable_subject(mbq_buf *out, mbq_cred *c, json_object *exe, const char *audience,
                            const char *token_type, const char *path);

static int subject_token(mbq_buf *out, mbq_cred *c, bool *retry)
{
    int rc = 0;
    ext_impl *x = c->impl;
    mbq_buf raw = MBQ_BUF_INIT, where = MBQ_BUF_INIT;
    long status = 0;
    if (x->src_file) {
        if ((rc = mbq_buf_printf(&where, "file '%s'", x->src_file)) < 0 ||
            (rc = cred_read_file(&raw, x->src_file, "subject token file", false)) < 0)
            goto done;
    } else if (x->src_url) {
        if ((rc = mbq_buf_printf(&where, "URL '%s'", x->src_url)) < 0)
            goto done;
        rc = cred_get(&raw, &status, retry, c, "cannot read the subject token", x->src_url,
                      (const char *const *)x->src_headers);
        if (rc < 0)
            goto done;
    } else {
        rc = cred_executable_subject(out, c, x->exe, x->audience, x->subject_token_type,
                                     x->path);
        goto done;
    }
    rc = parse_subject(out, x, raw.ptr ? raw.ptr : "", raw.len, mbq_buf_cstr(&where));
done:
    if (raw.ptr)
        OPENSSL_cleanse(raw.ptr, raw.len);
    mbq_buf_free(&raw);
    mbq_buf_free(&where);
    if (rc == 0)
        cred_secret(mbq_buf_cstr(out));
    return rc;
}

static int form_field(mbq_buf *form, const char *name, const char *value)
{
    int rc;
    if ((form->len && (rc = mbq_buf_putc(form, '&')) < 0) || (rc = mbq_buf_puts(form, name)) < 0 ||
        (rc = mbq_buf_putc(form, '=')) < 0 || (rc = mbq_http_url_escape(form, value)) < 0)
        return rc;
    return 0;
}

int mbq_base64url_encode(mbq_buf *out, const void *data, size_t len);

/* "Authorization: Basic base64(client_id:client_secret)" (RFC 6749 2.3.1,
 * standard base64 with padding). */
static int basic_auth(mbq_buf *out, const ext_impl *x)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    mbq_buf pair = MBQ_BUF_INIT;
    int rc = mbq_buf_printf(&pair, "%s:%s", x->client_id, x->client_secret);
    if (rc == 0)
        rc = mbq_buf_puts(out, "Authorization: Basic ");
    const unsigned char *p = (const unsigned char *)pair.ptr;
    for (size_t i = 0; rc == 0 && i < pair.len; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        size_t left = pair.len - i;
        if (left > 1)
            v |= (unsigned)p[i + 1] << 8;
        if (left > 2)
            v |= p[i + 2];
        char q[4] = {tab[v >> 18], tab[(v >> 12) & 63], left > 1 ? tab[(v >> 6) & 63] : '=',
                     left > 2 ? tab[v & 63] : '='};
        rc = mbq_buf_append(out, q, 4);
    }
    if (pair.ptr)
        OPENSSL_cleanse(pair.ptr, pair.len);
    mbq_buf_free(&pair);
    if (rc == 0)
        cred_secret(out->ptr + strlen("Authorization: Basic "));
    return rc;
}

static int ext_fetch(mbq_cred *c, char **token, int64_t *expiry_ms, bool *retry)
{
    int rc;
    ext_impl *x = c->impl;
    mbq_buf subject = MBQ_BUF_INIT, form = MBQ_BUF_INIT, basic = MBQ_BUF_INIT,
            opt = MBQ_BUF_INIT;
    json_object *root = NULL;
    long status = 0;
    const char *headers[4] = {"Content-Type: application/x-www-form-urlencoded",
                              "Accept: application/json", NULL, NULL};
    int64_t start = mbq_now_ms();
    if ((rc = subject_token(&subject, c, retry)) < 0)
        goto done;
    if ((rc = form_field(&form, "grant_type", "urn:ietf:params:oauth:grant-type:token-exchange")) < 0 ||
        (rc = form_field(&form, "audience", x->audience)) < 0 ||
        (rc = form_field(&form, "scope", MBQ_CRED_SCOPE_CLOUD)) < 0 ||
        (rc = form_field(&form, "requested_token_type",
                         "urn:ietf:params:oauth:token-type:access_token")) < 0 ||
        (rc = form_field(&form, "subject_token", subject.ptr)) < 0 ||
        (rc = form_field(&form, "subject_token_type", x->subject_token_type)) < 0)
        goto done;
    if (x->client_id && x->client_secret) {
        if ((rc = basic_auth(&basic, x)) < 0)
            goto done;
        headers[2] = basic.ptr;
    } else if (x->user_project) {
        /* Workforce pools bill the exchange to this project when no client
         * authenticates (google-auth's external_account.py). */
        if ((rc = mbq_buf_puts(&opt, "{\"userProject\":")) < 0 ||
            (rc = mbq_buf_json_string(&opt, x->user_project, strlen(x->user_project))) < 0 ||
            (rc = mbq_buf_putc(&opt, '}')) < 0 || (rc = form_field(&form, "options", opt.ptr)) < 0)
            goto done;
    }
    rc = cred_post(&root, &status, retry, c, "cannot exchange the subject token", x->token_url,
                   headers, form.ptr, form.len);
    if (rc < 0)
        goto done;
    rc = cred_oauth_token(token, expiry_ms, root, start, "the STS token exchange");
done:
    if (subject.ptr)
        OPENSSL_cleanse(subject.ptr, subject.len);
    if (form.ptr)
        OPENSSL_cleanse(form.ptr, form.len);
    if (basic.ptr)
        OPENSSL_cleanse(basic.ptr, basic.len);
    mbq_buf_free(&subject);
    mbq_buf_free(&form);
    mbq_buf_free(&basic);
    mbq_buf_free(&opt);
    json_object_put(root);
    return rc;
}

static int ext_principal(mbq_cred *c)
{
    ext_impl *x = c->impl;
    mbq_buf b = MBQ_BUF_INIT;
    int rc = mbq_buf_printf(&b, "workload identity federation principal (audience %s)",
                            x->audience);
    if (rc == 0)
        c->principal = mbq_buf_detach(&b);
    return rc;
}

static const cred_ops ext_ops = {"external_account", ext_fetch, ext_principal, NULL, NULL,
                                 ext_free};

static int copy_headers(ext_impl *x, json_object *hdrs)
{
    size_t n = hdrs ? (size_t)json_object_object_length(hdrs) : 0, i = 0;
    if (!(x->src_headers = mbq_calloc(n + 1, sizeof(char *))))
        return MBQ_ENOMEM;
    if (!hdrs)
        return 0;
    json_object_object_foreach(hdrs, k, v)
    {
        mbq_buf b = MBQ_BUF_INIT;
        if (!json_object_is_type(v, json_type_string))
            continue;
        if (mbq_buf_printf(&b, "%s: %s", k, json_object_get_string(v)) < 0)
            return MBQ_ENOMEM;
        x->src_headers[i++] = mbq_buf_detach(&b);
    }
    return 0;
}

static int parse_source(ext_impl *x, json_object *src, const char *path)
{
    json_object *fmt = NULL, *hdrs = NULL, *exe = NULL;
    const char *file = cred_json_str(src, "file");
    const char *url = cred_json_str(src, "url");
    json_object_object_get_ex(src, "headers", &hdrs);
    json_object_object_get_ex(src, "executable", &exe);
    if (cred_json_str(src, "environment_id"))
        return mbq_error_set(MBQ_EAUTH, "external_account credentials '%s': AWS and other "
                                        "environment_id sources are not supported (use a file "
                                        "or URL source)",
                             path);
    if (!file && !url && !exe)
        return mbq_error_set(MBQ_EAUTH, "external_account credentials '%s': credential_source "
                                        "has no \"file\", \"url\" or \"executable\"",
                             path);
    if ((file && !(x->src_file = mbq_strdup(file))) || (url && !(x->src_url = mbq_strdup(url))))
        return MBQ_ENOMEM;
    if (url && copy_headers(x, hdrs && json_object_is_type(hdrs, json_type_object) ? hdrs : NULL) < 0)
        return MBQ_ENOMEM;
    if (!file && !url)
        x->exe = json_object_get(exe);
    if (json_object_object_get_ex(src, "format", &fmt) && cred_json_str(fmt, "type")) {
        const char *type = cred_json_str(fmt, "type");
        const char *field = cred_json_str(fmt, "subject_token_field_name");
        if (strcmp(type, "json") == 0) {
            if (!field)
                return mbq_error_set(MBQ_EAUTH, "external_account credentials '%s': format "
                                                "\"json\" needs \"subject_token_field_name\"",
                                     path);
            if (!(x->field = mbq_strdup(field)))
                return MBQ_ENOMEM;
        } else if (strcmp(type, "text") != 0) {
            return mbq_error_set(MBQ_EAUTH, "external_account credentials '%s': unknown format "
                                            "type '%s' (text or json)",
                                 path, type);
        }
    }
    return 0;
}

int cred_external_account_new(mbq_cred **out, const char *path, const char *origin,
                              json_object *root, const mbq_cred_options *opts)
{
    int rc = 0;
    mbq_buf src = MBQ_BUF_INIT;
    mbq_cred *sts = NULL;
    json_object *cs = NULL;
    ext_impl *x = NULL;
    *out = NULL;
    const char *aud = cred_json_str(root, "audience");
    const char *stt = cred_json_str(root, "subject_token_type");
    const char *url = cred_json_str(root, "token_url");
    const char *imp = cred_json_str(root, "service_account_impersonation_url");
    const char *missing = !aud ? "audience" : !stt ? "subject_token_type"
                                          : !url  ? "token_url"
                                          : !json_object_object_get_ex(root, "credential_source",
                                                                       &cs) ||
                                                  !json_object_is_type(cs, json_type_object)
                                              ? "credential_source"
                                              : NULL;
    cred_secret(cred_json_str(root, "client_secret"));
    if (missing) {
        rc = mbq_error_set(MBQ_EAUTH, "external_account credentials '%s' have no \"%s\"", path,
                           missing);
        goto done;
    }
    if (!(x = mbq_calloc(1, sizeof(*x)))) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    const char *cid = cred_json_str(root, "client_id");
    const char *csec = cred_json_str(root, "client_secret");
    const char *up = cred_json_str(root, "workforce_pool_user_project");
    x->path = mbq_strdup(path);
    x->audience = mbq_strdup(aud);
    x->subject_token_type = mbq_strdup(stt);
    x->token_url = mbq_strdup(url);
    if (!x->path || !x->audience || !x->subject_token_type || !x->token_url ||
        (cid && !(x->client_id = mbq_strdup(cid))) ||
        (csec && !(x->client_secret = mbq_strdup(csec))) ||
        (up && !(x->user_project = mbq_strdup(up)))) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    if ((rc = parse_source(x, cs, path)) < 0)
        goto done;
    if ((rc = mbq_buf_printf(&src, "external_account credentials %s '%s'", origin, path)) < 0)
        goto done;
    rc = cred_new(&sts, &ext_ops, x, mbq_buf_cstr(&src), opts);
    x = NULL;
    if (rc < 0)
        goto done;
    const char *quota = cred_json_str(root, "quota_project_id");
    if (quota && !(sts->quota_project = mbq_strdup(quota))) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    if (imp) {
        rc = mbq_cred_impersonate(out, sts, NULL, imp, NULL, opts);
        sts = NULL;
        if (rc == 0 && quota && !((*out)->quota_project = mbq_strdup(quota))) {
            rc = MBQ_ENOMEM;
            mbq_cred_free(*out);
            *out = NULL;
        }
        goto done;
    }
    *out = sts;
    sts = NULL;
done:
    if (x)
        ext_free(x);
    mbq_cred_free(sts);
    mbq_buf_free(&src);
    return rc;
}
