/* Executable-sourced subject tokens for external_account credentials
 * (google-auth's pluggable.py, "Using executable-sourced credentials with
 * OIDC and SAML" in Google's workload identity federation docs).
 *
 * Running a program named in a file is a risk Google makes the user accept
 * explicitly: nothing runs unless GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1.
 * The command (split at white space, no shell) gets
 * GOOGLE_EXTERNAL_ACCOUNT_AUDIENCE, _TOKEN_TYPE, _INTERACTIVE=0 and
 * _OUTPUT_FILE, must finish within timeout_millis (default 30 s) and print
 *   {"version": 1, "success": true, "token_type": "...",
 *    "id_token" | "saml_response": "...", "expiration_time": unix-seconds}
 * or {"success": false, "code": "...", "message": "..."}. A still valid
 * answer in output_file is used without running the command. */
#include <errno.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cred_internal.h"
#include "mbq/error.h"
#include "mbq/util.h"
#include "mbq/banned.h"

int cred_executable_subject(mbq_buf *out, mbq_cred *c, json_object *exe, const char *audience,
                            const char *token_type, const char *path);

/* The token of a successful, unexpired answer; MBQ_ENOTFOUND when it has
 * expired; MBQ_EAUTH otherwise (a refusal quotes the program's code and
 * message). */
static int parse_answer(mbq_buf *out, const char *text, size_t len, const char *path)
{
    int rc = 0;
    json_object *root = cred_json_parse(text, len), *v;
    if (!root || !json_object_is_type(root, json_type_object)) {
        rc = mbq_error_set(MBQ_EAUTH, "the executable of '%s' printed no JSON object", path);
        goto done;
    }
    if (!json_object_object_get_ex(root, "success", &v) || !json_object_get_boolean(v)) {
        const char *code = cred_json_str(root, "code"), *msg = cred_json_str(root, "message");
        rc = mbq_error_set(MBQ_EAUTH, "the executable of '%s' failed: %s: %s", path,
                           code ? code : "no code", msg ? msg : "no message");
        goto done;
    }
    if (json_object_object_get_ex(root, "expiration_time", &v) &&
        json_object_get_int64(v) * 1000 <= mbq_now_ms()) {
        rc = MBQ_ENOTFOUND; /* expired: run it again */
        goto done;
    }
    const char *t = cred_json_str(root, "id_token");
    if (!t)
        t = cred_json_str(root, "saml_response");
    if (!t || !*t) {
        rc = mbq_error_set(MBQ_EAUTH, "the executable of '%s' answered without an id_token or "
                                      "saml_response",
                           path);
        goto done;
    }
    cred_secret(t);
    rc = mbq_buf_puts(out, t);
done:
    json_object_put(root);
    return rc;
}

static void child(char *const *argv, int wfd, const char *audience, const char *token_type,
                  const char *output_file)
{
    dup2(wfd, STDOUT_FILENO);
    setenv("GOOGLE_EXTERNAL_ACCOUNT_AUDIENCE", audience, 1);
    setenv("GOOGLE_EXTERNAL_ACCOUNT_TOKEN_TYPE", token_type, 1);
    setenv("GOOGLE_EXTERNAL_ACCOUNT_INTERACTIVE", "0", 1);
    if (output_file)
        setenv("GOOGLE_EXTERNAL_ACCOUNT_OUTPUT_FILE", output_file, 1);
    execvp(argv[0], argv);
    _exit(127);
}

/* Run argv, collecting stdout for at most timeout_ms. */
static int run(mbq_buf *out, int *status, char *const *argv, int64_t timeout_ms,
               const char *audience, const char *token_type, const char *output_file,
               const char *path)
{
    int fds[2];
    if (pipe(fds) < 0)
        return mbq_error_set(MBQ_EAUTH, "cannot run the executable of '%s': %s", path,
                             strerror(errno));
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return mbq_error_set(MBQ_EAUTH, "cannot run the executable of '%s': %s", path,
                             strerror(errno));
    }
    if (pid == 0) {
        close(fds[0]);
        child(argv, fds[1], audience, token_type, output_file);
    }
    close(fds[1]);
    int rc = 0;
    int64_t deadline = mbq_monotonic_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - mbq_monotonic_ms();
        struct pollfd p = {fds[0], POLLIN, 0};
        if (left <= 0) {
            rc = mbq_error_set(MBQ_ETIMEOUT, "the executable of '%s' did not finish within %lld ms",
                               path, (long long)timeout_ms);
            kill(pid, SIGKILL);
            break;
        }
        int n = poll(&p, 1, (int)(left > 1000 ? 1000 : left));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            continue;
        char buf[4096];
        ssize_t r = read(fds[0], buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        if (out->len + (size_t)r > 1024 * 1024 || mbq_buf_append(out, buf, (size_t)r) < 0) {
            rc = mbq_error_set(MBQ_EAUTH, "the executable of '%s' printed too much", path);
            kill(pid, SIGKILL);
            break;
        }
    }
    close(fds[0]);
    while (waitpid(pid, status, 0) < 0 && errno == EINTR)
        ;
    return rc;
}

int cred_executable_subject(mbq_buf *out, mbq_cred *c, json_object *exe, const char *audience,
                            const char *token_type, const char *path)
{
    int rc = 0, status = 0;
    mbq_buf cached = MBQ_BUF_INIT, printed = MBQ_BUF_INIT;
    char *cmd = NULL, **argv = NULL;
    json_object *v;
    (void)c;
    const char *allow = getenv("GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES");
    if (!allow || strcmp(allow, "1") != 0)
        return mbq_error_set(MBQ_EAUTH, "external_account credentials '%s' name an executable: "
                                        "set GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1 to allow "
                                        "running it",
                             path);
    const char *command = cred_json_str(exe, "command");
    const char *output_file = cred_json_str(exe, "output_file");
    int64_t timeout_ms = 30000;
    if (json_object_object_get_ex(exe, "timeout_millis", &v))
        timeout_ms = json_object_get_int64(v);
    if (!command || !*command)
        return mbq_error_set(MBQ_EAUTH, "external_account credentials '%s': executable has no "
                                        "\"command\"",
                             path);
    if (timeout_ms < 5000 || timeout_ms > 120000)
        timeout_ms = 30000;
    if (output_file && access(output_file, R_OK) == 0 &&
        cred_read_file(&cached, output_file, "executable output file", false) == 0) {
        rc = parse_answer(out, cached.ptr ? cached.ptr : "", cached.len, path);
        if (rc != MBQ_ENOTFOUND)
            goto done;
        mbq_error_clear();
    }
    /* Split at white space, as google-auth does (no shell, no quoting). */
    size_t n = 0;
    if (!(cmd = mbq_strdup(command)) || !(argv = mbq_calloc(strlen(command) / 2 + 2,
                                                            sizeof(char *)))) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    char *save = NULL;
    for (char *t = strtok_r(cmd, " \t\n", &save); t; t = strtok_r(NULL, " \t\n", &save))
        argv[n++] = t;
    if ((rc = run(&printed, &status, argv, timeout_ms, audience, token_type, output_file,
                  path)) < 0)
        goto done;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        rc = mbq_error_set(MBQ_EAUTH, "the executable of '%s' exited with status %d", path,
                           WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        goto done;
    }
    rc = parse_answer(out, printed.ptr ? printed.ptr : "", printed.len, path);
    if (rc == MBQ_ENOTFOUND)
        rc = mbq_error_set(MBQ_EAUTH, "the executable of '%s' answered with an expired token",
                           path);
done:
    /* They hold the subject token (masked, but no copy should linger). */
    if (cached.ptr)
        OPENSSL_cleanse(cached.ptr, cached.len);
    if (printed.ptr)
        OPENSSL_cleanse(printed.ptr, printed.len);
    mbq_buf_free(&cached);
    mbq_buf_free(&printed);
    free(cmd);
    free(argv);
    return rc;
}
