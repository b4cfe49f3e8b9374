/* Error codes and the per-thread "last error" message.
 *
 * Every mbq function that can fail returns an int: 0 on success, one of the
 * negative MBQ_E* codes below on failure. The function that detects the
 * failure records a message with mbq_error_set(); callers read it with
 * mbq_error_last() (the model is libgit2's git_error_last and SQLite's
 * sqlite3_errmsg). Messages follow git's style: lowercase, no trailing
 * period, the subject quoted ("cannot open 'x.yml': no such file").
 *
 * Secrets never go into a message: the code that knows a secret passes only
 * the names of things (host, file, table, column) to mbq_error_set. As a
 * second line of defence, mbq_error_set() masks every string registered with
 * mbq_secret_register() (see log.h). */
#ifndef MBQ_ERROR_H
#define MBQ_ERROR_H

#include <stdarg.h>

enum mbq_err {
    MBQ_OK = 0,
    MBQ_ERR = -1,        /* generic failure */
    MBQ_ENOMEM = -2,     /* allocation failed */
    MBQ_EIO = -3,        /* local file or disk error */
    MBQ_ECONFIG = -4,    /* invalid configuration or arguments */
    MBQ_ENOTFOUND = -5,  /* a thing asked for does not exist */
    MBQ_EEXISTS = -6,    /* a thing to create exists already */
    MBQ_EMYSQL = -7,     /* MySQL/MariaDB error */
    MBQ_EBQ = -8,        /* BigQuery answered with an error */
    MBQ_ENET = -9,       /* connection refused, reset, DNS, TLS */
    MBQ_ETIMEOUT = -10,  /* a deadline passed */
    MBQ_EAUTH = -11,     /* credentials missing, malformed or refused */
    MBQ_ESCHEMA = -12,   /* schema change that cannot be applied */
    MBQ_ELOCKED = -13,   /* another process holds the lock */
    MBQ_EJOURNAL = -14,  /* the journal is corrupt, newer or unusable */
    MBQ_EDATA = -15,     /* a row or value cannot be represented */
    MBQ_EINTERNAL = -16, /* an invariant broke: a bug in mbq */
};

/* Record the message for the calling thread and return `code`, so that a
 * failing function can say `return mbq_error_set(MBQ_EIO, "...")`. */
int mbq_error_set(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int mbq_error_setv(int code, const char *fmt, va_list ap);

/* Prefix the current message with more context ("table 'x': " + old). Returns
 * `code`. */
int mbq_error_wrap(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The calling thread's last message, or "" when none. Owned by mbq; valid
 * until the next mbq_error_* call on this thread. */
const char *mbq_error_last(void);

/* The code recorded with the last message (0 when none). */
int mbq_error_code(void);

/* Forget the last message. */
void mbq_error_clear(void);

/* A short stable name for an error code ("io", "mysql", "bigquery", ...). */
const char *mbq_error_name(int code);

#endif
