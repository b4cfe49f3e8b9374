/* Unit tests of the type mapping (mbq/typemap.h): the MySQL -> BigQuery type
 * table of docs/type-mapping.md, the value encodings, and the column name
 * rule with its collision handling. No server needed. */
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "mbq/buf.h"
#include "mbq/error.h"
#include "mbq/typemap.h"
#include "test.h"

static const char *map(const char *dt, const char *ct, int p, int s, bool json)
{
    mbq_mysql_type t = {dt, ct, p, s, json};
    mbq_type_mapping m;
    if (mbq_typemap_column(&m, &t) < 0)
        return "ERROR";
    return mbq_bq_type_name(m.bq_type);
}

static void test_integers_map_to_int64_except_bigint_unsigned(void)
{
    CHECK_STR(map("tinyint", "tinyint(4)", 3, 0, false), "INT64");
    CHECK_STR(map("tinyint", "tinyint(1)", 3, 0, false), "INT64"); /* not BOOL: holds 2..127 */
    CHECK_STR(map("smallint", "smallint(5) unsigned", 5, 0, false), "INT64");
    CHECK_STR(map("mediumint", "mediumint(9)", 7, 0, false), "INT64");
    CHECK_STR(map("int", "int(10) unsigned", 10, 0, false), "INT64");
    CHECK_STR(map("bigint", "bigint(20)", 19, 0, false), "INT64");
    CHECK_STR(map("bigint", "bigint(20) unsigned", 20, 0, false), "NUMERIC");
    CHECK_STR(map("year", "year(4)", -1, -1, false), "INT64");
}

static void test_decimal_picks_numeric_bignumeric_or_string_by_digits(void)
{
    CHECK_STR(map("decimal", "decimal(12,2)", 12, 2, false), "NUMERIC");
    CHECK_STR(map("decimal", "decimal(38,9)", 38, 9, false), "NUMERIC");   /* 29 integer digits */
    CHECK_STR(map("decimal", "decimal(39,9)", 39, 9, false), "BIGNUMERIC"); /* 30 integer digits */
    CHECK_STR(map("decimal", "decimal(20,10)", 20, 10, false), "BIGNUMERIC"); /* scale > 9 */
    CHECK_STR(map("decimal", "decimal(65,30)", 65, 30, false), "BIGNUMERIC");
    CHECK_STR(map("decimal", "decimal(65,0)", 65, 0, false), "STRING"); /* 65 integer digits */
    CHECK_STR(map("decimal", "decimal(65,26)", 65, 26, false), "STRING"); /* 39 integer digits */
}

static void test_other_types_follow_the_documented_table(void)
{
    CHECK_STR(map("float", "float", 12, -1, false), "FLOAT64");
    CHECK_STR(map("double", "double", 22, -1, false), "FLOAT64");
    CHECK_STR(map("bit", "bit(1)", 1, -1, false), "INT64");
    CHECK_STR(map("bit", "bit(63)", 63, -1, false), "INT64");
    CHECK_STR(map("bit", "bit(64)", 64, -1, false), "NUMERIC");
    CHECK_STR(map("bit", "bit(64)", -1, -1, false), "NUMERIC"); /* width from COLUMN_TYPE */
    CHECK_STR(map("varchar", "varchar(10)", -1, -1, false), "STRING");
    CHECK_STR(map("longtext", "longtext", -1, -1, false), "STRING");
    CHECK_STR(map("longtext", "longtext", -1, -1, true), "JSON");
    CHECK_STR(map("json", "json", -1, -1, false), "JSON");
    CHECK_STR(map("enum", "enum('a','b')", -1, -1, false), "STRING");
    CHECK_STR(map("set", "set('a','b')", -1, -1, false), "STRING");
    CHECK_STR(map("varbinary", "varbinary(3)", -1, -1, false), "BYTES");
    CHECK_STR(map("longblob", "longblob", -1, -1, false), "BYTES");
    CHECK_STR(map("date", "date", -1, -1, false), "DATE");
    CHECK_STR(map("datetime", "datetime(6)", -1, -1, false), "DATETIME");
    CHECK_STR(map("timestamp", "timestamp(6)", -1, -1, false), "TIMESTAMP");
    CHECK_STR(map("time", "time", -1, -1, false), "STRING");
    CHECK_STR(map("point", "point", -1, -1, false), "STRING");
    CHECK_STR(map("geometry", "geometry", -1, -1, false), "STRING");
    CHECK_STR(map("inet6", "inet6", -1, -1, false), "STRING");
}

static void test_unknown_type_is_an_error_naming_it(void)
{
    mbq_mysql_type t = {"vector", "vector(3)", -1, -1, false};
    mbq_type_mapping m;
    CHECK_INT(mbq_typemap_column(&m, &t), MBQ_ESCHEMA);
    CHECK_CONTAINS(mbq_error_last(), "unsupported MySQL type 'vector(3)'");
}

/* Encode one value; "NULL" when the encoder says NULL, "ERROR" on error. */
static char *enc(mbq_value_enc e, const char *v, size_t len)
{
    mbq_buf b = MBQ_BUF_INIT;
    int rc = mbq_typemap_encode(&b, e, v, len);
    if (rc == 1) {
        mbq_buf_free(&b);
        return strdup("NULL");
    }
    if (rc < 0) {
        mbq_buf_free(&b);
        return strdup("ERROR");
    }
    if (rc == 2) { /* a JSON column's text that is not JSON: written as a string */
        mbq_buf n = MBQ_BUF_INIT;
        mbq_buf_printf(&n, "NOTJSON %s", mbq_buf_cstr(&b));
        mbq_buf_free(&b);
        return mbq_buf_detach(&n);
    }
    return mbq_buf_detach(&b);
}

#define CHECK_ENC(e, v, want)                                                                      \
    do {                                                                                           \
        char *got_ = enc(e, v, strlen(v));                                                         \
        CHECK_STR(got_, want);                                                                     \
        free(got_);                                                                                \
    } while (0)

static void test_numbers_encode_losslessly(void)
{
    /* Up to +-(2^53 - 1) a bare number; beyond, a string, as BigQuery's
     * documentation asks for INT64 in JSON loads (readers that use doubles
     * would round 2^53 + 1). */
    CHECK_ENC(MBQ_ENC_INT, "9007199254740991", "9007199254740991");
    CHECK_ENC(MBQ_ENC_INT, "-9007199254740991", "-9007199254740991");
    CHECK_ENC(MBQ_ENC_INT, "9007199254740992", "\"9007199254740992\"");
    CHECK_ENC(MBQ_ENC_INT, "-9007199254740993", "\"-9007199254740993\"");
    CHECK_ENC(MBQ_ENC_INT, "0009007199254740991", "9007199254740991");
    CHECK_ENC(MBQ_ENC_INT, "10000000000000000", "\"10000000000000000\"");
    CHECK_ENC(MBQ_ENC_INT, "1000000000000000", "1000000000000000");
    CHECK_ENC(MBQ_ENC_INT, "9223372036854775807", "\"9223372036854775807\"");
    CHECK_ENC(MBQ_ENC_INT, "-9223372036854775808", "\"-9223372036854775808\"");
    /* YEAR and ZEROFILL arrive zero-padded; JSON numbers have no leading 0 */
    CHECK_ENC(MBQ_ENC_INT, "0000", "0");
    CHECK_ENC(MBQ_ENC_INT, "2024", "2024");
    CHECK_ENC(MBQ_ENC_INT, "00042", "42");
    CHECK_ENC(MBQ_ENC_INT, "-007", "-7");
    CHECK_ENC(MBQ_ENC_INT, "-0", "0");
    CHECK_ENC(MBQ_ENC_INT, "12a", "ERROR");
    CHECK_ENC(MBQ_ENC_INT, "-", "ERROR");
    CHECK_ENC(MBQ_ENC_INT, "", "ERROR");
    CHECK_ENC(MBQ_ENC_DECIMAL, "18446744073709551615", "\"18446744073709551615\"");
    CHECK_ENC(MBQ_ENC_DECIMAL, "-0.50", "\"-0.50\"");
    CHECK_ENC(MBQ_ENC_DOUBLE, "1.7976931348623157e308", "1.7976931348623157e308");
    /* FLOAT arrives cast to DOUBLE; the shortest float32 round trip. */
    CHECK_ENC(MBQ_ENC_FLOAT, "0.10000000149011612", "0.1");
    CHECK_ENC(MBQ_ENC_FLOAT, "1.2345678806304932", "1.2345679");
    CHECK_ENC(MBQ_ENC_FLOAT, "3.4028234663852886e38", "3.4028235e+38");
    CHECK_ENC(MBQ_ENC_FLOAT, "16777216", "16777216");
    CHECK_ENC(MBQ_ENC_FLOAT, "nan", "ERROR");
}

static void test_bit_encodes_big_endian_bytes_as_unsigned(void)
{
    char *s = enc(MBQ_ENC_BIT_DECIMAL, "\xff\xff\xff\xff\xff\xff\xff\xff", 8);
    CHECK_STR(s, "\"18446744073709551615\"");
    free(s);
    s = enc(MBQ_ENC_BIT, "\x01\x00", 2);
    CHECK_STR(s, "256");
    free(s);
    s = enc(MBQ_ENC_BIT, "\x00", 1);
    CHECK_STR(s, "0");
    free(s);
    s = enc(MBQ_ENC_BIT, "\x00\x1f\xff\xff\xff\xff\xff\xff", 8); /* 2^53 - 1 */
    CHECK_STR(s, "9007199254740991");
    free(s);
    s = enc(MBQ_ENC_BIT, "\x00\x20\x00\x00\x00\x00\x00\x00", 8); /* 2^53 */
    CHECK_STR(s, "\"9007199254740992\"");
    free(s);
}

static void test_strings_escape_and_replace_invalid_utf8(void)
{
    CHECK_ENC(MBQ_ENC_STRING, "a\"b\\c\n\t\x01", "\"a\\\"b\\\\c\\n\\t\\u0001\"");
    CHECK_ENC(MBQ_ENC_STRING, "emoji \xf0\x9f\x98\x80", "\"emoji \xf0\x9f\x98\x80\"");
    /* A lone latin1 byte, an overlong, a surrogate: each -> U+FFFD. */
    CHECK_ENC(MBQ_ENC_STRING, "x\xe9y\xc0\xafz\xed\xa0\x80",
              "\"x\xef\xbf\xbdy\xef\xbf\xbd\xef\xbf\xbdz\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
    char *s = enc(MBQ_ENC_STRING, "a\0b", 3);
    CHECK_STR(s, "\"a\\u0000b\"");
    free(s);
    /* Every output is JSON a real parser accepts, whatever the bytes. */
    char bytes[256];
    for (int i = 0; i < 256; i++)
        bytes[i] = (char)(255 - i);
    s = enc(MBQ_ENC_STRING, bytes, sizeof bytes);
    json_object *o = json_tokener_parse(s);
    CHECK(o != NULL && json_object_is_type(o, json_type_string));
    json_object_put(o);
    free(s);
}

/* The word-at-a-time scan must find a special byte at every offset: compare
 * with the byte-at-a-time encoder of mbq/buf.h on every position. */
static void test_string_encoder_matches_reference_at_every_offset(void)
{
    static const char specials[] = {'"', '\\', '\n', 0x01, 0x1f, 0x7f, (char)0xc3, (char)0xe9,
                                    (char)0xf0, ' ', '~'};
    char in[40];
    for (size_t k = 0; k < sizeof specials; k++)
        for (size_t pos = 0; pos < sizeof in; pos++) {
            memset(in, 'a', sizeof in);
            in[pos] = specials[k];
            if (specials[k] == (char)0xc3 && pos + 1 < sizeof in)
                in[pos + 1] = (char)0xa9; /* a valid 2-byte sequence */
            mbq_buf got = MBQ_BUF_INIT, want = MBQ_BUF_INIT;
            CHECK_INT(mbq_typemap_encode(&got, MBQ_ENC_STRING, in, sizeof in), 0);
            CHECK_INT(mbq_buf_json_string(&want, in, sizeof in), 0);
            if (strcmp(mbq_buf_cstr(&got), mbq_buf_cstr(&want)) != 0) {
                fprintf(stderr, "  special 0x%02x at %zu\n", (unsigned char)specials[k], pos);
                CHECK_STR(mbq_buf_cstr(&got), mbq_buf_cstr(&want));
            }
            mbq_buf_free(&got);
            mbq_buf_free(&want);
        }
}

/* Runs of specials and their neighbours ('#' after '"', ']' after '\\',
 * 0x20 after 0x1f: the bytes a borrow in the word scan can flag falsely)
 * in random mixes: the scan jumps to the lowest flagged byte, which must
 * be the first one that really needs care. Same reference as above. */
static void test_string_encoder_matches_reference_on_random_mixes(void)
{
    static const unsigned char alphabet[] = {'a', '"', '#', '\\', ']', '!', 0x01, 0x1f, 0x20,
                                             0x7f, 0xc3, 0xa9, 0xe9, 0xf0, 0x9f, 0x80};
    unsigned seed = 12345;
    char in[48];
    for (int round = 0; round < 20000; round++) {
        size_t n = (size_t)(round % (int)sizeof in);
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            in[i] = (char)alphabet[(seed >> 16) % sizeof alphabet];
        }
        mbq_buf got = MBQ_BUF_INIT, want = MBQ_BUF_INIT;
        CHECK_INT(mbq_typemap_encode(&got, MBQ_ENC_STRING, in, n), 0);
        CHECK_INT(mbq_buf_json_string(&want, in, n), 0);
        if (strcmp(mbq_buf_cstr(&got), mbq_buf_cstr(&want)) != 0) {
            fprintf(stderr, "  round %d\n", round);
            CHECK_STR(mbq_buf_cstr(&got), mbq_buf_cstr(&want));
        }
        mbq_buf_free(&got);
        mbq_buf_free(&want);
    }
}

static void test_long_string_with_many_escapes_grows_the_buffer(void)
{
    size_t n = 100000;
    char *in = malloc(n);
    memset(in, 1, n); /* each byte becomes \u0001 (6 bytes) */
    char *s = enc(MBQ_ENC_STRING, in, n);
    CHECK_INT(strlen(s), n * 6 + 2);
    free(s);
    free(in);
}

static void test_bytes_are_base64(void)
{
    char *s = enc(MBQ_ENC_BYTES, "\0\1\2", 3);
    CHECK_STR(s, "\"AAEC\"");
    free(s);
    CHECK_ENC(MBQ_ENC_BYTES, "ab", "\"YWI=\"");
    CHECK_ENC(MBQ_ENC_BYTES, "a", "\"YQ==\"");
    CHECK_ENC(MBQ_ENC_BYTES, "", "\"\"");
}

static void test_dates_times_and_zero_dates(void)
{
    CHECK_ENC(MBQ_ENC_DATE, "2024-02-29", "\"2024-02-29\"");
    CHECK_ENC(MBQ_ENC_DATE, "0000-00-00", "NULL");
    CHECK_ENC(MBQ_ENC_DATE, "2024-00-10", "NULL");
    CHECK_ENC(MBQ_ENC_DATE, "2024-01-00", "NULL");
    CHECK_ENC(MBQ_ENC_DATETIME, "9999-12-31 23:59:59.999999", "\"9999-12-31 23:59:59.999999\"");
    CHECK_ENC(MBQ_ENC_DATETIME, "0000-00-00 00:00:00", "NULL");
    CHECK_ENC(MBQ_ENC_TIMESTAMP, "2038-01-19 03:14:07", "\"2038-01-19 03:14:07.000000+00:00\"");
    CHECK_ENC(MBQ_ENC_TIMESTAMP, "2038-01-19 03:14:07.5", "\"2038-01-19 03:14:07.500000+00:00\"");
    CHECK_ENC(MBQ_ENC_TIMESTAMP, "0000-00-00 00:00:00.000000", "NULL");
    /* Only the server's exact shape is copied unescaped (fuzz_encoder: a
     * non-ASCII byte in the date part went raw into the JSON string). */
    CHECK_ENC(MBQ_ENC_TIMESTAMP, "2038-\xc0" "1-19 03:14:07", "ERROR");
    CHECK_ENC(MBQ_ENC_TIMESTAMP, "2038-01-19 03:14:07.", "ERROR");
    CHECK_ENC(MBQ_ENC_TIMESTAMP, "2038-01-19 03:14:07.5\"", "ERROR");
    CHECK_ENC(MBQ_ENC_TIMESTAMP, "2038-01-19 03:14:07x123", "ERROR");
    CHECK_ENC(MBQ_ENC_TIME, "-838:59:59", "\"-838:59:59\"");
    CHECK_ENC(MBQ_ENC_TIME, "12:00:00.000001", "\"12:00:00.000001\"");
}

/* JSON documents go into the line as themselves: a load job takes a JSON
 * column's value raw, and a string would stay a JSON string in BigQuery. */
static void test_json_documents_are_written_raw_and_compact(void)
{
    CHECK_ENC(MBQ_ENC_JSON, "{\"a\": [1, 2.5e3, -0, true, false, null]}",
              "{\"a\":[1,2.5e3,-0,true,false,null]}");
    /* MySQL's own spacing and a pretty-printed MariaDB document: the
     * newlines between tokens would end the NDJSON line. */
    CHECK_ENC(MBQ_ENC_JSON, "{\n  \"k\" :\t{\"n\": {}},\r\n  \"e\": [ ]\n}\n",
              "{\"k\":{\"n\":{}},\"e\":[]}");
    /* Strings: escapes kept as they are, spaces inside kept, UTF-8 copied. */
    CHECK_ENC(MBQ_ENC_JSON, "[\"a b\", \"q\\\"\\\\\\/\\b\\f\\n\\r\\t\", \"\\u00e9\\uD83D\\uDE00\", \"\xc3\xa9\xf0\x9f\x98\x80\"]",
              "[\"a b\",\"q\\\"\\\\\\/\\b\\f\\n\\r\\t\",\"\\u00e9\\uD83D\\uDE00\",\"\xc3\xa9\xf0\x9f\x98\x80\"]");
    /* Repairs inside strings, as for any string: a raw control character
     * is escaped, invalid UTF-8 becomes U+FFFD. */
    CHECK_ENC(MBQ_ENC_JSON, "{\"t\":\"a\nb\x01\"}", "{\"t\":\"a\\u000ab\\u0001\"}");
    CHECK_ENC(MBQ_ENC_JSON, "[\"\xff\xc3\"]", "[\"\xef\xbf\xbd\xef\xbf\xbd\"]");
    /* Scalars are documents too. */
    CHECK_ENC(MBQ_ENC_JSON, "\"just text\"", "\"just text\"");
    CHECK_ENC(MBQ_ENC_JSON, " 42 ", "42");
    CHECK_ENC(MBQ_ENC_JSON, "null", "null");
    /* Not JSON: written as a string holding the text, and said so. */
    CHECK_ENC(MBQ_ENC_JSON, "{a:1}", "NOTJSON \"{a:1}\"");
    CHECK_ENC(MBQ_ENC_JSON, "[1,]", "NOTJSON \"[1,]\"");
    CHECK_ENC(MBQ_ENC_JSON, "{\"a\" 1}", "NOTJSON \"{\\\"a\\\" 1}\"");
    CHECK_ENC(MBQ_ENC_JSON, "{\"a\":1,}", "NOTJSON \"{\\\"a\\\":1,}\"");
    CHECK_ENC(MBQ_ENC_JSON, "{\"a\":1]", "NOTJSON \"{\\\"a\\\":1]\"");
    CHECK_ENC(MBQ_ENC_JSON, "[1] [2]", "NOTJSON \"[1] [2]\"");
    CHECK_ENC(MBQ_ENC_JSON, "01", "NOTJSON \"01\"");
    CHECK_ENC(MBQ_ENC_JSON, "1.", "NOTJSON \"1.\"");
    CHECK_ENC(MBQ_ENC_JSON, "nan", "NOTJSON \"nan\"");
    CHECK_ENC(MBQ_ENC_JSON, "tru", "NOTJSON \"tru\"");
    CHECK_ENC(MBQ_ENC_JSON, "\"open", "NOTJSON \"\\\"open\"");
    CHECK_ENC(MBQ_ENC_JSON, "[\"\\x\"]", "NOTJSON \"[\\\"\\\\x\\\"]\"");
    CHECK_ENC(MBQ_ENC_JSON, "[\"\\u12\"]", "NOTJSON \"[\\\"\\\\u12\\\"]\"");
    CHECK_ENC(MBQ_ENC_JSON, "", "NOTJSON \"\"");
    CHECK_ENC(MBQ_ENC_JSON, " \n", "NOTJSON \" \\n\"");
    /* BigQuery's nesting limit is 500 levels. */
    char deep[1100];
    memset(deep, '[', 500);
    memset(deep + 500, ']', 500);
    deep[1000] = '\0';
    CHECK_ENC(MBQ_ENC_JSON, deep, deep);
    memset(deep, '[', 501);
    memset(deep + 501, ']', 501);
    deep[1002] = '\0';
    char *got = enc(MBQ_ENC_JSON, deep, strlen(deep));
    CHECK(strncmp(got, "NOTJSON \"[[[", 12) == 0);
    free(got);
}

/* Random documents (json-c builds and prints them, pretty or plain): the
 * raw copy parses back to an equal document, and a byte cut off or a
 * stray character makes it a string (never invalid NDJSON). */
static json_object *random_doc(unsigned *seed, int depth)
{
    int k = (int)(rand_r(seed) % (depth > 4 ? 5u : 7u));
    switch (k) {
    case 0: return json_object_new_int64((int64_t)rand_r(seed) - RAND_MAX / 2);
    case 1: return json_object_new_double((double)rand_r(seed) / 7.0);
    case 2: return json_object_new_boolean(rand_r(seed) & 1);
    case 3: return NULL; /* null */
    case 4: {
        static const char *const pieces[] = {"a", " ", "\"", "\\", "\n", "\t", "\x01", "\xc3\xa9",
                                             "\xf0\x9f\x98\x80", "/", "}", "]", ",", ":"};
        char s[64] = "";
        int n = (int)(rand_r(seed) % 8);
        for (int i = 0; i < n; i++)
            strcat(s, pieces[rand_r(seed) % (sizeof pieces / sizeof *pieces)]);
        return json_object_new_string(s);
    }
    case 5: {
        json_object *a = json_object_new_array();
        int n = (int)(rand_r(seed) % 4);
        for (int i = 0; i < n; i++)
            json_object_array_add(a, random_doc(seed, depth + 1));
        return a;
    }
    default: {
        json_object *o = json_object_new_object();
        int n = (int)(rand_r(seed) % 4);
        for (int i = 0; i < n; i++) {
            char key[16];
            snprintf(key, sizeof key, "k%d \"%d", i, (int)(rand_r(seed) % 3));
            json_object_object_add(o, key, random_doc(seed, depth + 1));
        }
        return o;
    }
    }
}

static void test_json_documents_round_trip_on_random_input(void)
{
    unsigned seed = 20261126;
    for (int i = 0; i < 3000; i++) {
        json_object *doc = random_doc(&seed, 0);
        int flags = i % 2 ? JSON_C_TO_STRING_PRETTY : JSON_C_TO_STRING_PLAIN;
        const char *text = json_object_to_json_string_ext(doc, flags);
        mbq_buf b = MBQ_BUF_INIT;
        CHECK_INT(mbq_typemap_encode(&b, MBQ_ENC_JSON, text, strlen(text)), 0);
        CHECK(memchr(b.ptr, '\n', b.len) == NULL);
        json_object *back = json_tokener_parse(mbq_buf_cstr(&b));
        CHECK(json_object_equal(doc, back));
        if (!json_object_equal(doc, back))
            fprintf(stderr, "  in:  %s\n  out: %s\n", text, mbq_buf_cstr(&b));
        json_object_put(back);
        /* Damaged: the text without its last byte, or with a byte changed. */
        size_t n = strlen(text);
        char *bad = strdup(text);
        if (n > 1) {
            bad[rand_r(&seed) % n] = "{}[],:\"x"[rand_r(&seed) % 8];
            for (int cut = 0; cut < 2; cut++) {
                size_t blen = cut ? n - 1 : n;
                mbq_buf_clear(&b);
                int rc = mbq_typemap_encode(&b, MBQ_ENC_JSON, bad, blen);
                CHECK(rc == 0 || rc == 2);
                json_object *o = json_tokener_parse(mbq_buf_cstr(&b));
                CHECK(o != NULL || strcmp(mbq_buf_cstr(&b), "null") == 0);
                CHECK(rc == 0 || json_object_is_type(o, json_type_string));
                json_object_put(o);
            }
        }
        free(bad);
        mbq_buf_free(&b);
        json_object_put(doc);
    }
}

static char *bqname(const char *in, bool *changed)
{
    mbq_buf b = MBQ_BUF_INIT;
    if (mbq_typemap_bq_column_name(&b, changed, in) < 0)
        return strdup("ERROR");
    return mbq_buf_detach(&b);
}

#define CHECK_NAME(in, want, want_changed)                                                         \
    do {                                                                                           \
        bool ch_ = !(want_changed);                                                                \
        char *got_ = bqname(in, &ch_);                                                             \
        CHECK_STR(got_, want);                                                                     \
        CHECK_INT(ch_, want_changed);                                                              \
        free(got_);                                                                                \
    } while (0)

static void test_column_names_follow_the_rule(void)
{
    CHECK_NAME("order_id", "order_id", false);
    CHECK_NAME("Order ID", "Order_ID", true);
    CHECK_NAME("2fa", "_2fa", true);
    CHECK_NAME("größe", "gr__e", true); /* one '_' per character, not per byte */
    CHECK_NAME("a-b.c", "a_b_c", true);
    CHECK_NAME("_TABLE_x", "c_TABLE_x", true);
    CHECK_NAME("_partitiontime", "c_partitiontime", true);
    CHECK_NAME("__root__", "c__root__", true);
    CHECK_NAME("", "_", true);
    char long_name[400];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    bool ch = false;
    char *s = bqname(long_name, &ch);
    CHECK_INT(strlen(s), 300);
    CHECK(ch);
    CHECK(s[291] == '_');
    free(s);
}

static void test_colliding_names_get_a_hash_suffix(void)
{
    const char *names[] = {"a b", "a_b", "A-B", "id"};
    char **out = NULL;
    CHECK_INT(mbq_typemap_bq_column_names(&out, names, 4), 0);
    if (!out)
        return;
    CHECK_STR(out[1], "a_b"); /* unchanged name keeps its name */
    CHECK_STR(out[3], "id");
    CHECK(strncmp(out[0], "a_b_", 4) == 0 && strlen(out[0]) == 12);
    CHECK(strncmp(out[2], "A_B_", 4) == 0 && strlen(out[2]) == 12);
    CHECK(strcasecmp(out[0], out[2]) != 0);
    /* Deterministic: the same input maps the same way every run. */
    char **again = NULL;
    CHECK_INT(mbq_typemap_bq_column_names(&again, names, 4), 0);
    for (int i = 0; again && i < 4; i++) {
        CHECK_STR(again[i], out[i]);
        free(again[i]);
    }
    free(again);
    for (int i = 0; i < 4; i++)
        free(out[i]);
    free(out);
}

int main(void)
{
    RUN(test_integers_map_to_int64_except_bigint_unsigned);
    RUN(test_decimal_picks_numeric_bignumeric_or_string_by_digits);
    RUN(test_other_types_follow_the_documented_table);
    RUN(test_unknown_type_is_an_error_naming_it);
    RUN(test_numbers_encode_losslessly);
    RUN(test_bit_encodes_big_endian_bytes_as_unsigned);
    RUN(test_strings_escape_and_replace_invalid_utf8);
    RUN(test_string_encoder_matches_reference_at_every_offset);
    RUN(test_string_encoder_matches_reference_on_random_mixes);
    RUN(test_long_string_with_many_escapes_grows_the_buffer);
    RUN(test_bytes_are_base64);
    RUN(test_dates_times_and_zero_dates);
    RUN(test_json_documents_are_written_raw_and_compact);
    RUN(test_json_documents_round_trip_on_random_input);
    RUN(test_column_names_follow_the_rule);
    RUN(test_colliding_names_get_a_hash_suffix);
    return test_summary();
}
