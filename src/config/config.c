/* The configuration: YAML -> validated mbq_config (see mbq/config.h).
 *
 * libyaml's document API loads the whole file into a node tree whose nodes
 * carry their start marks, so that every message can name the line and
 * column of the node at fault. The tree is then walked once, section by
 * section. The walk only descends into keys it knows, which matters for two
 * reasons: an unknown key is reported before anything below it is looked at,
 * and a YAML alias cycle (`a: &x [*x]`, which libyaml's loader accepts) can
 * never make the walk recurse without end.
 *
 * Every scalar goes through ${VAR} substitution before it is interpreted.
 * Secrets (mysql.password, alerting.email.password,
 * alerting.telegram.bot_token) are substituted and registered with
 * mbq_secret_register() in a first pass, before any other value is looked
 * at, so that no later message can carry them even when the same variable
 * feeds a value that is then refused. Values of secret keys are never
 * echoed in messages in the first place.
 *
 * This file holds the top level (the secrets pass, parse_with, the public
 * mbq_config_* functions); the reader primitives are in config_read.c, the
 * value checks in config_check.c and the section parsers in
 * config_sections.c, sharing config_internal.h. */
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

static const char *const top_keys[] = {"tables", "mysql", "bigquery", "alerting", "state", "log",
                                       "sync", "metrics_file", "serve", "cdc", NULL};

/* First pass: substitute and register the secrets, wherever they sit in the
 * file, before any other value can end up in a message. Problems are left
 * for the validating pass to report in order. */
static void register_secrets(cfg_ctx *c, yaml_node_t *root)
{
    static const char *const paths[][3] = {
        {"mysql", "password", NULL},
        {"alerting", "email", "password"},
        {"alerting", "telegram", "bot_token"},
    };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        yaml_node_t *n = root;
        for (size_t j = 0; j < 3 && paths[i][j] && n; j++) {
            if (n->type != YAML_MAPPING_NODE) {
                n = NULL;
                break;
            }
            section s = {n, ""};
            n = cfg_find(c, &s, paths[i][j]);
        }
        char *val = NULL;
        if (n && n->type == YAML_SCALAR_NODE && cfg_substitute(c, n, "secret", &val) == 0)
            mbq_secret_register(val);
        free(val);
    }
    mbq_error_clear();
}

/* Turn a libyaml failure into a message with line and column. */
static int yaml_failure(cfg_ctx *c, yaml_parser_t *p, const char *yaml, size_t len)
{
    if (p->error == YAML_MEMORY_ERROR)
        return mbq_error_set(MBQ_ENOMEM, "cannot load config '%s': out of memory", c->name);
    size_t line, col;
    if (p->error == YAML_READER_ERROR) {
        /* The reader knows only a byte offset: count lines up to it. */
        size_t off = p->problem_offset < len ? p->problem_offset : len;
        line = 1;
        col = 1;
        for (size_t i = 0; i < off; i++) {
            if (yaml[i] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
    } else {
        line = p->problem_mark.line + 1;
        col = p->problem_mark.column + 1;
    }
    const char *problem = p->problem ? p->problem : "invalid YAML";
    if (p->context && p->error != YAML_READER_ERROR)
        return mbq_error_set(MBQ_ECONFIG,
                             "cannot load config '%s': line %zu, column %zu: %s (%s at line %zu, "
                             "column %zu)",
                             c->name, line, col, problem, p->context, p->context_mark.line + 1,
                             p->context_mark.column + 1);
    return mbq_error_set(MBQ_ECONFIG, "cannot load config '%s': line %zu, column %zu: %s",
                         c->name, line, col, problem);
}

static int parse_with(mbq_config **out, const char *yaml, size_t len, const char *name,
                      const char *path, char *base_dir)
{
    int rc = 0;
    yaml_parser_t parser;
    bool parser_ok = false;
    cfg_ctx c;
    memset(&c, 0, sizeof c);
    c.name = name;
    c.base_dir = base_dir;
    *out = NULL;

    if (!(c.cfg = mbq_calloc(1, sizeof *c.cfg))) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    if (path && !(c.cfg->path = mbq_strdup(path))) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    if (!yaml_parser_initialize(&parser)) {
        rc = mbq_error_set(MBQ_ENOMEM, "cannot load config '%s': out of memory", name);
        goto done;
    }
    parser_ok = true;
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&parser, &c.doc)) {
        rc = yaml_failure(&c, &parser, yaml, len);
        goto done;
    }
    c.doc_loaded = true;
    yaml_node_t *root = yaml_document_get_root_node(&c.doc);
    if (!root || cfg_is_null(root)) {
        rc = mbq_error_set(MBQ_ECONFIG, "cannot load config '%s': config is empty", name);
        goto done;
    }
    /* A second document ("---" again) would be silently ignored. */
    yaml_document_t extra;
    if (!yaml_parser_load(&parser, &extra)) {
        rc = yaml_failure(&c, &parser, yaml, len);
        goto done;
    }
    yaml_node_t *extra_root = yaml_document_get_root_node(&extra);
    size_t extra_line = extra.start_mark.line + 1;
    yaml_document_delete(&extra);
    if (extra_root) {
        rc = mbq_error_set(MBQ_ECONFIG,
                           "cannot load config '%s': line %zu: a second YAML document starts "
                           "here; a config is one document",
                           name, extra_line);
        goto done;
    }

    register_secrets(&c, root);
    section top = {root, ""};
    if ((rc = check_mapping(&c, root, "", top_keys)) < 0 || (rc = parse_tables(&c, &top)) < 0 ||
        (rc = parse_mysql(&c, &top)) < 0 || (rc = parse_bigquery(&c, &top)) < 0 ||
        (rc = parse_alerting(&c, &top)) < 0 || (rc = parse_state_and_log(&c, &top)) < 0 ||
        (rc = parse_sync(&c, &top)) < 0 || (rc = parse_metrics_file(&c, &top)) < 0 ||
        (rc = parse_serve(&c, &top)) < 0 || (rc = parse_cdc(&c, &top)) < 0)
        goto done;
    for (size_t i = 0; i < c.cfg->n_tables; i++) {
        if (strcasecmp(c.cfg->tables[i].target, c.cfg->bigquery.metadata_table) == 0) {
            yaml_node_t *n = yaml_document_get_node(
                &c.doc, cfg_find(&c, &top, "tables")->data.sequence.items.start[i]);
            rc = err_at(&c, n,
                        "'tables[%zu]' targets '%s', which is the metadata table "
                        "('bigquery.metadata_table'): choose another target",
                        i, esc_str(&c, c.cfg->tables[i].target));
            goto done;
        }
    }
    *out = c.cfg;
    c.cfg = NULL;
done:
    if (c.doc_loaded)
        yaml_document_delete(&c.doc);
    if (parser_ok)
        yaml_parser_delete(&parser);
    for (size_t i = 0; i < N_ESC; i++)
        mbq_buf_free(&c.esc[i]);
    mbq_config_free(c.cfg);
    return rc;
}

int mbq_config_parse(mbq_config **out, const char *yaml, size_t len, const char *name)
{
    return parse_with(out, yaml, len, name ? name : "<string>", NULL, NULL);
}

/* The absolute directory holding `path`. */
static char *config_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *cwd = NULL, *dir = NULL;
    mbq_buf b = MBQ_BUF_INIT;
    if (slash == path) {
        dir = mbq_strdup("/");
        goto done;
    }
    if (slash && path[0] == '/') {
        dir = mbq_strndup(path, (size_t)(slash - path));
        goto done;
    }
    if (!(cwd = getcwd(NULL, 0))) {
        mbq_error_set(MBQ_EIO, "cannot find the current directory: %s", strerror(errno));
        goto done;
    }
    if (!slash)
        dir = mbq_strdup(cwd);
    else if (mbq_buf_printf(&b, "%s/%.*s", strcmp(cwd, "/") == 0 ? "" : cwd,
                            (int)(slash - path), path) == 0)
        dir = mbq_buf_detach(&b);
done:
    free(cwd);
    mbq_buf_free(&b);
    return dir;
}

int mbq_config_load(mbq_config **out, const char *path)
{
    int rc = 0;
    mbq_buf data = MBQ_BUF_INIT;
    char *dir = NULL;
    int fd = -1;
    struct stat st;
    *out = NULL;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = mbq_error_set(errno == ENOENT ? MBQ_ENOTFOUND : MBQ_EIO,
                           "cannot load config '%s': %s", path, strerror(errno));
        goto done;
    }
    if (fstat(fd, &st) < 0) {
        rc = mbq_error_set(MBQ_EIO, "cannot load config '%s': %s", path, strerror(errno));
        goto done;
    }
    if (S_ISDIR(st.st_mode)) {
        rc = mbq_error_set(MBQ_ECONFIG, "cannot load config '%s': is a directory, not a file",
                           path);
        goto done;
    }
    for (;;) {
        if (data.len > CONFIG_MAX_BYTES) {
            rc = mbq_error_set(MBQ_ECONFIG, "cannot load config '%s': larger than %u bytes",
                               path, CONFIG_MAX_BYTES);
            goto done;
        }
        if ((rc = mbq_buf_grow(&data, 65536)) < 0)
            goto done;
        ssize_t n = read(fd, data.ptr + data.len, 65536);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = mbq_error_set(MBQ_EIO, "cannot load config '%s': %s", path, strerror(errno));
            goto done;
        }
        if (n == 0)
            break;
        data.len += (size_t)n;
        data.ptr[data.len] = '\0';
    }
    if (!(dir = config_dir(path))) {
        rc = mbq_error_code() ? mbq_error_code() : MBQ_ENOMEM;
        goto done;
    }
    rc = parse_with(out, data.ptr ? data.ptr : "", data.len, path, path, dir);
done:
    if (fd >= 0)
        close(fd);
    free(dir);
    mbq_buf_free(&data);
    return rc;
}

void mbq_config_free(mbq_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; cfg->tables && i < cfg->n_tables; i++) {
        mbq_table_config *t = &cfg->tables[i];
        free(t->name);
        free_list(t->primary_key, t->n_primary_key);
        free(t->updated_column);
        free(t->target);
        free(t->partition_by);
        free(t->partition_type);
        free_list(t->cluster_by, t->n_cluster_by);
    }
    free(cfg->tables);
    free_patterns(cfg->patterns, cfg->n_patterns);
    free(cfg->metrics_file);
    mbq_mysql_config *m = &cfg->mysql;
    free(m->host);
    free(m->socket);
    free(m->user);
    free(m->password);
    free(m->database);
    free(m->ssl_ca);
    free(m->ssl_cert);
    free(m->ssl_key);
    mbq_bigquery_config *b = &cfg->bigquery;
    free(b->project_id);
    free(b->dataset);
    free(b->metadata_table);
    free(b->location);
    free(b->credentials);
    free(b->impersonate_service_account);
    free(b->endpoint);
    free(b->ca_file);
    mbq_email_config *e = &cfg->email;
    free(e->smtp_url);
    free(e->host);
    free(e->tls);
    free(e->username);
    free(e->password);
    free(e->from);
    free_list(e->to, e->n_to);
    free(cfg->telegram.bot_token);
    free(cfg->telegram.chat_id);
    free(cfg->telegram.api_url);
    free(cfg->path);
    free(cfg->state_dir);
    free(cfg->serve_listen);
    free(cfg->log_level);
    free(cfg->log_format);
    free(cfg);
}

const mbq_table_config *mbq_config_table(const mbq_config *cfg, const char *name)
{
    if (!cfg || !name)
        return NULL;
    for (size_t i = 0; i < cfg->n_tables; i++)
        if (strcmp(cfg->tables[i].name, name) == 0)
            return &cfg->tables[i];
    for (size_t i = 0; i < cfg->n_tables; i++)
        if (strcmp(cfg->tables[i].target, name) == 0)
            return &cfg->tables[i];
    return NULL;
}
