/* The `serve` section: the dashboard of `mbq-state serve` (mbq/server.h).
 *
 *   serve:
 *     listen: 127.0.0.1:8080   # HOST:PORT; a non-loopback address needs
 *                              # MBQ_SERVE_TOKEN in the environment
 *     healthy_within: 1h       # /healthz fails when a table's last success
 *                              # is older than this */
#include <stdlib.h>

#include "mbq/buf.h"
#include "mbq/config.h"
#include "mbq/error.h"

#include "config_internal.h"
#include "mbq/banned.h"

static const char *const serve_keys[] = {"listen", "healthy_within", NULL};

int parse_serve(cfg_ctx *c, const section *top)
{
    mbq_buf path = MBQ_BUF_INIT;
    section s;
    bool present = false;
    int rc = open_section(c, top, "serve", serve_keys, &path, &s, &present);
    /* The address is checked when the server starts (mbq_listen_parse), with
     * the same message as for --listen. A healthy_within below a minute
     * would flap between two cron runs. */
    if (rc == 0 && present)
        rc = get_str(c, &s, "listen", 0, &c->cfg->serve_listen, NULL);
    if (rc == 0 && present)
        rc = get_duration(c, &s, "healthy_within", 60 * 1000, &c->cfg->serve_healthy_within_ms,
                          NULL);
    mbq_buf_free(&path);
    return rc;
}
