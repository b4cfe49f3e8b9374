/* The binlog reader: a MySQL/MariaDB replication client (libmariadb's
 * mariadb_rpl_* API) that turns row events into the same values the
 * snapshot path reads, for change data capture.
 *
 * One mapping, two readers: every value a row event carries is handed out in
 * the text form the extract's SELECT receives for that column (mysql_extract.c
 * build_select: FLOAT as CAST(... AS DOUBLE), spatial as ST_AsText, TIMESTAMP
 * in UTC, strings converted to utf8mb4, ENUM/SET as member text, BIT as its
 * big-endian bytes, zero dates as '0000-00-00...'), so mbq_typemap_encode
 * writes the very same NDJSON for a row whether it came from a SELECT or from
 * the binlog.
 *
 * Requirements on the source (mbq_binlog_check): log_bin=ON,
 * binlog_format=ROW, binlog_row_image=FULL and binlog_row_metadata=FULL (the
 * TABLE_MAP event then names the columns: rows decode correctly even while
 * the reader is behind a DDL), and a user with REPLICATION SLAVE and
 * BINLOG MONITOR (MariaDB; REPLICATION CLIENT on MySQL), and
 * log_bin_compress=OFF (compressed events are not decoded).
 *
 * Sources: MariaDB (10.5 or later: the TABLE_MAP metadata, 10.11 tested).
 * MySQL's binary JSON column format and its GTID-only snapshot position are
 * not read; a MySQL JSON column fails with MBQ_EDATA naming it. XA
 * transactions are not followed: their rows are logged at PREPARE and may
 * still roll back, so rows of one on a followed table fail with MBQ_EDATA
 * (on other tables they are passed over).
 *
 * Every event's CRC32 is verified when the source writes checksums. Events
 * are parsed from the stream here (libmariadb only sends the dump request):
 * see src/mysql/binlog.c for why.
 *
 * Thread use: one reader per thread; a reader owns its own connections (the
 * stream, and a second one for catalog lookups of INET4/INET6/UUID
 * columns, which the TABLE_MAP shows as BINARY(n)). */
#ifndef MBQ_BINLOG_H
#define MBQ_BINLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mbq/config.h"
#include "mbq/mysql_source.h"

/* A position in the source's binlog: the file name and the byte offset of
 * the next event to read. Positions compare by the file's sequence number
 * (the numeric suffix, "mysql-bin.000012" -> 12), then by offset. */
typedef struct mbq_binlog_pos {
    char file[256];  /* "" = unknown */
    uint64_t pos;
} mbq_binlog_pos;

/* <0, 0, >0 as a is before, at, after b. An empty file sorts first. */
int mbq_binlog_pos_cmp(const mbq_binlog_pos *a, const mbq_binlog_pos *b);

/* ---- the source's settings and snapshot positions --------------------- */

/* Check the server is set up for CDC with the connected user: log_bin,
 * binlog_format=ROW, binlog_row_image=FULL, binlog_row_metadata=FULL, the
 * replication privileges. 0 when all hold; MBQ_ECONFIG with a message naming
 * the first setting that is wrong, its value and what it must be
 *   "binlog_format is STATEMENT; change data capture needs ROW"
 * (or MBQ_EAUTH naming the missing privilege and the GRANT to run). */
int mbq_binlog_check(mbq_mysql *c);

/* The binlog position of the snapshot `c` holds: call after START
 * TRANSACTION WITH CONSISTENT SNAPSHOT on the same connection (MariaDB:
 * binlog_snapshot_file/_position; every transaction committed up to it is in
 * the snapshot, none after). Also the current GTID position (gtid_binlog_pos)
 * into gtid (may be NULL), "" when none. */
int mbq_binlog_snapshot_pos(mbq_binlog_pos *out, char **gtid, mbq_mysql *c);

/* The server's current end of binlog (SHOW MASTER STATUS). */
int mbq_binlog_current_pos(mbq_binlog_pos *out, mbq_mysql *c);

/* Is the binlog file `file` still on the server (SHOW BINARY LOGS)? A
 * reader's start position in a purged file cannot be served. */
int mbq_binlog_file_exists(bool *out, mbq_mysql *c, const char *file);

/* ---- reading ---------------------------------------------------------- */

typedef struct mbq_binlog mbq_binlog; /* opaque: one replication connection */

typedef struct mbq_binlog_options {
    const mbq_mysql_config *mysql; /* connection settings (same as the snapshot path) */
    uint32_t server_id;            /* the replica id the reader announces; unique among the
                                      source's replicas */
    mbq_binlog_pos start;          /* first event to read: a transaction boundary;
                                      file "" = the source's current end */
    int heartbeat_ms;              /* the source sends a heartbeat when idle this long
                                      (0 = 5000) */
    /* Only row events of these tables are decoded; others are passed over
     * without decoding (their transactions still produce COMMIT events).
     * An entry "db.table" names both; an entry "table" is a table of
     * `database` (of any database when that is NULL). tables NULL = every
     * table of `database` (of every database when that is NULL too). Exact,
     * case-sensitive names, as the TABLE_MAP carries them. DDL events are
     * never filtered. The strings are copied at open. */
    const char *database;
    const char *const *tables;
    size_t n_tables;
} mbq_binlog_options;

typedef enum mbq_binlog_kind {
    MBQ_BINLOG_ROWS = 1,   /* row changes of one table (one rows event) */
    MBQ_BINLOG_COMMIT,     /* a transaction ended (XID / COMMIT): a safe resume point */
    MBQ_BINLOG_DDL,        /* a statement that is not BEGIN/COMMIT (ALTER, DROP, RENAME,
                              TRUNCATE, CREATE ...): its own transaction, a resume point */
    MBQ_BINLOG_HEARTBEAT,  /* nothing new; the source is idle at `pos`, which is then its
                              end of binlog: a reader that stops at an end position read
                              before sees a COMMIT/DDL at or past it, or a HEARTBEAT at it
                              (events that are not handed out, such as a new file's
                              format event, can sit between the last COMMIT and the end) */
    MBQ_BINLOG_ROTATE,     /* the source moved to a new file; `pos` is in it. The first
                              event after open is a ROTATE to the start position. */
} mbq_binlog_kind;

/* One column value in the snapshot path's text form (see the top). */
typedef struct mbq_binlog_value {
    const char *data;  /* NULL = SQL NULL */
    size_t len;
} mbq_binlog_value;

typedef struct mbq_binlog_row {
    char op;                        /* 'I' insert, 'U' update, 'D' delete */
    const mbq_binlog_value *before; /* U, D: the old row (n_columns values); I: NULL */
    const mbq_binlog_value *after;  /* I, U: the new row; D: NULL */
} mbq_binlog_row;

typedef struct mbq_binlog_event {
    mbq_binlog_kind kind;
    mbq_binlog_pos pos;      /* position after this event; for COMMIT/DDL/HEARTBEAT/ROTATE
                                the place to resume from */
    int64_t event_ms;        /* the event's header timestamp (when the source wrote it),
                                ms since the epoch; 0 for heartbeats */
    const char *gtid;        /* the transaction's GTID ("domain-server-seq"), or NULL */
    /* ROWS and DDL: */
    const char *database;
    /* ROWS: */
    const char *table;
    size_t n_columns;
    const char *const *column_names;  /* from the TABLE_MAP's metadata, in table order */
    size_t n_rows;
    const mbq_binlog_row *rows;
    /* DDL: the statement text, as the source logged it; `database` is then
     * the session's default database when it ran ("" when none): the
     * statement may name another one (ALTER TABLE db2.t ...). */
    const char *statement;
} mbq_binlog_event;

/* Connect and ask for the binlog from opts->start. Errors: MBQ_EAUTH,
 * MBQ_ENET, MBQ_ENOTFOUND when the start file was purged ("binlog file
 * 'mysql-bin.000003' is no longer on the server: ... re-snapshot with
 * mbq-state reset TABLE --full"), MBQ_ECONFIG (mbq_binlog_check). */
int mbq_binlog_open(mbq_binlog **out, const mbq_binlog_options *opts);

/* Wait for the next event (at most timeout_ms; 0 = block). With TLS the
 * wait can last until the next event or heartbeat (OpenSSL's buffer is not
 * visible to poll). 0 with *ev
 * filled (valid until the next call or close), MBQ_ETIMEOUT when the wait
 * timed out (no event; *ev untouched), MBQ_ENET when the connection was lost (close and
 * open again from the last resume point), MBQ_EDATA for an event that
 * cannot be decoded (message names the table, column and position). */
int mbq_binlog_next(mbq_binlog *b, mbq_binlog_event *ev, int timeout_ms);

/* Close and free; NULL is fine. */
void mbq_binlog_close(mbq_binlog *b);

/* The server's id of the reader's streaming connection (the "Binlog Dump"
 * thread of SHOW PROCESSLIST), for logs and for KILL in tests. */
unsigned long mbq_binlog_thread_id(const mbq_binlog *b);

#endif
