/* Version, build commit and run-time library versions (see mbq/version.h). */
#include <curl/curl.h>
#include <json-c/json_c_version.h>
#include <mysql.h>
#include <openssl/crypto.h>
#include <sqlite3.h>
#include <stddef.h>
#include <yaml.h>
#include <zlib.h>

#include "mbq/buf.h"
#include "mbq/error.h"
#include "mbq/version.h"
#include "mbq/banned.h"

#ifndef MBQ_GIT_COMMIT
#define MBQ_GIT_COMMIT "unknown"
#endif

const char *mbq_version(void)
{
    return MBQ_VERSION;
}

const char *mbq_version_commit(void)
{
    return MBQ_GIT_COMMIT[0] ? MBQ_GIT_COMMIT : "unknown";
}

static const char *or_unknown(const char *s)
{
    return s && *s ? s : "unknown";
}

size_t mbq_library_versions(mbq_library_version *out, size_t max)
{
    /* The versions of the libraries loaded now, not of the headers built
     * against: after a distribution upgrade these are what runs. */
    const curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);
    const mbq_library_version all[] = {
        {"libmariadb", or_unknown(mysql_get_client_info())},
        {"libcurl", or_unknown(cv ? cv->version : NULL)},
        {"sqlite", or_unknown(sqlite3_libversion())},
        {"json-c", or_unknown(json_c_version())},
        {"libyaml", or_unknown(yaml_get_version_string())},
        {"openssl", or_unknown(OpenSSL_version(OPENSSL_VERSION))},
        {"zlib", or_unknown(zlibVersion())},
    };
    size_t n = sizeof all / sizeof all[0];
    for (size_t i = 0; i < n && i < max; i++)
        out[i] = all[i];
    return n;
}

int mbq_version_text(mbq_buf *out, const char *prog)
{
    mbq_library_version libs[16];
    size_t n = mbq_library_versions(libs, sizeof libs / sizeof libs[0]);
    if (mbq_buf_printf(out, "%s %s (commit %s)\n", prog, mbq_version(), mbq_version_commit()))
        return MBQ_ENOMEM;
    for (size_t i = 0; i < n && i < sizeof libs / sizeof libs[0]; i++)
        if (mbq_buf_printf(out, "  %-10s %s\n", libs[i].name, libs[i].version))
            return MBQ_ENOMEM;
    return 0;
}
