/* Binary values of a row image -> the text the snapshot path's SELECT
 * receives for them (binlog.h: "one mapping, two readers"). Every format
 * here is the server's own: the row image layouts are MySQL's
 * (sql/field.cc pack/unpack, strings/decimal.c decimal2bin, the
 * my_datetime_packed_from_binary family in sql-common/my_time.c), the text
 * forms are what MariaDB sends in the text protocol, checked value for value
 * against the snapshot path by tests/test_binlog_types.c. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <iconv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <math.h>
#include <time.h>

#include <mysql.h>

#include "mbq/error.h"
#include "mbq/util.h"

#include "binlog_internal.h"
#include "mbq/banned.h"

/* ---- DECIMAL ------------------------------------------------------------ */

/* `width` decimal digits of v, zero-padded (the value fits: callers
 * pass widths of its range). printf is most of the cost otherwise. */
static inline void put_digits(char *o, uint32_t v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        o[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

/* Bytes for a group of 0..9 decimal digits (strings/decimal.c dig2bytes). */
static const int dig2bytes[10] = {0, 1, 1, 2, 2, 3, 3, 4, 4, 4};

size_t bl_decimal_size(int precision, int scale)
{
    int intg = precision - scale;
    return (size_t)((intg / 9) * 4 + dig2bytes[intg % 9] + (scale / 9) * 4 + dig2bytes[scale % 9]);
}

/* decimal2bin's layout: groups of 9 digits in 4 big-endian bytes, a
 * shorter leading integer group and trailing fraction group; the first
 * byte's top bit is flipped (set = positive) and a negative number has
 * every byte inverted, so the bytes sort as the numbers do. */
int bl_text_decimal(mbq_buf *out, const uint8_t *p, int precision, int scale)
{
    int intg = precision - scale, intg0 = intg / 9, intg0x = intg % 9;
    int frac0 = scale / 9, frac0x = scale % 9;
    uint8_t mask = (p[0] & 0x80) ? 0 : 0xFF;
    char digits[100]; /* precision <= 65 */
    size_t n = 0, at = 0;
    uint8_t first = p[0] ^ 0x80;
    uint8_t group[4];
    int nb = dig2bytes[intg0x];
#define TAKE(cnt, width)                                                                           \
    do {                                                                                           \
        for (int k_ = 0; k_ < (cnt); k_++)                                                         \
            group[k_] = (uint8_t)(((at == 0) ? first : p[at]) ^ mask), at++;                       \
        put_digits(digits + n, (uint32_t)bl_be(group, (size_t)(cnt)), (width));                    \
        n += (size_t)(width);                                                                      \
    } while (0)
    if (nb)
        TAKE(nb, intg0x);
    for (int g = 0; g < intg0; g++)
        TAKE(4, 9);
    size_t int_digits = n;
    for (int g = 0; g < frac0; g++)
        TAKE(4, 9);
    if (dig2bytes[frac0x])
        TAKE(dig2bytes[frac0x], frac0x);
#undef TAKE
    size_t lead = 0;
    while (lead < int_digits && digits[lead] == '0')
        lead++;
    bool zero = true;
    for (size_t i = 0; i < n; i++)
        if (digits[i] != '0')
            zero = false;
    int rc = 0;
    if (mask && !zero)
        rc = mbq_buf_putc(out, '-');
    if (rc == 0)
        rc = lead == int_digits ? mbq_buf_putc(out, '0')
                                : mbq_buf_append(out, digits + lead, int_digits - lead);
    if (rc == 0 && scale > 0 && (rc = mbq_buf_putc(out, '.')) == 0)
        rc = mbq_buf_append(out, digits + int_digits, n - int_digits);
    return rc;
}

/* ---- DOUBLE / FLOAT ----------------------------------------------------- */

/* The shortest digits that read back as v (1..17 significant digits; the
 * round trip holds for every count above the shortest, so a binary search
 * finds it), as "d.ddde[+-]x" from printf. */
static int shortest(char *buf, size_t cap, double v)
{
    int lo = 1, hi = 17;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        snprintf(buf, cap, "%.*e", mid - 1, v);
        if (strtod(buf, NULL) == v)
            hi = mid;
        else
            lo = mid + 1;
    }
    return snprintf(buf, cap, "%.*e", lo - 1, v);
}

/* MariaDB's text for a DOUBLE: the shortest round-trip digits, written
 * fixed when the decimal exponent is within DBL_DIG of the point and in 'e'
 * form otherwise ("1e15", "0.00000015", "1.2345678901234568e20",
 * "1.1754943508222875e-38": my_gcvt's choice for its field width, as the
 * server printed them). */
int bl_text_double(mbq_buf *out, double v)
{
    char e[40], digits[20];
    if (v == 0)
        return mbq_buf_append(out, signbit(v) ? "-0" : "0", signbit(v) ? 2 : 1);
    /* The server stores no NaN or infinity (in a DOUBLE or a WKB point);
     * such bytes are a damaged event, and "nan" has no exponent to read
     * (found by fuzz_binlog). */
    if (!isfinite(v))
        return mbq_error_set(MBQ_EDATA, "a DOUBLE value that is not a finite number");
    shortest(e, sizeof e, v);
    const char *s = e;
    bool neg = *s == '-';
    s += neg;
    size_t len = 0;
    for (; *s && *s != 'e'; s++)
        if (*s != '.')
            digits[len++] = *s;
    while (len > 1 && digits[len - 1] == '0')
        len--;
    int decpt = (*s == 'e' ? atoi(s + 1) : 0) + 1; /* digits d1d2.. = 0.d1d2.. x 10^decpt */
    int rc = neg ? mbq_buf_putc(out, '-') : 0;
    if (rc < 0)
        return rc;
    if (decpt >= -14 && (decpt <= 15 || (int)len > decpt)) {
        if (decpt <= 0) {
            rc = mbq_buf_puts(out, "0.");
            for (int i = decpt; rc == 0 && i < 0; i++)
                rc = mbq_buf_putc(out, '0');
            return rc ? rc : mbq_buf_append(out, digits, len);
        }
        for (int i = 0; rc == 0 && i < (int)len; i++) {
            rc = mbq_buf_putc(out, digits[i]);
            if (rc == 0 && i + 1 == decpt && i + 1 < (int)len)
                rc = mbq_buf_putc(out, '.');
        }
        for (int i = (int)len; rc == 0 && i < decpt; i++)
            rc = mbq_buf_putc(out, '0');
        return rc;
    }
    rc = mbq_buf_putc(out, digits[0]);
    if (rc == 0 && len > 1 && (rc = mbq_buf_putc(out, '.')) == 0)
        rc = mbq_buf_append(out, digits + 1, len - 1);
    return rc ? rc : mbq_buf_printf(out, "e%d", decpt - 1);
}

/* ---- temporal ----------------------------------------------------------- */

/* The fraction's microseconds from its 0..3 bytes (fsp 1-2: hundredths in
 * one byte, 3-4: 1/10000 in two, 5-6: microseconds in three). */
static int64_t frac_usec(const uint8_t *p, int fsp)
{
    switch ((fsp + 1) / 2) {
    case 1: return (int64_t)p[0] * 10000;
    case 2: return (int64_t)bl_be(p, 2) * 100;
    case 3: return (int64_t)bl_be(p, 3);
    default: return 0;
    }
}

static int put_frac(mbq_buf *out, int64_t usec, int fsp)
{
    static const uint32_t pow10[7] = {1, 10, 100, 1000, 10000, 100000, 1000000};
    char tmp[8];
    if (fsp <= 0)
        return 0;
    tmp[0] = '.';
    put_digits(tmp + 1, (uint32_t)usec / pow10[6 - fsp], fsp);
    return mbq_buf_append(out, tmp, (size_t)fsp + 1);
}

/* "YYYY-MM-DD" and, with hms, " HH:MM:SS". */
static int put_ymd_hms(mbq_buf *out, unsigned y, unsigned mo, unsigned d, bool hms, unsigned h,
                       unsigned mi, unsigned sec)
{
    char t[20];
    put_digits(t, y % 10000, 4);
    t[4] = '-';
    put_digits(t + 5, mo % 100, 2);
    t[7] = '-';
    put_digits(t + 8, d % 100, 2);
    if (hms) {
        t[10] = ' ';
        put_digits(t + 11, h % 100, 2);
        t[13] = ':';
        put_digits(t + 14, mi % 100, 2);
        t[16] = ':';
        put_digits(t + 17, sec % 100, 2);
    }
    return mbq_buf_append(out, t, hms ? 19 : 10);
}

int bl_text_date(mbq_buf *out, uint32_t v)
{
    return put_ymd_hms(out, v >> 9, (v >> 5) & 15, v & 31, false, 0, 0, 0);
}

int bl_text_datetime2(mbq_buf *out, const uint8_t *p, int fsp)
{
    int64_t v = (int64_t)bl_be(p, 5) - 0x8000000000LL;
    int64_t ymd = v >> 17, ym = ymd >> 5, hms = v & 0x1FFFF;
    int rc = put_ymd_hms(out, (unsigned)(ym / 13), (unsigned)(ym % 13), (unsigned)(ymd & 31), true,
                         (unsigned)(hms >> 12), (unsigned)((hms >> 6) & 63), (unsigned)(hms & 63));
    return rc ? rc : put_frac(out, frac_usec(p + 5, fsp), fsp);
}

/* TIMESTAMP: seconds since the epoch, shown in UTC as the snapshot
 * session (time_zone '+00:00') sees it; 0 is the zero date. */
int bl_text_timestamp2(mbq_buf *out, const uint8_t *p, int fsp)
{
    uint64_t secs = bl_be(p, 4);
    int rc;
    if (secs == 0) {
        rc = mbq_buf_puts(out, "0000-00-00 00:00:00");
    } else {
        /* days -> civil date (Howard Hinnant's days_from_civil inverse),
         * cheaper than gmtime_r per value */
        int64_t z = (int64_t)(secs / 86400) + 719468, sod = (int64_t)(secs % 86400);
        int64_t era = z / 146097, doe = z - era * 146097;
        int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
        int64_t d = doy - (153 * mp + 2) / 5 + 1, m = mp < 10 ? mp + 3 : mp - 9;
        int64_t y = yoe + era * 400 + (m <= 2);
        rc = put_ymd_hms(out, (unsigned)y, (unsigned)m, (unsigned)d, true, (unsigned)(sod / 3600),
                         (unsigned)(sod / 60 % 60), (unsigned)(sod % 60));
    }
    return rc ? rc : put_frac(out, frac_usec(p + 4, fsp), fsp);
}

/* TIME2 (my_time_packed_from_binary): a 24-bit "hms" integer part offset
 * by 0x800000 and a fraction whose sign follows it; negative times borrow
 * one second from the integer part when the fraction is not zero. */
int bl_text_time2(mbq_buf *out, const uint8_t *p, int fsp)
{
    int64_t packed;
    int64_t intpart = (int64_t)bl_be(p, 3) - 0x800000;
    switch ((fsp + 1) / 2) {
    case 1: {
        int64_t frac = p[3]; /* unsigned: negatives store 0x100 - frac */
        if (intpart < 0 && frac) {
            intpart++;
            frac -= 0x100;
        }
        packed = intpart * (1LL << 24) + frac * 10000;
        break;
    }
    case 2: {
        int64_t frac = (int64_t)bl_be(p + 3, 2);
        if (intpart < 0 && frac) {
            intpart++;
            frac -= 0x10000;
        }
        packed = intpart * (1LL << 24) + frac * 100;
        break;
    }
    case 3:
        packed = (int64_t)bl_be(p, 6) - 0x800000000000LL;
        break;
    default:
        packed = intpart * (1LL << 24);
    }
    bool neg = packed < 0;
    if (neg)
        packed = -packed;
    int64_t hms = packed >> 24, usec = packed % (1LL << 24);
    int rc = mbq_buf_printf(out, "%s%02d:%02d:%02d", neg ? "-" : "", (int)((hms >> 12) % 1024),
                            (int)((hms >> 6) % 64), (int)(hms % 64));
    return rc ? rc : put_frac(out, usec, fsp);
}

/* ---- INET4, INET6, UUID -------------------------------------------------- */

/* The text MariaDB sends for them: dotted quad; RFC 5952-style IPv6 with
 * the IPv4-mapped and -compatible forms (its Inet6::to_string and glibc's
 * inet_ntop agree: both follow BIND's inet_ntop6); UUID as 8-4-4-4-12
 * lowercase hex of the bytes in order. */
int bl_text_ext(mbq_buf *out, int ext, const uint8_t *p, size_t len)
{
    char buf[64];
    if (ext == BL_EXT_INET4 && len == 4 && inet_ntop(AF_INET, p, buf, sizeof buf))
        return mbq_buf_puts(out, buf);
    if (ext == BL_EXT_INET6 && len == 16 && inet_ntop(AF_INET6, p, buf, sizeof buf))
        return mbq_buf_puts(out, buf);
    if (ext == BL_EXT_UUID && len == 16) {
        static const char hex[] = "0123456789abcdef";
        char *o = buf;
        for (size_t i = 0; i < 16; i++) {
            if (i == 4 || i == 6 || i == 8 || i == 10)
                *o++ = '-';
            *o++ = hex[p[i] >> 4];
            *o++ = hex[p[i] & 15];
        }
        return mbq_buf_append(out, buf, (size_t)(o - buf));
    }
    return mbq_error_set(MBQ_EDATA, "a %zu-byte value for an %s column", len,
                         ext == BL_EXT_UUID ? "UUID" : ext == BL_EXT_INET6 ? "INET6" : "INET4");
}

/* ---- character sets ------------------------------------------------------ */

/* MariaDB's latin1 is cp1252, except 0x81 0x8D 0x8F 0x90 0x9D, which it maps
 * to the C1 controls of the same code (strings/ctype-latin1.c
 * cs_to_uni). */
static const uint16_t latin1_hi[32] = {
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178};

int bl_text_latin1(mbq_buf *out, const uint8_t *p, size_t len)
{
    if (mbq_buf_grow(out, len * 3) < 0)
        return MBQ_ENOMEM;
    char *o = out->ptr + out->len;
    for (size_t i = 0; i < len; i++) {
        unsigned c = p[i];
        if (c >= 0x80 && c < 0xA0)
            c = latin1_hi[c - 0x80];
        if (c < 0x80) {
            *o++ = (char)c;
        } else if (c < 0x800) {
            *o++ = (char)(0xC0 | c >> 6);
            *o++ = (char)(0x80 | (c & 63));
        } else {
            *o++ = (char)(0xE0 | c >> 12);
            *o++ = (char)(0x80 | ((c >> 6) & 63));
            *o++ = (char)(0x80 | (c & 63));
        }
    }
    out->len = (size_t)(o - out->ptr);
    out->ptr[out->len] = '\0';
    return 0;
}

/* MariaDB charset name -> iconv's name for it. */
static const char *const iconv_map[][2] = {
    {"latin2", "ISO-8859-2"}, {"latin5", "ISO-8859-9"}, {"latin7", "ISO-8859-13"},
    {"greek", "ISO-8859-7"}, {"hebrew", "ISO-8859-8"}, {"cp1250", "CP1250"},
    {"cp1251", "CP1251"}, {"cp1256", "CP1256"}, {"cp1257", "CP1257"}, {"cp850", "CP850"},
    {"cp852", "CP852"}, {"cp866", "CP866"}, {"koi8r", "KOI8-R"}, {"koi8u", "KOI8-U"},
    {"ucs2", "UCS-2BE"}, {"utf16", "UTF-16BE"}, {"utf16le", "UTF-16LE"}, {"utf32", "UTF-32BE"},
    {"sjis", "SHIFT_JIS"}, {"cp932", "CP932"}, {"ujis", "EUC-JP"}, {"eucjpms", "EUC-JP-MS"},
    {"euckr", "EUC-KR"}, {"gb2312", "GB2312"}, {"gbk", "GBK"}, {"big5", "BIG5"},
    {"tis620", "TIS-620"}, {"macroman", "MACINTOSH"}, {"armscii8", "ARMSCII-8"},
    {"geostd8", "GEORGIAN-PS"}, {"gb18030", "GB18030"},
};

static int charset_kind(bl_charsets *cs, size_t at, const char *name)
{
    if (strcasecmp(name, "utf8mb4") == 0 || strcasecmp(name, "utf8mb3") == 0 ||
        strcasecmp(name, "utf8") == 0 || strcasecmp(name, "ascii") == 0) {
        cs->kind[at] = CS_UTF8;
    } else if (strcasecmp(name, "binary") == 0) {
        cs->kind[at] = CS_BINARY;
    } else if (strcasecmp(name, "latin1") == 0) {
        cs->kind[at] = CS_LATIN1;
    } else {
        const char *iname = NULL;
        for (size_t i = 0; i < sizeof iconv_map / sizeof iconv_map[0]; i++)
            if (strcasecmp(name, iconv_map[i][0]) == 0)
                iname = iconv_map[i][1];
        cs->kind[at] = CS_ICONV;
        cs->iconv_idx[at] = -1; /* no converter: an error when a value needs one */
        if (!iname)
            return 0;
        for (size_t i = 0; i < cs->n_iconv; i++)
            if (strcmp(cs->iconv_names[i], iname) == 0)
                cs->iconv_idx[at] = (int)i;
        if (cs->iconv_idx[at] >= 0)
            return 0;
        char **nn = realloc(cs->iconv_names, (cs->n_iconv + 1) * sizeof *nn);
        void **ni = nn ? realloc(cs->iconv, (cs->n_iconv + 1) * sizeof *ni) : NULL;
        if (nn)
            cs->iconv_names = nn;
        if (ni)
            cs->iconv = ni;
        if (!nn || !ni || !(cs->iconv_names[cs->n_iconv] = strdup(iname)))
            return MBQ_ENOMEM;
        cs->iconv[cs->n_iconv] = NULL;
        cs->iconv_idx[at] = (int)cs->n_iconv++;
    }
    return 0;
}

int bl_charsets_load(bl_charsets *cs, void *mysql)
{
    MYSQL *my = mysql;
    MYSQL_RES *res = NULL;
    int rc = 0;
    const char *q = "SELECT ID, CHARACTER_SET_NAME FROM information_schema.COLLATIONS "
                    "WHERE ID IS NOT NULL";
    if (mysql_query(my, q) != 0 || !(res = mysql_store_result(my))) {
        rc = mbq_error_set(MBQ_EMYSQL, "cannot read the server's collations: %s", mysql_error(my));
        goto done;
    }
    size_t n = (size_t)mysql_num_rows(res);
    if (!(cs->ids = calloc(n + 1, sizeof *cs->ids)) ||
        !(cs->kind = calloc(n + 1, sizeof *cs->kind)) ||
        !(cs->iconv_idx = calloc(n + 1, sizeof *cs->iconv_idx))) {
        rc = mbq_error_set(MBQ_ENOMEM, "out of memory");
        goto done;
    }
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res)) && rc == 0) {
        if (!row[0] || !row[1])
            continue;
        cs->ids[cs->n] = (uint16_t)atoi(row[0]);
        rc = charset_kind(cs, cs->n, row[1]);
        cs->n++;
    }
done:
    if (res)
        mysql_free_result(res);
    return rc;
}

void bl_charsets_free(bl_charsets *cs)
{
    for (size_t i = 0; i < cs->n_iconv; i++) {
        if (cs->iconv[i])
            iconv_close((iconv_t)cs->iconv[i]);
        free(cs->iconv_names[i]);
    }
    free(cs->iconv);
    free(cs->iconv_names);
    free(cs->ids);
    free(cs->kind);
    free(cs->iconv_idx);
    memset(cs, 0, sizeof *cs);
}

int bl_text_iconv(mbq_buf *out, bl_charsets *cs, int idx, const uint8_t *p, size_t len)
{
    if (idx < 0 || (size_t)idx >= cs->n_iconv)
        return mbq_error_set(MBQ_EDATA, "no converter to UTF-8 for this column's character set");
    if (!cs->iconv[idx]) {
        iconv_t cd = iconv_open("UTF-8", cs->iconv_names[idx]);
        if (cd == (iconv_t)-1)
            return mbq_error_set(MBQ_EDATA, "cannot convert '%s' to UTF-8: %s",
                                 cs->iconv_names[idx], strerror(errno));
        cs->iconv[idx] = cd;
    }
    iconv_t cd = (iconv_t)cs->iconv[idx];
    iconv(cd, NULL, NULL, NULL, NULL);
    char *in = (char *)p;
    size_t inleft = len;
    while (inleft > 0) {
        if (mbq_buf_grow(out, inleft * 4 + 8) < 0)
            return MBQ_ENOMEM;
        char *o = out->ptr + out->len;
        size_t oleft = out->cap - out->len - 1;
        size_t r = iconv(cd, &in, &inleft, &o, &oleft);
        out->len = (size_t)(o - out->ptr);
        if (r == (size_t)-1 && errno != E2BIG) {
            /* A byte the charset does not define: the server sends '?'. */
            if (mbq_buf_putc(out, '?') < 0)
                return MBQ_ENOMEM;
            in++;
            inleft--;
        }
    }
    out->ptr[out->len] = '\0';
    return 0;
}
