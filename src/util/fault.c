/* Crash injection (see mbq/fault.h). */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

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

/* ---- crash injection inside SQLite's commit -------------------------------
 *
 * The journal's promise is that a process killed at any instant, also in the
 * middle of writing a transaction, leaves a journal that opens and says
 * either "before" or "after" that transaction. SQLite gives that guarantee
 * (WAL frames are only valid up to the last frame that carries a commit
 * marker and a matching checksum), but mbq's tests must see it hold for
 * mbq's own transactions. A fault point between two of SQLite's writes is
 * the only way to stop a process there on purpose.
 *
 * When MBQ_FAULT names a "journal.*" point, a thin VFS is registered as the
 * default before main() runs, so every SQLite connection of the process
 * goes through it without its caller knowing. Each method forwards to the
 * real (default) VFS; before a write and before a sync of the write-ahead
 * log or of the database file it calls the matching fault point:
 *
 *   journal.wal_write  before each write into the -wal file (frames of a
 *                      transaction being committed)
 *   journal.wal_sync   before the -wal file's fsync (the commit's frames
 *                      written, not yet durable)
 *   journal.db_write   before each write into state.db (a checkpoint)
 *   journal.db_sync    before state.db's fsync
 *
 * With MBQ_FAULT_HIT=N the process dies at the Nth such write: a random N
 * kills a random transaction at a random frame. Without MBQ_FAULT nothing
 * is registered and SQLite runs untouched.
 *
 * It lives in this file on purpose: the library is static, and only an
 * object file something refers to is linked; mbq_fault_point() is, so its
 * file carries the constructor. */
typedef struct fault_file {
    sqlite3_file base; /* must be first: SQLite sees this */
    sqlite3_file *real;
    const char *write_point, *sync_point; /* NULL for files that are not watched */
} fault_file;

static sqlite3_vfs fault_vfs;
static sqlite3_vfs *real_vfs;

#define REAL(f) (((fault_file *)(f))->real)

static int ff_close(sqlite3_file *f)
{
    int rc = REAL(f)->pMethods ? REAL(f)->pMethods->xClose(REAL(f)) : SQLITE_OK;
    f->pMethods = NULL;
    return rc;
}

static int ff_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off)
{
    return REAL(f)->pMethods->xRead(REAL(f), buf, n, off);
}

static int ff_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
    const fault_file *ff = (const fault_file *)f;
    if (ff->write_point)
        mbq_fault_point(ff->write_point);
    return REAL(f)->pMethods->xWrite(REAL(f), buf, n, off);
}

static int ff_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    return REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int ff_sync(sqlite3_file *f, int flags)
{
    const fault_file *ff = (const fault_file *)f;
    if (ff->sync_point)
        mbq_fault_point(ff->sync_point);
    return REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int ff_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int ff_lock(sqlite3_file *f, int lock)
{
    return REAL(f)->pMethods->xLock(REAL(f), lock);
}

static int ff_unlock(sqlite3_file *f, int lock)
{
    return REAL(f)->pMethods->xUnlock(REAL(f), lock);
}

static int ff_check_reserved(sqlite3_file *f, int *out)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int ff_file_control(sqlite3_file *f, int op, void *arg)
{
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int ff_sector_size(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int ff_device_chars(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int ff_shm_map(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **pp)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), pg, pgsz, extend, pp);
}

static int ff_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}

static void ff_shm_barrier(sqlite3_file *f)
{
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int ff_shm_unmap(sqlite3_file *f, int delete_flag)
{
    return REAL(f)->pMethods->xShmUnmap(REAL(f), delete_flag);
}

static int ff_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp)
{
    return REAL(f)->pMethods->xFetch(REAL(f), off, n, pp);
}

static int ff_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

/* One table per method-version the real file offers: SQLite decides what
 * it may call (shared memory for WAL, memory-mapped reads) by iVersion, so
 * the wrapper must not claim more than the file underneath has. */
static sqlite3_io_methods ff_methods[4];

static int ff_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out_flags)
{
    (void)vfs;
    fault_file *ff = (fault_file *)f;
    memset(ff, 0, sizeof *ff);
    ff->real = (sqlite3_file *)(ff + 1);
    int rc = real_vfs->xOpen(real_vfs, name, ff->real, flags, out_flags);
    if (rc != SQLITE_OK || !ff->real->pMethods) {
        f->pMethods = NULL; /* SQLite calls no method, not even xClose */
        return rc;
    }
    if (flags & SQLITE_OPEN_WAL) {
        ff->write_point = "journal.wal_write";
        ff->sync_point = "journal.wal_sync";
    } else if (flags & SQLITE_OPEN_MAIN_DB) {
        ff->write_point = "journal.db_write";
        ff->sync_point = "journal.db_sync";
    }
    int v = ff->real->pMethods->iVersion;
    f->pMethods = &ff_methods[v < 1 ? 1 : v > 3 ? 3 : v];
    return SQLITE_OK;
}

/* Registered before main() when MBQ_FAULT names a journal point, so that no
 * module opening a database needs to know about fault injection. */
__attribute__((constructor)) static void fault_vfs_register(void)
{
    const char *spec = getenv("MBQ_FAULT");
    if (!spec || !strstr(spec, "journal.") || !(real_vfs = sqlite3_vfs_find(NULL)))
        return;
    for (int v = 1; v <= 3; v++) {
        sqlite3_io_methods *m = &ff_methods[v];
        memset(m, 0, sizeof *m);
        m->iVersion = v;
        m->xClose = ff_close;
        m->xRead = ff_read;
        m->xWrite = ff_write;
        m->xTruncate = ff_truncate;
        m->xSync = ff_sync;
        m->xFileSize = ff_file_size;
        m->xLock = ff_lock;
        m->xUnlock = ff_unlock;
        m->xCheckReservedLock = ff_check_reserved;
        m->xFileControl = ff_file_control;
        m->xSectorSize = ff_sector_size;
        m->xDeviceCharacteristics = ff_device_chars;
        if (v >= 2) {
            m->xShmMap = ff_shm_map;
            m->xShmLock = ff_shm_lock;
            m->xShmBarrier = ff_shm_barrier;
            m->xShmUnmap = ff_shm_unmap;
        }
        if (v >= 3) {
            m->xFetch = ff_fetch;
            m->xUnfetch = ff_unfetch;
        }
    }
    fault_vfs = *real_vfs;
    fault_vfs.zName = "mbq-fault";
    fault_vfs.szOsFile = (int)sizeof(fault_file) + real_vfs->szOsFile;
    fault_vfs.xOpen = ff_open;
    fault_vfs.pNext = NULL;
    /* A failed registration leaves SQLite on its own VFS: the journal
     * points are then never reached, which the tests notice. */
    (void)sqlite3_vfs_register(&fault_vfs, 1);
}
