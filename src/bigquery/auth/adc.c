/* Application Default Credentials: credential files of every type, and the
 * lookup chain Google's libraries follow (google-auth's _default.py
 * `default()`, golang.org/x/oauth2/google's FindDefaultCredentials):
 *
 *   1. the file named by GOOGLE_APPLICATION_CREDENTIALS (an error when it
 *      is set but unusable: the user pointed at it, falling through to
 *      another identity would be a surprise);
 *   2. gcloud's well-known file, $CLOUDSDK_CONFIG/application_default_
 *      credentials.json or ~/.config/gcloud/application_default_credentials.json,
 *      when it exists;
 *   3. the metadata server, when it answers (metadata.c). */
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "cred_internal.h"
#include "mbq/error.h"
#include "mbq/log.h"
#include "mbq/util.h"
#include "mbq/banned.h"

int cred_from_json(mbq_cred **out, const char *path, const char *origin, json_object *root,
                   const mbq_cred_options *opts)
{
    const char *type = cred_json_str(root, "type");
    *out = NULL;
    if (!type)
        return mbq_error_set(MBQ_EAUTH, "credentials file '%s' has no \"type\"", path);
    if (strcmp(type, "service_account") == 0)
        return cred_service_account_new(out, path, origin, root, opts);
    if (strcmp(type, "authorized_user") == 0)
        return cred_authorized_user_new(out, path, origin, root, opts);
    if (strcmp(type, "external_account") == 0)
        return cred_external_account_new(out, path, origin, root, opts);
    if (strcmp(type, "impersonated_service_account") == 0)
        return cred_impersonated_new(out, path, origin, root, opts);
    return mbq_error_set(MBQ_EAUTH,
                         "credentials file '%s' is of type '%s' (supported: service_account, "
                         "authorized_user, external_account, impersonated_service_account)",
                         path, type);
}

static int from_file(mbq_cred **out, const char *path, const char *origin,
                     const mbq_cred_options *opts)
{
    int rc;
    mbq_buf data = MBQ_BUF_INIT;
    json_object *root = NULL;
    *out = NULL;
    if ((rc = cred_read_file(&data, path, "credentials file", true)) < 0)
        goto done;
    root = cred_json_parse(data.ptr ? data.ptr : "", data.len);
    if (!root || !json_object_is_type(root, json_type_object)) {
        rc = mbq_error_set(MBQ_EAUTH, "credentials file '%s' is not a JSON object", path);
        goto done;
    }
    rc = cred_from_json(out, path, origin, root, opts);
done:
    json_object_put(root); /* the secrets inside are registered, the copies go */
    if (data.ptr)
        OPENSSL_cleanse(data.ptr, data.len);
    mbq_buf_free(&data);
    return rc;
}

int mbq_cred_from_file(mbq_cred **out, const char *path, const mbq_cred_options *opts)
{
    return from_file(out, path, "file", opts);
}

/* gcloud's file: $CLOUDSDK_CONFIG, else ~/.config/gcloud (gcloud's own
 * config directory on Linux and macOS). */
static int well_known_file(mbq_buf *out)
{
    const char *dir = getenv("CLOUDSDK_CONFIG");
    if (dir && *dir)
        return mbq_buf_printf(out, "%s/application_default_credentials.json", dir);
    const char *home = getenv("HOME");
    if (!home || !*home)
        return MBQ_ENOTFOUND;
    return mbq_buf_printf(out, "%s/.config/gcloud/application_default_credentials.json", home);
}

int mbq_cred_default(mbq_cred **out, const char *path, const mbq_cred_options *opts)
{
    int rc = 0;
    mbq_buf wk = MBQ_BUF_INIT;
    char *where = NULL;
    mbq_cred_options defaults;
    *out = NULL;
    if (!opts) {
        mbq_cred_options_init(&defaults);
        opts = &defaults;
    }
    if (path && *path) {
        rc = from_file(out, path, "file", opts);
        goto done;
    }
    const char *env = getenv("GOOGLE_APPLICATION_CREDENTIALS");
    if (env && *env) {
        rc = from_file(out, env, "GOOGLE_APPLICATION_CREDENTIALS file", opts);
        if (rc == MBQ_EAUTH)
            mbq_error_wrap(rc, "GOOGLE_APPLICATION_CREDENTIALS: ");
        goto done;
    }
    rc = well_known_file(&wk);
    if (rc < 0 && rc != MBQ_ENOTFOUND)
        goto done;
    if (rc == 0 && mbq_file_exists(wk.ptr)) {
        rc = from_file(out, wk.ptr, "gcloud file", opts);
        goto done;
    }
    int64_t t0 = mbq_monotonic_ms();
    if (cred_metadata_present(opts, &where)) {
        rc = mbq_cred_metadata(out, opts);
        goto done;
    }
    mbq_log_debug("no metadata server (%lld ms)", (long long)(mbq_monotonic_ms() - t0));
    rc = mbq_error_set(MBQ_EAUTH,
                       "no Google credentials found: bigquery.credentials is not set, "
                       "GOOGLE_APPLICATION_CREDENTIALS is not set, '%s' does not exist "
                       "(gcloud auth application-default login writes it), and no metadata "
                       "server answered (not on Google Cloud)",
                       wk.len ? wk.ptr : "~/.config/gcloud/application_default_credentials.json");
done:
    free(where);
    mbq_buf_free(&wk);
    return rc;
}
