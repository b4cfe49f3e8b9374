/* The configuration's section parsers (see config.c for the overview):
 * one function per section of the file (tables, mysql, bigquery and its
 * auth and limits, alerting.email, alerting.telegram, state and log,
 * sync), each reading its keys through the primitives of config_read.c
 * into the mbq_config being built. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "mbq/buf.h"
#include "mbq/config.h"
#include "mbq/error.h"
#include "mbq/log.h"
#include "mbq/util.h"

#include "config_internal.h"
#include "mbq/banned.h"

/* BigQuery's per-job limits (quotas page, "Load jobs" and "Query jobs"):
 * an ndJSON file is at most 4 GB compressed and 5 TB uncompressed, an
 * unresolved GoogleSQL query at most 1 MB, and one job modifies at most
 * 4,000 partitions. (A load job takes at most 15 TB: mbq sends one file per
 * job, so the file bound keeps it. The jobs.insert reference names no other
 * size for a media upload.) The settings may only go below
 * them (tests use a few KiB to prove the split paths). */
static int get_limits(cfg_ctx *c, const section *s, mbq_bigquery_config *b)
{
    yaml_node_t *at = NULL;
    const int64_t gzip_max = 4000LL * 1000 * 1000, plain_max = 5000LL * 1000 * 1000 * 1000;
    int rc = get_size(c, s, "max_load_file_size", plain_max, &b->max_load_file_bytes, &at);
    if (rc < 0)
        return rc;
    if (b->compress && b->max_load_file_bytes >= gzip_max)
        return err_at(c, at, "'bigquery.max_load_file_size' must be below 4 GB (4000000000 "
                             "bytes, BigQuery's limit for a gzip file) with gzip compression, "
                             "got %lld bytes", (long long)b->max_load_file_bytes);
    if (b->max_load_file_bytes < 1024)
        return err_at(c, at, "'bigquery.max_load_file_size' must be at least 1 KiB, got %lld "
                             "bytes", (long long)b->max_load_file_bytes);
    if ((rc = get_size(c, s, "max_query_size", 1000 * 1000, &b->max_query_bytes, &at)) < 0)
        return rc;
    if (b->max_query_bytes < 1024)
        return err_at(c, at, "'bigquery.max_query_size' must be at least 1 KiB, got %lld bytes",
                      (long long)b->max_query_bytes);
    /* "Number of partitions modified by a single job: 4,000" (quotas
     * page, partitioned tables). */
    return get_int(c, s, "max_partitions_per_job", 1, 4000, &b->max_partitions_per_job);
}

/* One of `names` (index in *dst). `fold` accepts any letter case. */

/* ---- sections ----------------------------------------------------------- */

/* "discover", "exclude" and "cursor_columns" are a pattern entry's. */
static const char *const table_keys[] = {
    "name",           "primary_key", "updated_column", "mode",
    "lookback",       "target",      "partition_by",   "partition_type",
    "cluster_by",     "on_incompatible_change",        "on_missing_target",
    "chunk_rows",     "discover",    "exclude",       "cursor_columns",
    "deletes",        "reconcile_every", "max_delete_fraction", "reconcile_chunk_rows", NULL};
static const char *const mysql_keys[] = {"host",     "port",     "socket",          "user",
                                         "password", "database", "connect_timeout", "read_timeout",
                                         "ssl",      NULL};
static const char *const ssl_keys[] = {"mode", "ca", "cert", "key", "verify_server_cert", NULL};
static const char *const bq_keys[] = {
    "project_id",        "dataset",     "metadata_table",    "location",
    "credentials",       "endpoint",    "auth", "impersonate_service_account", "ca_file",   "upload_chunk_size", "multipart_max",
    "compression",       "staging_expiration",               "job_timeout",
    "max_retries",       "retry_max_elapsed",                "tls_insecure",
    "request_timeout",   "stream_load",
    "max_load_file_size",                    "max_query_size",
    "max_partitions_per_job",                "on_missing_target",
    NULL};
static const char *const alerting_keys[] = {"email", "telegram", "lock_alert_after", NULL};
static const char *const email_keys[] = {"enabled",  "smtp_url", "host", "port", "tls",
                                         "username", "password", "from", "to",   "on",
                                         "tls_insecure", NULL};
static const char *const telegram_keys[] = {"enabled", "bot_token", "chat_id", "api_url", "on",
                                            NULL};
static const char *const state_keys[] = {"dir", NULL};
static const char *const log_keys[] = {"level", "format", NULL};
static const char *const sync_keys[] = {"jobs", NULL};

static const char *const mode_names[] = {"incremental", "full", "cdc", NULL};
static const char *const delete_names[] = {"off", "soft", "hard", NULL};
static const char *const policy_names[] = {"fail", "rebuild", NULL};
static const char *const missing_names[] = {"fail", "reload", NULL};
static const char *const alert_on_names[] = {"failure", "always", "change", NULL};
static const char *const partition_names[] = {"DAY", "HOUR", "MONTH", "YEAR", NULL};
static const char *const ssl_mode_names[] = {"disabled", "required", "verify_identity", NULL};
static const char *const bq_auth_names[] = {"service_account", "none", "adc", NULL};
static const char *const email_tls_names[] = {"starttls", "implicit", "none", NULL};
static const char *const log_level_names[] = {"error", "warn", "info", "debug", NULL};
static const char *const log_format_names[] = {"text", "json", NULL};
static const char *const http_schemes[] = {"http://", "https://", NULL};

/* tables[].max_delete_fraction: a number in [0, 1]. */
static int get_fraction(cfg_ctx *c, const section *s, const char *key, double *dst)
{
    char *val = NULL, *end = NULL;
    yaml_node_t *at = NULL;
    int rc = get_text(c, s, key, 0, "a number between 0 and 1", &val, &at);
    if (rc == 0 && val) {
        errno = 0;
        double v = strtod(val, &end);
        if (errno || end == val || *end || !(v >= 0.0 && v <= 1.0))
            rc = err_at(c, at, "'%s%s%s' must be a number between 0 and 1, got '%s'", KP(s, key),
                        esc_str(c, val));
        else
            *dst = v;
    }
    free(val);
    return rc;
}

/* deletes, reconcile_every, max_delete_fraction, reconcile_chunk_rows. */
static int parse_table_deletes(cfg_ctx *c, const section *s, const char *path,
                               mbq_table_config *t)
{
    /* A followed table sees its deletes in the binlog: applied by default. */
    int rc, deletes = t->mode == MBQ_MODE_CDC ? MBQ_DELETES_HARD : MBQ_DELETES_OFF;
    t->reconcile_every_ms = 3600 * 1000;
    t->max_delete_fraction = 0.5;
    t->reconcile_chunk_rows = 1000000;
    if ((rc = get_enum(c, s, "deletes", delete_names, false, &deletes)) < 0)
        return rc;
    t->deletes = (mbq_delete_mode)deletes;
    if (t->deletes != MBQ_DELETES_OFF && t->mode == MBQ_MODE_FULL)
        return err_at(c, cfg_find(c, s, "deletes"),
                      "'%s.deletes' is for incremental tables: a full refresh replaces the "
                      "whole target on every run, so rows deleted in MySQL leave BigQuery "
                      "anyway; remove 'deletes' (or set it to 'off')",
                      path);
    if ((rc = get_duration(c, s, "reconcile_every", 0, &t->reconcile_every_ms, NULL)) < 0 ||
        (rc = get_fraction(c, s, "max_delete_fraction", &t->max_delete_fraction)) < 0)
        return rc;
    return get_int(c, s, "reconcile_chunk_rows", 1, 100000000, &t->reconcile_chunk_rows);
}

static int parse_table(cfg_ctx *c, yaml_node_t *n, size_t idx, mbq_table_config *t)
{
    int rc;
    mbq_buf path = MBQ_BUF_INIT, sub = MBQ_BUF_INIT;
    yaml_node_t *at = NULL, *name_at = NULL, *mode_at = NULL, *lookback_at = NULL;
    t->line = (int)(n->start_mark.line + 1 > INT_MAX ? INT_MAX : n->start_mark.line + 1);
    t->on_incompatible_change = MBQ_POLICY_FAIL;
    if ((rc = mbq_buf_printf(&path, "tables[%zu]", idx)) < 0)
        goto done;
    if ((rc = check_mapping(c, n, path.ptr, table_keys)) < 0)
        goto done;
    section s = {n, path.ptr};

    static const char *const pattern_only[] = {"exclude", "cursor_columns", "discover"};
    for (size_t k = 0; k < 3; k++)
        if ((at = cfg_find(c, &s, pattern_only[k])) != NULL) {
            rc = err_at(c, at, "'%s.%s' is for a pattern ('name' with '*' or '?', or "
                               "'discover: true'); this entry names one table",
                        path.ptr, pattern_only[k]);
            goto done;
        }
    if ((rc = get_str(c, &s, "name", F_REQUIRED, &t->name, &name_at)) < 0)
        goto done;
    if ((rc = mbq_buf_printf(&sub, "%s.name", path.ptr)) < 0 ||
        (rc = check_mysql_ident(c, name_at, sub.ptr, t->name)) < 0)
        goto done;
    if ((rc = get_list(c, &s, "primary_key", F_REQUIRED, 16, check_mysql_ident, &t->primary_key,
                       &t->n_primary_key, NULL)) < 0)
        goto done;
    if ((rc = get_str(c, &s, "updated_column", 0, &t->updated_column, &at)) < 0)
        goto done;
    mbq_buf_clear(&sub);
    if (t->updated_column && ((rc = mbq_buf_printf(&sub, "%s.updated_column", path.ptr)) < 0 ||
                              (rc = check_mysql_ident(c, at, sub.ptr, t->updated_column)) < 0))
        goto done;

    int mode = t->updated_column ? MBQ_MODE_INCREMENTAL : MBQ_MODE_FULL;
    if ((rc = get_enum(c, &s, "mode", mode_names, false, &mode)) < 0)
        goto done;
    t->mode = (mbq_sync_mode)mode;
    mode_at = cfg_find(c, &s, "mode");
    if (t->mode == MBQ_MODE_INCREMENTAL && !t->updated_column) {
        rc = err_at(c, mode_at, "'%s.mode' is 'incremental' but no 'updated_column' is set: "
                                "name the cursor column or use 'mode: full'", path.ptr);
        goto done;
    }
    if (t->mode == MBQ_MODE_CDC && (rc = check_table_cdc(c, &s, path.ptr)) < 0)
        goto done;
    if ((rc = get_duration(c, &s, "lookback", 0, &t->lookback_ms, &lookback_at)) < 0)
        goto done;
    if (t->lookback_ms > 0 && !t->updated_column) {
        rc = err_at(c, lookback_at, "'%s.lookback' needs an 'updated_column' to look back from",
                    path.ptr);
        goto done;
    }
    /* A first sync or full refresh in key-range chunks of this many rows,
     * each its own snapshot and load (0: one snapshot). */
    if ((rc = get_int(c, &s, "chunk_rows", 0, INT64_C(1000000000000), &t->chunk_rows)) < 0)
        goto done;

    if ((rc = get_str(c, &s, "target", 0, &t->target, &at)) < 0)
        goto done;
    if (!t->target) {
        if (!(t->target = mbq_strdup(t->name))) {
            rc = MBQ_ENOMEM;
            goto done;
        }
        mbq_buf_clear(&sub);
        if ((rc = mbq_buf_printf(&sub, "%s.target", path.ptr)) < 0)
            goto done;
        if (check_bq_name(c, name_at, sub.ptr, t->target) < 0) {
            rc = err_at(c, name_at,
                        "table '%s' cannot be a BigQuery table name (only letters, digits and "
                        "'_'): set '%s.target' to the name it should have in BigQuery",
                        esc_str(c, t->name), path.ptr);
            goto done;
        }
    } else {
        mbq_buf_clear(&sub);
        if ((rc = mbq_buf_printf(&sub, "%s.target", path.ptr)) < 0 ||
            (rc = check_bq_name(c, at, sub.ptr, t->target)) < 0)
            goto done;
    }

    if ((rc = get_str(c, &s, "partition_by", 0, &t->partition_by, &at)) < 0)
        goto done;
    mbq_buf_clear(&sub);
    if (t->partition_by && ((rc = mbq_buf_printf(&sub, "%s.partition_by", path.ptr)) < 0 ||
                            (rc = check_mysql_ident(c, at, sub.ptr, t->partition_by)) < 0))
        goto done;
    int ptype = 0;
    if ((rc = get_enum(c, &s, "partition_type", partition_names, true, &ptype)) < 0)
        goto done;
    at = cfg_find(c, &s, "partition_type");
    if (at && !cfg_is_null(at) && !t->partition_by) {
        rc = err_at(c, at, "'%s.partition_type' needs 'partition_by'", path.ptr);
        goto done;
    }
    if (!(t->partition_type = mbq_strdup(partition_names[ptype]))) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    /* BigQuery clusters by at most four columns:
     * https://cloud.google.com/bigquery/docs/clustered-tables */
    if ((rc = get_list(c, &s, "cluster_by", 0, 4, check_mysql_ident, &t->cluster_by,
                       &t->n_cluster_by, NULL)) < 0)
        goto done;
    int policy = MBQ_POLICY_FAIL;
    if ((rc = get_enum(c, &s, "on_incompatible_change", policy_names, false, &policy)) < 0)
        goto done;
    t->on_incompatible_change = (mbq_change_policy)policy;
    /* Unset (-1) until bigquery.on_missing_target, parsed later, fills it. */
    int missing = -1;
    if ((rc = get_enum(c, &s, "on_missing_target", missing_names, false, &missing)) < 0)
        goto done;
    t->on_missing_target = (mbq_missing_policy)missing;
    rc = parse_table_deletes(c, &s, path.ptr, t);
done:
    mbq_buf_free(&path);
    mbq_buf_free(&sub);
    return rc;
}

int parse_tables(cfg_ctx *c, const section *top)
{
    int rc = 0;
    mbq_config *cfg = c->cfg;
    yaml_node_t *v = cfg_find(c, top, "tables");
    if (!v)
        return err_at(c, top->node, "missing required key 'tables'");
    if (v->type != YAML_SEQUENCE_NODE)
        return err_at(c, v, "'tables' must be a list of tables, got %s", type_name(v));
    size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (n == 0)
        return err_at(c, v, "'tables' is empty: list at least one table");
    if (!(cfg->tables = mbq_calloc(n, sizeof *cfg->tables)) ||
        !(cfg->patterns = mbq_calloc(n, sizeof *cfg->patterns)))
        return MBQ_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = yaml_document_get_node(&c->doc, v->data.sequence.items.start[i]);
        if (!item)
            return err_at(c, v, "'tables[%zu]' could not be resolved", i);
        if (table_entry_is_pattern(c, item)) {
            if ((rc = parse_pattern(c, item, i, &cfg->patterns[cfg->n_patterns++])) < 0)
                return rc;
            continue;
        }
        size_t ti = cfg->n_tables++;
        mbq_table_config *t = &cfg->tables[ti];
        if ((rc = parse_table(c, item, i, t)) < 0)
            return rc;
        /* Two entries for one MySQL table would sync it twice; two for one
         * target would overwrite each other's rows. BigQuery datasets can be
         * case-insensitive, so targets are compared without case. */
        for (size_t j = 0; j < ti; j++) {
            const mbq_table_config *o = &cfg->tables[j];
            section is = {item, ""};
            if (strcmp(o->name, t->name) == 0)
                return err_at(c, cfg_find(c, &is, "name"), "duplicate table '%s' (first at line %d)",
                              esc_str(c, t->name), o->line);
            if (strcasecmp(o->target, t->target) == 0)
                return err_at(c, item,
                              "duplicate target '%s' in 'tables[%zu]' (also the target of "
                              "'%s' at line %d)",
                              esc_str(c, t->target), i, esc_str(c, o->name), o->line);
        }
    }
    return rc;
}

int parse_mysql(cfg_ctx *c, const section *top)
{
    int rc;
    mbq_mysql_config *m = &c->cfg->mysql;
    mbq_buf path = MBQ_BUF_INIT, ssl_path = MBQ_BUF_INIT;
    section s, ssl;
    bool present = false;
    yaml_node_t *at = NULL;
    int64_t v;
    m->port = 3306;
    m->connect_timeout_s = 10;
    m->read_timeout_s = 600;
    m->ssl_verify_server_cert = true;

    if ((rc = open_section(c, top, "mysql", mysql_keys, &path, &s, &present)) < 0)
        goto done;
    if (!present) {
        rc = err_at(c, top->node, "missing required key 'mysql'");
        goto done;
    }
    if ((rc = get_str(c, &s, "host", 0, &m->host, NULL)) < 0 ||
        (rc = get_str(c, &s, "socket", 0, &m->socket, NULL)) < 0 ||
        (rc = get_str(c, &s, "user", F_REQUIRED, &m->user, NULL)) < 0 ||
        (rc = get_str(c, &s, "password", F_SECRET | F_EMPTY_OK, &m->password, NULL)) < 0 ||
        (rc = get_str(c, &s, "database", F_REQUIRED, &m->database, &at)) < 0)
        goto done;
    if ((rc = check_mysql_ident(c, at, "mysql.database", m->database)) < 0)
        goto done;
    if (!m->host && !m->socket && !(m->host = mbq_strdup("127.0.0.1"))) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    v = m->port;
    if ((rc = get_int(c, &s, "port", 1, 65535, &v)) < 0)
        goto done;
    m->port = (unsigned)v;
    /* Timeouts in whole seconds (libmariadb's unit), at most a week; 0
     * ("wait for ever") is refused: a stalled server must make a run fail. */
    const char *const timeouts[] = {"connect_timeout", "read_timeout"};
    int *dst[] = {&m->connect_timeout_s, &m->read_timeout_s};
    for (size_t i = 0; i < 2; i++) {
        int64_t ms = (int64_t)*dst[i] * 1000;
        if ((rc = get_duration(c, &s, timeouts[i], 1000, &ms, &at)) < 0)
            goto done;
        if (ms % 1000 != 0 || ms > 7LL * 86400 * 1000) {
            rc = err_at(c, at, "'mysql.%s' must be whole seconds between 1s and 7d",
                        timeouts[i]);
            goto done;
        }
        *dst[i] = (int)(ms / 1000);
    }

    /* ssl: true | false | {mode, ca, cert, key, verify_server_cert}. A
     * present ssl section means TLS with full verification unless it says
     * otherwise: the safe choice is the one made when nothing is said. */
    yaml_node_t *sv = cfg_find(c, &s, "ssl");
    if (sv && !cfg_is_null(sv) && sv->type == YAML_SCALAR_NODE) {
        bool on = false;
        if ((rc = get_bool(c, &s, "ssl", &on, NULL)) < 0)
            goto done;
        m->ssl = on;
    } else if (sv && sv->type == YAML_SEQUENCE_NODE) {
        rc = err_at(c, sv, "'mysql.ssl' must be true, false or a mapping, got a list");
        goto done;
    } else {
        if ((rc = open_section(c, &s, "ssl", ssl_keys, &ssl_path, &ssl, &present)) < 0)
            goto done;
        if (present) {
            int mode = 2;
            bool verify = true, verify_given = false;
            yaml_node_t *mode_at = cfg_find(c, &ssl, "mode");
            if ((rc = get_enum(c, &ssl, "mode", ssl_mode_names, false, &mode)) < 0 ||
                (rc = get_bool(c, &ssl, "verify_server_cert", &verify, &verify_given)) < 0)
                goto done;
            bool mode_given = mode_at && !cfg_is_null(mode_at);
            if (mode_given && mode != 0 && verify_given && verify != (mode == 2)) {
                rc = err_at(c, cfg_find(c, &ssl, "verify_server_cert"),
                            "'mysql.ssl.verify_server_cert' contradicts 'mysql.ssl.mode': "
                            "set only one of them");
                goto done;
            }
            m->ssl = mode != 0;
            /* Only `required` (and an explicit verify_server_cert: false)
             * turns verification off; with TLS disabled it keeps its
             * default so that a later `mode` change starts safe. */
            m->ssl_verify_server_cert = mode_given && mode != 0 ? mode == 2 : verify;
            if ((rc = get_str(c, &ssl, "ca", 0, &m->ssl_ca, NULL)) < 0 ||
                (rc = get_str(c, &ssl, "cert", 0, &m->ssl_cert, NULL)) < 0 ||
                (rc = get_str(c, &ssl, "key", 0, &m->ssl_key, NULL)) < 0)
                goto done;
            if (!m->ssl && (m->ssl_ca || m->ssl_cert || m->ssl_key)) {
                rc = err_at(c, mode_at, "'mysql.ssl.mode' is 'disabled' but certificate files "
                                        "are given");
                goto done;
            }
            if (!m->ssl_cert != !m->ssl_key) {
                rc = err_at(c, ssl.node, "'mysql.ssl' needs both 'cert' and 'key' for a client "
                                         "certificate, or neither");
                goto done;
            }
            if ((rc = resolve_path(c, &m->ssl_ca)) < 0 ||
                (rc = resolve_path(c, &m->ssl_cert)) < 0 ||
                (rc = resolve_path(c, &m->ssl_key)) < 0)
                goto done;
        }
    }
done:
    mbq_buf_free(&path);
    mbq_buf_free(&ssl_path);
    return rc;
}

/* bigquery.auth and bigquery.impersonate_service_account. Not given, auth
 * keeps what an endpoint override always meant (no token for an emulator,
 * unless a credentials file is named too) and is Application Default
 * Credentials otherwise; given, it is the user's word, so contradictions are
 * errors rather than guesses: BigQuery itself refuses every request without
 * a token. */
static int parse_bq_auth(cfg_ctx *c, const section *s, mbq_bigquery_config *b)
{
    int rc, mode = -1;
    yaml_node_t *at = NULL;
    if ((rc = get_str(c, s, "impersonate_service_account", 0, &b->impersonate_service_account,
                      &at)) < 0)
        return rc;
    /* IAM Credentials names the account by its email (or unique id). */
    if (b->impersonate_service_account && !strchr(b->impersonate_service_account, '@'))
        return err_at(c, at, "'bigquery.impersonate_service_account' must be a service account "
                             "email such as 'name@project.iam.gserviceaccount.com', got '%s'",
                      esc_str(c, b->impersonate_service_account));
    if ((rc = get_enum(c, s, "auth", bq_auth_names, false, &mode)) < 0)
        return rc;
    if (mode < 0) {
        if (b->impersonate_service_account && !b->endpoint)
            b->auth = MBQ_BIGQUERY_AUTH_DEFAULT;
        else if (b->impersonate_service_account)
            b->auth = MBQ_BIGQUERY_AUTH_ADC; /* impersonating means a token, endpoint or not */
        return 0;
    }
    b->auth = mode == 0   ? MBQ_BIGQUERY_AUTH_SERVICE_ACCOUNT
              : mode == 1 ? MBQ_BIGQUERY_AUTH_NONE
                          : MBQ_BIGQUERY_AUTH_ADC;
    if (b->auth == MBQ_BIGQUERY_AUTH_NONE && b->impersonate_service_account)
        return err_at(c, cfg_find(c, s, "auth"), "'bigquery.auth: none' contradicts "
                                             "'bigquery.impersonate_service_account'");
    if (b->auth == MBQ_BIGQUERY_AUTH_NONE && !b->endpoint)
        return err_at(c, cfg_find(c, s, "auth"), "'bigquery.auth: none' needs 'bigquery.endpoint' "
                                             "(BigQuery refuses requests without a token)");
    if (b->auth == MBQ_BIGQUERY_AUTH_NONE && b->credentials)
        return err_at(c, cfg_find(c, s, "auth"), "'bigquery.auth: none' contradicts "
                                             "'bigquery.credentials' (give one or the other)");
    return 0;
}

int parse_bigquery(cfg_ctx *c, const section *top)
{
    int rc;
    mbq_bigquery_config *b = &c->cfg->bigquery;
    mbq_buf path = MBQ_BUF_INIT;
    section s;
    bool present = false, insecure = false;
    yaml_node_t *at = NULL, *project_at = NULL;
    int64_t v;
    b->upload_chunk_bytes = 8 * 1024 * 1024;
    b->stream_load = true;
    b->multipart_max_bytes = 5 * 1024 * 1024;
    b->compress = true;
    b->staging_expiration_ms = 7LL * 86400 * 1000;
    b->job_timeout_ms = 6LL * 3600 * 1000;
    b->request_timeout_ms = 10LL * 60 * 1000;
    b->max_retries = 8;
    b->retry_max_elapsed_ms = 10LL * 60 * 1000;
    b->tls_verify = true;
    b->max_load_file_bytes = 3LL * 1024 * 1024 * 1024;
    b->max_query_bytes = 1000 * 1000;
    b->max_partitions_per_job = 4000;

    if ((rc = open_section(c, top, "bigquery", bq_keys, &path, &s, &present)) < 0)
        goto done;
    if (!present) {
        rc = err_at(c, top->node, "missing required key 'bigquery'");
        goto done;
    }
    if ((rc = get_str(c, &s, "endpoint", 0, &b->endpoint, &at)) < 0)
        goto done;
    if (b->endpoint && (rc = check_url(c, at, "bigquery.endpoint", b->endpoint, http_schemes)) < 0)
        goto done;
    /* Against BigQuery itself the project may come from the credentials
     * (a key's project_id, the metadata server's project: mbq/credentials.h). */
    if ((rc = get_str(c, &s, "project_id", b->endpoint ? F_REQUIRED : 0, &b->project_id,
                      &project_at)) < 0 ||
        (b->project_id && (rc = check_project(c, project_at, b->project_id, b->endpoint == NULL)) < 0))
        goto done;
    if ((rc = get_str(c, &s, "dataset", F_REQUIRED, &b->dataset, &at)) < 0 ||
        (rc = check_bq_name(c, at, "bigquery.dataset", b->dataset)) < 0)
        goto done;
    if ((rc = get_str(c, &s, "metadata_table", 0, &b->metadata_table, &at)) < 0)
        goto done;
    if (b->metadata_table &&
        (rc = check_bq_name(c, at, "bigquery.metadata_table", b->metadata_table)) < 0)
        goto done;
    if (!b->metadata_table && !(b->metadata_table = mbq_strdup("sync_metadata"))) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    if ((rc = get_str(c, &s, "location", 0, &b->location, &at)) < 0)
        goto done;
    b->location_set = b->location != NULL;
    if (b->location) {
        for (const char *p = b->location; *p; p++) {
            if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || *p == '-')) {
                rc = err_at(c, at, "'bigquery.location' must be a location such as 'US', 'EU' "
                                   "or 'europe-west1', got '%s'", esc_str(c, b->location));
                goto done;
            }
        }
    } else if (!(b->location = mbq_strdup("US"))) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    if ((rc = get_str(c, &s, "credentials", 0, &b->credentials, NULL)) < 0 ||
        (rc = resolve_path(c, &b->credentials)) < 0 ||
        (rc = parse_bq_auth(c, &s, b)) < 0)
        goto done;
    if ((rc = get_str(c, &s, "ca_file", 0, &b->ca_file, NULL)) < 0 ||
        (rc = resolve_path(c, &b->ca_file)) < 0)
        goto done;
    if ((rc = get_size(c, &s, "upload_chunk_size", 1024LL * 1024 * 1024, &b->upload_chunk_bytes,
                       &at)) < 0)
        goto done;
    if (b->upload_chunk_bytes % CHUNK_UNIT != 0) {
        rc = err_at(c, at, "'bigquery.upload_chunk_size' must be a multiple of 256 KiB (262144 "
                           "bytes), or 0 for one request, got %lld bytes",
                    (long long)b->upload_chunk_bytes);
        goto done;
    }
    if ((rc = get_size(c, &s, "multipart_max", 1024LL * 1024 * 1024, &b->multipart_max_bytes,
                       NULL)) < 0)
        goto done;
    /* compression: true/false, or gzip/none. */
    yaml_node_t *cv = cfg_find(c, &s, "compression");
    if (cv && cv->type == YAML_SCALAR_NODE && !cfg_is_null(cv)) {
        char *val = NULL;
        if ((rc = get_text(c, &s, "compression", 0, "gzip or none", &val, NULL)) < 0)
            goto done;
        if (strcasecmp(val, "gzip") == 0)
            b->compress = true;
        else if (strcasecmp(val, "none") == 0)
            b->compress = false;
        else if ((rc = get_bool(c, &s, "compression", &b->compress, NULL)) < 0)
            rc = err_at(c, cv, "'bigquery.compression' must be gzip, none, true or false, got "
                               "'%s'", esc_str(c, val));
        free(val);
        if (rc < 0)
            goto done;
    } else if ((rc = get_bool(c, &s, "compression", &b->compress, NULL)) < 0) {
        goto done;
    }
    if ((rc = get_bool(c, &s, "stream_load", &b->stream_load, NULL)) < 0)
        goto done;
    /* BigQuery refuses table expirations under one hour. */
    if ((rc = get_duration(c, &s, "staging_expiration", 3600 * 1000, &b->staging_expiration_ms,
                           NULL)) < 0 ||
        (rc = get_duration(c, &s, "job_timeout", 1000, &b->job_timeout_ms, NULL)) < 0 ||
        (rc = get_duration(c, &s, "request_timeout", 1000, &b->request_timeout_ms, NULL)) < 0 ||
        (rc = get_duration(c, &s, "retry_max_elapsed", 1000, &b->retry_max_elapsed_ms, NULL)) <
            0)
        goto done;
    v = b->max_retries;
    if ((rc = get_int(c, &s, "max_retries", 0, 100, &v)) < 0)
        goto done;
    b->max_retries = (int)v;
    if ((rc = get_bool(c, &s, "tls_insecure", &insecure, NULL)) < 0)
        goto done;
    b->tls_verify = !insecure;
    if ((rc = get_limits(c, &s, b)) < 0)
        goto done;
    int missing = MBQ_MISSING_FAIL;
    if ((rc = get_enum(c, &s, "on_missing_target", missing_names, false, &missing)) < 0)
        goto done;
    b->on_missing_target = (mbq_missing_policy)missing;
    for (size_t i = 0; i < c->cfg->n_tables; i++)
        if ((int)c->cfg->tables[i].on_missing_target < 0)
            c->cfg->tables[i].on_missing_target = b->on_missing_target;
    for (size_t i = 0; i < c->cfg->n_patterns; i++)
        if ((int)c->cfg->patterns[i].on_missing_target < 0)
            c->cfg->patterns[i].on_missing_target = b->on_missing_target;
done:
    mbq_buf_free(&path);
    return rc;
}

static int parse_email(cfg_ctx *c, const section *alerting)
{
    int rc;
    mbq_email_config *e = &c->cfg->email;
    mbq_buf path = MBQ_BUF_INIT;
    section s;
    bool present = false, insecure = false;
    yaml_node_t *at = NULL, *host_at = NULL;
    e->tls_verify = true;
    if ((rc = open_section(c, alerting, "email", email_keys, &path, &s, &present)) < 0 ||
        !present)
        goto done;
    e->enabled = true;
    if ((rc = get_bool(c, &s, "enabled", &e->enabled, NULL)) < 0)
        goto done;
    int req = e->enabled ? F_REQUIRED : 0;
    int tls = 0, on = MBQ_ALERT_FAILURE;
    if ((rc = get_enum(c, &s, "tls", email_tls_names, false, &tls)) < 0 ||
        (rc = get_enum(c, &s, "on", alert_on_names, false, &on)) < 0)
        goto done;
    e->on = (mbq_alert_on)on;
    if (!(e->tls = mbq_strdup(email_tls_names[tls]))) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    /* The port follows the TLS mode unless given: 587 submission with
     * STARTTLS, 465 for implicit TLS, 25 for plain SMTP. */
    int64_t port = tls == 1 ? 465 : tls == 2 ? 25 : 587;
    if ((rc = get_int(c, &s, "port", 1, 65535, &port)) < 0)
        goto done;
    e->port = (unsigned)port;
    if ((rc = get_str(c, &s, "smtp_url", 0, &e->smtp_url, &at)) < 0 ||
        (rc = get_str(c, &s, "host", 0, &e->host, &host_at)) < 0)
        goto done;
    if (e->smtp_url) {
        static const char *const smtp_schemes[] = {"smtp://", "smtps://", NULL};
        if ((rc = check_url(c, at, "alerting.email.smtp_url", e->smtp_url, smtp_schemes)) < 0)
            goto done;
        if (e->host) {
            rc = err_at(c, host_at, "set either 'alerting.email.smtp_url' or "
                                    "'alerting.email.host', not both");
            goto done;
        }
    } else if (e->host) {
        bool v6 = strchr(e->host, ':') && e->host[0] != '[';
        mbq_buf url = MBQ_BUF_INIT;
        rc = mbq_buf_printf(&url, "%s://%s%s%s:%u", tls == 1 ? "smtps" : "smtp", v6 ? "[" : "",
                            e->host, v6 ? "]" : "", e->port);
        if (rc == 0 && !(e->smtp_url = mbq_buf_detach(&url)))
            rc = MBQ_ENOMEM;
        mbq_buf_free(&url);
        if (rc < 0)
            goto done;
    } else if (e->enabled) {
        rc = err_at(c, s.node, "missing required key 'host' (or 'smtp_url') in 'alerting.email'");
        goto done;
    }
    if ((rc = get_str(c, &s, "username", 0, &e->username, NULL)) < 0 ||
        (rc = get_str(c, &s, "password", F_SECRET | F_EMPTY_OK, &e->password, &at)) < 0)
        goto done;
    if (e->password && *e->password && !e->username) {
        rc = err_at(c, at, "'alerting.email.password' needs 'alerting.email.username'");
        goto done;
    }
    if ((rc = get_str(c, &s, "from", req, &e->from, &at)) < 0 ||
        (e->from && (rc = check_address(c, at, "alerting.email.from", e->from)) < 0))
        goto done;
    if ((rc = get_list(c, &s, "to", req, 100, check_address, &e->to, &e->n_to, &at)) < 0)
        goto done;
    if ((rc = get_bool(c, &s, "tls_insecure", &insecure, NULL)) < 0)
        goto done;
    e->tls_verify = !insecure;
done:
    mbq_buf_free(&path);
    return rc;
}

static int parse_telegram(cfg_ctx *c, const section *alerting)
{
    int rc;
    mbq_telegram_config *t = &c->cfg->telegram;
    mbq_buf path = MBQ_BUF_INIT;
    section s;
    bool present = false;
    yaml_node_t *at = NULL;
    if ((rc = open_section(c, alerting, "telegram", telegram_keys, &path, &s, &present)) < 0 ||
        !present)
        goto done;
    t->enabled = true;
    if ((rc = get_bool(c, &s, "enabled", &t->enabled, NULL)) < 0)
        goto done;
    int req = t->enabled ? F_REQUIRED : 0;
    int on = MBQ_ALERT_FAILURE;
    if ((rc = get_enum(c, &s, "on", alert_on_names, false, &on)) < 0)
        goto done;
    t->on = (mbq_alert_on)on;
    if ((rc = get_str(c, &s, "bot_token", req | F_SECRET, &t->bot_token, &at)) < 0)
        goto done;
    /* The token goes into the URL path (/bot<token>/sendMessage); anything
     * but its own alphabet could redirect the request. Its value is never
     * shown. */
    for (const char *p = t->bot_token; p && *p; p++) {
        if (!(isalnum((unsigned char)*p) || *p == ':' || *p == '_' || *p == '-')) {
            rc = err_at(c, at, "'alerting.telegram.bot_token' holds a character a bot token "
                               "cannot have (value not shown: it is a secret)");
            goto done;
        }
    }
    if ((rc = get_str(c, &s, "chat_id", req, &t->chat_id, &at)) < 0)
        goto done;
    if (t->chat_id) {
        const char *p = t->chat_id;
        bool ok;
        if (*p == '@') {
            ok = strlen(p) >= 2;
            for (p++; *p && ok; p++)
                ok = isalnum((unsigned char)*p) || *p == '_';
        } else {
            ok = all_digits(p) && *p != '+';
        }
        if (!ok) {
            rc = err_at(c, at, "'alerting.telegram.chat_id' must be a chat number such as "
                               "'-1001234567890' or a channel such as '@my_channel', got '%s'",
                        esc_str(c, t->chat_id));
            goto done;
        }
    }
    if ((rc = get_str(c, &s, "api_url", 0, &t->api_url, &at)) < 0)
        goto done;
    if (t->api_url) {
        if ((rc = check_url(c, at, "alerting.telegram.api_url", t->api_url, http_schemes)) < 0)
            goto done;
    } else if (!(t->api_url = mbq_strdup("https://api.telegram.org"))) {
        rc = MBQ_ENOMEM;
        goto done;
    }
done:
    mbq_buf_free(&path);
    return rc;
}

int parse_alerting(cfg_ctx *c, const section *top)
{
    mbq_buf path = MBQ_BUF_INIT;
    section s;
    bool present = false;
    int rc = open_section(c, top, "alerting", alerting_keys, &path, &s, &present);
    /* A run finding the lock held is normal while the previous run is
     * still going (a first sync of a big table outlasts the schedule's
     * interval): only a lock held longer than this is alerted. */
    c->cfg->lock_alert_after_ms = 3600 * 1000;
    if (rc == 0 && present && (rc = parse_email(c, &s)) == 0 && (rc = parse_telegram(c, &s)) == 0)
        rc = get_duration(c, &s, "lock_alert_after", 0, &c->cfg->lock_alert_after_ms, NULL);
    mbq_buf_free(&path);
    return rc;
}

int parse_state_and_log(cfg_ctx *c, const section *top)
{
    mbq_config *cfg = c->cfg;
    mbq_buf path = MBQ_BUF_INIT, lpath = MBQ_BUF_INIT;
    section s;
    bool present = false;
    int rc = open_section(c, top, "state", state_keys, &path, &s, &present);
    if (rc == 0 && present)
        rc = get_str(c, &s, "dir", 0, &cfg->state_dir, NULL);
    if (rc == 0 && !cfg->state_dir && !(cfg->state_dir = mbq_strdup(".mbq-state")))
        rc = MBQ_ENOMEM;
    if (rc == 0)
        rc = resolve_path(c, &cfg->state_dir);
    if (rc == 0)
        rc = open_section(c, top, "log", log_keys, &lpath, &s, &present);
    if (rc == 0 && present) {
        int level = -1, format = -1;
        if ((rc = get_enum(c, &s, "level", log_level_names, false, &level)) == 0 &&
            (rc = get_enum(c, &s, "format", log_format_names, false, &format)) == 0) {
            if (level >= 0 && !(cfg->log_level = mbq_strdup(log_level_names[level])))
                rc = MBQ_ENOMEM;
            if (rc == 0 && format >= 0 && !(cfg->log_format = mbq_strdup(log_format_names[format])))
                rc = MBQ_ENOMEM;
        }
    }
    mbq_buf_free(&path);
    mbq_buf_free(&lpath);
    return rc;
}

int parse_sync(cfg_ctx *c, const section *top)
{
    mbq_buf path = MBQ_BUF_INIT;
    section s;
    bool present = false;
    int64_t jobs = 0;
    int rc = open_section(c, top, "sync", sync_keys, &path, &s, &present);
    if (rc == 0 && present && (rc = get_int(c, &s, "jobs", 1, MBQ_CONFIG_JOBS_MAX, &jobs)) == 0)
        c->cfg->sync_jobs = (int)jobs;
    mbq_buf_free(&path);
    return rc;
}

int parse_metrics_file(cfg_ctx *c, const section *top)
{
    int rc = get_str(c, top, "metrics_file", 0, &c->cfg->metrics_file, NULL);
    if (rc == 0 && c->cfg->metrics_file)
        rc = resolve_path(c, &c->cfg->metrics_file);
    return rc;
}
