/* SQLite helpers shared by the journal's files (journal_internal.h): one
 * error shape, one way to prepare, bind, read and run a statement. */
#include <sqlite3.h>

#include "mbq/error.h"
#include "mbq/util.h"
#include "journal_internal.h"
#include "mbq/banned.h"

int jsql_error(mbq_journal *j, const char *what)
{
    sqlite3 *db = mbq_journal_db(j);
    int code = sqlite3_errcode(db);
    /* A full disk or an I/O error is the machine's problem (exit 74), not
     * a damaged journal. */
    return mbq_error_set(code == SQLITE_FULL || code == SQLITE_IOERR ? MBQ_EIO : MBQ_EJOURNAL,
                         "journal '%s': %s: %s", mbq_journal_path(j), what, sqlite3_errmsg(db));
}

int jsql_prepare(mbq_journal *j, sqlite3_stmt **st, const char *sql)
{
    *st = NULL;
    if (sqlite3_prepare_v2(mbq_journal_db(j), sql, -1, st, NULL) != SQLITE_OK)
        return jsql_error(j, "cannot prepare statement");
    return 0;
}

int jsql_bind_text(sqlite3_stmt *st, int i, const char *s)
{
    return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
}

int jsql_bind_count(sqlite3_stmt *st, int i, int64_t v)
{
    return v < 0 ? sqlite3_bind_null(st, i) : sqlite3_bind_int64(st, i, v);
}

char *jsql_col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *s = sqlite3_column_text(st, i);
    return s ? mbq_strdup((const char *)s) : NULL;
}

int64_t jsql_col_count(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, i);
}

int jsql_run(mbq_journal *j, sqlite3_stmt *st, int bind_rc, const char *what)
{
    int rc = 0;
    if (bind_rc != SQLITE_OK)
        rc = jsql_error(j, "cannot bind parameter");
    else if (sqlite3_step(st) != SQLITE_DONE)
        rc = jsql_error(j, what);
    sqlite3_finalize(st);
    return rc;
}
