/* The follower's alerts (cdc_internal.h), through the notify API as one
 * "run" per event: a table failing, the stream failing (a purged binlog, a
 * batch BigQuery refuses, the source lost past five minutes), the lag
 * crossing cdc.lag_alert and coming back under it. Each channel's `on`
 * policy applies as for sync runs; nothing here can fail the follower. */
#include <stdlib.h>
#include <string.h>

#include "mbq/error.h"
#include "mbq/log.h"
#include "mbq/notify.h"
#include "mbq/util.h"
#include "cdc_internal.h"
#include "mbq/banned.h"

void cdc_alert(const cdc_ctx *c, const char *name, bool failed, const char *error)
{
    const mbq_config *cfg = c->s.cfg;
    if (!cfg->email.enabled && !cfg->telegram.enabled)
        return;
    int64_t now = mbq_now_ms();
    mbq_table_summary t = {0};
    t.name = name;
    t.result = failed ? MBQ_TABLE_FAILED : MBQ_TABLE_OK;
    t.failed_stage = failed ? "cdc" : NULL;
    t.error = failed ? error : NULL;
    /* A recovery is one only after a failure (the `change` policy). */
    t.prev_consecutive_failures = failed ? 0 : 1;
    t.last_success_ms = failed ? 0 : now;
    mbq_run_summary s = {0};
    s.run_id = c->s.run_id;
    s.started_ms = s.finished_ms = now;
    s.tables = &t;
    s.n_tables = 1;
    s.exit_code = failed ? 1 : 0;
    mbq_notify_report rep = {0};
    mbq_notify_options no = MBQ_NOTIFY_OPTIONS_INIT;
    const char *fast = getenv("MBQ_NOTIFY_BACKOFF_MS");
    if (fast)
        no.backoff_ms = atoll(fast);
    if (mbq_notify_run(&rep, cfg->email.enabled ? &cfg->email : NULL,
                       cfg->telegram.enabled ? &cfg->telegram : NULL, &s, &no) < 0)
        mbq_log(MBQ_LOG_WARN, name, "cdc", "alert not delivered: %s", mbq_error_last());
    mbq_notify_report_free(&rep);
}
