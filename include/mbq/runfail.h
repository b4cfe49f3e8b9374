/* Runs that stopped before any table (src/sync/runfail.c): their streak
 * lives in <state.dir>/run-failures, not in the journal, because the journal
 * may be what is broken. Read by the sync (alert policy, metrics) and by the
 * dashboard (/metrics). */
#ifndef MBQ_RUNFAIL_H
#define MBQ_RUNFAIL_H

#include <stdint.h>

typedef struct mbq_runfail {
    int exit_code; /* the last one's */
    int count;     /* runs in a row; 0 = none */
    int64_t first_ms;
    int64_t last_ms;
} mbq_runfail;

/* Read the streak (zeroed when there is none or it cannot be read). */
void mbq_runfail_read(mbq_runfail *out, const char *state_dir);

#endif
