/* The SQLite journal (see mbq/journal.h). */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mbq/buf.h"
#include "mbq/error.h"
#include "mbq/journal.h"
#include "journal_internal.h"
#include "mbq/util.h"
#include "journal_internal.h"
#include "mbq/banned.h"

static int db_error(mbq_journal *j, const char *what)
{
    int code = sqlite3_errcode(j->db);
    int err = (code == SQLITE_FULL || code == SQLITE_IOERR || code == SQLITE_CANTOPEN ||
               code == SQLITE_READONLY)
                  ? MBQ_EIO
                  : MBQ_EJOURNAL;
    return mbq_error_set(err, "journal '%s': %s: %s", j->path, what, sqlite3_errmsg(j->db));
}

static int exec(mbq_journal *j, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(j->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int code = sqlite3_errcode(j->db);
        int rc = mbq_error_set(code == SQLITE_FULL || code == SQLITE_IOERR ? MBQ_EIO
                                                                          : MBQ_EJOURNAL,
                               "journal '%s': %s", j->path, msg ? msg : "unknown error");
        sqlite3_free(msg);
        return rc;
    }
    return 0;
}

/* Prepare `sql` and bind `n` text/integer parameters described by `types`
 * ('s' text or NULL, 'i' int64). Variadic arguments: const char* or int64_t. */
static int prepare(mbq_journal *j, sqlite3_stmt **out, const char *sql, const char *types, ...)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(j->db, sql, -1, &st, NULL) != SQLITE_OK)
        return db_error(j, "cannot prepare statement");
    va_list ap;
    va_start(ap, types);
    int rc = SQLITE_OK;
    for (int i = 0; types && types[i] && rc == SQLITE_OK; i++) {
        if (types[i] == 's') {
            const char *s = va_arg(ap, const char *);
            rc = s ? sqlite3_bind_text(st, i + 1, s, -1, SQLITE_TRANSIENT)
                   : sqlite3_bind_null(st, i + 1);
        } else {
            rc = sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
        }
    }
    va_end(ap);
    if (rc != SQLITE_OK) {
        sqlite3_finalize(st);
        return db_error(j, "cannot bind parameter");
    }
    *out = st;
    return 0;
}

/* Step a statement that returns no rows, then finalize it. */
static int step_done(mbq_journal *j, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : db_error(j, what);
    sqlite3_finalize(st);
    return rc;
}

static char *col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *s = sqlite3_column_text(st, i);
    return s ? mbq_strdup((const char *)s) : NULL;
}

/* ---- open, lock, migrate ---- */

static int take_lock(mbq_journal *j, const char *dir)
{
    int rc = 0;
    mbq_buf p = MBQ_BUF_INIT;
    if ((rc = mbq_buf_printf(&p, "%s/lock", dir)) < 0)
        return rc;
    j->lock_fd = open(p.ptr, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (j->lock_fd < 0) {
        rc = mbq_error_set(MBQ_EIO, "cannot open lock file '%s': %s", p.ptr, strerror(errno));
        goto done;
    }
    if (flock(j->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK) {
            /* The holder wrote its pid; show it to help the operator. */
            char pid[32] = {0};
            ssize_t n = pread(j->lock_fd, pid, sizeof pid - 1, 0);
            if (n > 0 && pid[n - 1] == '\n')
                pid[n - 1] = '\0';
            rc = mbq_error_set(MBQ_ELOCKED,
                               "another mbq process (pid %s) holds the lock on '%s'; this run "
                               "exits without doing anything",
                               n > 0 ? pid : "unknown", dir);
        } else {
            rc = mbq_error_set(MBQ_EIO, "cannot lock '%s': %s", p.ptr, strerror(errno));
        }
        goto done;
    }
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (ftruncate(j->lock_fd, 0) == 0 && pwrite(j->lock_fd, pid, (size_t)len, 0) < 0) {
        /* The pid is only informative; a failure to write it is harmless. */
    }
done:
    mbq_buf_free(&p);
    return rc;
}

static int read_user_version(mbq_journal *j, int *out)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare(j, &st, "PRAGMA user_version", NULL);
    if (rc < 0)
        return rc;
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = db_error(j, "cannot read the schema version");
    } else {
        *out = sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    return rc;
}

static int migrate(mbq_journal *j)
{
    int version = 0, rc;
    if ((rc = read_user_version(j, &version)) < 0)
        return rc;
    int latest = mbq_migration_count > 0 ? mbq_migrations[mbq_migration_count - 1].version : 0;
    if (version > latest)
        return mbq_error_set(MBQ_EJOURNAL,
                             "journal '%s' has schema version %d, newer than this mbq knows "
                             "(%d): use the mbq version that wrote it, or a newer one",
                             j->path, version, latest);
    for (int i = 0; i < mbq_migration_count; i++) {
        const mbq_migration *m = &mbq_migrations[i];
        if (m->version <= version)
            continue;
        /* Each migration and its version bump commit together: a crash
         * mid-migration leaves the previous version intact. */
        if ((rc = exec(j, "BEGIN IMMEDIATE")) < 0)
            return rc;
        mbq_buf sql = MBQ_BUF_INIT;
        rc = mbq_buf_printf(&sql, "%s\nPRAGMA user_version = %d;", m->sql, m->version);
        if (rc == 0)
            rc = exec(j, sql.ptr);
        mbq_buf_free(&sql);
        if (rc < 0) {
            sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
            return mbq_error_wrap(rc, "migration %s: ", m->name);
        }
        if ((rc = exec(j, "COMMIT")) < 0)
            return rc;
    }
    return 0;
}

/* A journal is born whole: created and migrated under a temporary name, then
 * renamed into place. So a state.db that exists but is empty (0 bytes) was
 * truncated, never "new": SQLite would happily treat it as a fresh database
 * and every cursor would be reset without a word. It is refused instead. */
static int create_if_missing(mbq_journal *j)
{
    struct stat st;
    if (stat(j->path, &st) == 0) {
        if (st.st_size == 0)
            return mbq_error_set(MBQ_EJOURNAL,
                                 "journal '%s' is empty (0 bytes): it was truncated, and "
                                 "starting over would reset every cursor; it was left "
                                 "untouched: restore it from a backup, or remove it to resync "
                                 "every table from scratch",
                                 j->path);
        return 0;
    }
    int rc = 0;
    sqlite3 *db = NULL;
    mbq_buf tmp = MBQ_BUF_INIT;
    if ((rc = mbq_buf_printf(&tmp, "%s.new", j->path)) < 0)
        return rc;
    unlink(tmp.ptr); /* a leftover of a creation that died half-way */
    if (sqlite3_open_v2(tmp.ptr, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        rc = mbq_error_set(MBQ_EIO, "cannot create journal '%s': %s", tmp.ptr,
                           db ? sqlite3_errmsg(db) : "out of memory");
        goto done;
    }
    sqlite3 *saved = j->db;
    char *saved_path = j->path;
    j->db = db;
    j->path = tmp.ptr;
    rc = exec(j, "PRAGMA synchronous=FULL");
    if (rc == 0)
        rc = migrate(j);
    j->db = saved;
    j->path = saved_path;
    if (rc < 0)
        goto done;
    if (sqlite3_close(db) != SQLITE_OK) {
        rc = mbq_error_set(MBQ_EIO, "cannot close journal '%s'", tmp.ptr);
        db = NULL;
        goto done;
    }
    db = NULL;
    int fd = open(tmp.ptr, O_RDONLY);
    if (fd < 0 || fsync(fd) < 0) {
        rc = mbq_error_set(MBQ_EIO, "cannot fsync '%s': %s", tmp.ptr, strerror(errno));
        if (fd >= 0)
            close(fd);
        goto done;
    }
    close(fd);
    if (rename(tmp.ptr, j->path) < 0) {
        rc = mbq_error_set(MBQ_EIO, "cannot rename '%s' to '%s': %s", tmp.ptr, j->path,
                           strerror(errno));
        goto done;
    }
    rc = mbq_fsync_parent_dir(j->path);
done:
    if (db)
        sqlite3_close(db);
    if (rc < 0)
        unlink(tmp.ptr);
    mbq_buf_free(&tmp);
    return rc;
}

int mbq_journal_open(mbq_journal **out, const char *dir, mbq_journal_mode mode)
{
    int rc = 0;
    *out = NULL;
    mbq_journal *j = mbq_calloc(1, sizeof *j);
    if (!j)
        return MBQ_ENOMEM;
    j->lock_fd = -1;
    mbq_buf path = MBQ_BUF_INIT;
    if ((rc = mbq_buf_printf(&path, "%s/state.db", dir)) < 0)
        goto done;
    j->path = mbq_strdup(path.ptr);
    if (!j->path) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    if (mode == MBQ_JOURNAL_WRITE) {
        if ((rc = mbq_mkdir_p(dir)) < 0 || (rc = take_lock(j, dir)) < 0)
            goto done;
        if ((rc = create_if_missing(j)) < 0)
            goto done;
    } else if (!mbq_file_exists(j->path)) {
        rc = mbq_error_set(MBQ_ENOTFOUND, "no journal at '%s' (no sync has run with this state "
                                          "directory)", j->path);
        goto done;
    }
    int flags = mode == MBQ_JOURNAL_WRITE    ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
                : mode == MBQ_JOURNAL_ATTACH ? SQLITE_OPEN_READWRITE
                                             : SQLITE_OPEN_READONLY;
    if (sqlite3_open_v2(j->path, &j->db, flags | SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
        rc = mbq_error_set(MBQ_EJOURNAL, "cannot open journal '%s': %s", j->path,
                           j->db ? sqlite3_errmsg(j->db) : "out of memory");
        goto done;
    }
    /* Parallel tables (`sync --jobs`) write through several connections:
     * each write is short, so waiting for the others is always enough. */
    sqlite3_busy_timeout(j->db, 30000);
    /* A garbage or truncated file shows here ("file is not a database"):
     * refuse it rather than start over, which would reset every cursor. */
    if (mode == MBQ_JOURNAL_WRITE) {
        if ((rc = exec(j, "PRAGMA journal_mode=WAL")) < 0 ||
            (rc = exec(j, "PRAGMA synchronous=FULL")) < 0 ||
            (rc = exec(j, "PRAGMA foreign_keys=ON")) < 0)
            goto fail_open;
        if ((rc = migrate(j)) < 0)
            goto done;
        if ((rc = exec(j, "PRAGMA quick_check")) < 0)
            goto fail_open;
    } else {
        /* WAL mode is the file's (set by the WRITE connection); the rest is
         * per connection. */
        if (mode == MBQ_JOURNAL_ATTACH && ((rc = exec(j, "PRAGMA synchronous=FULL")) < 0 ||
                                           (rc = exec(j, "PRAGMA foreign_keys=ON")) < 0))
            goto fail_open;
        int version = 0;
        if ((rc = read_user_version(j, &version)) < 0)
            goto fail_open;
        int latest = mbq_migrations[mbq_migration_count - 1].version;
        if (version > latest) {
            rc = mbq_error_set(MBQ_EJOURNAL, "journal '%s' has schema version %d, newer than "
                                             "this mbq knows (%d)", j->path, version, latest);
            goto done;
        }
        if (version < latest) {
            rc = mbq_error_set(MBQ_EJOURNAL, "journal '%s' has schema version %d; run 'mbq "
                                             "sync' once to migrate it to %d", j->path, version,
                               latest);
            goto done;
        }
    }
    *out = j;
    j = NULL;
    goto done;
fail_open:
    rc = mbq_error_set(MBQ_EJOURNAL,
                       "journal '%s' is unreadable or corrupt (%s); it was left untouched: "
                       "restore it from a backup or move it aside to start over (every table "
                       "will then be fully resynced)",
                       j->path, sqlite3_errmsg(j->db));
done:
    mbq_buf_free(&path);
    mbq_journal_close(j);
    return rc;
}

void mbq_journal_close(mbq_journal *j)
{
    if (!j)
        return;
    if (j->db)
        sqlite3_close_v2(j->db);
    if (j->lock_fd >= 0)
        close(j->lock_fd); /* releases the flock */
    free(j->path);
    free(j);
}

int mbq_journal_version(mbq_journal *j)
{
    int v = 0;
    return read_user_version(j, &v) < 0 ? -1 : v;
}

int mbq_journal_begin(mbq_journal *j)
{
    return exec(j, "BEGIN IMMEDIATE");
}

int mbq_journal_commit(mbq_journal *j)
{
    return exec(j, "COMMIT");
}

void mbq_journal_rollback(mbq_journal *j)
{
    sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
}

/* ---- runs ---- */

int mbq_journal_run_start(mbq_journal *j, const char *run_id, int64_t now_ms)
{
    sqlite3_stmt *st;
    int rc = prepare(j, &st, "INSERT INTO runs (run_id, started_ms, pid) VALUES (?, ?, ?)", "sii",
                     run_id, now_ms, (int64_t)getpid());
    return rc < 0 ? rc : step_done(j, st, "cannot record the run");
}

int mbq_journal_run_finish(mbq_journal *j, const char *run_id, int64_t now_ms, int tables_ok,
                           int tables_failed, int exit_code)
{
    sqlite3_stmt *st;
    int rc = prepare(j, &st,
                     "UPDATE runs SET finished_ms = ?, status = ?, tables_ok = ?, "
                     "tables_failed = ?, exit_code = ? WHERE run_id = ?",
                     "isiiis", now_ms, tables_failed ? "failed" : "ok", (int64_t)tables_ok,
                     (int64_t)tables_failed, (int64_t)exit_code, run_id);
    return rc < 0 ? rc : step_done(j, st, "cannot record the end of the run");
}

int mbq_journal_runs_mark_interrupted(mbq_journal *j, int *n)
{
    sqlite3_stmt *st;
    int rc = prepare(j, &st, "UPDATE runs SET status = 'interrupted' WHERE status = 'running'",
                     NULL);
    if (rc < 0)
        return rc;
    rc = step_done(j, st, "cannot mark interrupted runs");
    if (rc == 0 && n)
        *n = sqlite3_changes(j->db);
    return rc;
}

/* ---- tables ---- */

void mbq_table_state_clear(mbq_table_state *s)
{
    free(s->table_name);
    free(s->cursor_value);
    free(s->cursor_kind);
    free(s->last_run_id);
    free(s->last_error);
    free(s->last_error_state);
    free(s->last_low);
    free(s->last_high);
    free(s->last_checksum);
    free(s->source_schema);
    memset(s, 0, sizeof *s);
}

int mbq_journal_table_get(mbq_journal *j, mbq_table_state *out, const char *table)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st;
    int rc = prepare(j, &st,
                     "SELECT table_name, cursor_value, cursor_kind, last_success_ms, "
                     "last_run_id, last_rows, total_rows, consecutive_failures, last_error, "
                     "last_error_state, last_low, last_high, last_checksum, source_schema, "
                     "updated_ms FROM tables WHERE table_name = ?",
                     "s", table);
    if (rc < 0)
        return rc;
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        out->table_name = col_text(st, 0);
        out->cursor_value = col_text(st, 1);
        out->cursor_kind = col_text(st, 2);
        out->last_success_ms = sqlite3_column_int64(st, 3);
        out->last_run_id = col_text(st, 4);
        out->last_rows = sqlite3_column_int64(st, 5);
        out->total_rows = sqlite3_column_int64(st, 6);
        out->consecutive_failures = sqlite3_column_int(st, 7);
        out->last_error = col_text(st, 8);
        out->last_error_state = col_text(st, 9);
        out->last_low = col_text(st, 10);
        out->last_high = col_text(st, 11);
        out->last_checksum = col_text(st, 12);
        out->source_schema = col_text(st, 13);
        out->updated_ms = sqlite3_column_int64(st, 14);
    } else if (step == SQLITE_DONE) {
        out->table_name = mbq_strdup(table);
    } else {
        rc = db_error(j, "cannot read table state");
    }
    sqlite3_finalize(st);
    if (rc == 0 && !out->table_name)
        rc = MBQ_ENOMEM;
    return rc;
}

void mbq_strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

int mbq_journal_table_names(mbq_journal *j, char ***out)
{
    *out = NULL;
    sqlite3_stmt *st;
    int rc = prepare(j, &st,
                     "SELECT table_name FROM tables UNION SELECT table_name FROM table_runs "
                     "ORDER BY 1",
                     NULL);
    if (rc < 0)
        return rc;
    size_t n = 0;
    char **v = mbq_calloc(1, sizeof *v);
    int step;
    while (v && (step = sqlite3_step(st)) == SQLITE_ROW) {
        char **grown = mbq_realloc(v, (n + 2) * sizeof *v);
        if (!grown)
            break;
        v = grown;
        v[n] = col_text(st, 0);
        v[++n] = NULL;
    }
    if (!v || step != SQLITE_DONE) {
        rc = v ? db_error(j, "cannot list tables") : MBQ_ENOMEM;
        mbq_strv_free(v);
        v = NULL;
    }
    sqlite3_finalize(st);
    *out = v;
    return rc;
}

/* Insert the table's row if it is missing, so UPDATEs below always hit. */
static int table_ensure(mbq_journal *j, const char *table, int64_t now_ms)
{
    sqlite3_stmt *st;
    int rc = prepare(j, &st, "INSERT OR IGNORE INTO tables (table_name, updated_ms) VALUES (?, ?)",
                     "si", table, now_ms);
    return rc < 0 ? rc : step_done(j, st, "cannot record table");
}

int mbq_journal_table_failed(mbq_journal *j, const char *table, const char *state,
                             const char *error, int64_t now_ms)
{
    int rc = table_ensure(j, table, now_ms);
    sqlite3_stmt *st;
    if (rc == 0)
        rc = prepare(j, &st,
                     "UPDATE tables SET consecutive_failures = consecutive_failures + 1, "
                     "last_error = ?, last_error_state = ?, updated_ms = ? WHERE table_name = ?",
                     "ssis", error, state, now_ms, table);
    return rc < 0 ? rc : step_done(j, st, "cannot record the failure");
}

int mbq_journal_table_set_schema(mbq_journal *j, const char *table, const char *schema_json,
                                 int64_t now_ms)
{
    int rc = table_ensure(j, table, now_ms);
    sqlite3_stmt *st;
    if (rc == 0)
        rc = prepare(j, &st,
                     "UPDATE tables SET source_schema = ?, updated_ms = ? WHERE table_name = ?",
                     "sis", schema_json, now_ms, table);
    return rc < 0 ? rc : step_done(j, st, "cannot record the schema");
}

int mbq_journal_table_set_cursor(mbq_journal *j, const char *table, const char *cursor,
                                 const char *kind, int64_t now_ms)
{
    int rc = table_ensure(j, table, now_ms);
    sqlite3_stmt *st;
    if (rc == 0)
        rc = prepare(j, &st,
                     "UPDATE tables SET cursor_value = ?, cursor_kind = COALESCE(?, cursor_kind), "
                     "last_low = NULL, last_high = NULL, last_checksum = NULL, "
                     "source_schema = CASE WHEN ?1 IS NULL THEN NULL ELSE source_schema END, "
                     "updated_ms = ? WHERE table_name = ?",
                     "ssis", cursor, kind, now_ms, table);
    return rc < 0 ? rc : step_done(j, st, "cannot set the cursor");
}

/* ---- table runs ---- */

void mbq_table_run_clear(mbq_table_run *r)
{
    free(r->run_id);
    free(r->last_run_id);
    free(r->table_name);
    free(r->state);
    free(r->load_mode);
    free(r->low);
    free(r->high);
    free(r->staged_path);
    free(r->staged_checksum);
    free(r->staging_table);
    free(r->load_job_id);
    free(r->merge_job_id);
    free(r->error);
    free(r->error_state);
    free(r->mirror_state);
    free(r->mirror_job_id);
    free(r->tail_low);
    free(r->tail_checksum);
    memset(r, 0, sizeof *r);
}

#define RUN_COLUMNS                                                                                \
    "id, run_id, last_run_id, table_name, state, load_mode, attempt, low, high, staged_path, "    \
    "staged_rows, staged_bytes, staged_checksum, staging_table, load_job_id, merge_job_id, "      \
    "rows_merged, error, error_state, started_ms, updated_ms, finished_ms, t_schema_ms, "         \
    "t_extract_ms, t_stage_ms, t_merge_ms, t_commit_ms, mirror_state, mirror_job_id, tail_low, "  \
    "tail_checksum"

static void run_from_row(sqlite3_stmt *st, mbq_table_run *r)
{
    r->id = sqlite3_column_int64(st, 0);
    r->run_id = col_text(st, 1);
    r->last_run_id = col_text(st, 2);
    r->table_name = col_text(st, 3);
    r->state = col_text(st, 4);
    r->load_mode = col_text(st, 5);
    r->attempt = sqlite3_column_int(st, 6);
    r->low = col_text(st, 7);
    r->high = col_text(st, 8);
    r->staged_path = col_text(st, 9);
    r->staged_rows = sqlite3_column_int64(st, 10);
    r->staged_bytes = sqlite3_column_int64(st, 11);
    r->staged_checksum = col_text(st, 12);
    r->staging_table = col_text(st, 13);
    r->load_job_id = col_text(st, 14);
    r->merge_job_id = col_text(st, 15);
    r->rows_merged = sqlite3_column_int64(st, 16);
    r->error = col_text(st, 17);
    r->error_state = col_text(st, 18);
    r->started_ms = sqlite3_column_int64(st, 19);
    r->updated_ms = sqlite3_column_int64(st, 20);
    r->finished_ms = sqlite3_column_int64(st, 21);
    r->t_schema_ms = sqlite3_column_int64(st, 22);
    r->t_extract_ms = sqlite3_column_int64(st, 23);
    r->t_stage_ms = sqlite3_column_int64(st, 24);
    r->t_merge_ms = sqlite3_column_int64(st, 25);
    r->t_commit_ms = sqlite3_column_int64(st, 26);
    r->mirror_state = col_text(st, 27);
    r->mirror_job_id = col_text(st, 28);
    r->tail_low = col_text(st, 29);
    r->tail_checksum = col_text(st, 30);
}

/* Run a SELECT of RUN_COLUMNS with its parameters bound; collect rows. */
static int runs_query(mbq_journal *j, sqlite3_stmt *st, mbq_table_run **out, int *n)
{
    int rc = 0, cap = 0, step;
    mbq_table_run *v = NULL;
    *out = NULL;
    *n = 0;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 4;
            mbq_table_run *grown = mbq_realloc(v, (size_t)cap * sizeof *v);
            if (!grown) {
                rc = MBQ_ENOMEM;
                break;
            }
            v = grown;
        }
        memset(&v[*n], 0, sizeof *v);
        run_from_row(st, &v[(*n)++]);
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = db_error(j, "cannot read table runs");
    sqlite3_finalize(st);
    if (rc < 0) {
        mbq_table_runs_free(v, *n);
        *n = 0;
        return rc;
    }
    *out = v;
    return 0;
}

void mbq_table_runs_free(mbq_table_run *runs, int n)
{
    for (int i = 0; i < n; i++)
        mbq_table_run_clear(&runs[i]);
    free(runs);
}

int mbq_journal_table_run_in_flight(mbq_journal *j, mbq_table_run *out, bool *found,
                                    const char *table)
{
    sqlite3_stmt *st;
    *found = false;
    memset(out, 0, sizeof *out);
    int rc = prepare(j, &st,
                     "SELECT " RUN_COLUMNS " FROM table_runs WHERE table_name = ? AND state NOT "
                     "IN ('done', 'failed', 'abandoned')",
                     "s", table);
    if (rc < 0)
        return rc;
    mbq_table_run *v = NULL;
    int n = 0;
    if ((rc = runs_query(j, st, &v, &n)) < 0)
        return rc;
    if (n > 0) {
        *out = v[0];
        *found = true;
        memset(&v[0], 0, sizeof v[0]);
    }
    mbq_table_runs_free(v, n);
    return 0;
}

int mbq_journal_table_runs_recent(mbq_journal *j, mbq_table_run **out, int *n, const char *table,
                                  int limit)
{
    sqlite3_stmt *st;
    int rc = prepare(j, &st,
                     "SELECT " RUN_COLUMNS " FROM table_runs WHERE table_name = ? ORDER BY id "
                     "DESC LIMIT ?",
                     "si", table, (int64_t)limit);
    return rc < 0 ? rc : runs_query(j, st, out, n);
}

int mbq_journal_table_run_create(mbq_journal *j, mbq_table_run *r)
{
    sqlite3_stmt *st;
    int rc = prepare(j, &st,
                     "INSERT INTO table_runs (run_id, last_run_id, table_name, state, started_ms, "
                     "updated_ms) VALUES (?, ?, ?, ?, ?, ?)",
                     "ssssii", r->run_id, r->run_id, r->table_name, r->state, r->started_ms,
                     r->updated_ms);
    if (rc < 0)
        return rc;
    if (sqlite3_step(st) != SQLITE_DONE) {
        int ext = sqlite3_extended_errcode(j->db);
        rc = ext == SQLITE_CONSTRAINT_UNIQUE
                 ? mbq_error_set(MBQ_EINTERNAL, "table '%s' already has a run in flight",
                                 r->table_name)
                 : db_error(j, "cannot create the table run");
    } else {
        r->id = sqlite3_last_insert_rowid(j->db);
    }
    sqlite3_finalize(st);
    return rc;
}

int mbq_journal_table_run_save(mbq_journal *j, const mbq_table_run *r)
{
    sqlite3_stmt *st;
    int rc = prepare(j, &st,
                     "UPDATE table_runs SET last_run_id = ?, state = ?, load_mode = ?, attempt = ?, "
                     "low = ?, high = ?, staged_path = ?, staged_rows = ?, staged_bytes = ?, "
                     "staged_checksum = ?, staging_table = ?, load_job_id = ?, merge_job_id = ?, "
                     "rows_merged = ?, error = ?, error_state = ?, updated_ms = ?, "
                     "finished_ms = ?, t_schema_ms = ?, t_extract_ms = ?, t_stage_ms = ?, "
                     "t_merge_ms = ?, t_commit_ms = ?, tail_low = ?, tail_checksum = ? WHERE id = ?",
                     "sssisssiissssissiiiiiiissi", r->last_run_id, r->state, r->load_mode,
                     (int64_t)r->attempt, r->low, r->high, r->staged_path, r->staged_rows,
                     r->staged_bytes, r->staged_checksum, r->staging_table, r->load_job_id,
                     r->merge_job_id, r->rows_merged, r->error, r->error_state, r->updated_ms,
                     r->finished_ms, r->t_schema_ms, r->t_extract_ms, r->t_stage_ms,
                     r->t_merge_ms, r->t_commit_ms, r->tail_low, r->tail_checksum, r->id);
    if (rc < 0)
        return rc;
    rc = step_done(j, st, "cannot save the table run");
    if (rc == 0 && sqlite3_changes(j->db) != 1)
        rc = mbq_error_set(MBQ_EINTERNAL, "table run %lld vanished from the journal",
                           (long long)r->id);
    return rc;
}

int mbq_journal_table_run_commit(mbq_journal *j, mbq_table_run *r, const char *cursor,
                                 const char *cursor_kind, int64_t rows, int64_t now_ms)
{
    int rc;
    sqlite3_stmt *st;
    if ((rc = mbq_journal_begin(j)) < 0)
        return rc;
    free(r->state);
    r->state = mbq_strdup("done");
    if (!r->state) {
        rc = MBQ_ENOMEM;
        goto fail;
    }
    r->finished_ms = now_ms;
    r->updated_ms = now_ms;
    if ((rc = mbq_journal_table_run_save(j, r)) < 0)
        goto fail;
    /* Only a run that ran a job (moved data) is mirrored: an unchanged table
     * must cost no BigQuery job at all, the metadata INSERT included. */
    if ((rc = prepare(j, &st,
                      "UPDATE table_runs SET mirror_state = CASE WHEN load_job_id IS NOT NULL "
                      "THEN 'pending' ELSE 'none' END WHERE id = ?",
                      "i", r->id)) < 0 ||
        (rc = step_done(j, st, "cannot queue the metadata mirror")) < 0)
        goto fail;
    if ((rc = table_ensure(j, r->table_name, now_ms)) < 0)
        goto fail;
    if ((rc = prepare(j, &st,
                      "UPDATE tables SET cursor_value = ?, cursor_kind = COALESCE(?, cursor_kind), "
                      "last_success_ms = ?, last_run_id = ?, last_rows = ?, "
                      "total_rows = total_rows + ?, consecutive_failures = 0, last_error = NULL, "
                      "last_error_state = NULL, last_low = ?, last_high = ?, last_checksum = ?, "
                      "updated_ms = ? WHERE table_name = ?",
                      "ssisiisssis", cursor, cursor_kind, now_ms, r->last_run_id, rows, rows,
                      r->tail_low, r->high, r->tail_checksum, now_ms, r->table_name)) < 0 ||
        (rc = step_done(j, st, "cannot commit the cursor")) < 0)
        goto fail;
    return mbq_journal_commit(j);
fail:
    mbq_journal_rollback(j);
    return rc;
}

int mbq_journal_mirror_pending(mbq_journal *j, mbq_table_run **out, int *n)
{
    sqlite3_stmt *st;
    int rc = prepare(j, &st,
                     "SELECT " RUN_COLUMNS " FROM table_runs WHERE mirror_state = 'pending' "
                     "ORDER BY id",
                     NULL);
    return rc < 0 ? rc : runs_query(j, st, out, n);
}

int mbq_journal_mirror_set(mbq_journal *j, int64_t table_run_id, const char *state,
                           const char *job_id)
{
    sqlite3_stmt *st;
    int rc = prepare(j, &st,
                     "UPDATE table_runs SET mirror_state = ?, mirror_job_id = ? WHERE id = ?",
                     "ssi", state, job_id, table_run_id);
    return rc < 0 ? rc : step_done(j, st, "cannot record the metadata mirror");
}

/* ---- events ---- */

int mbq_journal_event_add(mbq_journal *j, const mbq_event *e)
{
    sqlite3_stmt *st;
    int rc = prepare(j, &st,
                     "INSERT INTO events (ts_ms, run_id, table_name, kind, column_name, old_type, "
                     "new_type, action, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     "issssssss", e->ts_ms ? e->ts_ms : mbq_now_ms(), e->run_id, e->table_name,
                     e->kind, e->column_name, e->old_type, e->new_type, e->action, e->detail);
    return rc < 0 ? rc : step_done(j, st, "cannot record the event");
}

int mbq_journal_events_recent(mbq_journal *j, mbq_event **out, int *n, const char *table,
                              int limit)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    int rc = prepare(j, &st,
                     "SELECT id, ts_ms, run_id, table_name, kind, column_name, old_type, "
                     "new_type, action, detail FROM events WHERE ? IS NULL OR table_name = ? "
                     "ORDER BY id DESC LIMIT ?",
                     "ssi", table, table, (int64_t)limit);
    if (rc < 0)
        return rc;
    int cap = 0, step;
    mbq_event *v = NULL;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            mbq_event *grown = mbq_realloc(v, (size_t)cap * sizeof *v);
            if (!grown) {
                rc = MBQ_ENOMEM;
                break;
            }
            v = grown;
        }
        mbq_event *e = &v[(*n)++];
        e->id = sqlite3_column_int64(st, 0);
        e->ts_ms = sqlite3_column_int64(st, 1);
        e->run_id = col_text(st, 2);
        e->table_name = col_text(st, 3);
        e->kind = col_text(st, 4);
        e->column_name = col_text(st, 5);
        e->old_type = col_text(st, 6);
        e->new_type = col_text(st, 7);
        e->action = col_text(st, 8);
        e->detail = col_text(st, 9);
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = db_error(j, "cannot read events");
    sqlite3_finalize(st);
    if (rc < 0) {
        mbq_events_free(v, *n);
        *n = 0;
        return rc;
    }
    *out = v;
    return 0;
}

void mbq_events_free(mbq_event *e, int n)
{
    for (int i = 0; i < n; i++) {
        free(e[i].run_id);
        free(e[i].table_name);
        free(e[i].kind);
        free(e[i].column_name);
        free(e[i].old_type);
        free(e[i].new_type);
        free(e[i].action);
        free(e[i].detail);
    }
    free(e);
}

/* ---- load parts ---- */

void mbq_load_parts_free(mbq_load_part *parts, int n)
{
    for (int i = 0; parts && i < n; i++) {
        free(parts[i].path);
        free(parts[i].checksum);
        free(parts[i].job_id);
    }
    free(parts);
}

int mbq_journal_parts_get(mbq_journal *j, mbq_load_part **out, int *n, int64_t table_run_id)
{
    sqlite3_stmt *st;
    mbq_load_part *v = NULL;
    int rc, cap = 0, step;
    *out = NULL;
    *n = 0;
    if ((rc = prepare(j, &st,
                      "SELECT part, path, rows, bytes, checksum, job_id, loaded FROM load_parts "
                      "WHERE table_run_id = ? ORDER BY part",
                      "i", table_run_id)) < 0)
        return rc;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            mbq_load_part *grown = mbq_realloc(v, (size_t)cap * sizeof *v);
            if (!grown) {
                rc = MBQ_ENOMEM;
                break;
            }
            v = grown;
        }
        mbq_load_part *p = &v[(*n)++];
        p->part = sqlite3_column_int(st, 0);
        p->path = col_text(st, 1);
        p->rows = sqlite3_column_int64(st, 2);
        p->bytes = sqlite3_column_int64(st, 3);
        p->checksum = col_text(st, 4);
        p->job_id = col_text(st, 5);
        p->loaded = sqlite3_column_int(st, 6) != 0;
        if (!p->path || !p->checksum) {
            rc = MBQ_ENOMEM;
            break;
        }
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = db_error(j, "cannot read load parts");
    sqlite3_finalize(st);
    if (rc < 0) {
        mbq_load_parts_free(v, *n);
        *n = 0;
        return rc;
    }
    *out = v;
    return 0;
}

int mbq_journal_parts_set(mbq_journal *j, int64_t table_run_id, const mbq_load_part *parts,
                          int n)
{
    sqlite3_stmt *st;
    int rc = mbq_journal_begin(j);
    if (rc < 0)
        return rc;
    if ((rc = prepare(j, &st, "DELETE FROM load_parts WHERE table_run_id = ?", "i",
                      table_run_id)) < 0 ||
        (rc = step_done(j, st, "cannot delete load parts")) < 0)
        goto fail;
    for (int i = 0; i < n; i++) {
        const mbq_load_part *p = &parts[i];
        if ((rc = prepare(j, &st,
                          "INSERT INTO load_parts (table_run_id, part, path, rows, bytes, "
                          "checksum, job_id, loaded) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                          "iisiissi", table_run_id, (int64_t)p->part, p->path, p->rows, p->bytes,
                          p->checksum, p->job_id, (int64_t)p->loaded)) < 0 ||
            (rc = step_done(j, st, "cannot record a load part")) < 0)
            goto fail;
    }
    return mbq_journal_commit(j);
fail:
    mbq_journal_rollback(j);
    return rc;
}

int mbq_journal_part_update(mbq_journal *j, int64_t table_run_id, int part, const char *job_id,
                            bool loaded)
{
    sqlite3_stmt *st;
    int rc = prepare(j, &st,
                     "UPDATE load_parts SET job_id = ?, loaded = ? WHERE table_run_id = ? AND "
                     "part = ?",
                     "siii", job_id, (int64_t)loaded, table_run_id, (int64_t)part);
    return rc < 0 ? rc : step_done(j, st, "cannot record a load part");
}

/* ---- for the other journal files (journal_internal.h) ---- */

sqlite3 *mbq_journal_db(mbq_journal *j)
{
    return j->db;
}

const char *mbq_journal_path(const mbq_journal *j)
{
    return j->path;
}
