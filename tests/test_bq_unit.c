/* Unit tests of the BigQuery client's pure parts: base64url and the JWT
 * (header, claims, RS256 signature verified with the public half), key file
 * errors, job id generation, error body parsing, schema JSON round-trip and
 * robustness of the parsers to garbage, retry classification, and the HTTP
 * layer's handling of an answer cut inside its headers (a loopback server
 * thread). */
#include <fcntl.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mbq/bq.h"
#include "mbq/bq_auth.h"
#include "mbq/config.h"
#include "mbq/error.h"
#include "mbq/http.h"
#include "mbq/log.h"
#include "mbq/util.h"
#include "test.h"

static char tmpdir[] = "/tmp/mbq_bqunit_XXXXXX";
static char key_pem[256], key_json[256];

static void b64url_decode(mbq_buf *out, const char *s, size_t n)
{
    unsigned v = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        const char *tab = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        const char *p = strchr(tab, s[i]);
        if (!p)
            break;
        v = v << 6 | (unsigned)(p - tab);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            mbq_buf_putc(out, (char)((v >> bits) & 0xff));
        }
    }
}

static int write_file(const char *path, const char *content, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, content, strlen(content));
    fchmod(fd, mode);
    close(fd);
    return n == (ssize_t)strlen(content) ? 0 : -1;
}

/* A key file for the generated key pair: {"type":..., "private_key": PEM}. */
static int write_key_json(const char *path, const char *type, mode_t mode)
{
    mbq_buf pem = MBQ_BUF_INIT, js = MBQ_BUF_INIT;
    if (mbq_file_read_all(&pem, key_pem) < 0)
        return -1;
    mbq_buf_printf(&js, "{\"type\":\"%s\",\"project_id\":\"p\",\"private_key_id\":\"test-key-id\","
                        "\"private_key\":",
                   type);
    mbq_buf_json_string(&js, pem.ptr, pem.len);
    mbq_buf_puts(&js, ",\"client_email\":\"mbq@p.iam.gserviceaccount.com\","
                      "\"token_uri\":\"https://oauth2.example/token\"}");
    int rc = write_file(path, js.ptr, mode);
    mbq_buf_free(&pem);
    mbq_buf_free(&js);
    return rc;
}

static void test_base64url_vectors(void)
{
    /* RFC 4648 section 10 vectors, unpadded, and the url-safe alphabet. */
    static const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *want[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    for (size_t i = 0; i < 7; i++) {
        mbq_buf b = MBQ_BUF_INIT;
        CHECK_INT(mbq_base64url_encode(&b, in[i], strlen(in[i])), 0);
        CHECK_STR(mbq_buf_cstr(&b), want[i]);
        mbq_buf_free(&b);
    }
    mbq_buf b = MBQ_BUF_INIT;
    unsigned char raw[] = {0xfb, 0xff, 0xbf};
    mbq_base64url_encode(&b, raw, 3);
    CHECK_STR(b.ptr, "-_-_");
    mbq_buf_free(&b);
}

static void test_jwt_header_claims_and_signature(void)
{
    mbq_bq_auth *auth = NULL;
    mbq_buf jwt = MBQ_BUF_INIT, part = MBQ_BUF_INIT, sig = MBQ_BUF_INIT;
    json_object *hdr = NULL, *cl = NULL;
    int rc = mbq_bq_auth_new(&auth, key_json, NULL);
    CHECK_INT(rc, 0);
    if (rc) {
        fprintf(stderr, "  %s\n", mbq_error_last());
        return;
    }
    CHECK_INT(mbq_bq_auth_jwt(&jwt, auth, 1700000000), 0);
    const char *d1 = strchr(jwt.ptr, '.');
    const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    CHECK(d1 && d2 && !strchr(d2 + 1, '.'));
    if (!d2)
        goto done;
    b64url_decode(&part, jwt.ptr, (size_t)(d1 - jwt.ptr));
    hdr = json_tokener_parse(part.ptr);
    CHECK_STR(json_object_get_string(json_object_object_get(hdr, "alg")), "RS256");
    CHECK_STR(json_object_get_string(json_object_object_get(hdr, "typ")), "JWT");
    CHECK_STR(json_object_get_string(json_object_object_get(hdr, "kid")), "test-key-id");
    mbq_buf_clear(&part);
    b64url_decode(&part, d1 + 1, (size_t)(d2 - d1 - 1));
    cl = json_tokener_parse(part.ptr);
    CHECK_STR(json_object_get_string(json_object_object_get(cl, "iss")),
              "mbq@p.iam.gserviceaccount.com");
    CHECK_STR(json_object_get_string(json_object_object_get(cl, "scope")),
              "https://www.googleapis.com/auth/bigquery");
    CHECK_STR(json_object_get_string(json_object_object_get(cl, "aud")),
              "https://oauth2.example/token");
    CHECK_INT(json_object_get_int64(json_object_object_get(cl, "iat")), 1700000000);
    CHECK_INT(json_object_get_int64(json_object_object_get(cl, "exp")), 1700003600);

    /* The signature verifies with the public half over "header.claims". */
    b64url_decode(&sig, d2 + 1, strlen(d2 + 1));
    CHECK_INT(sig.len, 256);
    FILE *f = fopen(key_pem, "r");
    EVP_PKEY *pk = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    BIO *mem = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(mem, pk);
    EVP_PKEY *pub = PEM_read_bio_PUBKEY(mem, NULL, NULL, NULL);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    CHECK(pub && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub) == 1);
    CHECK_INT(EVP_DigestVerify(md, (unsigned char *)sig.ptr, sig.len, (unsigned char *)jwt.ptr,
                               (size_t)(d2 - jwt.ptr)),
              1);
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(pub);
    EVP_PKEY_free(pk);
    BIO_free(mem);
done:
    json_object_put(hdr);
    json_object_put(cl);
    mbq_buf_free(&jwt);
    mbq_buf_free(&part);
    mbq_buf_free(&sig);
    mbq_bq_auth_free(auth);
}

static void test_key_file_errors_name_the_path_not_the_content(void)
{
    mbq_bq_auth *auth = NULL;
    mbq_buf p = MBQ_BUF_INIT;

    mbq_buf_printf(&p, "%s/missing.json", tmpdir);
    CHECK_INT(mbq_bq_auth_new(&auth, p.ptr, NULL), MBQ_EAUTH);
    CHECK_CONTAINS(mbq_error_last(), p.ptr);

    mbq_buf_clear(&p);
    mbq_buf_printf(&p, "%s/garbage.json", tmpdir);
    write_file(p.ptr, "{\"type\": \"service_account\", \"private_key\": ", 0600);
    CHECK_INT(mbq_bq_auth_new(&auth, p.ptr, NULL), MBQ_EAUTH);
    CHECK_CONTAINS(mbq_error_last(), "not a JSON object");

    mbq_buf_clear(&p);
    mbq_buf_printf(&p, "%s/user.json", tmpdir);
    write_key_json(p.ptr, "authorized_user", 0600);
    CHECK_INT(mbq_bq_auth_new(&auth, p.ptr, NULL), MBQ_EAUTH);
    CHECK_CONTAINS(mbq_error_last(), "'authorized_user', not 'service_account'");
    CHECK(!strstr(mbq_error_last(), "PRIVATE KEY"));

    mbq_buf_clear(&p);
    mbq_buf_printf(&p, "%s/nokey.json", tmpdir);
    write_file(p.ptr, "{\"type\":\"service_account\",\"client_email\":\"a@b\",\"token_uri\":\"x\"}",
               0600);
    CHECK_INT(mbq_bq_auth_new(&auth, p.ptr, NULL), MBQ_EAUTH);
    CHECK_CONTAINS(mbq_error_last(), "no \"private_key\"");

    mbq_buf_clear(&p);
    mbq_buf_printf(&p, "%s/badpem.json", tmpdir);
    write_file(p.ptr, "{\"type\":\"service_account\",\"client_email\":\"a@b\",\"token_uri\":\"x\","
                      "\"private_key\":\"-----BEGIN PRIVATE KEY-----\\nAAAAsecretsecret\\n"
                      "-----END PRIVATE KEY-----\\n\"}",
               0600);
    CHECK_INT(mbq_bq_auth_new(&auth, p.ptr, NULL), MBQ_EAUTH);
    CHECK_CONTAINS(mbq_error_last(), "not an RSA private key");
    CHECK(!strstr(mbq_error_last(), "AAAAsecretsecret"));

    /* No path and no GOOGLE_APPLICATION_CREDENTIALS. */
    unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
    CHECK_INT(mbq_bq_auth_new(&auth, NULL, NULL), MBQ_EAUTH);
    CHECK_CONTAINS(mbq_error_last(), "GOOGLE_APPLICATION_CREDENTIALS");
    CHECK(auth == NULL);

    /* A group/world-readable key loads, with a warning naming the file. */
    mbq_buf_clear(&p);
    mbq_buf_printf(&p, "%s/open.json", tmpdir);
    write_key_json(p.ptr, "service_account", 0644);
    char logpath[300];
    snprintf(logpath, sizeof logpath, "%s/stderr.txt", tmpdir);
    fflush(stderr);
    int saved = dup(2);
    int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2);
    int rc = mbq_bq_auth_new(&auth, p.ptr, NULL);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fd);
    CHECK_INT(rc, 0);
    mbq_bq_auth_free(auth);
    mbq_buf log = MBQ_BUF_INIT;
    mbq_file_read_all(&log, logpath);
    CHECK_CONTAINS(log.ptr, "WARN");
    CHECK_CONTAINS(log.ptr, "open.json' is readable by everyone");
    mbq_buf_free(&log);
    mbq_buf_free(&p);
}

static void test_job_id_is_valid_and_deterministic(void)
{
    mbq_buf a = MBQ_BUF_INIT, b = MBQ_BUF_INIT;
    CHECK_INT(mbq_bq_job_id(&a, "mbq", "run42", "orders", "stage", "1", NULL), 0);
    CHECK_STR(a.ptr, "mbq_run42_orders_stage_1");
    mbq_buf_clear(&a);
    /* Invalid characters are replaced and a hash keeps inputs apart. */
    mbq_bq_job_id(&a, "mbq", "run 1", "sales.orders", NULL);
    mbq_bq_job_id(&b, "mbq", "run_1", "sales_orders", NULL);
    CHECK(strncmp(a.ptr, "mbq_run_1_sales_orders_", 23) == 0);
    CHECK_INT(a.len, 23 + 16);
    CHECK(strcmp(a.ptr, b.ptr) != 0);
    for (size_t i = 0; i < a.len; i++)
        CHECK(strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-", a.ptr[i]));
    mbq_buf_clear(&b);
    mbq_bq_job_id(&b, "mbq", "run 1", "sales.orders", NULL);
    CHECK_STR(a.ptr, b.ptr); /* deterministic */
    /* Too long: truncated to 1024 with the hash. */
    char *big = malloc(3000);
    memset(big, 'x', 2999);
    big[2999] = '\0';
    mbq_buf_clear(&a);
    CHECK_INT(mbq_bq_job_id(&a, "mbq", big, NULL), 0);
    CHECK_INT(a.len, 1024);
    free(big);
    CHECK_INT(mbq_bq_job_id(&a, "", NULL), MBQ_ECONFIG);
    mbq_buf_free(&a);
    mbq_buf_free(&b);
}

static void test_error_body_parsing(void)
{
    mbq_bq_error_info e;
    const char *body = "{\"error\":{\"code\":400,\"message\":\"Could not parse 'abc' as INT64\","
                       "\"errors\":[{\"message\":\"m2\",\"domain\":\"global\",\"reason\":"
                       "\"invalid\"}],\"status\":\"INVALID_ARGUMENT\"}}";
    CHECK_INT(mbq_bq_parse_error(&e, body, strlen(body)), 0);
    CHECK_INT(e.code, 400);
    CHECK_STR(e.reason, "invalid");
    CHECK_STR(e.message, "Could not parse 'abc' as INT64");
    mbq_bq_error_info_free(&e);
    const char *st = "{\"error\":{\"code\":503,\"status\":\"UNAVAILABLE\",\"errors\":[]}}";
    CHECK_INT(mbq_bq_parse_error(&e, st, strlen(st)), 0);
    CHECK_STR(e.reason, "UNAVAILABLE");
    CHECK(e.message == NULL);
    mbq_bq_error_info_free(&e);
    static const char *junk[] = {"", "<html>502 Bad Gateway</html>", "{\"error\":5}",
                                 "{\"error\":{\"errors\":[1,null,{\"reason\":7}],\"code\":\"x\"}}",
                                 "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]",
                                 "{\"error\":{\"message\":null}}", "null", "\"str\""};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        CHECK_INT(mbq_bq_parse_error(&e, junk[i], strlen(junk[i])), 0);
        CHECK(e.reason == NULL && e.message == NULL);
        mbq_bq_error_info_free(&e);
    }
    CHECK_INT(mbq_bq_parse_error(&e, NULL, 0), 0);
}

static void test_schema_json_round_trip(void)
{
    static const char *const types[] = {"STRING", "INT64", "NUMERIC", "BIGNUMERIC", "FLOAT64",
                                        "BOOL", "BYTES", "DATE", "DATETIME", "TIME",
                                        "TIMESTAMP", "JSON", "GEOGRAPHY"};
    mbq_bq_schema *s = NULL, *back = NULL;
    mbq_buf js = MBQ_BUF_INIT;
    mbq_bq_schema_new(&s);
    for (size_t i = 0; i < 13; i++) {
        char name[32];
        snprintf(name, sizeof name, "col_%s", types[i]);
        CHECK_INT(mbq_bq_schema_add(s, name, types[i], i % 2 ? MBQ_BQ_REQUIRED : MBQ_BQ_NULLABLE,
                                    i == 3 ? "big \"quoted\" é" : NULL),
                  0);
    }
    CHECK_INT(mbq_bq_schema_add(s, "x", "VARCHAR", MBQ_BQ_NULLABLE, NULL), MBQ_ECONFIG);
    CHECK_INT(mbq_bq_schema_add(s, "", "STRING", MBQ_BQ_NULLABLE, NULL), MBQ_ECONFIG);
    CHECK_INT(mbq_bq_schema_to_json(&js, s), 0);
    CHECK_INT(mbq_bq_schema_from_json(&back, js.ptr, js.len), 0);
    CHECK(back && back->n_fields == 13);
    for (size_t i = 0; back && i < 13; i++) {
        CHECK_STR(back->fields[i].name, s->fields[i].name);
        CHECK_STR(back->fields[i].type, types[i]);
        CHECK_INT(back->fields[i].mode, s->fields[i].mode);
    }
    if (back)
        CHECK_STR(back->fields[3].description, "big \"quoted\" é");
    mbq_bq_schema_free(back);
    back = NULL;

    /* tables.get answers legacy names; they come back standard. */
    const char *tg = "{\"kind\":\"bigquery#table\",\"etag\":\"e1\",\"type\":\"TABLE\","
                     "\"numRows\":\"12\",\"expirationTime\":\"1800000000000\","
                     "\"timePartitioning\":{\"type\":\"DAY\",\"field\":\"d\"},"
                     "\"clustering\":{\"fields\":[\"a\",\"b\"]},\"schema\":{\"fields\":["
                     "{\"name\":\"a\",\"type\":\"INTEGER\",\"mode\":\"REQUIRED\"},"
                     "{\"name\":\"b\",\"type\":\"FLOAT\"},{\"name\":\"c\",\"type\":\"BOOLEAN\"},"
                     "{\"name\":\"r\",\"type\":\"RECORD\",\"fields\":[]},"
                     "{\"name\":\"w\",\"type\":\"weird\"}]}}";
    mbq_bq_table_info *ti = NULL;
    CHECK_INT(mbq_bq_table_info_from_json(&ti, tg, strlen(tg)), 0);
    if (ti) {
        CHECK_STR(ti->schema->fields[0].type, "INT64");
        CHECK_INT(ti->schema->fields[0].mode, MBQ_BQ_REQUIRED);
        CHECK_STR(ti->schema->fields[1].type, "FLOAT64");
        CHECK_STR(ti->schema->fields[2].type, "BOOL");
        CHECK_STR(ti->schema->fields[3].type, "RECORD");
        CHECK_STR(ti->schema->fields[4].type, "WEIRD");
        CHECK_INT(ti->num_rows, 12);
        CHECK_INT(ti->expiration_ms, 1800000000000LL);
        CHECK_STR(ti->partition_field, "d");
        CHECK_INT(ti->n_clustering, 2);
        CHECK_STR(ti->etag, "e1");
        CHECK(mbq_bq_schema_find(ti->schema, "C") != NULL); /* case-insensitive */
    }
    mbq_bq_table_info_free(ti);
    CHECK_STR(mbq_bq_type_normalize("bigdecimal"), "BIGNUMERIC");
    CHECK(mbq_bq_type_normalize("TEXT") == NULL);

    static const char *junk[] = {"", "{", "[1,2]", "{\"fields\":5}", "{\"fields\":[{}]}",
                                 "{\"fields\":[{\"name\":3,\"type\":\"STRING\"}]}",
                                 "{\"schema\":[]}", "\"x\"", "{\"fields\":[null]}"};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        int rc = mbq_bq_schema_from_json(&back, junk[i], strlen(junk[i]));
        CHECK(rc == MBQ_EDATA || (rc == 0 && back));
        mbq_bq_schema_free(back);
        back = NULL;
        CHECK(mbq_bq_table_info_from_json(&ti, junk[i], strlen(junk[i])) <= 0);
        mbq_bq_table_info_free(ti);
        ti = NULL;
    }
    mbq_buf_free(&js);
    mbq_bq_schema_free(s);
}

static void test_job_resource_parsing(void)
{
    const char *j = "{\"jobReference\":{\"jobId\":\"j1\",\"location\":\"EU\"},"
                    "\"status\":{\"state\":\"DONE\",\"errorResult\":{\"reason\":\"invalid\","
                    "\"message\":\"bad\"}},\"statistics\":{\"load\":{\"outputRows\":\"7\"},"
                    "\"query\":{\"numDmlAffectedRows\":\"5\",\"totalBytesProcessed\":\"100\","
                    "\"statementType\":\"MERGE\",\"dmlStats\":{\"insertedRowCount\":\"2\","
                    "\"updatedRowCount\":\"3\"}}}}";
    mbq_bq_job *job = NULL;
    CHECK_INT(mbq_bq_job_from_json(&job, j, strlen(j)), 0);
    if (job) {
        CHECK_STR(job->job_id, "j1");
        CHECK_STR(job->location, "EU");
        CHECK_STR(job->state, "DONE");
        CHECK_STR(job->error_reason, "invalid");
        CHECK_STR(job->error_message, "bad");
        CHECK_INT(job->output_rows, 7);
        CHECK_INT(job->dml_affected_rows, 5);
        CHECK_INT(job->dml_inserted, 2);
        CHECK_INT(job->dml_updated, 3);
        CHECK_INT(job->dml_deleted, -1);
        CHECK_INT(job->total_bytes_processed, 100);
        CHECK_STR(job->statement_type, "MERGE");
    }
    mbq_bq_job_free(job);
    job = NULL;
    CHECK_INT(mbq_bq_job_from_json(&job, "{\"status\":{}}", 13), MBQ_EDATA);
    CHECK_INT(mbq_bq_job_from_json(&job, "garbage", 7), MBQ_EDATA);
    CHECK_INT(mbq_bq_job_from_json(&job, "{\"status\":{\"state\":\"DO", 23), MBQ_EDATA);
    CHECK_STR(mbq_error_last(), "JSON cut short after 23 bytes");
    CHECK(job == NULL);
}

static void test_retry_classification(void)
{
    CHECK(mbq_http_retryable_status(429) && mbq_http_retryable_status(500) &&
          mbq_http_retryable_status(502) && mbq_http_retryable_status(503) &&
          mbq_http_retryable_status(504));
    CHECK(!mbq_http_retryable_status(400) && !mbq_http_retryable_status(404) &&
          !mbq_http_retryable_status(409) && !mbq_http_retryable_status(501));
    CHECK(mbq_bq_reason_retryable("rateLimitExceeded") && mbq_bq_reason_retryable("backendError") &&
          mbq_bq_reason_retryable("internalError"));
    CHECK(!mbq_bq_reason_retryable("invalid") && !mbq_bq_reason_retryable("quotaExceeded") &&
          !mbq_bq_reason_retryable(NULL));
    for (int a = 0; a < 20; a++) {
        int64_t d = mbq_http_backoff_ms(a, 100, 5000);
        CHECK(d >= 0 && d <= 5000 && (a > 0 || d <= 100));
    }
}

/* One connection on a loopback port: read the request (headers and the
 * Content-Length body), write `answer`, close. */
struct one_shot {
    int lfd;
    int port;
    const char *answer;
};

static void *one_shot_serve(void *p)
{
    struct one_shot *o = p;
    int c = accept(o->lfd, NULL, NULL);
    if (c < 0)
        return NULL;
    char buf[4096];
    size_t have = 0;
    for (;;) {
        ssize_t n = read(c, buf + have, sizeof buf - 1 - have);
        if (n <= 0)
            break;
        have += (size_t)n;
        buf[have] = 0;
        char *end = strstr(buf, "\r\n\r\n");
        const char *cl = strstr(buf, "Content-Length: ");
        if (end && (!cl || have >= (size_t)(end + 4 - buf) + (size_t)atoi(cl + 16)))
            break;
    }
    ssize_t w = write(c, o->answer, strlen(o->answer));
    (void)w;
    close(c);
    return NULL;
}

static int one_shot_do(mbq_http_response *resp, const char *answer)
{
    struct one_shot o = {socket(AF_INET, SOCK_STREAM, 0), 0, answer};
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    CHECK(o.lfd >= 0 && bind(o.lfd, (struct sockaddr *)&a, sizeof a) == 0 &&
          listen(o.lfd, 1) == 0 && getsockname(o.lfd, (struct sockaddr *)&a, &alen) == 0);
    o.port = ntohs(a.sin_port);
    pthread_t th;
    pthread_create(&th, NULL, one_shot_serve, &o);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/bigquery/v2/projects/p/jobs?x=1", o.port);
    mbq_http *h = NULL;
    mbq_http_options ho = MBQ_HTTP_OPTIONS_INIT;
    CHECK_INT(mbq_http_new(&h, &ho), 0);
    const char *json = "{\"configuration\":{}}";
    mbq_http_body body = {json, strlen(json), NULL, 0, 0, NULL, 0, false, NULL, NULL};
    mbq_http_request req = {"POST", url, NULL, &body};
    int rc = mbq_http_do(h, resp, &req);
    pthread_join(th, NULL);
    close(o.lfd);
    mbq_http_free(h);
    return rc;
}

/* curl reports success, with an empty body, for a connection closed in the
 * middle of the header block: for a jobs.insert that reads as "empty JSON"
 * and failed the table although the job ran. It must be a cut connection
 * (retryable: the retry of a job insert learns the job exists). */
static void test_answer_cut_inside_headers_is_a_network_error(void)
{
    mbq_http_response resp = MBQ_HTTP_RESPONSE_INIT;
    CHECK_INT(one_shot_do(&resp, "HTTP/1.1 200 OK\r\nContent-Type: applicat"), MBQ_ENET);
    CHECK_CONTAINS(mbq_error_last(), "the connection closed inside the response headers");
    CHECK_CONTAINS(mbq_error_last(), "POST 'http://127.0.0.1:");
    CHECK(strstr(mbq_error_last(), "x=1") == NULL); /* no query string in messages */
    CHECK(mbq_http_retryable_curl(resp.curl_code));
    mbq_http_response_free(&resp);
    /* Only the status line: the same. */
    CHECK_INT(one_shot_do(&resp, "HTTP/1.1 200 OK\r\n"), MBQ_ENET);
    mbq_http_response_free(&resp);
    /* A complete answer without a body, and one ended by the close, stay
     * answers. */
    CHECK_INT(one_shot_do(&resp, "HTTP/1.1 204 No Content\r\n\r\n"), 0);
    CHECK_INT(resp.status, 204);
    mbq_http_response_free(&resp);
    CHECK_INT(one_shot_do(&resp, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{}"), 0);
    CHECK_INT(resp.status, 200);
    CHECK_STR(mbq_buf_cstr(&resp.body), "{}");
    mbq_http_response_free(&resp);
}

static void test_options_validated(void)
{
    mbq_bq *bq = NULL;
    mbq_bq_options o;
    mbq_bq_options_init(&o);
    /* No project and no credentials to take one from (the credentials'
     * project is tested in test_auth_standin). */
    o.auth = MBQ_BQ_AUTH_NONE;
    o.endpoint = "http://127.0.0.1:9/";
    CHECK_INT(mbq_bq_new(&bq, &o), MBQ_ECONFIG);
    CHECK_CONTAINS(mbq_error_last(), "no project id");
    o.auth = MBQ_BQ_AUTH_AUTO;
    o.project = "p";
    o.endpoint = "http://127.0.0.1:9/";
    o.upload_chunk_bytes = 1000;
    CHECK_INT(mbq_bq_new(&bq, &o), MBQ_ECONFIG);
    CHECK_CONTAINS(mbq_error_last(), "256 KiB");
    o.upload_chunk_bytes = 512 * 1024;
    CHECK_INT(mbq_bq_new(&bq, &o), 0);
    if (bq) {
        CHECK_STR(mbq_bq_endpoint(bq), "http://127.0.0.1:9");
        CHECK(!mbq_bq_uses_auth(bq)); /* an endpoint override sends no token */
    }
    mbq_bq_free(bq);
    bq = NULL;
    o.endpoint = NULL;
    setenv("BIGQUERY_EMULATOR_HOST", "127.0.0.1:9050", 1);
    CHECK_INT(mbq_bq_new(&bq, &o), 0);
    if (bq)
        CHECK_STR(mbq_bq_endpoint(bq), "http://127.0.0.1:9050");
    mbq_bq_free(bq);
    bq = NULL;
    unsetenv("BIGQUERY_EMULATOR_HOST");
    o.credentials = key_json;
    CHECK_INT(mbq_bq_new(&bq, &o), 0);
    if (bq) {
        CHECK_STR(mbq_bq_endpoint(bq), "https://bigquery.googleapis.com");
        CHECK(mbq_bq_uses_auth(bq));
    }
    mbq_bq_free(bq);
}

/* The client's options come from the config in one place; an endpoint
 * alone means an emulator (no token), an endpoint with a key file a private
 * route to BigQuery (token sent). */
static void test_options_from_config(void)
{
    mbq_bigquery_config c;
    memset(&c, 0, sizeof c);
    c.project_id = "proj";
    c.location = "US"; /* the config's default, not set by the user */
    c.request_timeout_ms = 1234;
    c.max_retries = 3;
    c.upload_chunk_bytes = 512 * 1024;
    c.tls_verify = true;
    mbq_bq_options o;
    mbq_bq_options_from_config(&o, &c);
    CHECK_STR(o.project, "proj");
    /* Not set: the dataset's location is read (mbq_bq_location_resolve),
     * never a silent US. */
    CHECK(o.location == NULL);
    c.location = "EU";
    c.location_set = true;
    mbq_bq_options_from_config(&o, &c);
    CHECK_STR(o.location, "EU");
    CHECK_INT(o.request_timeout_ms, 1234);
    CHECK_INT(o.max_retries, 3);
    CHECK_INT(o.upload_chunk_bytes, 512 * 1024);
    CHECK(o.tls_verify);
    CHECK_INT(o.auth, MBQ_BQ_AUTH_AUTO);
    c.endpoint = "http://127.0.0.1:9050";
    mbq_bq_options_from_config(&o, &c);
    CHECK_INT(o.auth, MBQ_BQ_AUTH_AUTO);
    c.credentials = "/etc/mbq/key.json";
    mbq_bq_options_from_config(&o, &c);
    CHECK_INT(o.auth, MBQ_BQ_AUTH_SERVICE_ACCOUNT);
}

/* A full refresh or a rebuild states the table's schema in its load: what
 * users put on the target (descriptions, policy tags, lengths, defaults,
 * modes) is carried into it; a rebuild that changes a column's type keeps
 * its description and its policy tags (never widen access) and drops the
 * attributes of the old type. */
static void test_schema_carry_keeps_target_field_definitions(void)
{
    const char *target_json =
        "{\"schema\":{\"fields\":["
        "{\"name\":\"id\",\"type\":\"INTEGER\",\"mode\":\"REQUIRED\",\"description\":\"key\"},"
        "{\"name\":\"email\",\"type\":\"STRING\",\"mode\":\"NULLABLE\",\"description\":\"pii\","
        "\"maxLength\":\"200\",\"collation\":\"und:ci\","
        "\"policyTags\":{\"names\":[\"projects/p/locations/eu/taxonomies/1/policyTags/2\"]}},"
        "{\"name\":\"code\",\"type\":\"STRING\",\"maxLength\":\"10\","
        "\"defaultValueExpression\":\"'x'\",\"description\":\"was text\","
        "\"policyTags\":{\"names\":[\"projects/p/locations/eu/taxonomies/1/policyTags/3\"]}},"
        "{\"name\":\"price\",\"type\":\"NUMERIC\",\"precision\":\"10\",\"scale\":\"2\"}]}}";
    mbq_bq_schema *target = NULL, *load = NULL;
    mbq_buf js = MBQ_BUF_INIT;
    CHECK_INT(mbq_bq_schema_from_json(&target, target_json, strlen(target_json)), 0);
    CHECK_INT(mbq_bq_schema_new(&load), 0);
    mbq_bq_schema_add(load, "id", "INT64", MBQ_BQ_NULLABLE, NULL);
    mbq_bq_schema_add(load, "email", "STRING", MBQ_BQ_NULLABLE, NULL);
    mbq_bq_schema_add(load, "code", "INT64", MBQ_BQ_NULLABLE, NULL); /* a rebuild's new type */
    mbq_bq_schema_add(load, "price", "NUMERIC", MBQ_BQ_NULLABLE, NULL);
    mbq_bq_schema_add(load, "added", "DATE", MBQ_BQ_NULLABLE, NULL); /* new in MySQL */
    CHECK_INT(mbq_bq_schema_carry(load, target), 0);
    CHECK_INT(mbq_bq_schema_to_json(&js, load), 0);
    json_object *a = json_tokener_parse(mbq_buf_cstr(&js));
    CHECK(a && json_object_array_length(a) == 5);
    const char *want[] = {
        "{\"name\":\"id\",\"type\":\"INT64\",\"mode\":\"REQUIRED\",\"description\":\"key\"}",
        "{\"name\":\"email\",\"type\":\"STRING\",\"mode\":\"NULLABLE\",\"description\":\"pii\","
        "\"maxLength\":\"200\",\"collation\":\"und:ci\","
        "\"policyTags\":{\"names\":[\"projects\\/p\\/locations\\/eu\\/taxonomies\\/1\\/policyTags\\/2\"]}}",
        "{\"name\":\"code\",\"type\":\"INT64\",\"mode\":\"NULLABLE\",\"description\":\"was text\","
        "\"policyTags\":{\"names\":[\"projects\\/p\\/locations\\/eu\\/taxonomies\\/1\\/policyTags\\/3\"]}}",
        "{\"name\":\"price\",\"type\":\"NUMERIC\",\"mode\":\"NULLABLE\",\"precision\":\"10\","
        "\"scale\":\"2\"}",
        "{\"name\":\"added\",\"type\":\"DATE\",\"mode\":\"NULLABLE\"}"};
    for (size_t i = 0; a && i < 5; i++) {
        json_object *w = json_tokener_parse(want[i]);
        json_object *g = json_object_array_get_idx(a, i);
        bool eq = w && g && json_object_equal(w, g);
        CHECK(eq);
        if (!eq)
            fprintf(stderr, "  field %zu: got %s\n  want %s\n", i,
                    json_object_to_json_string(g), want[i]);
        json_object_put(w);
    }
    json_object_put(a);
    mbq_buf_free(&js);
    mbq_bq_schema_free(load);
    mbq_bq_schema_free(target);
}

int main(void)
{
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(key_pem, sizeof key_pem, "%s/key.pem", tmpdir);
    snprintf(key_json, sizeof key_json, "%s/key.json", tmpdir);
    char cmd[600];
    snprintf(cmd, sizeof cmd,
             "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out '%s' 2>/dev/null",
             key_pem);
    if (system(cmd) != 0 || write_key_json(key_json, "service_account", 0600) != 0) {
        fprintf(stderr, "cannot generate a test key pair with openssl\n");
        return 1;
    }
    RUN(test_options_from_config);
    RUN(test_base64url_vectors);
    RUN(test_jwt_header_claims_and_signature);
    RUN(test_key_file_errors_name_the_path_not_the_content);
    RUN(test_job_id_is_valid_and_deterministic);
    RUN(test_error_body_parsing);
    RUN(test_schema_json_round_trip);
    RUN(test_job_resource_parsing);
    RUN(test_retry_classification);
    RUN(test_answer_cut_inside_headers_is_a_network_error);
    RUN(test_options_validated);
    RUN(test_schema_carry_keeps_target_field_definitions);
    test_remove_tree(tmpdir);
    return test_summary();
}
