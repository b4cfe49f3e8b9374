/* The subcommands of `mbq` and `mbq-state`. Each takes the arguments after
 * the program name (argv[0] is the subcommand's name) and returns the
 * process exit code (mbq/exitcode.h). The programs in src/cli/ only dispatch. */
#ifndef MBQ_COMMANDS_H
#define MBQ_COMMANDS_H

int mbq_cmd_sync(int argc, char **argv);
int mbq_cmd_cdc(int argc, char **argv);
int mbq_cmd_check(int argc, char **argv);
int mbq_cmd_extract(int argc, char **argv);
int mbq_cmd_inspect(int argc, char **argv);
int mbq_cmd_reset(int argc, char **argv);
int mbq_cmd_serve(int argc, char **argv);

#endif

#ifndef MBQ_COMMANDS_HELPERS
#define MBQ_COMMANDS_HELPERS
#include <stddef.h>

#include "mbq/config.h"

/* The config file a command uses: `--config` if given, else $MBQ_CONFIG,
 * else "mbq.yml" in the current directory. Loads it and applies its log
 * settings (command-line --log-level/--log-format win). On failure prints
 * the error to stderr and returns the exit code to use (2), else 0. */
int mbq_cli_load_config(mbq_config **out, const char *path, const char *log_level,
                        const char *log_format);

/* For commands that talk to BigQuery: when the config names no project_id,
 * take the credentials' (mbq_bq_config_resolve_project). 0, or an exit code
 * with the error printed. */
int mbq_cli_resolve_project(mbq_config *cfg);

/* A program's subcommand table and its dispatch: --help/--version, the
 * command by name, or usage on stderr with exit code 2. */
typedef struct mbq_cli_command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} mbq_cli_command;

int mbq_cli_dispatch(const char *prog, const mbq_cli_command *commands, size_t n, int argc,
                     char **argv);

/* Print "PROG: <last error>" to stderr and return the exit code for `err`. */
int mbq_cli_fail(const char *prog, int err);
#endif
