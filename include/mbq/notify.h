/* Alerts: the run summary, its formatting (email, Telegram), the alert
 * policy, and the senders (SMTP through libcurl, Telegram Bot API).
 *
 * The engine fills an mbq_run_summary after a run and calls mbq_notify_run().
 * That decides per channel (mbq_notify_should_send), formats one message for
 * the whole run (every failed table in it), sends with brief retries, and
 * reports per channel what happened. It never decides the run's exit code: a
 * failing notifier is reported back for the engine to log and journal,
 * nothing more.
 *
 * Secrets: the SMTP password and the bot token never appear in a message, an
 * error or a log line. Every text built here goes through mbq_secret_mask(),
 * and the senders additionally mask their own password/token even when it was
 * not registered. The Telegram URL holds the token, so no curl error text or
 * message of ours ever includes a URL. */
#ifndef MBQ_NOTIFY_H
#define MBQ_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mbq/buf.h"
#include "mbq/config.h"

typedef enum mbq_table_result {
    MBQ_TABLE_OK = 0,      /* synced rows (or had none to sync but ran) */
    MBQ_TABLE_FAILED = 1,  /* a stage failed */
    MBQ_TABLE_SKIPPED = 2, /* no changes: no job was run; counts as success */
} mbq_table_result;

/* How long one state of the per-table state machine took. */
typedef struct mbq_stage_timing {
    const char *stage;   /* "schema-check", "extract", "stage", "merge", "commit-metadata" */
    int64_t duration_ms;
} mbq_stage_timing;

/* One table's outcome in a run. Every pointer is borrowed: the engine owns
 * the strings and arrays and keeps them alive while the summary is used. */
typedef struct mbq_table_summary {
    const char *name;                  /* table name as configured */
    mbq_table_result result;
    int64_t rows_synced;               /* rows merged/loaded in this run */
    int64_t duration_ms;               /* whole table run */
    const mbq_stage_timing *stages;    /* optional, n_stages entries */
    size_t n_stages;
    const char *failed_stage;          /* FAILED: the state that failed, e.g. "merge" */
    const char *error;                 /* FAILED: the error message */
    const char *const *schema_changes; /* e.g. "added column 'x' INT64" */
    size_t n_schema_changes;
    int prev_consecutive_failures;     /* failures in a row before this run (journal) */
    int64_t last_success_ms;           /* last successful sync including this run
                                          (epoch ms, journal); 0 = never. When 0
                                          and this run succeeded, the run's
                                          finished_ms is used. */
    bool incident;                     /* synced, but after something the user must hear of
                                          as of a failure (its target vanished and was
                                          reloaded in full): alerts like a failure; the
                                          what is in schema_changes */
    bool reconciled;                   /* a reconciliation (deletes) finished in this run */
    int64_t rows_deleted;              /* its rows deleted (hard) or flagged (soft) */
} mbq_table_summary;

/* One run. Borrowed pointers as above. */
typedef struct mbq_run_summary {
    const char *run_id;
    const char *host;                  /* shown in messages; NULL = gethostname() */
    int64_t started_ms;                /* epoch ms */
    int64_t finished_ms;               /* epoch ms; duration = finished - started */
    const mbq_table_summary *tables;
    size_t n_tables;
    /* A run that stopped before any table ran (the lock held too long, the
     * journal unusable, an internal error, MySQL unreachable while finding
     * the tables): the exit code and its error. 0 / NULL for a run whose
     * tables ran (their failures are in `tables`). */
    int exit_code;
    const char *run_error;
    /* Runs in a row before this one that stopped so (local state file,
     * mbq/runfail.h); with a run_error, what the `change` policy and the
     * body need; without one and > 0, this run is the recovery. */
    int prev_run_failures;
    int prev_exit_code;                /* the last such run's exit code */
    int64_t lock_held_ms;              /* exit 75: how long the lock has been held */
} mbq_run_summary;

/* Did the run stop before any table (run_error set)? */
bool mbq_run_failed(const mbq_run_summary *s);

/* Is this the first run that goes through after runs that stopped? */
bool mbq_run_recovered(const mbq_run_summary *s);

/* Failures in a row after this run: prev + 1 when it failed, else 0. */
int mbq_table_consecutive_failures(const mbq_table_summary *t);

/* Did this table start failing in this run (0 before, failed now), or recover
 * (failures before, success now)? */
bool mbq_table_started_failing(const mbq_table_summary *t);
bool mbq_table_recovered(const mbq_table_summary *t);

/* The policy: 1 to send, 0 not.
 *   MBQ_ALERT_FAILURE: some table failed, or had an incident, or the run
 *                      stopped before any table.
 *   MBQ_ALERT_ALWAYS:  every run.
 *   MBQ_ALERT_CHANGE:  some table started failing or recovered, or runs
 *                      started stopping (or go through again), so a table
 *                      or a journal broken for a day sends one alert, not
 *                      one per run. */
int mbq_notify_should_send(mbq_alert_on on, const mbq_run_summary *s);

/* Formatting. Each appends to `out` and returns 0 or MBQ_ENOMEM. Secrets are
 * masked in the result.
 *
 * Subject: "[mbq] OK: 3 tables synced, 1,234 rows (12.3 s)",
 *          "[mbq] FAILED: 1 of 3 tables failed (orders)",
 *          "[mbq] RECOVERED: orders",
 *          "[mbq] FAILED: run stopped (exit 74): cannot open journal ...".
 * One line, control characters replaced. */
int mbq_notify_format_subject(mbq_buf *out, const mbq_run_summary *s);

/* Plain-text body (LF line ends, UTF-8): completion time in UTC, a line per
 * table, every failed table with stage, error and duration, schema changes
 * per table, recovered tables. */
int mbq_notify_format_text(mbq_buf *out, const mbq_run_summary *s);

/* The whole RFC 5322 message for SMTP (CRLF line ends): From, To, Subject
 * (RFC 2047 when not ASCII), Date (UTC), Message-ID, MIME-Version,
 * Content-Type text/plain; charset=utf-8, and Content-Transfer-Encoding 8bit,
 * or quoted-printable when a line would pass SMTP's length limit. `now_ms`
 * dates the message. */
int mbq_notify_format_email(mbq_buf *out, const mbq_email_config *cfg, const mbq_run_summary *s,
                            int64_t now_ms);

/* Telegram text for parse_mode=HTML: <b>subject</b> then the body, with
 * <, > and & escaped (all that Telegram's HTML mode needs). At most
 * MBQ_TELEGRAM_MAX_CHARS characters (UTF-8 code points, Telegram's unit):
 * a longer text is cut at a line and ends with a truncation note. */
#define MBQ_TELEGRAM_MAX_CHARS 4096
int mbq_notify_format_telegram(mbq_buf *out, const mbq_run_summary *s);

/* Sending. */
typedef struct mbq_notify_options {
    int attempts;            /* tries per channel (default 3) */
    int64_t backoff_ms;      /* wait after the 1st failure; doubles (default 1000) */
    int64_t timeout_ms;      /* per attempt, whole transfer (default 30000) */
    int64_t connect_timeout_ms; /* default 10000 */
} mbq_notify_options;

#define MBQ_NOTIFY_OPTIONS_INIT {3, 1000, 30000, 10000}

/* What happened on one channel. */
typedef struct mbq_notify_result {
    bool attempted;  /* enabled and the policy said send */
    bool sent;       /* delivered (SMTP accepted it / Telegram said ok:true) */
    int error;       /* 0 or the MBQ_E* code of the last attempt */
    int attempts;    /* tries made */
    char *subject;   /* the subject of what was (to be) sent; NULL if not attempted */
    char *message;   /* the error, masked; NULL when sent or not attempted */
} mbq_notify_result;

typedef struct mbq_notify_report {
    mbq_notify_result email;
    mbq_notify_result telegram;
} mbq_notify_report;

/* Send the email for `s` now (no policy check). 0 when the server accepted
 * it; else MBQ_ENET (cannot connect, TLS), MBQ_EAUTH (login refused),
 * MBQ_ETIMEOUT, MBQ_ECONFIG (no from/recipients) or MBQ_ERR (rejected), with
 * a message naming the server (host:port, never credentials). `opts` may be
 * NULL for the defaults. `attempts_out` (may be NULL) gets the tries made. */
int mbq_notify_send_email(const mbq_email_config *cfg, const mbq_run_summary *s,
                          const mbq_notify_options *opts, int *attempts_out);

/* Send the Telegram message for `s` now (no policy check). 0 when the API
 * answered ok:true; else MBQ_ENET, MBQ_ETIMEOUT, MBQ_EAUTH (401/403),
 * MBQ_ECONFIG or MBQ_ERR with HTTP status and Telegram's description. 5xx,
 * 429 and network errors are retried; other 4xx are not. */
int mbq_notify_send_telegram(const mbq_telegram_config *cfg, const mbq_run_summary *s,
                             const mbq_notify_options *opts, int *attempts_out);

/* Decide per channel, send, fill *out (zeroed first; free with
 * mbq_notify_report_free). Either config may be NULL (= disabled). Returns 0
 * when every attempted channel delivered, else the code of the first failure
 * (message set); the report holds each channel's outcome either way. The
 * caller logs/journals the report; the return value must not fail the sync.
 * Retries are logged here as warnings, deliveries at info level. */
int mbq_notify_run(mbq_notify_report *out, const mbq_email_config *email,
                   const mbq_telegram_config *telegram, const mbq_run_summary *s,
                   const mbq_notify_options *opts);

void mbq_notify_report_free(mbq_notify_report *r);

#endif
