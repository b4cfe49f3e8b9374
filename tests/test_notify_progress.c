/* The progress line: drawn on a terminal (forced here) at most every 250 ms
 * with \r, ended by finish; nothing at all when stderr is not a terminal. */
#include "test.h"

#include <fcntl.h>
#include <unistd.h>

#include "mbq/buf.h"
#include "mbq/progress.h"
#include "mbq/util.h"

/* Run `fn` with stderr sent to a temp file; its content goes to *out. */
static void capture_stderr(mbq_buf *out, void (*fn)(void))
{
    char path[] = "/tmp/mbq-progress-XXXXXX";
    int fd = mkstemp(path);
    int saved = dup(STDERR_FILENO);
    CHECK(fd >= 0 && saved >= 0);
    dup2(fd, STDERR_FILENO);
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fd);
    CHECK_INT(mbq_file_read_all(out, path), 0);
    unlink(path);
}

static size_t count(const char *s, const char *needle)
{
    size_t n = 0;
    for (const char *p = s; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

static void forced_run(void)
{
    mbq_progress *p = NULL;
    CHECK_INT(mbq_progress_new(&p, "orders extract", MBQ_PROGRESS_ON), 0);
    mbq_progress_update(p, 10, 100); /* too soon: not drawn */
    mbq_sleep_ms(300);
    mbq_progress_update(p, 120000, 47290000);
    for (int i = 0; i < 50; i++) /* a burst within 250 ms: not drawn */
        mbq_progress_update(p, 120001 + i, 47290000);
    mbq_progress_finish(p);
}

static void test_forced_draws_throttled_and_finishes_line(void)
{
    mbq_buf out = MBQ_BUF_INIT;
    capture_stderr(&out, forced_run);
    const char *s = mbq_buf_cstr(&out);
    CHECK_INT(count(s, "\r\033[K"), 2); /* one throttled draw + the final one */
    CHECK_CONTAINS(s, "\r\033[Korders extract: 120,000 rows, 45.1 MiB, ");
    CHECK_CONTAINS(s, "\r\033[Korders extract: 120,050 rows, 45.1 MiB, ");
    CHECK_CONTAINS(s, " rows/s");
    CHECK(out.len > 0 && s[out.len - 1] == '\n');
    CHECK_INT(count(s, "\n"), 1);
    mbq_buf_free(&out);
}

static void auto_run(void)
{
    mbq_progress *p = NULL;
    CHECK_INT(mbq_progress_new(&p, "orders upload", MBQ_PROGRESS_AUTO), 0);
    mbq_sleep_ms(300);
    mbq_progress_update(p, 5, 5);
    mbq_progress_finish(p);
    CHECK_INT(mbq_progress_new(&p, "orders upload", MBQ_PROGRESS_OFF), 0);
    mbq_sleep_ms(260);
    mbq_progress_update(p, 5, 5);
    mbq_progress_finish(p);
    mbq_progress_update(NULL, 1, 1);
    mbq_progress_finish(NULL);
    mbq_progress_free(NULL);
}

/* stderr is a file here, as under cron: not a byte of progress. */
static void test_off_terminal_prints_nothing(void)
{
    mbq_buf out = MBQ_BUF_INIT;
    capture_stderr(&out, auto_run);
    CHECK_INT(out.len, 0);
    mbq_buf_free(&out);
}

int main(void)
{
    RUN(test_forced_draws_throttled_and_finishes_line);
    RUN(test_off_terminal_prints_nothing);
    return test_summary();
}
