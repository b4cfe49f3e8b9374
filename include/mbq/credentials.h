/* Google credentials for BigQuery: Application Default Credentials.
 *
 * A mbq_cred is a source of OAuth 2.0 access tokens, whatever the kind of
 * credential behind it:
 *
 *   service_account         a key file (JWT bearer grant, mbq/bq_auth.h)
 *   authorized_user         what `gcloud auth application-default login`
 *                           writes: a refresh-token grant at token_uri
 *   external_account        workload identity federation: a subject token
 *                           (file, URL, or an executable when
 *                           GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1)
 *                           exchanged at the STS token_url (RFC 8693), then
 *                           optionally service_account_impersonation_url
 *   impersonated_service_account
 *                           source_credentials impersonating a service
 *                           account (IAM Credentials generateAccessToken)
 *   metadata server         GCE, GKE workload identity, Cloud Run:
 *                           /computeMetadata/v1/instance/service-accounts/
 *                           default/token with Metadata-Flavor: Google
 *
 * mbq_cred_default() walks Google's documented lookup order (google-auth's
 * _default.py, golang.org/x/oauth2/google's FindDefaultCredentials): the
 * file named by GOOGLE_APPLICATION_CREDENTIALS, gcloud's well-known file
 * ($CLOUDSDK_CONFIG or ~/.config/gcloud/application_default_credentials.json),
 * then the metadata server, detected with short timeouts so that off Google
 * Cloud the detection costs well under a second.
 *
 * Every credential keeps its own token, renewed refresh_margin_ms before it
 * expires, and forgets it on mbq_cred_invalidate (BigQuery answered 401).
 *
 * Secrets: private keys, client secrets, refresh tokens, subject tokens and
 * access tokens are registered with mbq_secret_register() as soon as they
 * are read, so no log line, error or alert shows them; no message of this
 * module contains them, only file paths, URLs (without query strings) and
 * principals (emails).
 *
 * Endpoints come from the credential files (token_uri, token_url,
 * service_account_impersonation_url) and, for the metadata server, from
 * GCE_METADATA_HOST / GCE_METADATA_IP (Google's variables). The IAM
 * Credentials base URL for impersonate_service_account can be overridden by
 * MBQ_IAM_CREDENTIALS_ENDPOINT (tests only).
 *
 * A mbq_cred is not thread-safe: one per BigQuery client. */
#ifndef MBQ_CREDENTIALS_H
#define MBQ_CREDENTIALS_H

#include <stdbool.h>
#include <stdint.h>

#include "mbq/buf.h"
#include "mbq/http.h"

typedef struct mbq_cred mbq_cred;

#define MBQ_CRED_SCOPE_BIGQUERY "https://www.googleapis.com/auth/bigquery"
#define MBQ_CRED_SCOPE_CLOUD "https://www.googleapis.com/auth/cloud-platform"
#define MBQ_IAM_CREDENTIALS_DEFAULT "https://iamcredentials.googleapis.com"

typedef struct mbq_cred_options {
    int64_t refresh_margin_ms;    /* renew this long before expiry (default 60 s) */
    int max_retries;              /* token requests on 429/5xx/connection errors (default 5) */
    int64_t retry_max_elapsed_ms; /* bound on the time spent retrying (default 60 s) */
    int64_t retry_initial_ms;     /* first backoff ceiling (default 500 ms) */
    int64_t metadata_ping_ms;     /* metadata server detection budget off GCE (default 500 ms) */
    mbq_http_options http;        /* timeouts and TLS for the token endpoints */
} mbq_cred_options;

void mbq_cred_options_init(mbq_cred_options *opts);

/* The credentials in the file `path`, whatever their type (service_account,
 * authorized_user, external_account, impersonated_service_account). Errors
 * name the path, never the content: MBQ_EAUTH when the file is missing,
 * unreadable, not JSON, of an unknown type or lacks a required field;
 * MBQ_ENOMEM. No request is made. `opts` may be NULL for the defaults. */
int mbq_cred_from_file(mbq_cred **out, const char *path, const mbq_cred_options *opts);

/* Application Default Credentials: `path` when given (as from_file), else
 * GOOGLE_APPLICATION_CREDENTIALS, else gcloud's well-known file when it
 * exists, else the metadata server when it answers. MBQ_EAUTH naming every
 * place looked at when none has credentials. */
int mbq_cred_default(mbq_cred **out, const char *path, const mbq_cred_options *opts);

/* The metadata server's default service account (no detection: the caller
 * knows it is there). */
int mbq_cred_metadata(mbq_cred **out, const mbq_cred_options *opts);

/* `source` impersonating `target_email` through IAM Credentials
 * generateAccessToken at `url` (NULL: the documented endpoint for
 * target_email, or MBQ_IAM_CREDENTIALS_ENDPOINT's), with the delegation
 * chain `delegates` (NULL-terminated emails, may be NULL). Takes ownership
 * of `source`, also on failure. */
int mbq_cred_impersonate(mbq_cred **out, mbq_cred *source, const char *target_email,
                         const char *url, const char *const *delegates,
                         const mbq_cred_options *opts);

void mbq_cred_free(mbq_cred *c);

/* A valid access token: the cached one unless within the refresh margin of
 * its expiry, else a new one. *out points into `c`, valid until the next
 * call on `c`. Errors: MBQ_EAUTH when the endpoint refuses the credentials
 * (its error and error_description quoted), MBQ_ENET/MBQ_ETIMEOUT/MBQ_ERR
 * when it cannot be reached or answers garbage (after retries). */
int mbq_cred_token(const char **out, mbq_cred *c);

/* Forget the cached token (and those of source credentials) after a 401, so
 * that the next mbq_cred_token fetches a new one. */
void mbq_cred_invalidate(mbq_cred *c);

/* What the credentials are, for `mbq check` and logs:
 *   kind:   "service_account", "authorized_user", "external_account",
 *           "impersonated_service_account", "metadata"
 *   source: where they came from ("GOOGLE_APPLICATION_CREDENTIALS file
 *           '/x.json'", "metadata server 'http://...'", ...)
 * Owned by c. */
const char *mbq_cred_kind(const mbq_cred *c);
const char *mbq_cred_source(const mbq_cred *c);

/* The principal the tokens act as, appended to `out`: the service
 * account's email (the target when impersonating), the metadata server's
 * default service account email, the user's email from the id_token the
 * token endpoint returned, else "user credentials (client_id ...)" or
 * "workload identity pool principal (audience ...)". May make a request
 * (metadata server, or a token fetch for the id_token). */
int mbq_cred_principal(mbq_buf *out, mbq_cred *c);

/* The project id the credentials name, or NULL: a key file's project_id, a
 * user credential's quota_project_id, the metadata server's project (a
 * request on first call). Owned by c. */
const char *mbq_cred_project(mbq_cred *c);

/* The quota project to bill requests to (x-goog-user-project), or NULL: a
 * user credential's quota_project_id. Owned by c. */
const char *mbq_cred_quota_project(const mbq_cred *c);

/* Tokens fetched so far by this credential (tests, metrics). */
unsigned mbq_cred_fetch_count(const mbq_cred *c);

/* Parse an RFC 3339 UTC time ("2014-10-02T15:01:23Z", fractions allowed,
 * "Z" or "+00:00") into milliseconds since the epoch. 0 or MBQ_ERR. */
int mbq_cred_parse_rfc3339_ms(int64_t *out, const char *s);

#endif
