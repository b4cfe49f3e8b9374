/* The splitter (mbq/split.h): a staged file larger than one load job may
 * take goes to BigQuery in parts that each stay within the bound, cut at
 * row ends, in order, with the rows and checksums the journal records, for
 * gzip and plain NDJSON; a file that is not what the journal says is
 * refused. */
#include <openssl/evp.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "mbq/journal.h"
#include "mbq/split.h"
#include "test.h"

static char dir[] = "/tmp/mbq-test-split-XXXXXX";

static void sha_hex(char *out, const char *data, size_t len)
{
    unsigned char md[32];
    unsigned n = 0;
    EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
    memcpy(out, "sha256:", 8);
    for (unsigned i = 0; i < n; i++)
        snprintf(out + 7 + 2 * i, 3, "%02x", md[i]);
}

/* n rows of varied length (poorly compressible: a pseudo-random tail). */
static void make_rows(mbq_buf *b, int n)
{
    uint64_t x = 42;
    for (int i = 0; i < n; i++) {
        mbq_buf_printf(b, "{\"id\":%d,\"v\":\"", i);
        int len = 20 + (int)(x % 200);
        for (int k = 0; k < len; k++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            mbq_buf_putc(b, (char)('a' + (x >> 59) % 26));
        }
        mbq_buf_puts(b, "\"}\n");
    }
}

static void write_file(const char *path, const mbq_buf *data, bool gzip)
{
    if (gzip) {
        gzFile f = gzopen(path, "wb1");
        gzwrite(f, data->ptr, (unsigned)data->len);
        gzclose(f);
    } else {
        FILE *f = fopen(path, "wb");
        fwrite(data->ptr, 1, data->len, f);
        fclose(f);
    }
}

static void read_plain(mbq_buf *out, const char *path)
{
    gzFile f = gzopen(path, "rb");
    char buf[8192];
    int k;
    while (f && (k = gzread(f, buf, sizeof buf)) > 0)
        mbq_buf_append(out, buf, (size_t)k);
    if (f)
        gzclose(f);
}

static int64_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
}

static void split_roundtrip(bool gzip, int64_t max)
{
    mbq_buf data = MBQ_BUF_INIT, path = MBQ_BUF_INIT, joined = MBQ_BUF_INIT;
    char sum[80];
    make_rows(&data, 3000);
    sha_hex(sum, data.ptr, data.len);
    mbq_buf_printf(&path, "%s/t.1.1.ndjson%s", dir, gzip ? ".gz" : "");
    write_file(path.ptr, &data, gzip);
    mbq_split_options o = {path.ptr, gzip, max, 3000, sum};
    mbq_load_part *parts = NULL;
    int n = 0;
    bool mismatch = true;
    CHECK_INT(mbq_split_file(&parts, &n, &mismatch, &o), 0);
    CHECK(!mismatch);
    CHECK(n > 3);
    int64_t rows = 0;
    for (int i = 0; i < n; i++) {
        mbq_buf one = MBQ_BUF_INIT;
        char want[80];
        CHECK_INT(parts[i].part, i + 1);
        CHECK(parts[i].bytes <= max);
        CHECK_INT(file_size(parts[i].path), parts[i].bytes);
        read_plain(&one, parts[i].path);
        CHECK(one.len > 0 && one.ptr[one.len - 1] == '\n'); /* whole rows only */
        sha_hex(want, one.ptr, one.len);
        CHECK_STR(parts[i].checksum, want);
        CHECK(parts[i].job_id == NULL && !parts[i].loaded);
        rows += parts[i].rows;
        mbq_buf_append(&joined, one.ptr, one.len);
        mbq_buf_free(&one);
    }
    CHECK_INT(rows, 3000);
    CHECK(joined.len == data.len && memcmp(joined.ptr, data.ptr, data.len) == 0);
    /* A part is filled close to the bound, not cut early: all but the last
     * hold at least half of it. */
    for (int i = 0; i + 1 < n; i++)
        CHECK(parts[i].bytes > max / 2);
    CHECK(mbq_file_exists(path.ptr)); /* the source stays until the parts are journaled */
    mbq_split_remove(parts, n);
    for (int i = 0; i < n; i++)
        CHECK(!mbq_file_exists(parts[i].path));
    mbq_load_parts_free(parts, n);
    unlink(path.ptr);
    mbq_buf_free(&data);
    mbq_buf_free(&path);
    mbq_buf_free(&joined);
}

static void test_gzip_file_splits_into_parts_under_the_bound(void)
{
    split_roundtrip(true, 32 * 1024);
}

static void test_plain_file_splits_into_parts_under_the_bound(void)
{
    split_roundtrip(false, 64 * 1024);
}

static void test_file_that_is_not_what_was_extracted_is_refused(void)
{
    mbq_buf data = MBQ_BUF_INIT, path = MBQ_BUF_INIT;
    make_rows(&data, 100);
    mbq_buf_printf(&path, "%s/bad.ndjson", dir);
    write_file(path.ptr, &data, false);
    mbq_load_part *parts = NULL;
    int n = 0;
    mbq_split_options o = {path.ptr, false, 4096, 101, NULL};
    bool mismatch = false;
    CHECK_INT(mbq_split_file(&parts, &n, &mismatch, &o), MBQ_EIO);
    CHECK_CONTAINS(mbq_error_last(), "holds 100 rows");
    CHECK(mismatch);
    o.expect_rows = 100;
    o.expect_checksum = "sha256:00";
    mismatch = false;
    CHECK_INT(mbq_split_file(&parts, &n, &mismatch, &o), MBQ_EIO);
    CHECK(mismatch);
    CHECK(n == 0 && parts == NULL);
    /* No part is left behind by a refused split. */
    mbq_buf p1 = MBQ_BUF_INIT;
    mbq_buf_printf(&p1, "%s.part0001", path.ptr);
    CHECK(!mbq_file_exists(p1.ptr));
    /* A cut file (ends inside a row) is refused too. */
    data.len -= 5;
    write_file(path.ptr, &data, false);
    o.expect_checksum = NULL;
    o.expect_rows = -1;
    mismatch = false;
    CHECK_INT(mbq_split_file(&parts, &n, &mismatch, &o), MBQ_EIO);
    CHECK_CONTAINS(mbq_error_last(), "ends inside a row");
    CHECK(mismatch);
    unlink(path.ptr);
    mbq_buf_free(&p1);
    mbq_buf_free(&data);
    mbq_buf_free(&path);
}

static void test_row_larger_than_the_bound_is_a_clear_error(void)
{
    mbq_buf data = MBQ_BUF_INIT, path = MBQ_BUF_INIT;
    make_rows(&data, 5);
    mbq_buf_puts(&data, "{\"id\":99,\"v\":\"");
    for (int i = 0; i < 3000; i++)
        mbq_buf_putc(&data, 'x');
    mbq_buf_puts(&data, "\"}\n");
    mbq_buf_printf(&path, "%s/big.ndjson", dir);
    write_file(path.ptr, &data, false);
    mbq_load_part *parts = NULL;
    int n = 0;
    mbq_split_options o = {path.ptr, false, 2048, -1, NULL};
    bool mismatch = true;
    CHECK_INT(mbq_split_file(&parts, &n, &mismatch, &o), MBQ_EDATA);
    CHECK(!mismatch); /* the file is fine: the setting is too small for it */
    CHECK_CONTAINS(mbq_error_last(), "max_load_file_size");
    unlink(path.ptr);
    mbq_buf_free(&data);
    mbq_buf_free(&path);
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    RUN(test_gzip_file_splits_into_parts_under_the_bound);
    RUN(test_plain_file_splits_into_parts_under_the_bound);
    RUN(test_file_that_is_not_what_was_extracted_is_refused);
    RUN(test_row_larger_than_the_bound_is_a_clear_error);
    test_remove_tree(dir);
    return test_summary();
}
