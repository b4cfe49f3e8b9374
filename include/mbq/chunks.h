/* Key-range chunks of a MySQL/MariaDB table, for chunked backfills (a first
 * sync or full refresh read in pieces, each in its own short snapshot).
 *
 * A chunk is the rows whose primary key k satisfies  after < k <= upto
 * (either bound may be open), compared as the server compares the key:
 * column by column in index order, each column with its own collation. The
 * bounds are key values read from the table itself, so every row falls in
 * exactly one chunk whatever the key's types, gaps or skew.
 *
 * A key value travels (journal, messages) encoded: each column's bytes in
 * lowercase hex, the columns joined by ','. Lossless for any bytes; it never
 * reaches SQL as text: the predicate builder turns each column back into a
 * literal of the column's own kind (a bare number, an escaped string, a hex
 * binary literal). */
#ifndef MBQ_CHUNKS_H
#define MBQ_CHUNKS_H

#include <stddef.h>
#include <stdint.h>

#include "mbq/buf.h"
#include "mbq/mysql_source.h"

/* Can the table be chunked by `key` (n_key column names)? Every key column
 * must be of a type whose server order a literal reproduces: integers,
 * DECIMAL, YEAR, character strings (compared in the column's collation),
 * binary strings, DATE, DATETIME, TIMESTAMP, TIME. Not: FLOAT/DOUBLE (their
 * text form is rounded), ENUM/SET (ordered by member number, not text),
 * BIT, JSON, spatial. 0, or MBQ_ESCHEMA naming the column and its type. */
int mbq_chunk_key_check(const mbq_table_schema *s, const char *const *key, size_t n_key);

/* Plan: the inclusive upper key of every chunk but the last, in key order.
 * A key of one integer column is split from its range and the table's row
 * estimate (MIN, MAX and information_schema.TABLES.TABLE_ROWS: no walk of
 * the table; chunks of about chunk_rows rows where the keys are dense, as
 * uneven as their gaps and skew otherwise). Any other key is walked, each
 * bound exactly `chunk_rows` rows after the previous one:
 *   SELECT key FROM t WHERE key > previous ORDER BY key LIMIT 1 OFFSET chunk_rows-1
 * (an index range read of chunk_rows entries per boundary). *out gets *n
 * encoded keys (NULL-terminated array, free with mbq_strv_free); *n = 0
 * when the table has at most chunk_rows rows. MBQ_ECONFIG for chunk_rows <
 * 1, MBQ_ESCHEMA (mbq_chunk_key_check), MBQ_EMYSQL/MBQ_ENET, MBQ_ENOMEM. */
int mbq_mysql_chunk_bounds(char ***out, size_t *n, mbq_mysql *c, const mbq_table_schema *s,
                           const char *const *key, size_t n_key, int64_t chunk_rows);

/* Append to `out` the SQL condition of a chunk: `after < key <= upto` as
 * column-by-column comparisons (a leading `k1 >= a1` / `k1 <= b1` lets the
 * server read only the range of the index); "TRUE" when both are NULL.
 * MBQ_EDATA for an encoded key that does not fit the key (damaged journal),
 * MBQ_ENOMEM. */
int mbq_mysql_chunk_where(mbq_buf *out, mbq_mysql *c, const mbq_table_schema *s,
                          const char *const *key, size_t n_key, const char *after,
                          const char *upto);

/* The cursor's high-water mark now: SELECT MAX(cursor) (text, NULL when no
 * row has one). *out freed by the caller. */
int mbq_mysql_cursor_max(char **out, mbq_mysql *c, const mbq_table_schema *s,
                         const char *cursor);

/* What mbq_mysql_extract_chunked did. */
typedef struct mbq_chunked_result {
    uint64_t rows, bytes, raw_bytes;
    int chunks;
    int64_t plan_ms;     /* walking the key for the boundaries */
    int64_t elapsed_ms;  /* everything, the plan included */
} mbq_chunked_result;

/* Extract a whole table in key-range chunks of `chunk_rows` (planned with
 * mbq_mysql_chunk_bounds on `c`) on `jobs` connections (`c` and jobs - 1
 * new ones made with `cfg`), each chunk its own snapshot (mbq_mysql_extract
 * with base's schema, key (base->pk), compression), into
 * <dir>/c00001.ndjson[.gz], ... in key order. `base` must have no cursor:
 * every row is read. What a backfill reads, without loading it (`mbq
 * extract --chunk-rows`, the benchmark). Errors as mbq_mysql_extract; on
 * error the files already written stay. */
int mbq_mysql_extract_chunked(mbq_chunked_result *out, mbq_mysql *c, const mbq_mysql_config *cfg,
                              const mbq_extract_options *base, const char *dir,
                              int64_t chunk_rows, int jobs);

/* Encode one key (n values of the given lengths) into `out`. */
int mbq_chunk_key_encode(mbq_buf *out, const char *const *values, const size_t *lens, size_t n);

#endif
