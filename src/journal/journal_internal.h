/* Shared by the journal's source files (journal.c and the files that keep
 * one concern's tables, e.g. journal_backfill.c). Not a public interface. */
#ifndef MBQ_JOURNAL_INTERNAL_H
#define MBQ_JOURNAL_INTERNAL_H

#include <sqlite3.h>

#include "mbq/journal.h"

/* The open database and its path (for messages). */
sqlite3 *mbq_journal_db(mbq_journal *j);
const char *mbq_journal_path(mbq_journal *j);

#endif
