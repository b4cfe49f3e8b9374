/* The binlog decoders without a server: the value texts against what
 * MariaDB 10.11 printed for the same values, a TABLE_MAP and a rows event
 * built by hand from the documented layouts, and every truncation and
 * thousands of corruptions of them, which must give an error or a result
 * and never read outside the event (ASan watches). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/mysql/binlog_internal.h"
#include "mbq/error.h"
#include "test.h"

static void check_double(double v, const char *want)
{
    mbq_buf b = MBQ_BUF_INIT;
    CHECK_INT(bl_text_double(&b, v), 0);
    CHECK_STR(b.ptr, want);
    mbq_buf_free(&b);
}

/* The server's text for these (SELECT of a DOUBLE column, CAST(float AS
 * DOUBLE)), recorded from MariaDB 10.11. */
static void test_double_text_is_the_servers(void)
{
    check_double(0.1, "0.1");
    check_double(1e20, "1e20");
    check_double(1e15, "1e15");
    check_double(1e14, "100000000000000");
    check_double(1.5e-7, "0.00000015");
    check_double(1.2345678901234568e20, "1.2345678901234568e20");
    check_double(1.7976931348623157e308, "1.7976931348623157e308");
    check_double(-2.2250738585072014e-308, "-2.2250738585072014e-308");
    check_double(123456.789, "123456.789");
    check_double((double)3.4028234e38f, "3.4028234663852886e38");
    check_double((double)0.1f, "0.10000000149011612");
    check_double((double)1e-5f, "0.000009999999747378752");
    check_double((double)1.17549435e-38f, "1.1754943508222875e-38");
    check_double(-1.5, "-1.5");
    check_double(0.0, "0");
    check_double(-0.0, "-0");
    /* No server sends these; damaged bytes are refused, not read past
     * (fuzz_binlog found "nan" read beyond its buffer). */
    mbq_buf b = MBQ_BUF_INIT;
    CHECK_INT(bl_text_double(&b, NAN), MBQ_EDATA);
    CHECK_INT(bl_text_double(&b, -INFINITY), MBQ_EDATA);
    CHECK_CONTAINS(mbq_error_last(), "not a finite number");
    mbq_buf_free(&b);
}

static void check_decimal(const uint8_t *bin, int p, int s, const char *want)
{
    mbq_buf b = MBQ_BUF_INIT;
    CHECK_INT(bl_text_decimal(&b, bin, p, s), 0);
    CHECK_STR(b.ptr, want);
    mbq_buf_free(&b);
}

/* decimal2bin layouts (strings/decimal.c): the sign bit flipped, negatives
 * inverted. */
static void test_decimal_text(void)
{
    CHECK_INT(bl_decimal_size(5, 2), 3);
    CHECK_INT(bl_decimal_size(12, 2), 6);
    CHECK_INT(bl_decimal_size(65, 30), 30);
    const uint8_t pos[] = {0x80, 0x7B, 0x2D}; /* 123.45 */
    check_decimal(pos, 5, 2, "123.45");
    const uint8_t neg[] = {0x7F, 0x84, 0xD2}; /* -123.45 */
    check_decimal(neg, 5, 2, "-123.45");
    const uint8_t small[] = {0x80, 0x00, 0x05}; /* 0.05 */
    check_decimal(small, 5, 2, "0.05");
    const uint8_t zero[] = {0x80, 0x00, 0x00};
    check_decimal(zero, 5, 2, "0.00");
    const uint8_t whole[] = {0x80, 0x00, 0x00, 0x2A}; /* DECIMAL(9,0) 42 */
    check_decimal(whole, 9, 0, "42");
}

static void check_time2(const uint8_t *bin, int fsp, const char *want)
{
    mbq_buf b = MBQ_BUF_INIT;
    CHECK_INT(bl_text_time2(&b, bin, fsp), 0);
    CHECK_STR(b.ptr, want);
    mbq_buf_free(&b);
}

static void test_time2_text(void)
{
    /* 12:34:56 = 0x800000 + (12 << 12 | 34 << 6 | 56) */
    uint32_t hms = 12u << 12 | 34u << 6 | 56u, v = 0x800000u + hms;
    const uint8_t t0[] = {(uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    check_time2(t0, 0, "12:34:56");
    /* -00:00:00.1 at fsp 1: intpart -1, fraction 0x100 - 10 */
    uint32_t n1 = 0x800000u - 1u;
    const uint8_t t1[] = {(uint8_t)(n1 >> 16), (uint8_t)(n1 >> 8), (uint8_t)n1, 0xF6};
    check_time2(t1, 1, "-00:00:00.1");
}

static void check_wkb(const uint8_t *p, size_t n, const char *want)
{
    mbq_buf b = MBQ_BUF_INIT;
    int rc = bl_wkb_to_wkt(&b, p, n);
    if (want) {
        CHECK_INT(rc, 0);
        CHECK_STR(b.ptr, want);
    } else {
        CHECK_INT(rc, MBQ_EDATA);
    }
    mbq_buf_free(&b);
}

static size_t put_point(uint8_t *o, double x, double y)
{
    memcpy(o, &x, 8);
    memcpy(o + 8, &y, 8);
    return 16;
}

static void test_wkb_text(void)
{
    uint8_t w[256];
    size_t n = 0;
    w[n++] = 1;
    memcpy(w + n, "\x01\x00\x00\x00", 4), n += 4;
    n += put_point(w + n, 1.5, -0.0);
    check_wkb(w, n, "POINT(1.5 0)");
    for (size_t cut = 0; cut < n; cut++)
        check_wkb(w, cut, NULL);
    /* MULTIPOINT(1 1,2 2): members without their parentheses */
    n = 0;
    w[n++] = 1;
    memcpy(w + n, "\x04\x00\x00\x00\x02\x00\x00\x00", 8), n += 8;
    for (int k = 1; k <= 2; k++) {
        w[n++] = 1;
        memcpy(w + n, "\x01\x00\x00\x00", 4), n += 4;
        n += put_point(w + n, k, k);
    }
    check_wkb(w, n, "MULTIPOINT(1 1,2 2)");
    /* a collection claiming 2^32-1 members of nothing */
    const uint8_t lie[] = {1, 7, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF};
    check_wkb(lie, sizeof lie, NULL);
    /* collections nested beyond any real geometry: refused, no deep recursion */
    uint8_t deep[9 * 40 + 21];
    size_t dn = 0;
    for (int d = 0; d < 40; d++) {
        memcpy(deep + dn, "\x01\x07\x00\x00\x00\x01\x00\x00\x00", 9);
        dn += 9;
    }
    deep[dn++] = 1;
    memcpy(deep + dn, "\x01\x00\x00\x00", 4), dn += 4;
    dn += put_point(deep + dn, 0, 0);
    check_wkb(deep, dn, NULL);
    check_wkb(deep + 9 * 30, dn - 9 * 30, "GEOMETRYCOLLECTION(GEOMETRYCOLLECTION(GEOMETRYCOLLECTION("
              "GEOMETRYCOLLECTION(GEOMETRYCOLLECTION(GEOMETRYCOLLECTION(GEOMETRYCOLLECTION("
              "GEOMETRYCOLLECTION(GEOMETRYCOLLECTION(GEOMETRYCOLLECTION(POINT(0 0)))))))))))");
}

/* ---- a table map and a rows event built by hand ---------------------- */

static bl_charsets charsets(void)
{
    static uint16_t ids[] = {45, 63};
    static bl_cs kind[] = {CS_UTF8, CS_BINARY};
    static int idx[] = {0, 0};
    bl_charsets cs;
    memset(&cs, 0, sizeof cs);
    cs.ids = ids;
    cs.kind = kind;
    cs.iconv_idx = idx;
    cs.n = 2;
    return cs;
}

/* (i INT, s VARCHAR(10), d DECIMAL(5,2), dt DATETIME(3), b BLOB,
 *  g GEOMETRY), utf8mb4, with names and signedness */
static size_t table_map(uint8_t *o)
{
    size_t n = 0;
    memcpy(o + n, "\x01\x00\x00\x00\x00\x00\x00\x00", 8), n += 8; /* id 1, flags */
    memcpy(o + n, "\x01" "d\x00" "\x01" "t\x00", 6), n += 6;
    o[n++] = 6;
    memcpy(o + n, "\x03\x0f\xf6\x12\xfc\xff", 6), n += 6;
    o[n++] = 7;
    memcpy(o + n, "\x28\x00\x05\x02\x03\x02\x04", 7), n += 7;
    o[n++] = 0x3F; /* nullable */
    memcpy(o + n, "\x01\x01\x00", 3), n += 3;           /* SIGNEDNESS: both signed */
    memcpy(o + n, "\x02\x01\x2d", 3), n += 3;           /* DEFAULT_CHARSET 45 */
    const char names[] = "\x01i\x01s\x01" "d\x02" "dt\x01" "b\x01g";
    o[n++] = 4;
    o[n++] = (uint8_t)(sizeof names - 1);
    memcpy(o + n, names, sizeof names - 1), n += sizeof names - 1;
    return n;
}

static size_t rows_event(uint8_t *o)
{
    size_t n = 0;
    memcpy(o + n, "\x01\x00\x00\x00\x00\x00\x00\x00", 8), n += 8;
    o[n++] = 6;
    o[n++] = 0x3F; /* present */
    o[n++] = 0x00; /* nulls */
    memcpy(o + n, "\xfb\xff\xff\xff", 4), n += 4;           /* -5 */
    memcpy(o + n, "\x03" "abc", 4), n += 4;
    memcpy(o + n, "\x80\x7b\x2d", 3), n += 3;               /* 123.45 */
    uint64_t ym = 2024 * 13 + 2, ymd = ym << 5 | 29, hms = 12 << 12 | 34 << 6 | 56;
    uint64_t v = (ymd << 17 | hms) + 0x8000000000ULL;
    for (int i = 4; i >= 0; i--)
        o[n++] = (uint8_t)(v >> (8 * i));
    o[n++] = 7890 >> 8, o[n++] = 7890 & 0xFF;               /* .789 */
    memcpy(o + n, "\x03\x00\x00\x01\x02", 5), n += 5;
    memcpy(o + n, "\x19\x00\x00\x00" "\x00\x00\x00\x00" "\x01\x01\x00\x00\x00", 13), n += 13;
    n += put_point(o + n, 1.5, -2.25);
    o[n++] = 0x3E; /* second row: i NULL, the rest must follow */
    memcpy(o + n, "\x00", 1), n += 1;
    return n;
}

static void test_hand_built_events_decode(void)
{
    uint8_t tm[256], rw[256];
    size_t tn = table_map(tm), rn = rows_event(rw);
    bl_charsets cs = charsets();
    bl_table t;
    CHECK_INT(bl_table_parse(&t, tm, tn, &cs), 0);
    CHECK_INT(t.n, 6);
    CHECK_STR(t.names[3], "dt");
    bl_rows r;
    memset(&r, 0, sizeof r);
    /* the second row is cut short: an error naming the event */
    CHECK_INT(bl_rows_decode(&r, &t, 23, rw, rn, &cs), MBQ_EDATA);
    CHECK_CONTAINS(mbq_error_last(), "malformed rows event for 'd.t'");
    size_t one = rn - 2; /* just the first row */
    CHECK_INT(bl_rows_decode(&r, &t, 23, rw, one, &cs), 0);
    CHECK_INT(r.n_rows, 1);
    if (r.n_rows == 1) {
        const mbq_binlog_value *v = r.rows[0].after;
        static const char *const want[] = {"-5", "abc", "123.45", "2024-02-29 12:34:56.789",
                                           "\x00\x01\x02", "POINT(1.5 -2.25)"};
        for (int i = 0; i < 6; i++) {
            size_t wl = i == 4 ? 3 : strlen(want[i]);
            CHECK(v[i].data && v[i].len == wl && memcmp(v[i].data, want[i], wl) == 0);
        }
    }
    bl_rows_free(&r);
    bl_table_free(&t);
}

/* Each prefix of the events, each in a buffer of exactly its size. */
static void test_truncated_events_fail_cleanly(void)
{
    uint8_t tm[256], rw[256];
    size_t tn = table_map(tm), rn = rows_event(rw) - 2;
    bl_charsets cs = charsets();
    bl_table full;
    CHECK_INT(bl_table_parse(&full, tm, tn, &cs), 0);
    for (size_t cut = 0; cut < tn; cut++) {
        uint8_t *p = malloc(cut + 1);
        memcpy(p, tm, cut);
        bl_table t;
        if (bl_table_parse(&t, p, cut, &cs) == 0)
            bl_table_free(&t);
        free(p);
    }
    bl_rows r;
    memset(&r, 0, sizeof r);
    for (size_t cut = 0; cut < rn; cut++) {
        uint8_t *p = malloc(cut + 1);
        memcpy(p, rw, cut);
        int rc = bl_rows_decode(&r, &full, 23, p, cut, &cs);
        /* a cut at the end of the column bitmaps is an event of no rows */
        CHECK(rc < 0 || r.n_rows == 0);
        free(p);
    }
    bl_rows_free(&r);
    bl_table_free(&full);
}

/* A TABLE_MAP whose database or table name runs past the event is an error,
 * not an empty table: a table of no columns made the rows decoder loop
 * (found by fuzz_binlog). */
static void test_name_past_the_event_is_malformed(void)
{
    uint8_t tm[256];
    size_t tn = table_map(tm);
    bl_charsets cs = charsets();
    bl_table t;
    tm[8] = 200; /* database name length */
    CHECK_INT(bl_table_parse(&t, tm, tn, &cs), MBQ_EDATA);
    CHECK_CONTAINS(mbq_error_last(), "malformed TABLE_MAP event");
    tn = table_map(tm);
    tm[11] = 200; /* table name length */
    CHECK_INT(bl_table_parse(&t, tm, tn, &cs), MBQ_EDATA);
    bl_table empty;
    memset(&empty, 0, sizeof empty);
    empty.database = "d";
    empty.table = "t";
    bl_rows r;
    memset(&r, 0, sizeof r);
    static const uint8_t body[] = {1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    CHECK_INT(bl_rows_decode(&r, &empty, 23, body, sizeof body, &cs), MBQ_EDATA);
    bl_rows_free(&r);
}

/* Random corruption: any result or an error, never a bad read. */
static void test_corrupted_events_fail_cleanly(void)
{
    uint8_t tm[256], rw[256];
    size_t tn = table_map(tm), rn = rows_event(rw) - 2;
    bl_charsets cs = charsets();
    unsigned seed = 12345;
    int decoded = 0;
    for (int round = 0; round < 20000; round++) {
        uint8_t *a = malloc(tn), *b = malloc(rn);
        memcpy(a, tm, tn);
        memcpy(b, rw, rn);
        int flips = 1 + round % 4;
        for (int f = 0; f < flips; f++) {
            seed = seed * 1103515245u + 12345u;
            if ((seed >> 16) & 1)
                a[(seed >> 8) % tn] ^= (uint8_t)(1u << ((seed >> 4) % 8));
            else
                b[(seed >> 8) % rn] = (uint8_t)(seed >> 20);
        }
        bl_table t;
        if (bl_table_parse(&t, a, tn, &cs) == 0) {
            bl_rows r;
            memset(&r, 0, sizeof r);
            if (bl_rows_decode(&r, &t, 23 + round % 3, b, rn, &cs) == 0)
                decoded++;
            bl_rows_free(&r);
            bl_table_free(&t);
        }
        free(a);
        free(b);
    }
    CHECK(decoded > 0);
}

int main(void)
{
    RUN(test_double_text_is_the_servers);
    RUN(test_decimal_text);
    RUN(test_time2_text);
    RUN(test_wkb_text);
    RUN(test_hand_built_events_decode);
    RUN(test_truncated_events_fail_cleanly);
    RUN(test_name_past_the_event_is_malformed);
    RUN(test_corrupted_events_fail_cleanly);
    return test_summary();
}
