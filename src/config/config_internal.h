/* Private to src/config: the reading context, the section handle and the
 * flags shared by the reader primitives (config_read.c), the value checks
 * (config_check.c), the section parsers (config_sections.c) and the top
 * level (config.c), with the declarations of the functions they share.
 * Nothing outside src/config includes this header. */
#ifndef MBQ_CONFIG_INTERNAL_H
#define MBQ_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

#include "mbq/buf.h"
#include "mbq/config.h"

/* A config bigger than this is not a config: refuse it before libyaml
 * builds a tree of it. */
#define CONFIG_MAX_BYTES (16u * 1024u * 1024u)

/* BigQuery resumable uploads take chunks in multiples of 256 KiB (all but the
 * last): https://cloud.google.com/bigquery/docs/reference/api-uploads */
#define CHUNK_UNIT (256 * 1024)

#define N_ESC 4

typedef struct cfg_ctx {
    yaml_document_t doc;
    bool doc_loaded;
    const char *name;  /* file name for messages */
    char *base_dir;    /* absolute directory of the config file; NULL for a string */
    mbq_config *cfg;
    mbq_buf esc[N_ESC]; /* printable copies of values shown in messages */
    unsigned esc_next;
} cfg_ctx;

/* A mapping being read and its path for messages ("" at the top level,
 * "mysql", "tables[2]", "alerting.email"). */
typedef struct section {
    yaml_node_t *node;
    const char *path;
} section;

/* Key path "<section>.<key>" as three printf arguments for "%s%s%s". */
#define KP(s, k) (s)->path, (*(s)->path ? "." : ""), (k)

enum {
    F_REQUIRED = 1,  /* a missing key is an error */
    F_SECRET = 2,    /* never show the value */
    F_EMPTY_OK = 4,  /* "" is a valid value */
};

/* Set the "cannot load config" message with the node's 1-based line and
 * column (libyaml's marks are 0-based). Returns MBQ_ECONFIG, or MBQ_ENOMEM
 * when even the message cannot be built. */
int err_at(cfg_ctx *c, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A name or a list of names (primary_key, cluster_by, to). *dst and *n are
 * replaced when the key is present. Each item is checked by `check` (which
 * may be NULL) with its node and its path. */
typedef int (*item_check_fn)(cfg_ctx *c, const yaml_node_t *n, const char *path, const char *v);

/* Shared between the files named above (defined in one, used in another). */
const char *cfg_esc(cfg_ctx *c, const char *s, size_t len);
const char *esc_str(cfg_ctx *c, const char *s);
bool cfg_is_null(const yaml_node_t *n);
const char *type_name(const yaml_node_t *n);
int check_mapping(cfg_ctx *c, yaml_node_t *n, const char *path, const char *const *keys);
yaml_node_t *cfg_find(cfg_ctx *c, const section *s, const char *key);
int open_section(cfg_ctx *c, const section *s, const char *key, const char *const *keys,
                 mbq_buf *path, section *out, bool *present);
int cfg_substitute(cfg_ctx *c, const yaml_node_t *n, const char *what, char **out);
int get_text(cfg_ctx *c, const section *s, const char *key, int flags, const char *what,
             char **out, yaml_node_t **at);
int get_str(cfg_ctx *c, const section *s, const char *key, int flags, char **dst,
            yaml_node_t **at);
bool all_digits(const char *s);
int get_int(cfg_ctx *c, const section *s, const char *key, int64_t min, int64_t max,
            int64_t *dst);
int get_bool(cfg_ctx *c, const section *s, const char *key, bool *dst, bool *given);
int get_duration(cfg_ctx *c, const section *s, const char *key, int64_t min_ms,
                 int64_t *dst_ms, yaml_node_t **at_out);
int get_size(cfg_ctx *c, const section *s, const char *key, int64_t max, int64_t *dst,
             yaml_node_t **at_out);
int get_enum(cfg_ctx *c, const section *s, const char *key, const char *const *names,
             bool fold, int *dst);
void free_list(char **list, size_t n);
int get_list(cfg_ctx *c, const section *s, const char *key, int flags, size_t max,
             item_check_fn check, char ***dst, size_t *n_dst, yaml_node_t **at_out);
int check_mysql_ident(cfg_ctx *c, const yaml_node_t *n, const char *path, const char *v);
int check_bq_name(cfg_ctx *c, const yaml_node_t *n, const char *path, const char *v);
int check_project(cfg_ctx *c, const yaml_node_t *n, const char *v, bool strict);
int check_url(cfg_ctx *c, const yaml_node_t *n, const char *path, const char *v,
              const char *const *schemes);
int check_address(cfg_ctx *c, const yaml_node_t *n, const char *path, const char *v);
int resolve_path(cfg_ctx *c, char **p);
int parse_tables(cfg_ctx *c, const section *top);
int parse_mysql(cfg_ctx *c, const section *top);
int parse_bigquery(cfg_ctx *c, const section *top);
int parse_alerting(cfg_ctx *c, const section *top);
int parse_state_and_log(cfg_ctx *c, const section *top);
int parse_sync(cfg_ctx *c, const section *top);
int parse_metrics_file(cfg_ctx *c, const section *top);
/* config_patterns.c: `tables:` entries that name many tables. */
bool table_entry_is_pattern(cfg_ctx *c, yaml_node_t *item);
int parse_pattern(cfg_ctx *c, yaml_node_t *n, size_t idx, mbq_table_pattern *p);
void free_patterns(mbq_table_pattern *p, size_t n);
int parse_serve(cfg_ctx *c, const section *top);
/* config_cdc.c: the `cdc:` section (after state.dir: the default server_id
 * is derived from it) and the keys a `mode: cdc` table refuses. */
int parse_cdc(cfg_ctx *c, const section *top);
int check_table_cdc(cfg_ctx *c, const section *s, const char *path);
uint32_t cfg_cdc_derived_server_id(const char *state_dir);

#endif
