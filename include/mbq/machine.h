/* The per-table sync state machine and the run that drives it.
 *
 *   schema-check --> extract --rows--> stage --merge--> merge --> commit-metadata --> done
 *                      |  ^ ^ ^           | \--replace----------------^        |
 *                      |  | | +-re-extract+   (staged file gone)              |
 *                      |  | +---re-extract------------- merge (staging table and file gone)
 *                      |  |            stage <-restage- merge (staging table expired)
 *                      |  +------restart------ stage, merge, commit-metadata (schema-check:
 *                      |                        target vanished and reloaded, columns changed)
 *                      +--no rows / unchanged -------------------------------^   (mirror to
 *                      |                                                        BigQuery after)
 *                      \--backfilled (chunks loaded, shadow copied in) -------^
 *   Any error leaves the table run in the state where it failed (journaled with
 *   the error); the next `mbq sync` resumes it from there. A job that BigQuery
 *   reports as failed bumps the attempt, so the retry uses a new job id.
 *   A run that resumed a table run whose snapshot an earlier process took
 *   then syncs the table again from the cursor it committed (sync.c,
 *   catch_up): exit 0 means every table is current as of the run's start.
 *
 * The transition table and the invariants of each state are in src/machine.c. */
#ifndef MBQ_MACHINE_H
#define MBQ_MACHINE_H

#include <stdbool.h>
#include <stdint.h>

#include "mbq/config.h"

typedef enum mbq_state {
    MBQ_ST_SCHEMA_CHECK = 0,
    MBQ_ST_EXTRACT,
    MBQ_ST_STAGE,
    MBQ_ST_MERGE,
    MBQ_ST_COMMIT,
    MBQ_ST_DONE,
    MBQ_ST_FAILED,    /* final: given up (not used by the runner; reserved for tools) */
    MBQ_ST_ABANDONED, /* final: dropped by mbq-state reset */
    MBQ_ST__COUNT
} mbq_state;

/* "schema-check", "extract", "stage", "merge", "commit-metadata", "done",
 * "failed", "abandoned". */
const char *mbq_state_name(mbq_state s);
/* The state named `name`; MBQ_EJOURNAL for an unknown name. */
int mbq_state_parse(mbq_state *out, const char *name);

typedef struct mbq_sync_options {
    const char *const *tables; /* only these (NULL = all configured) */
    size_t n_tables;
    bool dry_run;          /* print the plan, change nothing */
    const char *metrics_file; /* Prometheus textfile to write after the run (NULL = none) */
    bool progress;         /* show progress on a terminal */
    int jobs;              /* tables synced at the same time (1 = one after another) */
} mbq_sync_options;

#define MBQ_SYNC_OPTIONS_INIT {NULL, 0, false, NULL, true, 1}

/* One `mbq sync`: take the lock, resume unfinished table runs, start new
 * ones, commit, mirror metadata, alert, write metrics. Returns the process
 * exit code (mbq/exitcode.h): 0 all tables ok, 1 some table failed, 75 the
 * lock is held, 74 journal/disk, 2 config. */
int mbq_sync_run(const mbq_config *cfg, const mbq_sync_options *opts);

/* Convert a cursor value as the journal stores it for `kind` ("timestamp" or
 * "integer"): validates a user-supplied value (mbq-state reset --cursor),
 * normalising timestamps to 'YYYY-MM-DD HH:MM:SS.ffffff'. MBQ_ECONFIG with a
 * message naming the value when it cannot be parsed. *out is freed by the
 * caller. */
int mbq_cursor_normalize(char **out, const char *kind, const char *value);

/* low = cursor - lookback for timestamp cursors (same format); a copy of
 * the cursor otherwise. */
int mbq_cursor_minus(char **out, const char *kind, const char *cursor, int64_t lookback_ms);

#endif
