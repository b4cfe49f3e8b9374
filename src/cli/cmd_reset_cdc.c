/* `mbq-state reset TABLE --full --yes` on a table in `mode: cdc`: the next
 * `mbq cdc` takes a new snapshot of it (the way back from a purged binlog
 * or an incompatible schema change). Only the journal changes here; the
 * follower replaces the target with the new snapshot and moves on from its
 * binlog position. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "cli_cdc.h"
#include "mbq/buf.h"
#include "mbq/error.h"
#include "mbq/journal_cdc_read.h"
#include "mbq/util.h"
#include "mbq/banned.h"

int mbq_cli_cdc_lock(int *fd, const char *state_dir, const char *what)
{
    mbq_buf path = MBQ_BUF_INIT;
    int rc = mbq_buf_printf(&path, "%s/cdc.lock", state_dir);
    *fd = -1;
    if (rc < 0)
        goto done;
    int f = open(path.ptr, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (f < 0) {
        rc = mbq_error_set(MBQ_EIO, "cannot open '%s': %s", path.ptr, strerror(errno));
        goto done;
    }
    if (flock(f, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        close(f);
        if (e == EWOULDBLOCK)
            rc = mbq_error_set(MBQ_ELOCKED,
                               "%s: 'mbq cdc' is running (it holds '%s'): stop it first "
                               "(systemctl stop mbq-cdc), then run this again",
                               what, path.ptr);
        else
            rc = mbq_error_set(MBQ_EIO, "cannot lock '%s': %s", path.ptr, strerror(e));
        goto done;
    }
    *fd = f;
done:
    mbq_buf_free(&path);
    return rc;
}

static int journal_reset_event(mbq_journal *j, const char *table, const char *old_state)
{
    mbq_buf detail = MBQ_BUF_INIT;
    int rc = mbq_buf_printf(&detail, "cdc state %s -> resnapshot: the next 'mbq cdc' takes a "
                                     "new snapshot",
                            old_state);
    if (rc == 0) {
        mbq_event e = {0};
        e.table_name = (char *)table;
        e.kind = "reset";
        e.action = "full";
        e.detail = detail.ptr;
        rc = mbq_journal_event_add(j, &e);
    }
    mbq_buf_free(&detail);
    return rc;
}

int mbq_cli_reset_cdc(mbq_journal *j, const mbq_config *cfg, const char *table, bool yes)
{
    mbq_cdc_table_view tv;
    bool found = false;
    char *old_state = NULL;
    int lock_fd = -1;
    int rc = mbq_journal_cdc_read_table(j, &tv, &found, table);
    if (rc < 0)
        return rc;
    printf("table %s (mode cdc): state %s", table, found ? tv.state : "(none yet)");
    if (found && tv.snapshot_file)
        printf(", snapshot at %s:%lld", tv.snapshot_file, (long long)tv.snapshot_pos);
    printf("\n");
    if (!found) {
        printf("  nothing to reset: the next 'mbq cdc' takes its first snapshot anyway\n");
        goto done;
    }
    printf("  would mark it for a new snapshot: the next 'mbq cdc' reloads it in full from one "
           "consistent snapshot, then follows the binlog from that snapshot's position\n");
    if (!yes) {
        printf("nothing changed: add --yes to do it\n");
        goto done;
    }
    /* Held until the journal commits, so that no follower starts between
     * the check and the write. */
    if ((rc = mbq_cli_cdc_lock(&lock_fd, cfg->state_dir, "cannot reset a cdc table")) < 0 ||
        (rc = mbq_journal_begin(j)) < 0)
        goto done;
    if ((rc = mbq_journal_cdc_resnapshot(j, &old_state, table, mbq_now_ms())) < 0 ||
        (rc = journal_reset_event(j, table, old_state ? old_state : "(none)")) < 0) {
        mbq_journal_rollback(j);
        goto done;
    }
    if ((rc = mbq_journal_commit(j)) < 0)
        goto done;
    printf("done\n");
done:
    if (lock_fd >= 0)
        close(lock_fd);
    free(old_state);
    mbq_cdc_table_view_clear(&tv);
    return rc;
}
