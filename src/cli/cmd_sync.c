/* `mbq sync`: one sync run of the configured tables. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mbq/commands.h"
#include "mbq/config.h"
#include "mbq/error.h"
#include "mbq/exitcode.h"
#include "mbq/machine.h"
#include "mbq/util.h"
#include "mbq/banned.h"

static const char sync_usage[] =
    "usage: mbq sync [--config FILE] [--tables a,b] [--jobs N] [--dry-run]\n"
    "                [--metrics-file PATH] [--log-level error|warn|info|debug]\n"
    "                [--log-format text|json]\n"
    "\n"
    "Resumes every unfinished table run from the journal, then syncs each table:\n"
    "schema-check -> extract -> stage -> merge -> commit-metadata.\n"
    "  --config FILE        config file (default $MBQ_CONFIG or ./mbq.yml)\n"
    "  --tables a,b         only these tables\n"
    "  --jobs N             sync up to N tables at the same time (1-32; default\n"
    "                       sync.jobs of the config, else 1); each table uses its\n"
    "                       own MySQL and BigQuery connection\n"
    "  --dry-run            print windows and schema changes; change nothing\n"
    "  --metrics-file PATH  write Prometheus metrics there after the run\n"
    "  --no-progress        no progress line even on a terminal\n"
    "exit codes: 0 every table ok, 1 some table failed, 2 usage or config,\n"
    "            69 MySQL/BigQuery unreachable, 70 internal error, 74 journal or disk,\n"
    "            75 another run holds the lock, 77 credentials refused\n";

int mbq_cmd_sync(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},     {"tables", required_argument, NULL, 't'},
        {"dry-run", no_argument, NULL, 'n'},          {"metrics-file", required_argument, NULL, 'm'},
        {"log-level", required_argument, NULL, 'l'},  {"log-format", required_argument, NULL, 'f'},
        {"no-progress", no_argument, NULL, 'P'},      {"help", no_argument, NULL, 'h'},
        {"jobs", required_argument, NULL, 'j'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL, *tables = NULL, *log_level = NULL, *log_format = NULL;
    mbq_sync_options so = MBQ_SYNC_OPTIONS_INIT;
    int opt, exit_code, cli_jobs = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:t:j:nm:l:f:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': config_path = optarg; break;
        case 't': tables = optarg; break;
        case 'n': so.dry_run = true; break;
        case 'm': so.metrics_file = optarg; break;
        case 'l': log_level = optarg; break;
        case 'f': log_format = optarg; break;
        case 'P': so.progress = false; break;
        case 'j': {
            char *end = NULL;
            long n = strtol(optarg, &end, 10);
            if (!*optarg || *end || n < 1 || n > MBQ_CONFIG_JOBS_MAX) {
                fprintf(stderr, "mbq sync: --jobs '%s': give a number of tables from 1 to %d\n",
                        optarg, MBQ_CONFIG_JOBS_MAX);
                return MBQ_EXIT_USAGE;
            }
            cli_jobs = (int)n;
            break;
        }
        case 'h': fputs(sync_usage, stdout); return MBQ_EXIT_OK;
        default: fputs(sync_usage, stderr); return MBQ_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "mbq sync: unexpected argument '%s'\n", argv[optind]);
        fputs(sync_usage, stderr);
        return MBQ_EXIT_USAGE;
    }
    mbq_config *cfg = NULL;
    if ((exit_code = mbq_cli_load_config(&cfg, config_path, log_level, log_format)) != 0)
        return exit_code;
    if ((exit_code = mbq_cli_resolve_project(cfg)) != 0) {
        mbq_config_free(cfg);
        return exit_code;
    }
    so.jobs = cli_jobs ? cli_jobs : cfg->sync_jobs ? cfg->sync_jobs : 1; /* option > config */

    char *list = NULL, **names = NULL;
    size_t n = 0;
    if (tables) {
        list = mbq_strdup(tables);
        names = mbq_calloc(strlen(tables) + 1, sizeof *names);
        if (!list || !names) {
            exit_code = MBQ_EXIT_SOFTWARE;
            goto done;
        }
        char *save = NULL;
        for (char *p = strtok_r(list, ",", &save); p; p = strtok_r(NULL, ",", &save))
            if (*p)
                names[n++] = p;
        so.tables = (const char *const *)names;
        so.n_tables = n;
    }
    exit_code = mbq_sync_run(cfg, &so);
    if (exit_code == MBQ_EXIT_LOCKED || exit_code == MBQ_EXIT_USAGE ||
        exit_code == MBQ_EXIT_IOERR || exit_code == MBQ_EXIT_SOFTWARE)
        fprintf(stderr, "mbq sync: %s\n", mbq_error_last());
done:
    free(list);
    free(names);
    mbq_config_free(cfg);
    return exit_code;
}
