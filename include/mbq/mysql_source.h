/* The MySQL/MariaDB source: connect, introspect a table, extract a cursor
 * window of it into a load-ready NDJSON file (gzip or plain).
 *
 * Thread use: one mbq_mysql per thread at a time (libmariadb connections are
 * not shared); mbq_mysql_connect may run in several threads at once. */
#ifndef MBQ_MYSQL_SOURCE_H
#define MBQ_MYSQL_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mbq/config.h"
#include "mbq/typemap.h"

typedef struct mbq_mysql mbq_mysql; /* opaque: one server connection */

/* ---- connection -------------------------------------------------------- */

/* Connect with `cfg` (host/port, or socket when cfg->socket is set; user,
 * password, database; TLS when cfg->ssl with ssl_ca/ssl_cert/ssl_key, and the
 * server certificate verified when cfg->ssl_verify_server_cert, a warning
 * logged when not; connect_timeout_s / read_timeout_s). The session is then
 * set up for faithful reading: utf8mb4, time_zone '+00:00' (TIMESTAMP values
 * arrive in UTC), a sql_mode without ANSI_QUOTES/PAD_CHAR_TO_FULL_LENGTH/
 * NO_BACKSLASH_ESCAPES (the quoting here relies on it) and REPEATABLE READ.
 * The password is registered as a secret.
 * On success *out is a new connection (close with mbq_mysql_close).
 * Errors: MBQ_EAUTH (access denied), MBQ_ENET (cannot reach the server,
 * TLS failure), MBQ_EMYSQL (other server errors), MBQ_ENOMEM; the message
 * names host:port (or the socket) and user and quotes the server's message:
 *   cannot connect to MySQL at 127.0.0.1:3307 as 'bob': Access denied ... */
int mbq_mysql_connect(mbq_mysql **out, const mbq_mysql_config *cfg);

/* Close and free; NULL is fine. */
void mbq_mysql_close(mbq_mysql *c);

/* "127.0.0.1:3306" or the socket path, for messages. Owned by `c`. */
const char *mbq_mysql_where(const mbq_mysql *c);

/* Free libmariadb's per-thread memory: call at the end of a thread (other
 * than the main one) that used a connection. */
void mbq_mysql_thread_end(void);

/* The server's connection id (for KILL in tests and logs). */
unsigned long mbq_mysql_thread_id(const mbq_mysql *c);

/* Run one statement that returns no rows (or whose rows are discarded).
 * Returns 0 or MBQ_EMYSQL/MBQ_ENET with the server's message. */
int mbq_mysql_exec(mbq_mysql *c, const char *sql);

/* ---- introspection ----------------------------------------------------- */

typedef struct mbq_column {
    char *name;           /* MySQL column name */
    char *bq_name;        /* BigQuery column name (mbq_typemap_bq_column_names) */
    char *data_type;      /* DATA_TYPE, lowercase: "bigint", "varchar", ... */
    char *column_type;    /* COLUMN_TYPE: "bigint(20) unsigned", "enum('a','b')" */
    char *charset;        /* CHARACTER_SET_NAME or NULL */
    bool is_unsigned;
    bool nullable;
    bool has_default;     /* COLUMN_DEFAULT is not SQL NULL */
    char *default_value;  /* COLUMN_DEFAULT as information_schema prints it, or NULL */
    int64_t max_length;   /* CHARACTER_MAXIMUM_LENGTH, -1 when none */
    int precision;        /* NUMERIC_PRECISION (DECIMAL p, BIT n), -1 when none */
    int scale;            /* NUMERIC_SCALE, -1 when none */
    int datetime_precision; /* DATETIME_PRECISION (fsp), -1 when none */
    char **values;        /* ENUM/SET members in order, unquoted; NULL otherwise */
    size_t n_values;
    bool is_json;         /* JSON (MySQL type, or MariaDB CHECK json_valid) */
    unsigned pk_ordinal;  /* 1-based position in the PRIMARY KEY, 0 = not in it */
    mbq_type_mapping map; /* the BigQuery type and value encoding */
} mbq_column;

typedef struct mbq_table_schema {
    char *database;
    char *table;
    mbq_column *columns;  /* in ORDINAL_POSITION order */
    size_t n_columns;
    size_t *pk;           /* indexes into columns, in PRIMARY KEY order */
    size_t n_pk;          /* 0 when the table has no PRIMARY KEY */
} mbq_table_schema;

/* Read the table's columns, PRIMARY KEY and JSON check constraints from
 * information_schema and map every column (typemap). On success *out is a
 * new schema (free with mbq_table_schema_free).
 * Errors: MBQ_ENOTFOUND "table 'db.t' does not exist (or the user cannot
 * see it)", MBQ_ESCHEMA for a column type with no mapping or BigQuery names
 * that collide (message names table and column), MBQ_EMYSQL/MBQ_ENET. */
int mbq_mysql_table_schema(mbq_table_schema **out, mbq_mysql *c, const char *database,
                           const char *table);

void mbq_table_schema_free(mbq_table_schema *s);

/* The column named `name` (case-insensitive, as MySQL compares column
 * names), or NULL. */
const mbq_column *mbq_table_schema_column(const mbq_table_schema *s, const char *name);

typedef enum mbq_cursor_kind {
    MBQ_CURSOR_NONE = 0,      /* no cursor: full-table extraction */
    MBQ_CURSOR_TIMESTAMP = 1, /* DATETIME, TIMESTAMP, DATE: compared as quoted text */
    MBQ_CURSOR_INTEGER = 2,   /* any integer type: compared as a number */
} mbq_cursor_kind;

/* Check the configured primary key and cursor against the table:
 *  - every name in `pk` (n_pk names) must be a column: else MBQ_ESCHEMA
 *    "table 'db.t': primary key column 'x' does not exist";
 *  - n_pk == 0 is an error (MERGE needs a key);
 *  - a configured key that differs from the table's real PRIMARY KEY (other
 *    columns or other order, or the table has none) is accepted with a
 *    warning in the log: a unique key works for MERGE and users do
 *    configure one for tables without a PRIMARY KEY; what is not checked
 *    is uniqueness, which the warning says;
 *  - `cursor` (NULL = none) must be a column of a timestamp-like or integer
 *    type: else MBQ_ESCHEMA naming it and its type.
 * *kind_out (may be NULL) receives the cursor kind. */
int mbq_mysql_check_table(mbq_cursor_kind *kind_out, const mbq_table_schema *s,
                          const char *const *pk, size_t n_pk, const char *cursor);

/* Is `key` (n_key column names) guaranteed unique in the table: all its
 * columns NOT NULL and a PRIMARY or UNIQUE index on exactly those columns?
 * MERGE by a key that is not unique would collapse rows (and BigQuery
 * refuses such a MERGE), so the sync refuses to use one. *out false when
 * not; errors only for a failed query (MBQ_EMYSQL/MBQ_ENET). */
int mbq_mysql_key_is_unique(bool *out, mbq_mysql *c, const mbq_table_schema *s,
                            const char *const *key, size_t n_key);

/* The cursor kind a column supports: NONE when it can't be a cursor. */
mbq_cursor_kind mbq_cursor_kind_of(const mbq_column *col);

/* ---- extraction -------------------------------------------------------- */

typedef struct mbq_extract_options {
    const mbq_table_schema *schema;  /* required; database and table come from it */
    const char *const *pk;           /* ORDER BY tie-breaker columns; NULL = schema's PK */
    size_t n_pk;
    const char *cursor;              /* cursor column; NULL = the whole table */
    mbq_cursor_kind cursor_kind;     /* NONE = detect from the column */
    const char *low;                 /* inclusive lower bound (MySQL text form);
                                        NULL = from the start, rows with a NULL
                                        cursor included */
    const char *high_limit;          /* optional inclusive cap for the high-water mark */
    const char *path;                /* final file; written as <path>.tmp, then renamed */
    bool compress;                   /* gzip (level 1) or plain NDJSON */
    int compress_level;              /* 1..9, 0 = default (1: extraction is CPU-bound) */
    size_t chunk_bytes;              /* writer hand-off size, 0 = 1 MiB */
    const char *log_table;           /* name for log lines; NULL = schema->table */
    bool want_tail;                  /* compute tail_from / tail_checksum (needs a cursor) */
    int64_t tail_lookback_ms;        /* tail_from = high - this, for timestamp cursors */
    /* Optional tap on the file's bytes (pipeline.h): called on the writer
     * thread with every piece written to <path>.tmp (compressed when gzip),
     * in order, right after it was written; it may block (back-pressure: the
     * encoder stalls once the writer's queue is full). A negative return
     * fails the extract with that code. NULL = none. */
    int (*sink)(void *sink_ud, const void *data, size_t len);
    void *sink_ud;
    /* Optional: called on the calling thread after every chunk handed to
     * the writer, with the rows and uncompressed bytes so far (a progress
     * display). NULL = none. */
    void (*progress)(void *progress_ud, uint64_t rows, uint64_t raw_bytes);
    void *progress_ud;
    /* The largest NDJSON row accepted; 0 = BigQuery's limit for a JSON row
     * in a load job (100 MB). A larger row fails the extract with
     * MBQ_EDATA naming the table and the row's key, rather than a load job
     * that BigQuery would refuse. */
    size_t max_row_bytes;
    /* Optional SQL condition ANDed to the rows read (a backfill chunk's key
     * range, mbq_mysql_chunk_where); built by mbq code, never from user
     * text. NULL = none. */
    const char *where;
    /* Read the snapshot's binlog position inside it (change data capture:
     * MariaDB's binlog_snapshot_file/_position status, which name the
     * binlog position of exactly the transactions the snapshot sees) into
     * the result's binlog_file/binlog_pos/binlog_gtid. */
    bool want_binlog_pos;
} mbq_extract_options;

#define MBQ_EXTRACT_OPTIONS_INIT                                                                   \
    {NULL, NULL, 0, NULL, MBQ_CURSOR_NONE, NULL, NULL, NULL, true, 0,                             \
     0,    NULL, false, 0, NULL, NULL, NULL, NULL, 0, NULL, false}

typedef struct mbq_extract_result {
    uint64_t rows;
    uint64_t bytes;          /* size of the file written (compressed when gzip) */
    uint64_t raw_bytes;      /* uncompressed NDJSON bytes */
    char *checksum;          /* "sha256:<hex>" of the uncompressed NDJSON; NULL when no rows */
    char *low;               /* smallest cursor value extracted, NULL when no rows/no cursor */
    char *high;              /* the high-water mark taken in the snapshot; NULL when no rows
                                or no cursor */
    uint64_t zero_dates;     /* zero dates written as NULL */
    uint64_t not_json;       /* JSON-column values that were not JSON, written as strings */
    char *not_json_first;    /* "column 'c' of the row with k=v": the first of them */
    int64_t elapsed_ms;
    bool file_written;       /* false when rows == 0: no file is created */
    /* With want_tail: the next run's window will start at tail_from
     * (high - tail_lookback_ms, or high for integer cursors), and
     * tail_checksum is the checksum of exactly the NDJSON lines of the rows
     * with cursor >= tail_from, computed like `checksum`. If nothing changes
     * in the source, the next extract of [tail_from, high] has this very
     * checksum: that is how an unchanged table costs no BigQuery job. */
    char *tail_from;
    char *tail_checksum;
    uint64_t tail_rows;
    /* With want_binlog_pos: the snapshot's binlog position (every
     * transaction that committed before it is in the snapshot, none after)
     * and the server's gtid_binlog_pos ("" when none); set also when the
     * table is empty. */
    char *binlog_file;
    uint64_t binlog_pos;
    char *binlog_gtid;
} mbq_extract_result;

/* Extract one table window into opts->path:
 *   START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY (REPEATABLE READ)
 *   high := SELECT MAX(cursor) WHERE cursor >= low [AND cursor <= high_limit]
 *   SELECT cols WHERE cursor >= low AND cursor <= high ORDER BY cursor, pk
 * streamed with mysql_use_result (memory does not grow with the table), each
 * row encoded as one NDJSON line keyed by BigQuery column names (NULL values
 * are omitted), gzip-compressed and written by a second thread, into
 * <path>.tmp, fsync'd, renamed to <path>, directory fsync'd.
 * Without a cursor: every row, ORDER BY pk.
 * No rows: 0 is returned, out->rows = 0, no file is created (an existing
 * file at <path> is left alone) and high is NULL.
 * The caller frees the result's strings with mbq_extract_result_free.
 * Errors: MBQ_ECONFIG (bad options, a non-integer bound for an integer
 * cursor), MBQ_EMYSQL/MBQ_ENET (server error or connection lost, also
 * mid-stream), MBQ_EIO (disk), MBQ_EDATA (a value that cannot be encoded),
 * MBQ_ENOMEM. On any error nothing is left under <path> or <path>.tmp. */
int mbq_mysql_extract(mbq_extract_result *out, mbq_mysql *c, const mbq_extract_options *opts);

void mbq_extract_result_free(mbq_extract_result *r);

/* ---- the catalog (table discovery) ---------------------------------- */

typedef struct mbq_catalog_column {
    char *name;
    char *data_type;     /* information_schema DATA_TYPE, lowercase ("datetime", "int") */
    bool nullable;
    bool on_update_now;  /* ON UPDATE CURRENT_TIMESTAMP */
} mbq_catalog_column;

typedef struct mbq_catalog_index {
    char *name;          /* "PRIMARY" for the primary key */
    char **columns;      /* in index order */
    size_t n_columns;
} mbq_catalog_index;

typedef struct mbq_catalog_table {
    char *name;
    mbq_catalog_column *columns; /* in ordinal order */
    size_t n_columns;
    mbq_catalog_index *unique;   /* the unique indexes (PRIMARY included), by name */
    size_t n_unique;
} mbq_catalog_table;

typedef struct mbq_catalog {
    mbq_catalog_table *tables;   /* base tables (no views), sorted by name (bytes) */
    size_t n;
} mbq_catalog;

/* Every base table of `database` with its columns and unique indexes, read
 * from information_schema in three queries (a user sees the tables it has
 * a privilege on). Free *out with mbq_catalog_free. MBQ_EMYSQL etc. with a
 * message naming the database. */
int mbq_mysql_catalog(mbq_catalog **out, mbq_mysql *c, const char *database);
void mbq_catalog_free(mbq_catalog *cat);

#endif
