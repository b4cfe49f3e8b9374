/* `mbq cdc`: the binlog follower (mbq/cdc.h).
 *
 *   lock cdc.lock -> journal -> connect -> schema-check + snapshot each table
 *     -> finish a batch left 'closed' -> read from the committed position:
 *        ROWS   -> the open batch's files (cdc_batch.c)
 *        COMMIT -> a boundary: close + apply + commit when the batch is full
 *                  or its first change is max_batch_delay old (cdc_apply.c)
 *        DDL    -> a boundary; touching a cdc table: apply what is before
 *                  it, then schema-check that table (rebuild: re-snapshot)
 *        idle   -> heartbeat: position, lag, status in the journal
 *
 * The lock is its own (<state.dir>/cdc.lock), not the sync lock: cron's
 * `mbq sync` of other tables runs beside the follower; both write the
 * journal through SQLite's WAL with a busy timeout (journal.c). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <unistd.h>

#include "mbq/cdc.h"
#include "mbq/error.h"
#include "mbq/exitcode.h"
#include "mbq/fault.h"
#include "mbq/http.h"
#include "mbq/log.h"
#include "mbq/util.h"
#include "cdc_internal.h"
#include "mbq/banned.h"

static volatile sig_atomic_t stop_requested;

void mbq_cdc_request_stop(void)
{
    stop_requested = 1;
}

typedef struct follower {
    cdc_ctx c;
    const mbq_cdc_options *opts;
    mbq_binlog *b;
    mbq_binlog_pos end;       /* --once: stop at the first boundary at or after it */
    int64_t deadline_ms;      /* --max-seconds (monotonic); 0 = none */
    int64_t heard_ms;         /* last heartbeat journaled (monotonic) */
    int64_t moved_ms;         /* last time an empty stretch moved the stream (monotonic) */
    bool moved_pending;       /* boundaries read past the committed position, no batch */
    char **names;             /* the tables the reader decodes */
    bool lag_alerted;         /* the lag is above cdc.lag_alert (alerted once) */
    bool lost_alerted;        /* the source is lost past LOST_ALERT_MS (alerted once) */
} follower;

/* The source unreachable this long in follow mode is alerted (once). */
#define LOST_ALERT_MS (5 * 60 * 1000)

/* Alert once when the lag crosses cdc.lag_alert, once when it recovers. */
static void check_lag(follower *f, int64_t lag_ms)
{
    int64_t limit = f->c.s.cfg->cdc.lag_alert_ms;
    if (limit <= 0)
        return;
    if (lag_ms > limit && !f->lag_alerted) {
        mbq_buf why = MBQ_BUF_INIT;
        mbq_buf_printf(&why, "BigQuery is %.1f s behind the source, above cdc.lag_alert (%.1f s)",
                       (double)lag_ms / 1000.0, (double)limit / 1000.0);
        mbq_log(MBQ_LOG_WARN, NULL, "cdc", "%s", mbq_buf_cstr(&why));
        cdc_alert(&f->c, "cdc lag", true, mbq_buf_cstr(&why));
        mbq_buf_free(&why);
        f->lag_alerted = true;
    } else if (lag_ms <= limit && f->lag_alerted) {
        mbq_log(MBQ_LOG_INFO, NULL, "cdc", "lag back under cdc.lag_alert");
        cdc_alert(&f->c, "cdc lag", false, NULL);
        f->lag_alerted = false;
    }
}

static int take_lock(int *fd, const char *dir)
{
    mbq_buf p = MBQ_BUF_INIT;
    int rc = mbq_mkdir_p(dir);
    if (rc == 0)
        rc = mbq_buf_printf(&p, "%s/cdc.lock", dir);
    if (rc < 0)
        goto done;
    *fd = open(p.ptr, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (*fd < 0) {
        rc = mbq_error_set(MBQ_EIO, "cannot open lock '%s': %s", p.ptr, strerror(errno));
        goto done;
    }
    if (flock(*fd, LOCK_EX | LOCK_NB) != 0)
        rc = mbq_error_set(errno == EWOULDBLOCK ? MBQ_ELOCKED : MBQ_EIO,
                           "another 'mbq cdc' holds the lock '%s'", p.ptr);
done:
    mbq_buf_free(&p);
    return rc;
}

/* The journal, migrated: a write open migrates it (released at once: the
 * sync lock is not ours to hold); when `mbq sync` holds that lock it has
 * migrated the journal itself. Then a connection of our own. */
static int open_journal(mbq_journal **j, const char *dir)
{
    mbq_journal *w = NULL;
    int rc = mbq_journal_open(&w, dir, MBQ_JOURNAL_WRITE);
    mbq_journal_close(w);
    if (rc == MBQ_ELOCKED) {
        mbq_error_clear();
        rc = 0;
    }
    return rc < 0 ? rc : mbq_journal_open(j, dir, MBQ_JOURNAL_ATTACH);
}

static bool selected(const mbq_cdc_options *o, const char *name)
{
    if (!o->tables)
        return true;
    for (size_t i = 0; i < o->n_tables; i++)
        if (strcmp(o->tables[i], name) == 0)
            return true;
    return false;
}

static int tables_init(follower *f)
{
    const mbq_config *cfg = f->c.s.cfg;
    f->c.tables = mbq_calloc(cfg->n_tables ? cfg->n_tables : 1, sizeof *f->c.tables);
    f->names = mbq_calloc(cfg->n_tables + 1, sizeof *f->names);
    if (!f->c.tables || !f->names)
        return MBQ_ENOMEM;
    for (size_t i = 0; f->opts->tables && i < f->opts->n_tables; i++) {
        const mbq_table_config *tc = mbq_config_table(cfg, f->opts->tables[i]);
        if (!tc || tc->mode != MBQ_MODE_CDC)
            return mbq_error_set(MBQ_ECONFIG, "table '%s' is not in mode cdc in the config '%s'",
                                 f->opts->tables[i], cfg->path);
    }
    for (size_t i = 0; i < cfg->n_tables; i++) {
        const mbq_table_config *tc = &cfg->tables[i];
        if (tc->mode != MBQ_MODE_CDC || !selected(f->opts, tc->name))
            continue;
        cdc_table *t = &f->c.tables[f->c.n_tables++];
        t->tc = *tc;
        /* The schema-check and extract code read a table without a cursor
         * as one whole snapshot: what a cdc snapshot is. */
        t->tc.mode = MBQ_MODE_FULL;
        t->tc.updated_column = NULL;
        t->fd = -1;
        t->job.tc = &t->tc;
        t->job.target_rows = -1;
        t->soft_deletes = tc->deletes == MBQ_DELETES_SOFT;
        f->names[f->c.n_tables - 1] = tc->name;
    }
    if (f->c.n_tables == 0)
        return mbq_error_set(MBQ_ECONFIG, "no table in 'mode: cdc' in the config '%s'",
                             cfg->path);
    return 0;
}

/* With --table, the cdc tables left out must not be streaming: the stream
 * (one position for all) would move past their changes. */
static int check_left_out(follower *f)
{
    const mbq_config *cfg = f->c.s.cfg;
    int rc = 0;
    for (size_t i = 0; f->opts->tables && i < cfg->n_tables && rc == 0; i++) {
        const mbq_table_config *tc = &cfg->tables[i];
        if (tc->mode != MBQ_MODE_CDC || selected(f->opts, tc->name))
            continue;
        mbq_cdc_table ct;
        if ((rc = mbq_journal_cdc_table_get(f->c.s.j, &ct, tc->name)) < 0)
            break;
        if (mbq_streq(ct.state, "streaming"))
            rc = mbq_error_set(MBQ_ECONFIG,
                               "cdc table '%s' is streaming too and the binlog position is "
                               "shared: follow it as well (leave out --table), or stop following "
                               "it (mode other than cdc, and 'mbq-state reset %s --full --yes' "
                               "before it comes back)",
                               tc->name, tc->name);
        mbq_cdc_table_clear(&ct);
    }
    return rc;
}

/* A table that failed: journaled 'failed' with its error; the others go
 * on. The stream moves on without its changes, so its next start takes a
 * new snapshot (cdc_snapshot): resuming it from the stream's position would
 * lose what was passed over meanwhile. */
static void table_fail(follower *f, cdc_table *t, int rc)
{
    (void)rc;
    t->failed = true;
    mbq_log(MBQ_LOG_ERROR, t->tc.name, "cdc", "%s (the table takes a new snapshot at the next "
            "start)", mbq_error_last());
    if (mbq_journal_cdc_table_failed(f->c.s.j, t->tc.name, "failed", mbq_error_last(),
                                     mbq_now_ms()) < 0)
        mbq_log(MBQ_LOG_ERROR, t->tc.name, "cdc", "cannot journal the failure: %s",
                mbq_error_last());
    mbq_buf why = MBQ_BUF_INIT;
    mbq_buf_puts(&why, mbq_error_last());
    cdc_alert(&f->c, t->tc.name, true, mbq_buf_cstr(&why));
    mbq_buf_free(&why);
}

/* Where to read from: the committed position, or a later one when every
 * table's snapshot is past it (nothing before the earliest can matter). */
static int start_pos(follower *f, mbq_binlog_pos *out)
{
    mbq_cdc_stream s;
    bool found = false;
    int rc = mbq_journal_cdc_stream_get(f->c.s.j, &s, &found);
    if (rc < 0)
        return rc;
    memset(out, 0, sizeof *out);
    bool any = false;
    for (size_t i = 0; i < f->c.n_tables; i++) {
        const cdc_table *t = &f->c.tables[i];
        if (!t->streaming || t->failed)
            continue;
        mbq_binlog_pos p = t->snapshot;
        if (found) {
            mbq_binlog_pos sp = {.pos = (uint64_t)s.binlog_pos};
            snprintf(sp.file, sizeof sp.file, "%s", s.binlog_file);
            if (mbq_binlog_pos_cmp(&sp, &p) > 0)
                p = sp;
        }
        if (!any || mbq_binlog_pos_cmp(&p, out) < 0)
            *out = p;
        any = true;
    }
    mbq_cdc_stream_clear(&s);
    return any ? 0 : mbq_error_set(MBQ_ERR, "no cdc table is streaming");
}

/* Close, apply and commit the open batch; a batch with no row change only
 * moves the stream (when it has read past the committed position). */
static int flush_batch(follower *f)
{
    cdc_ctx *c = &f->c;
    mbq_cdc_batch b;
    bool abandoned = false;
    int rc = cdc_batch_close(c, &b);
    if (rc < 0)
        return rc;
    if (b.batch_id == 0) {
        if (f->moved_pending && c->boundary.file[0]) {
            rc = mbq_journal_cdc_stream_move(c->s.j, c->boundary.file, (int64_t)c->boundary.pos,
                                             c->boundary_gtid, c->last_event_ms, mbq_now_ms());
            f->moved_pending = false;
            f->moved_ms = mbq_monotonic_ms();
        }
        c->from = c->boundary;
        return rc;
    }
    rc = cdc_apply(c, &b, &abandoned);
    if (rc == 0 && !abandoned)
        c->from = c->boundary;
    if (rc == 0 && abandoned) {
        /* Its files went away under us: read it again from the committed
         * position (the reader reopens there). */
        mbq_binlog_close(f->b);
        f->b = NULL;
    }
    if (rc == 0 && b.last_event_ms > 0)
        check_lag(f, mbq_now_ms() - b.last_event_ms);
    f->moved_pending = false;
    f->moved_ms = mbq_monotonic_ms();
    mbq_cdc_batch_clear(&b);
    return rc;
}

/* Should the open batch close at this boundary? */
static bool batch_due(const follower *f)
{
    const cdc_ctx *c = &f->c;
    const mbq_cdc_config *cc = &c->s.cfg->cdc;
    if (c->rows == 0)
        return f->moved_pending && mbq_monotonic_ms() - f->moved_ms >= cc->max_batch_delay_ms;
    return c->rows >= cc->max_batch_rows || mbq_now_ms() - c->opened_ms >= cc->max_batch_delay_ms;
}

/* Does a DDL statement name a cdc table (as a word of the statement)? */
static bool ddl_touches(const cdc_table *t, const char *stmt)
{
    size_t n = strlen(t->tc.name);
    for (const char *p = stmt; p && *p; p++) {
        if (strncasecmp(p, t->tc.name, n) != 0)
            continue;
        char before = p == stmt ? ' ' : p[-1], after = p[n];
        bool word_b = !(before == '_' || (before >= '0' && before <= '9') ||
                        ((before | 32) >= 'a' && (before | 32) <= 'z'));
        bool word_a = !(after == '_' || (after >= '0' && after <= '9') ||
                        ((after | 32) >= 'a' && (after | 32) <= 'z'));
        if (word_b && word_a)
            return true;
    }
    return false;
}

/* Is a statement event a row change (INSERT, UPDATE, DELETE, REPLACE,
 * LOAD DATA)? A source switched to binlog_format STATEMENT or MIXED (a
 * session's SET, a global change at runtime) logs DML so, with no row
 * images: the changes are not in the stream, and following on would lose
 * them silently. */
static bool statement_is_dml(const char *stmt)
{
    static const char *const verbs[] = {"INSERT", "UPDATE", "DELETE", "REPLACE", "LOAD"};
    while (stmt && (*stmt == ' ' || *stmt == '\n' || *stmt == '\t' || *stmt == '\r' ||
                    *stmt == '('))
        stmt++;
    for (size_t i = 0; stmt && i < sizeof verbs / sizeof verbs[0]; i++) {
        size_t n = strlen(verbs[i]);
        if (strncasecmp(stmt, verbs[i], n) == 0 &&
            (stmt[n] == ' ' || stmt[n] == '\n' || stmt[n] == '\t' || stmt[n] == '\0'))
            return true;
    }
    return false;
}

/* A DDL on cdc tables: what came before it is applied (done by the caller),
 * then each table's schema is checked again: a new column is added to
 * BigQuery, an incompatible change fails the table or, with
 * on_incompatible_change: rebuild, takes a new snapshot. */
static int on_ddl(follower *f, const mbq_binlog_event *ev)
{
    /* Only statement and pos are read: the rest may be the reader's. */
    cdc_ctx *c = &f->c;
    for (size_t i = 0; i < c->n_tables; i++) {
        cdc_table *t = &c->tables[i];
        if (t->failed || !ev->statement || !ddl_touches(t, ev->statement))
            continue;
        if (statement_is_dml(ev->statement)) {
            mbq_error_set(MBQ_EDATA,
                          "table '%s': a statement-based row change at binlog %s:%" PRIu64
                          " (binlog_format is not ROW for it): its rows are not in the "
                          "binlog; change data capture needs binlog_format=ROW. Once the "
                          "source logs ROW again, re-snapshot with 'mbq-state reset %s "
                          "--full --yes'",
                          t->tc.name, ev->pos.file, ev->pos.pos, t->tc.name);
            table_fail(f, t, MBQ_EDATA);
            continue;
        }
        mbq_log(MBQ_LOG_INFO, t->tc.name, "cdc", "DDL at binlog %s:%" PRIu64 ": %s", ev->pos.file,
                ev->pos.pos, ev->statement);
        int rc = cdc_schema_check(c, t);
        if (rc == 0 && t->job.rebuild) {
            mbq_log(MBQ_LOG_WARN, t->tc.name, "cdc",
                    "incompatible change with on_incompatible_change: rebuild: a new snapshot");
            t->streaming = false;
            if ((rc = mbq_journal_cdc_table_failed(c->s.j, t->tc.name, "resnapshot", NULL,
                                                   mbq_now_ms())) == 0)
                rc = cdc_snapshot(c, t);
        }
        if (rc < 0)
            table_fail(f, t, rc);
    }
    return 0;
}

static bool stop_now(const follower *f)
{
    return stop_requested || (f->deadline_ms && mbq_monotonic_ms() >= f->deadline_ms);
}

/* Journal that the source was heard, with the lag. */
static void heard(follower *f, bool caught_up)
{
    const cdc_ctx *c = &f->c;
    int64_t now = mbq_now_ms();
    int64_t lag = c->rows > 0 && c->first_event_ms > 0 ? now - c->first_event_ms : 0;
    check_lag(f, lag < 0 ? 0 : lag);
    if (mbq_journal_cdc_stream_heard(c->s.j, caught_up, lag < 0 ? 0 : lag, now) < 0) {
        mbq_log(MBQ_LOG_WARN, NULL, "cdc", "cannot journal the heartbeat: %s", mbq_error_last());
        mbq_error_clear();
    }
    f->heard_ms = mbq_monotonic_ms();
}

/* One event. *done true when --once has reached its end position. */
static int on_event(follower *f, const mbq_binlog_event *ev, bool *done)
{
    cdc_ctx *c = &f->c;
    int rc = 0;
    bool boundary = false;
    switch (ev->kind) {
    case MBQ_BINLOG_ROWS: {
        cdc_table *t = cdc_table_find(c, ev->database, ev->table);
        c->in_tx = true;
        if (t && (rc = cdc_batch_add(c, t, ev)) < 0)
            table_fail(f, t, rc); /* the rest of the batch goes on; its key is lost: stop it */
        return 0;
    }
    case MBQ_BINLOG_COMMIT:
    case MBQ_BINLOG_DDL:
        boundary = true;
        c->boundary = ev->pos;
        free(c->boundary_gtid);
        c->boundary_gtid = ev->gtid ? mbq_strdup(ev->gtid) : NULL;
        c->in_tx = false;
        c->transactions++;
        f->moved_pending = true;
        break;
    case MBQ_BINLOG_HEARTBEAT:
    case MBQ_BINLOG_ROTATE:
        /* Resume points too (mbq/binlog.h): an idle source's position, or
         * the start of the next file, which --once's end position may be
         * in (FLUSH BINARY LOGS) with no transaction after it. */
        if (!c->in_tx) {
            c->boundary = ev->pos;
            f->moved_pending = true;
        }
        if (ev->kind == MBQ_BINLOG_HEARTBEAT)
            heard(f, true);
        break;
    }
    if (ev->kind == MBQ_BINLOG_DDL) {
        bool touches = false;
        for (size_t i = 0; i < c->n_tables && ev->statement; i++)
            touches = touches || ddl_touches(&c->tables[i], ev->statement);
        /* The event is the reader's until it is closed, which applying the
         * batch may do (files gone): the DDL goes on from a copy. */
        mbq_binlog_event ddl = *ev;
        char *stmt = touches ? mbq_strdup(ev->statement) : NULL;
        ddl.statement = stmt;
        if (touches && !stmt)
            return MBQ_ENOMEM;
        if (touches && (rc = flush_batch(f)) == 0)
            rc = on_ddl(f, &ddl);
        free(stmt);
        if (rc < 0)
            return rc;
    }
    bool at_end = f->opts->once && !c->in_tx && c->boundary.file[0] &&
                  mbq_binlog_pos_cmp(&c->boundary, &f->end) >= 0;
    if (at_end || (!c->in_tx && (boundary || ev->kind == MBQ_BINLOG_HEARTBEAT) && batch_due(f)))
        rc = flush_batch(f);
    *done = at_end;
    return rc;
}

static int open_reader(follower *f)
{
    mbq_binlog_options o = {0};
    int rc = start_pos(f, &o.start);
    if (rc < 0)
        return rc;
    f->c.from = f->c.boundary = o.start;
    o.mysql = &f->c.s.cfg->mysql;
    o.server_id = f->c.s.cfg->cdc.server_id;
    o.heartbeat_ms = (int)f->c.s.cfg->cdc.heartbeat_ms;
    o.database = f->c.s.cfg->mysql.database;
    o.tables = (const char *const *)f->names;
    o.n_tables = f->c.n_tables;
    mbq_log(MBQ_LOG_INFO, NULL, "cdc", "reading the binlog from %s:%" PRIu64, o.start.file,
            o.start.pos);
    return mbq_binlog_open(&f->b, &o);
}

/* Read until stopped (or, --once, the end position). Returns 0, or the
 * error that ended the stream. */
static int follow(follower *f)
{
    int rc = 0;
    int64_t backoff_ms = 1000, lost_since = 0;
    const mbq_cdc_config *cc = &f->c.s.cfg->cdc;
    bool done = false;
    if (f->opts->once && mbq_binlog_pos_cmp(&f->c.from, &f->end) >= 0)
        return 0;
    while (!done && !stop_now(f)) {
        if (!f->b) {
            rc = open_reader(f);
            if (rc == MBQ_ENET || rc == MBQ_ETIMEOUT) {
                if (!lost_since)
                    lost_since = mbq_monotonic_ms();
                if (f->opts->once && mbq_monotonic_ms() - lost_since > cc->reconnect_max_ms)
                    return rc;
                if (!f->lost_alerted && mbq_monotonic_ms() - lost_since > LOST_ALERT_MS) {
                    cdc_alert(&f->c, "binlog stream", true, mbq_error_last());
                    f->lost_alerted = true;
                }
                mbq_log(MBQ_LOG_WARN, NULL, "cdc", "%s: reconnecting in %" PRId64 " ms",
                        mbq_error_last(), backoff_ms);
                mbq_journal_cdc_stream_status(f->c.s.j, "reconnecting", (int64_t)getpid(),
                                              mbq_error_last(), mbq_now_ms());
                /* In slices: SIGTERM is answered at once, not after the backoff. */
                for (int64_t t0 = mbq_monotonic_ms();
                     !stop_now(f) && mbq_monotonic_ms() - t0 < backoff_ms;)
                    mbq_sleep_ms(200);
                backoff_ms = backoff_ms * 2 > cc->reconnect_max_ms ? cc->reconnect_max_ms
                                                                   : backoff_ms * 2;
                continue;
            }
            if (rc < 0)
                return rc;
            if (lost_since) {
                /* The control connection (schema-checks, snapshots) went
                 * with the source too: a new one. */
                mbq_mysql_close(f->c.s.my);
                f->c.s.my = NULL;
                if ((rc = mbq_mysql_connect(&f->c.s.my, &f->c.s.cfg->mysql)) < 0) {
                    mbq_log(MBQ_LOG_WARN, NULL, "cdc", "%s: reconnecting in %" PRId64 " ms",
                            mbq_error_last(), backoff_ms);
                    mbq_binlog_close(f->b);
                    f->b = NULL;
                    mbq_sleep_ms(backoff_ms);
                    continue;
                }
                mbq_journal_cdc_stream_status(f->c.s.j, "running", (int64_t)getpid(), NULL,
                                              mbq_now_ms());
            }
            if (f->lost_alerted)
                cdc_alert(&f->c, "binlog stream", false, NULL);
            f->lost_alerted = false;
            lost_since = 0;
            backoff_ms = 1000;
        }
        mbq_binlog_event ev;
        rc = mbq_binlog_next(f->b, &ev, 500);
        if (rc == MBQ_ETIMEOUT) {
            rc = 0;
            if (!f->c.in_tx && batch_due(f) && (rc = flush_batch(f)) < 0)
                return rc;
            if (mbq_monotonic_ms() - f->heard_ms >= cc->heartbeat_ms)
                heard(f, f->c.rows == 0);
            continue;
        }
        if (rc == MBQ_ENET) {
            /* The open batch is read again from the committed position. */
            mbq_log(MBQ_LOG_WARN, NULL, "cdc", "lost the binlog connection: %s",
                    mbq_error_last());
            cdc_batch_discard(&f->c);
            mbq_binlog_close(f->b);
            f->b = NULL;
            lost_since = mbq_monotonic_ms();
            continue;
        }
        if (rc < 0)
            return rc;
        if ((rc = on_event(f, &ev, &done)) < 0)
            return rc;
        /* A busy source sends no heartbeat: the journal still hears it
         * (status and lag stay fresh for mbq_cdc_up and the lag alert). */
        if (mbq_monotonic_ms() - f->heard_ms >= cc->heartbeat_ms)
            heard(f, false);
    }
    return 0;
}

/* Finish a batch a killed follower left 'closed' (journaled, maybe partly
 * applied) before reading anything. */
static int resume_closed(follower *f)
{
    mbq_cdc_batch b;
    bool found = false, abandoned = false;
    int rc = mbq_journal_cdc_batch_open_get(f->c.s.j, &b, &found);
    if (rc < 0 || !found)
        return rc;
    mbq_log(MBQ_LOG_INFO, NULL, "cdc", "finishing batch %" PRId64 " left closed", b.batch_id);
    rc = cdc_apply(&f->c, &b, &abandoned);
    mbq_cdc_batch_clear(&b);
    return rc;
}

static int connect_all(follower *f)
{
    const mbq_bigquery_config *bc = &f->c.s.cfg->bigquery;
    bool exists = false;
    mbq_bq_options bo;
    int rc = mbq_mysql_connect(&f->c.s.my, &f->c.s.cfg->mysql);
    if (rc == 0)
        rc = mbq_binlog_check(f->c.s.my);
    if (rc == 0) {
        mbq_bq_options_from_config(&bo, bc);
        rc = mbq_bq_new(&f->c.s.bq, &bo);
    }
    if (rc == 0)
        rc = mbq_bq_location_resolve(f->c.s.bq, &exists, bc->dataset);
    if (rc == 0 && !exists)
        rc = mbq_bq_dataset_ensure(f->c.s.bq, bc->dataset, mbq_bq_location(f->c.s.bq));
    return rc;
}

/* Every table's schema-check and snapshot; *failed counts the tables that
 * could not start. */
static int start_tables(follower *f, int *failed)
{
    for (size_t i = 0; i < f->c.n_tables; i++) {
        cdc_table *t = &f->c.tables[i];
        int rc = cdc_schema_check(&f->c, t);
        /* An incompatible change under on_incompatible_change: rebuild
         * (found at start: made while no follower ran) is a new snapshot,
         * as it is when the DDL is read from the binlog. */
        if (rc == 0 && t->job.rebuild)
            rc = mbq_journal_cdc_table_failed(f->c.s.j, t->tc.name, "resnapshot", NULL,
                                              mbq_now_ms());
        if (rc == 0)
            rc = cdc_snapshot(&f->c, t);
        if (rc == MBQ_EIO || rc == MBQ_EJOURNAL)
            return rc;
        if (rc < 0) {
            table_fail(f, t, rc);
            (*failed)++;
        }
    }
    return 0;
}

/* Once the snapshots and a batch left closed are done, no file of the
 * staging directory is needed: what a killed follower left is removed. The
 * directory is cdc's own (`mbq sync` removes the files of its own that no
 * table run refers to, which would take a batch's too). */
static void remove_leftovers(follower *f)
{
    DIR *d = opendir(f->c.s.staging_dir);
    struct dirent *e;
    mbq_buf p = MBQ_BUF_INIT;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        mbq_buf_clear(&p);
        if (mbq_buf_printf(&p, "%s/%s", f->c.s.staging_dir, e->d_name) == 0 && unlink(p.ptr) == 0)
            mbq_log(MBQ_LOG_DEBUG, NULL, "cdc", "removed leftover file '%s'", p.ptr);
    }
    if (d)
        closedir(d);
    mbq_buf_free(&p);
}

static int run_follower(follower *f, int *failed)
{
    int rc;
    if ((rc = start_tables(f, failed)) < 0 || (rc = resume_closed(f)) < 0)
        return rc;
    remove_leftovers(f);
    if (f->opts->once && (rc = mbq_binlog_current_pos(&f->end, f->c.s.my)) < 0)
        return rc;
    if ((rc = mbq_journal_cdc_stream_status(f->c.s.j, "running", (int64_t)getpid(), NULL,
                                            mbq_now_ms())) < 0)
        return rc;
    rc = follow(f);
    for (size_t i = 0; i < f->c.n_tables; i++)
        *failed += f->c.tables[i].failed;
    return rc;
}

static void follower_free(follower *f)
{
    cdc_batch_discard(&f->c);
    mbq_binlog_close(f->b);
    for (size_t i = 0; f->c.tables && i < f->c.n_tables; i++)
        cdc_table_free(&f->c.tables[i]);
    free(f->c.tables);
    free(f->names);
    free(f->c.boundary_gtid);
    free(f->c.s.staging_dir);
    mbq_bq_free(f->c.s.bq);
    mbq_mysql_close(f->c.s.my);
    mbq_journal_close(f->c.s.j);
}

int mbq_cdc_run(const mbq_config *cfg, const mbq_cdc_options *opts)
{
    follower f;
    char run_id[37];
    int lock_fd = -1, failed = 0, rc;
    memset(&f, 0, sizeof f);
    mbq_uuid(run_id);
    f.opts = opts;
    f.c.s.cfg = cfg;
    f.c.s.run_id = run_id;
    f.c.s.jobs = 1;
    f.deadline_ms = opts->max_seconds > 0 ? mbq_monotonic_ms() + opts->max_seconds * 1000 : 0;
    stop_requested = 0;

    mbq_buf sd = MBQ_BUF_INIT;
    if ((rc = take_lock(&lock_fd, cfg->state_dir)) < 0 || (rc = tables_init(&f)) < 0 ||
        (rc = open_journal(&f.c.s.j, cfg->state_dir)) < 0 || (rc = check_left_out(&f)) < 0 ||
        (rc = mbq_buf_printf(&sd, "%s/cdc-staging", cfg->state_dir)) < 0 ||
        (rc = mbq_mkdir_p(sd.ptr)) < 0)
        goto done;
    f.c.s.staging_dir = mbq_buf_detach(&sd);
    if ((rc = connect_all(&f)) < 0)
        goto done;
    rc = run_follower(&f, &failed);
    if (rc == 0 || rc == MBQ_EIO || rc == MBQ_EJOURNAL)
        goto done;
    /* The stream failed (purged binlog, a batch that cannot be applied):
     * journaled with the error; the exit says a table (all of them) failed. */
    mbq_log(MBQ_LOG_ERROR, NULL, "cdc", "%s", mbq_error_last());
    mbq_journal_cdc_stream_status(f.c.s.j, "failed", -1, mbq_error_last(), mbq_now_ms());
    {
        mbq_buf why = MBQ_BUF_INIT;
        mbq_buf_puts(&why, mbq_error_last());
        cdc_alert(&f.c, "binlog stream", true, mbq_buf_cstr(&why));
        mbq_error_set(rc, "%s", mbq_buf_cstr(&why));
        mbq_buf_free(&why);
    }
    if (rc != MBQ_ENET && rc != MBQ_ETIMEOUT && rc != MBQ_ELOCKED)
        failed++;
done:
    if (f.c.s.j && (rc == 0 || failed == 0) && rc != MBQ_EIO && rc != MBQ_EJOURNAL)
        mbq_journal_cdc_stream_status(f.c.s.j, rc < 0 ? "failed" : "stopped", -1,
                                      rc < 0 ? mbq_error_last() : NULL, mbq_now_ms());
    int exit_code = failed                            ? MBQ_EXIT_TABLE_FAILED
                    : rc == MBQ_ENET || rc == MBQ_ETIMEOUT ? MBQ_EXIT_UNAVAILABLE
                    : rc < 0                          ? mbq_exit_for_error(rc)
                                                      : MBQ_EXIT_OK;
    mbq_buf_free(&sd);
    follower_free(&f);
    if (lock_fd >= 0)
        close(lock_fd);
    return exit_code;
}
