/* A growable byte buffer, always NUL-terminated (git's strbuf, curl's dynbuf).
 *
 * Use it for every string built from outside data. A zeroed mbq_buf (or
 * MBQ_BUF_INIT) is empty and valid; mbq_buf_free releases it and leaves it
 * empty again. Appends return 0 or MBQ_ENOMEM (with the message set). */
#ifndef MBQ_BUF_H
#define MBQ_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

typedef struct mbq_buf {
    char *ptr;  /* NUL-terminated data; NULL until the first append */
    size_t len; /* bytes used, without the NUL */
    size_t cap; /* bytes allocated */
} mbq_buf;

#define MBQ_BUF_INIT {NULL, 0, 0}

/* Make room for `extra` more bytes (plus the NUL). Inline for the encoders'
 * hot loops: only a buffer that must grow makes a call. */
int mbq_buf_grow_slow(mbq_buf *b, size_t extra);
static inline int mbq_buf_grow(mbq_buf *b, size_t extra)
{
    return extra < b->cap - b->len ? 0 : mbq_buf_grow_slow(b, extra); /* no overflow */
}
int mbq_buf_append(mbq_buf *b, const void *data, size_t len);
int mbq_buf_puts(mbq_buf *b, const char *s);
int mbq_buf_putc(mbq_buf *b, char c);
int mbq_buf_printf(mbq_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int mbq_buf_vprintf(mbq_buf *b, const char *fmt, va_list ap);

/* The content as a C string: "" for an empty buffer, never NULL. */
const char *mbq_buf_cstr(const mbq_buf *b);

/* Empty the buffer, keeping its memory. */
void mbq_buf_clear(mbq_buf *b);

/* Hand the allocation to the caller (who frees it with free()); the buffer is
 * left empty. Returns an allocated "" for an empty buffer, NULL on ENOMEM. */
char *mbq_buf_detach(mbq_buf *b);

void mbq_buf_free(mbq_buf *b);

/* Append an integer with thousands separators: 1234567 -> "1,234,567". */
int mbq_buf_put_count(mbq_buf *b, int64_t v);

/* Identifier quoting. MySQL: backticks, a backtick inside doubled.
 * BigQuery GoogleSQL: backticks, with backslash escapes for backslash and
 * backtick (and control characters). Never use one for the other. */
int mbq_buf_quote_mysql_ident(mbq_buf *b, const char *ident);
int mbq_buf_quote_bq_ident(mbq_buf *b, const char *ident);

/* A GoogleSQL string literal ('...' with backslash escapes). */
int mbq_buf_quote_bq_string(mbq_buf *b, const char *s);

/* Length of the valid UTF-8 sequence at p (1-4; `avail` > 0 bytes there),
 * or 0 when it is not valid UTF-8 (RFC 3629: overlong forms, surrogates and
 * code points past U+10FFFF are invalid). ASCII gives 1. Inline: the string
 * encoders call it for every non-ASCII character. */
static inline size_t mbq_utf8_seq_len(const unsigned char *p, size_t avail)
{
    unsigned c = p[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        return avail >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if (avail < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80)
            return 0;
        if (c == 0xe0 && p[1] < 0xa0)
            return 0;
        if (c == 0xed && p[1] > 0x9f)
            return 0;
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (avail < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 ||
            (p[3] & 0xc0) != 0x80)
            return 0;
        if (c == 0xf0 && p[1] < 0x90)
            return 0;
        if (c == 0xf4 && p[1] > 0x8f)
            return 0;
        return 4;
    }
    return 0;
}

/* Append `s` as a JSON string literal with quotes; bytes that are not valid
 * UTF-8 are replaced by U+FFFD, so the output is always valid JSON. */
int mbq_buf_json_string(mbq_buf *b, const char *s, size_t len);

/* Append the C string `s` as valid UTF-8: a byte that starts no valid
 * sequence becomes U+FFFD; an ASCII byte for which `subst` returns a string
 * is replaced by that string (NULL: copied as is). */
int mbq_buf_put_utf8(mbq_buf *b, const char *s, const char *(*subst)(unsigned char c));

#endif
