/* What the credential types share (see mbq/credentials.h): the token cache
 * and retry loop live in cred.c; each type supplies `fetch`, one request for
 * a new token. */
#ifndef MBQ_CRED_INTERNAL_H
#define MBQ_CRED_INTERNAL_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "mbq/buf.h"
#include "mbq/credentials.h"
#include "mbq/http.h"

typedef struct cred_ops {
    const char *kind;
    /* One attempt at a new token: 0 with *token (allocated, registered as a
     * secret) and *expiry_ms (wall clock) set; else a negative code with
     * *retry set when trying again may help. */
    int (*fetch)(mbq_cred *c, char **token, int64_t *expiry_ms, bool *retry);
    /* Fill c->principal (optional; NULL = keep what the constructor set). */
    int (*principal)(mbq_cred *c);
    /* Fill c->project (optional). */
    int (*project)(mbq_cred *c);
    /* Forget tokens of inner credentials too (optional). */
    void (*invalidate)(mbq_cred *c);
    void (*free_impl)(void *impl);
} cred_ops;

struct mbq_cred {
    const cred_ops *ops;
    void *impl;
    mbq_cred_options opts;
    mbq_http *http;
    char *token;
    int64_t token_expiry_ms;
    unsigned fetches;
    char *source;
    char *principal;     /* NULL until known */
    char *project;       /* NULL when none */
    bool project_looked; /* ops->project was asked once */
    char *quota_project;
};

/* A new credential of `ops` owning `impl` (freed with ops->free_impl on
 * failure too), described by `source` (copied). */
int cred_new(mbq_cred **out, const cred_ops *ops, void *impl, const char *source,
             const mbq_cred_options *opts);

/* The string member `key` of object `o`, or NULL. */
const char *cred_json_str(json_object *o, const char *key);

/* Parse `len` bytes of JSON; NULL when it is not JSON. */
json_object *cred_json_parse(const char *data, size_t len);

/* POST `form` (application/x-www-form-urlencoded) or a JSON body to `url`
 * with the extra `headers`, then decode the answer: 0 with *root set (the
 * caller puts it) for HTTP 200; otherwise MBQ_EAUTH for 400/401/403 (the
 * OAuth error and error_description, or Google's error.message, quoted),
 * MBQ_ERR for other statuses, the transfer's code when no answer came; the
 * message starts with `what` (a refusal with the credential's source before
 * it: "authorized_user credentials from ...: what: ..."). *status gets the HTTP status (0 none), *retry
 * whether a retry may help. The request and response bodies are wiped. */
int cred_post(json_object **root, long *status, bool *retry, mbq_cred *c, const char *what,
              const char *url, const char *const *headers, const char *body, size_t body_len);

/* GET `url` with `headers`; as cred_post, but the body is returned raw
 * (appended to `out`) for HTTP 200. */
int cred_get(mbq_buf *out, long *status, bool *retry, mbq_cred *c, const char *what,
             const char *url, const char *const *headers);

/* From an OAuth token answer {access_token, expires_in}: the token
 * (allocated, registered) and expiry from `start_ms`. MBQ_ERR naming `what`
 * when absent. */
int cred_oauth_token(char **token, int64_t *expiry_ms, json_object *root, int64_t start_ms,
                     const char *what);

/* Read a small file whole (at most 1 MiB) into `out`; `what` names it in
 * errors ("credentials file"). Warns when group or others may read it and
 * `secret_file` is set. The caller wipes it. MBQ_EAUTH. */
int cred_read_file(mbq_buf *out, const char *path, const char *what, bool secret_file);

/* Register `s` as a secret when it is long enough to be one. */
void cred_secret(const char *s);

/* The email claim of the JWT `id_token` (not verified: it is only shown),
 * appended to `out`; MBQ_ENOTFOUND when it has none. */
int cred_jwt_email(mbq_buf *out, const char *id_token);

/* Constructors from a parsed file (in adc.c's dispatch). `path` names the
 * file in errors, `origin` says how it was found. */
int cred_service_account_new(mbq_cred **out, const char *path, const char *origin,
                             json_object *root, const mbq_cred_options *opts);
int cred_authorized_user_new(mbq_cred **out, const char *path, const char *origin,
                             json_object *root, const mbq_cred_options *opts);
int cred_external_account_new(mbq_cred **out, const char *path, const char *origin,
                              json_object *root, const mbq_cred_options *opts);
int cred_impersonated_new(mbq_cred **out, const char *path, const char *origin,
                          json_object *root, const mbq_cred_options *opts);
/* From a parsed credentials object of any type (impersonated's source). */
int cred_from_json(mbq_cred **out, const char *path, const char *origin, json_object *root,
                   const mbq_cred_options *opts);

/* Is a metadata server there? Bounded by opts->metadata_ping_ms unless the
 * machine says it is a Google Compute Engine VM (DMI product name). */
bool cred_metadata_present(const mbq_cred_options *opts, char **where);

#endif
