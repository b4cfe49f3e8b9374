/* Terminal progress line (see mbq/progress.h). */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mbq/buf.h"
#include "mbq/error.h"
#include "mbq/progress.h"
#include "mbq/util.h"
#include "mbq/banned.h"

/* Faster redraws only flicker and cost syscalls in the row loop. */
#define PROGRESS_INTERVAL_MS 250

struct mbq_progress {
    pthread_mutex_t lock;
    bool enabled;
    bool drawn;        /* a line is on screen, not yet ended */
    char *label;
    int64_t start_ms;
    int64_t last_draw_ms;
    int64_t rows;
    int64_t bytes;
    int chunks_done, chunks_total; /* chunks_total 0: not a chunked backfill */
    int64_t eta_ms;
};

static int put_bytes(mbq_buf *b, int64_t v)
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
    if (v < 1024)
        return mbq_buf_printf(b, "%lld B", (long long)(v < 0 ? 0 : v));
    double x = (double)v / 1024.0;
    int u = 0;
    while (x >= 1024.0 && u < 3) {
        x /= 1024.0;
        u++;
    }
    return mbq_buf_printf(b, "%.1f %s", x, units[u]);
}

/* Draw the line; caller holds the lock. Write errors are ignored: progress
 * is cosmetic and must never fail a sync. */
static void draw(mbq_progress *p, int64_t now, bool final)
{
    mbq_buf line = MBQ_BUF_INIT;
    int64_t elapsed = now - p->start_ms;
    int64_t rate = elapsed > 0 ? p->rows * 1000 / elapsed : 0;
    /* \r returns to column 0; ESC[K clears what a longer previous line left. */
    if (mbq_buf_puts(&line, "\r\033[K") || mbq_buf_puts(&line, p->label) ||
        mbq_buf_puts(&line, ": ") || mbq_buf_put_count(&line, p->rows < 0 ? 0 : p->rows) ||
        mbq_buf_puts(&line, " rows, ") || put_bytes(&line, p->bytes) ||
        mbq_buf_puts(&line, ", ") || mbq_buf_put_count(&line, rate < 0 ? 0 : rate) ||
        mbq_buf_puts(&line, " rows/s") ||
        (p->chunks_total > 0 &&
         mbq_buf_printf(&line, ", chunk %d/%d", p->chunks_done, p->chunks_total)) ||
        (p->chunks_total > 0 && !final && p->eta_ms >= 0 &&
         mbq_buf_printf(&line, ", ETA %lldm%02llds", (long long)(p->eta_ms / 60000),
                        (long long)(p->eta_ms / 1000 % 60))) ||
        (final && mbq_buf_putc(&line, '\n')))
        goto done;
    ssize_t w = write(STDERR_FILENO, line.ptr, line.len);
    (void)w;
    p->drawn = !final;
    p->last_draw_ms = now;
done:
    mbq_buf_free(&line);
}

int mbq_progress_new(mbq_progress **out, const char *label, mbq_progress_mode mode)
{
    int rc = MBQ_ENOMEM;
    mbq_progress *p = mbq_calloc(1, sizeof *p);
    *out = NULL;
    if (!p)
        goto done;
    if (!(p->label = mbq_strdup(label ? label : "")))
        goto done;
    if (pthread_mutex_init(&p->lock, NULL) != 0) {
        rc = mbq_error_set(MBQ_ERR, "cannot create progress lock");
        goto done;
    }
    p->enabled = mode == MBQ_PROGRESS_ON || (mode == MBQ_PROGRESS_AUTO && isatty(STDERR_FILENO));
    p->start_ms = mbq_monotonic_ms();
    p->last_draw_ms = p->start_ms;
    *out = p;
    p = NULL;
    rc = 0;
done:
    if (p) {
        free(p->label);
        free(p);
    }
    return rc;
}

void mbq_progress_update(mbq_progress *p, int64_t rows, int64_t bytes)
{
    if (!p || !p->enabled)
        return;
    pthread_mutex_lock(&p->lock);
    p->rows = rows;
    p->bytes = bytes;
    int64_t now = mbq_monotonic_ms();
    if (now - p->last_draw_ms >= PROGRESS_INTERVAL_MS)
        draw(p, now, false);
    pthread_mutex_unlock(&p->lock);
}

void mbq_progress_chunks(mbq_progress *p, int done, int total, int64_t eta_ms)
{
    if (!p || !p->enabled)
        return;
    pthread_mutex_lock(&p->lock);
    p->chunks_done = done;
    p->chunks_total = total;
    p->eta_ms = eta_ms;
    pthread_mutex_unlock(&p->lock);
}

static void destroy(mbq_progress *p)
{
    pthread_mutex_destroy(&p->lock);
    free(p->label);
    free(p);
}

void mbq_progress_finish(mbq_progress *p)
{
    if (!p)
        return;
    if (p->enabled) {
        pthread_mutex_lock(&p->lock);
        draw(p, mbq_monotonic_ms(), true);
        pthread_mutex_unlock(&p->lock);
    }
    destroy(p);
}

void mbq_progress_free(mbq_progress *p)
{
    if (!p)
        return;
    if (p->enabled && p->drawn) {
        ssize_t w = write(STDERR_FILENO, "\r\033[K", 4);
        (void)w;
    }
    destroy(p);
}
