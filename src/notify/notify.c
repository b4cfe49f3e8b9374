/* Alert senders: email through libcurl's SMTP and the Telegram Bot API (see
 * mbq/notify.h). Formatting and policy live in notify_format.c.
 *
 * Secrets: the Telegram URL holds the bot token and the SMTP session the
 * password, so no message built here ever includes a URL, curl's verbose
 * output is never turned on, and every message is masked for the channel's
 * own secret before it reaches mbq_error_set (which masks the registered
 * ones): a secret the config forgot to register still does not leak. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "mbq/buf.h"
#include "mbq/error.h"
#include "mbq/log.h"
#include "mbq/notify.h"
#include "mbq/util.h"
#include "mbq/banned.h"

/* Telegram answers with a small JSON object; anything bigger is not it. */
#define TELEGRAM_RESPONSE_MAX_BYTES (64 * 1024)
/* A 429's retry_after is honoured up to this; beyond it we give up, since
 * the sync run must not hang on an alert. */
#define TELEGRAM_RETRY_AFTER_MAX_MS 30000

/* Replace every occurrence of `secret` in b by "***". */
static void mask_secret(mbq_buf *b, const char *secret)
{
    if (!b->ptr)
        return;
    if (secret && strlen(secret) >= 4) {
        size_t n = strlen(secret);
        char *hit;
        while ((hit = strstr(b->ptr, secret)) != NULL) {
            memcpy(hit, "***", 3);
            memmove(hit + 3, hit + n, strlen(hit + n) + 1);
        }
    }
    mbq_secret_mask(b->ptr);
    b->len = strlen(b->ptr);
}

/* Set the error from a message buffer, masking `secret` first. */
static int set_masked_error(int code, mbq_buf *msg, const char *secret)
{
    mask_secret(msg, secret);
    return mbq_error_set(code, "%s", mbq_buf_cstr(msg));
}

/* One attempt's outcome: error code (0 ok) and whether trying again can help. */
typedef struct attempt {
    int code;
    bool retry;
    int64_t wait_ms; /* server-requested wait (429 retry_after), 0 = backoff */
} attempt;

typedef attempt (*attempt_fn)(void *ctx);

/* Run `fn` up to opts->attempts times with doubling backoff. The last
 * attempt's error stays set. */
static int with_retries(const char *channel, attempt_fn fn, void *ctx,
                        const mbq_notify_options *opts, int *attempts_out)
{
    int max = opts->attempts > 0 ? opts->attempts : 1;
    int64_t backoff = opts->backoff_ms > 0 ? opts->backoff_ms : 0;
    attempt a = {MBQ_ERR, false, 0};
    int n = 0;
    while (n < max) {
        n++;
        a = fn(ctx);
        if (a.code == 0 || !a.retry || n == max)
            break;
        int64_t wait = a.wait_ms > backoff ? a.wait_ms : backoff;
        mbq_log_warn("%s alert: attempt %d of %d failed: %s; retrying in %lld ms", channel, n, max,
                     mbq_error_last(), (long long)wait);
        mbq_sleep_ms(wait);
        backoff *= 2;
    }
    if (attempts_out)
        *attempts_out = n;
    return a.code;
}

/* curl's text for a failure, from its error buffer or its code. Neither
 * holds the URL for the failures SMTP/HTTP transfers give (curl names hosts,
 * not URLs), and mask_secret runs over it regardless. */
static const char *curl_text(CURLcode cc, const char *errbuf)
{
    return errbuf[0] ? errbuf : curl_easy_strerror(cc);
}

/* Is this curl failure worth another try? Network trouble and timeouts are;
 * refused logins, bad URLs and missing TLS support are not. */
static bool curl_retryable(CURLcode cc)
{
    switch (cc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PARTIAL_FILE:
        return true;
    default:
        return false;
    }
}

static int curl_code_to_mbq(CURLcode cc)
{
    switch (cc) {
    case CURLE_OPERATION_TIMEDOUT:
        return MBQ_ETIMEOUT;
    case CURLE_LOGIN_DENIED:
        return MBQ_EAUTH;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return MBQ_ECONFIG;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_USE_SSL_FAILED:
        return MBQ_ENET;
    default:
        return MBQ_ERR;
    }
}

/* curl_easy_setopt in a chain: the first failure sticks in `cc`. Needs `h`
 * and `cc` in scope. */
#define SETOPT(opt, val)                                                                           \
    do {                                                                                           \
        if (cc == CURLE_OK)                                                                        \
            cc = curl_easy_setopt(h, opt, val);                                                    \
    } while (0)

/* What every alert request sets: error text, URL, the only protocols it
 * may speak (no redirect to file:// or the like), no signals, timeouts. */
static CURLcode common_opts(CURL *h, char *errbuf, const char *url, const char *protocols,
                            const mbq_notify_options *opts)
{
    CURLcode cc = CURLE_OK;
    SETOPT(CURLOPT_ERRORBUFFER, errbuf);
    SETOPT(CURLOPT_URL, url);
    SETOPT(CURLOPT_PROTOCOLS_STR, protocols);
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_TIMEOUT_MS, (long)opts->timeout_ms);
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS, (long)opts->connect_timeout_ms);
    return cc;
}

/* ---- email ----------------------------------------------------------- */

typedef struct email_ctx {
    const mbq_email_config *cfg;
    const char *url;
    const char *server;     /* "host:port" for messages */
    long use_ssl;
    const mbq_buf *message;
    const char *mail_from;  /* "<a@b>" */
    struct curl_slist *rcpt;
    const mbq_notify_options *opts;
} email_ctx;

typedef struct reader {
    const char *data;
    size_t len;
    size_t pos;
} reader;

static size_t read_cb(char *dst, size_t size, size_t nmemb, void *userdata)
{
    reader *r = userdata;
    size_t want = size * nmemb, left = r->len - r->pos;
    size_t n = want < left ? want : left;
    memcpy(dst, r->data + r->pos, n);
    r->pos += n;
    return n;
}

static attempt email_attempt(void *arg)
{
    email_ctx *c = arg;
    attempt a = {MBQ_ERR, false, 0};
    char errbuf[CURL_ERROR_SIZE];
    reader r = {c->message->ptr ? c->message->ptr : "", c->message->len, 0};
    mbq_buf msg = MBQ_BUF_INIT;
    CURL *h = curl_easy_init();
    errbuf[0] = '\0';
    if (!h) {
        a.code = mbq_error_set(MBQ_ENOMEM, "cannot send email alert: curl_easy_init failed");
        goto done;
    }
    CURLcode cc = common_opts(h, errbuf, c->url, "smtp,smtps", c->opts);
    SETOPT(CURLOPT_MAIL_FROM, c->mail_from);
    SETOPT(CURLOPT_MAIL_RCPT, c->rcpt);
    SETOPT(CURLOPT_UPLOAD, 1L);
    SETOPT(CURLOPT_READFUNCTION, read_cb);
    SETOPT(CURLOPT_READDATA, &r);
    SETOPT(CURLOPT_INFILESIZE_LARGE, (curl_off_t)c->message->len);
    SETOPT(CURLOPT_USE_SSL, c->use_ssl);
    SETOPT(CURLOPT_SSL_VERIFYPEER, c->cfg->tls_verify ? 1L : 0L);
    SETOPT(CURLOPT_SSL_VERIFYHOST, c->cfg->tls_verify ? 2L : 0L);
    if (c->cfg->username && c->cfg->username[0]) {
        SETOPT(CURLOPT_USERNAME, c->cfg->username);
        SETOPT(CURLOPT_PASSWORD, c->cfg->password ? c->cfg->password : "");
    }
    if (cc != CURLE_OK) {
        if (mbq_buf_printf(&msg, "cannot send email alert via '%s': %s", c->server,
                           curl_text(cc, errbuf)) == 0)
            a.code = set_masked_error(MBQ_EINTERNAL, &msg, c->cfg->password);
        goto done;
    }
    cc = curl_easy_perform(h);
    if (cc == CURLE_OK) {
        a.code = 0;
        goto done;
    }
    long smtp_code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &smtp_code);
    a.code = curl_code_to_mbq(cc);
    a.retry = curl_retryable(cc);
    /* A 4xx reply is the server's "try again later" (greylisting, busy). */
    if (smtp_code >= 400 && smtp_code < 500)
        a.retry = true;
    if (cc == CURLE_USE_SSL_FAILED)
        mbq_buf_printf(&msg, "cannot send email alert via '%s': the server does not offer "
                             "STARTTLS (set tls: none to send in clear, or use tls: implicit)",
                       c->server);
    else if (smtp_code)
        mbq_buf_printf(&msg, "cannot send email alert via '%s': the server answered %ld (%s)",
                       c->server, smtp_code, curl_text(cc, errbuf));
    else
        mbq_buf_printf(&msg, "cannot send email alert via '%s': %s", c->server,
                       curl_text(cc, errbuf));
    a.code = set_masked_error(a.code, &msg, c->cfg->password);
done:
    mbq_buf_free(&msg);
    curl_easy_cleanup(h);
    return a;
}

/* "<a@b>" from "Name <a@b>" or "a@b"; NULL with the error set if empty or
 * holding a line break (which would end the SMTP command). */
static char *envelope_address(const char *s)
{
    const char *lt = strchr(s, '<');
    const char *gt = lt ? strchr(lt, '>') : NULL;
    const char *p = lt && gt ? lt + 1 : s;
    size_t n = lt && gt ? (size_t)(gt - lt - 1) : strlen(s);
    while (n && (*p == ' ' || *p == '\t'))
        p++, n--;
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    if (n == 0 || memchr(p, '\r', n) || memchr(p, '\n', n)) {
        mbq_error_set(MBQ_ECONFIG, "invalid email address '%s'", s);
        return NULL;
    }
    mbq_buf b = MBQ_BUF_INIT;
    if (mbq_buf_putc(&b, '<') || mbq_buf_append(&b, p, n) || mbq_buf_putc(&b, '>')) {
        mbq_buf_free(&b);
        return NULL;
    }
    return mbq_buf_detach(&b);
}

/* The URL to use and the "host:port" to name in messages. An explicit
 * smtp_url wins; else smtps:// for implicit TLS, smtp:// otherwise. */
static int email_url(mbq_buf *url, mbq_buf *server, long *use_ssl, const mbq_email_config *cfg)
{
    int rc = 0;
    char *host = NULL, *port = NULL, *scheme = NULL;
    CURLU *u = NULL;
    bool implicit = cfg->tls && strcmp(cfg->tls, "implicit") == 0;
    bool none = cfg->tls && strcmp(cfg->tls, "none") == 0;

    if (cfg->smtp_url && cfg->smtp_url[0]) {
        rc = mbq_buf_puts(url, cfg->smtp_url);
    } else if (cfg->host && cfg->host[0]) {
        unsigned port_n = cfg->port ? cfg->port : (implicit ? 465u : 587u);
        bool v6 = strchr(cfg->host, ':') != NULL && cfg->host[0] != '[';
        rc = mbq_buf_printf(url, "%s://%s%s%s:%u", implicit ? "smtps" : "smtp", v6 ? "[" : "",
                            cfg->host, v6 ? "]" : "", port_n);
    } else {
        rc = mbq_error_set(MBQ_ECONFIG, "cannot send email alert: no smtp server configured");
    }
    if (rc)
        goto done;

    /* Name the server by host and port only: a URL may carry user:password. */
    u = curl_url();
    if (!u) {
        rc = mbq_error_set(MBQ_ENOMEM, "cannot parse the smtp url");
        goto done;
    }
    if (curl_url_set(u, CURLUPART_URL, url->ptr, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        rc = mbq_error_set(MBQ_ECONFIG, "cannot send email alert: invalid smtp url");
        goto done;
    }
    if (strcmp(scheme, "smtp") != 0 && strcmp(scheme, "smtps") != 0) {
        rc = mbq_error_set(MBQ_ECONFIG,
                           "cannot send email alert: smtp url scheme '%s' is not smtp or smtps",
                           scheme);
        goto done;
    }
    if ((rc = mbq_buf_printf(server, "%s:%s", host, port)) != 0)
        goto done;
    /* smtps:// is TLS from the first byte; on smtp:// STARTTLS is required
     * (CURLUSESSL_ALL fails rather than falling back to clear text) unless
     * the user said tls: none. */
    *use_ssl = none ? CURLUSESSL_NONE : CURLUSESSL_ALL;
done:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return rc;
}

int mbq_notify_send_email(const mbq_email_config *cfg, const mbq_run_summary *s,
                          const mbq_notify_options *opts, int *attempts_out)
{
    mbq_notify_options defaults = MBQ_NOTIFY_OPTIONS_INIT;
    mbq_buf url = MBQ_BUF_INIT, server = MBQ_BUF_INIT, message = MBQ_BUF_INIT;
    email_ctx c = {cfg, NULL, NULL, CURLUSESSL_ALL, &message, NULL, NULL, opts ? opts : &defaults};
    char *from = NULL;
    int rc;

    if (attempts_out)
        *attempts_out = 0;
    if (!cfg->from || !cfg->from[0]) {
        rc = mbq_error_set(MBQ_ECONFIG, "cannot send email alert: no 'from' address configured");
        goto done;
    }
    if (cfg->n_to == 0) {
        rc = mbq_error_set(MBQ_ECONFIG, "cannot send email alert: no recipients ('to') configured");
        goto done;
    }
    if ((rc = email_url(&url, &server, &c.use_ssl, cfg)) != 0)
        goto done;
    c.url = url.ptr;
    c.server = server.ptr;
    if (!(from = envelope_address(cfg->from))) {
        rc = mbq_error_code();
        goto done;
    }
    c.mail_from = from;
    for (size_t i = 0; i < cfg->n_to; i++) {
        char *to = envelope_address(cfg->to[i]);
        if (!to) {
            rc = mbq_error_code();
            goto done;
        }
        struct curl_slist *next = curl_slist_append(c.rcpt, to);
        free(to);
        if (!next) {
            rc = mbq_error_set(MBQ_ENOMEM, "out of memory building the recipient list");
            goto done;
        }
        c.rcpt = next;
    }
    if (!cfg->tls_verify)
        mbq_log_warn("email alert: tls certificate verification is off for '%s'", c.server);
    if (c.use_ssl == CURLUSESSL_NONE && strncmp(c.url, "smtps:", 6) != 0 && cfg->username &&
        cfg->username[0])
        mbq_log_warn("email alert: sending the smtp password to '%s' without tls (tls: none)",
                     c.server);
    if ((rc = mbq_notify_format_email(&message, cfg, s, mbq_now_ms())) != 0)
        goto done;
    rc = with_retries("email", email_attempt, &c, c.opts, attempts_out);
    if (rc == 0)
        mbq_log_info("email alert sent via '%s' to %zu %s", c.server, cfg->n_to,
                     cfg->n_to == 1 ? "recipient" : "recipients");
done:
    curl_slist_free_all(c.rcpt);
    free(from);
    mbq_buf_free(&url);
    mbq_buf_free(&server);
    mbq_buf_free(&message);
    return rc;
}

/* ---- telegram -------------------------------------------------------- */

typedef struct telegram_ctx {
    const mbq_telegram_config *cfg;
    const char *url;  /* holds the token: never printed */
    const mbq_buf *payload;
    const mbq_notify_options *opts;
} telegram_ctx;

static size_t write_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
    mbq_buf *b = userdata;
    size_t n = size * nmemb;
    if (b->len + n > TELEGRAM_RESPONSE_MAX_BYTES)
        return 0; /* aborts the transfer: not a Bot API answer */
    if (mbq_buf_append(b, data, n))
        return 0;
    return n;
}

static attempt telegram_attempt(void *arg)
{
    telegram_ctx *c = arg;
    attempt a = {MBQ_ERR, false, 0};
    char errbuf[CURL_ERROR_SIZE];
    mbq_buf resp = MBQ_BUF_INIT, msg = MBQ_BUF_INIT;
    struct curl_slist *headers = NULL;
    json_object *root = NULL;
    const char *token = c->cfg->bot_token;
    CURL *h = curl_easy_init();
    errbuf[0] = '\0';
    if (!h) {
        a.code = mbq_error_set(MBQ_ENOMEM, "cannot send telegram alert: curl_easy_init failed");
        goto done;
    }
    struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
    if (!hd) {
        a.code = mbq_error_set(MBQ_ENOMEM, "out of memory building http headers");
        goto done;
    }
    headers = hd;
    CURLcode cc = common_opts(h, errbuf, c->url, "http,https", c->opts);
    SETOPT(CURLOPT_HTTPHEADER, headers);
    SETOPT(CURLOPT_POSTFIELDS, c->payload->ptr);
    SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->payload->len);
    SETOPT(CURLOPT_WRITEFUNCTION, write_cb);
    SETOPT(CURLOPT_WRITEDATA, &resp);
    SETOPT(CURLOPT_USERAGENT, "mbq/" MBQ_VERSION);
    if (cc == CURLE_OK)
        cc = curl_easy_perform(h);
    if (cc != CURLE_OK) {
        a.code = curl_code_to_mbq(cc);
        a.retry = curl_retryable(cc);
        if (mbq_buf_printf(&msg, "cannot send telegram alert to chat '%s': %s",
                           c->cfg->chat_id, curl_text(cc, errbuf)) == 0)
            a.code = set_masked_error(a.code, &msg, token);
        goto done;
    }
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);

    /* The Bot API answers {"ok":true,...} or {"ok":false,"error_code":N,
     * "description":"...","parameters":{"retry_after":S}}. */
    root = resp.len ? json_tokener_parse(resp.ptr) : NULL;
    json_object *v = NULL;
    bool ok = root && json_object_object_get_ex(root, "ok", &v) && json_object_get_boolean(v);
    if (status == 200 && ok) {
        a.code = 0;
        goto done;
    }
    const char *desc = NULL;
    if (root && json_object_object_get_ex(root, "description", &v))
        desc = json_object_get_string(v);
    json_object *params = NULL;
    if (root && json_object_object_get_ex(root, "parameters", &params) &&
        json_object_object_get_ex(params, "retry_after", &v)) {
        int64_t ms = json_object_get_int64(v) * 1000;
        if (ms > 0 && ms <= TELEGRAM_RETRY_AFTER_MAX_MS)
            a.wait_ms = ms;
    }
    if (status >= 500 || status == 429) {
        a.code = MBQ_ENET;
        a.retry = status != 429 || a.wait_ms > 0 || !root;
    } else if (status == 401 || status == 403 || status == 404) {
        /* 404 is what the Bot API answers for an unknown token. */
        a.code = MBQ_EAUTH;
    } else {
        a.code = MBQ_ERR;
    }
    if (status == 200)
        mbq_buf_printf(&msg, "cannot send telegram alert to chat '%s': the api did not answer "
                             "ok:true", c->cfg->chat_id);
    else
        mbq_buf_printf(&msg, "cannot send telegram alert to chat '%s': http %ld%s%s",
                       c->cfg->chat_id, status, desc ? ": " : "", desc ? desc : "");
    a.code = set_masked_error(a.code, &msg, token);
done:
    json_object_put(root);
    curl_slist_free_all(headers);
    mbq_buf_free(&resp);
    mbq_buf_free(&msg);
    curl_easy_cleanup(h);
    return a;
}

int mbq_notify_send_telegram(const mbq_telegram_config *cfg, const mbq_run_summary *s,
                             const mbq_notify_options *opts, int *attempts_out)
{
    mbq_notify_options defaults = MBQ_NOTIFY_OPTIONS_INIT;
    mbq_buf url = MBQ_BUF_INIT, text = MBQ_BUF_INIT, payload = MBQ_BUF_INIT;
    telegram_ctx c = {cfg, NULL, &payload, opts ? opts : &defaults};
    int rc;

    if (attempts_out)
        *attempts_out = 0;
    if (!cfg->bot_token || !cfg->bot_token[0]) {
        rc = mbq_error_set(MBQ_ECONFIG, "cannot send telegram alert: no bot_token configured");
        goto done;
    }
    if (!cfg->chat_id || !cfg->chat_id[0]) {
        rc = mbq_error_set(MBQ_ECONFIG, "cannot send telegram alert: no chat_id configured");
        goto done;
    }
    const char *base = cfg->api_url && cfg->api_url[0] ? cfg->api_url : "https://api.telegram.org";
    size_t base_len = strlen(base);
    while (base_len && base[base_len - 1] == '/')
        base_len--;
    rc = MBQ_ENOMEM;
    if (mbq_buf_append(&url, base, base_len) || mbq_buf_puts(&url, "/bot") ||
        mbq_buf_puts(&url, cfg->bot_token) || mbq_buf_puts(&url, "/sendMessage"))
        goto done;
    if ((rc = mbq_notify_format_telegram(&text, s)) != 0)
        goto done;
    rc = MBQ_ENOMEM;
    /* chat_id goes as a string: the API takes "@channel" names and numeric
     * ids alike that way, and -100... ids stay exact. */
    if (mbq_buf_puts(&payload, "{\"chat_id\":") ||
        mbq_buf_json_string(&payload, cfg->chat_id, strlen(cfg->chat_id)) ||
        mbq_buf_puts(&payload, ",\"text\":") ||
        mbq_buf_json_string(&payload, mbq_buf_cstr(&text), text.len) ||
        mbq_buf_puts(&payload, ",\"parse_mode\":\"HTML\",\"disable_web_page_preview\":true}"))
        goto done;
    c.url = url.ptr;
    rc = with_retries("telegram", telegram_attempt, &c, c.opts, attempts_out);
    if (rc == 0)
        mbq_log_info("telegram alert sent to chat '%s'", cfg->chat_id);
done:
    /* The URL holds the token: wipe it before the memory is reused. */
    if (url.ptr)
        memset(url.ptr, 0, url.len);
    mbq_buf_free(&url);
    mbq_buf_free(&text);
    mbq_buf_free(&payload);
    return rc;
}

/* ---- policy + send --------------------------------------------------- */

static int channel_run(mbq_notify_result *r, bool is_email, const void *cfg,
                       const mbq_run_summary *s, const mbq_notify_options *opts)
{
    mbq_buf subject = MBQ_BUF_INIT;
    int rc;
    r->attempted = true;
    if ((rc = mbq_notify_format_subject(&subject, s)) != 0)
        goto fail;
    r->subject = mbq_buf_detach(&subject);
    if (!r->subject) {
        rc = MBQ_ENOMEM;
        goto fail;
    }
    rc = is_email ? mbq_notify_send_email(cfg, s, opts, &r->attempts)
                  : mbq_notify_send_telegram(cfg, s, opts, &r->attempts);
    if (rc == 0) {
        r->sent = true;
        return 0;
    }
fail:
    mbq_buf_free(&subject);
    r->error = rc;
    /* mbq_error_last() was masked when it was set. */
    r->message = mbq_strdup(mbq_error_last());
    return rc;
}

int mbq_notify_run(mbq_notify_report *out, const mbq_email_config *email,
                   const mbq_telegram_config *telegram, const mbq_run_summary *s,
                   const mbq_notify_options *opts)
{
    int first = 0, rc;
    memset(out, 0, sizeof *out);
    /* Each channel on its own: a dead SMTP server must not keep the
     * Telegram alert from going out. */
    if (email && email->enabled && mbq_notify_should_send(email->on, s)) {
        rc = channel_run(&out->email, true, email, s, opts);
        if (rc && !first)
            first = rc;
    }
    if (telegram && telegram->enabled && mbq_notify_should_send(telegram->on, s)) {
        mbq_buf saved = MBQ_BUF_INIT;
        if (first)
            mbq_buf_puts(&saved, mbq_error_last());
        rc = channel_run(&out->telegram, false, telegram, s, opts);
        if (rc && !first)
            first = rc;
        else if (first)
            mbq_error_set(first, "%s", mbq_buf_cstr(&saved)); /* the first failure's message */
        mbq_buf_free(&saved);
    }
    return first;
}

void mbq_notify_report_free(mbq_notify_report *r)
{
    if (!r)
        return;
    free(r->email.subject);
    free(r->email.message);
    free(r->telegram.subject);
    free(r->telegram.message);
    memset(r, 0, sizeof *r);
}
