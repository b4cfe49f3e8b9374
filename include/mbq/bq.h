/* The BigQuery REST API v2 client: datasets, tables, query jobs, load jobs by
 * media upload, idempotent job ids, retries.
 *
 * It speaks the documented API (https://bigquery.googleapis.com/bigquery/v2
 * and the upload endpoint /upload/bigquery/v2/projects/{p}/jobs) and works
 * unchanged against goccy/bigquery-emulator; where the emulator differs
 * (../shared/EMULATOR.md) the code says so where it copes.
 *
 * Conventions: every function returns 0 or a negative MBQ_E* code with the
 * message set (mbq_error_last()). BigQuery errors (MBQ_EBQ) read like
 *   bigquery: job 'mbq_x_1' failed: invalid: Could not parse 'abc' as INT64 (HTTP 400)
 * i.e. the job id when there is one, BigQuery's reason and message and the
 * HTTP status. Out-parameters come first; whatever is returned through one is
 * owned by the caller and freed with the matching *_free function.
 *
 * Idempotency: every job carries a caller-chosen job id (mbq_bq_job_id makes
 * a deterministic one). Before submitting, the id is looked up with jobs.get;
 * an existing job is waited for and returned (never submitted or uploaded a
 * second time), and a duplicate reported at insert (409, or the emulator's
 * "already created") is treated the same way. That is what makes a resumed
 * run safe after a crash.
 *
 * Retries: HTTP 429/500/502/503/504, BigQuery reasons rateLimitExceeded,
 * backendError and internalError, and connection errors are retried with
 * exponential backoff and full jitter, at most max_retries times and within
 * retry_max_elapsed_ms. Only requests that cannot apply a change twice are
 * retried: reads, deletes, creates that answer 409 on repetition, and
 * jobs.insert (which always carries a job id). A job that BigQuery ran and
 * failed is never retried here: it cannot run again under its id; the
 * caller reads mbq_bq_job_error_reason and may submit the same work under a
 * new id (mbq_bq_job_reason_transient).
 *
 * Location: every job insert and poll names the client's location, which
 * mbq_bq_location_resolve sets to the dataset's.
 *
 * A mbq_bq handle is not thread-safe: use one per thread. */
#ifndef MBQ_BQ_H
#define MBQ_BQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mbq/buf.h"

typedef struct mbq_bq mbq_bq;

/* ---- client ------------------------------------------------------------ */

typedef enum mbq_bq_auth_mode {
    MBQ_BQ_AUTH_AUTO = 0,            /* ADC, unless an endpoint override is in use */
    MBQ_BQ_AUTH_NONE = 1,            /* never send a token (emulators) */
    MBQ_BQ_AUTH_SERVICE_ACCOUNT = 2, /* the named credentials file (credentials or
                                        GOOGLE_APPLICATION_CREDENTIALS), endpoint or not
                                        (e.g. a Private Service Connect endpoint) */
    MBQ_BQ_AUTH_ADC = 3,             /* Application Default Credentials, endpoint or not
                                        (mbq_cred_default, mbq/credentials.h) */
} mbq_bq_auth_mode;

typedef struct mbq_bq_options {
    const char *project;          /* required */
    const char *location;         /* NULL (default): the dataset's, once read with
                                     mbq_bq_location_resolve; "US" until then */
    const char *endpoint;         /* NULL: BIGQUERY_EMULATOR_HOST (host:port, as http://),
                                     else https://bigquery.googleapis.com */
    const char *credentials;      /* credentials file of any type (mbq/credentials.h);
                                     NULL = the ADC lookup chain */
    mbq_bq_auth_mode auth;        /* default AUTO */
    const char *impersonate;      /* service account email to impersonate; NULL = none */
    int64_t connect_timeout_ms;   /* default 10 s */
    int64_t request_timeout_ms;   /* one HTTP request; default 10 min (uploads take long) */
    int64_t job_timeout_ms;       /* waiting for a job to be DONE; default 6 h */
    int max_retries;              /* default 8 */
    int64_t retry_max_elapsed_ms; /* default 10 min */
    int64_t retry_initial_ms;     /* first backoff ceiling; default 1 s, doubling */
    int64_t retry_max_delay_ms;   /* backoff ceiling cap; default 32 s */
    int64_t poll_initial_ms;      /* first jobs.get poll delay; default 200 ms, doubling */
    int64_t poll_max_ms;          /* default 5 s */
    int64_t upload_chunk_bytes;   /* resumable chunk, a multiple of 256 KiB; 0 = one PUT;
                                     default 8 MiB */
    int64_t multipart_max_bytes;  /* files up to this go by multipart upload; default 5 MiB */
    bool tls_verify;              /* default true */
    const char *ca_file;          /* PEM CA bundle for HTTPS (BigQuery and the token endpoint);
                                     NULL = the system's CAs */
} mbq_bq_options;

/* Fill `opts` with the defaults above (project NULL). */
void mbq_bq_options_init(mbq_bq_options *opts);

/* Fill `opts` from the config's bigquery section (defaults first, then every
 * knob the config has). The strings stay owned by `cfg`. */
struct mbq_bigquery_config;
void mbq_bq_options_from_config(mbq_bq_options *opts, const struct mbq_bigquery_config *cfg);

/* When the config names no project_id, set it to the credentials' project
 * (mbq_bq_new finds them). 0, or MBQ_ECONFIG/MBQ_EAUTH/... from mbq_bq_new. */
int mbq_bq_config_resolve_project(struct mbq_bigquery_config *cfg);

/* Create a client. Validates the options (MBQ_ECONFIG: no project in the
 * options nor in the credentials, a chunk size that is not a multiple of
 * 256 KiB, a bad endpoint) and, when auth is used, finds the credentials
 * (MBQ_EAUTH, see mbq/credentials.h: a file is read, the metadata server
 * may be asked whether it is there and for the project id). Free with
 * mbq_bq_free. */
int mbq_bq_new(mbq_bq **out, const mbq_bq_options *opts);
void mbq_bq_free(mbq_bq *bq);

/* The endpoint in use ("http://127.0.0.1:9050", no trailing slash) and
 * whether requests carry a token. Owned by bq. */
const char *mbq_bq_endpoint(const mbq_bq *bq);
bool mbq_bq_uses_auth(const mbq_bq *bq);

/* The credentials requests carry, NULL without auth. Owned by bq. */
struct mbq_cred;
struct mbq_cred *mbq_bq_credentials(mbq_bq *bq);

/* The project jobs run in (the options' or the credentials'). Owned by bq. */
const char *mbq_bq_project(const mbq_bq *bq);

/* Requests sent and retries made so far (tests, metrics). */
unsigned mbq_bq_request_count(const mbq_bq *bq);
unsigned mbq_bq_retry_count(const mbq_bq *bq);

/* ---- schema ------------------------------------------------------------ */

typedef enum mbq_bq_mode {
    MBQ_BQ_NULLABLE = 0,
    MBQ_BQ_REQUIRED = 1,
    MBQ_BQ_REPEATED = 2,
} mbq_bq_mode;

typedef struct mbq_bq_field {
    char *name;
    char *type;        /* standard SQL name: STRING, INT64, NUMERIC, BIGNUMERIC, FLOAT64, BOOL,
                          BYTES, DATE, DATETIME, TIME, TIMESTAMP, JSON, GEOGRAPHY (others as
                          BigQuery names them, e.g. RECORD) */
    mbq_bq_mode mode;
    char *description; /* NULL when none */
    char *definition;  /* the rest of the field as BigQuery gave it (policyTags, maxLength,
                          defaultValueExpression, ...): a JSON object's text, sent back
                          as it is; NULL when none */
} mbq_bq_field;

typedef struct mbq_bq_schema {
    mbq_bq_field *fields;
    size_t n_fields;
    size_t cap;
} mbq_bq_schema;

/* A new empty schema; free with mbq_bq_schema_free. */
int mbq_bq_schema_new(mbq_bq_schema **out);
void mbq_bq_schema_free(mbq_bq_schema *schema);

/* Append a field (strings copied). `type` may be a legacy name (INTEGER,
 * FLOAT, BOOLEAN, BIGDECIMAL, STRUCT): it is stored normalized. MBQ_ECONFIG
 * for an empty name or an unknown type; `description` may be NULL. */
int mbq_bq_schema_add(mbq_bq_schema *schema, const char *name, const char *type,
                      mbq_bq_mode mode, const char *description);

/* Carry the target's field definitions into a load schema, so that a load
 * that states the table's schema (a full refresh, a rebuild) keeps what
 * users put on the target: for each field of `load` that `target` has, the
 * target's mode, description and the rest of its definition (policyTags,
 * maxLength, precision, scale, collation, defaultValueExpression, ...).
 * Where the type changes (a rebuild), only the description and the access
 * control (policyTags, dataPolicies) are kept: a protected column never
 * loses its policy tags. MBQ_ENOMEM, MBQ_EDATA. */
int mbq_bq_schema_carry(mbq_bq_schema *load, const mbq_bq_schema *target);

/* The field named `name` (BigQuery column names are case-insensitive), or
 * NULL. */
const mbq_bq_field *mbq_bq_schema_find(const mbq_bq_schema *schema, const char *name);

/* The standard name for a type name ("INTEGER" -> "INT64", "int64" ->
 * "INT64"), a static string, or NULL when unknown. */
const char *mbq_bq_type_normalize(const char *type);

/* "NULLABLE", "REQUIRED", "REPEATED". */
const char *mbq_bq_mode_name(mbq_bq_mode mode);

/* Append the schema as BigQuery's JSON field array:
 * [{"name":"id","type":"INT64","mode":"REQUIRED"},...]. */
int mbq_bq_schema_to_json(mbq_buf *out, const mbq_bq_schema *schema);

/* Parse a schema from JSON: a tables.get response ({"schema":{"fields":..}}),
 * a TableSchema ({"fields":[..]}) or a bare field array. Never crashes on any
 * input (fuzzed): MBQ_EDATA for anything malformed, MBQ_ENOMEM. Legacy type
 * names are normalized; unknown types are kept as given (uppercased). */
int mbq_bq_schema_from_json(mbq_bq_schema **out, const char *json, size_t len);

/* ---- errors ------------------------------------------------------------ */

/* BigQuery's error body {"error":{"code","message","errors":[{"reason",
 * "message"}],"status"}} parsed. */
typedef struct mbq_bq_error_info {
    long code;       /* error.code, 0 when absent */
    char *reason;    /* errors[0].reason (else status), NULL when absent */
    char *message;   /* error.message (else errors[0].message), NULL when absent */
} mbq_bq_error_info;

/* Parse an error body. Any input is accepted (never crashes; fuzzed): a body
 * that is not BigQuery's error shape gives 0 with all fields empty. Free the
 * strings with mbq_bq_error_info_free. MBQ_ENOMEM only. */
int mbq_bq_parse_error(mbq_bq_error_info *out, const char *body, size_t len);
void mbq_bq_error_info_free(mbq_bq_error_info *info);

/* Is this BigQuery error reason worth retrying (rateLimitExceeded,
 * backendError, internalError)? */
bool mbq_bq_reason_retryable(const char *reason);

/* Did a job that failed with this errorResult.reason fail on BigQuery's side
 * (rateLimitExceeded, backendError, internalError, jobRateLimitExceeded, the
 * list of Google's Python client's job_retry), so that the same work under a
 * NEW job id may succeed? A failed job never runs again under its own id. */
bool mbq_bq_job_reason_transient(const char *reason);

/* ---- datasets ---------------------------------------------------------- */

/* 0 when the dataset exists, MBQ_ENOTFOUND when not, other errors. If
 * `location_out` is not NULL the dataset's location is appended to it. */
int mbq_bq_dataset_get(mbq_bq *bq, mbq_buf *location_out, const char *dataset);

/* Create the dataset in `location` (NULL = the client's) unless it exists.
 * It is looked up first: the emulator answers a duplicate create with 500,
 * not 409 (EMULATOR.md 2); a 409 from BigQuery (a concurrent creator) is
 * success too. */
int mbq_bq_dataset_ensure(mbq_bq *bq, const char *dataset, const char *location);

/* Settle the location that every job insert (jobReference.location) and
 * every poll (jobs.get, getQueryResults: location=) use. A job runs in its
 * dataset's location, and BigQuery answers 404 notFound for a job looked up
 * in another one (jobs.get reference: the location must be given for a job
 * outside the US and EU multi-regions), so the dataset's own location is read with datasets.get:
 *  - it exists: its location is used from now on; when the client was given
 *    another one (bigquery.location), MBQ_ECONFIG naming both;
 *  - it does not exist: 0 with *dataset_exists false; the given location,
 *    or US, stays (and is where mbq_bq_dataset_ensure creates it).
 * Other errors as mbq_bq_dataset_get. */
int mbq_bq_location_resolve(mbq_bq *bq, bool *dataset_exists, const char *dataset);

/* The location in use (owned by bq) and whether the caller gave it. */
const char *mbq_bq_location(const mbq_bq *bq);
bool mbq_bq_location_configured(const mbq_bq *bq);

/* Delete a dataset and (with delete_contents) its tables. 404 is success. */
int mbq_bq_dataset_delete(mbq_bq *bq, const char *dataset, bool delete_contents);

/* The dataset's defaultTableExpirationMs and defaultPartitionExpirationMs
 * (0 when not set): as mbq_bq_location_resolve read them for this dataset,
 * else from a datasets.get of its own. Tables created in the
 * dataset are deleted that long after their creation, and partitions that
 * long after their partition time, unless the table says otherwise.
 * MBQ_ENOTFOUND when the dataset does not exist. */
int mbq_bq_dataset_expirations(mbq_bq *bq, int64_t *table_ms, int64_t *partition_ms,
                               const char *dataset);

/* ---- tables ------------------------------------------------------------ */

typedef struct mbq_bq_table_info {
    mbq_bq_schema *schema;     /* never NULL after a successful get */
    char *type;                /* "TABLE", "VIEW", ... ; NULL when absent */
    int64_t num_rows;          /* -1 when absent */
    int64_t expiration_ms;     /* expirationTime (ms since epoch); 0 = none */
    char *partition_type;      /* timePartitioning.type; NULL = not partitioned */
    char *partition_field;     /* timePartitioning.field; NULL = ingestion time */
    char **clustering;         /* clustering.fields */
    size_t n_clustering;
    char *etag;                /* NULL when absent */
} mbq_bq_table_info;

void mbq_bq_table_info_free(mbq_bq_table_info *info);

/* tables.get. *out freed with mbq_bq_table_info_free. MBQ_ENOTFOUND for 404
 * (table or dataset missing). */
int mbq_bq_table_get(mbq_bq_table_info **out, mbq_bq *bq, const char *dataset, const char *table);

/* Parse a tables.get response body (robust to any input; MBQ_EDATA). */
int mbq_bq_table_info_from_json(mbq_bq_table_info **out, const char *json, size_t len);

typedef struct mbq_bq_table_options {
    int64_t expiration_ms;         /* table expires this long after creation; 0 = never
                                      (staging tables: orphans clean themselves up) */
    const char *partition_type;    /* DAY, HOUR, MONTH, YEAR; NULL = not partitioned */
    const char *partition_field;   /* NULL = ingestion time */
    const char *const *clustering; /* up to 4 column names */
    size_t n_clustering;
    const char *description;       /* NULL = none */
} mbq_bq_table_options;

#define MBQ_BQ_TABLE_OPTIONS_INIT {0, NULL, NULL, NULL, 0, NULL}

/* tables.insert with `schema`. `opts` may be NULL. MBQ_EEXISTS when the
 * table exists (409 duplicate). */
int mbq_bq_table_create(mbq_bq *bq, const char *dataset, const char *table,
                        const mbq_bq_schema *schema, const mbq_bq_table_options *opts);

/* Add the fields of `fields` that the table does not have yet, as NULLABLE
 * (BigQuery only lets a patch add NULLABLE or REPEATED columns), by
 * tables.patch of the whole current schema plus the new fields, with the
 * etag fetched with it as If-Match so that a concurrent change is not
 * overwritten (412 -> fetch again, at most a few times). Idempotent: when
 * nothing is missing no request is sent. `added` (may be NULL) receives how
 * many fields were added. MBQ_ENOTFOUND when the table is missing,
 * MBQ_ESCHEMA when a field exists with another type. */
int mbq_bq_table_add_columns(mbq_bq *bq, size_t *added, const char *dataset, const char *table,
                             const mbq_bq_schema *fields);

/* tables.delete. A missing table (404) is success. */
int mbq_bq_table_delete(mbq_bq *bq, const char *dataset, const char *table);

/* ---- jobs -------------------------------------------------------------- */

typedef struct mbq_bq_job {
    char *job_id;
    char *location;          /* NULL when the response had none */
    char *state;             /* "PENDING", "RUNNING", "DONE" */
    char *error_reason;      /* status.errorResult.reason; NULL when none */
    char *error_message;     /* status.errorResult.message; NULL when none */
    char *statement_type;    /* query jobs: "SELECT", "INSERT", "MERGE", ...; NULL */
    int64_t output_rows;     /* load jobs: statistics.load.outputRows; -1 when absent */
    int64_t dml_affected_rows; /* query: numDmlAffectedRows; -1 when absent */
    int64_t dml_inserted;    /* query: dmlStats.insertedRowCount; -1 when absent */
    int64_t dml_updated;     /* -1 when absent */
    int64_t dml_deleted;     /* -1 when absent */
    int64_t total_bytes_processed; /* -1 when absent */
    bool existed;            /* the job id existed before this call (looked up, not created),
                                or a streamed upload's pieces were sent again after a cut and
                                the job reports no row count: its content is unproven */
} mbq_bq_job;

void mbq_bq_job_free(mbq_bq_job *job);

/* Parse a Job resource (jobs.get/jobs.insert response). Robust to any input
 * (MBQ_EDATA). */
int mbq_bq_job_from_json(mbq_bq_job **out, const char *json, size_t len);

/* jobs.get once: the job's current state, a DONE job's errorResult and its
 * statistics. Returns 0 also for a failed job (see job->error_reason).
 * `location` NULL = the client's. MBQ_ENOTFOUND for an unknown job id. */
int mbq_bq_job_get(mbq_bq_job **out, mbq_bq *bq, const char *job_id, const char *location);

/* Poll jobs.get with backoff (poll_initial_ms doubling to poll_max_ms) until
 * the job is DONE, for at most job_timeout_ms (MBQ_ETIMEOUT naming the job).
 * A DONE job with errorResult gives MBQ_EBQ ("bigquery: job 'x' failed:
 * reason: message") and *out NULL; otherwise 0 and the DONE job. */
int mbq_bq_job_wait(mbq_bq_job **out, mbq_bq *bq, const char *job_id, const char *location);

/* The errorResult.reason of the job whose failure the last mbq_bq_query,
 * mbq_bq_load_file, mbq_bq_load_stream or mbq_bq_job_wait reported as
 * MBQ_EBQ; NULL when that call's error was not a failed job (a refused
 * request, the network). Owned by bq, valid until its next job call. */
const char *mbq_bq_job_error_reason(const mbq_bq *bq);

/* Append a valid, deterministic BigQuery job id built from `prefix` and the
 * NULL-terminated list of string parts that follows, joined with '_'.
 * Characters other than letters, digits, '_' and '-' are replaced by '_';
 * when anything had to be replaced, or the id would exceed 1024 characters
 * (it is then truncated), a '_' and 16 hex digits of the SHA-256 of the
 * original parts are appended so that different inputs keep different ids.
 * MBQ_ECONFIG for an empty prefix, MBQ_ENOMEM. */
int mbq_bq_job_id(mbq_buf *out, const char *prefix, ...);

typedef struct mbq_bq_query_options {
    const char *location;        /* NULL = the client's */
    const char *default_dataset; /* unqualified table names resolve here; NULL = none */
} mbq_bq_query_options;

#define MBQ_BQ_QUERY_OPTIONS_INIT {NULL, NULL}

/* Run `sql` (GoogleSQL, useLegacySql=false) as query job `job_id` and wait
 * until it is DONE. An existing job with that id is waited for and returned
 * instead (job->existed), never run again. A failed job gives MBQ_EBQ with
 * the job id, reason, message and HTTP status, *out NULL. `opts` may be
 * NULL. Free *out with mbq_bq_job_free. */
int mbq_bq_query(mbq_bq_job **out, mbq_bq *bq, const char *job_id, const char *sql,
                 const mbq_bq_query_options *opts);

/* Query results, page by page through jobs.getQueryResults (pageToken,
 * maxResults). Values are strings as BigQuery sends them (INT64 "42",
 * TIMESTAMP as float seconds, BYTES base64), NULL for SQL NULL; a RECORD or
 * REPEATED value comes as its JSON text. */
typedef struct mbq_bq_rows mbq_bq_rows;

/* Open the results of DONE query job `job` (page_size 0 = BigQuery's
 * default). Free with mbq_bq_rows_free. */
int mbq_bq_query_rows(mbq_bq_rows **out, mbq_bq *bq, const mbq_bq_job *job, int64_t page_size);

/* Advance to the next row: 1 when there is one, 0 at the end, negative on
 * error (fetching the next page failed, or a page is malformed: MBQ_EDATA). */
int mbq_bq_rows_next(mbq_bq_rows *rows);

/* The current row: number of columns, a column's name, its value (NULL for
 * NULL). Strings are owned by `rows`, valid until the next mbq_bq_rows_next.
 * Out-of-range `i` gives NULL. */
size_t mbq_bq_rows_ncols(const mbq_bq_rows *rows);
const char *mbq_bq_rows_name(const mbq_bq_rows *rows, size_t i);
const char *mbq_bq_rows_value(const mbq_bq_rows *rows, size_t i);

/* totalRows as reported by BigQuery (-1 unknown), pages fetched so far. */
int64_t mbq_bq_rows_total(const mbq_bq_rows *rows);
unsigned mbq_bq_rows_pages(const mbq_bq_rows *rows);

void mbq_bq_rows_free(mbq_bq_rows *rows);

/* Convenience (tests, checks): run `sql` as job `job_id` and return the first
 * column of the first row as a new string in *out (free()), NULL for SQL
 * NULL. MBQ_ENOTFOUND when the query returned no row. */
int mbq_bq_query_scalar(char **out, mbq_bq *bq, const char *job_id, const char *sql);

/* ---- permission probes (mbq check) -------------------------------------- */

/* A dry-run query job (configuration.dryRun): proves bigquery.jobs.create on
 * the project (roles/bigquery.jobUser) without running anything. 0, or the
 * error with *http_status (403: the permission is missing). */
int mbq_bq_dry_run(mbq_bq *bq, long *http_status, const char *sql);

/* Create and delete a scratch table (expiring in an hour) in `dataset`:
 * proves bigquery.tables.create and .delete there (roles/bigquery.dataEditor).
 * 0, or the error with *http_status (403: a permission is missing). */
int mbq_bq_probe_table_write(mbq_bq *bq, long *http_status, const char *dataset);

/* ---- load jobs ----------------------------------------------------------- */

typedef enum mbq_bq_write_disposition {
    MBQ_BQ_WRITE_APPEND = 0,
    MBQ_BQ_WRITE_TRUNCATE = 1,
    MBQ_BQ_WRITE_EMPTY = 2,
    /* Replace the rows, keep the table's schema, column descriptions, policy
     * tags, constraints and row access policies (JobConfigurationLoad
     * writeDisposition; WRITE_TRUNCATE "might not preserve" them). */
    MBQ_BQ_WRITE_TRUNCATE_DATA = 3,
} mbq_bq_write_disposition;

typedef enum mbq_bq_create_disposition {
    MBQ_BQ_CREATE_IF_NEEDED = 0,
    MBQ_BQ_CREATE_NEVER = 1,
} mbq_bq_create_disposition;

typedef struct mbq_bq_load_options {
    const char *dataset;            /* required */
    const char *table;              /* required */
    const char *path;               /* local NEWLINE_DELIMITED_JSON file, plain or gzip */
    const mbq_bq_schema *schema;    /* explicit schema (required) */
    mbq_bq_write_disposition write_disposition;   /* default WRITE_APPEND */
    mbq_bq_create_disposition create_disposition; /* default CREATE_IF_NEEDED */
    const char *location;           /* NULL = the client's */
} mbq_bq_load_options;

#define MBQ_BQ_LOAD_OPTIONS_INIT                                                                   \
    {NULL, NULL, NULL, NULL, MBQ_BQ_WRITE_APPEND, MBQ_BQ_CREATE_IF_NEEDED, NULL}

/* Load `opts->path` into dataset.table as load job `job_id`
 * (NEWLINE_DELIMITED_JSON, ignoreUnknownValues false, maxBadRecords 0; the
 * file is sent as-is, BigQuery detects gzip) and wait until it is DONE.
 *
 * The job id is looked up first: when it exists the file is not uploaded at
 * all and that job is waited for and returned (job->existed). Otherwise files
 * up to multipart_max_bytes go in one multipart/related request; larger ones
 * by resumable upload in upload_chunk_bytes chunks (308 + Range tell how far
 * the server is; after a dropped connection or a 5xx the client asks with
 * "Content-Range: bytes * / total" and resumes from there).
 *
 * Errors: MBQ_EIO when the file cannot be read (naming it), MBQ_EBQ when
 * BigQuery refuses the job or it fails (job id, reason, message, HTTP
 * status), MBQ_ENET/MBQ_ETIMEOUT after retries. Free *out with
 * mbq_bq_job_free. */
int mbq_bq_load_file(mbq_bq_job **out, mbq_bq *bq, const char *job_id,
                     const mbq_bq_load_options *opts);

/* Load rows that are still being produced, as load job `job_id`, through a
 * resumable upload session whose data is pulled from `stream` (see
 * mbq_http_body.stream: it blocks until data is there, returns 0 at the end,
 * MBQ_HTTP_STREAM_ABORT to abort); opts->path is not used. BigQuery's
 * multipart upload needs the body's length up front (Google's upload server
 * refuses a chunked-encoding body), which a stream does not have: the data
 * goes instead in pieces of upload_chunk_bytes (8 MiB when that is 0), each
 * PUT with its Content-Length and "Content-Range: bytes a-b/ *", the last
 * one with the total; 308 + Range, dropped connections and 5xx are handled
 * per piece as for files (the piece is in memory and can be sent again).
 * Only the last piece completes the upload, and it is only sent after the
 * stream has ended, so an aborted stream never creates a job (the session
 * is left unfinished and expires). Memory: one piece.
 *
 * Unlike mbq_bq_load_file: the job id is NOT looked up first (the caller
 * does it before producing rows), the stream cannot be restarted (retry from
 * the finished file with mbq_bq_load_file, which looks the id up), and
 * MBQ_ERR is returned when the stream aborted. A duplicate job id at the
 * end is looked up and waited for as usual. Waits until the job is DONE.
 * Free *out with mbq_bq_job_free. */
int mbq_bq_load_stream(mbq_bq_job **out, mbq_bq *bq, const char *job_id,
                       const mbq_bq_load_options *opts,
                       size_t (*stream)(void *stream_ud, char *dst, size_t cap), void *stream_ud);

/* ---- copy jobs ------------------------------------------------------------ */

/* Copy table `src` into table `dst` (both in `dataset`) as copy job
 * `job_id` with write disposition `wd` and createDisposition CREATE_NEVER,
 * and wait until it is DONE. With WRITE_TRUNCATE a copy replaces the
 * destination's rows (and schema, like a WRITE_TRUNCATE load) in one
 * atomic commit, which is how a load that had to go in several parts still
 * replaces a target at once. The job id is looked up first, as for
 * queries. Errors as mbq_bq_query. Free *out with mbq_bq_job_free. */
int mbq_bq_copy_table(mbq_bq_job **out, mbq_bq *bq, const char *job_id, const char *dataset,
                      const char *src, const char *dst, mbq_bq_write_disposition wd);

#endif
