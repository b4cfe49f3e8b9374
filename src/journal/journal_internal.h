/* Shared by the journal's source files (journal.c writes and reads,
 * journal_read.c holds the dashboard's read-only queries, journal_backfill.c
 * a backfill's chunk tables, journal_reconcile.c the reconciliations,
 * journal_cdc*.c change data capture; journal_sql.c the SQLite helpers
 * below). Not a public interface. */
#ifndef MBQ_JOURNAL_INTERNAL_H
#define MBQ_JOURNAL_INTERNAL_H

#include <sqlite3.h>
#include <stdint.h>

#include "mbq/journal.h"

struct mbq_journal {
    sqlite3 *db;
    char *path;
    int lock_fd; /* -1 when read-only */
};

/* The open database and the file's path (for messages); owned by `j`. */
sqlite3 *mbq_journal_db(mbq_journal *j);
const char *mbq_journal_path(const mbq_journal *j);

/* ---- journal_sql.c ---- */

/* Set the error for a failed SQLite call: MBQ_EIO for a full disk or an
 * I/O error, MBQ_EJOURNAL otherwise, "journal 'P': what: sqlite's message".
 * Returns the code. */
int jsql_error(mbq_journal *j, const char *what);
/* Prepare `sql` into *st (NULL on failure). */
int jsql_prepare(mbq_journal *j, sqlite3_stmt **st, const char *sql);
/* Bind text (NULL binds NULL) / a count (-1, unknown, binds NULL); SQLite's
 * codes, for jsql_run's bind_rc. */
int jsql_bind_text(sqlite3_stmt *st, int i, const char *s);
int jsql_bind_count(sqlite3_stmt *st, int i, int64_t v);
/* A copy of column i's text (NULL for NULL) / its integer (-1 for NULL). */
char *jsql_col_text(sqlite3_stmt *st, int i);
int64_t jsql_col_count(sqlite3_stmt *st, int i);
/* Step a statement to its end (bind_rc: the binds' SQLITE_OK, or the first
 * failure) and finalize it. */
int jsql_run(mbq_journal *j, sqlite3_stmt *st, int bind_rc, const char *what);

#endif
