/* Unit tests for buf, error, log masking, util and quoting. */
#include <stdint.h>
#include <unistd.h>

#include "mbq/buf.h"
#include "mbq/error.h"
#include "mbq/log.h"
#include "mbq/util.h"
#include "test.h"

static void test_buf_grows_and_formats(void)
{
    mbq_buf b = MBQ_BUF_INIT;
    CHECK_STR(mbq_buf_cstr(&b), "");
    for (int i = 0; i < 1000; i++)
        CHECK_INT(mbq_buf_printf(&b, "%d,", i), 0);
    CHECK(b.len > 3000);
    CHECK(strncmp(b.ptr, "0,1,2,", 6) == 0);
    char *s = mbq_buf_detach(&b);
    CHECK(b.ptr == NULL && b.len == 0);
    free(s);
}

static void test_mysql_ident_doubles_backticks(void)
{
    mbq_buf b = MBQ_BUF_INIT;
    mbq_buf_quote_mysql_ident(&b, "we`ird; DROP");
    CHECK_STR(b.ptr, "`we``ird; DROP`");
    mbq_buf_free(&b);
}

static void test_bq_ident_escapes_with_backslash(void)
{
    mbq_buf b = MBQ_BUF_INIT;
    mbq_buf_quote_bq_ident(&b, "a`b\\c'd\n");
    CHECK_STR(b.ptr, "`a\\`b\\\\c\\'d\\n`");
    mbq_buf_clear(&b);
    mbq_buf_quote_bq_string(&b, "it's");
    CHECK_STR(b.ptr, "'it\\'s'");
    mbq_buf_free(&b);
}

static void test_json_string_escapes_and_repairs_utf8(void)
{
    mbq_buf b = MBQ_BUF_INIT;
    const char in[] = "a\"b\\c\n\x01 \xf0\x9f\x98\x80 \xff\xfe end";
    mbq_buf_json_string(&b, in, sizeof in - 1);
    CHECK_STR(b.ptr, "\"a\\\"b\\\\c\\n\\u0001 \xf0\x9f\x98\x80 \xef\xbf\xbd\xef\xbf\xbd end\"");
    mbq_buf_clear(&b);
    /* overlong encoding of '/' and a lone surrogate are invalid */
    mbq_buf_json_string(&b, "\xc0\xaf\xed\xa0\x80", 5);
    CHECK_STR(b.ptr, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
    mbq_buf_clear(&b);
    mbq_buf_json_string(&b, "a\0b", 3);
    CHECK_STR(b.ptr, "\"a\\u0000b\"");
    mbq_buf_free(&b);
}

static const char *star_for_x(unsigned char c)
{
    return c == 'x' ? "*" : NULL;
}

/* mbq_buf_put_utf8: invalid bytes -> U+FFFD, ASCII through the substitution,
 * valid multi-byte sequences copied (an 'x' inside one is not ASCII). */
static void test_put_utf8_repairs_and_substitutes(void)
{
    mbq_buf b = MBQ_BUF_INIT;
    CHECK_INT(mbq_buf_put_utf8(&b, "axb \xc3\xa9 \xff\xc0\xaf \xf0\x9f\x98\x80x", star_for_x), 0);
    CHECK_STR(b.ptr, "a*b \xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd \xf0\x9f\x98\x80*");
    mbq_buf_free(&b);
}

static void test_error_messages_mask_secrets(void)
{
    mbq_secret_register("hunter2-pass");
    mbq_error_set(MBQ_EAUTH, "login failed with 'hunter2-pass' for %s", "bob");
    CHECK_STR(mbq_error_last(), "login failed with '***' for bob");
    CHECK_INT(mbq_error_code(), MBQ_EAUTH);
    mbq_error_wrap(MBQ_EAUTH, "table '%s': ", "t");
    CHECK_STR(mbq_error_last(), "table 't': login failed with '***' for bob");
    mbq_secret_register("ab"); /* too short to mask safely: ignored */
    char s[] = "abc hunter2-pass hunter2-pass";
    CHECK_STR(mbq_secret_mask(s), "abc *** ***");
    mbq_secret_clear();
    mbq_error_clear();
    CHECK_STR(mbq_error_last(), "");
}

static void test_parse_duration(void)
{
    int64_t ms = 0;
    CHECK_INT(mbq_parse_duration_ms(&ms, "5m"), 0);
    CHECK_INT(ms, 300000);
    CHECK_INT(mbq_parse_duration_ms(&ms, "250ms"), 0);
    CHECK_INT(ms, 250);
    CHECK_INT(mbq_parse_duration_ms(&ms, "30"), 0);
    CHECK_INT(ms, 30000);
    CHECK_INT(mbq_parse_duration_ms(&ms, "5 minutes"), MBQ_ECONFIG);
    CHECK_CONTAINS(mbq_error_last(), "invalid duration '5 minutes'");
    CHECK_INT(mbq_parse_duration_ms(&ms, "-1s"), MBQ_ECONFIG);
}

static void test_edit_distance(void)
{
    CHECK_INT(mbq_edit_distance("tabels", "tables"), 2);
    CHECK_INT(mbq_edit_distance("", "abc"), 3);
    CHECK_INT(mbq_edit_distance("same", "same"), 0);
}

static void test_atomic_write_replaces_file(void)
{
    char dir[] = "/tmp/mbq-test-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    mbq_buf path = MBQ_BUF_INIT, got = MBQ_BUF_INIT;
    mbq_buf_printf(&path, "%s/sub/dir/f.txt", dir);
    mbq_buf dirpath = MBQ_BUF_INIT;
    mbq_buf_printf(&dirpath, "%s/sub/dir", dir);
    CHECK_INT(mbq_mkdir_p(dirpath.ptr), 0);
    CHECK_INT(mbq_file_write_atomic(path.ptr, "one", 3), 0);
    CHECK_INT(mbq_file_write_atomic(path.ptr, "two!", 4), 0);
    CHECK_INT(mbq_file_read_all(&got, path.ptr), 0);
    CHECK_STR(got.ptr, "two!");
    CHECK_INT(mbq_file_read_all(&got, "/nonexistent/x"), MBQ_ENOTFOUND);
    CHECK_CONTAINS(mbq_error_last(), "cannot open '/nonexistent/x'");
    unlink(path.ptr);
    mbq_buf_free(&path);
    mbq_buf_free(&got);
    mbq_buf_free(&dirpath);
}

static void test_time_iso_is_utc(void)
{
    mbq_buf b = MBQ_BUF_INIT;
    mbq_buf_time_iso(&b, 1764120123456LL);
    CHECK_STR(b.ptr, "2025-11-26T01:22:03.456Z");
    mbq_buf_free(&b);
}

int main(void)
{
    RUN(test_buf_grows_and_formats);
    RUN(test_mysql_ident_doubles_backticks);
    RUN(test_bq_ident_escapes_with_backslash);
    RUN(test_json_string_escapes_and_repairs_utf8);
    RUN(test_put_utf8_repairs_and_substitutes);
    RUN(test_error_messages_mask_secrets);
    RUN(test_parse_duration);
    RUN(test_edit_distance);
    RUN(test_atomic_write_replaces_file);
    RUN(test_time_iso_is_utc);
    return test_summary();
}
