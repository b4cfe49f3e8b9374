/* libFuzzer harness for the parsing of BigQuery's JSON responses (issue 8):
 * error bodies, table schemas, jobs and tables.get answers. Any input must
 * give a result or an error with a message, never a crash, a leak or a
 * sanitizer report. The first input byte picks the parser, so one corpus
 * covers the four. Built with -DMBQ_FUZZ=ON (clang). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mbq/bq.h"
#include "mbq/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *json = (const char *)data + 1;
    size_t len = size - 1;
    int rc = 0;
    switch (data[0] % 4) {
    case 0: {
        mbq_bq_error_info info;
        memset(&info, 0x5a, sizeof info); /* the parser must set every field */
        rc = mbq_bq_parse_error(&info, json, len);
        if (rc == 0)
            mbq_bq_error_info_free(&info);
        else if (rc != MBQ_ENOMEM)
            abort();
        break;
    }
    case 1: {
        mbq_bq_schema *s = NULL;
        rc = mbq_bq_schema_from_json(&s, json, len);
        if ((rc == 0) != (s != NULL))
            abort();
        if (s) {
            /* What was parsed must serialize again. */
            mbq_buf b = MBQ_BUF_INIT;
            if (mbq_bq_schema_to_json(&b, s) < 0 && mbq_error_last()[0] == '\0')
                abort();
            mbq_buf_free(&b);
        }
        mbq_bq_schema_free(s);
        break;
    }
    case 2: {
        mbq_bq_job *j = NULL;
        rc = mbq_bq_job_from_json(&j, json, len);
        if ((rc == 0) != (j != NULL))
            abort();
        mbq_bq_job_free(j);
        break;
    }
    default: {
        mbq_bq_table_info *t = NULL;
        rc = mbq_bq_table_info_from_json(&t, json, len);
        if ((rc == 0) != (t != NULL))
            abort();
        mbq_bq_table_info_free(t);
        break;
    }
    }
    if (rc < 0 && !*mbq_error_last())
        abort(); /* every error says what failed */
    mbq_error_clear();
    return 0;
}
