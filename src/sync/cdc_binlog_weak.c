/* Weak stand-ins for the binlog reader (mbq/binlog.h, src/mysql/binlog*.c)
 * while it is built on its own branch: every call fails with a clear
 * error. The reader's definitions replace these at link time. */
#include <stdlib.h>
#include <string.h>

#include "mbq/binlog.h"
#include "mbq/error.h"
#include "mbq/banned.h"

#define WEAK __attribute__((weak))

static int missing(void)
{
    return mbq_error_set(MBQ_ECONFIG, "this mbq is built without the binlog reader");
}

/* By the file's numeric suffix, then the offset (mbq/binlog.h). */
static unsigned long long file_seq(const char *f)
{
    const char *dot = strrchr(f, '.');
    return dot ? strtoull(dot + 1, NULL, 10) : 0;
}

WEAK int mbq_binlog_pos_cmp(const mbq_binlog_pos *a, const mbq_binlog_pos *b)
{
    if (!a->file[0] || !b->file[0])
        return (a->file[0] != 0) - (b->file[0] != 0);
    unsigned long long sa = file_seq(a->file), sb = file_seq(b->file);
    if (sa != sb)
        return sa < sb ? -1 : 1;
    return a->pos < b->pos ? -1 : a->pos > b->pos;
}
WEAK int mbq_binlog_check(mbq_mysql *c)
{
    (void)c;
    return missing();
}
WEAK int mbq_binlog_current_pos(mbq_binlog_pos *out, mbq_mysql *c)
{
    (void)out;
    (void)c;
    return missing();
}
WEAK int mbq_binlog_open(mbq_binlog **out, const mbq_binlog_options *opts)
{
    (void)out;
    (void)opts;
    return missing();
}
WEAK int mbq_binlog_next(mbq_binlog *b, mbq_binlog_event *ev, int timeout_ms)
{
    (void)b;
    (void)ev;
    (void)timeout_ms;
    return missing();
}
WEAK void mbq_binlog_close(mbq_binlog *b)
{
    (void)b;
}
