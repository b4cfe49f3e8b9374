/* A one-line progress display for long extractions and uploads.
 *
 * On a terminal (stderr is a tty) it redraws one line, at most every 250 ms:
 *   orders extract: 120,000 rows, 45.1 MiB, 38,000 rows/s
 * Off a terminal it prints nothing: cron mail and log shippers get only the
 * log lines. One reporter belongs to one worker thread; its calls are also
 * serialized by a lock, so finish() may come from another thread. */
#ifndef MBQ_PROGRESS_H
#define MBQ_PROGRESS_H

#include <stdint.h>

typedef struct mbq_progress mbq_progress;

typedef enum mbq_progress_mode {
    MBQ_PROGRESS_AUTO = 0, /* on when stderr is a terminal */
    MBQ_PROGRESS_OFF = 1,
    MBQ_PROGRESS_ON = 2,   /* force (tests) */
} mbq_progress_mode;

/* A reporter for `label` (e.g. "orders extract"; copied). *out is freed by
 * mbq_progress_finish. 0 or MBQ_ENOMEM. A disabled reporter is still a valid
 * object whose calls do nothing. */
int mbq_progress_new(mbq_progress **out, const char *label, mbq_progress_mode mode);

/* Report the totals so far (not increments). Draws when 250 ms have passed
 * since the last draw. NULL-safe. */
void mbq_progress_update(mbq_progress *p, int64_t rows, int64_t bytes);

/* A chunked backfill: chunks loaded of `total`, and the estimated time
 * left (eta_ms < 0: not known yet), shown after the totals:
 *   orders backfill: 1,200,000 rows, 310.2 MiB, 41,000 rows/s, chunk 12/40, ETA 1m05s
 * NULL-safe. */
void mbq_progress_chunks(mbq_progress *p, int done, int total, int64_t eta_ms);

/* Draw the final totals, end the line (so later log lines start clean), and
 * free. NULL-safe. */
void mbq_progress_finish(mbq_progress *p);

/* Drop the reporter without a final line (on error paths), clearing the
 * line if one was drawn. NULL-safe. */
void mbq_progress_free(mbq_progress *p);

#endif
