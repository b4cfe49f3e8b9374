/* Levelled logs to stderr, one line per event, as text or JSON.
 *
 * Text:  2026-11-26T01:02:03.456Z INFO  [orders/extract] extracted 120 rows
 * JSON:  {"ts":"...","level":"info","table":"orders","state":"extract","msg":"..."}
 *
 * Secrets: every string registered with mbq_secret_register() is replaced by
 * "***" in every log line and error message, whatever code produced it. */
#ifndef MBQ_LOG_H
#define MBQ_LOG_H

#include <stdarg.h>

typedef enum mbq_log_level {
    MBQ_LOG_ERROR = 0,
    MBQ_LOG_WARN = 1,
    MBQ_LOG_INFO = 2,
    MBQ_LOG_DEBUG = 3,
} mbq_log_level;

typedef enum mbq_log_format {
    MBQ_LOG_TEXT = 0,
    MBQ_LOG_JSON = 1,
} mbq_log_format;

void mbq_log_set_level(mbq_log_level level);
mbq_log_level mbq_log_get_level(void);
void mbq_log_set_format(mbq_log_format format);

/* Parse "error|warn|info|debug" / "text|json"; 0 or MBQ_ECONFIG. */
int mbq_log_parse_level(mbq_log_level *out, const char *s);
int mbq_log_parse_format(mbq_log_format *out, const char *s);

/* Log one line. `table` and `state` may be NULL. Thread-safe. */
void mbq_log(mbq_log_level level, const char *table, const char *state, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void mbq_logv(mbq_log_level level, const char *table, const char *state, const char *fmt,
              va_list ap);

#define mbq_log_error(...) mbq_log(MBQ_LOG_ERROR, NULL, NULL, __VA_ARGS__)
#define mbq_log_warn(...) mbq_log(MBQ_LOG_WARN, NULL, NULL, __VA_ARGS__)
#define mbq_log_info(...) mbq_log(MBQ_LOG_INFO, NULL, NULL, __VA_ARGS__)
#define mbq_log_debug(...) mbq_log(MBQ_LOG_DEBUG, NULL, NULL, __VA_ARGS__)

/* Register a secret (password, token, key) to be masked in all output.
 * Strings shorter than 4 bytes are ignored (they would mask ordinary text).
 * The string is copied. Thread-safe. */
void mbq_secret_register(const char *secret);

/* Replace every registered secret in `s` (in place, NUL-terminated) by "***".
 * Used by the log and error code; exposed for alerts and tests. Returns `s`. */
char *mbq_secret_mask(char *s);

/* Forget all registered secrets (tests). */
void mbq_secret_clear(void);

#endif
