/* The binlog reader (binlog.h): one replication connection that asks the
 * source for its binlog from a position (COM_BINLOG_DUMP, sent by
 * libmariadb's mariadb_rpl_open) and reads the event stream packet by
 * packet. The events are parsed here rather than by mariadb_rpl_fetch:
 * its parsing changed between Connector/C releases (3.3.5 reworked it and
 * several event types were misparsed before, e.g. GTID_LIST's count), and
 * the reader needs every event's exact position and the raw row images,
 * which it decodes itself (binlog_rows.c) into the snapshot path's text.
 *
 *   open:  connect, check the settings, SET @master_binlog_checksum,
 *          @mariadb_slave_capability, @master_heartbeat_period, dump
 *   next:  [poll with the caller's timeout] read one packet = one event;
 *          TABLE_MAP -> cache; rows of a wanted table -> ROWS;
 *          XID / COMMIT -> COMMIT; other statements -> DDL;
 *          ROTATE, HEARTBEAT -> themselves; the rest is passed over. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* mysql.h first: ma_pvio.h and mariadb_rpl.h use its types */
#include <mysql.h>

#include <errmsg.h>
#include <ma_pvio.h>
#include <mariadb_rpl.h>
#include <mysqld_error.h>
#include <zlib.h>

#include "mbq/binlog.h"
#include "mbq/error.h"
#include "mbq/log.h"
#include "mbq/util.h"

#include "binlog_internal.h"
#include "mysql_internal.h"
#include "mbq/banned.h"

#define HEADER_LEN 19   /* v4 event header: every MySQL 5+ / MariaDB binlog */
#define TABLE_CACHE 256 /* TABLE_MAPs kept; each transaction sends its own again */

struct mbq_binlog {
    mbq_mysql *c;
    mbq_mysql *meta;        /* a second connection for catalog lookups (binlog_ext.c) */
    bl_ext_cache ext;
    MARIADB_RPL *rpl;
    mbq_binlog_pos cur;     /* position of the next event */
    bool checksum;          /* events end with a CRC32 */
    bool tls;               /* poll() cannot see data OpenSSL holds */
    char *database;         /* the filter (opts) */
    char **tables;
    size_t n_tables;
    bl_table *tmaps;        /* TABLE_MAP cache */
    size_t n_tmaps;
    bl_charsets cs;
    bl_rows rows;
    char gtid[80];          /* the current transaction's GTID */
    bool have_gtid;
    bool in_xa;             /* the current group is an XA PREPARE */
    mbq_buf stmt, db;       /* a DDL event's statement and database */
};

/* ---- filter and table maps --------------------------------------------- */

static bool wanted(const mbq_binlog *b, const char *db, const char *table)
{
    if (!b->tables) {
        return !b->database || strcmp(b->database, db) == 0;
    }
    for (size_t i = 0; i < b->n_tables; i++) {
        const char *t = b->tables[i], *dot = strchr(t, '.');
        if (dot) {
            if (strncmp(t, db, (size_t)(dot - t)) == 0 && db[dot - t] == '\0' &&
                strcmp(dot + 1, table) == 0)
                return true;
        } else if ((!b->database || strcmp(b->database, db) == 0) && strcmp(t, table) == 0) {
            return true;
        }
    }
    return false;
}

static void tmaps_clear(mbq_binlog *b)
{
    for (size_t i = 0; i < b->n_tmaps; i++)
        bl_table_free(&b->tmaps[i]);
    b->n_tmaps = 0;
}

/* Every transaction sends its tables' TABLE_MAPs again: one byte for byte
 * equal to the cached map of its table id is not parsed again (with small
 * transactions the parse would cost more than the rows). */
static int on_table_map(mbq_binlog *b, const uint8_t *body, size_t len)
{
    bl_table t;
    uint64_t id = len >= 6 ? bl_le48(body) : 0;
    for (size_t i = 0; i < b->n_tmaps; i++)
        if (b->tmaps[i].id == id && b->tmaps[i].raw_len == len &&
            memcmp(b->tmaps[i].raw, body, len) == 0)
            return 0;
    int rc = bl_table_parse(&t, body, len, &b->cs);
    if (rc < 0)
        return rc;
    if (!(t.raw = malloc(len ? len : 1))) {
        bl_table_free(&t);
        return mbq_error_set(MBQ_ENOMEM, "out of memory");
    }
    memcpy(t.raw, body, len);
    t.raw_len = len;
    t.wanted = wanted(b, t.database, t.table);
    if (t.wanted && (rc = bl_ext_resolve(&b->ext, b->meta, &t)) < 0) {
        bl_table_free(&t);
        return rc;
    }
    for (size_t i = 0; i < b->n_tmaps; i++)
        if (b->tmaps[i].id == t.id) {
            bl_table_free(&b->tmaps[i]);
            b->tmaps[i] = t;
            return 0;
        }
    if (b->n_tmaps == TABLE_CACHE)
        tmaps_clear(b); /* ids of old transactions; the next ones come with their maps */
    if (!b->tmaps && !(b->tmaps = calloc(TABLE_CACHE, sizeof *b->tmaps))) {
        bl_table_free(&t);
        return mbq_error_set(MBQ_ENOMEM, "out of memory");
    }
    b->tmaps[b->n_tmaps++] = t;
    return 0;
}

static const bl_table *find_tmap(const mbq_binlog *b, uint64_t id)
{
    for (size_t i = 0; i < b->n_tmaps; i++)
        if (b->tmaps[i].id == id)
            return &b->tmaps[i];
    return NULL;
}

/* ---- open / close ------------------------------------------------------ */

static int setup_session(mbq_binlog *b, int heartbeat_ms)
{
    MYSQL *my = b->c->my;
    MYSQL_RES *res = NULL;
    MYSQL_ROW row;
    char sql[256];
    int rc = 0;
    /* A replica that says which checksum it expects gets the events with
     * their CRC32 (else MariaDB refuses a checksum-unaware replica when
     * binlog_checksum is on). Capability 4 (MARIA_SLAVE_CAPABILITY_GTID):
     * GTID events instead of BEGIN, as MariaDB replicas get them. The
     * heartbeat period is in nanoseconds (sql/sql_repl.cc get_heartbeat_period). */
    snprintf(sql, sizeof sql,
             "SET @master_binlog_checksum = @@global.binlog_checksum, "
             "@mariadb_slave_capability = 4, @master_heartbeat_period = %lld",
             (long long)heartbeat_ms * 1000000LL);
    if (mysql_query(my, sql) != 0)
        return my_error(b->c, "cannot set up the replication session");
    if (mysql_query(my, "SELECT @@global.binlog_checksum") != 0 || !(res = mysql_store_result(my)))
        return my_error(b->c, "cannot read binlog_checksum");
    row = mysql_fetch_row(res);
    /* until the first FORMAT_DESCRIPTION event says it for its file */
    b->checksum = row && row[0] && strcasecmp(row[0], "NONE") != 0;
    mysql_free_result(res);
    return rc;
}

static int check_start(mbq_binlog *b, const mbq_binlog_options *o)
{
    bool exists = false;
    int rc;
    if (!o->start.file[0])
        return mbq_binlog_current_pos(&b->cur, b->c);
    b->cur = o->start;
    if (b->cur.pos < 4)
        b->cur.pos = 4; /* after the file's magic number */
    if ((rc = mbq_binlog_file_exists(&exists, b->c, o->start.file)) < 0)
        return rc;
    if (!exists)
        return mbq_error_set(MBQ_ENOTFOUND,
                             "binlog file '%s' is no longer on the server (MySQL at %s): the "
                             "changes since position %llu were purged before they were read; "
                             "re-snapshot with mbq-state reset TABLE --full",
                             o->start.file, b->c->where, (unsigned long long)o->start.pos);
    return 0;
}

static int copy_filter(mbq_binlog *b, const mbq_binlog_options *o)
{
    if (o->database && !(b->database = mbq_strdup(o->database)))
        return MBQ_ENOMEM;
    if (!o->tables)
        return 0;
    if (!(b->tables = calloc(o->n_tables + 1, sizeof *b->tables)))
        return mbq_error_set(MBQ_ENOMEM, "out of memory");
    for (size_t i = 0; i < o->n_tables; i++, b->n_tables++)
        if (!(b->tables[i] = mbq_strdup(o->tables[i])))
            return MBQ_ENOMEM;
    return 0;
}

static int start_dump(mbq_binlog *b, uint32_t server_id)
{
    if (!(b->rpl = mariadb_rpl_init_ex(b->c->my, MARIADB_RPL_VERSION)))
        return my_error(b->c, "cannot start the replication client");
    if (mariadb_rpl_optionsv(b->rpl, MARIADB_RPL_FILENAME, b->cur.file, strlen(b->cur.file)) ||
        mariadb_rpl_optionsv(b->rpl, MARIADB_RPL_START, (unsigned long)b->cur.pos) ||
        mariadb_rpl_optionsv(b->rpl, MARIADB_RPL_SERVER_ID, (unsigned int)server_id) ||
        mariadb_rpl_optionsv(b->rpl, MARIADB_RPL_FLAGS, 0u))
        return mbq_error_set(MBQ_EINTERNAL, "cannot set the replication options");
    if (mariadb_rpl_open(b->rpl) != 0)
        return my_error(b->c, "cannot request the binlog");
    return 0;
}

int mbq_binlog_open(mbq_binlog **out, const mbq_binlog_options *opts)
{
    int rc = 0;
    mbq_binlog *b = calloc(1, sizeof *b);
    *out = NULL;
    if (!b)
        return mbq_error_set(MBQ_ENOMEM, "out of memory");
    int hb = opts->heartbeat_ms > 0 ? opts->heartbeat_ms : 5000;
    if (!opts->mysql || opts->server_id == 0) {
        rc = mbq_error_set(MBQ_ECONFIG, "the binlog reader needs a connection and a non-zero "
                                        "server_id");
        goto done;
    }
    /* The stream is silent between heartbeats: a read that waits 3 of them
     * (and at least 10 s) means the connection is gone. */
    mbq_mysql_config cfg = *opts->mysql;
    cfg.read_timeout_s = (hb * 3 + 999) / 1000 < 10 ? 10 : (hb * 3 + 999) / 1000;
    if ((rc = mbq_mysql_connect(&b->c, &cfg)) < 0 ||
        (rc = mbq_mysql_connect(&b->meta, opts->mysql)) < 0)
        goto done;
    b->tls = opts->mysql->ssl;
    if ((rc = copy_filter(b, opts)) < 0 || (rc = mbq_binlog_check(b->c)) < 0 ||
        (rc = check_start(b, opts)) < 0 || (rc = bl_charsets_load(&b->cs, b->c->my)) < 0 ||
        (rc = setup_session(b, hb)) < 0 || (rc = start_dump(b, opts->server_id)) < 0)
        goto done;
    *out = b;
    b = NULL;
done:
    mbq_binlog_close(b);
    return rc;
}

unsigned long mbq_binlog_thread_id(const mbq_binlog *b)
{
    return mbq_mysql_thread_id(b->c);
}

void mbq_binlog_close(mbq_binlog *b)
{
    if (!b)
        return;
    if (b->rpl)
        mariadb_rpl_close(b->rpl);
    mbq_mysql_close(b->c);
    mbq_mysql_close(b->meta);
    bl_ext_clear(&b->ext);
    tmaps_clear(b);
    free(b->tmaps);
    bl_charsets_free(&b->cs);
    bl_rows_free(&b->rows);
    for (size_t i = 0; i < b->n_tables; i++)
        free(b->tables[i]);
    free(b->tables);
    free(b->database);
    mbq_buf_free(&b->stmt);
    mbq_buf_free(&b->db);
    free(b);
}

/* ---- reading ------------------------------------------------------------ */

/* Wait until a packet can be read or timeout_ms passed (0 when ready).
 * Bytes libmariadb already read ahead into its cache are not visible to
 * poll(), so they count as ready; with TLS, OpenSSL's buffer is not
 * visible at all and the read blocks until the next event or heartbeat. */
static int wait_readable(mbq_binlog *b, int timeout_ms)
{
    MARIADB_PVIO *pvio = b->c->my->net.pvio;
    if (timeout_ms <= 0 || b->tls)
        return 0;
    if (pvio && pvio->cache && pvio->cache + pvio->cache_size > pvio->cache_pos)
        return 0;
    struct pollfd pfd = {.fd = (int)mysql_get_socket(b->c->my), .events = POLLIN};
    int n;
    do
        n = poll(&pfd, 1, timeout_ms);
    while (n < 0 && errno == EINTR);
    if (n == 0)
        return MBQ_ETIMEOUT;
    return 0; /* readable, or an error the read will report */
}

static int read_error(mbq_binlog *b)
{
    unsigned e = mysql_errno(b->c->my);
    const char *msg = mysql_error(b->c->my);
    if (e == 1236 /* ER_MASTER_FATAL_ERROR_READING_BINLOG */ &&
        (strstr(msg, "purged") || strstr(msg, "Could not find first log file") ||
         strstr(msg, "could not find next log")))
        return mbq_error_set(MBQ_ENOTFOUND,
                             "binlog file '%s' is no longer on the server (MySQL at %s: %s): "
                             "the changes from position %llu were purged before they were "
                             "read; re-snapshot with mbq-state reset TABLE --full",
                             b->cur.file, b->c->where, msg, (unsigned long long)b->cur.pos);
    if (e == 1236)
        return mbq_error_set(MBQ_EMYSQL, "the source cannot send its binlog from '%s' position "
                                         "%llu: %s (MySQL at %s, error %u)",
                             b->cur.file, (unsigned long long)b->cur.pos, msg, b->c->where, e);
    int rc = my_error(b->c, "binlog stream broken");
    if (rc != MBQ_EAUTH && e >= 2000 && e < 3000)
        rc = mbq_error_set(MBQ_ENET, "%s", mbq_error_last()); /* client-side: connection lost */
    return rc;
}

static int set_file(mbq_binlog_pos *pos, const uint8_t *name, size_t len)
{
    if (len >= sizeof pos->file)
        return mbq_error_set(MBQ_EDATA, "binlog file name of %zu bytes is too long", len);
    memcpy(pos->file, name, len);
    pos->file[len] = '\0';
    return 0;
}

static void fill_common(mbq_binlog *b, mbq_binlog_event *ev, mbq_binlog_kind kind, uint32_t ts)
{
    memset(ev, 0, sizeof *ev);
    ev->kind = kind;
    ev->pos = b->cur;
    ev->event_ms = (int64_t)ts * 1000;
    ev->gtid = b->have_gtid ? b->gtid : NULL;
}

/* A QUERY event: BEGIN is nothing, COMMIT/ROLLBACK end a transaction of a
 * non-transactional engine, anything else is a statement of its own (DDL).
 * 1 when an event was filled. */
static int on_query(mbq_binlog *b, mbq_binlog_event *ev, const uint8_t *p, size_t len, uint32_t ts)
{
    if (len < 13)
        return mbq_error_set(MBQ_EDATA, "malformed QUERY event at '%s' position %llu", b->cur.file,
                             (unsigned long long)b->cur.pos);
    size_t dbl = p[8], stl = bl_le16(p + 11);
    if (len < 13 + stl + dbl + 1)
        return mbq_error_set(MBQ_EDATA, "malformed QUERY event at '%s' position %llu", b->cur.file,
                             (unsigned long long)b->cur.pos);
    const char *db = (const char *)p + 13 + stl, *q = db + dbl + 1;
    size_t ql = len - (13 + stl + dbl + 1);
    if ((ql == 5 && strncasecmp(q, "BEGIN", 5) == 0) ||
        (ql >= 3 && strncasecmp(q, "XA ", 3) == 0) ||
        (ql >= 10 && strncasecmp(q, "SAVEPOINT ", 10) == 0) ||
        (ql >= 12 && strncasecmp(q, "ROLLBACK TO ", 12) == 0))
        return 0;
    if ((ql == 6 && strncasecmp(q, "COMMIT", 6) == 0) ||
        (ql == 8 && strncasecmp(q, "ROLLBACK", 8) == 0)) {
        fill_common(b, ev, MBQ_BINLOG_COMMIT, ts);
        b->have_gtid = false;
        return 1;
    }
    mbq_buf_clear(&b->stmt);
    mbq_buf_clear(&b->db);
    if (mbq_buf_append(&b->stmt, q, ql) < 0 || mbq_buf_append(&b->db, db, dbl) < 0 ||
        mbq_buf_grow(&b->stmt, 1) < 0 || mbq_buf_grow(&b->db, 1) < 0)
        return MBQ_ENOMEM;
    /* Column types may have changed without changing the TABLE_MAP (a
     * BINARY(16) made a UUID): forget both caches. */
    bl_ext_clear(&b->ext);
    tmaps_clear(b);
    fill_common(b, ev, MBQ_BINLOG_DDL, ts);
    ev->statement = b->stmt.ptr;
    ev->database = b->db.ptr;
    b->have_gtid = false;
    return 1;
}

static int on_rows(mbq_binlog *b, mbq_binlog_event *ev, int type, const uint8_t *p, size_t len,
                   uint32_t ts)
{
    if (len < 8)
        return mbq_error_set(MBQ_EDATA, "malformed rows event at '%s' position %llu", b->cur.file,
                             (unsigned long long)b->cur.pos);
    const bl_table *t = find_tmap(b, bl_le48(p));
    if (!t)
        return mbq_error_set(MBQ_EDATA, "rows event without its TABLE_MAP at '%s' position %llu",
                             b->cur.file, (unsigned long long)b->cur.pos);
    if (!t->wanted)
        return 0;
    if (b->in_xa)
        return mbq_error_set(MBQ_EDATA, "an XA transaction (GTID %s) changes '%s.%s' at '%s' "
                                        "position %llu: change data capture does not follow XA "
                                        "transactions",
                             b->gtid, t->database, t->table, b->cur.file,
                             (unsigned long long)b->cur.pos);
    int rc = bl_rows_decode(&b->rows, t, type, p, len, &b->cs);
    if (rc < 0)
        return mbq_error_wrap(rc, "table '%s.%s', binlog '%s' position %llu: ", t->database,
                              t->table, b->cur.file, (unsigned long long)b->cur.pos);
    fill_common(b, ev, MBQ_BINLOG_ROWS, ts);
    ev->database = t->database;
    ev->table = t->table;
    ev->n_columns = t->n;
    ev->column_names = t->names;
    ev->n_rows = b->rows.n_rows;
    ev->rows = b->rows.rows;
    return 1;
}

/* One event (header + body, checksum removed): 1 when *ev was filled, 0
 * when the event is passed over, or an error. */
static int on_event(mbq_binlog *b, mbq_binlog_event *ev, const uint8_t *e, size_t len)
{
    uint32_t ts = bl_le32(e), log_pos = bl_le32(e + 13);
    uint8_t type = e[4];
    uint16_t flags = (uint16_t)bl_le16(e + 17);
    const uint8_t *p = e + HEADER_LEN;
    size_t n = len - HEADER_LEN;
    /* log_pos is the end of this event in its file; artificial events (the
     * fake ROTATE and the FORMAT_DESCRIPTION sent at the start) carry 0. */
    if (log_pos && !(flags & LOG_EVENT_ARTIFICIAL_F))
        b->cur.pos = log_pos;
    switch (type) {
    case ROTATE_EVENT: {
        if (n < 8)
            return mbq_error_set(MBQ_EDATA, "malformed ROTATE event");
        int rc = set_file(&b->cur, p + 8, n - 8);
        if (rc < 0)
            return rc;
        b->cur.pos = bl_le64(p);
        fill_common(b, ev, MBQ_BINLOG_ROTATE, ts);
        return 1;
    }
    case HEARTBEAT_LOG_EVENT:
        /* MariaDB: the body is the current file's name, log_pos the
         * position the dump thread is at. */
        if (n > 0 && set_file(&b->cur, p, n) < 0)
            return MBQ_EDATA;
        if (log_pos)
            b->cur.pos = log_pos;
        fill_common(b, ev, MBQ_BINLOG_HEARTBEAT, 0);
        ev->gtid = NULL;
        return 1;
    case GTID_EVENT:
        if (n < 13)
            return mbq_error_set(MBQ_EDATA, "malformed GTID event");
        snprintf(b->gtid, sizeof b->gtid, "%u-%u-%llu", bl_le32(p + 8), bl_le32(e + 5),
                 (unsigned long long)bl_le64(p));
        b->have_gtid = true;
        /* An XA transaction's rows are logged at its PREPARE and it may
         * still roll back (XA ROLLBACK in a later group): handing them out
         * as committed could put rows in the target that the source never
         * kept. */
        b->in_xa = (p[12] & FL_PREPARED_XA) != 0;
        return 0;
    case XID_EVENT:
        fill_common(b, ev, MBQ_BINLOG_COMMIT, ts);
        b->have_gtid = false;
        return 1;
    case QUERY_EVENT:
        return on_query(b, ev, p, n, ts);
    case TABLE_MAP_EVENT:
        return on_table_map(b, p, n);
    case WRITE_ROWS_EVENT_V1: case UPDATE_ROWS_EVENT_V1: case DELETE_ROWS_EVENT_V1:
    case WRITE_ROWS_EVENT: case UPDATE_ROWS_EVENT: case DELETE_ROWS_EVENT:
        return on_rows(b, ev, type, p, n, ts);
    case QUERY_COMPRESSED_EVENT: case WRITE_ROWS_COMPRESSED_EVENT_V1:
    case UPDATE_ROWS_COMPRESSED_EVENT_V1: case DELETE_ROWS_COMPRESSED_EVENT_V1:
    case WRITE_ROWS_COMPRESSED_EVENT: case UPDATE_ROWS_COMPRESSED_EVENT:
    case DELETE_ROWS_COMPRESSED_EVENT:
        return mbq_error_set(MBQ_EDATA, "compressed binlog event at '%s' position %llu: change "
                                        "data capture needs log_bin_compress=OFF",
                             b->cur.file, (unsigned long long)b->cur.pos);
    case INCIDENT_EVENT:
        /* The source says its binlog lost changes here (e.g. a
         * non-transactional statement failed mid-way): nothing after it
         * can be trusted to complete the target. */
        return mbq_error_set(MBQ_EDATA, "INCIDENT event at '%s' position %llu: the source "
                                        "reports changes missing from its binlog; re-snapshot "
                                        "with mbq-state reset TABLE --full",
                             b->cur.file, (unsigned long long)b->cur.pos);
    default:
        return 0; /* FORMAT_DESCRIPTION, ANNOTATE_ROWS, GTID_LIST, checkpoints, ... */
    }
}

static bool crc_ok(const uint8_t *e, size_t elen)
{
    return elen >= HEADER_LEN + 4 && crc32(0L, e, (uInt)(elen - 4)) == bl_le32(e + elen - 4);
}

/* Verify and drop an event's CRC32. Whether events carry one is a property
 * of each binlog file, told by its FORMAT_DESCRIPTION event (its checksum
 * algorithm byte): binlog_checksum can change, and the change starts a new
 * file. That event, and the ROTATE the source sends before it, are read by
 * whether their last four bytes are their CRC32 (a chance of 2^-32 to
 * mistake a checksum-less one). */
static int strip_checksum(mbq_binlog *b, const uint8_t *e, size_t *elen)
{
    uint8_t type = e[4];
    if (type == FORMAT_DESCRIPTION_EVENT || type == ROTATE_EVENT) {
        bool has = crc_ok(e, *elen);
        if (type == FORMAT_DESCRIPTION_EVENT)
            b->checksum = has;
        if (has)
            *elen -= 4;
        return 0;
    }
    if (!b->checksum)
        return 0;
    if (!crc_ok(e, *elen))
        return mbq_error_set(MBQ_EDATA, "binlog event with a wrong CRC32 at '%s' position %llu",
                             b->cur.file, (unsigned long long)b->cur.pos);
    *elen -= 4;
    return 0;
}

int mbq_binlog_next(mbq_binlog *b, mbq_binlog_event *ev, int timeout_ms)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        int left = timeout_ms;
        if (timeout_ms > 0) {
            struct timespec t1;
            clock_gettime(CLOCK_MONOTONIC, &t1);
            int64_t spent = (int64_t)(t1.tv_sec - t0.tv_sec) * 1000 +
                            (t1.tv_nsec - t0.tv_nsec) / 1000000;
            if (spent >= timeout_ms)
                return MBQ_ETIMEOUT;
            left = (int)(timeout_ms - spent);
        }
        int rc = wait_readable(b, left);
        if (rc < 0)
            return rc;
        unsigned long len = mysql_net_read_packet(b->c->my);
        if (len == packet_error || len == 0)
            return read_error(b);
        const uint8_t *pkt = b->c->my->net.read_pos;
        if (pkt[0] == 0xFE && len < 9)
            return mbq_error_set(MBQ_ENET, "the source ended the binlog stream (MySQL at %s)",
                                 b->c->where);
        if (pkt[0] != 0 || len < 1 + HEADER_LEN)
            return mbq_error_set(MBQ_EDATA, "unexpected packet in the binlog stream at '%s' "
                                            "position %llu",
                                 b->cur.file, (unsigned long long)b->cur.pos);
        const uint8_t *e = pkt + 1;
        size_t elen = len - 1;
        if (bl_le32(e + 9) != elen)
            return mbq_error_set(MBQ_EDATA,
                                 "binlog event of %zu bytes says %u at '%s' position %llu",
                                 elen, bl_le32(e + 9), b->cur.file, (unsigned long long)b->cur.pos);
        if ((rc = strip_checksum(b, e, &elen)) < 0)
            return rc;
        rc = on_event(b, ev, e, elen);
        if (rc != 0)
            return rc < 0 ? rc : 0;
    }
}
