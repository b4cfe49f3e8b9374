/* `mbq cdc`: follow the binlog of the tables in mode cdc (mbq/cdc.h). */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mbq/cdc.h"
#include "mbq/commands.h"
#include "mbq/config.h"
#include "mbq/error.h"
#include "mbq/exitcode.h"
#include "mbq/log.h"
#include "mbq/server.h"
#include "mbq/util.h"
#include "mbq/banned.h"

static const char cdc_usage[] =
    "usage: mbq cdc [--config FILE] [--table T]... [--once] [--max-seconds N]\n"
    "               [--log-level error|warn|info|debug] [--log-format text|json]\n"
    "\n"
    "Follow the source's binlog and apply every insert, update and delete of the\n"
    "tables in 'mode: cdc' to BigQuery in micro-batches (a table without a\n"
    "streaming state gets a snapshot first). Runs until SIGTERM or SIGINT: a\n"
    "batch already closed is applied, one still being read is read again next time.\n"
    "\n"
    "  --config FILE      config file (default $MBQ_CONFIG or ./mbq.yml)\n"
    "  --table T          only this cdc table (repeatable)\n"
    "  --once             apply the binlog up to the source's end position at start,\n"
    "                     then exit (cron, tests)\n"
    "  --max-seconds N    stop cleanly after N seconds\n"
    "exit codes: 0 stopped cleanly, 1 a table or the stream failed, 2 usage or config,\n"
    "            69 MySQL unreachable past cdc.reconnect_max (--once), 74 journal or disk,\n"
    "            75 another 'mbq cdc' holds the cdc lock\n";

static void on_signal(int sig)
{
    (void)sig;
    mbq_cdc_request_stop();
}

static int install_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART; /* reads and writes in flight finish; the loop polls the flag */
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0)
        return -1;
    return 0;
}

int mbq_cmd_cdc(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},    {"table", required_argument, NULL, 't'},
        {"once", no_argument, NULL, 'o'},            {"max-seconds", required_argument, NULL, 's'},
        {"log-level", required_argument, NULL, 'l'}, {"log-format", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},            {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL, *log_level = NULL, *log_format = NULL;
    mbq_cdc_options co = MBQ_CDC_OPTIONS_INIT;
    const char **names = mbq_calloc((size_t)argc + 1, sizeof *names);
    int opt, exit_code = MBQ_EXIT_OK;
    mbq_config *cfg = NULL;
    if (!names)
        return MBQ_EXIT_SOFTWARE;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:t:os:l:f:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': config_path = optarg; break;
        case 't': names[co.n_tables++] = optarg; break;
        case 'o': co.once = true; break;
        case 's': {
            char *end = NULL;
            long long n = strtoll(optarg, &end, 10);
            if (!*optarg || *end || n < 1) {
                fprintf(stderr, "mbq cdc: --max-seconds '%s': give a number of seconds\n",
                        optarg);
                exit_code = MBQ_EXIT_USAGE;
                goto done;
            }
            co.max_seconds = n;
            break;
        }
        case 'l': log_level = optarg; break;
        case 'f': log_format = optarg; break;
        case 'h': fputs(cdc_usage, stdout); goto done;
        default: fputs(cdc_usage, stderr); exit_code = MBQ_EXIT_USAGE; goto done;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "mbq cdc: unexpected argument '%s'\n", argv[optind]);
        fputs(cdc_usage, stderr);
        exit_code = MBQ_EXIT_USAGE;
        goto done;
    }
    if (co.n_tables)
        co.tables = names;
    if ((exit_code = mbq_cli_load_config(&cfg, config_path, log_level, log_format)) != 0 ||
        (exit_code = mbq_cli_resolve_project(cfg)) != 0)
        goto done;
    if (install_handlers() != 0) {
        fprintf(stderr, "mbq cdc: cannot install signal handlers\n");
        exit_code = MBQ_EXIT_SOFTWARE;
        goto done;
    }
    exit_code = mbq_cdc_run(cfg, &co);
    if (exit_code != MBQ_EXIT_OK)
        fprintf(stderr, "mbq cdc: %s\n", mbq_error_last());
    /* A --once run from cron leaves what it did for node_exporter's
     * textfile collector, as `mbq sync` does (a follower is scraped live:
     * mbq-state serve's /metrics). Not writing it does not fail the run. */
    if (co.once && cfg->metrics_file && exit_code != MBQ_EXIT_USAGE &&
        exit_code != MBQ_EXIT_LOCKED &&
        mbq_cdc_metrics_write(cfg->metrics_file, cfg->state_dir, cfg, mbq_now_ms()) < 0) {
        mbq_log(MBQ_LOG_WARN, NULL, "cdc", "cannot write the metrics textfile: %s",
                mbq_error_last());
        mbq_error_clear();
    }
done:
    free(names);
    mbq_config_free(cfg);
    return exit_code;
}
