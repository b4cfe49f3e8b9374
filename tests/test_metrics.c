/* Prometheus metrics: the written file is valid text exposition format (a
 * strict parser below: HELP/TYPE before samples, families contiguous, no
 * duplicate series, label escaping), holds the right values, and is written
 * atomically (no temp file left, readable by node_exporter's user). */
#include "test.h"
#include "test_notify_fixtures.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mbq/buf.h"
#include "mbq/error.h"
#include "mbq/metrics.h"
#include "mbq/util.h"

/* ---- a strict exposition-format parser ------------------------------- */

#define MAX_SAMPLES 512
#define MAX_FAMILIES 64

typedef struct parsed {
    char *key[MAX_SAMPLES]; /* name{label="unescaped value",...} as parsed */
    double value[MAX_SAMPLES];
    size_t n;
    char *family[MAX_FAMILIES];
    int has_help[MAX_FAMILIES], has_type[MAX_FAMILIES], closed[MAX_FAMILIES];
    size_t n_family;
    char error[256];
} parsed;

static int name_char(char c, int first, int colon)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':') ||
           (!first && c >= '0' && c <= '9');
}

static int family_index(parsed *p, const char *name, size_t len)
{
    for (size_t i = 0; i < p->n_family; i++)
        if (strlen(p->family[i]) == len && strncmp(p->family[i], name, len) == 0)
            return (int)i;
    if (p->n_family == MAX_FAMILIES)
        return -1;
    p->family[p->n_family] = mbq_strndup(name, len);
    return (int)p->n_family++;
}

static int fail(parsed *p, size_t line, const char *why)
{
    snprintf(p->error, sizeof p->error, "line %zu: %s", line, why);
    return -1;
}

/* Parse `text`; 0 or -1 with p->error. `key` is scratch, freed by the caller. */
static int parse_inner(parsed *p, const char *text, mbq_buf *keybuf)
{
    int current = -1;
    size_t line = 0;
    if (!*text || text[strlen(text) - 1] != '\n')
        return fail(p, 0, "the file must end with a newline");
    for (const char *s = text; *s; line++) {
        const char *eol = strchr(s, '\n');
        const char *q = s;
        if (*q == '#') {
            int help = strncmp(q, "# HELP ", 7) == 0, type = strncmp(q, "# TYPE ", 7) == 0;
            if (!help && !type)
                return fail(p, line, "comment that is neither HELP nor TYPE");
            q += 7;
            const char *n0 = q;
            while (name_char(*q, q == n0, 1))
                q++;
            if (q == n0 || *q != ' ')
                return fail(p, line, "bad metric name in HELP/TYPE");
            int f = family_index(p, n0, (size_t)(q - n0));
            if (f < 0 || p->closed[f])
                return fail(p, line, "HELP/TYPE for a family whose samples were already seen");
            if (current >= 0 && current != f)
                p->closed[current] = 1;
            current = f;
            if (type) {
                if (p->has_type[f]++)
                    return fail(p, line, "second TYPE line");
                q++;
                if (strncmp(q, "gauge\n", 6) != 0 && strncmp(q, "counter\n", 8) != 0)
                    return fail(p, line, "unexpected TYPE");
            } else if (p->has_help[f]++) {
                return fail(p, line, "second HELP line");
            }
        } else {
            mbq_buf_clear(keybuf);
            const char *n0 = q;
            while (name_char(*q, q == n0, 1))
                q++;
            if (q == n0)
                return fail(p, line, "sample without a metric name");
            int f = family_index(p, n0, (size_t)(q - n0));
            if (f < 0 || !p->has_type[f] || !p->has_help[f])
                return fail(p, line, "sample before its family's HELP and TYPE");
            if (p->closed[f] || current != f)
                return fail(p, line, "family's samples are not contiguous");
            mbq_buf_append(keybuf, n0, (size_t)(q - n0));
            if (*q == '{') {
                mbq_buf_putc(keybuf, '{');
                q++;
                while (*q != '}') {
                    const char *l0 = q;
                    while (name_char(*q, q == l0, 0))
                        q++;
                    if (q == l0 || q[0] != '=' || q[1] != '"')
                        return fail(p, line, "bad label name");
                    mbq_buf_append(keybuf, l0, (size_t)(q - l0 + 2));
                    q += 2;
                    while (*q != '"') {
                        if (*q == '\n' || !*q)
                            return fail(p, line, "unterminated label value");
                        if (*q == '\\') {
                            q++;
                            if (*q == 'n')
                                mbq_buf_putc(keybuf, '\n');
                            else if (*q == '\\' || *q == '"')
                                mbq_buf_putc(keybuf, *q);
                            else
                                return fail(p, line, "invalid escape in label value");
                        } else {
                            mbq_buf_putc(keybuf, *q);
                        }
                        q++;
                    }
                    mbq_buf_putc(keybuf, '"');
                    q++;
                    if (*q == ',') {
                        mbq_buf_putc(keybuf, ',');
                        q++;
                    } else if (*q != '}') {
                        return fail(p, line, "expected , or } after a label");
                    }
                }
                mbq_buf_putc(keybuf, '}');
                q++;
            }
            if (*q != ' ')
                return fail(p, line, "expected one space before the value");
            q++;
            char *end;
            errno = 0;
            double v = strtod(q, &end);
            if (end == q || end != eol || errno)
                return fail(p, line, "value is not a number ending the line");
            for (size_t i = 0; i < p->n; i++)
                if (strcmp(p->key[i], mbq_buf_cstr(keybuf)) == 0)
                    return fail(p, line, "duplicate series");
            if (p->n == MAX_SAMPLES)
                return fail(p, line, "too many samples");
            p->key[p->n] = mbq_buf_detach(keybuf);
            p->value[p->n++] = v;
        }
        s = eol + 1;
    }
    return 0;
}

static int parse_exposition(parsed *p, const char *text)
{
    mbq_buf key = MBQ_BUF_INIT;
    memset(p, 0, sizeof *p);
    int rc = parse_inner(p, text, &key);
    mbq_buf_free(&key);
    return rc;
}

static void parsed_free(parsed *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->key[i]);
    for (size_t i = 0; i < p->n_family; i++)
        free(p->family[i]);
}

static double get(const parsed *p, const char *key)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->key[i], key) == 0)
            return p->value[i];
    fprintf(stderr, "  no sample %s\n", key);
    return NAN;
}

#define CHECK_VAL(p, key, want) CHECK(fabs(get(p, key) - (want)) < 1e-9)

/* ---- tests ----------------------------------------------------------- */

/* The parser itself rejects what the format forbids, so its "ok" means
 * something. */
static void test_parser_rejects_invalid(void)
{
    parsed p;
    CHECK(parse_exposition(&p, "m 1\n") < 0); /* no HELP/TYPE */
    parsed_free(&p);
    CHECK(parse_exposition(&p, "# HELP m h\n# TYPE m gauge\nm{a=\"x\\t\"} 1\n") < 0);
    parsed_free(&p);
    CHECK(parse_exposition(&p, "# HELP m h\n# TYPE m gauge\nm{a=\"x\"} 1\nm{a=\"x\"} 2\n") < 0);
    parsed_free(&p);
    CHECK(parse_exposition(&p, "# HELP m h\n# TYPE m gauge\nm 1\n# HELP n h\n# TYPE n gauge\n"
                               "n 1\nm 2\n") < 0);
    parsed_free(&p);
    CHECK(parse_exposition(&p, "# HELP m h\n# TYPE m gauge\nm 1") < 0);
    parsed_free(&p);
    CHECK(parse_exposition(&p, "# HELP m h\n# TYPE m gauge\nm{a=\"x\\\\\\n\\\"\"} 1.5\n") == 0);
    CHECK_VAL(&p, "m{a=\"x\\\n\"\"}", 1.5);
    parsed_free(&p);
}

static void test_values_for_a_failed_run(void)
{
    mbq_table_summary t[3];
    memcpy(t, fix_fail_tables, sizeof t);
    t[1].last_success_ms = 1795000000500LL; /* from the journal */
    mbq_stage_timing st[] = {{"extract", 1500}, {"stage", 250}};
    t[2].stages = st;
    t[2].n_stages = 2;
    mbq_run_summary s = {"r", "h", FIX_STARTED_MS, FIX_FINISHED_MS, t, 3};
    mbq_buf b = MBQ_BUF_INIT;
    parsed p;
    CHECK_INT(mbq_metrics_format(&b, &s), 0);
    int rc = parse_exposition(&p, mbq_buf_cstr(&b));
    CHECK_INT(rc, 0);
    if (rc)
        fprintf(stderr, "  %s\n%s", p.error, mbq_buf_cstr(&b));
    CHECK_VAL(&p, "mbq_table_up{table=\"orders\"}", 0);
    CHECK_VAL(&p, "mbq_table_up{table=\"items\"}", 1);
    CHECK_VAL(&p, "mbq_table_result{table=\"orders\",result=\"failed\"}", 1);
    CHECK_VAL(&p, "mbq_table_result{table=\"orders\",result=\"ok\"}", 0);
    CHECK_VAL(&p, "mbq_table_result{table=\"items\",result=\"ok\"}", 1);
    CHECK_VAL(&p, "mbq_table_rows_synced{table=\"items\"}", 12);
    CHECK_VAL(&p, "mbq_table_sync_duration_seconds{table=\"orders\"}", 4.2);
    CHECK_VAL(&p, "mbq_table_stage_duration_seconds{table=\"items\",stage=\"extract\"}", 1.5);
    CHECK_VAL(&p, "mbq_table_stage_duration_seconds{table=\"items\",stage=\"stage\"}", 0.25);
    CHECK_VAL(&p, "mbq_table_consecutive_failures{table=\"orders\"}", 1);
    CHECK_VAL(&p, "mbq_table_consecutive_failures{table=\"customers\"}", 3);
    CHECK_VAL(&p, "mbq_table_consecutive_failures{table=\"items\"}", 0);
    CHECK_VAL(&p, "mbq_table_last_success_timestamp_seconds{table=\"orders\"}", 0);
    CHECK_VAL(&p, "mbq_table_last_success_timestamp_seconds{table=\"customers\"}", 1795000000.5);
    /* Succeeded now without a journal time: the run's end. */
    CHECK_VAL(&p, "mbq_table_last_success_timestamp_seconds{table=\"items\"}",
              FIX_FINISHED_MS / 1000.0);
    CHECK_VAL(&p, "mbq_run_duration_seconds", 12.345);
    CHECK_VAL(&p, "mbq_run_timestamp_seconds", FIX_FINISHED_MS / 1000.0);
    CHECK_VAL(&p, "mbq_run_tables{result=\"ok\"}", 1);
    CHECK_VAL(&p, "mbq_run_tables{result=\"failed\"}", 2);
    CHECK_VAL(&p, "mbq_run_tables{result=\"skipped\"}", 0);
    CHECK_VAL(&p, "mbq_run_rows_synced", 12);
    parsed_free(&p);
    mbq_buf_free(&b);
}

/* Backslash, quote and newline in a table name are escaped; latin1 bytes
 * become U+FFFD (label values must be UTF-8). */
static void test_label_escaping(void)
{
    mbq_table_summary t[] = {
        {"we\"ird\\na\nme", MBQ_TABLE_OK, 5, 10, NULL, 0, NULL, NULL, NULL, 0, 0, 0, false, false, 0},
        {"caf\xe9", MBQ_TABLE_SKIPPED, 0, 10, NULL, 0, NULL, NULL, NULL, 0, 0, 0, false, false, 0},
    };
    mbq_run_summary s = {"r", "h", 0, 10, t, 2};
    mbq_buf b = MBQ_BUF_INIT;
    parsed p;
    CHECK_INT(mbq_metrics_format(&b, &s), 0);
    CHECK_CONTAINS(mbq_buf_cstr(&b), "mbq_table_rows_synced{table=\"we\\\"ird\\\\na\\nme\"} 5\n");
    CHECK_INT(parse_exposition(&p, mbq_buf_cstr(&b)), 0);
    CHECK_VAL(&p, "mbq_table_rows_synced{table=\"we\"ird\\na\nme\"}", 5);
    CHECK_VAL(&p, "mbq_table_up{table=\"caf\xEF\xBF\xBD\"}", 1);
    parsed_free(&p);
    mbq_buf_free(&b);
}

static size_t count_entries(const char *dir)
{
    size_t n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    if (d)
        closedir(d);
    return n;
}

static void test_write_atomic_and_readable(void)
{
    char dir[] = "/tmp/mbq-metrics-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    mbq_buf path = MBQ_BUF_INIT, content = MBQ_BUF_INIT;
    mbq_buf_printf(&path, "%s/mbq.prom", dir);
    CHECK_INT(mbq_metrics_write(path.ptr, &fix_failure), 0);
    CHECK_INT(mbq_metrics_write(path.ptr, &fix_success), 0); /* replaces */
    CHECK_INT(count_entries(dir), 1);                       /* no temp file left */
    struct stat st;
    CHECK_INT(stat(path.ptr, &st), 0);
    CHECK_INT(st.st_mode & 0777, 0644);
    CHECK_INT(mbq_file_read_all(&content, path.ptr), 0);
    parsed p;
    CHECK_INT(parse_exposition(&p, mbq_buf_cstr(&content)), 0);
    CHECK_VAL(&p, "mbq_run_tables{result=\"failed\"}", 0);
    CHECK_VAL(&p, "mbq_run_tables{result=\"skipped\"}", 1);
    CHECK_VAL(&p, "mbq_run_rows_synced", 1234);
    parsed_free(&p);
    unlink(path.ptr);
    rmdir(dir);
    mbq_buf_free(&path);
    mbq_buf_free(&content);
}

static void test_write_error_names_path(void)
{
    CHECK_INT(mbq_metrics_write("/nonexistent-dir-mbq/x.prom", &fix_success), MBQ_EIO);
    CHECK_CONTAINS(mbq_error_last(), "cannot write metrics file: ");
    CHECK_CONTAINS(mbq_error_last(), "/nonexistent-dir-mbq/x.prom");
}

int main(void)
{
    RUN(test_parser_rejects_invalid);
    RUN(test_values_for_a_failed_run);
    RUN(test_label_escaping);
    RUN(test_write_atomic_and_readable);
    RUN(test_write_error_names_path);
    return test_summary();
}
