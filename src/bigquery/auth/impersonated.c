/* Service-account impersonation: a source credential's token buys a token of
 * the target service account from IAM Credentials
 *   POST https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/
 *        {email}:generateAccessToken
 *   {"delegates": ["projects/-/serviceAccounts/{email}", ...],
 *    "scope": ["https://www.googleapis.com/auth/bigquery"], "lifetime": "3600s"}
 *   -> {"accessToken": "...", "expireTime": "2014-10-02T15:01:23Z"}
 * (IAM Credentials REST reference, projects.serviceAccounts.generateAccessToken).
 * The source needs roles/iam.serviceAccountTokenCreator on the target.
 *
 * Used for bigquery.impersonate_service_account, for the
 * impersonated_service_account file type ({service_account_impersonation_url,
 * source_credentials, delegates}, what `gcloud auth application-default
 * login --impersonate-service-account` writes) and for external_account's
 * service_account_impersonation_url. */
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "cred_internal.h"
#include "mbq/error.h"
#include "mbq/util.h"
#include "mbq/banned.h"

typedef struct imp_impl {
    mbq_cred *source;
    char *url;
    char *target;
    char **delegates; /* "projects/-/serviceAccounts/x", NULL-terminated */
} imp_impl;

static void imp_free(void *impl)
{
    imp_impl *m = impl;
    mbq_cred_free(m->source);
    free(m->url);
    free(m->target);
    for (char **d = m->delegates; d && *d; d++)
        free(*d);
    free(m->delegates);
    free(m);
}

static int imp_body(mbq_buf *out, const imp_impl *m)
{
    int rc = 0;
    json_object *o = json_object_new_object(), *dl = json_object_new_array(),
                *sc = json_object_new_array();
    if (!o || !dl || !sc) {
        json_object_put(dl);
        json_object_put(sc);
        rc = mbq_error_set(MBQ_ENOMEM, "out of memory");
        goto done;
    }
    for (char **d = m->delegates; d && *d; d++)
        if (json_object_array_add(dl, json_object_new_string(*d)) < 0)
            rc = MBQ_ENOMEM;
    if (json_object_array_add(sc, json_object_new_string(MBQ_CRED_SCOPE_BIGQUERY)) < 0)
        rc = MBQ_ENOMEM;
    if (json_object_object_add(o, "delegates", dl) < 0) {
        json_object_put(dl);
        rc = MBQ_ENOMEM;
    }
    if (json_object_object_add(o, "scope", sc) < 0) {
        json_object_put(sc);
        rc = MBQ_ENOMEM;
    }
    if (json_object_object_add(o, "lifetime", json_object_new_string("3600s")) < 0)
        rc = MBQ_ENOMEM;
    if (rc < 0) {
        rc = mbq_error_set(MBQ_ENOMEM, "out of memory");
        goto done;
    }
    rc = mbq_buf_puts(out, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                                 JSON_C_TO_STRING_NOSLASHESCAPE));
done:
    json_object_put(o);
    return rc;
}

static int imp_fetch(mbq_cred *c, char **token, int64_t *expiry_ms, bool *retry)
{
    int rc = 0;
    imp_impl *m = c->impl;
    mbq_buf body = MBQ_BUF_INIT, auth = MBQ_BUF_INIT, what = MBQ_BUF_INIT;
    json_object *root = NULL;
    long status = 0;
    if ((rc = imp_body(&body, m)) < 0 ||
        (rc = mbq_buf_printf(&what, "cannot impersonate '%s'", m->target)) < 0)
        goto done;
    /* A source token the server calls stale (401) is renewed once here, as
     * BigQuery's 401 renews the outer one. */
    for (int pass = 0; pass < 2; pass++) {
        const char *src_token;
        if ((rc = mbq_cred_token(&src_token, m->source)) < 0)
            goto done;
        mbq_buf_clear(&auth);
        if ((rc = mbq_buf_printf(&auth, "Authorization: Bearer %s", src_token)) < 0)
            goto done;
        const char *headers[] = {auth.ptr, "Content-Type: application/json",
                                 "Accept: application/json", NULL};
        rc = cred_post(&root, &status, retry, c, mbq_buf_cstr(&what), m->url, headers, body.ptr,
                       body.len);
        if (rc == 0 || status != 401 || pass == 1)
            break;
        mbq_cred_invalidate(m->source);
    }
    if (rc < 0) {
        if (status == 403)
            mbq_error_wrap(rc, "%s (the caller needs roles/iam.serviceAccountTokenCreator on "
                               "'%s'): ", mbq_cred_source(m->source), m->target);
        goto done;
    }
    const char *t = cred_json_str(root, "accessToken");
    const char *exp = cred_json_str(root, "expireTime");
    if (!t || !*t || !exp || mbq_cred_parse_rfc3339_ms(expiry_ms, exp) < 0) {
        rc = mbq_error_set(MBQ_ERR, "%s: the answer has no usable accessToken/expireTime",
                           mbq_buf_cstr(&what));
        goto done;
    }
    cred_secret(t);
    if (!(*token = mbq_strdup(t)))
        rc = MBQ_ENOMEM;
done:
    if (auth.ptr)
        OPENSSL_cleanse(auth.ptr, auth.len);
    mbq_buf_free(&auth);
    mbq_buf_free(&body);
    mbq_buf_free(&what);
    json_object_put(root);
    return rc;
}

static void imp_invalidate(mbq_cred *c)
{
    imp_impl *m = c->impl;
    mbq_cred_invalidate(m->source);
}

static int imp_project(mbq_cred *c)
{
    imp_impl *m = c->impl;
    const char *p = mbq_cred_project(m->source);
    if (p && !(c->project = mbq_strdup(p)))
        return MBQ_ENOMEM;
    return 0;
}

static const cred_ops imp_ops = {"impersonated_service_account", imp_fetch, NULL, imp_project,
                                 imp_invalidate, imp_free};

/* The email in ".../serviceAccounts/{email}:generateAccessToken". */
static char *target_of_url(const char *url)
{
    const char *p = strstr(url, "/serviceAccounts/");
    const char *e = p ? strstr(p, ":generateAccessToken") : NULL;
    if (!p || !e || e <= p + 17)
        return NULL;
    return mbq_strndup(p + 17, (size_t)(e - p - 17));
}

int mbq_cred_impersonate(mbq_cred **out, mbq_cred *source, const char *target_email,
                         const char *url, const char *const *delegates,
                         const mbq_cred_options *opts)
{
    int rc = 0;
    mbq_buf b = MBQ_BUF_INIT, src = MBQ_BUF_INIT;
    imp_impl *m = mbq_calloc(1, sizeof(*m));
    size_t n = 0;
    *out = NULL;
    if (!m) {
        mbq_cred_free(source);
        return MBQ_ENOMEM;
    }
    m->source = source;
    if (!target_email && url)
        target_email = m->target = target_of_url(url);
    else
        m->target = target_email ? mbq_strdup(target_email) : NULL;
    if (!m->target) {
        rc = mbq_error_set(MBQ_EAUTH, "impersonation URL '%s' names no service account "
                                      "(.../serviceAccounts/EMAIL:generateAccessToken)",
                           url ? url : "");
        goto done;
    }
    if (!url) {
        const char *base = getenv("MBQ_IAM_CREDENTIALS_ENDPOINT");
        if (!base || !*base)
            base = MBQ_IAM_CREDENTIALS_DEFAULT;
        if ((rc = mbq_buf_printf(&b, "%s/v1/projects/-/serviceAccounts/", base)) < 0 ||
            (rc = mbq_http_url_escape(&b, m->target)) < 0 ||
            (rc = mbq_buf_puts(&b, ":generateAccessToken")) < 0)
            goto done;
        m->url = mbq_buf_detach(&b);
    } else {
        m->url = mbq_strdup(url);
    }
    while (delegates && delegates[n])
        n++;
    m->delegates = mbq_calloc(n + 1, sizeof(char *));
    if (!m->url || !m->delegates) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        /* The API names accounts as resources; gcloud's files may hold bare
         * emails. */
        bool res = strncmp(delegates[i], "projects/", 9) == 0;
        mbq_buf_clear(&b);
        if ((rc = mbq_buf_printf(&b, "%s%s", res ? "" : "projects/-/serviceAccounts/",
                                 delegates[i])) < 0)
            goto done;
        if (!(m->delegates[i] = mbq_buf_detach(&b))) {
            rc = MBQ_ENOMEM;
            goto done;
        }
    }
    if ((rc = mbq_buf_printf(&src, "%s, impersonating '%s'", mbq_cred_source(source),
                             m->target)) < 0)
        goto done;
    rc = cred_new(out, &imp_ops, m, mbq_buf_cstr(&src), opts);
    m = NULL;
    if (rc == 0 && !((*out)->principal = mbq_strdup(target_email))) {
        rc = MBQ_ENOMEM;
        mbq_cred_free(*out);
        *out = NULL;
    }
done:
    if (m)
        imp_free(m);
    mbq_buf_free(&b);
    mbq_buf_free(&src);
    return rc;
}

int cred_impersonated_new(mbq_cred **out, const char *path, const char *origin,
                          json_object *root, const mbq_cred_options *opts)
{
    int rc;
    mbq_cred *source = NULL;
    json_object *src_json, *dl;
    const char **delegates = NULL;
    *out = NULL;
    const char *url = cred_json_str(root, "service_account_impersonation_url");
    if (!url || !json_object_object_get_ex(root, "source_credentials", &src_json) ||
        !json_object_is_type(src_json, json_type_object)) {
        return mbq_error_set(MBQ_EAUTH, "impersonated_service_account credentials '%s' have no "
                                        "\"%s\"",
                             path, !url ? "service_account_impersonation_url"
                                        : "source_credentials");
    }
    if ((rc = cred_from_json(&source, path, origin, src_json, opts)) < 0)
        return rc;
    size_t n = 0;
    if (json_object_object_get_ex(root, "delegates", &dl) &&
        json_object_is_type(dl, json_type_array))
        n = json_object_array_length(dl);
    if (!(delegates = mbq_calloc(n + 1, sizeof(char *)))) {
        mbq_cred_free(source);
        return MBQ_ENOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        json_object *d = json_object_array_get_idx(dl, i);
        if (json_object_is_type(d, json_type_string))
            delegates[k++] = json_object_get_string(d);
    }
    rc = mbq_cred_impersonate(out, source, NULL, url, delegates, opts);
    free(delegates);
    return rc;
}
