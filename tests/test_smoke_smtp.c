/* Smoke test: the SMTP sink that tools/services.sh starts is a real SMTP
 * server. Through libcurl's SMTP, as mbq's notify module does: send a mail
 * with AUTH over STARTTLS (trusting the sink's self-signed certificate in
 * MBQ_TEST_SMTP_CA) and one with AUTH over plain text, then find each in
 * MBQ_TEST_SMTP_MAILDIR by a unique subject and check subject, body and the
 * envelope the sink recorded. */
#include "test.h"

#include <curl/curl.h>
#include <dirent.h>

#include "mbq/buf.h"
#include "mbq/util.h"

typedef struct upload {
    const char *data;
    size_t len, off;
} upload;

static size_t on_read(char *dst, size_t size, size_t n, void *userdata)
{
    upload *u = userdata;
    size_t room = size * n, left = u->len - u->off;
    size_t k = left < room ? left : room;
    memcpy(dst, u->data + u->off, k);
    u->off += k;
    return k;
}

/* Send `msg` from/to the given addresses; returns the CURLcode. */
static CURLcode send_mail(const char *msg, int starttls, const char *from, const char *to)
{
    mbq_buf url = MBQ_BUF_INIT;
    struct curl_slist *rcpt = NULL;
    upload u = {msg, strlen(msg), 0};
    CURLcode rc = CURLE_FAILED_INIT;
    CURL *c = curl_easy_init();
    if (!c)
        goto done;
    /* "localhost" matches the certificate's name (it also has 127.0.0.1). */
    if (mbq_buf_printf(&url, "smtp://%s:%s", starttls ? "localhost" : test_require_env("MBQ_TEST_SMTP_HOST"),
                       test_require_env("MBQ_TEST_SMTP_PORT")) != 0)
        goto done;
    rcpt = curl_slist_append(rcpt, to);
    curl_easy_setopt(c, CURLOPT_URL, mbq_buf_cstr(&url));
    curl_easy_setopt(c, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(c, CURLOPT_USERNAME, "alerts@mbq.test");
    curl_easy_setopt(c, CURLOPT_PASSWORD, "any-password");
    curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(c, CURLOPT_READDATA, &u);
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    if (starttls) {
        curl_easy_setopt(c, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
        curl_easy_setopt(c, CURLOPT_CAINFO, test_require_env("MBQ_TEST_SMTP_CA"));
    }
    rc = curl_easy_perform(c);
    if (rc != CURLE_OK)
        fprintf(stderr, "  smtp send failed: %s\n", curl_easy_strerror(rc));
done:
    curl_slist_free_all(rcpt);
    if (c)
        curl_easy_cleanup(c);
    mbq_buf_free(&url);
    return rc;
}

/* Find the .eml in the maildir that contains `needle`; its content goes to
 * *eml and its sidecar (<n>.json) to *meta. Polls for up to 10 s. */
static int find_mail(mbq_buf *eml, mbq_buf *meta, const char *needle)
{
    const char *dir = test_require_env("MBQ_TEST_SMTP_MAILDIR");
    for (int tries = 0; tries < 100; tries++) {
        DIR *d = opendir(dir);
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            size_t n = strlen(e->d_name);
            if (n < 5 || e->d_name[0] == '.' || strcmp(e->d_name + n - 4, ".eml") != 0)
                continue;
            mbq_buf path = MBQ_BUF_INIT;
            mbq_buf_clear(eml);
            if (mbq_buf_printf(&path, "%s/%s", dir, e->d_name) == 0 &&
                mbq_file_read_all(eml, mbq_buf_cstr(&path)) == 0 && strstr(mbq_buf_cstr(eml), needle)) {
                path.len -= 4;
                path.ptr[path.len] = '\0';
                mbq_buf_clear(meta);
                int rc = mbq_buf_puts(&path, ".json") == 0 ? mbq_file_read_all(meta, mbq_buf_cstr(&path)) : -1;
                mbq_buf_free(&path);
                closedir(d);
                return rc;
            }
            mbq_buf_free(&path);
        }
        if (d)
            closedir(d);
        mbq_sleep_ms(100);
    }
    return -1;
}

static void send_and_check(int starttls)
{
    char uuid[37];
    mbq_buf msg = MBQ_BUF_INIT, subject = MBQ_BUF_INIT, eml = MBQ_BUF_INIT, meta = MBQ_BUF_INIT;
    mbq_uuid(uuid);
    CHECK_INT(mbq_buf_printf(&subject, "mbq smoke %s %s", starttls ? "starttls" : "plain", uuid), 0);
    CHECK_INT(mbq_buf_printf(&msg,
                             "From: mbq <alerts@mbq.test>\r\n"
                             "To: oncall@mbq.test\r\n"
                             "Subject: %s\r\n"
                             "Content-Type: text/plain; charset=utf-8\r\n"
                             "\r\n"
                             "table orders failed: smoke test body\r\n"
                             "second line\r\n",
                             mbq_buf_cstr(&subject)),
              0);
    CHECK_INT(send_mail(mbq_buf_cstr(&msg), starttls, "<alerts@mbq.test>", "<oncall@mbq.test>"), CURLE_OK);
    CHECK_INT(find_mail(&eml, &meta, mbq_buf_cstr(&subject)), 0);
    mbq_buf want = MBQ_BUF_INIT;
    CHECK_INT(mbq_buf_printf(&want, "\r\nSubject: %s\r\n", mbq_buf_cstr(&subject)), 0);
    CHECK_CONTAINS(mbq_buf_cstr(&eml), mbq_buf_cstr(&want));
    CHECK_CONTAINS(mbq_buf_cstr(&eml), "\r\n\r\ntable orders failed: smoke test body\r\nsecond line\r\n");
    CHECK_CONTAINS(mbq_buf_cstr(&eml), "X-Mbq-Mail-From: alerts@mbq.test\r\n");
    CHECK_CONTAINS(mbq_buf_cstr(&eml), "X-Mbq-Rcpt-To: oncall@mbq.test\r\n");
    CHECK_CONTAINS(mbq_buf_cstr(&meta), "\"rcpt_tos\": [\"oncall@mbq.test\"]");
    CHECK_CONTAINS(mbq_buf_cstr(&meta), "\"auth_user\": \"alerts@mbq.test\"");
    CHECK_CONTAINS(mbq_buf_cstr(&meta), starttls ? "\"tls\": true" : "\"tls\": false");
    mbq_buf_free(&want);
    mbq_buf_free(&msg);
    mbq_buf_free(&subject);
    mbq_buf_free(&eml);
    mbq_buf_free(&meta);
}

static void test_mail_with_auth_over_starttls_arrives(void) { send_and_check(1); }

static void test_mail_with_auth_over_plain_text_arrives(void) { send_and_check(0); }

int main(void)
{
    test_require_env("MBQ_TEST_SMTP_PORT");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    RUN(test_mail_with_auth_over_starttls_arrives);
    RUN(test_mail_with_auth_over_plain_text_arrives);
    curl_global_cleanup();
    return test_summary();
}
