/* The pipe of the streaming pipeline: order, back-pressure, end and abort. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mbq/http.h"
#include "mbq/pipeline.h"
#include "test.h"

#define CAP (64 * 1024)
#define TOTAL (8 * 1024 * 1024)

typedef struct prod {
    mbq_pipe *p;
    size_t written; /* bytes the producer has handed over so far */
    pthread_mutex_t mu;
    bool commit;
} prod;

static void *producer(void *arg)
{
    prod *pr = arg;
    char piece[7000];
    size_t off = 0;
    while (off < TOTAL) {
        size_t n = TOTAL - off < sizeof piece ? TOTAL - off : sizeof piece;
        for (size_t i = 0; i < n; i++)
            piece[i] = (char)((off + i) * 31 % 251);
        mbq_pipe_write(pr->p, piece, n);
        off += n;
        pthread_mutex_lock(&pr->mu);
        pr->written = off;
        pthread_mutex_unlock(&pr->mu);
    }
    mbq_pipe_end(pr->p, pr->commit);
    return NULL;
}

/* A slow reader holds the writer back: the writer is never more than the
 * pipe's capacity (plus the piece it is writing) ahead, the bytes arrive in
 * order, and the end comes after the last byte. */
static void test_backpressure_bounds_the_writer(void)
{
    prod pr = {NULL, 0, PTHREAD_MUTEX_INITIALIZER, true};
    CHECK_INT(mbq_pipe_new(&pr.p, CAP), 0);
    pthread_t th;
    pthread_create(&th, NULL, producer, &pr);
    size_t got = 0, max_ahead = 0;
    bool in_order = true;
    char buf[4096];
    for (;;) {
        size_t n = mbq_pipe_read(pr.p, buf, sizeof buf);
        if (n == 0 || n == MBQ_HTTP_STREAM_ABORT) {
            CHECK(n == 0);
            break;
        }
        for (size_t i = 0; i < n; i++)
            if (buf[i] != (char)((got + i) * 31 % 251))
                in_order = false;
        got += n;
        pthread_mutex_lock(&pr.mu);
        size_t ahead = pr.written > got ? pr.written - got : 0;
        pthread_mutex_unlock(&pr.mu);
        if (ahead > max_ahead)
            max_ahead = ahead;
        if ((got / sizeof buf) % 64 == 0)
            usleep(200); /* slower than the writer */
    }
    pthread_join(th, NULL);
    CHECK(in_order);
    CHECK_INT(got, TOTAL);
    CHECK(mbq_pipe_peak_bytes(pr.p) <= CAP);
    CHECK(mbq_pipe_peak_bytes(pr.p) == CAP); /* it did fill up: the writer waited */
    CHECK(max_ahead <= CAP + 7000);
    mbq_pipe_free(pr.p);
}

/* An abort reaches the reader at once, with data still buffered: the
 * request must never get its remaining bytes nor its end. */
static void test_abort_wins_over_buffered_data(void)
{
    mbq_pipe *p = NULL;
    char buf[16];
    CHECK_INT(mbq_pipe_new(&p, 1024), 0);
    mbq_pipe_write(p, "0123456789", 10);
    CHECK_INT(mbq_pipe_read(p, buf, 4), 4);
    mbq_pipe_end(p, false);
    CHECK(mbq_pipe_read(p, buf, sizeof buf) == MBQ_HTTP_STREAM_ABORT);
    CHECK(mbq_pipe_read(p, buf, sizeof buf) == MBQ_HTTP_STREAM_ABORT);
    mbq_pipe_free(p);
}

/* A committed end hands out the rest first, then 0. */
static void test_commit_drains_then_ends(void)
{
    mbq_pipe *p = NULL;
    char buf[16];
    CHECK_INT(mbq_pipe_new(&p, 8), 0);
    mbq_pipe_write(p, "abcdef", 6);
    CHECK_INT(mbq_pipe_read(p, buf, 4), 4);
    mbq_pipe_write(p, "ghij", 4); /* wraps around the ring */
    mbq_pipe_end(p, true);
    size_t n = 0, k;
    while ((k = mbq_pipe_read(p, buf + n, sizeof buf - n)) > 0 && k != MBQ_HTTP_STREAM_ABORT)
        n += k;
    CHECK_INT(n, 6);
    CHECK(memcmp(buf, "efghij", 6) == 0);
    CHECK_INT(mbq_pipe_read(p, buf, sizeof buf), 0);
    mbq_pipe_free(p);
}

/* When the upload has failed the extract must not stall: writes no longer
 * block, whatever their size. */
static void test_reader_gone_never_blocks_the_writer(void)
{
    mbq_pipe *p = NULL;
    CHECK_INT(mbq_pipe_new(&p, 1024), 0);
    mbq_pipe_reader_gone(p);
    char *big = calloc(1, 1 << 20);
    CHECK(big != NULL);
    for (int i = 0; i < 16 && big; i++)
        CHECK_INT(mbq_pipe_write(p, big, 1 << 20), 0);
    free(big);
    mbq_pipe_end(p, true);
    mbq_pipe_free(p);
}

int main(void)
{
    RUN(test_backpressure_bounds_the_writer);
    RUN(test_abort_wins_over_buffered_data);
    RUN(test_commit_drains_then_ends);
    RUN(test_reader_gone_never_blocks_the_writer);
    return test_summary();
}
