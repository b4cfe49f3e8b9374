/* Run summaries shared by the alert tests: a success, a failure with two
 * failed tables, a schema change and a recovery. Static data: nothing to
 * free. `run_id` is set by each test to find its own mail in a shared sink. */
#ifndef TEST_NOTIFY_FIXTURES_H
#define TEST_NOTIFY_FIXTURES_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mbq/buf.h"
#include "mbq/notify.h"
#include "mbq/util.h"

/* 2026-11-26 01:02:03.000 UTC */
#define FIX_FINISHED_MS 1795654923000LL
#define FIX_STARTED_MS (FIX_FINISHED_MS - 12345)

static const mbq_stage_timing fix_stages[] = {
    {"schema-check", 100}, {"extract", 4000}, {"stage", 3000}, {"merge", 2000},
    {"commit-metadata", 50},
};
static const char *const fix_changes[] = {
    "added column 'discount' NUMERIC",
    "type change 'qty' INT64 -> NUMERIC (widened)",
};

static mbq_table_summary fix_ok_tables[] = {
    {"orders", MBQ_TABLE_OK, 1000, 9150, fix_stages, 5, NULL, NULL, NULL, 0, 0, 0, false, false, 0},
    {"customers", MBQ_TABLE_OK, 234, 2000, NULL, 0, NULL, NULL, NULL, 0, 0, 0, false, false, 0},
    {"items", MBQ_TABLE_SKIPPED, 0, 100, NULL, 0, NULL, NULL, NULL, 0, 0, 0, false, false, 0},
};

static mbq_table_summary fix_fail_tables[] = {
    {"orders", MBQ_TABLE_FAILED, 0, 4200, NULL, 0, "merge",
     "bigquery job 'mbq_x' failed: Query error: column <qty> & \"price\" mismatch", NULL, 0, 0,
     0, false, false, 0},
    {"customers", MBQ_TABLE_FAILED, 0, 1500, NULL, 0, "extract",
     "mysql: Lost connection to server during query", NULL, 0, 2, 0, false, false, 0},
    {"items", MBQ_TABLE_OK, 12, 800, NULL, 0, NULL, NULL, NULL, 0, 0, 0, false, false, 0},
};

static mbq_table_summary fix_schema_tables[] = {
    {"orders", MBQ_TABLE_OK, 10, 3000, NULL, 0, NULL, NULL, fix_changes, 2, 0, 0, false, false, 0},
    {"items", MBQ_TABLE_SKIPPED, 0, 100, NULL, 0, NULL, NULL, NULL, 0, 0, 0, false, false, 0},
};

static mbq_table_summary fix_recovered_tables[] = {
    {"orders", MBQ_TABLE_OK, 77, 3000, NULL, 0, NULL, NULL, NULL, 0, 3, 0, false, false, 0},
    {"items", MBQ_TABLE_SKIPPED, 0, 100, NULL, 0, NULL, NULL, NULL, 0, 0, 0, false, false, 0},
};

#define FIX_SUMMARY(tables)                                                                        \
    {"run-fixture", "db1.example", FIX_STARTED_MS, FIX_FINISHED_MS, tables,                        \
     sizeof tables / sizeof tables[0]}

static const mbq_run_summary fix_success = FIX_SUMMARY(fix_ok_tables);
static const mbq_run_summary fix_failure = FIX_SUMMARY(fix_fail_tables);
static const mbq_run_summary fix_schema = FIX_SUMMARY(fix_schema_tables);
static const mbq_run_summary fix_recovery = FIX_SUMMARY(fix_recovered_tables);

/* stderr into a file while an alert is sent, to check the log lines it
 * wrote (fix_capture_end reads them into `out`). */
static int fix_stderr_saved = -1;
static char fix_stderr_path[] = "/tmp/mbq-alert-stderr-XXXXXX";

static inline void fix_capture_begin(void)
{
    int fd = mkstemp(fix_stderr_path);
    fix_stderr_saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    close(fd);
}

static inline void fix_capture_end(mbq_buf *out)
{
    fflush(stderr);
    dup2(fix_stderr_saved, STDERR_FILENO);
    close(fix_stderr_saved);
    mbq_file_read_all(out, fix_stderr_path);
    unlink(fix_stderr_path);
    memcpy(fix_stderr_path + strlen(fix_stderr_path) - 6, "XXXXXX", 6);
}

#endif
