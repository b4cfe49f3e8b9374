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
