/* mbq: the sync program. It only dispatches: each subcommand is one library
 * function (mbq/commands.h), listed in the table below. */
#include "mbq/commands.h"
#include "mbq/banned.h"

static const mbq_cli_command commands[] = {
    {"sync", mbq_cmd_sync, "run one sync of every configured table (resumes unfinished runs first)"},
    {"check", mbq_cmd_check, "validate config, credentials and connectivity; change nothing"},
    {"cdc", mbq_cmd_cdc, "follow the binlog: apply every change of the tables in mode cdc"},
    {"extract", mbq_cmd_extract, "extract one table to a load-ready NDJSON file and print figures"},
};

int main(int argc, char **argv)
{
    return mbq_cli_dispatch("mbq", commands, sizeof commands / sizeof commands[0], argc, argv);
}
