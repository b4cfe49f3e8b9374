/* Private to the binlog reader (src/mysql/binlog*.c): the table map cache,
 * the per-event arena and the value formatters shared by its files:
 *   binlog.c         connection, the event stream, event parsing
 *   binlog_sql.c     positions and the source's settings (SQL side)
 *   binlog_tablemap.c TABLE_MAP metadata; binlog_rows.c row images -> values
 *   binlog_text.c    binary values -> the snapshot path's text
 *   binlog_wkb.c     spatial WKB -> WKT as ST_AsText prints it
 * Nothing outside src/mysql includes this header. */
#ifndef MBQ_BINLOG_INTERNAL_H
#define MBQ_BINLOG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mbq/binlog.h"
#include "mbq/buf.h"

/* Column types as the binlog writes them (MySQL's enum_field_types). */
enum {
    BT_DECIMAL = 0, BT_TINY = 1, BT_SHORT = 2, BT_LONG = 3, BT_FLOAT = 4, BT_DOUBLE = 5,
    BT_NULL = 6, BT_TIMESTAMP = 7, BT_LONGLONG = 8, BT_INT24 = 9, BT_DATE = 10, BT_TIME = 11,
    BT_DATETIME = 12, BT_YEAR = 13, BT_NEWDATE = 14, BT_VARCHAR = 15, BT_BIT = 16,
    BT_TIMESTAMP2 = 17, BT_DATETIME2 = 18, BT_TIME2 = 19, BT_JSON = 245, BT_NEWDECIMAL = 246,
    BT_ENUM = 247, BT_SET = 248, BT_TINY_BLOB = 249, BT_MEDIUM_BLOB = 250, BT_LONG_BLOB = 251,
    BT_BLOB = 252, BT_VAR_STRING = 253, BT_STRING = 254, BT_GEOMETRY = 255,
};

/* How a character column's bytes become UTF-8 (the snapshot session's
 * character_set_results is utf8mb4: the server converts, so must we). */
typedef enum bl_cs {
    CS_UTF8 = 0,  /* utf8mb4, utf8mb3, ascii: already UTF-8 */
    CS_BINARY,    /* bytes, kept as they are */
    CS_LATIN1,    /* MariaDB's latin1 (cp1252 with 5 gaps kept as C1 controls) */
    CS_ICONV,     /* another charset, through iconv */
} bl_cs;

/* MariaDB's INET4, INET6 and UUID reach the binlog as BINARY(4)/(16):
 * only information_schema tells them apart (binlog.c resolves them). */
enum { BL_EXT_NONE = 0, BL_EXT_INET4, BL_EXT_INET6, BL_EXT_UUID };

typedef struct bl_column {
    uint8_t type;        /* the binlog type, with STRING's real type (ENUM/SET) resolved */
    uint16_t meta;       /* type metadata (length, precision/scale, fsp, ...) */
    bool is_unsigned;
    bl_cs cs;
    int iconv_idx;       /* for CS_ICONV: index into the reader's converters */
    char *name;
    uint8_t ext;         /* BL_EXT_*: a MariaDB type the TABLE_MAP shows as BINARY(n) */
    char **members;      /* ENUM/SET member text (UTF-8), in order */
    size_t n_members;
} bl_column;

typedef struct bl_table {
    uint64_t id;
    char *database, *table;
    bool wanted;         /* passes the reader's table filter */
    size_t n;
    bl_column *cols;
    const char **names;  /* cols[i].name, for the event */
    uint8_t *raw;        /* the TABLE_MAP body it was parsed from (binlog.c's cache) */
    size_t raw_len;
} bl_table;

/* Collation id -> how its charset converts (from information_schema at
 * open: the server, not a table compiled in here, knows its collations). */
typedef struct bl_charsets {
    uint16_t *ids;
    bl_cs *kind;
    int *iconv_idx;
    size_t n;
    char **iconv_names;  /* iconv source names, one converter each */
    void **iconv;        /* iconv_t, opened on first use */
    size_t n_iconv;
} bl_charsets;

/* ---- binlog_rows.c ---- */
int bl_table_parse(bl_table *t, const uint8_t *p, size_t len, const bl_charsets *cs);
void bl_table_free(bl_table *t);

/* Decode a rows event's body (after the common header, without checksum)
 * into b's row arrays; values are copied into `arena`. */
typedef struct bl_rows {
    mbq_buf arena;               /* all value bytes of the event */
    mbq_binlog_value *vals;      /* 2 images x n_rows x n_columns, data as arena offsets
                                    until bl_rows_fix */
    size_t vals_cap;
    mbq_binlog_row *rows;
    size_t rows_cap, n_rows;
} bl_rows;

int bl_rows_decode(bl_rows *r, const bl_table *t, int kind, const uint8_t *p, size_t len,
                   bl_charsets *cs);
void bl_rows_free(bl_rows *r);

/* ---- binlog_text.c ---- */
/* Each appends the text of one value to `out`; p/len the bytes in the row
 * image. */
int bl_text_decimal(mbq_buf *out, const uint8_t *p, int precision, int scale);
size_t bl_decimal_size(int precision, int scale);
int bl_text_double(mbq_buf *out, double v);
int bl_text_datetime2(mbq_buf *out, const uint8_t *p, int fsp);
int bl_text_timestamp2(mbq_buf *out, const uint8_t *p, int fsp);
int bl_text_time2(mbq_buf *out, const uint8_t *p, int fsp);
int bl_text_date(mbq_buf *out, uint32_t v);
int bl_text_ext(mbq_buf *out, int ext, const uint8_t *p, size_t len);
int bl_text_latin1(mbq_buf *out, const uint8_t *p, size_t len);
int bl_text_iconv(mbq_buf *out, bl_charsets *cs, int idx, const uint8_t *p, size_t len);
int bl_charsets_load(bl_charsets *cs, void *mysql);
void bl_charsets_free(bl_charsets *cs);

/* ---- binlog_ext.c ---- */
typedef struct bl_ext_entry {
    char *key;           /* "db\ntable" */
    char *column;        /* NULL: the table has none (a resolved table with no such column) */
    uint8_t ext;
} bl_ext_entry;

typedef struct bl_ext_cache {
    bl_ext_entry *e;
    size_t n;
} bl_ext_cache;

struct mbq_mysql;
/* Mark t's INET4/INET6/UUID columns (by name, from information_schema on
 * `meta`, once per table until bl_ext_clear). */
int bl_ext_resolve(bl_ext_cache *cache, struct mbq_mysql *meta, bl_table *t);
void bl_ext_clear(bl_ext_cache *cache);

/* ---- binlog_wkb.c ---- */
/* WKB (after MySQL's 4-byte SRID) -> WKT as ST_AsText prints it. */
int bl_wkb_to_wkt(mbq_buf *out, const uint8_t *p, size_t len);

/* little-endian / big-endian readers */
static inline uint32_t bl_le16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static inline uint32_t bl_le24(const uint8_t *p) { return bl_le16(p) | (uint32_t)p[2] << 16; }
static inline uint32_t bl_le32(const uint8_t *p) { return bl_le24(p) | (uint32_t)p[3] << 24; }
static inline uint64_t bl_le48(const uint8_t *p)
{
    return (uint64_t)bl_le32(p) | (uint64_t)bl_le16(p + 4) << 32;
}
static inline uint64_t bl_le64(const uint8_t *p)
{
    return (uint64_t)bl_le32(p) | (uint64_t)bl_le32(p + 4) << 32;
}
static inline uint64_t bl_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* A length-encoded integer (the client protocol's packed int): 0 and
 * *p advanced, or -1 when it runs past end. */
static inline int bl_packed(uint64_t *out, const uint8_t **p, const uint8_t *end)
{
    if (*p >= end)
        return -1;
    uint8_t c = **p;
    size_t n = c < 251 ? 0 : c == 252 ? 2 : c == 253 ? 3 : c == 254 ? 8 : 99;
    if (n == 99 || (size_t)(end - *p) < n + 1)
        return -1;
    *out = n == 0 ? c : n == 2 ? bl_le16(*p + 1) : n == 3 ? bl_le24(*p + 1) : bl_le64(*p + 1);
    *p += n + 1;
    return 0;
}

#endif
