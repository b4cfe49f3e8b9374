/* Service-account authentication for BigQuery (OAuth 2.0 JWT bearer grant,
 * RFC 7523, as Google documents for "Using OAuth 2.0 for Server to Server
 * Applications").
 *
 * The key file is the JSON that the Cloud console downloads: type
 * "service_account", private_key (PEM), private_key_id, client_email,
 * token_uri. A JWT {alg RS256, typ JWT, kid} . {iss, scope, aud=token_uri,
 * iat, exp=iat+3600} is signed with the private key and exchanged at token_uri
 * for an access token, which is cached until 60 s before it expires.
 *
 * The private key and every access token are registered with
 * mbq_secret_register(), so they are masked in every log line and error
 * message; no message of this module ever contains them or the key file's
 * content, only its path. */
#ifndef MBQ_BQ_AUTH_H
#define MBQ_BQ_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "mbq/buf.h"
#include "mbq/http.h"

#define MBQ_BQ_SCOPE "https://www.googleapis.com/auth/bigquery"

typedef struct mbq_bq_auth mbq_bq_auth;

typedef struct mbq_bq_auth_options {
    const char *scope;            /* NULL = MBQ_BQ_SCOPE */
    int64_t refresh_margin_ms;    /* renew this long before expiry (default 60 s) */
    int max_retries;              /* token requests on 429/5xx/connection errors (default 5) */
    int64_t retry_max_elapsed_ms; /* bound on the time spent retrying (default 60 s) */
    int64_t retry_initial_ms;     /* first backoff ceiling (default 500 ms) */
    mbq_http_options http;        /* timeouts and TLS for the token endpoint */
} mbq_bq_auth_options;

void mbq_bq_auth_options_init(mbq_bq_auth_options *opts);

/* Load the service-account key file `path` (NULL = the environment variable
 * GOOGLE_APPLICATION_CREDENTIALS). *out is freed with mbq_bq_auth_free.
 * Errors name the path, never the content: MBQ_EAUTH when no path is given,
 * the file is missing or unreadable, is not JSON, is not of type
 * "service_account", lacks private_key/client_email/token_uri, or the key
 * is not a usable RSA private key; MBQ_ENOMEM. Logs a warning when the file
 * is readable by group or others. `opts` may be NULL for the defaults. */
int mbq_bq_auth_new(mbq_bq_auth **out, const char *path, const mbq_bq_auth_options *opts);
void mbq_bq_auth_free(mbq_bq_auth *auth);

/* A valid access token: the cached one when it is not within the refresh
 * margin of its expiry, else a new one from the token endpoint. *out points
 * into `auth` and is valid until the next call on `auth`. Errors: MBQ_EAUTH
 * when the endpoint refuses the assertion (its error and error_description
 * are quoted), MBQ_ENET/MBQ_ETIMEOUT/MBQ_ERR when it cannot be reached or
 * answers garbage (after retries). */
int mbq_bq_auth_token(const char **out, mbq_bq_auth *auth);

/* Forget the cached token (after BigQuery answered 401), so that the next
 * mbq_bq_auth_token fetches a new one. */
void mbq_bq_auth_invalidate(mbq_bq_auth *auth);

/* How many tokens were fetched from the endpoint so far (tests, metrics). */
unsigned mbq_bq_auth_fetch_count(const mbq_bq_auth *auth);

/* The signed JWT assertion for issue time `iat_s` (seconds since the epoch)
 * appended to `out`: base64url(header) "." base64url(claims) "." base64url(
 * RS256 signature). MBQ_EAUTH when signing fails, MBQ_ENOMEM. */
int mbq_bq_auth_jwt(mbq_buf *out, mbq_bq_auth *auth, int64_t iat_s);

/* Append the unpadded base64url encoding (RFC 4648 section 5) of data. */
int mbq_base64url_encode(mbq_buf *out, const void *data, size_t len);

#endif
