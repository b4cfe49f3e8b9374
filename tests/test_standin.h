/* Running a local HTTP stand-in (a script of tests/standins) from a C test: start
 * it, drive its /_control knobs, stop it. Shared by the stand-in tests of
 * the BigQuery client and of the credentials. Include after test.h. */
#ifndef MBQ_TEST_STANDIN_H
#define MBQ_TEST_STANDIN_H

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mbq/http.h"
#include "mbq/util.h"

/* Start `python3 SCRIPT PORT_FILE ARGS...` (args: NULL-terminated, at most
 * 6) where SCRIPT is tests/standins/<name> under $MBQ_SOURCE_DIR, wait for
 * the port it writes to `port_file`, and put "http://127.0.0.1:PORT" in
 * base. Returns the process id, or -1 (message on stderr) when it did not
 * start. */
static inline pid_t test_standin_start(char *base, size_t n, const char *name,
                                       const char *port_file, const char *const *args)
{
    const char *src = getenv("MBQ_SOURCE_DIR");
    char script[512];
    snprintf(script, sizeof script, "%s/tests/standins/%s", src ? src : ".", name);
    const char *argv[10] = {"python3", script, port_file};
    size_t k = 3;
    for (size_t i = 0; args && args[i] && k < 9; i++)
        argv[k++] = args[i];
    argv[k] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        execvp("python3", (char *const *)argv);
        _exit(127);
    }
    int port = pid > 0 ? test_wait_port_file(port_file) : 0;
    if (!port) {
        fprintf(stderr, "the stand-in %s did not start\n", name);
        if (pid > 0) {
            kill(pid, SIGTERM);
            waitpid(pid, NULL, 0);
        }
        return -1;
    }
    snprintf(base, n, "http://127.0.0.1:%d", port);
    return pid;
}

/* POST `json` to the stand-in's /_control (merged into its knobs). */
static inline void test_standin_control(mbq_http *h, const char *base, const char *json)
{
    mbq_buf url = MBQ_BUF_INIT;
    mbq_http_response resp = MBQ_HTTP_RESPONSE_INIT;
    mbq_buf_printf(&url, "%s/_control", base);
    mbq_http_body body = {json, strlen(json), NULL, 0, 0, NULL, 0, false, NULL, NULL};
    mbq_http_request req = {"POST", url.ptr, NULL, &body};
    CHECK(mbq_http_do(h, &resp, &req) == 0 && resp.status == 200);
    mbq_http_response_free(&resp);
    mbq_buf_free(&url);
}

static inline void test_standin_stop(pid_t pid)
{
    if (pid > 0) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
    }
}

#endif
