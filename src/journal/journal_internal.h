/* The journal handle, shared by the files of src/journal/ (journal.c writes
 * and reads, journal_read.c holds the read-only queries of the dashboard). */
#ifndef MBQ_JOURNAL_INTERNAL_H
#define MBQ_JOURNAL_INTERNAL_H

#include <sqlite3.h>

struct mbq_journal {
    sqlite3 *db;
    char *path;
    int lock_fd; /* -1 when read-only */
};

#endif
