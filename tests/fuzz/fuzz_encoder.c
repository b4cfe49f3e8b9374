/* libFuzzer harness for the row encoder (issue 8): every value encoding of
 * mbq_typemap_encode and mbq_buf_json_string. Whatever bytes the server
 * sends, the NDJSON field written must be valid JSON (checked with json-c,
 * which BigQuery's parser agrees with on what is JSON), a refused value must
 * come with a message, and nothing may crash, leak or trip a sanitizer.
 * A JSON column's document is written raw (checked the same way, up to
 * 500 levels deep), or as a string when it is not JSON.
 * The first input byte picks the encoding. Built with -DMBQ_FUZZ=ON (clang). */
#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mbq/buf.h"
#include "mbq/error.h"
#include "mbq/typemap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void must_be_json(const mbq_buf *b)
{
    /* Inside a row object, as the encoder's output is used. */
    mbq_buf row = MBQ_BUF_INIT;
    if (mbq_buf_append(&row, "{\"c\":", 5) < 0 || mbq_buf_append(&row, b->ptr, b->len) < 0 ||
        mbq_buf_append(&row, "}", 1) < 0)
        abort();
    /* No newline may reach the line (it would end the NDJSON row). */
    if (memchr(b->ptr, '\n', b->len))
        abort();
    /* JSON documents may nest 500 levels (BigQuery's limit), json-c's
     * default stops at 32. */
    json_tokener *tok = json_tokener_new_ex(600);
    /* Strict RFC 8259 (no NaN, no single quotes) and valid UTF-8 only. */
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    json_object *o = json_tokener_parse_ex(tok, row.ptr, (int)row.len);
    enum json_tokener_error err = json_tokener_get_error(tok);
    /* The whole field must be consumed: nothing after the value. */
    if (!o || err != json_tokener_success || json_tokener_get_parse_end(tok) != row.len)
        abort();
    json_object_put(o);
    json_tokener_free(tok);
    mbq_buf_free(&row);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *val = (const char *)data + 1;
    size_t len = size - 1;
    int n_enc = MBQ_ENC_WKT + 1;
    int which = data[0] % (n_enc + 1);
    mbq_buf b = MBQ_BUF_INIT;
    if (which == n_enc) {
        if (mbq_buf_json_string(&b, val, len) < 0)
            abort();
        must_be_json(&b);
    } else {
        int rc = mbq_typemap_encode(&b, (mbq_value_enc)which, val, len);
        if (rc == 0)
            must_be_json(&b);
        else if (rc == 2) {
            /* A JSON column's text that is not JSON: a JSON string. */
            if (which != MBQ_ENC_JSON || b.len < 2 || b.ptr[0] != '"')
                abort();
            must_be_json(&b);
        } else if (rc == 1) {
            if (b.len != 0) /* NULL: nothing appended */
                abort();
        } else if (rc != MBQ_EDATA || !*mbq_error_last())
            abort();
    }
    mbq_buf_free(&b);
    mbq_error_clear();
    return 0;
}
