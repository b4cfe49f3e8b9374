/* `tables:` entries that name many tables: a glob in `name` or
 * `discover: true` (see mbq_table_pattern in mbq/config.h). They are only
 * checked here; which tables they take is decided against MySQL at each run
 * (src/sync/discover.c), so a table created tomorrow is synced tomorrow. */
#include <stdlib.h>
#include <string.h>

#include "mbq/config.h"
#include "mbq/error.h"
#include "mbq/util.h"

#include "config_internal.h"
#include "mbq/banned.h"

/* The keys that decide per table and cannot be one value for many. */
static const char *const per_table_only[] = {"primary_key", "updated_column", "target",
                                             "partition_by", "partition_type", "cluster_by"};

static const char *const pattern_keys[] = {
    "name",   "discover",       "exclude",      "cursor_columns", "mode",
    "lookback", "on_incompatible_change", "on_missing_target",
    /* refused with a message of their own: */
    "primary_key", "updated_column", "target", "partition_by", "partition_type", "cluster_by",
    NULL};

static bool scalar_has_glob(const yaml_node_t *n)
{
    if (!n || n->type != YAML_SCALAR_NODE)
        return false;
    const char *v = (const char *)n->data.scalar.value;
    size_t len = n->data.scalar.length;
    return memchr(v, '*', len) != NULL || memchr(v, '?', len) != NULL;
}

bool table_entry_is_pattern(cfg_ctx *c, yaml_node_t *item)
{
    if (!item || item->type != YAML_MAPPING_NODE)
        return false;
    section s = {item, ""};
    return cfg_find(c, &s, "discover") != NULL || scalar_has_glob(cfg_find(c, &s, "name"));
}

/* An exclude glob: a MySQL name that may hold '*' and '?'. */
static int check_glob(cfg_ctx *c, const yaml_node_t *n, const char *path, const char *v)
{
    return check_mysql_ident(c, n, path, v);
}

/* The names and the mode: `discover: true` is the glob "*"; with a `name`
 * too it would say two things. */
static int pattern_name(cfg_ctx *c, const section *s, const char *path, mbq_table_pattern *p)
{
    int rc;
    bool discover = false, given = false;
    yaml_node_t *at = NULL;
    if ((rc = get_bool(c, s, "discover", &discover, &given)) < 0 ||
        (rc = get_str(c, s, "name", 0, &p->name, &at)) < 0)
        return rc;
    if (given && !discover)
        return err_at(c, cfg_find(c, s, "discover"),
                      "'%s.discover' is false: remove the entry, or name tables one by one", path);
    if (given && p->name)
        return err_at(c, at, "'%s' has both 'discover: true' and 'name': 'discover' takes every "
                             "table, a 'name' with '*' or '?' some of them; keep one",
                      path);
    if (!p->name && !(p->name = mbq_strdup("*")))
        return MBQ_ENOMEM;
    if (at) {
        mbq_buf sub = MBQ_BUF_INIT;
        rc = mbq_buf_printf(&sub, "%s.name", path);
        if (rc == 0)
            rc = check_glob(c, at, sub.ptr, p->name);
        mbq_buf_free(&sub);
    }
    return rc;
}

int parse_pattern(cfg_ctx *c, yaml_node_t *n, size_t idx, mbq_table_pattern *p)
{
    static const char *const modes[] = {"incremental", "full", NULL};
    static const char *const policies[] = {"fail", "rebuild", NULL};
    static const char *const missing[] = {"fail", "reload", NULL};
    int rc;
    mbq_buf path = MBQ_BUF_INIT;
    p->line = (int)n->start_mark.line + 1;
    p->on_missing_target = (mbq_missing_policy)-1; /* bigquery.on_missing_target fills it */
    if ((rc = mbq_buf_printf(&path, "tables[%zu]", idx)) < 0)
        goto done;
    if ((rc = check_mapping(c, n, path.ptr, pattern_keys)) < 0)
        goto done;
    section s = {n, path.ptr};
    for (size_t k = 0; k < sizeof per_table_only / sizeof per_table_only[0]; k++) {
        yaml_node_t *at = cfg_find(c, &s, per_table_only[k]);
        if (at) {
            rc = err_at(c, at,
                        "'%s.%s' cannot be set on a pattern: mbq finds it per table (give the "
                        "table an entry of its own to set it)",
                        path.ptr, per_table_only[k]);
            goto done;
        }
    }
    if ((rc = pattern_name(c, &s, path.ptr, p)) < 0)
        goto done;
    if ((rc = get_list(c, &s, "exclude", 0, 1000, check_glob, &p->exclude, &p->n_exclude,
                       NULL)) < 0 ||
        (rc = get_list(c, &s, "cursor_columns", 0, 16, check_mysql_ident, &p->cursor_columns,
                       &p->n_cursor_columns, NULL)) < 0)
        goto done;
    if (!p->cursor_columns) {
        /* The names ORMs give an "updated" column (Rails, Django's
         * convention, Laravel: updated_at; others: modified_at). */
        static const char *const defaults[] = {"updated_at", "modified_at"};
        if (!(p->cursor_columns = mbq_calloc(2, sizeof *p->cursor_columns))) {
            rc = MBQ_ENOMEM;
            goto done;
        }
        for (size_t i = 0; i < 2; i++)
            if (!(p->cursor_columns[p->n_cursor_columns++] = mbq_strdup(defaults[i]))) {
                rc = MBQ_ENOMEM;
                goto done;
            }
    }
    /* Which tables a pattern takes is decided at each run, while one
     * binlog follower runs for days: a table of its own says which it
     * follows. */
    yaml_node_t *mode_at = cfg_find(c, &s, "mode");
    if (mode_at && mode_at->type == YAML_SCALAR_NODE &&
        strcmp((const char *)mode_at->data.scalar.value, "cdc") == 0) {
        rc = err_at(c, mode_at,
                    "'%s.mode' is 'cdc' on a pattern: give each table followed through the "
                    "binlog an entry of its own (name and primary_key)",
                    path.ptr);
        goto done;
    }
    int mode = MBQ_MODE_INCREMENTAL, policy = MBQ_POLICY_FAIL, miss = -1;
    if ((rc = get_enum(c, &s, "mode", modes, false, &mode)) < 0 ||
        (rc = get_duration(c, &s, "lookback", 0, &p->lookback_ms, NULL)) < 0 ||
        (rc = get_enum(c, &s, "on_incompatible_change", policies, false, &policy)) < 0 ||
        (rc = get_enum(c, &s, "on_missing_target", missing, false, &miss)) < 0)
        goto done;
    p->full = mode == MBQ_MODE_FULL;
    p->on_incompatible_change = (mbq_change_policy)policy;
    p->on_missing_target = (mbq_missing_policy)miss;
done:
    mbq_buf_free(&path);
    return rc;
}

void free_patterns(mbq_table_pattern *p, size_t n)
{
    for (size_t i = 0; p && i < n; i++) {
        free(p[i].name);
        free_list(p[i].exclude, p[i].n_exclude);
        free_list(p[i].cursor_columns, p[i].n_cursor_columns);
    }
    free(p);
}
