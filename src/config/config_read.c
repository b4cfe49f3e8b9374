/* The configuration reader's primitives (see config.c for the overview):
 * messages with line and column (err_at), escaping of values shown in
 * messages, key lookup and unknown-key checks with suggestions, ${VAR}
 * substitution, the typed getters (get_str, get_int, get_bool,
 * get_duration, get_size, get_enum, get_list); the checks of names, URLs
 * and paths are in config_check.c. */
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

/* ---- messages ----------------------------------------------------------- */

int err_at(cfg_ctx *c, const yaml_node_t *n, const char *fmt, ...)
{
    mbq_buf b = MBQ_BUF_INIT;
    int rc = mbq_buf_printf(&b, "cannot load config '%s': ", c->name);
    if (rc == 0 && n)
        rc = mbq_buf_printf(&b, "line %zu, column %zu: ", n->start_mark.line + 1,
                            n->start_mark.column + 1);
    if (rc == 0) {
        va_list ap;
        va_start(ap, fmt);
        rc = mbq_buf_vprintf(&b, fmt, ap);
        va_end(ap);
    }
    if (rc == 0)
        rc = mbq_error_set(MBQ_ECONFIG, "%s", b.ptr);
    mbq_buf_free(&b);
    return rc;
}

/* A printable, bounded copy of a value for a message: control characters
 * are escaped (a newline in a name must not forge a second log line) and
 * long values are cut. Valid until N_ESC more calls. */
const char *cfg_esc(cfg_ctx *c, const char *s, size_t len)
{
    mbq_buf *b = &c->esc[c->esc_next++ % N_ESC];
    mbq_buf_clear(b);
    size_t shown = len > 80 ? 77 : len;
    for (size_t i = 0; i < shown; i++) {
        unsigned char ch = (unsigned char)s[i];
        int rc;
        if (ch == '\n')
            rc = mbq_buf_puts(b, "\\n");
        else if (ch == '\t')
            rc = mbq_buf_puts(b, "\\t");
        else if (ch < 0x20 || ch == 0x7f)
            rc = mbq_buf_printf(b, "\\x%02x", ch);
        else
            rc = mbq_buf_putc(b, (char)ch);
        if (rc < 0)
            return "?";
    }
    if (shown < len && mbq_buf_puts(b, "...") < 0)
        return "?";
    return mbq_buf_cstr(b);
}

const char *esc_str(cfg_ctx *c, const char *s)
{
    return cfg_esc(c, s, strlen(s));
}

static const char *scalar_str(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

/* A plain empty scalar, `~` or `null` is YAML's null: the key is treated as
 * absent. A quoted "" is an empty string, not null. */
bool cfg_is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = scalar_str(n);
    return !*s || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
           strcmp(s, "NULL") == 0;
}

const char *type_name(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_MAPPING_NODE: return "a mapping";
    case YAML_SEQUENCE_NODE: return "a list";
    default: return cfg_is_null(n) ? "nothing" : "a scalar";
    }
}

/* The closest of `cands` to `word` when it is close enough to be a likely
 * typo, else NULL. */
static const char *suggest(const char *word, const char *const *cands)
{
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    for (size_t i = 0; cands[i]; i++) {
        size_t d = strcasecmp(word, cands[i]) == 0 ? 0 : mbq_edit_distance(word, cands[i]);
        if (d == 0 && strcmp(word, cands[i]) != 0)
            d = 1;
        size_t len = strlen(cands[i]);
        size_t limit = len <= 4 ? 1 : len <= 8 ? 2 : 3;
        if (d <= limit && d < best_d) {
            best = cands[i];
            best_d = d;
        }
    }
    return best;
}

/* " (did you mean 'x'?)" or " (expected a, b or c)" for a message. */
static int hint(mbq_buf *b, const char *word, const char *const *cands, const char *expected)
{
    const char *s = suggest(word, cands);
    if (s)
        return mbq_buf_printf(b, " (did you mean '%s'?)", s);
    int rc = mbq_buf_printf(b, " (%s ", expected);
    for (size_t i = 0; rc == 0 && cands[i]; i++)
        rc = mbq_buf_printf(b, "%s%s", i == 0 ? "" : cands[i + 1] ? ", " : " or ", cands[i]);
    if (rc == 0)
        rc = mbq_buf_putc(b, ')');
    return rc;
}

/* ---- mappings ----------------------------------------------------------- */

static bool key_is(const yaml_node_t *k, const char *name)
{
    return k->type == YAML_SCALAR_NODE && k->data.scalar.length == strlen(name) &&
           memcmp(k->data.scalar.value, name, k->data.scalar.length) == 0;
}

/* Check that `n` is a mapping whose keys are all in `keys`, each once. */
int check_mapping(cfg_ctx *c, yaml_node_t *n, const char *path, const char *const *keys)
{
    if (n->type != YAML_MAPPING_NODE) {
        if (!*path)
            return err_at(c, n, "the top level must be a mapping of sections, got %s",
                          type_name(n));
        return err_at(c, n, "'%s' must be a mapping, got %s", path, type_name(n));
    }
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(&c->doc, p->key);
        if (!k)
            return err_at(c, n, "'%s' holds a key libyaml could not resolve", path);
        if (k->type != YAML_SCALAR_NODE)
            return err_at(c, k, "keys must be plain names, got %s%s%s%s", type_name(k),
                          *path ? " in '" : "", path, *path ? "'" : "");
        bool known = false;
        for (size_t i = 0; keys[i] && !known; i++)
            known = key_is(k, keys[i]);
        if (!known) {
            mbq_buf b = MBQ_BUF_INIT;
            const char *word = cfg_esc(c, scalar_str(k), k->data.scalar.length);
            int rc = mbq_buf_printf(&b, "unknown key '%s'", word);
            if (rc == 0 && *path)
                rc = mbq_buf_printf(&b, " in '%s'", path);
            if (rc == 0)
                rc = hint(&b, scalar_str(k), keys, "valid keys:");
            if (rc == 0)
                rc = err_at(c, k, "%s", b.ptr);
            mbq_buf_free(&b);
            return rc;
        }
        for (yaml_node_pair_t *q = n->data.mapping.pairs.start; q < p; q++) {
            yaml_node_t *k2 = yaml_document_get_node(&c->doc, q->key);
            if (k2 && key_is(k2, scalar_str(k)))
                return err_at(c, k, "duplicate key '%s'%s%s%s (first at line %zu)",
                              cfg_esc(c, scalar_str(k), k->data.scalar.length), *path ? " in '" : "", path, *path ? "'" : "",
                              k2->start_mark.line + 1);
        }
    }
    return 0;
}

/* The value node of `key` in a checked mapping, or NULL. */
yaml_node_t *cfg_find(cfg_ctx *c, const section *s, const char *key)
{
    yaml_node_t *n = s->node;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(&c->doc, p->key);
        if (k && key_is(k, key))
            return yaml_document_get_node(&c->doc, p->value);
    }
    return NULL;
}

/* Open the sub-mapping `key` of `s` as a section. *present is false (and
 * `out` untouched) when the key is absent or null. */
int open_section(cfg_ctx *c, const section *s, const char *key, const char *const *keys,
                        mbq_buf *path, section *out, bool *present)
{
    *present = false;
    yaml_node_t *v = cfg_find(c, s, key);
    if (!v || cfg_is_null(v))
        return 0;
    int rc = mbq_buf_printf(path, "%s%s%s", KP(s, key));
    if (rc < 0)
        return rc;
    if ((rc = check_mapping(c, v, path->ptr, keys)) < 0)
        return rc;
    out->node = v;
    out->path = path->ptr;
    *present = true;
    return 0;
}

/* ---- ${VAR} substitution ------------------------------------------------ */

static bool is_var_char(char ch, bool first)
{
    return ch == '_' || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
           (!first && ch >= '0' && ch <= '9');
}

/* Substitute ${VAR}, ${VAR:-default} and $$ in scalar `n` into a new string
 * (*out, freed by the caller). Like the shell, ${VAR:-x} uses x when VAR is
 * unset or empty; the default is literal text up to the first '}'. A '$'
 * not followed by '{' or '$' stays as it is, so that a password written
 * inline with a '$' in it need not be escaped. `what` names the key. */
int cfg_substitute(cfg_ctx *c, const yaml_node_t *n, const char *what, char **out)
{
    const char *s = scalar_str(n);
    size_t len = n->data.scalar.length, i = 0;
    mbq_buf b = MBQ_BUF_INIT;
    int rc = mbq_buf_grow(&b, len);
    if (rc == 0)
        b.ptr[0] = '\0'; /* grow does not terminate; an empty scalar stays "" */
    while (rc == 0 && i < len) {
        const char *dollar = memchr(s + i, '$', len - i);
        size_t run = dollar ? (size_t)(dollar - (s + i)) : len - i;
        if ((rc = mbq_buf_append(&b, s + i, run)) < 0 || !dollar)
            break;
        i += run;
        if (i + 1 < len && s[i + 1] == '$') {
            rc = mbq_buf_putc(&b, '$');
            i += 2;
            continue;
        }
        if (i + 1 >= len || s[i + 1] != '{') {
            rc = mbq_buf_putc(&b, '$');
            i++;
            continue;
        }
        size_t name_at = i + 2, j = name_at;
        while (j < len && is_var_char(s[j], j == name_at))
            j++;
        size_t name_len = j - name_at;
        const char *def = NULL;
        size_t def_len = 0;
        if (name_len > 0 && j < len && s[j] == '}') {
            i = j + 1;
        } else if (name_len > 0 && j + 1 < len && s[j] == ':' && s[j + 1] == '-') {
            const char *close = memchr(s + j + 2, '}', len - (j + 2));
            if (!close) {
                rc = err_at(c, n, "unterminated '${' in '%s' (write '$$' for a literal '$')",
                            what);
                break;
            }
            def = s + j + 2;
            def_len = (size_t)(close - def);
            i = (size_t)(close - s) + 1;
        } else {
            rc = err_at(c, n,
                        "invalid variable reference in '%s' (use ${NAME} or ${NAME:-default} "
                        "with NAME made of letters, digits and '_'; '$$' is a literal '$')",
                        what);
            break;
        }
        char *name = mbq_strndup(s + name_at, name_len);
        if (!name) {
            rc = MBQ_ENOMEM;
            break;
        }
        const char *val = getenv(name);
        if (val && (*val || !def))
            rc = mbq_buf_puts(&b, val);
        else if (def)
            rc = mbq_buf_append(&b, def, def_len);
        else
            rc = err_at(c, n,
                        "environment variable '%s' is not set (used in '%s'; write "
                        "${%s:-default} to give a default)",
                        name, what, name);
        free(name);
    }
    if (rc == 0 && !(*out = mbq_buf_detach(&b)))
        rc = MBQ_ENOMEM;
    mbq_buf_free(&b);
    return rc;
}

/* ---- typed values ------------------------------------------------------- */

/* The scalar value of `key`, substituted, in *out (NULL when absent or
 * null; freed by the caller); its node in *at. `what` describes the
 * expected value for a type error ("an integer between 1 and 65535"). */
int get_text(cfg_ctx *c, const section *s, const char *key, int flags, const char *what,
                    char **out, yaml_node_t **at)
{
    int rc = 0;
    mbq_buf path = MBQ_BUF_INIT;
    char *val = NULL;
    *out = NULL;
    yaml_node_t *v = cfg_find(c, s, key);
    if (at)
        *at = v;
    if (!v || (cfg_is_null(v) && !(flags & F_REQUIRED))) {
        if (flags & F_REQUIRED)
            rc = *s->path ? err_at(c, s->node, "missing required key '%s' in '%s'", key, s->path)
                          : err_at(c, s->node, "missing required key '%s'", key);
        goto done;
    }
    if ((rc = mbq_buf_printf(&path, "%s%s%s", KP(s, key))) < 0)
        goto done;
    if (cfg_is_null(v)) {
        rc = err_at(c, v, "'%s' must not be empty", path.ptr);
        goto done;
    }
    if (v->type != YAML_SCALAR_NODE) {
        rc = err_at(c, v, "'%s' must be %s, got %s", path.ptr, what, type_name(v));
        goto done;
    }
    if ((rc = cfg_substitute(c, v, path.ptr, &val)) < 0)
        goto done;
    /* A double-quoted "\0" puts a NUL inside the scalar; C strings would cut
     * the value there silently. */
    if (strlen(val) != v->data.scalar.length && memchr(scalar_str(v), '\0',
                                                       v->data.scalar.length)) {
        rc = err_at(c, v, "'%s' must not contain a NUL character", path.ptr);
        goto done;
    }
    if (!*val && !(flags & F_EMPTY_OK)) {
        rc = err_at(c, v, "'%s' must not be empty", path.ptr);
        goto done;
    }
    if (flags & F_SECRET)
        mbq_secret_register(val);
    *out = val;
    val = NULL;
done:
    free(val);
    mbq_buf_free(&path);
    return rc;
}

/* A string key: replaces *dst (freeing the old value) when present. */
int get_str(cfg_ctx *c, const section *s, const char *key, int flags, char **dst,
                   yaml_node_t **at)
{
    char *val = NULL;
    int rc = get_text(c, s, key, flags, "a string", &val, at);
    if (rc == 0 && val) {
        free(*dst);
        *dst = val;
    }
    return rc;
}

bool all_digits(const char *s)
{
    if (*s == '-' || *s == '+')
        s++;
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

int get_int(cfg_ctx *c, const section *s, const char *key, int64_t min, int64_t max,
                   int64_t *dst)
{
    char *val = NULL;
    yaml_node_t *at = NULL;
    mbq_buf what = MBQ_BUF_INIT;
    int rc = mbq_buf_printf(&what, "an integer between %lld and %lld", (long long)min,
                            (long long)max);
    if (rc == 0)
        rc = get_text(c, s, key, 0, what.ptr, &val, &at);
    if (rc == 0 && val) {
        int64_t v = 0;
        if (!all_digits(val) || mbq_parse_i64(&v, val) < 0 || v < min || v > max)
            rc = err_at(c, at, "'%s%s%s' must be %s, got '%s'", KP(s, key), what.ptr,
                        esc_str(c, val));
        else
            *dst = v;
    }
    free(val);
    mbq_buf_free(&what);
    return rc;
}

int get_bool(cfg_ctx *c, const section *s, const char *key, bool *dst, bool *given)
{
    static const char *const yes[] = {"true", "yes", "on", NULL};
    static const char *const no[] = {"false", "no", "off", NULL};
    char *val = NULL;
    yaml_node_t *at = NULL;
    int rc = get_text(c, s, key, 0, "true or false", &val, &at);
    if (given)
        *given = val != NULL;
    if (rc == 0 && val) {
        int r = -1;
        for (size_t i = 0; yes[i]; i++) {
            if (strcasecmp(val, yes[i]) == 0)
                r = 1;
            if (strcasecmp(val, no[i]) == 0)
                r = 0;
        }
        if (r < 0)
            rc = err_at(c, at, "'%s%s%s' must be true or false, got '%s'", KP(s, key),
                        esc_str(c, val));
        else
            *dst = r == 1;
    }
    free(val);
    return rc;
}

/* "5m", "30s", "1.5h", "250ms", "2d"; a bare number is seconds. Checked here
 * before mbq_parse_duration_ms because strtod also takes "nan", "inf",
 * hex and exponents, none of which a user means. */
static bool duration_syntax_ok(const char *s)
{
    const char *p = s;
    if (*p < '0' || *p > '9')
        return false;
    while (*p >= '0' && *p <= '9')
        p++;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return !*p || strcmp(p, "ms") == 0 || strcmp(p, "s") == 0 || strcmp(p, "m") == 0 ||
           strcmp(p, "h") == 0 || strcmp(p, "d") == 0;
}

int get_duration(cfg_ctx *c, const section *s, const char *key, int64_t min_ms,
                        int64_t *dst_ms, yaml_node_t **at_out)
{
    char *val = NULL;
    yaml_node_t *at = NULL;
    const char *what = "a duration such as '30s', '5m', '6h' or '7d'";
    int rc = get_text(c, s, key, 0, what, &val, &at);
    if (at_out)
        *at_out = at;
    if (rc == 0 && val) {
        int64_t ms = 0;
        if (!duration_syntax_ok(val) || mbq_parse_duration_ms(&ms, val) < 0)
            rc = err_at(c, at, "'%s%s%s' must be %s, got '%s'", KP(s, key), what,
                        esc_str(c, val));
        else if (ms < min_ms)
            rc = err_at(c, at, "'%s%s%s' must be at least %lld ms, got '%s'", KP(s, key),
                        (long long)min_ms, esc_str(c, val));
        else
            *dst_ms = ms;
    }
    free(val);
    return rc;
}

/* A size in bytes: "8388608", "8MiB", "256 KiB", "1GiB". Binary units only:
 * "8MB" is refused rather than guessed, since chunk sizes must be exact
 * multiples of 256 KiB. */
static int parse_size(int64_t *out, const char *s)
{
    const char *p = s;
    int64_t v = 0;
    if (*p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (INT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (*p - '0');
    }
    while (*p == ' ')
        p++;
    int64_t mult = 1;
    if (!*p || strcmp(p, "B") == 0)
        mult = 1;
    else if (strcmp(p, "KiB") == 0)
        mult = 1024;
    else if (strcmp(p, "MiB") == 0)
        mult = 1024 * 1024;
    else if (strcmp(p, "GiB") == 0)
        mult = 1024 * 1024 * 1024;
    else
        return -1;
    if (v > INT64_MAX / mult)
        return -1;
    *out = v * mult;
    return 0;
}

int get_size(cfg_ctx *c, const section *s, const char *key, int64_t max, int64_t *dst,
                    yaml_node_t **at_out)
{
    char *val = NULL;
    yaml_node_t *at = NULL;
    const char *what = "a size in bytes or with KiB, MiB or GiB (e.g. '8MiB')";
    int rc = get_text(c, s, key, 0, what, &val, &at);
    if (at_out)
        *at_out = at;
    if (rc == 0 && val) {
        int64_t v = 0;
        if (parse_size(&v, val) < 0)
            rc = err_at(c, at, "'%s%s%s' must be %s, got '%s'", KP(s, key), what,
                        esc_str(c, val));
        else if (v > max)
            rc = err_at(c, at, "'%s%s%s' must be at most %lld bytes, got '%s'", KP(s, key),
                        (long long)max, esc_str(c, val));
        else
            *dst = v;
    }
    free(val);
    return rc;
}

int get_enum(cfg_ctx *c, const section *s, const char *key, const char *const *names,
                    bool fold, int *dst)
{
    char *val = NULL;
    yaml_node_t *at = NULL;
    mbq_buf b = MBQ_BUF_INIT;
    int rc = mbq_buf_puts(&b, "one of");
    for (size_t i = 0; rc == 0 && names[i]; i++)
        rc = mbq_buf_printf(&b, "%s %s", i == 0 ? "" : names[i + 1] ? "," : " or", names[i]);
    if (rc == 0)
        rc = get_text(c, s, key, 0, b.ptr, &val, &at);
    mbq_buf_clear(&b);
    if (rc < 0 || !val)
        goto done;
    for (int i = 0; names[i]; i++) {
        if (fold ? strcasecmp(val, names[i]) == 0 : strcmp(val, names[i]) == 0) {
            *dst = i;
            goto done;
        }
    }
    rc = mbq_buf_printf(&b, "unknown value '%s' for '%s%s%s'", esc_str(c, val), KP(s, key));
    if (rc == 0)
        rc = hint(&b, val, names, "expected");
    if (rc == 0)
        rc = err_at(c, at, "%s", b.ptr);
done:
    mbq_buf_free(&b);
    free(val);
    return rc;
}

void free_list(char **list, size_t n)
{
    for (size_t i = 0; list && i < n; i++)
        free(list[i]);
    free(list);
}

int get_list(cfg_ctx *c, const section *s, const char *key, int flags, size_t max,
                    item_check_fn check, char ***dst, size_t *n_dst, yaml_node_t **at_out)
{
    int rc = 0;
    char **items = NULL;
    size_t n = 0;
    mbq_buf path = MBQ_BUF_INIT, ipath = MBQ_BUF_INIT;
    yaml_node_t *v = cfg_find(c, s, key);
    if (at_out)
        *at_out = v;
    if (!v || cfg_is_null(v)) {
        if ((flags & F_REQUIRED) && v)
            rc = err_at(c, v, "'%s%s%s' must not be empty", KP(s, key));
        else if (flags & F_REQUIRED)
            rc = err_at(c, s->node, "missing required key '%s' in '%s'", key, s->path);
        goto done;
    }
    if ((rc = mbq_buf_printf(&path, "%s%s%s", KP(s, key))) < 0)
        goto done;
    if (v->type == YAML_MAPPING_NODE) {
        rc = err_at(c, v, "'%s' must be a name or a list of names, got a mapping", path.ptr);
        goto done;
    }
    size_t count = v->type == YAML_SCALAR_NODE
                       ? 1
                       : (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (count == 0) {
        rc = err_at(c, v, "'%s' must not be an empty list", path.ptr);
        goto done;
    }
    if (count > max) {
        rc = err_at(c, v, "'%s' holds %zu names, at most %zu are allowed", path.ptr, count, max);
        goto done;
    }
    if (!(items = mbq_calloc(count, sizeof *items))) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < count; i++) {
        yaml_node_t *item =
            v->type == YAML_SCALAR_NODE
                ? v
                : yaml_document_get_node(&c->doc, v->data.sequence.items.start[i]);
        mbq_buf_clear(&ipath);
        if ((rc = v->type == YAML_SCALAR_NODE ? mbq_buf_puts(&ipath, path.ptr)
                                              : mbq_buf_printf(&ipath, "%s[%zu]", path.ptr, i)) <
            0)
            goto done;
        if (!item || item->type != YAML_SCALAR_NODE || cfg_is_null(item)) {
            rc = err_at(c, item ? item : v, "'%s' must be a name, got %s", ipath.ptr,
                        item ? type_name(item) : "nothing");
            goto done;
        }
        if ((rc = cfg_substitute(c, item, ipath.ptr, &items[i])) < 0)
            goto done;
        n = i + 1;
        if (strlen(items[i]) != item->data.scalar.length &&
            memchr(scalar_str(item), '\0', item->data.scalar.length)) {
            rc = err_at(c, item, "'%s' must not contain a NUL character", ipath.ptr);
            goto done;
        }
        if (check && (rc = check(c, item, ipath.ptr, items[i])) < 0)
            goto done;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(items[j], items[i]) == 0) {
                rc = err_at(c, item, "'%s' lists '%s' twice", path.ptr, esc_str(c, items[i]));
                goto done;
            }
        }
    }
    free_list(*dst, *n_dst);
    *dst = items;
    *n_dst = n;
    items = NULL;
    n = 0;
done:
    free_list(items, n);
    mbq_buf_free(&path);
    mbq_buf_free(&ipath);
    return rc;
}
