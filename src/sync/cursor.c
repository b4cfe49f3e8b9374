/* Cursor values: validation of user input and lookback arithmetic.
 *
 * The journal stores a cursor as MySQL's own text form of the column's value
 * (what the extractor read), and MySQL compares the column with that text.
 * Timestamp cursors are compared by MySQL as DATETIME, so any text MySQL
 * parses as a datetime works; user input is normalised to
 * 'YYYY-MM-DD HH:MM:SS.ffffff' so that a typo is caught here, not in SQL. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mbq/error.h"
#include "mbq/machine.h"
#include "mbq/util.h"
#include "mbq/banned.h"

/* Parse 'YYYY-MM-DD[( |T)HH:MM:SS[.f{1,6}]][Z|+00:00]' into seconds since the
 * epoch (UTC) and microseconds. Returns 0 or -1. */
static int parse_datetime(const char *s, int64_t *secs, int *micros)
{
    int y, mo, d, h = 0, mi = 0, se = 0, used = 0;
    *micros = 0;
    if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &used) != 3 || used != 10)
        return -1;
    const char *p = s + used;
    if (*p == ' ' || *p == 'T') {
        int n2 = 0;
        if (sscanf(p + 1, "%2d:%2d:%2d%n", &h, &mi, &se, &n2) != 3 || n2 != 8)
            return -1;
        p += 1 + n2;
        if (*p == '.') {
            int digits = 0, frac = 0;
            for (p++; *p >= '0' && *p <= '9'; p++, digits++) {
                if (digits >= 6)
                    return -1;
                frac = frac * 10 + (*p - '0');
            }
            if (digits == 0)
                return -1;
            for (; digits < 6; digits++)
                frac *= 10;
            *micros = frac;
        }
    }
    if (strcmp(p, "Z") == 0 || strcmp(p, "+00:00") == 0 || strcmp(p, "UTC") == 0 ||
        strcmp(p, " UTC") == 0)
        p += strlen(p);
    if (*p)
        return -1;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 59)
        return -1;
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = se;
    time_t t = timegm(&tm);
    /* timegm normalises 2026-02-30 to March 2: reject such dates. */
    struct tm back;
    if (!gmtime_r(&t, &back) || back.tm_mday != d || back.tm_mon != mo - 1)
        return -1;
    *secs = (int64_t)t;
    return 0;
}

static int format_datetime(char **out, int64_t secs, int micros)
{
    time_t t = (time_t)secs;
    struct tm tm;
    if (!gmtime_r(&t, &tm))
        return mbq_error_set(MBQ_ECONFIG, "cursor arithmetic out of range");
    char buf[64];
    snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d.%06d", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, micros);
    *out = mbq_strdup(buf);
    return *out ? 0 : MBQ_ENOMEM;
}

int mbq_cursor_normalize(char **out, const char *kind, const char *value)
{
    *out = NULL;
    if (!value || !*value)
        return mbq_error_set(MBQ_ECONFIG, "empty cursor value");
    if (kind && strcmp(kind, "integer") == 0) {
        int64_t v;
        if (mbq_parse_i64(&v, value) < 0)
            return mbq_error_set(MBQ_ECONFIG,
                                 "cannot parse cursor value '%s': the cursor column is an "
                                 "integer, expected a whole number",
                                 value);
        char buf[32];
        snprintf(buf, sizeof buf, "%lld", (long long)v);
        *out = mbq_strdup(buf);
        return *out ? 0 : MBQ_ENOMEM;
    }
    int64_t secs;
    int micros;
    if (parse_datetime(value, &secs, &micros) < 0)
        return mbq_error_set(MBQ_ECONFIG,
                             "cannot parse cursor value '%s': expected a UTC time as "
                             "'YYYY-MM-DD HH:MM:SS[.ffffff]' (or 'YYYY-MM-DD')",
                             value);
    return format_datetime(out, secs, micros);
}

int mbq_cursor_minus(char **out, const char *kind, const char *cursor, int64_t lookback_ms)
{
    *out = NULL;
    if (!cursor)
        return 0;
    if (lookback_ms <= 0 || !kind || strcmp(kind, "timestamp") != 0) {
        *out = mbq_strdup(cursor);
        return *out ? 0 : MBQ_ENOMEM;
    }
    int64_t secs;
    int micros;
    if (parse_datetime(cursor, &secs, &micros) < 0)
        return mbq_error_set(MBQ_EJOURNAL, "the journal's cursor '%s' is not a datetime",
                             cursor);
    int64_t total_us = secs * 1000000 + micros - lookback_ms * 1000;
    int64_t s = total_us >= 0 ? total_us / 1000000 : -((-total_us + 999999) / 1000000);
    return format_datetime(out, s, (int)(total_us - s * 1000000));
}
