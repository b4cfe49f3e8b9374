/* authorized_user credentials: the file `gcloud auth application-default
 * login` writes ({type, client_id, client_secret, refresh_token, optional
 * token_uri and quota_project_id}). A token is the OAuth 2.0 refresh-token
 * grant (RFC 6749 section 6) at token_uri, by default Google's
 * https://oauth2.googleapis.com/token (google-auth's oauth2/credentials.py,
 * golang.org/x/oauth2/google's "authorized_user"). */
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "cred_internal.h"
#include "mbq/error.h"
#include "mbq/util.h"
#include "mbq/banned.h"

#define GOOGLE_TOKEN_URI "https://oauth2.googleapis.com/token"

typedef struct user_impl {
    char *client_id;
    char *client_secret;
    char *refresh_token;
    char *token_uri;
} user_impl;

static void wipe_free(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

static void user_free(void *impl)
{
    user_impl *u = impl;
    free(u->client_id);
    wipe_free(u->client_secret);
    wipe_free(u->refresh_token);
    free(u->token_uri);
    free(u);
}

static int form_field(mbq_buf *form, const char *name, const char *value)
{
    int rc;
    if ((form->len && (rc = mbq_buf_putc(form, '&')) < 0) || (rc = mbq_buf_puts(form, name)) < 0 ||
        (rc = mbq_buf_putc(form, '=')) < 0 || (rc = mbq_http_url_escape(form, value)) < 0)
        return rc;
    return 0;
}

static int user_fetch(mbq_cred *c, char **token, int64_t *expiry_ms, bool *retry)
{
    int rc;
    user_impl *u = c->impl;
    mbq_buf form = MBQ_BUF_INIT, email = MBQ_BUF_INIT;
    json_object *root = NULL;
    long status = 0;
    static const char *const headers[] = {"Content-Type: application/x-www-form-urlencoded",
                                          "Accept: application/json", NULL};
    int64_t start = mbq_now_ms();
    if ((rc = form_field(&form, "grant_type", "refresh_token")) < 0 ||
        (rc = form_field(&form, "client_id", u->client_id)) < 0 ||
        (rc = form_field(&form, "client_secret", u->client_secret)) < 0 ||
        (rc = form_field(&form, "refresh_token", u->refresh_token)) < 0)
        goto done;
    rc = cred_post(&root, &status, retry, c, "cannot refresh the user credentials", u->token_uri,
                   headers, form.ptr, form.len);
    /* invalid_grant (MBQ_EAUTH): the refresh token was revoked or expired
     * (the user changed password, or a Workspace session policy ended it). */
    if (rc < 0)
        goto done;
    if ((rc = cred_oauth_token(token, expiry_ms, root, start, "user credentials")) < 0)
        goto done;
    /* gcloud's login asks for the openid and email scopes: the refresh
     * answer then carries an id_token naming the user. */
    const char *id_token = cred_json_str(root, "id_token");
    if (id_token) {
        cred_secret(id_token);
        if (!c->principal && cred_jwt_email(&email, id_token) == 0)
            c->principal = mbq_buf_detach(&email);
    }
done:
    if (form.ptr)
        OPENSSL_cleanse(form.ptr, form.len);
    mbq_buf_free(&form);
    mbq_buf_free(&email);
    json_object_put(root);
    return rc;
}

static int user_principal(mbq_cred *c)
{
    user_impl *u = c->impl;
    const char *t;
    int rc = mbq_cred_token(&t, c); /* the id_token comes with a token */
    if (rc < 0)
        return rc;
    if (!c->principal) {
        mbq_buf b = MBQ_BUF_INIT;
        if ((rc = mbq_buf_printf(&b, "user credentials (client_id %s)", u->client_id)) < 0)
            return rc;
        c->principal = mbq_buf_detach(&b);
    }
    return 0;
}

static const cred_ops user_ops = {"authorized_user", user_fetch, user_principal, NULL, NULL,
                                  user_free};

int cred_authorized_user_new(mbq_cred **out, const char *path, const char *origin,
                             json_object *root, const mbq_cred_options *opts)
{
    int rc = 0;
    mbq_buf src = MBQ_BUF_INIT;
    user_impl *u = NULL;
    *out = NULL;
    const char *id = cred_json_str(root, "client_id");
    const char *secret = cred_json_str(root, "client_secret");
    const char *refresh = cred_json_str(root, "refresh_token");
    const char *uri = cred_json_str(root, "token_uri");
    const char *quota = cred_json_str(root, "quota_project_id");
    const char *missing = !id ? "client_id" : !secret ? "client_secret"
                                            : !refresh ? "refresh_token" : NULL;
    cred_secret(secret);
    cred_secret(refresh);
    if (missing) {
        rc = mbq_error_set(MBQ_EAUTH, "authorized_user credentials '%s' have no \"%s\"", path,
                           missing);
        goto done;
    }
    if (!(u = mbq_calloc(1, sizeof(*u)))) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    u->client_id = mbq_strdup(id);
    u->client_secret = mbq_strdup(secret);
    u->refresh_token = mbq_strdup(refresh);
    u->token_uri = mbq_strdup(uri && *uri ? uri : GOOGLE_TOKEN_URI);
    if (!u->client_id || !u->client_secret || !u->refresh_token || !u->token_uri) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    if ((rc = mbq_buf_printf(&src, "authorized_user credentials %s '%s'", origin, path)) < 0)
        goto done;
    rc = cred_new(out, &user_ops, u, mbq_buf_cstr(&src), opts);
    u = NULL;
    if (rc < 0)
        goto done;
    /* No project of its own: the quota project is the one a user meant
     * (gcloud auth application-default set-quota-project). */
    if (quota && *quota &&
        (!((*out)->quota_project = mbq_strdup(quota)) || !((*out)->project = mbq_strdup(quota)))) {
        rc = MBQ_ENOMEM;
        mbq_cred_free(*out);
        *out = NULL;
    }
done:
    if (u)
        user_free(u);
    mbq_buf_free(&src);
    return rc;
}
