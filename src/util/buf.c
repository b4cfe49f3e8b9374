/* Growable buffer and quoting (see mbq/buf.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mbq/buf.h"
#include "mbq/error.h"
#include "mbq/util.h"
#include "mbq/banned.h"

int mbq_buf_grow_slow(mbq_buf *b, size_t extra)
{
    if (extra < b->cap - b->len)
        return 0;
    if (extra > SIZE_MAX / 2 - b->len)
        return mbq_error_set(MBQ_ENOMEM, "buffer size overflow");
    size_t want = b->len + extra + 1;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < want)
        cap *= 2;
    char *p = mbq_realloc(b->ptr, cap);
    if (!p)
        return MBQ_ENOMEM;
    b->ptr = p;
    b->cap = cap;
    return 0;
}

int mbq_buf_append(mbq_buf *b, const void *data, size_t len)
{
    if (mbq_buf_grow(b, len) < 0)
        return MBQ_ENOMEM;
    if (len)
        memcpy(b->ptr + b->len, data, len);
    b->len += len;
    b->ptr[b->len] = '\0';
    return 0;
}

int mbq_buf_puts(mbq_buf *b, const char *s)
{
    return mbq_buf_append(b, s, strlen(s));
}

int mbq_buf_putc(mbq_buf *b, char c)
{
    return mbq_buf_append(b, &c, 1);
}

int mbq_buf_vprintf(mbq_buf *b, const char *fmt, va_list ap)
{
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (n < 0)
        return mbq_error_set(MBQ_ERR, "invalid format string");
    if (mbq_buf_grow(b, (size_t)n) < 0)
        return MBQ_ENOMEM;
    vsnprintf(b->ptr + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int mbq_buf_printf(mbq_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = mbq_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

const char *mbq_buf_cstr(const mbq_buf *b)
{
    return b->ptr ? b->ptr : "";
}

void mbq_buf_clear(mbq_buf *b)
{
    b->len = 0;
    if (b->ptr)
        b->ptr[0] = '\0';
}

char *mbq_buf_detach(mbq_buf *b)
{
    char *p = b->ptr;
    if (!p)
        p = mbq_strdup("");
    b->ptr = NULL;
    b->len = b->cap = 0;
    return p;
}

void mbq_buf_free(mbq_buf *b)
{
    free(b->ptr);
    b->ptr = NULL;
    b->len = b->cap = 0;
}

int mbq_buf_put_count(mbq_buf *b, int64_t v)
{
    char digits[32];
    unsigned long long u = v < 0 ? (unsigned long long)(-(v + 1)) + 1 : (unsigned long long)v;
    int n = snprintf(digits, sizeof digits, "%llu", u);
    if (n < 0)
        return mbq_error_set(MBQ_EINTERNAL, "cannot format a number");
    if (v < 0 && mbq_buf_putc(b, '-'))
        return MBQ_ENOMEM;
    for (int i = 0; i < n; i++) {
        if (i > 0 && (n - i) % 3 == 0 && mbq_buf_putc(b, ','))
            return MBQ_ENOMEM;
        if (mbq_buf_putc(b, digits[i]))
            return MBQ_ENOMEM;
    }
    return 0;
}

int mbq_buf_quote_mysql_ident(mbq_buf *b, const char *ident)
{
    int rc = mbq_buf_putc(b, '`');
    for (const char *p = ident; rc == 0 && *p; p++)
        rc = *p == '`' ? mbq_buf_append(b, "``", 2) : mbq_buf_putc(b, *p);
    return rc ? rc : mbq_buf_putc(b, '`');
}

/* GoogleSQL quoted identifiers and string literals share the escape rules of
 * its lexical structure: \\ \` \' \" \n \r \t and \xhh for other controls. */
static int put_bq_escaped(mbq_buf *b, const char *s, char quote)
{
    int rc = mbq_buf_putc(b, quote);
    for (const unsigned char *p = (const unsigned char *)s; rc == 0 && *p; p++) {
        switch (*p) {
        case '\\': rc = mbq_buf_append(b, "\\\\", 2); break;
        case '`': rc = mbq_buf_append(b, "\\`", 2); break;
        case '\'': rc = mbq_buf_append(b, "\\'", 2); break;
        case '"': rc = mbq_buf_append(b, "\\\"", 2); break;
        case '\n': rc = mbq_buf_append(b, "\\n", 2); break;
        case '\r': rc = mbq_buf_append(b, "\\r", 2); break;
        case '\t': rc = mbq_buf_append(b, "\\t", 2); break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                rc = mbq_buf_printf(b, "\\x%02x", *p);
            else
                rc = mbq_buf_putc(b, (char)*p);
        }
    }
    return rc ? rc : mbq_buf_putc(b, quote);
}

int mbq_buf_quote_bq_ident(mbq_buf *b, const char *ident)
{
    return put_bq_escaped(b, ident, '`');
}

int mbq_buf_quote_bq_string(mbq_buf *b, const char *s)
{
    return put_bq_escaped(b, s, '\'');
}

int mbq_buf_put_utf8(mbq_buf *b, const char *s, const char *(*subst)(unsigned char c))
{
    const unsigned char *p = (const unsigned char *)s;
    size_t len = strlen(s), i = 0;
    while (i < len) {
        size_t n = mbq_utf8_seq_len(p + i, len - i);
        const char *rep = n == 0 ? "\xEF\xBF\xBD" : n == 1 ? subst(p[i]) : NULL;
        int rc = rep ? mbq_buf_puts(b, rep) : mbq_buf_append(b, p + i, n);
        if (rc)
            return rc;
        i += n ? n : 1;
    }
    return 0;
}

int mbq_buf_json_string(mbq_buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    const unsigned char *end = p + len;
    if (mbq_buf_grow(b, len + 2) < 0)
        return MBQ_ENOMEM;
    int rc = mbq_buf_putc(b, '"');
    while (rc == 0 && p < end) {
        /* Copy the longest run that needs no escaping in one append. */
        const unsigned char *run = p;
        while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
            p++;
        if (p > run)
            rc = mbq_buf_append(b, run, (size_t)(p - run));
        if (rc || p >= end)
            break;
        unsigned c = *p;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            rc = mbq_buf_append(b, esc, 2);
            p++;
        } else if (c < 0x20) {
            switch (c) {
            case '\n': rc = mbq_buf_append(b, "\\n", 2); break;
            case '\r': rc = mbq_buf_append(b, "\\r", 2); break;
            case '\t': rc = mbq_buf_append(b, "\\t", 2); break;
            case '\b': rc = mbq_buf_append(b, "\\b", 2); break;
            case '\f': rc = mbq_buf_append(b, "\\f", 2); break;
            default: {
                char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                rc = mbq_buf_append(b, u, 6);
            }
            }
            p++;
        } else {
            size_t n = mbq_utf8_seq_len(p, (size_t)(end - p));
            if (n == 0) {
                rc = mbq_buf_append(b, "\xef\xbf\xbd", 3); /* U+FFFD */
                p++;
            } else {
                rc = mbq_buf_append(b, p, n);
                p += n;
            }
        }
    }
    return rc ? rc : mbq_buf_putc(b, '"');
}
