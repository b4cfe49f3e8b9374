/* Helpers shared by the binlog reader's tests (tests/test_binlog*.c): the
 * source's current position, a reader opened from a position, and reading
 * events up to a COMMIT. */
#ifndef MBQ_TEST_BINLOG_UTIL_H
#define MBQ_TEST_BINLOG_UTIL_H

#include "test_mysql_util.h"

#include "mbq/binlog.h"
#include "mbq/error.h"

/* The server's end of binlog now. */
static inline mbq_binlog_pos tbl_current(void)
{
    mbq_binlog_pos p;
    memset(&p, 0, sizeof p);
    mbq_mysql *c = tmy_connect(NULL);
    if (!c || mbq_binlog_current_pos(&p, c) != 0) {
        fprintf(stderr, "cannot read the binlog position: %s\n", mbq_error_last());
        exit(1);
    }
    mbq_mysql_close(c);
    return p;
}

static bool tbl_after_rows; /* tbl_next_own: the last event handed out was ROWS */

/* A reader from `start`, only `table` of `db` when table is not NULL. */
static inline mbq_binlog *tbl_open(mbq_binlog_pos start, const char *db, const char *table,
                                   int heartbeat_ms)
{
    static mbq_mysql_config cfg;
    cfg = tmy_config(NULL);
    static const char *one[1];
    one[0] = table;
    mbq_binlog_options o;
    memset(&o, 0, sizeof o);
    o.mysql = &cfg;
    o.server_id = 4242;
    o.start = start;
    o.heartbeat_ms = heartbeat_ms;
    o.database = db;
    o.tables = table ? one : NULL;
    o.n_tables = table ? 1 : 0;
    mbq_binlog *b = NULL;
    tbl_after_rows = false;
    if (mbq_binlog_open(&b, &o) != 0) {
        fprintf(stderr, "  cannot open the binlog: %s\n", mbq_error_last());
        return NULL;
    }
    return b;
}

/* The next event that is not a heartbeat or a rotation (10 s at most);
 * 0 or the error. */
static inline int tbl_next_data(mbq_binlog *b, mbq_binlog_event *ev)
{
    for (int i = 0; i < 100; i++) {
        int rc = mbq_binlog_next(b, ev, 10000);
        if (rc != 0)
            return rc;
        if (ev->kind != MBQ_BINLOG_HEARTBEAT && ev->kind != MBQ_BINLOG_ROTATE)
            return 0;
    }
    return MBQ_ETIMEOUT;
}

/* Other tests write to the same server at the same time: their DDL and
 * their transactions' COMMITs reach every reader (neither is filtered).
 * This gives only the test's own events: ROWS (of the reader's tables),
 * the COMMIT right after rows (a transaction's events are contiguous in the
 * binlog), and DDL run in database `db` or whose text names it. */
static inline int tbl_next_own(mbq_binlog *b, mbq_binlog_event *ev, const char *db)
{
    for (int i = 0; i < 10000; i++) {
        int rc = tbl_next_data(b, ev);
        if (rc != 0)
            return rc;
        if (ev->kind == MBQ_BINLOG_ROWS) {
            tbl_after_rows = true;
            return 0;
        }
        if (ev->kind == MBQ_BINLOG_COMMIT && tbl_after_rows) {
            tbl_after_rows = false;
            return 0;
        }
        if (ev->kind == MBQ_BINLOG_DDL &&
            ((ev->statement && strstr(ev->statement, db)) ||
             (ev->database && strcmp(ev->database, db) == 0)))
            return 0;
    }
    return MBQ_ETIMEOUT;
}

/* A value as a NUL-terminated copy ("NULL" for SQL NULL), for messages. */
static inline char *tbl_val(const mbq_binlog_value *v)
{
    if (!v->data)
        return strdup("NULL");
    char *s = malloc(v->len + 1);
    memcpy(s, v->data, v->len);
    s[v->len] = '\0';
    return s;
}

#define CHECK_VAL(v, want)                                                                         \
    do {                                                                                           \
        char *s_ = tbl_val(v);                                                                     \
        CHECK_STR(s_, want);                                                                       \
        free(s_);                                                                                  \
    } while (0)

#endif
