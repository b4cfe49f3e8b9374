/* The email sender's SMTP dialogue against a scripted in-process server:
 * AUTH PLAIN with the configured credentials, the envelope (several
 * recipients), a 4xx reply retried on a new connection, a refused login not
 * retried, STARTTLS required unless tls: none, and a closed port failing
 * quickly after the brief retries. In every failure neither the error, the
 * report nor the log lines (stderr captured) hold the password, even
 * unregistered. The harness's real SMTP server is used by test_notify_smtp. */
#include "test.h"
#include "test_notify_fixtures.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mbq/buf.h"
#include "mbq/error.h"
#include "mbq/log.h"
#include "mbq/notify.h"
#include "mbq/util.h"

#define PASSWORD "s3cret-SMTP-pass!"

typedef struct fake_smtp {
    int listen_fd;
    unsigned port;
    int connections;      /* to serve, one after the other */
    bool offer_auth;
    int auth_reply;       /* 235 or 535 */
    int first_data_reply; /* reply to the first DATA end (e.g. 451), 0 = 250 */
    mbq_buf transcript;   /* what the client sent, each line as received */
    mbq_buf auth;         /* decoded AUTH PLAIN, NULs as '|' */
    int messages;         /* DATA accepted */
    pthread_t thread;
} fake_smtp;

static int read_line(int fd, mbq_buf *line)
{
    mbq_buf_clear(line);
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 5000) <= 0)
            return -1;
        char c;
        if (read(fd, &c, 1) != 1)
            return -1;
        if (c == '\n')
            return 0;
        if (c != '\r')
            mbq_buf_putc(line, c);
    }
}

static void say(int fd, const char *s)
{
    size_t n = strlen(s);
    if (write(fd, s, n) != (ssize_t)n)
        return;
}

static void b64_decode(mbq_buf *out, const char *in)
{
    const char *a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned acc = 0;
    int bits = 0;
    for (; *in && *in != '='; in++) {
        const char *p = strchr(a, *in);
        if (!p)
            continue;
        acc = (acc << 6) | (unsigned)(p - a);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            char c = (char)((acc >> bits) & 0xFF);
            mbq_buf_putc(out, c ? c : '|');
        }
    }
}

static void serve_one(fake_smtp *f, int fd, int conn_no)
{
    mbq_buf line = MBQ_BUF_INIT;
    say(fd, "220 fake.test ESMTP\r\n");
    while (read_line(fd, &line) == 0) {
        const char *l = mbq_buf_cstr(&line);
        mbq_buf_printf(&f->transcript, "%s\n", l);
        if (strncasecmp(l, "EHLO", 4) == 0) {
            say(fd, f->offer_auth ? "250-fake.test\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n"
                                  : "250-fake.test\r\n250 8BITMIME\r\n");
        } else if (strncasecmp(l, "AUTH PLAIN", 10) == 0) {
            mbq_buf resp = MBQ_BUF_INIT;
            if (strlen(l) > 11) {
                mbq_buf_puts(&resp, l + 11);
            } else {
                say(fd, "334 \r\n");
                if (read_line(fd, &resp) != 0)
                    break;
            }
            mbq_buf_clear(&f->auth);
            b64_decode(&f->auth, mbq_buf_cstr(&resp));
            mbq_buf_free(&resp);
            say(fd, f->auth_reply == 235 ? "235 2.7.0 ok\r\n" : "535 5.7.8 bad credentials\r\n");
        } else if (strncasecmp(l, "MAIL FROM:", 10) == 0 || strncasecmp(l, "RCPT TO:", 8) == 0) {
            say(fd, "250 ok\r\n");
        } else if (strcasecmp(l, "DATA") == 0) {
            say(fd, "354 go\r\n");
            while (read_line(fd, &line) == 0 && strcmp(mbq_buf_cstr(&line), ".") != 0)
                mbq_buf_printf(&f->transcript, "D:%s\n", mbq_buf_cstr(&line));
            if (conn_no == 0 && f->first_data_reply) {
                say(fd, "451 4.3.0 try again later\r\n");
            } else {
                f->messages++;
                say(fd, "250 queued\r\n");
            }
        } else if (strcasecmp(l, "QUIT") == 0) {
            say(fd, "221 bye\r\n");
            break;
        } else {
            say(fd, "502 not implemented\r\n");
        }
    }
    mbq_buf_free(&line);
}

static void *fake_main(void *arg)
{
    fake_smtp *f = arg;
    for (int i = 0; i < f->connections; i++) {
        struct pollfd p = {f->listen_fd, POLLIN, 0};
        if (poll(&p, 1, 10000) <= 0)
            break;
        int fd = accept(f->listen_fd, NULL, NULL);
        if (fd < 0)
            break;
        serve_one(f, fd, i);
        close(fd);
    }
    return NULL;
}

static int fake_start(fake_smtp *f)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    f->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (f->listen_fd < 0 || bind(f->listen_fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(f->listen_fd, 4) != 0 || getsockname(f->listen_fd, (struct sockaddr *)&a, &len) != 0)
        return -1;
    f->port = ntohs(a.sin_port);
    return pthread_create(&f->thread, NULL, fake_main, f);
}

/* Wait for the server to finish its connections (the transcript stays). */
static void fake_stop(fake_smtp *f)
{
    pthread_join(f->thread, NULL);
    close(f->listen_fd);
}

static void fake_free(fake_smtp *f)
{
    mbq_buf_free(&f->transcript);
    mbq_buf_free(&f->auth);
}

static mbq_email_config cfg_for(unsigned port)
{
    static char *to[] = {"ops@example.com", "Data Team <data@example.com>", "third@example.org"};
    mbq_email_config c;
    memset(&c, 0, sizeof c);
    c.enabled = true;
    c.host = "127.0.0.1";
    c.port = port;
    c.tls = "none";
    c.username = "alerts@example.com";
    c.password = PASSWORD;
    c.from = "mbq <mbq@example.com>";
    c.to = to;
    c.n_to = 3;
    c.tls_verify = true;
    return c;
}

static const mbq_notify_options fast = {3, 10, 5000, 2000};

static void test_auth_plain_and_envelope(void)
{
    fake_smtp f = {.connections = 1, .offer_auth = true, .auth_reply = 235};
    CHECK_INT(fake_start(&f), 0);
    mbq_email_config c = cfg_for(f.port);
    int attempts = 0;
    CHECK_INT(mbq_notify_send_email(&c, &fix_failure, &fast, &attempts), 0);
    fake_stop(&f);
    CHECK_INT(attempts, 1);
    CHECK_INT(f.messages, 1);
    CHECK_STR(mbq_buf_cstr(&f.auth), "|alerts@example.com|" PASSWORD);
    const char *t = mbq_buf_cstr(&f.transcript);
    CHECK_CONTAINS(t, "MAIL FROM:<mbq@example.com>");
    CHECK_CONTAINS(t, "RCPT TO:<ops@example.com>\nRCPT TO:<data@example.com>\n"
                      "RCPT TO:<third@example.org>\n");
    CHECK_CONTAINS(t, "D:Subject: [mbq] FAILED: 2 of 3 tables failed (orders, customers)\n");
    CHECK_CONTAINS(t, "D:To: ops@example.com,\nD: Data Team <data@example.com>,\n");
    CHECK_CONTAINS(t, "D:  error:    bigquery job 'mbq_x' failed");
    /* The password crosses the wire only inside AUTH. */
    CHECK(strstr(t, "D:") && strstr(strstr(t, "D:"), PASSWORD) == NULL);
    fake_free(&f);
}

/* No credentials configured: no AUTH command at all. */
static void test_no_credentials_no_auth(void)
{
    fake_smtp f = {.connections = 1, .offer_auth = true, .auth_reply = 235};
    CHECK_INT(fake_start(&f), 0);
    mbq_email_config c = cfg_for(f.port);
    c.username = NULL;
    c.password = NULL;
    CHECK_INT(mbq_notify_send_email(&c, &fix_success, &fast, NULL), 0);
    fake_stop(&f);
    CHECK(strstr(mbq_buf_cstr(&f.transcript), "AUTH") == NULL);
    CHECK_INT(f.messages, 1);
    fake_free(&f);
}

/* "451 try again later" on the first connection: retried, delivered. */
static void test_4xx_retried(void)
{
    fake_smtp f = {.connections = 2, .offer_auth = true, .auth_reply = 235,
                   .first_data_reply = 451};
    CHECK_INT(fake_start(&f), 0);
    mbq_email_config c = cfg_for(f.port);
    int attempts = 0;
    CHECK_INT(mbq_notify_send_email(&c, &fix_failure, &fast, &attempts), 0);
    fake_stop(&f);
    CHECK_INT(attempts, 2);
    CHECK_INT(f.messages, 1);
    fake_free(&f);
}

/* A refused login: one attempt, MBQ_EAUTH, no password anywhere. */
static void test_login_refused_not_retried(void)
{
    fake_smtp f = {.connections = 1, .offer_auth = true, .auth_reply = 535};
    CHECK_INT(fake_start(&f), 0);
    mbq_secret_clear();
    mbq_email_config c = cfg_for(f.port);
    mbq_notify_report rep;
    mbq_buf logs = MBQ_BUF_INIT;
    c.on = MBQ_ALERT_FAILURE;
    fix_capture_begin();
    int rc = mbq_notify_run(&rep, &c, NULL, &fix_failure, &fast);
    fix_capture_end(&logs);
    fake_stop(&f);
    CHECK_INT(rc, MBQ_EAUTH);
    CHECK(rep.email.attempted && !rep.email.sent);
    CHECK_INT(rep.email.error, MBQ_EAUTH);
    CHECK_INT(rep.email.attempts, 1);
    CHECK_CONTAINS(rep.email.message, "cannot send email alert via '127.0.0.1:");
    CHECK(strstr(rep.email.message, PASSWORD) == NULL);
    CHECK(strstr(mbq_error_last(), PASSWORD) == NULL);
    CHECK(strstr(mbq_buf_cstr(&logs), PASSWORD) == NULL);
    mbq_notify_report_free(&rep);
    mbq_buf_free(&logs);
    fake_free(&f);
}

/* tls: starttls (the default) against a server without STARTTLS: refuse to
 * send the password in clear, say why, do not retry. */
static void test_starttls_required(void)
{
    fake_smtp f = {.connections = 1, .offer_auth = true, .auth_reply = 235};
    CHECK_INT(fake_start(&f), 0);
    mbq_email_config c = cfg_for(f.port);
    c.tls = "starttls";
    int attempts = 0;
    CHECK_INT(mbq_notify_send_email(&c, &fix_failure, &fast, &attempts), MBQ_ENET);
    fake_stop(&f);
    CHECK_INT(attempts, 1);
    CHECK_CONTAINS(mbq_error_last(), "does not offer STARTTLS");
    CHECK_INT(f.messages, 0);
    fake_free(&f);
}

/* SMTP down: a closed port fails fast after the retries; a password in the
 * smtp_url (user:pass@host) shows in neither the error nor the log. */
static void test_closed_port_fails_fast_without_password(void)
{
    mbq_secret_clear();
    mbq_email_config c = cfg_for(9);
    c.smtp_url = "smtp://alerts%40example.com:" PASSWORD "@127.0.0.1:9";
    mbq_buf logs = MBQ_BUF_INIT;
    int attempts = 0;
    fix_capture_begin();
    int64_t t0 = mbq_monotonic_ms();
    int rc = mbq_notify_send_email(&c, &fix_failure, &fast, &attempts);
    int64_t took = mbq_monotonic_ms() - t0;
    fix_capture_end(&logs);
    CHECK_INT(rc, MBQ_ENET);
    CHECK_INT(attempts, 3);
    CHECK(took < 3000);
    CHECK_CONTAINS(mbq_error_last(), "cannot send email alert via '127.0.0.1:9': ");
    CHECK(strstr(mbq_error_last(), PASSWORD) == NULL);
    CHECK(strstr(mbq_buf_cstr(&logs), PASSWORD) == NULL);
    CHECK_CONTAINS(mbq_buf_cstr(&logs), "email alert: attempt 2 of 3 failed");
    mbq_buf_free(&logs);
}

/* Defaults: 3 attempts with 1 s then 2 s between them: still well under a
 * cron interval. */
static void test_default_retry_timing(void)
{
    mbq_email_config c = cfg_for(9);
    int attempts = 0;
    int64_t t0 = mbq_monotonic_ms();
    CHECK_INT(mbq_notify_send_email(&c, &fix_failure, NULL, &attempts), MBQ_ENET);
    int64_t took = mbq_monotonic_ms() - t0;
    CHECK_INT(attempts, 3);
    CHECK(took >= 3000 && took < 6000);
}

static void test_config_errors(void)
{
    mbq_email_config c = cfg_for(25);
    c.from = NULL;
    CHECK_INT(mbq_notify_send_email(&c, &fix_failure, &fast, NULL), MBQ_ECONFIG);
    CHECK_CONTAINS(mbq_error_last(), "no 'from' address");
    c = cfg_for(25);
    c.n_to = 0;
    CHECK_INT(mbq_notify_send_email(&c, &fix_failure, &fast, NULL), MBQ_ECONFIG);
    c = cfg_for(25);
    c.smtp_url = "http://example.com/";
    CHECK_INT(mbq_notify_send_email(&c, &fix_failure, &fast, NULL), MBQ_ECONFIG);
    CHECK_CONTAINS(mbq_error_last(), "scheme 'http' is not smtp or smtps");
}

int main(void)
{
    mbq_log_set_level(MBQ_LOG_DEBUG);
    RUN(test_auth_plain_and_envelope);
    RUN(test_no_credentials_no_auth);
    RUN(test_4xx_retried);
    RUN(test_login_refused_not_retried);
    RUN(test_starttls_required);
    RUN(test_closed_port_fails_fast_without_password);
    RUN(test_default_retry_timing);
    RUN(test_config_errors);
    return test_summary();
}
