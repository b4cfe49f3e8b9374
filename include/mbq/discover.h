/* Discovery: which tables the pattern entries of `tables:` take, with a key,
 * a cursor and a mode for each, decided against MySQL at every run (a table
 * created since the last run is synced by this one).
 *
 * Per table of the database, in name order:
 *   - a table with an entry of its own is that entry's (never a pattern's);
 *   - else the first pattern entry whose glob matches and whose excludes do
 *     not takes it;
 *   - key: the PRIMARY KEY, else the unique index whose columns are all NOT
 *     NULL with the fewest columns (then by index name). No such key: the
 *     table is skipped and reported, never synced by a guessed key (MERGE by
 *     a key that is not unique would merge distinct rows into one);
 *   - cursor: the first of the entry's cursor_columns (default updated_at,
 *     modified_at; any letter case) that is NOT NULL and of a cursor type
 *     (TIMESTAMP, DATETIME, an integer); else a NOT NULL TIMESTAMP/DATETIME
 *     column with ON UPDATE CURRENT_TIMESTAMP; else (or with mode: full) a
 *     full refresh every run. A NULLable column is never the cursor: its
 *     NULL rows would be missed after the first sync;
 *   - target: the table's name, or when BigQuery cannot hold it, the name
 * with every character other than ASCII letters, digits and '_' made '_'
 *     plus '_' and 8 hex digits of the FNV-1a hash of the MySQL name.
 * Tables the journal knows, that a pattern would take and that MySQL no
 * longer has, are reported as dropped (their BigQuery tables are kept). */
#ifndef MBQ_DISCOVER_H
#define MBQ_DISCOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "mbq/config.h"
#include "mbq/mysql_source.h"

typedef struct mbq_discovered_table {
    char *name;                       /* the MySQL table */
    const mbq_table_pattern *pattern; /* the entry that took it (borrowed from the config) */
    size_t pattern_index;             /* its index among cfg->patterns */
    bool skipped;                     /* no usable key (or no usable target name) */
    char *why;                        /* how key, cursor and mode were chosen, or why skipped */
    mbq_table_config tc;              /* unless skipped: as if the user had written it */
} mbq_discovered_table;

typedef struct mbq_discovery {
    mbq_discovered_table *tables;     /* in name order */
    size_t n;
    char **dropped;                   /* known to the journal, taken by a pattern, gone */
    size_t n_dropped;
} mbq_discovery;

/* Resolve cfg's patterns against the database `my` is connected to.
 * `known` (NULL-terminated, may be NULL) is the journal's table names, for
 * the dropped ones. *out is freed with mbq_discovery_free. Errors: MySQL's
 * (MBQ_EMYSQL, MBQ_ENET...), MBQ_ENOMEM. */
int mbq_discover(mbq_discovery **out, mbq_mysql *my, const mbq_config *cfg,
                 char *const *known);
void mbq_discovery_free(mbq_discovery *d);

/* Print the resolved list: every table named in the config and every one a
 * pattern took, with key, cursor, mode and why; then the skipped and the
 * dropped ones. `d` may be NULL (no patterns). Names are printed quoted as
 * MySQL quotes them (backticks, doubled inside). */
void mbq_discovery_print(FILE *f, const mbq_config *cfg, const mbq_discovery *d);

/* Does `s` match the glob `pattern` ('*' any run of characters, '?' one
 * byte; nothing else is special, so a name with '[' or '\' matches itself)? */
bool mbq_glob_match(const char *pattern, const char *s);

/* The config of table `name` for the commands that act on one table
 * (mbq extract, mbq-state reset): its own entry, else, when a pattern would
 * take it, what discovery resolves it to now (connecting to MySQL). *tc
 * points into cfg or into *disc (free it with mbq_discovery_free after
 * use; NULL when not needed). MBQ_ECONFIG when no entry takes the table,
 * MBQ_ESCHEMA (with the reason) when a pattern takes it but it is skipped
 * or gone, MySQL's errors. */
int mbq_discover_table(const mbq_table_config **tc, mbq_discovery **disc, const mbq_config *cfg,
                       const char *name);

/* The pattern entry (index) that takes `name` if it is not named in the
 * config: the first whose glob matches and no exclude does; -1 for none. */
int mbq_pattern_for(const mbq_config *cfg, const char *name);

#endif
