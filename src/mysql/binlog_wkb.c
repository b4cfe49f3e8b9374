/* Spatial values: a row image holds MySQL's internal geometry (a 4-byte
 * SRID, then OGC WKB); the snapshot path selects ST_AsText(col). This
 * writes the WKT MariaDB's ST_AsText prints (sql/spatial.cc get_data_as_wkt):
 * "POINT(1 2)", "LINESTRING(0 0,1 1)", "POLYGON((0 0,1 0,1 1,0 0))",
 * "MULTIPOINT(1 1,2 2)" (points without their own parentheses),
 * "MULTILINESTRING((..),(..))", "MULTIPOLYGON(((..)),((..)))",
 * "GEOMETRYCOLLECTION(POINT(0 0))", an empty collection as
 * "GEOMETRYCOLLECTION EMPTY"; coordinates as the server prints a DOUBLE,
 * except that -0 prints as 0. */
#include <math.h>
#include <string.h>

#include "mbq/error.h"

#include "binlog_internal.h"
#include "mbq/banned.h"

typedef struct wkb {
    const uint8_t *p, *end;
} wkb;

#define WKB_MAX_DEPTH 32 /* collections nest; a malformed value must not recurse forever */

static int rd_u32(uint32_t *out, wkb *w, bool le)
{
    if (w->end - w->p < 4)
        return -1;
    *out = le ? bl_le32(w->p) : (uint32_t)bl_be(w->p, 4);
    w->p += 4;
    return 0;
}

static int put_coord(mbq_buf *b, wkb *w, bool le)
{
    if (w->end - w->p < 16)
        return -1;
    for (int i = 0; i < 2; i++) {
        uint64_t bits = le ? bl_le64(w->p) : bl_be(w->p, 8);
        double d;
        memcpy(&d, &bits, 8);
        w->p += 8;
        if (d == 0)
            d = 0; /* -0 prints as 0 */
        if ((i && mbq_buf_putc(b, ' ') < 0) || bl_text_double(b, d) < 0)
            return MBQ_ENOMEM;
    }
    return 0;
}

/* n points "x y,x y" */
static int put_points(mbq_buf *b, wkb *w, bool le)
{
    uint32_t n;
    if (rd_u32(&n, w, le) < 0 || n > (size_t)(w->end - w->p) / 16)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        int rc = i ? mbq_buf_putc(b, ',') : 0;
        if (rc < 0 || (rc = put_coord(b, w, le)) != 0)
            return rc;
    }
    return 0;
}

/* "(x y,..),(x y,..)" */
static int put_rings(mbq_buf *b, wkb *w, bool le)
{
    uint32_t n;
    if (rd_u32(&n, w, le) < 0 || n > (size_t)(w->end - w->p) / 4)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        int rc;
        if ((rc = mbq_buf_puts(b, i ? ",(" : "(")) < 0 || (rc = put_points(b, w, le)) != 0 ||
            (rc = mbq_buf_putc(b, ')')) < 0)
            return rc;
    }
    return 0;
}

static const char *const type_names[] = {NULL, "POINT", "LINESTRING", "POLYGON", "MULTIPOINT",
                                         "MULTILINESTRING", "MULTIPOLYGON", "GEOMETRYCOLLECTION"};

static int put_geometry(mbq_buf *b, wkb *w, int depth, bool named);

/* A multi-geometry's members: each is a full WKB geometry of its own (byte
 * order, type), written without its name ("(..)" or, for points, "x y"). */
static int put_members(mbq_buf *b, wkb *w, bool le, uint32_t type, int depth)
{
    uint32_t n;
    if (rd_u32(&n, w, le) < 0 || n > (size_t)(w->end - w->p) / 5)
        return -1;
    if (type == 7 && n == 0)
        return mbq_buf_puts(b, " EMPTY");
    int rc = mbq_buf_putc(b, '(');
    for (uint32_t i = 0; rc == 0 && i < n; i++) {
        if (i)
            rc = mbq_buf_putc(b, ',');
        if (rc == 0)
            rc = put_geometry(b, w, depth + 1, type == 7);
    }
    return rc ? rc : mbq_buf_putc(b, ')');
}

static int put_geometry(mbq_buf *b, wkb *w, int depth, bool named)
{
    uint32_t type;
    if (depth > WKB_MAX_DEPTH || w->p >= w->end)
        return -1;
    bool le = *w->p++ == 1;
    if (rd_u32(&type, w, le) < 0 || type < 1 || type > 7)
        return -1;
    int rc = named ? mbq_buf_puts(b, type_names[type]) : 0;
    if (rc < 0)
        return rc;
    switch (type) {
    case 1:
        if ((rc = named ? mbq_buf_putc(b, '(') : 0) < 0 || (rc = put_coord(b, w, le)) != 0)
            return rc;
        return named ? mbq_buf_putc(b, ')') : 0;
    case 2:
        if ((rc = mbq_buf_putc(b, '(')) < 0 || (rc = put_points(b, w, le)) != 0)
            return rc;
        return mbq_buf_putc(b, ')');
    case 3:
        if ((rc = mbq_buf_putc(b, '(')) < 0 || (rc = put_rings(b, w, le)) != 0)
            return rc;
        return mbq_buf_putc(b, ')');
    default:
        return put_members(b, w, le, type, depth);
    }
}

int bl_wkb_to_wkt(mbq_buf *out, const uint8_t *p, size_t len)
{
    wkb w = {p, p + len};
    size_t start = out->len;
    int rc = put_geometry(out, &w, 0, true);
    if (rc == -1) {
        out->len = start;
        if (out->ptr)
            out->ptr[start] = '\0';
        return mbq_error_set(MBQ_EDATA, "malformed spatial value (%zu bytes of WKB)", len);
    }
    return rc;
}
