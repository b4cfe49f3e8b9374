/* A minimal test harness: each test file is one program with several named
 * cases. It prints one line per case and closes with "N passed, N failed".
 *
 *   static void test_quotes_backticks(void) { CHECK_STR(x, "`a``b`"); }
 *   int main(void) { RUN(test_quotes_backticks); return test_summary(); }
 *
 * Integration tests call test_require_env("BIGQUERY_EMULATOR_HOST"): outside
 * the harness it exits 77 (ctest's SKIP_RETURN_CODE) with a clear message,
 * unless MBQ_REQUIRE_SERVICES=1, when a missing service is a failure. */
#ifndef MBQ_TEST_H
#define MBQ_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mbq/buf.h"
#include "mbq/error.h"
#include "mbq/util.h"

static int test_failed_checks;
static int test_cases_passed;
static int test_cases_failed;
static const char *test_current;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "  %s:%d: %s: CHECK failed: %s\n", __FILE__, __LINE__, test_current,   \
                    #cond);                                                                        \
            test_failed_checks++;                                                                  \
        }                                                                                          \
    } while (0)

#define CHECK_INT(got, want)                                                                       \
    do {                                                                                           \
        long long g_ = (long long)(got), w_ = (long long)(want);                                   \
        if (g_ != w_) {                                                                            \
            fprintf(stderr, "  %s:%d: %s: %s == %lld, expected %lld\n", __FILE__, __LINE__,        \
                    test_current, #got, g_, w_);                                                   \
            test_failed_checks++;                                                                  \
        }                                                                                          \
    } while (0)

#define CHECK_STR(got, want)                                                                       \
    do {                                                                                           \
        const char *g_ = (got), *w_ = (want);                                                      \
        if (!g_ || !w_ || strcmp(g_, w_) != 0) {                                                   \
            fprintf(stderr, "  %s:%d: %s: %s == \"%s\", expected \"%s\"\n", __FILE__, __LINE__,   \
                    test_current, #got, g_ ? g_ : "(null)", w_ ? w_ : "(null)");                   \
            test_failed_checks++;                                                                  \
        }                                                                                          \
    } while (0)

#define CHECK_CONTAINS(hay, needle)                                                                \
    do {                                                                                           \
        const char *h_ = (hay), *n_ = (needle);                                                    \
        if (!h_ || !strstr(h_, n_)) {                                                              \
            fprintf(stderr, "  %s:%d: %s: \"%s\" does not contain \"%s\"\n", __FILE__, __LINE__,   \
                    test_current, h_ ? h_ : "(null)", n_);                                         \
            test_failed_checks++;                                                                  \
        }                                                                                          \
    } while (0)

#define RUN(fn)                                                                                    \
    do {                                                                                           \
        int before_ = test_failed_checks;                                                          \
        test_current = #fn;                                                                        \
        fn();                                                                                      \
        if (test_failed_checks == before_) {                                                       \
            test_cases_passed++;                                                                   \
            printf("ok   %s\n", #fn);                                                              \
        } else {                                                                                   \
            test_cases_failed++;                                                                   \
            printf("FAIL %s\n", #fn);                                                              \
        }                                                                                          \
        fflush(stdout);                                                                            \
    } while (0)

static inline int test_summary(void)
{
    printf("%d passed, %d failed\n", test_cases_passed, test_cases_failed);
    /* A program that ran no case proved nothing: that is a failure too. */
    if (test_cases_passed + test_cases_failed == 0)
        printf("FAIL: no test case ran\n");
    return test_cases_failed || test_cases_passed == 0 ? 1 : 0;
}

/* Remove a test's temporary directory and everything in it (best effort:
 * a leftover in /tmp is reported, not fatal). */
static inline void test_remove_tree(const char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

/* The port a server started by a test writes to `path` once it listens
 * (the stand-ins and tests/standins/h2server do); 0 when none appears
 * within 10 s. */
static inline int test_wait_port_file(const char *path)
{
    int port = 0;
    for (int i = 0; i < 200 && port <= 0; i++) {
        mbq_buf b = MBQ_BUF_INIT;
        if (mbq_file_read_all(&b, path) == 0)
            port = atoi(mbq_buf_cstr(&b));
        mbq_error_clear();
        mbq_buf_free(&b);
        if (port <= 0)
            mbq_sleep_ms(50);
    }
    return port > 0 ? port : 0;
}

/* Returns the variable's value, or exits 77 (skip) / 1 (fail under CI). */
static inline const char *test_require_env(const char *name)
{
    const char *v = getenv(name);
    if (v && *v)
        return v;
    const char *req = getenv("MBQ_REQUIRE_SERVICES");
    if (req && strcmp(req, "1") == 0) {
        fprintf(stderr, "FAIL: %s is not set but MBQ_REQUIRE_SERVICES=1 (the harness did not "
                        "start the services)\n", name);
        exit(1);
    }
    fprintf(stderr, "SKIP: %s is not set: this integration test runs under the harness "
                    "(ctest in a build configured by the README's test command)\n", name);
    exit(77);
}

#endif
