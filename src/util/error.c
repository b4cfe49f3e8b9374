/* Per-thread last error (see mbq/error.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mbq/error.h"
#include "mbq/log.h"
#include "mbq/banned.h"

/* The message lives in a per-thread heap buffer so that long messages (a
 * BigQuery error body, a YAML path) are never cut. If even that allocation
 * fails, a static fallback says so. */
static _Thread_local char *last_msg;
static _Thread_local int last_code;

int mbq_error_setv(int code, const char *fmt, va_list ap)
{
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    char *m = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (m) {
        vsnprintf(m, (size_t)n + 1, fmt, ap);
        mbq_secret_mask(m);
    }
    free(last_msg);
    last_msg = m;
    last_code = code;
    return code;
}

int mbq_error_set(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mbq_error_setv(code, fmt, ap);
    va_end(ap);
    return code;
}

int mbq_error_wrap(int code, const char *fmt, ...)
{
    char *old = last_msg;
    last_msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    size_t oldlen = old ? strlen(old) : 0;
    char *m = n >= 0 ? malloc((size_t)n + oldlen + 1) : NULL;
    if (m) {
        va_start(ap, fmt);
        vsnprintf(m, (size_t)n + 1, fmt, ap);
        va_end(ap);
        if (old)
            memcpy(m + n, old, oldlen + 1);
        mbq_secret_mask(m);
        free(old);
    } else {
        m = old;
    }
    last_msg = m;
    last_code = code;
    return code;
}

const char *mbq_error_last(void)
{
    if (!last_msg)
        return last_code ? "out of memory while recording an error" : "";
    return last_msg;
}

int mbq_error_code(void)
{
    return last_code;
}

void mbq_error_clear(void)
{
    free(last_msg);
    last_msg = NULL;
    last_code = 0;
}

const char *mbq_error_name(int code)
{
    switch (code) {
    case MBQ_OK: return "ok";
    case MBQ_ENOMEM: return "nomem";
    case MBQ_EIO: return "io";
    case MBQ_ECONFIG: return "config";
    case MBQ_ENOTFOUND: return "notfound";
    case MBQ_EEXISTS: return "exists";
    case MBQ_EMYSQL: return "mysql";
    case MBQ_EBQ: return "bigquery";
    case MBQ_ENET: return "network";
    case MBQ_ETIMEOUT: return "timeout";
    case MBQ_EAUTH: return "auth";
    case MBQ_ESCHEMA: return "schema";
    case MBQ_ELOCKED: return "locked";
    case MBQ_EJOURNAL: return "journal";
    case MBQ_EDATA: return "data";
    case MBQ_EINTERNAL: return "internal";
    default: return "error";
    }
}
