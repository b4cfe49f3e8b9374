/* The configuration: YAML (libyaml) -> a validated mbq_config.
 *
 * Shape (config/mbq.example.yml is the commented sample):
 *
 *   tables:
 *     - name: orders                 # MySQL table (required)
 *       primary_key: id              # a name or a list of names (required)
 *       updated_column: updated_at   # the cursor; absent => mode full
 *       mode: incremental            # incremental (default with a cursor) | full
 *       lookback: 5m                 # re-read window below the cursor
 *       target: orders               # BigQuery table (default: name)
 *       partition_by: created_at     # optional, for a newly created target
 *       partition_type: DAY          # DAY|HOUR|MONTH|YEAR (default DAY)
 *       cluster_by: [customer_id]    # optional, up to 4 columns
 *       on_incompatible_change: fail # fail | rebuild
 *       on_missing_target: fail      # fail | reload (default: bigquery's)
 *     - name: "orders_*"             # a pattern (or `discover: true` for all), see
 *       exclude: ["orders_tmp*"]     # mbq_table_pattern; keys: exclude, cursor_columns,
 *                                    # mode, lookback, on_incompatible_change, on_missing_target
 *   mysql: {host, port, socket, user, password, database, connect_timeout,
 *           read_timeout, ssl: {mode, ca, cert, key, verify_server_cert}}
 *   bigquery: {project_id, dataset, metadata_table, location, credentials,
 *              auth, impersonate_service_account, endpoint, upload_chunk_size, compression, staging_expiration,
 *              job_timeout, max_retries, multipart_max, retry_max_elapsed,
 *              tls_insecure, on_missing_target}
 *   alerting: {email: {enabled, smtp_url, host, port, tls, username, password,
 *                      from, to, on, tls_insecure},
 *              telegram: {enabled, bot_token, chat_id, api_url, on}}
 *   state: {dir}                     # journal and staging files
 *   metrics_file: PATH               # Prometheus textfile after each run
 *   alerting.lock_alert_after: 1h    # exit 75 alerts only past this
 *   log: {level, format}
 *
 * ${ENV_VAR} (and ${ENV_VAR:-default}) is substituted in every scalar before
 * it is parsed; an unset variable without a default is an error naming it.
 * `$$` is a literal `$`. docs/configuration.md is the reference of every key.
 *
 * Relative paths (state.dir, bigquery.{credentials,ca_file}, mysql.ssl.{ca,cert,key})
 * are made absolute against the config file's directory by mbq_config_load;
 * mbq_config_parse leaves them as written. When alerting.email is enabled,
 * smtp_url is always set (built from host, port and tls when not given).
 *
 * Every error names the file, line and column of the node at fault:
 *   cannot load config 'mbq.yml': line 12, column 5: unknown key 'tabels'
 *   in 'tables[0]' (did you mean 'tables'?) */
#ifndef MBQ_CONFIG_H
#define MBQ_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum mbq_sync_mode {
    MBQ_MODE_INCREMENTAL = 0,
    MBQ_MODE_FULL = 1,
    MBQ_MODE_CDC = 2,      /* followed through the binlog by `mbq cdc` (mbq/binlog.h);
                              `mbq sync` leaves it alone */
} mbq_sync_mode;

typedef enum mbq_change_policy {
    MBQ_POLICY_FAIL = 0,
    MBQ_POLICY_REBUILD = 1,
} mbq_change_policy;

/* What to do when a target with a committed cursor is gone from BigQuery
 * (dropped, or expired by a dataset's default table expiration). */
typedef enum mbq_missing_policy {
    MBQ_MISSING_FAIL = 0,   /* stop the table with the reset command (default) */
    MBQ_MISSING_RELOAD = 1, /* reload it in full (a full refresh) */
} mbq_missing_policy;

/* What a reconciliation does with target rows whose key is gone from MySQL
 * (tables[].deletes; mbq/reconcile.h). */
typedef enum mbq_delete_mode {
    MBQ_DELETES_OFF = 0,  /* default: deleted rows stay in BigQuery */
    MBQ_DELETES_SOFT = 1, /* flag them: _mbq_deleted = TRUE, _mbq_deleted_at */
    MBQ_DELETES_HARD = 2, /* delete them */
} mbq_delete_mode;

typedef enum mbq_alert_on {
    MBQ_ALERT_FAILURE = 0, /* default: a run with a failed table */
    MBQ_ALERT_ALWAYS = 1,  /* every run */
    MBQ_ALERT_CHANGE = 2,  /* a table starts failing or recovers */
} mbq_alert_on;

typedef struct mbq_table_config {
    char *name;            /* MySQL table */
    char **primary_key;    /* n_primary_key names, in key order */
    size_t n_primary_key;
    char *updated_column;  /* cursor column; NULL when none */
    mbq_sync_mode mode;    /* FULL when no updated_column */
    int64_t lookback_ms;   /* 0 = none */
    int64_t chunk_rows;    /* first sync / full refresh in key-range chunks of this many rows
                              (a backfill); 0 = in one snapshot */
    char *target;          /* BigQuery table name (defaults to name) */
    char *partition_by;    /* NULL = not partitioned */
    char *partition_type;  /* "DAY" (default), "HOUR", "MONTH", "YEAR" */
    char **cluster_by;     /* up to 4 */
    size_t n_cluster_by;
    mbq_change_policy on_incompatible_change;
    mbq_missing_policy on_missing_target; /* the table's, else bigquery.on_missing_target */
    mbq_delete_mode deletes;      /* default OFF; only for tables with a cursor */
    int64_t reconcile_every_ms;   /* at most one reconciliation per this; default 1 h */
    double max_delete_fraction;   /* the guard: refuse to remove more of the target; default 0.5 */
    int64_t reconcile_chunk_rows; /* keys per chunk (one snapshot, one load); default 1,000,000 */
    int line;              /* where the table's entry starts, for messages */
} mbq_table_config;

/* A `tables:` entry that names many tables: `name` with `*` (any run of
 * characters) or `?` (one character), or `discover: true` (every table of
 * the database, name "*"). Resolved against MySQL at each run
 * (mbq/discover.h): the key from the PRIMARY KEY or a unique NOT NULL index,
 * the cursor from cursor_columns or an ON UPDATE CURRENT_TIMESTAMP column,
 * else a full refresh. A table with an entry of its own is never taken by a
 * pattern. */
typedef struct mbq_table_pattern {
    char *name;            /* the glob ("*" for discover: true) */
    char **exclude;        /* globs of tables to leave out */
    size_t n_exclude;
    char **cursor_columns; /* cursor names to look for, in order (default updated_at,
                              modified_at; case-insensitive as MySQL's names) */
    size_t n_cursor_columns;
    bool full;             /* mode: full: never a cursor */
    int64_t lookback_ms;   /* for the tables that get a timestamp cursor */
    mbq_change_policy on_incompatible_change;
    mbq_missing_policy on_missing_target;
    int line;
} mbq_table_pattern;

typedef struct mbq_mysql_config {
    char *host;            /* default "127.0.0.1" (unless socket) */
    unsigned port;         /* default 3306 */
    char *socket;          /* unix socket path; NULL = TCP */
    char *user;            /* required */
    char *password;        /* may be NULL; registered as a secret */
    char *database;        /* required */
    int connect_timeout_s; /* default 10 */
    int read_timeout_s;    /* default 600 */
    bool ssl;              /* TLS on? (true when ssl: is given with mode != disabled) */
    char *ssl_ca;
    char *ssl_cert;
    char *ssl_key;
    bool ssl_verify_server_cert; /* default true; false logs a warning */
} mbq_mysql_config;

/* How requests to BigQuery authenticate (bigquery.auth). */
typedef enum mbq_bigquery_auth {
    MBQ_BIGQUERY_AUTH_DEFAULT = 0, /* not given: Application Default Credentials, except none
                                      with an endpoint override and no credentials (an
                                      emulator) */
    MBQ_BIGQUERY_AUTH_NONE,        /* never send a token */
    MBQ_BIGQUERY_AUTH_SERVICE_ACCOUNT, /* OAuth with the named credentials file (any type),
                                          endpoint or not */
    MBQ_BIGQUERY_AUTH_ADC,         /* the ADC lookup chain, endpoint or not */
} mbq_bigquery_auth;

typedef struct mbq_bigquery_config {
    char *project_id;          /* required with an endpoint; else NULL = the credentials'
                                  (filled by mbq_bq_config_resolve_project) */
    char *dataset;             /* required */
    char *metadata_table;      /* default "sync_metadata" */
    char *location;            /* default "US" */
    bool location_set;         /* the config names it (else the dataset's own is used) */
    char *credentials;         /* credentials file of any type; NULL = GOOGLE_APPLICATION_CREDENTIALS,
                                  then the rest of the ADC chain */
    char *impersonate_service_account; /* email, or NULL */
    char *endpoint;            /* NULL = https://bigquery.googleapis.com (or BIGQUERY_EMULATOR_HOST) */
    mbq_bigquery_auth auth;    /* default MBQ_BIGQUERY_AUTH_DEFAULT */
    char *ca_file;             /* PEM CA bundle for HTTPS to BigQuery and the token endpoint;
                                  NULL = the system's CAs */
    int64_t upload_chunk_bytes;     /* resumable chunk size, multiple of 256 KiB; 0 = one request; default 8 MiB */
    int64_t multipart_max_bytes;    /* files up to this go by multipart upload; default 5 MiB */
    bool compress;                  /* gzip staging files (default true) */
    bool stream_load;               /* a replace load uploads while it extracts (default true) */
    int64_t staging_expiration_ms;  /* default 7 days */
    int64_t job_timeout_ms;         /* default 6 h */
    int64_t request_timeout_ms;     /* one HTTP request, upload included; default 10 min */
    int max_retries;                /* default 8 */
    int64_t retry_max_elapsed_ms;   /* default 10 min */
    bool tls_verify;                /* default true; false needs tls_insecure: true and warns */
    /* BigQuery's per-job limits (README "Limits"): */
    int64_t max_load_file_bytes;    /* one staged file per load job at most this: a larger
                                       extract is split into parts; default 3 GiB */
    int64_t max_query_bytes;        /* one query text at most this (the metadata mirror's
                                       INSERTs are batched under it); default 1,000,000 */
    int64_t max_partitions_per_job; /* one MERGE modifies at most this many partitions of a
                                       partitioned target (more: in ranges); default 4,000 */
    mbq_missing_policy on_missing_target; /* default for tables without their own: fail */
} mbq_bigquery_config;

typedef struct mbq_email_config {
    bool enabled;
    char *smtp_url;        /* e.g. smtp://mail:587 or smtps://mail:465 (built from host/port/tls if absent) */
    char *host;
    unsigned port;         /* default 587 */
    char *tls;             /* "starttls" (default), "implicit", "none" */
    char *username;
    char *password;        /* registered as a secret */
    char *from;            /* required when enabled */
    char **to;             /* one or more */
    size_t n_to;
    mbq_alert_on on;
    bool tls_verify;       /* default true */
} mbq_email_config;

typedef struct mbq_telegram_config {
    bool enabled;
    char *bot_token;       /* registered as a secret */
    char *chat_id;
    char *api_url;         /* default https://api.telegram.org */
    mbq_alert_on on;
} mbq_telegram_config;

/* cdc: the binlog follower's settings (`mbq cdc`; docs/cdc.md). */
typedef struct mbq_cdc_config {
    uint32_t server_id;         /* the replica id announced to the source; never 0 after a
                                   load: unset, it is derived from state_dir (docs/cdc.md) */
    int64_t max_batch_rows;     /* a batch is applied at this many row changes; default 100,000 */
    int64_t max_batch_delay_ms; /* ... or when its first event is this old; default 5 s */
    int64_t heartbeat_ms;       /* the source's heartbeat period when idle; default 5 s */
    int64_t lag_alert_ms;       /* alert when the applied position lags the source by more;
                                   default 5 min; 0 = never */
    int64_t reconnect_max_ms;   /* reconnect backoff cap; default 60 s */
} mbq_cdc_config;

typedef struct mbq_config {
    char *path;            /* the file it came from */
    mbq_table_config *tables;  /* the tables named one by one */
    size_t n_tables;
    mbq_table_pattern *patterns; /* the entries that name many (resolved at each run) */
    size_t n_patterns;
    mbq_mysql_config mysql;
    mbq_bigquery_config bigquery;
    mbq_email_config email;
    mbq_telegram_config telegram;
    mbq_cdc_config cdc;
    char *state_dir;       /* default "./.mbq-state" relative to the config file's directory */
    char *log_level;       /* NULL = info */
    char *log_format;      /* NULL = text */
    int sync_jobs;         /* sync.jobs: tables at the same time; 0 = not set (1) */
    char *metrics_file;    /* metrics_file: Prometheus textfile written after each run;
                              NULL = none (`sync --metrics-file` wins) */
    int64_t lock_alert_after_ms; /* alerting.lock_alert_after: a run that finds the lock
                                    held longer than this alerts (exit 75); default 1 h */
    char *serve_listen;    /* serve.listen: the dashboard's HOST:PORT; NULL = not set */
    int64_t serve_healthy_within_ms; /* serve.healthy_within; 0 = not set (1 h) */
} mbq_config;

#define MBQ_CONFIG_JOBS_MAX 32 /* sync.jobs and `sync --jobs` */

/* Load and validate `path`. On success *out is a new config (free with
 * mbq_config_free). On failure returns MBQ_ECONFIG (or MBQ_ENOTFOUND/MBQ_EIO
 * for an unreadable file) with a message naming file, line and column.
 * Secrets found (passwords, tokens) are registered with mbq_secret_register. */
int mbq_config_load(mbq_config **out, const char *path);

/* The same from a string; `name` is used in messages in place of a path. */
int mbq_config_parse(mbq_config **out, const char *yaml, size_t len, const char *name);

void mbq_config_free(mbq_config *cfg);

/* The configured table named `name` (MySQL name or target name), or NULL. */
const mbq_table_config *mbq_config_table(const mbq_config *cfg, const char *name);

#endif
