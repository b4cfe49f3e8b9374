/* Change data capture in the config: the `cdc:` section (mbq_cdc_config)
 * and the rules of a `mode: cdc` table entry (docs/cdc.md).
 *
 *   cdc:
 *     server_id: 4000000017    # the replica id `mbq cdc` announces; default
 *                              # derived from state.dir (see below)
 *     max_batch_rows: 100000   # a batch is applied at this many row changes
 *     max_batch_delay: 5s      # ... or when its first event is this old
 *     heartbeat: 5s            # the source's heartbeat period when idle
 *     lag_alert: 5m            # alert above this lag (0 = never)
 *     reconnect_max: 60s       # reconnect backoff cap (1 s doubling)
 *
 * A replica's server_id must differ from the source's and from every other
 * replica's of that source: MySQL and MariaDB drop the older binlog dump
 * connection when a second one registers with the same id
 * (https://dev.mysql.com/doc/refman/8.0/en/replication-options.html#sysvar_server_id,
 * https://mariadb.com/kb/en/replication-and-binary-log-system-variables/#server_id).
 * Without one in the config the id is derived from state.dir, so that one
 * follower keeps one id across restarts, in a range (4,000,000,000 and up)
 * that hand-numbered servers (1, 2, 100...) and ids built from a private
 * IPv4 address (10/8, 172.16/12, 192.168/16: below 3,300,000,000) do not
 * reach. Two followers of one source should still set theirs explicitly. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mbq/buf.h"
#include "mbq/config.h"
#include "mbq/error.h"

#include "config_internal.h"
#include "mbq/banned.h"

static const char *const cdc_keys[] = {"server_id",  "max_batch_rows", "max_batch_delay",
                                       "heartbeat",  "lag_alert",      "reconnect_max",
                                       NULL};

#define DERIVED_ID_BASE UINT32_C(4000000000)

/* FNV-1a over the state directory: stable across runs and builds (unlike
 * a pointer or a random seed), and spread over the whole range. */
uint32_t cfg_cdc_derived_server_id(const char *state_dir)
{
    uint64_t h = UINT64_C(14695981039346656037);
    for (const unsigned char *p = (const unsigned char *)(state_dir ? state_dir : ""); *p; p++) {
        h ^= *p;
        h *= UINT64_C(1099511628211);
    }
    /* 4,000,000,000 .. 4,294,967,294: 2^32 - 1 is a valid id too, but some
     * tools print ids as signed 32-bit numbers; stay below it. */
    return DERIVED_ID_BASE + (uint32_t)(h % (UINT32_C(4294967295) - DERIVED_ID_BASE));
}

/* The defaults (mbq/config.h), set whether or not the section is given. */
static void cdc_defaults(mbq_cdc_config *d)
{
    d->server_id = 0;
    d->max_batch_rows = 100000;
    d->max_batch_delay_ms = 5 * 1000;
    d->heartbeat_ms = 5 * 1000;
    d->lag_alert_ms = 5 * 60 * 1000;
    d->reconnect_max_ms = 60 * 1000;
}

/* The durations and their bounds. The heartbeat is sent to the source as
 * MASTER_HEARTBEAT_PERIOD, in seconds with millisecond resolution, at most
 * 4294967 s (MariaDB's CHANGE MASTER reference); under 100 ms it would be
 * traffic for nothing. The backoff starts at 1 s, so its cap cannot be
 * lower. */
static int cdc_durations(cfg_ctx *c, const section *s, mbq_cdc_config *d)
{
    int rc;
    yaml_node_t *at = NULL;
    if ((rc = get_duration(c, s, "max_batch_delay", 0, &d->max_batch_delay_ms, NULL)) < 0 ||
        (rc = get_duration(c, s, "heartbeat", 100, &d->heartbeat_ms, &at)) < 0)
        return rc;
    if (d->heartbeat_ms > INT64_C(4294967) * 1000)
        return err_at(c, at, "'cdc.heartbeat' must be at most 4294967s (the source's limit), "
                             "got %lld ms", (long long)d->heartbeat_ms);
    if ((rc = get_duration(c, s, "lag_alert", 0, &d->lag_alert_ms, NULL)) < 0)
        return rc;
    return get_duration(c, s, "reconnect_max", 1000, &d->reconnect_max_ms, NULL);
}

int parse_cdc(cfg_ctx *c, const section *top)
{
    mbq_buf path = MBQ_BUF_INIT;
    section s;
    bool present = false;
    mbq_cdc_config *d = &c->cfg->cdc;
    cdc_defaults(d);
    int rc = open_section(c, top, "cdc", cdc_keys, &path, &s, &present);
    if (rc < 0 || !present)
        goto derive;
    int64_t id = 0;
    /* 0 is not an id: a server with server_id 0 refuses replicas. */
    if ((rc = get_int(c, &s, "server_id", 1, INT64_C(4294967295), &id)) < 0)
        goto done;
    d->server_id = (uint32_t)id;
    /* A batch is one staging file and one MERGE: a million row changes is
     * already minutes of work for the MERGE. */
    if ((rc = get_int(c, &s, "max_batch_rows", 1, 10000000, &d->max_batch_rows)) < 0 ||
        (rc = cdc_durations(c, &s, d)) < 0)
        goto done;
derive:
    if (rc == 0 && d->server_id == 0)
        d->server_id = cfg_cdc_derived_server_id(c->cfg->state_dir);
done:
    mbq_buf_free(&path);
    return rc;
}

/* The keys of a table entry that mean nothing to a followed table: its
 * changes come from the binlog, deletes included, so there is no cursor to
 * look back from and no reconciliation to schedule. */
static const char *const not_for_cdc[] = {"lookback", "reconcile_every", "max_delete_fraction",
                                          "reconcile_chunk_rows"};

int check_table_cdc(cfg_ctx *c, const section *s, const char *path)
{
    for (size_t k = 0; k < sizeof not_for_cdc / sizeof not_for_cdc[0]; k++) {
        yaml_node_t *at = cfg_find(c, s, not_for_cdc[k]);
        if (at && !cfg_is_null(at))
            return err_at(c, at,
                          "'%s.%s' is not used with 'mode: cdc': the binlog carries every "
                          "change, deletes included; remove it",
                          path, not_for_cdc[k]);
    }
    return 0;
}
