/* The metadata server's credentials: Compute Engine, GKE workload identity,
 * Cloud Run and Cloud Functions hand the attached service account's tokens
 * to any local process at
 *   GET http://metadata.google.internal/computeMetadata/v1/instance/
 *       service-accounts/default/token   (header Metadata-Flavor: Google)
 *   -> {"access_token": "...", "expires_in": 3599, "token_type": "Bearer"}
 * ("About VM metadata" and "Authenticate using the metadata server" in
 * Google's docs; google-auth's compute_engine/_metadata.py).
 *
 * Hosts follow google-auth: GCE_METADATA_HOST (formerly GCE_METADATA_ROOT)
 * names the server, default metadata.google.internal; the detection ping
 * goes to GCE_METADATA_IP, default 169.254.169.254 (no DNS lookup, which
 * can take seconds off Google Cloud), or to GCE_METADATA_HOST when only that
 * is set. The ping must see Metadata-Flavor: Google in the answer: any other
 * server on that address is not Google's. */
#include <stdlib.h>
#include <string.h>

#include "cred_internal.h"
#include "mbq/error.h"
#include "mbq/log.h"
#include "mbq/util.h"
#include "mbq/banned.h"

#define METADATA_HOST "metadata.google.internal"
#define METADATA_IP "169.254.169.254"
#define SA_PATH "/computeMetadata/v1/instance/service-accounts/default/"

static const char *const flavor_headers[] = {"Metadata-Flavor: Google", NULL};

static const char *metadata_host(void)
{
    const char *h = getenv("GCE_METADATA_HOST");
    if (!h || !*h)
        h = getenv("GCE_METADATA_ROOT");
    return h && *h ? h : METADATA_HOST;
}

static const char *ping_host(void)
{
    const char *ip = getenv("GCE_METADATA_IP");
    const char *h = getenv("GCE_METADATA_HOST");
    if (ip && *ip)
        return ip;
    return h && *h ? h : METADATA_IP;
}

/* Linux says what hardware it runs on: Compute Engine VMs have the DMI
 * product name "Google Compute Engine" (Go's metadata.OnGCE reads the same
 * file). There a slow first answer is still worth waiting for. */
static bool dmi_says_google(void)
{
    mbq_buf b = MBQ_BUF_INIT;
    bool yes = false;
    if (mbq_file_exists("/sys/class/dmi/id/product_name") &&
        mbq_file_read_all(&b, "/sys/class/dmi/id/product_name") == 0)
        yes = strstr(mbq_buf_cstr(&b), "Google") != NULL;
    mbq_error_clear();
    mbq_buf_free(&b);
    return yes;
}

bool cred_metadata_present(const mbq_cred_options *opts, char **where)
{
    mbq_http *h = NULL;
    mbq_buf url = MBQ_BUF_INIT, flavor = MBQ_BUF_INIT;
    bool found = false;
    bool gce = dmi_says_google();
    /* Off Google Cloud the address is unrouted or silent: a short budget
     * (default 500 ms) keeps `mbq check` and every run quick there. On a
     * VM that says it is one, google-auth's 3 s and 3 tries. */
    int64_t budget = gce ? 3000 : opts->metadata_ping_ms;
    int tries = gce ? 3 : 1;
    mbq_http_options ho = MBQ_HTTP_OPTIONS_INIT;
    ho.connect_timeout_ms = budget;
    ho.timeout_ms = budget;
    *where = NULL;
    if (mbq_http_new(&h, &ho) < 0 || mbq_buf_printf(&url, "http://%s/", ping_host()) < 0)
        goto done;
    for (int i = 0; i < tries && !found; i++) {
        mbq_http_response resp = MBQ_HTTP_RESPONSE_INIT;
        mbq_http_request req = {"GET", url.ptr, flavor_headers, NULL};
        int64_t t0 = mbq_monotonic_ms();
        int rc = mbq_http_do(h, &resp, &req);
        mbq_buf_clear(&flavor);
        found = rc == 0 && resp.status == 200 &&
                mbq_http_response_header(&flavor, &resp, "Metadata-Flavor") == 0 &&
                strcmp(mbq_buf_cstr(&flavor), "Google") == 0;
        mbq_log_debug("metadata server at '%s': %s after %lld ms", url.ptr,
                      found ? "found" : rc < 0 ? mbq_error_last() : "not Google's",
                      (long long)(mbq_monotonic_ms() - t0));
        mbq_http_response_free(&resp);
    }
    if (found)
        *where = mbq_buf_detach(&url);
done:
    mbq_error_clear();
    mbq_http_free(h);
    mbq_buf_free(&url);
    mbq_buf_free(&flavor);
    return found;
}

static int md_get(mbq_buf *out, mbq_cred *c, const char *path, bool *retry)
{
    mbq_buf url = MBQ_BUF_INIT;
    long status;
    bool r = false;
    int rc = mbq_buf_printf(&url, "http://%s%s", metadata_host(), path);
    if (rc == 0)
        rc = cred_get(out, &status, retry ? retry : &r, c, "metadata server", url.ptr,
                      flavor_headers);
    mbq_buf_free(&url);
    return rc;
}

static int md_fetch(mbq_cred *c, char **token, int64_t *expiry_ms, bool *retry)
{
    mbq_buf body = MBQ_BUF_INIT;
    json_object *root = NULL;
    int64_t start = mbq_now_ms();
    int rc = md_get(&body, c, SA_PATH "token", retry);
    if (rc < 0)
        goto done;
    root = cred_json_parse(mbq_buf_cstr(&body), body.len);
    if (!root) {
        rc = mbq_error_set(MBQ_ERR, "metadata server: the token answer is not JSON");
        goto done;
    }
    rc = cred_oauth_token(token, expiry_ms, root, start, "metadata server");
done:
    json_object_put(root);
    mbq_buf_free(&body);
    return rc;
}

static int md_text(char **out, mbq_cred *c, const char *path)
{
    mbq_buf b = MBQ_BUF_INIT;
    int rc = md_get(&b, c, path, NULL);
    while (rc == 0 && b.len && (b.ptr[b.len - 1] == '\n' || b.ptr[b.len - 1] == ' '))
        b.ptr[--b.len] = '\0';
    if (rc == 0 && b.len == 0)
        rc = mbq_error_set(MBQ_ERR, "metadata server: empty answer for '%s'", path);
    if (rc == 0)
        *out = mbq_buf_detach(&b);
    mbq_buf_free(&b);
    return rc;
}

static int md_principal(mbq_cred *c) { return md_text(&c->principal, c, SA_PATH "email"); }

static int md_project(mbq_cred *c)
{
    return md_text(&c->project, c, "/computeMetadata/v1/project/project-id");
}

static void md_free(void *impl) { (void)impl; }

static const cred_ops md_ops = {"metadata", md_fetch, md_principal, md_project, NULL, md_free};

int mbq_cred_metadata(mbq_cred **out, const mbq_cred_options *opts)
{
    mbq_buf src = MBQ_BUF_INIT;
    int rc = mbq_buf_printf(&src, "metadata server 'http://%s'", metadata_host());
    if (rc == 0)
        rc = cred_new(out, &md_ops, NULL, mbq_buf_cstr(&src), opts);
    mbq_buf_free(&src);
    return rc;
}
