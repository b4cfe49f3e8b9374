/* Helpers shared by the subcommands (see mbq/commands.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mbq/commands.h"
#include "mbq/bq.h"
#include "mbq/config.h"
#include "mbq/error.h"
#include "mbq/exitcode.h"
#include "mbq/log.h"
#include "mbq/version.h"
#include "mbq/banned.h"

int mbq_cli_fail(const char *prog, int err)
{
    fprintf(stderr, "%s: %s\n", prog, mbq_error_last());
    return mbq_exit_for_error(err);
}

int mbq_cli_load_config(mbq_config **out, const char *path, const char *log_level,
                        const char *log_format)
{
    int rc;
    *out = NULL;
    if (!path)
        path = getenv("MBQ_CONFIG");
    if (!path)
        path = "mbq.yml";
    /* Command-line log settings apply before the config loads, so that its
     * own messages follow them. */
    mbq_log_level level;
    mbq_log_format format;
    if (log_level && (rc = mbq_log_parse_level(&level, log_level)) < 0)
        return mbq_cli_fail("mbq", rc);
    if (log_format && (rc = mbq_log_parse_format(&format, log_format)) < 0)
        return mbq_cli_fail("mbq", rc);
    if (log_level)
        mbq_log_set_level(level);
    if (log_format)
        mbq_log_set_format(format);
    if ((rc = mbq_config_load(out, path)) < 0) {
        fprintf(stderr, "mbq: %s\n", mbq_error_last());
        return rc == MBQ_ECONFIG || rc == MBQ_ENOTFOUND || rc == MBQ_EIO ? MBQ_EXIT_USAGE
                                                                         : mbq_exit_for_error(rc);
    }
    if (!log_level && (*out)->log_level && mbq_log_parse_level(&level, (*out)->log_level) == 0)
        mbq_log_set_level(level);
    if (!log_format && (*out)->log_format &&
        mbq_log_parse_format(&format, (*out)->log_format) == 0)
        mbq_log_set_format(format);
    return 0;
}

int mbq_cli_resolve_project(mbq_config *cfg)
{
    /* No project_id: the credentials' (a key's project_id, the metadata
     * server's project), found once so that all of the command sees it. */
    int rc = mbq_bq_config_resolve_project(&cfg->bigquery);
    if (rc < 0) {
        fprintf(stderr, "mbq: %s\n", mbq_error_last());
        return mbq_exit_for_error(rc);
    }
    return 0;
}

static void usage(FILE *out, const char *prog, const mbq_cli_command *commands, size_t n)
{
    fprintf(out, "usage: %s <command> [options]\n\ncommands:\n", prog);
    for (size_t i = 0; i < n; i++)
        fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nrun '%s <command> --help' for a command's options\n"
                 "options: --help, --version\n", prog);
}

int mbq_cli_dispatch(const char *prog, const mbq_cli_command *commands, size_t n, int argc,
                     char **argv)
{
    if (argc < 2) {
        usage(stderr, prog, commands, n);
        return MBQ_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout, prog, commands, n);
        return MBQ_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        mbq_buf text = MBQ_BUF_INIT;
        int rc = mbq_version_text(&text, prog);
        if (rc == 0)
            fputs(mbq_buf_cstr(&text), stdout);
        mbq_buf_free(&text);
        return rc == 0 ? MBQ_EXIT_OK : MBQ_EXIT_SOFTWARE;
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "%s: unknown command '%s'\n", prog, argv[1]);
    usage(stderr, prog, commands, n);
    return MBQ_EXIT_USAGE;
}
