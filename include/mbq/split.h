/* Split a staged NDJSON file into parts that each stay under a size bound:
 * BigQuery takes at most 4 GB per gzip file (5 TB uncompressed) in a load
 * job (quotas page, "Load jobs": "ndJSON: Maximum file size"), so a table
 * whose extract is larger must load in several jobs.
 *
 * Parts are cut at line ends (a row never spans two parts), keep the
 * source's order, and are compressed like the source. */
#ifndef MBQ_SPLIT_H
#define MBQ_SPLIT_H

#include <stdbool.h>
#include <stdint.h>

#include "mbq/journal.h"

typedef struct mbq_split_options {
    const char *path;          /* the staged file (gzip or plain NDJSON) */
    bool gzip;                 /* read and write gzip */
    int64_t max_part_bytes;    /* each part's file size stays at or below this */
    int64_t expect_rows;       /* the journaled row count; -1 = unchecked */
    const char *expect_checksum; /* the journaled "sha256:" of the whole file's NDJSON; NULL =
                                    unchecked */
} mbq_split_options;

/* Write <path>.part0001, <path>.part0002, ... (each as <name>.tmp, fsync'd,
 * renamed; then the directory fsync'd) and describe them in *out (an array
 * of *n parts with path, rows, bytes and checksum; job_id NULL, loaded
 * false), freed with mbq_load_parts_free. The source is left in place.
 * Errors: MBQ_EIO (read or write failed; or the file does not match the
 * expected rows or checksum, or ends inside a row: it is not what was
 * extracted, and *mismatch is set), MBQ_EDATA (one row alone is larger
 * than max_part_bytes), MBQ_ENOMEM. On error no part file is left
 * behind. */
int mbq_split_file(mbq_load_part **out, int *n, bool *mismatch, const mbq_split_options *opts);

/* Remove the part files of `parts` (missing ones are fine). */
void mbq_split_remove(const mbq_load_part *parts, int n);

#endif
