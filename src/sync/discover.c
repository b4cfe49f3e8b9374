/* Discovery: the tables the pattern entries take, each with its key, cursor
 * and mode and the reason for them (mbq/discover.h states the rules). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mbq/buf.h"
#include "mbq/discover.h"
#include "mbq/error.h"
#include "mbq/util.h"
#include "mbq/banned.h"

bool mbq_glob_match(const char *p, const char *s)
{
    /* Iterative matcher with one backtrack point: linear enough for names
     * of at most 64 characters, and nothing but '*' and '?' is special. */
    const char *star = NULL, *resume = NULL;
    while (*s) {
        if (*p == '?' || (*p && *p == *s && *p != '*')) {
            p++;
            s++;
        } else if (*p == '*') {
            star = p++;
            resume = s;
        } else if (star) {
            p = star + 1;
            s = ++resume;
        } else {
            return false;
        }
    }
    while (*p == '*')
        p++;
    return *p == '\0';
}

static bool named_in_config(const mbq_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_tables; i++)
        if (strcmp(cfg->tables[i].name, name) == 0)
            return true;
    return false;
}

int mbq_pattern_for(const mbq_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_patterns; i++) {
        const mbq_table_pattern *p = &cfg->patterns[i];
        if (!mbq_glob_match(p->name, name))
            continue;
        bool excluded = false;
        for (size_t e = 0; e < p->n_exclude && !excluded; e++)
            excluded = mbq_glob_match(p->exclude[e], name);
        if (!excluded)
            return (int)i;
    }
    return -1;
}

static const mbq_catalog_column *column_nocase(const mbq_catalog_table *t, const char *name)
{
    /* MySQL column names are case-insensitive. */
    for (size_t i = 0; i < t->n_columns; i++)
        if (strcasecmp(t->columns[i].name, name) == 0)
            return &t->columns[i];
    return NULL;
}

static bool is_time_type(const char *type)
{
    return strcmp(type, "timestamp") == 0 || strcmp(type, "datetime") == 0;
}

static bool is_cursor_type(const char *type)
{
    static const char *const ints[] = {"tinyint", "smallint", "mediumint", "int", "bigint"};
    if (is_time_type(type))
        return true;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (strcmp(type, ints[i]) == 0)
            return true;
    return false;
}

/* Quoted as MySQL quotes a name: `a``b`. */
static int put_name(mbq_buf *b, const char *name)
{
    return mbq_buf_quote_mysql_ident(b, name);
}

static int put_columns(mbq_buf *b, char *const *cols, size_t n)
{
    int rc = mbq_buf_putc(b, '(');
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (i)
            rc = mbq_buf_puts(b, ", ");
        if (rc == 0)
            rc = put_name(b, cols[i]);
    }
    return rc ? rc : mbq_buf_putc(b, ')');
}

/* The key: PRIMARY, else the smallest unique index on NOT NULL columns.
 * *ix NULL when there is none; `why` gets the reason either way. */
static int choose_key(const mbq_catalog_index **ix, mbq_buf *why, const mbq_catalog_table *t)
{
    *ix = NULL;
    for (size_t i = 0; i < t->n_unique; i++)
        if (strcmp(t->unique[i].name, "PRIMARY") == 0)
            *ix = &t->unique[i];
    if (*ix)
        return mbq_buf_puts(why, "key: the PRIMARY KEY");
    for (size_t i = 0; i < t->n_unique; i++) {
        const mbq_catalog_index *u = &t->unique[i];
        bool not_null = true;
        for (size_t k = 0; k < u->n_columns && not_null; k++) {
            const mbq_catalog_column *c = column_nocase(t, u->columns[k]);
            not_null = c && !c->nullable;
        }
        /* Ties go to the first by name: indexes come sorted by name. */
        if (not_null && (!*ix || u->n_columns < (*ix)->n_columns))
            *ix = u;
    }
    if (*ix) {
        int rc = mbq_buf_puts(why, "key: unique index ");
        if (rc == 0)
            rc = put_name(why, (*ix)->name);
        return rc ? rc : mbq_buf_puts(why, " on NOT NULL columns (no PRIMARY KEY)");
    }
    return mbq_buf_puts(why, "no PRIMARY KEY and no unique index on NOT NULL columns: mbq never "
                             "guesses a key; add one (or an entry of its own once it has one)");
}

/* The cursor column, or NULL for a full refresh; `why` gets the reason. */
static int choose_cursor(const mbq_catalog_column **out, mbq_buf *why, const mbq_catalog_table *t,
                         const mbq_table_pattern *p)
{
    int rc = 0;
    *out = NULL;
    if (p->full)
        return mbq_buf_puts(why, "; mode: full (the entry says so)");
    for (size_t i = 0; i < p->n_cursor_columns && rc == 0; i++) {
        const mbq_catalog_column *c = column_nocase(t, p->cursor_columns[i]);
        if (!c)
            continue;
        if (!is_cursor_type(c->data_type)) {
            rc = mbq_buf_printf(why, "; %s is %s, not a cursor type", c->name, c->data_type);
            continue;
        }
        if (c->nullable) {
            /* Rows whose cursor is NULL are read by the first sync only. */
            rc = mbq_buf_printf(why, "; %s can be NULL (such rows would be missed after the "
                                     "first sync), not the cursor", c->name);
            continue;
        }
        *out = c;
        return mbq_buf_printf(why, "; cursor: %s (%s, a cursor name of the entry)", c->name,
                              c->data_type);
    }
    for (size_t i = 0; i < t->n_columns && rc == 0; i++) {
        const mbq_catalog_column *c = &t->columns[i];
        if (c->on_update_now && !c->nullable && is_time_type(c->data_type)) {
            *out = c;
            return mbq_buf_printf(why, "; cursor: %s (ON UPDATE CURRENT_TIMESTAMP)", c->name);
        }
    }
    if (rc == 0)
        rc = mbq_buf_puts(why, "; no cursor column: full refresh every run");
    return rc;
}

static uint32_t fnv1a(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* BigQuery's name for the table: itself, or mapped (mbq/discover.h). */
static char *target_name(const char *name, bool *mapped)
{
    mbq_buf b = MBQ_BUF_INIT;
    *mapped = false;
    for (const char *p = name; *p; p++) {
        bool ok = *p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9');
        *mapped = *mapped || !ok;
        /* One '_' per character, as for column names (README, "Column
         * names"): a UTF-8 continuation byte adds none. */
        if (((unsigned char)*p & 0xC0) == 0x80)
            continue;
        if (mbq_buf_putc(&b, ok ? *p : '_') < 0)
            goto fail;
    }
    if (*mapped && mbq_buf_printf(&b, "_%08x", fnv1a(name)) < 0)
        goto fail;
    return mbq_buf_detach(&b);
fail:
    mbq_buf_free(&b);
    return NULL;
}

/* Is `target` (case-insensitively, as BigQuery datasets may be) taken by a
 * table named in the config, an earlier discovered one or the metadata table? */
static const char *target_taken(const mbq_config *cfg, const mbq_discovery *d, const char *target)
{
    if (strcasecmp(target, cfg->bigquery.metadata_table) == 0)
        return "the metadata table (bigquery.metadata_table)";
    for (size_t i = 0; i < cfg->n_tables; i++)
        if (strcasecmp(cfg->tables[i].target, target) == 0)
            return "the target of a table named in the config";
    for (size_t i = 0; i < d->n; i++)
        if (!d->tables[i].skipped && d->tables[i].tc.target &&
            strcasecmp(d->tables[i].tc.target, target) == 0)
            return "the target of another discovered table";
    return NULL;
}

static int fill_config(mbq_table_config *tc, const mbq_catalog_table *t,
                       const mbq_catalog_index *key, const mbq_catalog_column *cursor,
                       const mbq_table_pattern *p, char *target)
{
    tc->target = target;
    tc->line = p->line;
    tc->on_incompatible_change = p->on_incompatible_change;
    tc->on_missing_target = p->on_missing_target;
    tc->mode = cursor ? MBQ_MODE_INCREMENTAL : MBQ_MODE_FULL;
    tc->lookback_ms = cursor && is_time_type(cursor->data_type) ? p->lookback_ms : 0;
    if (!(tc->name = mbq_strdup(t->name)) || !(tc->partition_type = mbq_strdup("DAY")) ||
        (cursor && !(tc->updated_column = mbq_strdup(cursor->name))) ||
        !(tc->primary_key = mbq_calloc(key->n_columns, sizeof *tc->primary_key)))
        return MBQ_ENOMEM;
    for (size_t i = 0; i < key->n_columns; i++) {
        /* The column's own spelling, not the index's. */
        const mbq_catalog_column *c = column_nocase(t, key->columns[i]);
        if (!(tc->primary_key[tc->n_primary_key++] = mbq_strdup(c ? c->name : key->columns[i])))
            return MBQ_ENOMEM;
    }
    return 0;
}

static int resolve_table(mbq_discovery *d, const mbq_config *cfg, const mbq_catalog_table *t,
                         int pi)
{
    const mbq_table_pattern *p = &cfg->patterns[pi];
    mbq_discovered_table *out = &d->tables[d->n];
    const mbq_catalog_index *key = NULL;
    const mbq_catalog_column *cursor = NULL;
    mbq_buf why = MBQ_BUF_INIT;
    char *target = NULL;
    bool mapped = false;
    int rc;
    memset(out, 0, sizeof *out);
    out->pattern = p;
    out->pattern_index = (size_t)pi;
    if (!(out->name = mbq_strdup(t->name))) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    d->n++;
    if ((rc = choose_key(&key, &why, t)) < 0)
        goto done;
    if (!key) {
        out->skipped = true;
        goto done;
    }
    if ((rc = choose_cursor(&cursor, &why, t, p)) < 0 || !(target = target_name(t->name, &mapped))) {
        rc = rc < 0 ? rc : MBQ_ENOMEM;
        goto done;
    }
    const char *taken = target_taken(cfg, d, target);
    if (taken) {
        out->skipped = true;
        rc = mbq_buf_printf(&why, "; its BigQuery name '%s' is %s: give it an entry with a "
                                  "'target' of its own", target, taken);
        goto done;
    }
    if (mapped && (rc = mbq_buf_printf(&why, "; target %s (BigQuery names are letters, digits "
                                             "and '_')", target)) < 0)
        goto done;
    rc = fill_config(&out->tc, t, key, cursor, p, target);
    target = NULL; /* owned by out->tc now */
done:
    free(target);
    if (rc == 0 && !(out->why = mbq_buf_detach(&why)))
        rc = MBQ_ENOMEM;
    mbq_buf_free(&why);
    return rc;
}

static int find_dropped(mbq_discovery *d, const mbq_config *cfg, const mbq_catalog *cat,
                        char *const *known)
{
    for (size_t i = 0; known && known[i]; i++) {
        const char *name = known[i];
        bool present = false;
        for (size_t k = 0; k < cat->n && !present; k++)
            present = strcmp(cat->tables[k].name, name) == 0;
        if (present || named_in_config(cfg, name) || mbq_pattern_for(cfg, name) < 0)
            continue;
        char **v = mbq_realloc(d->dropped, (d->n_dropped + 1) * sizeof *v);
        if (!v)
            return MBQ_ENOMEM;
        d->dropped = v;
        if (!(v[d->n_dropped] = mbq_strdup(name)))
            return MBQ_ENOMEM;
        d->n_dropped++;
    }
    return 0;
}

int mbq_discover(mbq_discovery **out, mbq_mysql *my, const mbq_config *cfg, char *const *known)
{
    int rc;
    mbq_catalog *cat = NULL;
    mbq_discovery *d = mbq_calloc(1, sizeof *d);
    *out = NULL;
    if (!d)
        return MBQ_ENOMEM;
    if ((rc = mbq_mysql_catalog(&cat, my, cfg->mysql.database)) < 0)
        goto done;
    if (!(d->tables = mbq_calloc(cat->n ? cat->n : 1, sizeof *d->tables))) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < cat->n; i++) {
        const mbq_catalog_table *t = &cat->tables[i];
        int pi = named_in_config(cfg, t->name) ? -1 : mbq_pattern_for(cfg, t->name);
        if (pi >= 0 && (rc = resolve_table(d, cfg, t, pi)) < 0)
            goto done;
    }
    if ((rc = find_dropped(d, cfg, cat, known)) < 0)
        goto done;
    *out = d;
    d = NULL;
done:
    mbq_catalog_free(cat);
    mbq_discovery_free(d);
    return rc;
}

int mbq_discover_table(const mbq_table_config **tc, mbq_discovery **disc, const mbq_config *cfg,
                       const char *name)
{
    mbq_mysql *my = NULL;
    int rc = 0;
    *tc = mbq_config_table(cfg, name);
    *disc = NULL;
    if (*tc)
        return 0;
    if (mbq_pattern_for(cfg, name) < 0)
        return mbq_error_set(MBQ_ECONFIG, "table '%s' is not in the config '%s'", name,
                             cfg->path);
    if ((rc = mbq_mysql_connect(&my, &cfg->mysql)) < 0 ||
        (rc = mbq_discover(disc, my, cfg, NULL)) < 0)
        goto done;
    for (size_t i = 0; i < (*disc)->n; i++) {
        const mbq_discovered_table *t = &(*disc)->tables[i];
        if (strcmp(t->name, name) != 0)
            continue;
        if (t->skipped)
            rc = mbq_error_set(MBQ_ESCHEMA, "table '%s' is not synced: %s", name, t->why);
        else
            *tc = &t->tc;
        goto done;
    }
    rc = mbq_error_set(MBQ_ESCHEMA, "table '%s' matches a pattern of the config '%s' but is not "
                                    "in database '%s'",
                       name, cfg->path, cfg->mysql.database);
done:
    mbq_mysql_close(my);
    return rc;
}

void mbq_discovery_free(mbq_discovery *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++) {
        mbq_discovered_table *t = &d->tables[i];
        mbq_table_config *tc = &t->tc;
        free(t->name);
        free(t->why);
        free(tc->name);
        for (size_t k = 0; k < tc->n_primary_key; k++)
            free(tc->primary_key[k]);
        free(tc->primary_key);
        free(tc->updated_column);
        free(tc->target);
        free(tc->partition_type);
    }
    free(d->tables);
    for (size_t i = 0; i < d->n_dropped; i++)
        free(d->dropped[i]);
    free(d->dropped);
    free(d);
}

/* "table `a` -> target: key (`id`); cursor `updated_at`; mode incremental; <why>" */
static void print_table(FILE *f, const mbq_table_config *tc, const char *why)
{
    mbq_buf b = MBQ_BUF_INIT;
    int rc = mbq_buf_puts(&b, "table ");
    if (rc == 0)
        rc = put_name(&b, tc->name);
    if (rc == 0)
        rc = mbq_buf_printf(&b, " -> %s: key ", tc->target);
    if (rc == 0)
        rc = put_columns(&b, tc->primary_key, tc->n_primary_key);
    if (rc == 0)
        rc = mbq_buf_puts(&b, "; cursor ");
    if (rc == 0)
        rc = tc->updated_column && tc->mode == MBQ_MODE_INCREMENTAL
                 ? put_name(&b, tc->updated_column)
                 : mbq_buf_puts(&b, "none");
    if (rc == 0)
        rc = mbq_buf_printf(&b, "; mode %s; %s\n",
                            tc->mode == MBQ_MODE_FULL ? "full" : "incremental", why);
    if (rc == 0)
        fputs(mbq_buf_cstr(&b), f);
    mbq_buf_free(&b);
}

void mbq_discovery_print(FILE *f, const mbq_config *cfg, const mbq_discovery *d)
{
    size_t n_sync = 0, n_skip = 0;
    for (size_t i = 0; d && i < d->n; i++)
        d->tables[i].skipped ? n_skip++ : n_sync++;
    fprintf(f, "tables: %zu named in the config, %zu discovered, %zu skipped, %zu dropped\n",
            cfg->n_tables, n_sync, n_skip, d ? d->n_dropped : 0);
    for (size_t i = 0; i < cfg->n_tables; i++)
        print_table(f, &cfg->tables[i], "named in the config");
    for (size_t i = 0; d && i < d->n; i++) {
        const mbq_discovered_table *t = &d->tables[i];
        mbq_buf b = MBQ_BUF_INIT;
        if (mbq_buf_printf(&b, "discovered by tables entry '%s' (line %d); %s", t->pattern->name,
                           t->pattern->line, t->why) < 0) {
            mbq_buf_free(&b);
            continue;
        }
        if (!t->skipped) {
            print_table(f, &t->tc, mbq_buf_cstr(&b));
        } else {
            mbq_buf q = MBQ_BUF_INIT;
            if (put_name(&q, t->name) == 0)
                fprintf(f, "skip %s: %s\n", mbq_buf_cstr(&q), mbq_buf_cstr(&b));
            mbq_buf_free(&q);
        }
        mbq_buf_free(&b);
    }
    for (size_t i = 0; d && i < d->n_dropped; i++) {
        mbq_buf q = MBQ_BUF_INIT;
        if (put_name(&q, d->dropped[i]) == 0)
            fprintf(f, "dropped %s: synced before, gone from MySQL; not synced, its BigQuery "
                       "table is kept\n",
                    mbq_buf_cstr(&q));
        mbq_buf_free(&q);
    }
}
