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
 * echoed in messages in the first place. */
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
#include "mbq/banned.h"

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

/* ---- messages ----------------------------------------------------------- */

/* Set the "cannot load config" message with the node's 1-based line and
 * column (libyaml's marks are 0-based). Returns MBQ_ECONFIG, or MBQ_ENOMEM
 * when even the message cannot be built. */
static int err_at(cfg_ctx *c, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int err_at(cfg_ctx *c, const yaml_node_t *n, const char *fmt, ...)
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
static const char *esc(cfg_ctx *c, const char *s, size_t len)
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

static const char *esc_str(cfg_ctx *c, const char *s)
{
    return esc(c, s, strlen(s));
}

static const char *scalar_str(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

/* A plain empty scalar, `~` or `null` is YAML's null: the key is treated as
 * absent. A quoted "" is an empty string, not null. */
static bool is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = scalar_str(n);
    return !*s || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
           strcmp(s, "NULL") == 0;
}

static const char *type_name(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_MAPPING_NODE: return "a mapping";
    case YAML_SEQUENCE_NODE: return "a list";
    default: return is_null(n) ? "nothing" : "a scalar";
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
static int check_mapping(cfg_ctx *c, yaml_node_t *n, const char *path, const char *const *keys)
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
            const char *word = esc(c, scalar_str(k), k->data.scalar.length);
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
                              esc(c, scalar_str(k), k->data.scalar.length), *path ? " in '" : "", path, *path ? "'" : "",
                              k2->start_mark.line + 1);
        }
    }
    return 0;
}

/* The value node of `key` in a checked mapping, or NULL. */
static yaml_node_t *find(cfg_ctx *c, const section *s, const char *key)
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
static int open_section(cfg_ctx *c, const section *s, const char *key, const char *const *keys,
                        mbq_buf *path, section *out, bool *present)
{
    *present = false;
    yaml_node_t *v = find(c, s, key);
    if (!v || is_null(v))
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
static int substitute(cfg_ctx *c, const yaml_node_t *n, const char *what, char **out)
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
static int get_text(cfg_ctx *c, const section *s, const char *key, int flags, const char *what,
                    char **out, yaml_node_t **at)
{
    int rc = 0;
    mbq_buf path = MBQ_BUF_INIT;
    char *val = NULL;
    *out = NULL;
    yaml_node_t *v = find(c, s, key);
    if (at)
        *at = v;
    if (!v || (is_null(v) && !(flags & F_REQUIRED))) {
        if (flags & F_REQUIRED)
            rc = *s->path ? err_at(c, s->node, "missing required key '%s' in '%s'", key, s->path)
                          : err_at(c, s->node, "missing required key '%s'", key);
        goto done;
    }
    if ((rc = mbq_buf_printf(&path, "%s%s%s", KP(s, key))) < 0)
        goto done;
    if (is_null(v)) {
        rc = err_at(c, v, "'%s' must not be empty", path.ptr);
        goto done;
    }
    if (v->type != YAML_SCALAR_NODE) {
        rc = err_at(c, v, "'%s' must be %s, got %s", path.ptr, what, type_name(v));
        goto done;
    }
    if ((rc = substitute(c, v, path.ptr, &val)) < 0)
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
static int get_str(cfg_ctx *c, const section *s, const char *key, int flags, char **dst,
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

static bool all_digits(const char *s)
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

static int get_int(cfg_ctx *c, const section *s, const char *key, int64_t min, int64_t max,
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

static int get_bool(cfg_ctx *c, const section *s, const char *key, bool *dst, bool *given)
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

static int get_duration(cfg_ctx *c, const section *s, const char *key, int64_t min_ms,
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

static int get_size(cfg_ctx *c, const section *s, const char *key, int64_t max, int64_t *dst,
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
static int get_enum(cfg_ctx *c, const section *s, const char *key, const char *const *names,
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

static void free_list(char **list, size_t n)
{
    for (size_t i = 0; list && i < n; i++)
        free(list[i]);
    free(list);
}

/* A name or a list of names (primary_key, cluster_by, to). *dst and *n are
 * replaced when the key is present. Each item is checked by `check` (which
 * may be NULL) with its node and its path. */
typedef int (*item_check_fn)(cfg_ctx *c, const yaml_node_t *n, const char *path, const char *v);

static int get_list(cfg_ctx *c, const section *s, const char *key, int flags, size_t max,
                    item_check_fn check, char ***dst, size_t *n_dst, yaml_node_t **at_out)
{
    int rc = 0;
    char **items = NULL;
    size_t n = 0;
    mbq_buf path = MBQ_BUF_INIT, ipath = MBQ_BUF_INIT;
    yaml_node_t *v = find(c, s, key);
    if (at_out)
        *at_out = v;
    if (!v || is_null(v)) {
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
        if (!item || item->type != YAML_SCALAR_NODE || is_null(item)) {
            rc = err_at(c, item ? item : v, "'%s' must be a name, got %s", ipath.ptr,
                        item ? type_name(item) : "nothing");
            goto done;
        }
        if ((rc = substitute(c, item, ipath.ptr, &items[i])) < 0)
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
static int check_mysql_ident(cfg_ctx *c, const yaml_node_t *n, const char *path, const char *v)
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
static int check_bq_name(cfg_ctx *c, const yaml_node_t *n, const char *path, const char *v)
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
static int check_project(cfg_ctx *c, const yaml_node_t *n, const char *v, bool strict)
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

static int check_url(cfg_ctx *c, const yaml_node_t *n, const char *path, const char *v,
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
static int check_address(cfg_ctx *c, const yaml_node_t *n, const char *path, const char *v)
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
static int resolve_path(cfg_ctx *c, char **p)
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

/* ---- sections ----------------------------------------------------------- */

static const char *const top_keys[] = {"tables", "mysql", "bigquery", "alerting", "state", "log",
                                       "sync", NULL};
static const char *const table_keys[] = {
    "name",           "primary_key", "updated_column", "mode",
    "lookback",       "target",      "partition_by",   "partition_type",
    "cluster_by",     "on_incompatible_change",        "on_missing_target", NULL};
static const char *const mysql_keys[] = {"host",     "port",     "socket",          "user",
                                         "password", "database", "connect_timeout", "read_timeout",
                                         "ssl",      NULL};
static const char *const ssl_keys[] = {"mode", "ca", "cert", "key", "verify_server_cert", NULL};
static const char *const bq_keys[] = {
    "project_id",        "dataset",     "metadata_table",    "location",
    "credentials",       "endpoint",    "auth", "ca_file",   "upload_chunk_size", "multipart_max",
    "compression",       "staging_expiration",               "job_timeout",
    "max_retries",       "retry_max_elapsed",                "tls_insecure",
    "request_timeout",   "stream_load",
    "max_load_file_size",                    "max_query_size",
    "max_partitions_per_job",                "on_missing_target",
    NULL};
static const char *const alerting_keys[] = {"email", "telegram", NULL};
static const char *const email_keys[] = {"enabled",  "smtp_url", "host", "port", "tls",
                                         "username", "password", "from", "to",   "on",
                                         "tls_insecure", NULL};
static const char *const telegram_keys[] = {"enabled", "bot_token", "chat_id", "api_url", "on",
                                            NULL};
static const char *const state_keys[] = {"dir", NULL};
static const char *const log_keys[] = {"level", "format", NULL};
static const char *const sync_keys[] = {"jobs", NULL};

static const char *const mode_names[] = {"incremental", "full", NULL};
static const char *const policy_names[] = {"fail", "rebuild", NULL};
static const char *const missing_names[] = {"fail", "reload", NULL};
static const char *const alert_on_names[] = {"failure", "always", "change", NULL};
static const char *const partition_names[] = {"DAY", "HOUR", "MONTH", "YEAR", NULL};
static const char *const ssl_mode_names[] = {"disabled", "required", "verify_identity", NULL};
static const char *const bq_auth_names[] = {"service_account", "none", NULL};
static const char *const email_tls_names[] = {"starttls", "implicit", "none", NULL};
static const char *const log_level_names[] = {"error", "warn", "info", "debug", NULL};
static const char *const log_format_names[] = {"text", "json", NULL};
static const char *const http_schemes[] = {"http://", "https://", NULL};

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
    mode_at = find(c, &s, "mode");
    if (t->mode == MBQ_MODE_INCREMENTAL && !t->updated_column) {
        rc = err_at(c, mode_at, "'%s.mode' is 'incremental' but no 'updated_column' is set: "
                                "name the cursor column or use 'mode: full'", path.ptr);
        goto done;
    }
    if ((rc = get_duration(c, &s, "lookback", 0, &t->lookback_ms, &lookback_at)) < 0)
        goto done;
    if (t->lookback_ms > 0 && !t->updated_column) {
        rc = err_at(c, lookback_at, "'%s.lookback' needs an 'updated_column' to look back from",
                    path.ptr);
        goto done;
    }

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
    at = find(c, &s, "partition_type");
    if (at && !is_null(at) && !t->partition_by) {
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
done:
    mbq_buf_free(&path);
    mbq_buf_free(&sub);
    return rc;
}

static int parse_tables(cfg_ctx *c, const section *top)
{
    int rc = 0;
    mbq_config *cfg = c->cfg;
    yaml_node_t *v = find(c, top, "tables");
    if (!v)
        return err_at(c, top->node, "missing required key 'tables'");
    if (v->type != YAML_SEQUENCE_NODE)
        return err_at(c, v, "'tables' must be a list of tables, got %s", type_name(v));
    size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (n == 0)
        return err_at(c, v, "'tables' is empty: list at least one table");
    if (!(cfg->tables = mbq_calloc(n, sizeof *cfg->tables)))
        return MBQ_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = yaml_document_get_node(&c->doc, v->data.sequence.items.start[i]);
        cfg->n_tables = i + 1;
        if (!item)
            return err_at(c, v, "'tables[%zu]' could not be resolved", i);
        mbq_table_config *t = &cfg->tables[i];
        if ((rc = parse_table(c, item, i, t)) < 0)
            return rc;
        /* Two entries for one MySQL table would sync it twice; two for one
         * target would overwrite each other's rows. BigQuery datasets can be
         * case-insensitive, so targets are compared without case. */
        for (size_t j = 0; j < i; j++) {
            const mbq_table_config *o = &cfg->tables[j];
            section is = {item, ""};
            if (strcmp(o->name, t->name) == 0)
                return err_at(c, find(c, &is, "name"), "duplicate table '%s' (first at line %d)",
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

static int parse_mysql(cfg_ctx *c, const section *top)
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
    yaml_node_t *sv = find(c, &s, "ssl");
    if (sv && !is_null(sv) && sv->type == YAML_SCALAR_NODE) {
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
            yaml_node_t *mode_at = find(c, &ssl, "mode");
            if ((rc = get_enum(c, &ssl, "mode", ssl_mode_names, false, &mode)) < 0 ||
                (rc = get_bool(c, &ssl, "verify_server_cert", &verify, &verify_given)) < 0)
                goto done;
            bool mode_given = mode_at && !is_null(mode_at);
            if (mode_given && mode != 0 && verify_given && verify != (mode == 2)) {
                rc = err_at(c, find(c, &ssl, "verify_server_cert"),
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

/* bigquery.auth. Not given, it keeps what an endpoint override always meant
 * (no token for an emulator, unless a key file is named too); given, it is
 * the user's word, so contradictions are errors rather than guesses: BigQuery
 * itself refuses every request without a token. */
static int parse_bq_auth(cfg_ctx *c, const section *s, mbq_bigquery_config *b)
{
    int rc, mode = -1;
    if ((rc = get_enum(c, s, "auth", bq_auth_names, false, &mode)) < 0 || mode < 0)
        return rc;
    b->auth = mode == 0 ? MBQ_BIGQUERY_AUTH_SERVICE_ACCOUNT : MBQ_BIGQUERY_AUTH_NONE;
    if (b->auth == MBQ_BIGQUERY_AUTH_NONE && !b->endpoint)
        return err_at(c, find(c, s, "auth"), "'bigquery.auth: none' needs 'bigquery.endpoint' "
                                             "(BigQuery refuses requests without a token)");
    if (b->auth == MBQ_BIGQUERY_AUTH_NONE && b->credentials)
        return err_at(c, find(c, s, "auth"), "'bigquery.auth: none' contradicts "
                                             "'bigquery.credentials' (give one or the other)");
    return 0;
}

static int parse_bigquery(cfg_ctx *c, const section *top)
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
    if ((rc = get_str(c, &s, "project_id", F_REQUIRED, &b->project_id, &project_at)) < 0 ||
        (rc = check_project(c, project_at, b->project_id, b->endpoint == NULL)) < 0)
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
    yaml_node_t *cv = find(c, &s, "compression");
    if (cv && cv->type == YAML_SCALAR_NODE && !is_null(cv)) {
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

static int parse_alerting(cfg_ctx *c, const section *top)
{
    mbq_buf path = MBQ_BUF_INIT;
    section s;
    bool present = false;
    int rc = open_section(c, top, "alerting", alerting_keys, &path, &s, &present);
    if (rc == 0 && present && (rc = parse_email(c, &s)) == 0)
        rc = parse_telegram(c, &s);
    mbq_buf_free(&path);
    return rc;
}

static int parse_state_and_log(cfg_ctx *c, const section *top)
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

static int parse_sync(cfg_ctx *c, const section *top)
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
            n = find(c, &s, paths[i][j]);
        }
        char *val = NULL;
        if (n && n->type == YAML_SCALAR_NODE && substitute(c, n, "secret", &val) == 0)
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
    if (!root || is_null(root)) {
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
        (rc = parse_sync(&c, &top)) < 0)
        goto done;
    for (size_t i = 0; i < c.cfg->n_tables; i++) {
        if (strcasecmp(c.cfg->tables[i].target, c.cfg->bigquery.metadata_table) == 0) {
            yaml_node_t *n = yaml_document_get_node(
                &c.doc, find(&c, &top, "tables")->data.sequence.items.start[i]);
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
