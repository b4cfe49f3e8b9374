/* What `mbq --version` prints and the `mbq_build_info` metric carries: the
 * version, the git commit the build was configured from, and the versions
 * of the shared libraries the process runs with (read at run time, so an
 * upgraded libcurl shows here without a rebuild). */
#ifndef MBQ_VERSION_H
#define MBQ_VERSION_H

#include "mbq/buf.h"

/* mbq's version ("0.1.0"). */
const char *mbq_version(void);

/* The git commit (short hash) at configure time, "unknown" outside a git
 * checkout (a source tarball). A "-dirty" suffix marks uncommitted changes. */
const char *mbq_version_commit(void);

/* One library's name and run-time version. */
typedef struct mbq_library_version {
    const char *name;
    const char *version; /* static storage of the library; never NULL */
} mbq_library_version;

/* The run-time versions of every library mbq links (libmariadb, libcurl,
 * sqlite, json-c, libyaml, OpenSSL, zlib). Fills at most `max` entries of
 * `out` and returns how many the full list has. */
size_t mbq_library_versions(mbq_library_version *out, size_t max);

/* Append the `--version` text for program `prog`: a first line
 * "PROG VERSION (commit HASH)", then one line per library. 0 or MBQ_ENOMEM. */
int mbq_version_text(mbq_buf *out, const char *prog);

#endif
