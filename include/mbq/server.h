/* The monitoring dashboard of `mbq-state serve`: a small read-only HTTP
 * server over the journal.
 *
 * Layers (src/server/):
 *   dash.c         the snapshot: what the journal says, read through a
 *                  MBQ_JOURNAL_READONLY handle opened per request, and the
 *                  health rule
 *   html.c         HTML escaping and the pages (overview, table, alerts)
 *   svg.c          the history charts, inline SVG drawn here
 *   api.c          /api/tables (JSON), /metrics (Prometheus), /healthz
 *   server.c       libmicrohttpd: listen, limits, routes, auth
 *
 * Every renderer takes a snapshot and appends to an mbq_buf; none does I/O,
 * so each is unit-tested on hostile data (tests/test_server_render.c).
 *
 * Security: every journal string goes through mbq_html_escape (or the JSON
 * and Prometheus encoders), and through mbq_secret_mask as a second line of
 * defence; no config value other than table names is ever rendered. */
#ifndef MBQ_SERVER_H
#define MBQ_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "mbq/buf.h"
#include "mbq/config.h"
#include "mbq/journal.h"
#include "mbq/journal_cdc_read.h"
#include "mbq/journal_read.h"

/* ---- the snapshot ---- */

/* One table as the dashboard shows it. */
typedef struct mbq_dash_table {
    char *name;
    bool configured;       /* listed in the config (true when serving without one) */
    mbq_table_state st;    /* committed state */
    bool in_flight;
    mbq_table_run flight;  /* valid when in_flight */
    mbq_table_run *runs;   /* finished and in-flight table runs, newest first */
    int n_runs;
    mbq_event *events;     /* schema changes and other events of the table, newest first */
    int n_events;
    int64_t schema_changes_last_run; /* schema.* events of the last run */
    /* Change data capture: a table in `mode: cdc` (or, serving without a
     * config, one the journal follows) is judged by its stream, not by
     * sync runs. */
    bool cdc_mode;
    const mbq_cdc_table_view *cdc; /* its cdc_tables row in mbq_dash.cdc; NULL = none yet */
} mbq_dash_table;

/* The follower (`mbq cdc`) as the journal shows it. */
typedef struct mbq_dash_cdc {
    bool have_stream;           /* a stream row exists */
    mbq_cdc_stream_view stream;
    mbq_cdc_batches_view batches;
    mbq_cdc_table_view *tables; /* every cdc_tables row */
    size_t n_tables;
    int64_t heartbeat_ms;       /* cdc.heartbeat (default 5 s) */
    bool up;                    /* mbq_cdc_stream_up at now_ms */
    int64_t lag_ms;             /* mbq_cdc_lag_now_ms; -1 without a stream */
} mbq_dash_cdc;

typedef struct mbq_dash {
    char *state_dir;
    int64_t now_ms;
    int64_t healthy_within_ms;
    int refresh_s;              /* <meta refresh>; 0 = none */
    int journal_version;
    mbq_dash_table *tables;
    size_t n_tables;
    mbq_event *alerts;          /* alert.* events, newest first */
    int n_alerts;
    bool have_last_run;
    mbq_run_record last_run;
    bool have_cdc;              /* a cdc table is configured or journaled */
    mbq_dash_cdc cdc;
} mbq_dash;

/* What to load. Runs: history length per table (the table page wants many,
 * the overview one). */
typedef struct mbq_dash_query {
    const char *only_table; /* NULL = every table */
    int runs_per_table;     /* >= 1 */
    int events_per_table;   /* 0 = none */
    int alerts;             /* 0 = none */
} mbq_dash_query;

/* Open `state_dir`'s journal read-only, read what `q` asks into *out
 * (zeroed first; free with mbq_dash_free) and close it. Tables: those of
 * `cfg` (config order; may be NULL), then the ones only the journal knows.
 * With only_table, a table neither configured nor journaled gives
 * MBQ_ENOTFOUND. Errors as mbq_journal_open. */
int mbq_dash_load(mbq_dash *out, const char *state_dir, const mbq_config *cfg,
                  const mbq_dash_query *q, int64_t now_ms);

/* The same on an open read-only journal `j` (the server keeps one open),
 * inside one read transaction: the snapshot is consistent. */
int mbq_dash_read(mbq_dash *out, mbq_journal *j, const char *state_dir, const mbq_config *cfg,
                  const mbq_dash_query *q, int64_t now_ms);
void mbq_dash_free(mbq_dash *d);

/* The health rule of /healthz: a configured table is healthy when its last
 * finished run succeeded (no failures since the last success) and that
 * success is at most healthy_within_ms old. An in-flight run does not make a
 * table unhealthy by itself; a table that never succeeded is unhealthy.
 * Tables only the journal knows (no longer configured) are not judged.
 * A cdc table is healthy when it is streaming, its follower is up (or, run
 * with --once from cron, wrote within healthy_within) and the lag is at
 * most healthy_within.
 * Returns true when healthy; else appends the reason to `why` (may be NULL). */
bool mbq_dash_table_healthy(const mbq_dash *d, const mbq_dash_table *t, mbq_buf *why);

/* One word for the table's state: "ok", "failed", "behind" (last success
 * older than healthy_within), "never synced", "first sync" (never succeeded,
 * a run in flight) or "not configured"; for a cdc table "streaming",
 * "lagging", "down" (no live follower), "snapshot", "resnapshot", "failed"
 * or "no snapshot". Static string. */
const char *mbq_dash_table_status(const mbq_dash *d, const mbq_dash_table *t);

/* now - last success in ms, or -1 when never; for a cdc table the stream's
 * lag (mbq_cdc_lag_now_ms), -1 before it has one. */
int64_t mbq_dash_lag_ms(const mbq_dash *d, const mbq_dash_table *t);

/* Append `ms` as a short age: "45s", "12m", "3h 5m", "2d 4h". */
int mbq_dash_put_age(mbq_buf *b, int64_t ms);

/* A timestamp cursor ("YYYY-MM-DD HH:MM:SS[.ffffff]", UTC) as epoch ms;
 * false when `cursor` is NULL or not such a timestamp. */
bool mbq_dash_cursor_ms(int64_t *out, const char *cursor);

/* ---- renderers: each appends to `out`, 0 or MBQ_ENOMEM ---- */

/* Text as HTML: & < > " ' escaped, invalid UTF-8 replaced by U+FFFD, other
 * control characters than tab and newline replaced by U+FFFD too; NULL
 * appends nothing. Safe in element content and in quoted attributes. */
int mbq_html_escape(mbq_buf *out, const char *s);

/* A path segment percent-encoded (every byte but A-Z a-z 0-9 - . _ ~). */
int mbq_url_encode(mbq_buf *out, const char *s);

int mbq_render_overview(mbq_buf *out, const mbq_dash *d);
/* The table page of d->tables[0] (load with only_table). */
int mbq_render_table_page(mbq_buf *out, const mbq_dash *d);
int mbq_render_alerts_page(mbq_buf *out, const mbq_dash *d);
/* The overview's change-data-capture panel (nothing without cdc): the
 * follower's status, position, GTID, lag, heartbeat and pending batches,
 * and per cdc table its state, snapshot position and rows applied (I/U/D). */
int mbq_render_cdc_panel(mbq_buf *out, const mbq_dash *d);
/* The table page's facts of a cdc table (nothing for another table). */
int mbq_render_cdc_table_facts(mbq_buf *out, const mbq_dash *d, const mbq_dash_table *t);
/* A small page for an error status ("404 not found", "503 ...": `msg`). */
int mbq_render_error_page(mbq_buf *out, int status, const char *msg);
/* The stylesheet served as /style.css (the CSP forbids inline styles). */
extern const char mbq_dash_css[];
/* The icon served as /favicon.svg. */
extern const char mbq_dash_favicon_svg[];

/* Charts of `runs` (newest first, as loaded; drawn oldest to newest), one
 * bar per finished run: rows per run, and the time of each stage stacked. */
int mbq_render_rows_chart(mbq_buf *out, const mbq_table_run *runs, int n);
int mbq_render_stages_chart(mbq_buf *out, const mbq_table_run *runs, int n);

/* /api/tables: {"generated":..., "healthy_within_seconds":..., "tables":[...]}. */
int mbq_render_tables_json(mbq_buf *out, const mbq_dash *d);

/* /metrics: the families of the textfile (mbq/metrics.h) computed from the
 * journal, plus mbq_table_lag_seconds, mbq_table_cursor_timestamp_seconds,
 * mbq_table_in_flight and mbq_table_healthy. */
int mbq_render_metrics(mbq_buf *out, const mbq_dash *d);

/* The change-data-capture families (nothing without cdc):
 * mbq_cdc_up, mbq_cdc_lag_seconds, mbq_cdc_position_info{file}, the byte
 * offset in that file, mbq_cdc_heartbeat_timestamp_seconds,
 * mbq_cdc_batches_pending, mbq_cdc_rows_applied_total{table,op} and
 * mbq_cdc_table_state{table,state}. Part of mbq_render_metrics. */
int mbq_render_cdc_metrics(mbq_buf *out, const mbq_dash *d);

/* The same families read from `state_dir`'s journal, for node_exporter's
 * textfile collector after `mbq cdc --once`: written atomically (mode 0644)
 * next to the sync's `metrics_file`, "X.prom" -> "X-cdc.prom", so that a
 * sync never overwrites them. Errors as mbq_dash_load and
 * mbq_file_write_atomic. */
int mbq_cdc_metrics_write(const char *metrics_file, const char *state_dir,
                          const mbq_config *cfg, int64_t now_ms);

/* /healthz body ("ok\n" or one line per unhealthy table); *healthy set. */
int mbq_render_health(mbq_buf *out, bool *healthy, const mbq_dash *d);

/* ---- the server ---- */

typedef struct mbq_server_options {
    const char *listen;          /* "HOST:PORT" or "[V6]:PORT"; default "127.0.0.1:8080" */
    const char *state_dir;       /* the journal's directory */
    const mbq_config *cfg;       /* may be NULL (--state-dir alone); borrowed */
    int64_t healthy_within_ms;   /* default 1 h */
    int refresh_s;               /* default 30 */
    const char *token;           /* bearer token; NULL = none (loopback only) */
    unsigned max_connections;    /* default 64 */
    unsigned timeout_s;          /* idle connection timeout, default 10 */
    size_t memory_limit;         /* per connection (bounds request headers), default 32 KiB */
    unsigned threads;            /* worker threads, default 2 */
} mbq_server_options;

#define MBQ_SERVER_OPTIONS_INIT {"127.0.0.1:8080", NULL, NULL, 3600000, 30, NULL, 64, 10, 32768, 2}

/* The shortest token accepted: a bearer token is the only thing between the
 * network and the journal's contents. */
#define MBQ_SERVER_TOKEN_MIN 16

typedef struct mbq_server mbq_server;

/* Parse "HOST:PORT" (host a literal address or a name; "[::1]:8080" for
 * IPv6) into a socket address; *loopback tells whether it is 127.0.0.0/8 or
 * ::1. MBQ_ECONFIG with a message naming `listen`. */
int mbq_listen_parse(struct sockaddr_storage *out, socklen_t *len, bool *loopback,
                     const char *listen);

/* Compare a presented token with the expected one in time independent of
 * where they differ (no early exit on the first differing byte). */
bool mbq_token_equal(const char *presented, const char *expected);

/* Check the options (a non-loopback address needs a token of at least
 * MBQ_SERVER_TOKEN_MIN characters), bind and start serving in background
 * threads. *out is stopped and freed with mbq_server_stop. */
int mbq_server_start(mbq_server **out, const mbq_server_options *opts);

/* The bound port (useful with port 0). */
unsigned mbq_server_port(const mbq_server *s);

void mbq_server_stop(mbq_server *s);

#endif
