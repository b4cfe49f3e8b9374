/* Application Default Credentials (mbq/credentials.h) against
 * tests/standins/google_auth_standin.py, which answers as Google's OAuth
 * token endpoint, STS, IAM Credentials and the metadata server document:
 * one test per credential type and per lookup step, the lookup order,
 * refresh before expiry and after a 401, a metadata server that is absent
 * or slow (detection bounded well under a second), and secrets kept out of
 * every error message. */
#include <json-c/json.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mbq/bq.h"
#include "mbq/config.h"
#include "mbq/credentials.h"
#include "mbq/error.h"
#include "mbq/http.h"
#include "mbq/log.h"
#include "mbq/util.h"
#include "test.h"
#include "test_standin.h"

#define USER_EMAIL "ada@example.com"
#define CLIENT_ID "764086051850-test.apps.googleusercontent.com"
#define CLIENT_SECRET "d-FL95Q19q7MQmFpd7hHD0Ty-secret"
#define REFRESH_TOKEN "1//0refresh-TOKEN-abcdefghijklmnop"
#define SUBJECT_TOKEN "eyJhbGciOiJSUzI1NiJ9.subject-TOKEN-k8s.sig"
#define SA_TARGET "mbq-runner@proj-1.iam.gserviceaccount.com"
#define SA_DELEGATE "mbq-hop@proj-1.iam.gserviceaccount.com"
#define MD_EMAIL "123-compute@developer.gserviceaccount.com"
#define MD_PROJECT "md-project-7"
#define AUDIENCE "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/p/providers/k8s"

static char tmpdir[] = "/tmp/mbq_authstandin_XXXXXX";
static char base[64];
static char hostport[64];
static pid_t standin_pid;
static mbq_http *ctl_http;

static void write_file(const char *name, const char *content, char *path_out, size_t n)
{
    snprintf(path_out, n, "%s/%s", tmpdir, name);
    CHECK_INT(mbq_file_write_atomic(path_out, content, strlen(content)), 0);
    chmod(path_out, 0600);
}

static void control(const char *json) { test_standin_control(ctl_http, base, json); }

/* A counter of the stand-in's state: "requests" or "tokens", then a key. */
static int64_t counter(const char *group, const char *key)
{
    mbq_buf url = MBQ_BUF_INIT;
    mbq_http_response resp = MBQ_HTTP_RESPONSE_INIT;
    mbq_buf_printf(&url, "%s/_state", base);
    mbq_http_request req = {"GET", url.ptr, NULL, NULL};
    int64_t v = -1;
    if (mbq_http_do(ctl_http, &resp, &req) == 0) {
        json_object *o = json_tokener_parse(mbq_buf_cstr(&resp.body)), *g, *x;
        v = 0;
        if (json_object_object_get_ex(o, group, &g) && json_object_object_get_ex(g, key, &x))
            v = json_object_get_int64(x);
        json_object_put(o);
    }
    mbq_http_response_free(&resp);
    mbq_buf_free(&url);
    return v;
}

/* An environment with no credentials anywhere: each test adds its own. */
static void clean_env(void)
{
    char dir[300];
    snprintf(dir, sizeof dir, "%s/empty-gcloud", tmpdir);
    mkdir(dir, 0700);
    unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
    setenv("CLOUDSDK_CONFIG", dir, 1);
    unsetenv("GCE_METADATA_HOST");
    unsetenv("GCE_METADATA_ROOT");
    unsetenv("MBQ_IAM_CREDENTIALS_ENDPOINT");
    unsetenv("GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES");
    /* A closed loopback port stands for "no metadata server" off GCP; the
     * real 169.254.169.254 is not asked from tests. */
    setenv("GCE_METADATA_IP", "127.0.0.1:9", 1);
    control("{\"lifetime_s\": 3600, \"lifetime_by_kind\": {}, \"metadata_delay_s\": 0}");
}

static void user_file(char *path, size_t n, const char *name, const char *refresh)
{
    char js[1024];
    snprintf(js, sizeof js,
             "{\"type\": \"authorized_user\", \"client_id\": \"%s\", \"client_secret\": \"%s\", "
             "\"refresh_token\": \"%s\", \"token_uri\": \"%s/token\", "
             "\"quota_project_id\": \"quota-proj-9\"}",
             CLIENT_ID, CLIENT_SECRET, refresh, base);
    write_file(name, js, path, n);
}

static mbq_cred_options fast_opts(void)
{
    mbq_cred_options o;
    mbq_cred_options_init(&o);
    o.max_retries = 1;
    o.retry_initial_ms = 50;
    return o;
}

static void test_auth_authorized_user_refresh_grant_reuse_expiry_and_principal(void)
{
    char path[300];
    mbq_cred *c = NULL;
    const char *t1 = NULL, *t2 = NULL;
    mbq_buf who = MBQ_BUF_INIT;
    mbq_cred_options o = fast_opts();
    clean_env();
    user_file(path, sizeof path, "user.json", REFRESH_TOKEN);
    CHECK_INT(mbq_cred_from_file(&c, path, &o), 0);
    if (!c)
        return;
    CHECK_STR(mbq_cred_kind(c), "authorized_user");
    CHECK_STR(mbq_cred_project(c), "quota-proj-9");
    CHECK_STR(mbq_cred_quota_project(c), "quota-proj-9");
    int64_t before = counter("requests", "oauth");
    CHECK_INT(mbq_cred_token(&t1, c), 0);
    char *first = mbq_strdup(t1);
    CHECK_INT(mbq_cred_token(&t2, c), 0);
    CHECK_STR(t2, first); /* cached: one grant for both */
    CHECK_INT(counter("requests", "oauth") - before, 1);
    CHECK_INT(mbq_cred_principal(&who, c), 0);
    CHECK_STR(mbq_buf_cstr(&who), USER_EMAIL); /* from the id_token */
    /* A token within the refresh margin of its expiry is renewed. */
    control("{\"lifetime_by_kind\": {\"user\": 60}}");
    mbq_cred_invalidate(c);
    CHECK_INT(mbq_cred_token(&t1, c), 0);
    CHECK_INT(mbq_cred_token(&t2, c), 0); /* 60 s, all within the 60 s margin: renewed */
    CHECK_INT(counter("requests", "oauth") - before, 3);
    CHECK_INT(mbq_cred_fetch_count(c), 3);
    free(first);
    mbq_buf_free(&who);
    mbq_cred_free(c);
}

static void test_auth_authorized_user_revoked_refresh_token_is_refused_without_secrets(void)
{
    char path[300];
    mbq_cred *c = NULL;
    const char *t = NULL;
    mbq_cred_options o = fast_opts();
    clean_env();
    user_file(path, sizeof path, "user-bad.json", "1//0revoked-REFRESH-token-zzzzzzzz");
    CHECK_INT(mbq_cred_from_file(&c, path, &o), 0);
    if (!c)
        return;
    CHECK_INT(mbq_cred_token(&t, c), MBQ_EAUTH);
    const char *m = mbq_error_last();
    CHECK_CONTAINS(m, "invalid_grant");
    CHECK_CONTAINS(m, path);
    CHECK(!strstr(m, "revoked-REFRESH"));
    CHECK(!strstr(m, CLIENT_SECRET));
    mbq_cred_free(c);
}

static void test_auth_bigquery_401_forces_a_new_user_token(void)
{
    char path[300];
    mbq_bq *bq = NULL;
    mbq_bq_options o;
    bool exists = true;
    clean_env();
    user_file(path, sizeof path, "user-bq.json", REFRESH_TOKEN);
    mbq_bq_options_init(&o);
    o.endpoint = base;
    o.auth = MBQ_BQ_AUTH_ADC;
    o.credentials = path;
    o.max_retries = 0;
    CHECK_INT(mbq_bq_new(&bq, &o), 0); /* no project: the quota project */
    if (!bq)
        return;
    CHECK_STR(mbq_bq_project(bq), "quota-proj-9");
    int64_t grants = counter("requests", "oauth");
    CHECK_INT(mbq_bq_location_resolve(bq, &exists, "ds"), 0);
    CHECK(!exists);
    CHECK_INT(counter("requests", "oauth") - grants, 1);
    /* Every token the stand-in issued is stale from now on: BigQuery
     * answers 401, the client forgets its token, gets a new one, retries. */
    control("{\"expire_all\": true}");
    int64_t bqreq = counter("requests", "bigquery");
    CHECK_INT(mbq_bq_location_resolve(bq, &exists, "ds"), 0);
    CHECK_INT(counter("requests", "oauth") - grants, 2);
    CHECK_INT(counter("requests", "bigquery") - bqreq, 2);
    mbq_bq_free(bq);
    /* A config without project_id gets the credentials' (what every
     * command does after loading it). */
    mbq_bigquery_config bc;
    memset(&bc, 0, sizeof bc);
    bc.endpoint = base;
    bc.auth = MBQ_BIGQUERY_AUTH_ADC;
    bc.credentials = path;
    bc.tls_verify = true;
    CHECK_INT(mbq_bq_config_resolve_project(&bc), 0);
    CHECK_STR(bc.project_id, "quota-proj-9");
    free(bc.project_id);
}

static void external_file(char *path, size_t n, const char *name, const char *source,
                          bool impersonate)
{
    char js[2048], imp[512] = "";
    if (impersonate)
        snprintf(imp, sizeof imp,
                 "\"service_account_impersonation_url\": \"%s/v1/projects/-/serviceAccounts/"
                 "%s:generateAccessToken\", ",
                 base, SA_TARGET);
    snprintf(js, sizeof js,
             "{\"type\": \"external_account\", \"audience\": \"%s\", "
             "\"subject_token_type\": \"urn:ietf:params:oauth:token-type:jwt\", "
             "\"token_url\": \"%s/v1/token\", %s\"credential_source\": %s}",
             AUDIENCE, base, imp, source);
    write_file(name, js, path, n);
}

static void test_auth_external_account_file_source_sts_exchange(void)
{
    char path[300], tok[300], src[512];
    mbq_cred *c = NULL;
    const char *t = NULL;
    mbq_buf who = MBQ_BUF_INIT;
    mbq_cred_options o = fast_opts();
    clean_env();
    write_file("k8s-token", SUBJECT_TOKEN "\n", tok, sizeof tok); /* as `echo` writes it */
    snprintf(src, sizeof src, "{\"file\": \"%s\"}", tok);
    external_file(path, sizeof path, "ext-file.json", src, false);
    CHECK_INT(mbq_cred_from_file(&c, path, &o), 0);
    if (!c)
        return;
    CHECK_STR(mbq_cred_kind(c), "external_account");
    int64_t sts = counter("tokens", "sts");
    CHECK_INT(mbq_cred_token(&t, c), 0);
    CHECK(t && strncmp(t, "ya29.standin-sts-", 17) == 0);
    CHECK_INT(counter("tokens", "sts") - sts, 1);
    CHECK_INT(mbq_cred_principal(&who, c), 0);
    CHECK_CONTAINS(mbq_buf_cstr(&who), "workload identity");
    /* A subject token the STS does not accept: refused, never quoted. */
    write_file("k8s-token", "eyJ.wrong-SUBJECT-token-xyz.sig", tok, sizeof tok);
    mbq_cred_invalidate(c);
    CHECK_INT(mbq_cred_token(&t, c), MBQ_EAUTH);
    CHECK_CONTAINS(mbq_error_last(), "invalid_grant");
    CHECK(!strstr(mbq_error_last(), "wrong-SUBJECT"));
    mbq_buf_free(&who);
    mbq_cred_free(c);
}

static void test_auth_external_account_url_json_source_with_impersonation(void)
{
    char path[300], src[1024];
    mbq_cred *c = NULL;
    const char *t = NULL;
    mbq_buf who = MBQ_BUF_INIT;
    mbq_cred_options o = fast_opts();
    clean_env();
    /* The stand-in's metadata token endpoint as a URL source: a JSON answer
     * whose access_token member is the subject token (the shape Azure's
     * IMDS gives), with the header it requires. */
    snprintf(src, sizeof src,
             "{\"url\": \"%s/computeMetadata/v1/instance/service-accounts/default/token\", "
             "\"headers\": {\"Metadata-Flavor\": \"Google\"}, "
             "\"format\": {\"type\": \"json\", \"subject_token_field_name\": \"access_token\"}}",
             base);
    external_file(path, sizeof path, "ext-url.json", src, true);
    CHECK_INT(mbq_cred_from_file(&c, path, &o), 0);
    if (!c)
        return;
    CHECK_STR(mbq_cred_kind(c), "impersonated_service_account");
    CHECK_CONTAINS(mbq_cred_source(c), "external_account");
    /* The URL's token is no subject the STS knows: refused. */
    CHECK_INT(mbq_cred_token(&t, c), MBQ_EAUTH);
    CHECK_CONTAINS(mbq_error_last(), "subject token is invalid");
    mbq_cred_free(c);
    c = NULL;
    /* The real path: a file source, STS, then generateAccessToken. */
    char tok[300];
    write_file("k8s-token2", SUBJECT_TOKEN, tok, sizeof tok);
    snprintf(src, sizeof src, "{\"file\": \"%s\", \"format\": {\"type\": \"text\"}}", tok);
    external_file(path, sizeof path, "ext-imp.json", src, true);
    CHECK_INT(mbq_cred_from_file(&c, path, &o), 0);
    if (!c)
        return;
    int64_t iam = counter("requests", "iam");
    CHECK_INT(mbq_cred_token(&t, c), 0);
    CHECK(t && strncmp(t, "ya29.standin-impersonated-", 26) == 0);
    CHECK_INT(counter("requests", "iam") - iam, 1);
    CHECK_INT(mbq_cred_principal(&who, c), 0);
    CHECK_STR(mbq_buf_cstr(&who), SA_TARGET);
    mbq_buf_free(&who);
    mbq_cred_free(c);
}

static void test_auth_impersonation_401_renews_the_source_token_once(void)
{
    char path[300];
    mbq_cred *src = NULL, *c = NULL;
    const char *t = NULL;
    mbq_cred_options o = fast_opts();
    o.refresh_margin_ms = 0;
    clean_env();
    user_file(path, sizeof path, "user-imp.json", REFRESH_TOKEN);
    CHECK_INT(mbq_cred_from_file(&src, path, &o), 0);
    setenv("MBQ_IAM_CREDENTIALS_ENDPOINT", base, 1);
    static const char *const delegates[] = {SA_DELEGATE, NULL};
    CHECK_INT(mbq_cred_impersonate(&c, src, SA_TARGET, NULL, delegates, &o), 0);
    if (!c)
        return;
    /* Impersonated tokens live 1 s, the user's an hour. */
    control("{\"lifetime_by_kind\": {\"impersonated\": 1}}");
    int64_t grants = counter("requests", "oauth"), iam = counter("requests", "iam");
    CHECK_INT(mbq_cred_token(&t, c), 0);
    CHECK_INT(counter("requests", "oauth") - grants, 1);
    /* The user's token goes stale at the server while mbq still holds it;
     * the impersonated one expires: the IAM call answers 401, the source
     * token is renewed and the call made again. */
    control("{\"expire_all\": true}");
    mbq_sleep_ms(1100);
    CHECK_INT(mbq_cred_token(&t, c), 0);
    CHECK_INT(counter("requests", "oauth") - grants, 2);
    CHECK_INT(counter("requests", "iam") - iam, 3);
    mbq_cred_free(c);
}

static void test_auth_impersonated_service_account_file_with_delegates(void)
{
    char path[300], js[2048];
    mbq_cred *c = NULL;
    const char *t = NULL;
    mbq_buf who = MBQ_BUF_INIT;
    mbq_cred_options o = fast_opts();
    clean_env();
    snprintf(js, sizeof js,
             "{\"type\": \"impersonated_service_account\", \"delegates\": [\"%s\"], "
             "\"service_account_impersonation_url\": \"%s/v1/projects/-/serviceAccounts/%s:"
             "generateAccessToken\", \"source_credentials\": {\"type\": \"authorized_user\", "
             "\"client_id\": \"%s\", \"client_secret\": \"%s\", \"refresh_token\": \"%s\", "
             "\"token_uri\": \"%s/token\"}}",
             SA_DELEGATE, base, SA_TARGET, CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, base);
    write_file("imp.json", js, path, sizeof path);
    CHECK_INT(mbq_cred_from_file(&c, path, &o), 0);
    if (!c)
        return;
    CHECK_STR(mbq_cred_kind(c), "impersonated_service_account");
    CHECK_INT(mbq_cred_token(&t, c), 0);
    CHECK(t && strncmp(t, "ya29.standin-impersonated-", 26) == 0);
    CHECK_INT(mbq_cred_principal(&who, c), 0);
    CHECK_STR(mbq_buf_cstr(&who), SA_TARGET);
    mbq_buf_free(&who);
    mbq_cred_free(c);
    /* Without the delegate the user may not act as the target: 403, and
     * the message names the role that is missing. */
    setenv("MBQ_IAM_CREDENTIALS_ENDPOINT", base, 1);
    mbq_cred *u = NULL;
    char upath[300];
    user_file(upath, sizeof upath, "user-nodelegate.json", REFRESH_TOKEN);
    CHECK_INT(mbq_cred_from_file(&u, upath, &o), 0);
    CHECK_INT(mbq_cred_impersonate(&c, u, SA_TARGET, NULL, NULL, &o), 0);
    if (c) {
        CHECK_INT(mbq_cred_token(&t, c), MBQ_EAUTH);
        CHECK_CONTAINS(mbq_error_last(), "roles/iam.serviceAccountTokenCreator");
        CHECK_CONTAINS(mbq_error_last(), "PERMISSION_DENIED");
    }
    mbq_cred_free(c);
}

static void test_auth_executable_source_only_when_allowed(void)
{
    char path[300], script[300], src[1024];
    mbq_cred *c = NULL;
    const char *t = NULL;
    mbq_cred_options o = fast_opts();
    char body[512];
    clean_env();
    snprintf(body, sizeof body,
             "#!/bin/sh\nprintf '{\"version\": 1, \"success\": true, \"token_type\": "
             "\"urn:ietf:params:oauth:token-type:jwt\", \"id_token\": \"%s\", "
             "\"expiration_time\": %lld}'\n",
             SUBJECT_TOKEN, (long long)(mbq_now_ms() / 1000 + 3600));
    write_file("exe.sh", body, script, sizeof script);
    chmod(script, 0700);
    snprintf(src, sizeof src, "{\"executable\": {\"command\": \"%s --flag\", "
                              "\"timeout_millis\": 5000}}",
             script);
    external_file(path, sizeof path, "ext-exe.json", src, false);
    CHECK_INT(mbq_cred_from_file(&c, path, &o), 0);
    if (!c)
        return;
    CHECK_INT(mbq_cred_token(&t, c), MBQ_EAUTH);
    CHECK_CONTAINS(mbq_error_last(), "GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1");
    setenv("GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES", "1", 1);
    CHECK_INT(mbq_cred_token(&t, c), 0);
    CHECK(t && strncmp(t, "ya29.standin-sts-", 17) == 0);
    mbq_cred_free(c);
}

static void test_auth_metadata_server_token_email_and_project(void)
{
    mbq_cred *c = NULL;
    const char *t = NULL;
    mbq_buf who = MBQ_BUF_INIT;
    mbq_cred_options o = fast_opts();
    clean_env();
    setenv("GCE_METADATA_HOST", hostport, 1);
    unsetenv("GCE_METADATA_IP"); /* the ping goes to GCE_METADATA_HOST */
    CHECK_INT(mbq_cred_default(&c, NULL, &o), 0);
    if (!c)
        return;
    CHECK_STR(mbq_cred_kind(c), "metadata");
    CHECK_CONTAINS(mbq_cred_source(c), hostport);
    CHECK_INT(mbq_cred_token(&t, c), 0);
    CHECK(t && strncmp(t, "ya29.standin-metadata-", 22) == 0);
    CHECK_INT(mbq_cred_principal(&who, c), 0);
    CHECK_STR(mbq_buf_cstr(&who), MD_EMAIL);
    CHECK_STR(mbq_cred_project(c), MD_PROJECT);
    mbq_buf_free(&who);
    mbq_cred_free(c);
}

static void test_auth_absent_or_slow_metadata_server_is_detected_fast(void)
{
    mbq_cred *c = NULL;
    mbq_cred_options o = fast_opts();
    clean_env();
    /* Absent: nothing listens. */
    int64_t t0 = mbq_monotonic_ms();
    CHECK_INT(mbq_cred_default(&c, NULL, &o), MBQ_EAUTH);
    int64_t absent_ms = mbq_monotonic_ms() - t0;
    CHECK_CONTAINS(mbq_error_last(), "no Google credentials found");
    CHECK_CONTAINS(mbq_error_last(), "application_default_credentials.json");
    CHECK(absent_ms < 1000);
    /* Slow: it accepts the connection and answers after 3 s. */
    setenv("GCE_METADATA_HOST", hostport, 1);
    unsetenv("GCE_METADATA_IP");
    control("{\"metadata_delay_s\": 3}");
    t0 = mbq_monotonic_ms();
    CHECK_INT(mbq_cred_default(&c, NULL, &o), MBQ_EAUTH);
    int64_t slow_ms = mbq_monotonic_ms() - t0;
    CHECK(slow_ms < 1000);
    control("{\"metadata_delay_s\": 0}");
    printf("     (no metadata server: %lld ms, a slow one: %lld ms)\n", (long long)absent_ms,
           (long long)slow_ms);
    mbq_cred_free(c);
}

static void test_auth_lookup_order_env_then_gcloud_file_then_metadata(void)
{
    char env_path[300], gdir[300], gfile[300], js[1024];
    mbq_cred *c = NULL;
    mbq_cred_options o = fast_opts();
    clean_env();
    /* All three present. */
    setenv("GCE_METADATA_HOST", hostport, 1);
    unsetenv("GCE_METADATA_IP");
    snprintf(gdir, sizeof gdir, "%s/gcloud", tmpdir);
    mkdir(gdir, 0700);
    setenv("CLOUDSDK_CONFIG", gdir, 1);
    user_file(gfile, sizeof gfile, "gcloud/application_default_credentials.json",
              REFRESH_TOKEN);
    char tok[300], src[512];
    write_file("k8s-token3", SUBJECT_TOKEN, tok, sizeof tok);
    snprintf(src, sizeof src, "{\"file\": \"%s\"}", tok);
    external_file(env_path, sizeof env_path, "env-ext.json", src, false);
    setenv("GOOGLE_APPLICATION_CREDENTIALS", env_path, 1);
    int64_t pings = counter("requests", "metadata_ping");

    /* 1. GOOGLE_APPLICATION_CREDENTIALS. */
    CHECK_INT(mbq_cred_default(&c, NULL, &o), 0);
    CHECK(c && strcmp(mbq_cred_kind(c), "external_account") == 0);
    CHECK(c && strstr(mbq_cred_source(c), "GOOGLE_APPLICATION_CREDENTIALS"));
    mbq_cred_free(c);
    c = NULL;
    /* An explicit path beats them all. */
    CHECK_INT(mbq_cred_default(&c, gfile, &o), 0);
    CHECK(c && strcmp(mbq_cred_kind(c), "authorized_user") == 0);
    mbq_cred_free(c);
    c = NULL;
    /* 2. gcloud's well-known file. */
    unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
    CHECK_INT(mbq_cred_default(&c, NULL, &o), 0);
    CHECK(c && strcmp(mbq_cred_kind(c), "authorized_user") == 0);
    CHECK(c && strstr(mbq_cred_source(c), "gcloud file"));
    mbq_cred_free(c);
    c = NULL;
    CHECK_INT(counter("requests", "metadata_ping") - pings, 0); /* never asked so far */
    /* 3. The metadata server. */
    unlink(gfile);
    CHECK_INT(mbq_cred_default(&c, NULL, &o), 0);
    CHECK(c && strcmp(mbq_cred_kind(c), "metadata") == 0);
    CHECK_INT(counter("requests", "metadata_ping") - pings, 1);
    mbq_cred_free(c);
    c = NULL;
    /* A GOOGLE_APPLICATION_CREDENTIALS that cannot be used is an error,
     * not a silent fall-through to another identity. */
    setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/creds.json", 1);
    CHECK_INT(mbq_cred_default(&c, NULL, &o), MBQ_EAUTH);
    CHECK_CONTAINS(mbq_error_last(), "/nonexistent/creds.json");
    unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
    /* Unknown types and missing fields name the file and the field. */
    snprintf(js, sizeof js, "{\"type\": \"gdch_service_account\"}");
    write_file("odd.json", js, env_path, sizeof env_path);
    CHECK_INT(mbq_cred_from_file(&c, env_path, &o), MBQ_EAUTH);
    CHECK_CONTAINS(mbq_error_last(), "gdch_service_account");
    snprintf(js, sizeof js, "{\"type\": \"authorized_user\", \"client_id\": \"x\", "
                            "\"client_secret\": \"sssssssssss\"}");
    write_file("nort.json", js, env_path, sizeof env_path);
    CHECK_INT(mbq_cred_from_file(&c, env_path, &o), MBQ_EAUTH);
    CHECK_CONTAINS(mbq_error_last(), "\"refresh_token\"");
    mbq_cred_free(c);
}

static void test_auth_rfc3339_expire_time(void)
{
    int64_t ms = 0;
    CHECK_INT(mbq_cred_parse_rfc3339_ms(&ms, "2014-10-02T15:01:23.045123456Z"), 0);
    CHECK(ms == 1412262083045LL);
    CHECK_INT(mbq_cred_parse_rfc3339_ms(&ms, "2014-10-02T15:01:23Z"), 0);
    CHECK(ms == 1412262083000LL);
    CHECK_INT(mbq_cred_parse_rfc3339_ms(&ms, "2014-10-02 15:01:23"), MBQ_ERR);
    CHECK_INT(mbq_cred_parse_rfc3339_ms(&ms, "2014-10-02T15:01:23+02:00"), MBQ_ERR);
}

int main(void)
{
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    char port_file[300], cfg[300], js[2048];
    snprintf(port_file, sizeof port_file, "%s/port", tmpdir);
    snprintf(js, sizeof js,
             "{\"users\": [{\"client_id\": \"%s\", \"client_secret\": \"%s\", "
             "\"refresh_token\": \"%s\", \"email\": \"%s\"}], "
             "\"subject_tokens\": {\"%s\": \"principal://k8s/sa/mbq\"}, \"audience\": \"%s\", "
             "\"impersonation\": {\"%s\": [\"principal://k8s/sa/mbq\", \"%s\"], "
             "\"%s\": [\"%s\"]}, "
             "\"metadata\": {\"email\": \"%s\", \"project\": \"%s\"}}",
             CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, USER_EMAIL, SUBJECT_TOKEN, AUDIENCE,
             SA_TARGET, SA_DELEGATE, SA_DELEGATE, USER_EMAIL, MD_EMAIL, MD_PROJECT);
    snprintf(cfg, sizeof cfg, "%s/standin.json", tmpdir);
    mbq_file_write_atomic(cfg, js, strlen(js));
    const char *args[] = {cfg, NULL};
    standin_pid = test_standin_start(base, sizeof base, "google_auth_standin.py", port_file, args);
    if (standin_pid < 0)
        return 1;
    snprintf(hostport, sizeof hostport, "%s", base + strlen("http://"));
    mbq_http_new(&ctl_http, NULL);

    RUN(test_auth_rfc3339_expire_time);
    RUN(test_auth_authorized_user_refresh_grant_reuse_expiry_and_principal);
    RUN(test_auth_authorized_user_revoked_refresh_token_is_refused_without_secrets);
    RUN(test_auth_bigquery_401_forces_a_new_user_token);
    RUN(test_auth_external_account_file_source_sts_exchange);
    RUN(test_auth_external_account_url_json_source_with_impersonation);
    RUN(test_auth_impersonation_401_renews_the_source_token_once);
    RUN(test_auth_impersonated_service_account_file_with_delegates);
    RUN(test_auth_executable_source_only_when_allowed);
    RUN(test_auth_metadata_server_token_email_and_project);
    RUN(test_auth_absent_or_slow_metadata_server_is_detected_fast);
    RUN(test_auth_lookup_order_env_then_gcloud_file_then_metadata);

    mbq_http_free(ctl_http);
    test_standin_stop(standin_pid);
    test_remove_tree(tmpdir);
    return test_summary();
}
