/* `mbq-state serve`: the monitoring dashboard (mbq/server.h). It only reads
 * the journal (read-only SQLite handles, no lock), so it runs beside cron's
 * `mbq sync` and never holds it up. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mbq/commands.h"
#include "mbq/config.h"
#include "mbq/error.h"
#include "mbq/exitcode.h"
#include "mbq/log.h"
#include "mbq/server.h"
#include "mbq/util.h"
#include "mbq/banned.h"

static const char serve_usage[] =
    "usage: mbq-state serve [--listen HOST:PORT] [--config FILE | --state-dir DIR]\n"
    "                       [--healthy-within DURATION] [--refresh SECONDS]\n"
    "\n"
    "Serves the monitoring dashboard over HTTP, read-only: / (every table), /table/NAME\n"
    "(history charts, schema changes, errors), /alerts, /metrics (Prometheus),\n"
    "/healthz (200 or 503 with the reason) and /api/tables (JSON).\n"
    "  --listen HOST:PORT      default serve.listen, else 127.0.0.1:8080; port 0 picks one\n"
    "  --config FILE           the sync's config (default $MBQ_CONFIG or ./mbq.yml)\n"
    "  --state-dir DIR         serve the journal in DIR (no config needed)\n"
    "  --healthy-within DUR    /healthz fails when a table's last success is older\n"
    "                          (default serve.healthy_within, else 1h)\n"
    "  --refresh SECONDS       pages reload every SECONDS (default 30; 0 = never)\n"
    "A non-loopback address needs a token in $MBQ_SERVE_TOKEN (at least 16\n"
    "characters); clients then send 'Authorization: Bearer <token>'.\n";

/* Options from the command line override the config's serve section. */
typedef struct serve_args {
    const char *config_path, *state_dir, *listen, *healthy_within;
    int refresh_s;
} serve_args;

static int parse_args(serve_args *a, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"config", required_argument, NULL, 'c'},
        {"state-dir", required_argument, NULL, 's'},
        {"healthy-within", required_argument, NULL, 'w'},
        {"refresh", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    int64_t v;
    memset(a, 0, sizeof *a);
    a->refresh_s = 30;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "l:c:s:w:r:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'l': a->listen = optarg; break;
        case 'c': a->config_path = optarg; break;
        case 's': a->state_dir = optarg; break;
        case 'w': a->healthy_within = optarg; break;
        case 'r':
            if (mbq_parse_i64(&v, optarg) < 0 || v < 0 || v > 86400) {
                fprintf(stderr, "mbq-state serve: invalid --refresh '%s' (0..86400 seconds)\n",
                        optarg);
                return MBQ_EXIT_USAGE;
            }
            a->refresh_s = (int)v;
            break;
        case 'h': fputs(serve_usage, stdout); return -1;
        default: fputs(serve_usage, stderr); return MBQ_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fputs(serve_usage, stderr);
        return MBQ_EXIT_USAGE;
    }
    return 0;
}

/* Wait for SIGINT or SIGTERM (blocked in every thread, taken here). */
static void wait_for_stop(const sigset_t *set)
{
    int sig = 0;
    while (sigwait(set, &sig) != 0 || (sig != SIGINT && sig != SIGTERM))
        ;
    mbq_log(MBQ_LOG_INFO, NULL, "serve", "stopping on signal %d", sig);
}

int mbq_cmd_serve(int argc, char **argv)
{
    serve_args a;
    mbq_config *cfg = NULL;
    mbq_server *srv = NULL;
    mbq_server_options o = MBQ_SERVER_OPTIONS_INIT;
    int exit_code = parse_args(&a, argc, argv), rc;
    sigset_t set;
    if (exit_code)
        return exit_code < 0 ? MBQ_EXIT_OK : exit_code;
    if (!a.state_dir) {
        if ((exit_code = mbq_cli_load_config(&cfg, a.config_path, NULL, NULL)) != 0)
            return exit_code;
        a.state_dir = cfg->state_dir;
        if (!a.listen && cfg->serve_listen)
            a.listen = cfg->serve_listen;
        if (cfg->serve_healthy_within_ms > 0)
            o.healthy_within_ms = cfg->serve_healthy_within_ms;
    }
    if (a.listen)
        o.listen = a.listen;
    if (a.healthy_within && (mbq_parse_duration_ms(&o.healthy_within_ms, a.healthy_within) < 0 ||
                             o.healthy_within_ms <= 0)) {
        fprintf(stderr, "mbq-state serve: invalid --healthy-within '%s' (e.g. 30m, 2h)\n",
                a.healthy_within);
        exit_code = MBQ_EXIT_USAGE;
        goto done;
    }
    o.state_dir = a.state_dir;
    o.cfg = cfg;
    o.refresh_s = a.refresh_s;
    o.token = getenv("MBQ_SERVE_TOKEN");
    if (o.token && !*o.token)
        o.token = NULL;
    /* The token is a secret: masked wherever it could appear. */
    if (o.token)
        mbq_secret_register(o.token);
    /* Block the stop signals before the server's threads start, so that
     * they inherit the mask and only sigwait() below takes them. */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    if ((rc = mbq_server_start(&srv, &o)) < 0) {
        exit_code = rc == MBQ_ECONFIG ? (fprintf(stderr, "mbq-state serve: %s\n",
                                                 mbq_error_last()),
                                         MBQ_EXIT_USAGE)
                                      : mbq_cli_fail("mbq-state serve", rc);
        goto done;
    }
    /* Scripts (and the tests) read the address from this line, which
     * matters with port 0. */
    const char *host_end = strrchr(o.listen, ':');
    printf("mbq-state serve: listening on http://%.*s:%u/ (journal %s/state.db%s)\n",
           (int)(host_end - o.listen), o.listen, mbq_server_port(srv), o.state_dir,
           o.token ? ", bearer token required" : "");
    fflush(stdout);
    wait_for_stop(&set);
done:
    mbq_server_stop(srv);
    mbq_config_free(cfg);
    return exit_code;
}
