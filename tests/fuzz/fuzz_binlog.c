/* libFuzzer harness for the binlog reader's decoders: a TABLE_MAP event's
 * body (bl_table_parse: column types, type metadata, the optional metadata
 * with names, signedness, charsets, ENUM/SET members) and a rows event's body
 * against it (bl_rows_decode: bitmaps, NULL maps, every column type's row
 * image, WKB, DECIMAL, temporal, charset conversion). The bytes come from
 * the source server; whatever they are, the decoders must return a value
 * for every present column or an error with a message, and never read out
 * of bounds, crash or leak.
 *
 * Input: [u16 LE: n][n bytes: TABLE_MAP body][u8: rows kind][rest: rows body].
 * Built with -DMBQ_FUZZ=ON (clang). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mbq/error.h"
#include "mysql/binlog_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* utf8mb4, binary and latin1 collations: the conversions that need no server. */
static bl_charsets charsets(void)
{
    static uint16_t ids[] = {45, 46, 63, 8, 33};
    static bl_cs kind[] = {CS_UTF8, CS_UTF8, CS_BINARY, CS_LATIN1, CS_UTF8};
    static int idx[] = {0, 0, 0, 0, 0};
    bl_charsets cs;
    memset(&cs, 0, sizeof cs);
    cs.ids = ids;
    cs.kind = kind;
    cs.iconv_idx = idx;
    cs.n = sizeof ids / sizeof ids[0];
    return cs;
}

static volatile unsigned sink;

/* Every value's bytes must be readable (ASan checks each one) and every
 * row must carry the images its kind has. */
static void check_rows(const bl_rows *r, const bl_table *t)
{
    unsigned sum = 0;
    for (size_t i = 0; i < r->n_rows; i++) {
        const mbq_binlog_row *row = &r->rows[i];
        if ((row->op == 'I' && (!row->after || row->before)) ||
            (row->op == 'D' && (!row->before || row->after)) ||
            (row->op == 'U' && (!row->before || !row->after)))
            abort();
        const mbq_binlog_value *imgs[2] = {row->before, row->after};
        for (int k = 0; k < 2; k++)
            for (size_t c = 0; imgs[k] && c < t->n; c++)
                for (size_t b = 0; imgs[k][c].data && b < imgs[k][c].len; b++)
                    sum += (uint8_t)imgs[k][c].data[b];
    }
    sink = sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    size_t n = (size_t)data[0] | (size_t)data[1] << 8;
    if (n > size - 3)
        return 0;
    /* Exact-size copies: a read one past either body is caught. */
    uint8_t *tm = malloc(n ? n : 1);
    size_t rn = size - 3 - n;
    uint8_t *rw = malloc(rn ? rn : 1);
    if (!tm || !rw)
        abort();
    memcpy(tm, data + 2, n);
    /* WRITE, UPDATE, DELETE rows events, v1 and v2 type codes */
    static const int kinds[] = {23, 24, 25, 30, 31, 32};
    int kind = kinds[data[2 + n] % 6];
    memcpy(rw, data + 3 + n, rn);
    bl_charsets cs = charsets();
    bl_table t;
    if (bl_table_parse(&t, tm, n, &cs) == 0) {
        bl_rows r;
        memset(&r, 0, sizeof r);
        int rc = bl_rows_decode(&r, &t, kind, rw, rn, &cs);
        if (rc == 0)
            check_rows(&r, &t);
        else if (!*mbq_error_last())
            abort(); /* an error must say what */
        bl_rows_free(&r);
        bl_table_free(&t);
    } else if (!*mbq_error_last()) {
        abort();
    }
    mbq_error_clear();
    free(tm);
    free(rw);
    return 0;
}
