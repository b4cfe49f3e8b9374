/* mbq-state: read and repair the journal. Parses arguments and calls the
 * library; each subcommand is one function, dispatched from the table. */
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
    {"inspect", mbq_cmd_inspect, "show committed cursors, in-flight runs, failures and events"},
    {"reset", mbq_cmd_reset, "abandon a table's in-flight run and move or clear its cursor"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: mbq-state <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\noptions: --help, --version\n");
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
        printf("mbq-state %s\n", MBQ_VERSION);
        return MBQ_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "mbq-state: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return MBQ_EXIT_USAGE;
}
