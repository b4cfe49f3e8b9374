/* Shared by the journal's source files (journal.c, journal_reconcile.c).
 * Not a public interface. */
#ifndef MBQ_JOURNAL_INTERNAL_H
#define MBQ_JOURNAL_INTERNAL_H

#include <sqlite3.h>

#include "mbq/journal.h"

/* The open database and the file's path (for messages); owned by `j`. */
sqlite3 *mbq_journal_sqlite(mbq_journal *j);
const char *mbq_journal_file(const mbq_journal *j);

#endif
