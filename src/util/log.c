/* Levelled logs and secret masking (see mbq/log.h). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mbq/buf.h"
#include "mbq/log.h"
#include "mbq/util.h"
#include "mbq/error.h"
#include "mbq/banned.h"

static mbq_log_level log_level = MBQ_LOG_INFO;
static mbq_log_format log_format = MBQ_LOG_TEXT;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

/* Secrets are few (a password, a token, a key): a small array searched with
 * strstr is enough. Guarded by its own lock, since error messages are masked
 * from any thread. */
static pthread_mutex_t secret_lock = PTHREAD_MUTEX_INITIALIZER;
static char **secrets;
static size_t n_secrets;

static const char *level_names[] = {"error", "warn", "info", "debug"};

void mbq_log_set_level(mbq_log_level level)
{
    log_level = level;
}

mbq_log_level mbq_log_get_level(void)
{
    return log_level;
}

void mbq_log_set_format(mbq_log_format format)
{
    log_format = format;
}

int mbq_log_parse_level(mbq_log_level *out, const char *s)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (mbq_log_level)i;
            return 0;
        }
    }
    if (strcmp(s, "warning") == 0) {
        *out = MBQ_LOG_WARN;
        return 0;
    }
    return mbq_error_set(MBQ_ECONFIG, "unknown log level '%s' (use error, warn, info or debug)",
                         s);
}

int mbq_log_parse_format(mbq_log_format *out, const char *s)
{
    if (strcmp(s, "text") == 0)
        *out = MBQ_LOG_TEXT;
    else if (strcmp(s, "json") == 0)
        *out = MBQ_LOG_JSON;
    else
        return mbq_error_set(MBQ_ECONFIG, "unknown log format '%s' (use text or json)", s);
    return 0;
}

void mbq_logv(mbq_log_level level, const char *table, const char *state, const char *fmt,
              va_list ap)
{
    if (level > log_level)
        return;
    mbq_buf msg = MBQ_BUF_INIT, line = MBQ_BUF_INIT;
    if (mbq_buf_vprintf(&msg, fmt, ap) < 0)
        goto done;
    if (msg.ptr)
        mbq_secret_mask(msg.ptr);
    msg.len = strlen(mbq_buf_cstr(&msg));

    if (log_format == MBQ_LOG_JSON) {
        mbq_buf_puts(&line, "{\"ts\":\"");
        mbq_buf_time_iso(&line, mbq_now_ms());
        mbq_buf_printf(&line, "\",\"level\":\"%s\"", level_names[level]);
        if (table) {
            mbq_buf_puts(&line, ",\"table\":");
            mbq_buf_json_string(&line, table, strlen(table));
        }
        if (state) {
            mbq_buf_puts(&line, ",\"state\":");
            mbq_buf_json_string(&line, state, strlen(state));
        }
        mbq_buf_puts(&line, ",\"msg\":");
        mbq_buf_json_string(&line, mbq_buf_cstr(&msg), msg.len);
        mbq_buf_puts(&line, "}\n");
    } else {
        static const char *upper[] = {"ERROR", "WARN ", "INFO ", "DEBUG"};
        mbq_buf_time_iso(&line, mbq_now_ms());
        mbq_buf_printf(&line, " %s ", upper[level]);
        if (table || state)
            mbq_buf_printf(&line, "[%s%s%s] ", table ? table : "", table && state ? "/" : "",
                           state ? state : "");
        mbq_buf_append(&line, mbq_buf_cstr(&msg), msg.len);
        mbq_buf_putc(&line, '\n');
    }
    pthread_mutex_lock(&log_lock);
    fwrite(mbq_buf_cstr(&line), 1, line.len, stderr);
    fflush(stderr);
    pthread_mutex_unlock(&log_lock);
done:
    mbq_buf_free(&msg);
    mbq_buf_free(&line);
}

void mbq_log(mbq_log_level level, const char *table, const char *state, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mbq_logv(level, table, state, fmt, ap);
    va_end(ap);
}

void mbq_secret_register(const char *secret)
{
    if (!secret || strlen(secret) < 4)
        return;
    pthread_mutex_lock(&secret_lock);
    for (size_t i = 0; i < n_secrets; i++) {
        if (strcmp(secrets[i], secret) == 0)
            goto done;
    }
    /* Plain malloc: a failure here must not touch the error state. */
    char **grown = realloc(secrets, (n_secrets + 1) * sizeof *secrets);
    char *copy = strdup(secret);
    if (grown)
        secrets = grown;
    if (grown && copy)
        secrets[n_secrets++] = copy;
    else
        free(copy);
done:
    pthread_mutex_unlock(&secret_lock);
}

char *mbq_secret_mask(char *s)
{
    if (!s)
        return s;
    pthread_mutex_lock(&secret_lock);
    for (size_t i = 0; i < n_secrets; i++) {
        size_t n = strlen(secrets[i]);
        char *hit;
        while ((hit = strstr(s, secrets[i])) != NULL) {
            memcpy(hit, "***", 3);
            memmove(hit + 3, hit + n, strlen(hit + n) + 1);
        }
    }
    pthread_mutex_unlock(&secret_lock);
    return s;
}

void mbq_secret_clear(void)
{
    pthread_mutex_lock(&secret_lock);
    for (size_t i = 0; i < n_secrets; i++)
        free(secrets[i]);
    free(secrets);
    secrets = NULL;
    n_secrets = 0;
    pthread_mutex_unlock(&secret_lock);
}
