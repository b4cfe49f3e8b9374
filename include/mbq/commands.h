/* The subcommands of `mbq` and `mbq-state`. Each takes the arguments after
 * the program name (argv[0] is the subcommand's name) and returns the
 * process exit code (mbq/exitcode.h). The programs in src/cli/ only dispatch. */
#ifndef MBQ_COMMANDS_H
#define MBQ_COMMANDS_H

int mbq_cmd_sync(int argc, char **argv);
int mbq_cmd_check(int argc, char **argv);
int mbq_cmd_extract(int argc, char **argv);
int mbq_cmd_inspect(int argc, char **argv);
int mbq_cmd_reset(int argc, char **argv);

#endif

#ifndef MBQ_COMMANDS_HELPERS
#define MBQ_COMMANDS_HELPERS
#include "mbq/config.h"

/* The config file a command uses: `--config` if given, else $MBQ_CONFIG,
 * else "mbq.yml" in the current directory. Loads it and applies its log
 * settings (command-line --log-level/--log-format win). On failure prints
 * the error to stderr and returns the exit code to use (2), else 0. */
int mbq_cli_load_config(mbq_config **out, const char *path, const char *log_level,
                        const char *log_format);

/* Print "PROG: <last error>" to stderr and return the exit code for `err`. */
int mbq_cli_fail(const char *prog, int err);
#endif
