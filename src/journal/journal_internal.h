/* Shared by the journal's source files (journal.c writes and reads,
 * journal_read.c holds the dashboard's read-only queries, journal_backfill.c
 * a backfill's chunk tables, journal_reconcile.c the reconciliations). Not a
 * public interface. */
#ifndef MBQ_JOURNAL_INTERNAL_H
#define MBQ_JOURNAL_INTERNAL_H

#include <sqlite3.h>

#include "mbq/journal.h"

struct mbq_journal {
    sqlite3 *db;
    char *path;
    int lock_fd; /* -1 when read-only */
};

/* The open database and the file's path (for messages); owned by `j`. */
sqlite3 *mbq_journal_db(mbq_journal *j);
const char *mbq_journal_path(const mbq_journal *j);

#endif
