/* The configuration's value checks (see config.c for the overview): MySQL
 * identifiers and BigQuery names (with a UTF-8 decoder for them), project
 * ids, http(s) URLs, mail addresses, and the resolution of relative paths
 * against the directory of the config file. Each sets the message through
 * err_at and returns its code. */
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

/* ---- identifiers -------------------------------------------------------- */

/* Decode one UTF-8 sequence at s; returns its length or 0 when invalid. */
static size_t utf8_next(const unsigned char *s, unsigned long *cp)
{
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    size_t n = (s[0] & 0xe0) == 0xc0 ? 2 : (s[0] & 0xf0) == 0xe0 ? 3 : (s[0] & 0xf8) == 0xf0 ? 4 : 0;
    if (!n)
        return 0;
    unsigned long v = s[0] & (0x7f >> n);
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3f);
    }
    static const unsigned long min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < min[n] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return n;
}

/* MySQL: a quoted identifier may hold any character of the Basic
 * Multilingual Plane except U+0000, up to 64 characters, and may not end
 * with a space (https://dev.mysql.com/doc/refman/8.0/en/identifiers.html).
 * mbq always quotes MySQL names (backticks doubled), so spaces, dots,
 * quotes and keywords are fine. */
int check_mysql_ident(cfg_ctx *c, const yaml_node_t *n, const char *path, const char *v)
{
    const char *why = NULL;
    size_t chars = 0;
    const unsigned char *p = (const unsigned char *)v;
    while (*p && !why) {
        unsigned long cp = 0;
        size_t len = utf8_next(p, &cp);
        if (!len)
            why = "it is not valid UTF-8";
        else if (cp > 0xffff)
            why = "MySQL identifiers cannot hold characters beyond U+FFFF";
        p += len;
        chars++;
    }
    if (!why && !*v)
        why = "it is empty";
    else if (!why && chars > 64)
        why = "MySQL identifiers are at most 64 characters";
    else if (!why && v[strlen(v) - 1] == ' ')
        why = "MySQL identifiers cannot end with a space";
    if (why)
        return err_at(c, n, "invalid identifier '%s' in '%s': %s", esc_str(c, v), path, why);
    return 0;
}

/* BigQuery table and dataset names. BigQuery accepts more for tables
 * (Unicode letters, marks, dashes, spaces:
 * https://cloud.google.com/bigquery/docs/tables#table_naming) but datasets
 * only take letters, digits and '_'; mbq holds both to that portable set,
 * which every API path, tool and SQL dialect takes unchanged. */
int check_bq_name(cfg_ctx *c, const yaml_node_t *n, const char *path, const char *v)
{
    const char *why = NULL;
    size_t len = strlen(v);
    if (!len)
        why = "it is empty";
    else if (len > 1024)
        why = "BigQuery names are at most 1024 bytes";
    for (const char *p = v; *p && !why; p++) {
        if (!(*p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9')))
            why = "only letters, digits and '_' are allowed";
    }
    if (why)
        return err_at(c, n, "invalid identifier '%s' in '%s': %s", esc_str(c, v), path, why);
    return 0;
}

/* Project ids: 6-30 lowercase letters, digits and hyphens, starting with a
 * letter, not ending with a hyphen; older projects may be domain-scoped
 * ("example.com:my-project"). With a custom endpoint (an emulator) the
 * length rule is not applied: emulators take any project name. */
int check_project(cfg_ctx *c, const yaml_node_t *n, const char *v, bool strict)
{
    const char *why = NULL;
    const char *id = v;
    const char *colon = strrchr(v, ':');
    if (colon) {
        for (const char *p = v; p < colon && !why; p++)
            if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' ||
                  *p == '-'))
                why = "the domain of a domain-scoped project id takes lowercase letters, "
                      "digits, '.' and '-'";
        if (colon == v && !why)
            why = "the domain before ':' is empty";
        id = colon + 1;
    }
    size_t len = strlen(id);
    if (!why && (len > 30 || (strict && len < 6) || len == 0))
        why = "project ids are 6 to 30 characters";
    if (!why && !(id[0] >= 'a' && id[0] <= 'z'))
        why = "project ids start with a lowercase letter";
    for (const char *p = id; *p && !why; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
            why = "project ids take only lowercase letters, digits and '-'";
    if (!why && id[len - 1] == '-')
        why = "project ids cannot end with '-'";
    if (why)
        return err_at(c, n, "invalid project id '%s' in 'bigquery.project_id': %s",
                      esc_str(c, v), why);
    return 0;
}

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

int check_url(cfg_ctx *c, const yaml_node_t *n, const char *path, const char *v,
                     const char *const *schemes)
{
    for (size_t i = 0; schemes[i]; i++) {
        if (has_prefix(v, schemes[i]) && v[strlen(schemes[i])]) {
            for (const char *p = v; *p; p++)
                if ((unsigned char)*p <= ' ' || *p == 0x7f)
                    return err_at(c, n, "'%s' must be a URL without spaces or control "
                                        "characters, got '%s'", path, esc_str(c, v));
            return 0;
        }
    }
    mbq_buf b = MBQ_BUF_INIT;
    int rc = mbq_buf_printf(&b, "'%s' must be a URL starting with ", path);
    for (size_t i = 0; rc == 0 && schemes[i]; i++)
        rc = mbq_buf_printf(&b, "%s'%s'", i ? " or " : "", schemes[i]);
    if (rc == 0)
        rc = err_at(c, n, "%s, got '%s'", b.ptr, esc_str(c, v));
    mbq_buf_free(&b);
    return rc;
}

/* A mail address for the SMTP envelope. Control characters, spaces, '<',
 * '>' and ',' would let a value add recipients or headers. */
int check_address(cfg_ctx *c, const yaml_node_t *n, const char *path, const char *v)
{
    const char *at = strchr(v, '@');
    bool ok = at && at != v && at[1] && !strchr(at + 1, '@');
    for (const char *p = v; *p && ok; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f || strchr("<>,;\"()[]\\", *p))
            ok = false;
    if (!ok)
        return err_at(c, n, "'%s' must be a plain mail address such as 'ops@example.com', got '%s'",
                      path, esc_str(c, v));
    return 0;
}

/* ---- paths -------------------------------------------------------------- */

/* Make a relative path relative to the config file's directory, because
 * cron runs mbq from a directory nobody chose. */
int resolve_path(cfg_ctx *c, char **p)
{
    if (!*p || !c->base_dir || (*p)[0] == '/')
        return 0;
    mbq_buf b = MBQ_BUF_INIT;
    int rc = mbq_buf_printf(&b, "%s/%s", c->base_dir, *p);
    if (rc == 0) {
        char *abs = mbq_buf_detach(&b);
        if (!abs) {
            rc = MBQ_ENOMEM;
        } else {
            free(*p);
            *p = abs;
        }
    }
    mbq_buf_free(&b);
    return rc;
}
