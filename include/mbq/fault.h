/* Crash injection for the crash/resume tests.
 *
 * mbq_fault_point("stage.after_load") does nothing unless the environment
 * variable MBQ_FAULT names that point (or a comma-separated list holding it).
 * Then the process dies at once with SIGKILL, as a power cut or an OOM kill
 * would end it: no atexit handlers, no flushing, no cleanup. MBQ_FAULT_HIT=N
 * makes it die on the Nth time the point is reached (default 1), which is how
 * tests kill in the middle of a stream (e.g. after the 3rd chunk).
 *
 * The points: "<state>.enter" after a state is journaled and "<state>.done"
 * after its side effect (src/machine.c), "extract.mid" after each chunk and
 * "extract.before_rename" (src/mysql_source.c), "schema-check.altered"
 * (src/schema.c, tests/e2e/test_schema.py), "cleanup.done" and
 * "mirror.done"; for a file loaded in parts "split.done" (src/split.c),
 * "stage.part_submit", "stage.part_loaded" and "stage.part_done"
 * (src/stage_parts.c), and "merge.range_done" after each range of a MERGE
 * in partition ranges (tests/e2e/test_limits.py). tests/e2e/test_crash.py
 * walks the machine's points and fails for a point that is never reached.
 * Inside SQLite's commit (src/fault.c, a VFS that forwards to the real one,
 * registered only when MBQ_FAULT names one of them): "journal.wal_write",
 * "journal.wal_sync", "journal.db_write", "journal.db_sync";
 * tests/e2e/test_random_kills.py kills at a random one. A reconciliation
 * (src/sync/reconcile.c) has "reconcile.<state>.enter" after each journaled
 * state (scan, load, apply, done, refused), "reconcile.scan.done" after a
 * chunk's file, "reconcile.load.done" after its load, "reconcile.counted"
 * after the journaled count and "reconcile.apply.done" after the statement
 * (tests/e2e/test_deletes.py kills at each). */
#ifndef MBQ_FAULT_H
#define MBQ_FAULT_H

void mbq_fault_point(const char *name);

/* Is fault injection configured at all (cheap check for hot loops)? */
int mbq_fault_enabled(void);

#endif
