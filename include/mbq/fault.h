/* Crash injection for the crash/resume tests.
 *
 * mbq_fault_point("stage.after_load") does nothing unless the environment
 * variable MBQ_FAULT names that point (or a comma-separated list holding it).
 * Then the process dies at once with SIGKILL, as a power cut or an OOM kill
 * would end it: no atexit handlers, no flushing, no cleanup. MBQ_FAULT_HIT=N
 * makes it die on the Nth time the point is reached (default 1), which is how
 * tests kill in the middle of a stream (e.g. after the 3rd chunk).
 *
 * The names of all points are listed in mbq_fault_points[] so that a test can
 * walk every one of them. */
#ifndef MBQ_FAULT_H
#define MBQ_FAULT_H

void mbq_fault_point(const char *name);

/* Is fault injection configured at all (cheap check for hot loops)? */
int mbq_fault_enabled(void);

#endif
