/* Prometheus metrics for node_exporter's textfile collector.
 *
 * After each run the engine calls mbq_metrics_write(path, summary): the file
 * is replaced atomically (temp file, fsync, rename), so the collector never
 * reads half a file. Text exposition format 0.0.4: HELP and TYPE before each
 * family's samples, label values escaped (\\, \", \n), all gauges.
 *
 * Per table (label table="name"):
 *   mbq_table_up                              1 ok or no changes, 0 failed
 *   mbq_table_result{result="ok|failed|skipped"}   1 for this run's result, else 0
 *   mbq_table_rows_synced                     rows synced in this run
 *   mbq_table_sync_duration_seconds           the table's run time
 *   mbq_table_stage_duration_seconds{stage=}  per state-machine state
 *   mbq_table_last_success_timestamp_seconds  0 = never
 *   mbq_table_consecutive_failures            failures in a row, this run included
 *   mbq_table_schema_changes                  schema changes applied in this run
 * Per run:
 *   mbq_build_info{version=,commit=}          always 1
 *   mbq_run_exit_code                         the run's exit code
 *   mbq_run_stopped                           1: stopped before any table (run_error)
 *   mbq_run_consecutive_stopped               such runs in a row, this one included
 *   mbq_run_lock_held_seconds                 only when exit 75: the holder's time so far
 *   mbq_run_timestamp_seconds                 when the run finished
 *   mbq_run_duration_seconds
 *   mbq_run_tables{result="ok|failed|skipped"}
 *   mbq_run_rows_synced */
#ifndef MBQ_METRICS_H
#define MBQ_METRICS_H

#include "mbq/buf.h"
#include "mbq/notify.h"

/* Append the exposition text for `s` to `out`. 0 or MBQ_ENOMEM. Table names
 * that are not valid UTF-8 get U+FFFD in their label value. */
int mbq_metrics_format(mbq_buf *out, const mbq_run_summary *s);

/* Format and write `path` atomically. 0, or MBQ_EIO/MBQ_ENOMEM with a message
 * naming the path. A failure here must not fail the sync: log it. */
int mbq_metrics_write(const char *path, const mbq_run_summary *s);

/* For a run that stopped before any table (s->run_error, or exit 75):
 * rewrite `path` atomically with the run's families, keeping the per-table
 * series the file holds from the last run that ran the tables. Errors as
 * mbq_metrics_write. */
int mbq_metrics_write_stopped(const char *path, const mbq_run_summary *s);

#endif
