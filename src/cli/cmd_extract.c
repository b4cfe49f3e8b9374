/* `mbq extract`: run exactly the extraction a sync would run for one table
 * (connect, introspect, check, snapshot + stream to a file) and print its
 * figures. A debugging and export tool, and the benchmark's entry point. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mbq/chunks.h"
#include "mbq/commands.h"
#include "mbq/config.h"
#include "mbq/discover.h"
#include "mbq/error.h"
#include "mbq/exitcode.h"
#include "mbq/log.h"
#include "mbq/mysql_source.h"
#include "mbq/banned.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mbq extract --table T --out FILE [--config FILE] [--since VALUE]\n"
            "                   [--no-compress] [--log-level L] [--log-format F]\n"
            "       mbq extract --table T --out DIR --chunk-rows R [--jobs N] [...]\n"
            "\n"
            "Extract one configured table the way 'mbq sync' does: one consistent snapshot,\n"
            "rows with cursor >= VALUE (all rows without --since, or for a table without a\n"
            "cursor), as BigQuery NDJSON (gzip unless --no-compress or\n"
            "bigquery.compression is off), written atomically to FILE.\n"
            "\n"
            "  --config FILE    config file (default $MBQ_CONFIG, then ./mbq.yml)\n"
            "  --table T        the table (its MySQL name or its target name)\n"
            "  --since VALUE    inclusive lower bound of the cursor, in MySQL's text form\n"
            "  --out FILE       the output file; nothing is written when there are no rows\n"
            "  --no-compress    write plain NDJSON\n"
            "  --chunk-rows R   read the whole table as a backfill does: in primary-key\n"
            "                   chunks of R rows, each its own snapshot, into DIR/c00001...\n"
            "  --jobs N         with --chunk-rows: N connections at once (default 1)\n"
            "  --help           this text\n"
            "\n"
            "Prints rows, bytes, checksum, low, high, seconds and rows/s.\n"
            "Exit codes: 0 ok, 1 table/schema error, 2 usage or config, 69 MySQL\n"
            "unreachable, 74 local I/O error, 77 credentials refused.\n");
}

/* "--name value" or "--name=value"; advances *i past a separate value. */
static int opt_value(const char **out, int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0)
        return 0;
    if (argv[*i][n] == '=') {
        *out = argv[*i] + n + 1;
        return 1;
    }
    if (argv[*i][n] != '\0')
        return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "mbq extract: option '%s' needs a value\n", name);
        return -1;
    }
    *out = argv[++*i];
    return 1;
}

/* --chunk-rows: the table in key-range chunks on `jobs` connections. */
static int extract_chunked(mbq_mysql *my, const mbq_config *cfg, mbq_extract_options *o,
                           const char *dir, long long chunk_rows, int jobs)
{
    mbq_chunked_result r;
    o->cursor = NULL; /* every row, in key order */
    int rc = mbq_mysql_extract_chunked(&r, my, &cfg->mysql, o, dir, chunk_rows, jobs);
    if (rc < 0)
        return mbq_cli_fail("mbq extract", rc);
    double secs = (double)r.elapsed_ms / 1000.0;
    printf("table     %s\n", o->log_table);
    printf("dir       %s\n", dir);
    printf("format    %s\n", o->compress ? "ndjson+gzip" : "ndjson");
    printf("chunks    %d\n", r.chunks);
    printf("jobs      %d\n", jobs);
    printf("rows      %llu\n", (unsigned long long)r.rows);
    printf("bytes     %llu\n", (unsigned long long)r.bytes);
    printf("raw_bytes %llu\n", (unsigned long long)r.raw_bytes);
    printf("plan_s    %.3f\n", (double)r.plan_ms / 1000.0);
    printf("seconds   %.3f\n", secs);
    printf("rows/s    %.0f\n", secs > 0 ? (double)r.rows / secs : (double)r.rows);
    return MBQ_EXIT_OK;
}

int mbq_cmd_extract(int argc, char **argv)
{
    const char *config_path = NULL, *table = NULL, *since = NULL, *out_path = NULL;
    const char *log_level = NULL, *log_format = NULL, *chunk_s = NULL, *jobs_s = NULL;
    bool no_compress = false;
    int exit_code = MBQ_EXIT_OK, rc;
    mbq_config *cfg = NULL;
    mbq_discovery *disc = NULL; /* a table a pattern takes: its resolved config */
    mbq_mysql *my = NULL;
    mbq_table_schema *schema = NULL;
    mbq_extract_result res = {0};

    for (int i = 1; i < argc; i++) {
        int r = 0;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return MBQ_EXIT_OK;
        } else if (strcmp(argv[i], "--no-compress") == 0) {
            no_compress = true;
            continue;
        }
        if ((r = opt_value(&config_path, argc, argv, &i, "--config")) ||
            (r = opt_value(&table, argc, argv, &i, "--table")) ||
            (r = opt_value(&since, argc, argv, &i, "--since")) ||
            (r = opt_value(&out_path, argc, argv, &i, "--out")) ||
            (r = opt_value(&log_level, argc, argv, &i, "--log-level")) ||
            (r = opt_value(&log_format, argc, argv, &i, "--log-format")) ||
            (r = opt_value(&chunk_s, argc, argv, &i, "--chunk-rows")) ||
            (r = opt_value(&jobs_s, argc, argv, &i, "--jobs"))) {
            if (r < 0)
                return MBQ_EXIT_USAGE;
            continue;
        }
        fprintf(stderr, "mbq extract: unknown option '%s'\n", argv[i]);
        usage(stderr);
        return MBQ_EXIT_USAGE;
    }
    if (!table || !out_path) {
        fprintf(stderr, "mbq extract: --table and --out are required\n");
        usage(stderr);
        return MBQ_EXIT_USAGE;
    }
    long long chunk_rows = chunk_s ? atoll(chunk_s) : 0, jobs = jobs_s ? atoll(jobs_s) : 1;
    if ((chunk_s && chunk_rows < 1) || jobs < 1 || jobs > 32 || (jobs_s && !chunk_s) ||
        (chunk_s && since)) {
        fprintf(stderr, "mbq extract: --chunk-rows needs a positive count, --jobs 1..32 goes "
                        "with it, and neither with --since\n");
        return MBQ_EXIT_USAGE;
    }
    if ((exit_code = mbq_cli_load_config(&cfg, config_path, log_level, log_format)) != 0)
        goto done;

    const mbq_table_config *tc = NULL;
    if ((rc = mbq_discover_table(&tc, &disc, cfg, table)) < 0) {
        fprintf(stderr, "mbq extract: %s\n", mbq_error_last());
        exit_code = rc == MBQ_ECONFIG ? MBQ_EXIT_USAGE : mbq_exit_for_error(rc);
        goto done;
    }
    const char *cursor = tc->mode == MBQ_MODE_INCREMENTAL ? tc->updated_column : NULL;
    if (since && !cursor) {
        fprintf(stderr, "mbq extract: table '%s' has no cursor column (mode full): "
                        "--since does not apply\n", tc->name);
        exit_code = MBQ_EXIT_USAGE;
        goto done;
    }
    if ((rc = mbq_mysql_connect(&my, &cfg->mysql)) < 0 ||
        (rc = mbq_mysql_table_schema(&schema, my, cfg->mysql.database, tc->name)) < 0) {
        exit_code = mbq_cli_fail("mbq extract", rc);
        goto done;
    }
    mbq_cursor_kind kind;
    if ((rc = mbq_mysql_check_table(&kind, schema, (const char *const *)tc->primary_key,
                                    tc->n_primary_key, cursor)) < 0) {
        exit_code = mbq_cli_fail("mbq extract", rc);
        goto done;
    }
    mbq_extract_options o = MBQ_EXTRACT_OPTIONS_INIT;
    o.schema = schema;
    o.pk = (const char *const *)tc->primary_key;
    o.n_pk = tc->n_primary_key;
    o.cursor = cursor;
    o.cursor_kind = kind;
    o.low = since;
    o.path = out_path;
    o.compress = cfg->bigquery.compress && !no_compress;
    o.log_table = tc->name;
    if (chunk_rows > 0) {
        exit_code = extract_chunked(my, cfg, &o, out_path, chunk_rows, (int)jobs);
        goto done;
    }
    if ((rc = mbq_mysql_extract(&res, my, &o)) < 0) {
        exit_code = mbq_cli_fail("mbq extract", rc);
        goto done;
    }
    double secs = (double)res.elapsed_ms / 1000.0;
    printf("table     %s\n", tc->name);
    printf("file      %s\n", res.file_written ? out_path : "(none: no rows)");
    printf("format    %s\n", o.compress ? "ndjson+gzip" : "ndjson");
    printf("rows      %llu\n", (unsigned long long)res.rows);
    printf("bytes     %llu\n", (unsigned long long)res.bytes);
    printf("raw_bytes %llu\n", (unsigned long long)res.raw_bytes);
    printf("checksum  %s\n", res.checksum ? res.checksum : "-");
    printf("low       %s\n", res.low ? res.low : "-");
    printf("high      %s\n", res.high ? res.high : "-");
    printf("zero_dates %llu\n", (unsigned long long)res.zero_dates);
    printf("not_json  %llu\n", (unsigned long long)res.not_json);
    printf("seconds   %.3f\n", secs);
    printf("rows/s    %.0f\n", secs > 0 ? (double)res.rows / secs : (double)res.rows);
done:
    mbq_discovery_free(disc);
    mbq_extract_result_free(&res);
    mbq_table_schema_free(schema);
    mbq_mysql_close(my);
    mbq_config_free(cfg);
    return exit_code;
}
