/* Streaming extract + load: rows go from the server through the encoder into
 * the staged file AND, through a bounded in-memory pipe, into the upload
 * request at the same time, so that a sync's wall time approaches its
 * longest stage rather than the sum of extract and load.
 *
 *   mysql_use_result -> encoder -> writer thread -> <path>.tmp (fsync, rename)
 *                                              \-> mbq_pipe (bounded) -> upload
 *                                                  thread: one resumable upload
 *                                                  session, a PUT per chunk
 *
 * Correctness (DESIGN.md):
 *  - the load job has the caller's deterministic id;
 *  - the staged file is still written, fsync'd and renamed, and its result
 *    (rows, checksum, high) is exactly mbq_mysql_extract's;
 *  - the upload's last piece (the one that names the total and completes
 *    the session) is sent only after the extract has succeeded and the file
 *    is renamed: if the extract fails (or has no rows, or the caller's
 *    `keep` says the rows are unchanged) the session is left unfinished and
 *    BigQuery never creates a job, so no job exists from partial data;
 *  - if the upload fails, extraction goes on (the pipe then discards), the
 *    file is complete, and the load can be retried from it.
 *
 * A job id whose stream did not complete is never used again (a server may
 * have registered it: goccy/bigquery-emulator records a multipart job id as
 * soon as it has read the metadata part). Hence the retry from the file uses
 * a second id. */
#ifndef MBQ_PIPELINE_H
#define MBQ_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>

#include "mbq/bq.h"
#include "mbq/mysql_source.h"

/* ---- the pipe ----------------------------------------------------------- */

/* A bounded byte pipe between one producer and one consumer thread. */
typedef struct mbq_pipe mbq_pipe;

/* capacity_bytes 0 = 4 MiB. Free with mbq_pipe_free. MBQ_ENOMEM. */
int mbq_pipe_new(mbq_pipe **out, size_t capacity_bytes);
void mbq_pipe_free(mbq_pipe *p);

/* Producer: append `len` bytes, blocking while the pipe is full
 * (back-pressure). Once the consumer has gone (mbq_pipe_reader_gone) the
 * bytes are discarded without blocking. Always 0. */
int mbq_pipe_write(mbq_pipe *p, const void *data, size_t len);

/* Producer: no more data. commit = true: the reader gets the rest, then 0
 * (end); false: the reader gets MBQ_HTTP_STREAM_ABORT at once, even with
 * data still buffered. */
void mbq_pipe_end(mbq_pipe *p, bool commit);

/* Consumer: up to `cap` bytes into dst, blocking while the pipe is empty and
 * not ended; 0 at a committed end, MBQ_HTTP_STREAM_ABORT after an abort.
 * The signature of mbq_http_body.stream. */
size_t mbq_pipe_read(void *pipe, char *dst, size_t cap);

/* Consumer: it will read no more (its request failed); the producer never
 * blocks again. */
void mbq_pipe_reader_gone(mbq_pipe *p);

/* The most bytes the pipe ever held (tests: never above its capacity). */
size_t mbq_pipe_peak_bytes(const mbq_pipe *p);

/* ---- extract + load --------------------------------------------------- */

typedef struct mbq_pipeline_options {
    size_t pipe_bytes;          /* 0 = 4 MiB */
    /* After a successful extract, before the upload is completed: return
     * false to abort it (e.g. the window and checksum equal the last
     * committed ones: no job). NULL = always keep. */
    bool (*keep)(void *keep_ud, const mbq_extract_result *xr);
    void *keep_ud;
    /* When the streamed upload fails and the extract succeeded: the id of
     * the load from the finished file (mbq_bq_load_file, looked up first).
     * NULL = no retry here: the upload's error is returned with *xr good
     * and the file in place, and the caller retries later. A second id is
     * needed because the first may exist after a cut request on the
     * emulator; with WRITE_TRUNCATE a load that ran under both ids leaves
     * the same content. */
    const char *retry_job_id;
} mbq_pipeline_options;

#define MBQ_PIPELINE_OPTIONS_INIT {0, NULL, NULL, NULL}

/* What happened (may be ignored: pass NULL). */
typedef struct mbq_pipeline_report {
    bool upload_failed;       /* the streamed request failed */
    bool retried;             /* and the load ran from the file under retry_job_id */
    bool aborted;             /* the upload was aborted: no rows, failed extract, or !keep */
    size_t pipe_peak_bytes;
    int64_t extract_ms;       /* until the file was renamed */
    int64_t load_wait_ms;     /* from then until the job was DONE */
} mbq_pipeline_report;

/* Extract xo (its sink must be NULL or is called as well, before the pipe)
 * into xo->path while uploading the same bytes as load job `job_id` with
 * `lo` (lo->path is ignored for the stream and used, set to xo->path, for a
 * retry). On return:
 *  - 0, *job set: the file is complete (*xr as mbq_mysql_extract fills it)
 *    and the job is DONE (wait for errors in it: MBQ_EBQ as usual);
 *  - 0, *job NULL: no rows (xr->rows == 0, no file), or `keep` said no; the
 *    request was aborted, no job was created;
 *  - <0 with xr->file_written false: the extract failed (its error); the
 *    request was aborted before its end: no job from partial data;
 *  - <0 with xr->file_written true: the extract succeeded, the upload (and
 *    the retry, if any) failed: load the file later (mbq_bq_load_file).
 * MBQ_EEXISTS when job_id exists already before anything is extracted (the
 * caller must use a new id per extract). *xr is freed by the caller with
 * mbq_extract_result_free, *job with mbq_bq_job_free. Not thread-safe with
 * other users of `bq` or `c` while it runs. */
int mbq_pipeline_extract_load(mbq_extract_result *xr, mbq_bq_job **job, mbq_mysql *c,
                              const mbq_extract_options *xo, mbq_bq *bq, const char *job_id,
                              const mbq_bq_load_options *lo, const mbq_pipeline_options *po,
                              mbq_pipeline_report *report);

#endif
