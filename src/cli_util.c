/* Helpers shared by the subcommands (see mbq/commands.h). */
#include <stdio.h>
#include <stdlib.h>

#include "mbq/commands.h"
#include "mbq/config.h"
#include "mbq/error.h"
#include "mbq/exitcode.h"
#include "mbq/log.h"
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
