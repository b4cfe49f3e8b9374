/* Crash injection (see mbq/fault.h). */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mbq/fault.h"
#include "mbq/banned.h"

static int fault_state = -1; /* -1 unknown, 0 off, 1 on */
static const char *fault_spec;
static long fault_hit_at = 1;
static long fault_hits;

int mbq_fault_enabled(void)
{
    if (fault_state < 0) {
        fault_spec = getenv("MBQ_FAULT");
        fault_state = fault_spec && *fault_spec;
        const char *n = getenv("MBQ_FAULT_HIT");
        if (n && atol(n) > 0)
            fault_hit_at = atol(n);
    }
    return fault_state;
}

static int spec_names(const char *spec, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = spec; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && memcmp(p, name, n) == 0)
            return 1;
        if (!comma)
            break;
        p = comma + 1;
    }
    return 0;
}

void mbq_fault_point(const char *name)
{
    if (!mbq_fault_enabled() || !spec_names(fault_spec, name))
        return;
    if (__atomic_add_fetch(&fault_hits, 1, __ATOMIC_SEQ_CST) < fault_hit_at)
        return;
    static const char msg[] = "mbq: MBQ_FAULT: killing the process at fault point\n";
    ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)w;
    kill(getpid(), SIGKILL);
    _exit(137);
}
