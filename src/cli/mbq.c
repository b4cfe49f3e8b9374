/* mbq: the sync program. Parses arguments and calls the library; each
 * subcommand is one function, dispatched from the table below. */
#include <stdio.h>
#include <string.h>

#include "mbq/commands.h"
#include "mbq/exitcode.h"
#include "mbq/banned.h"

typedef int (*command_fn)(int argc, char **argv);

struct command {
    const char *name;
    command_fn fn;
    const char *summary;
};


static const struct command commands[] = {
    {"sync", mbq_cmd_sync, "run one sync of every configured table (resumes unfinished runs first)"},
    {"check", mbq_cmd_check, "validate config, credentials and connectivity; change nothing"},
    {"extract", mbq_cmd_extract, "extract one table to a load-ready NDJSON file and print figures"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: mbq <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nrun 'mbq <command> --help' for a command's options\n"
                 "options: --help, --version\n");
}




int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return MBQ_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return MBQ_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("mbq %s\n", MBQ_VERSION);
        return MBQ_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "mbq: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return MBQ_EXIT_USAGE;
}
