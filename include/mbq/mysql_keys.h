/* The key scanner of a reconciliation (mbq/reconcile.h): one chunk of a
 * table's primary keys, in key order, read inside its own consistent
 * snapshot into a load-ready NDJSON file.
 *
 * A chunk is
 *   START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY
 *   [hwm := SELECT MAX(cursor)]                       (the first chunk)
 *   SELECT k1, k2 FROM t WHERE (k1, k2) > <after> ORDER BY k1, k2 LIMIT n
 *   COMMIT
 * The row comparison is spelled out (k1 > a OR (k1 = a AND k2 > b)) so that
 * the server reads a range of the primary key (an index-only scan of the
 * clustered index in key order: no sort, no temporary table), and the rows
 * are streamed (mysql_use_result): the client holds one row at a time
 * whatever the chunk size. Values are encoded exactly as the extract
 * encodes them (typemap), so the staged keys have the target's types. */
#ifndef MBQ_MYSQL_KEYS_H
#define MBQ_MYSQL_KEYS_H

#include <stdbool.h>
#include <stdint.h>

#include "mbq/mysql_source.h"

typedef struct mbq_key_scan_options {
    const mbq_table_schema *schema; /* required */
    const char *const *key;         /* key column names (MySQL), in key order */
    size_t n_key;
    const char *cursor;             /* with want_hwm: read MAX(cursor) in the snapshot */
    bool want_hwm;
    const char *after;              /* the last key of the previous chunk (last_key below);
                                       NULL = from the first key */
    int64_t limit;                  /* keys in this chunk, > 0 */
    const char *path;               /* the file; written as <path>.tmp, fsync'd, renamed */
    const char *log_table;          /* for messages; NULL = schema->table */
} mbq_key_scan_options;

typedef struct mbq_key_scan_result {
    int64_t rows;
    int64_t bytes;
    char *last_key; /* the chunk's last key, to pass as `after`; NULL when rows == 0 */
    char *hwm;      /* with want_hwm: MAX(cursor), NULL for an empty table */
} mbq_key_scan_result;

/* Scan one chunk (above). The file is written even for 0 rows. A key value
 * the encoder turns into NULL (a zero date) fails with MBQ_EDATA: a key
 * staged as NULL matches no target row, whose row would then look deleted.
 * Errors: MBQ_EMYSQL/MBQ_ENET, MBQ_EIO, MBQ_EDATA, MBQ_ECONFIG (a malformed
 * `after`), MBQ_ENOMEM. Free the result with mbq_key_scan_result_free. */
int mbq_mysql_scan_keys(mbq_key_scan_result *out, mbq_mysql *c, const mbq_key_scan_options *o);
void mbq_key_scan_result_free(mbq_key_scan_result *r);

#endif
