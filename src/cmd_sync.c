/* `sync` subcommand (stub until its issue lands). */
#include <stdio.h>

#include "mbq/commands.h"
#include "mbq/exitcode.h"

int mbq_cmd_sync(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "sync: not implemented yet\n");
    return MBQ_EXIT_SOFTWARE;
}
