/* mbq-state: read and repair the journal. It only dispatches: each subcommand
 * is one library function (mbq/commands.h), listed in the table below. */
#include "mbq/commands.h"
#include "mbq/banned.h"

static const mbq_cli_command commands[] = {
    {"inspect", mbq_cmd_inspect, "show committed cursors, in-flight runs, failures and events"},
    {"reset", mbq_cmd_reset, "abandon a table's in-flight run and move or clear its cursor"},
    {"serve", mbq_cmd_serve, "serve the monitoring dashboard, metrics and health over HTTP"},
};

int main(int argc, char **argv)
{
    return mbq_cli_dispatch("mbq-state", commands, sizeof commands / sizeof commands[0], argc,
                            argv);
}
