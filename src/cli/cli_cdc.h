/* Private to src/cli: the change-data-capture parts of `mbq-state inspect`
 * and `mbq-state reset` (cmd_inspect_cdc.c, cmd_reset_cdc.c). */
#ifndef MBQ_CLI_CDC_H
#define MBQ_CLI_CDC_H

#include <json-c/json.h>
#include <stdbool.h>

#include "mbq/config.h"
#include "mbq/journal.h"

/* Take `<state_dir>/cdc.lock` without waiting, as `mbq cdc` holds it while
 * it runs (flock, like the journal's lock: the kernel drops it when the
 * holder dies). *fd is the open lock, held until closed. MBQ_ELOCKED when
 * a follower holds it, with a message saying to stop it first. */
int mbq_cli_cdc_lock(int *fd, const char *state_dir, const char *what);

/* `reset TABLE --full` on a cdc table: without `yes` say what would be
 * done; with it, refuse while `mbq cdc` runs, else mark the table for a new
 * snapshot and journal a reset event. 0 or an error code (message set). */
int mbq_cli_reset_cdc(mbq_journal *j, const mbq_config *cfg, const char *table, bool yes);

/* The cdc part of inspect: root["cdc"] = {stream, batches, tables} (null
 * when the journal has none), and the same as text when `text`. `only`
 * limits the tables to one. */
int mbq_cli_inspect_cdc(json_object *root, mbq_journal *j, const mbq_config *cfg,
                        const char *only, bool text);

#endif
