/* One mapping, two readers: every type mbq maps, with edge values, written
 * to a real MariaDB, read back through the binlog (mbq_binlog_next) and
 * through the snapshot path (mbq_mysql_extract), each value encoded with
 * mbq_typemap_encode and the column's mapping: the NDJSON line of a row
 * read from a row image must be byte-identical to the snapshot's line for
 * that row, for inserts (after image), updates (before and after) and
 * deletes (before image). Works in database mbq_t_binlog_types. */
#include "test_binlog_util.h"

#include "mbq/typemap.h"

#define DB "mbq_t_binlog_types"
#define NROWS 8

static MYSQL *admin;
static char *dir;

/* A column and its value in each row (SQL literals; NULL = SQL NULL). */
struct col {
    const char *name, *decl;
    const char *v[NROWS];
};

#define LONGTXT "REPEAT('\xc3\xa9t\xc3\xa9 ', 40000)"
#define GC "ST_GeomFromText('GEOMETRYCOLLECTION(POINT(0 0),LINESTRING(1 1,2 2),POLYGON((0 0,1 0,1 1,0 0)),MULTIPOINT(1 1,-2 3))')"

static const struct col cols[] = {
    {"ti", "TINYINT", {"127", "-128", NULL, "0", "-1", "1", "100", "-100"}},
    {"tiu", "TINYINT UNSIGNED", {"255", "0", NULL, "1", "128", "127", "2", "200"}},
    {"t1", "TINYINT(1)", {"1", "-128", NULL, "0", "2", "127", "1", "0"}},
    {"si", "SMALLINT", {"32767", "-32768", NULL, "0", "-300", "300", "1", "-1"}},
    {"siu", "SMALLINT UNSIGNED", {"65535", "0", NULL, "1", "32768", "256", "2", "3"}},
    {"mi", "MEDIUMINT", {"8388607", "-8388608", NULL, "0", "-1", "65536", "-65537", "7"}},
    {"miu", "MEDIUMINT UNSIGNED", {"16777215", "0", NULL, "8388608", "1", "2", "3", "4"}},
    {"i", "INT", {"2147483647", "-2147483648", NULL, "0", "-1", "16777216", "-16777217", "5"}},
    {"iu", "INT UNSIGNED", {"4294967295", "0", NULL, "2147483648", "1", "2", "3", "4"}},
    {"izf", "INT(6) ZEROFILL", {"42", "0", NULL, "999999", "1234567", "1", "10", "100"}},
    {"bi", "BIGINT",
     {"9223372036854775807", "-9223372036854775808", NULL, "0", "9007199254740993",
      "-9007199254740993", "9007199254740991", "-1"}},
    {"biu", "BIGINT UNSIGNED",
     {"18446744073709551615", "0", NULL, "9223372036854775808", "1", "2", "3", "4"}},
    {"d", "DECIMAL(12,2)",
     {"9999999999.99", "-9999999999.99", NULL, "0", "-0.01", "0.5", "1", "-1234.5"}},
    {"d0", "DECIMAL(10,0)", {"9999999999", "-9999999999", NULL, "0", "-1", "1", "10", "123456789"}},
    {"d55", "DECIMAL(5,5)", {"0.99999", "-0.99999", NULL, "0", "0.00001", "-0.00001", "0.5", "0.1"}},
    {"d189", "DECIMAL(18,9)",
     {"999999999.999999999", "-999999999.999999999", NULL, "0", "-0.000000001", "1.1", "-1",
      "123456789.123456789"}},
    {"d1910", "DECIMAL(19,10)",
     {"999999999.9999999999", "-999999999.9999999999", NULL, "0", "0.0000000001", "-5", "5.5",
      "1"}},
    {"dbig", "DECIMAL(65,30)",
     {"99999999999999999999999999999999999.999999999999999999999999999999",
      "-99999999999999999999999999999999999.999999999999999999999999999999", NULL, "0",
      "0.000000000000000000000000000001", "-1", "12345678901234567890.5", "7"}},
    {"dstr", "DECIMAL(65,0)",
     {"99999999999999999999999999999999999999999999999999999999999999999",
      "-99999999999999999999999999999999999999999999999999999999999999999", NULL, "0", "-1",
      "1", "1000000000", "999999999"}},
    {"f", "FLOAT",
     {"3.4028234e38", "-1.17549435e-38", NULL, "0.1", "-0.0", "1e-45", "16777217", "-3.25"}},
    {"db", "DOUBLE",
     {"1.7976931348623157e308", "-2.2250738585072014e-308", NULL, "0.1", "-0.0", "4.9e-324",
      "1e15", "123456789012345678"}},
    {"db2", "DOUBLE",
     {"1e16", "1.5e-7", NULL, "1e-15", "1e-14", "1234567890123456.7", "0.000009999999747378752",
      "-1e100"}},
    {"b1", "BIT(1)", {"b'1'", "b'0'", NULL, "b'1'", "b'0'", "b'1'", "b'0'", "b'1'"}},
    {"b8", "BIT(8)", {"b'11111111'", "b'0'", NULL, "b'10000000'", "1", "2", "3", "127"}},
    {"b13", "BIT(13)", {"b'1111111111111'", "b'0'", NULL, "256", "1", "4096", "8191", "7"}},
    {"b64", "BIT(64)",
     {"b'1111111111111111111111111111111111111111111111111111111111111111'", "b'0'", NULL,
      "9007199254740993", "1", "2", "3", "4"}},
    {"c", "CHAR(10)", {"'abc'", "''", NULL, "'trail   '", "'  lead'", "'\xc3\xa9\xc3\xa9'", "' '", "'0123456789'"}},
    {"c40", "CHAR(100)", {"REPEAT('ab', 50)", "''", NULL, "'x'", "'\xf0\x9f\x98\x80'", "'y '", "'z'", "'q'"}},
    {"clat", "CHAR(10) CHARACTER SET latin1",
     {"_latin1 x'E9FF41D7'", "''", NULL, "_latin1 x'80819F20'", "'a'", "'b'", "'c'", "'d'"}},
    {"vc", "VARCHAR(100)",
     {"'emoji \xf0\x9f\x98\x80 \"q\" back\\\\slash\\nnl\\ttab'", "''", NULL,
      "'ctl \\0 \x01 \x1f end'", "'trail  '", "'x'", "'\xe4\xb8\xad\xe6\x96\x87'", "'y'"}},
    {"vc300", "VARCHAR(300)", {"REPEAT('x', 300)", "''", NULL, "'a'", "REPEAT('\xc3\xa9', 300)", "'b'", "'c'", "'d'"}},
    {"vc3", "VARCHAR(20) CHARACTER SET utf8mb3",
     {"'\xc3\xa9\xe4\xb8\xad'", "''", NULL, "'a'", "'b'", "'c'", "'d'", "'e'"}},
    {"vlat", "VARCHAR(20) CHARACTER SET latin1",
     {"_latin1 x'E9FF41D7'", "''", NULL, "_latin1 x'808D8F909D'", "'plain'", "'a'", "'b'", "'c'"}},
    {"vcyr", "VARCHAR(20) CHARACTER SET cp1251",
     {"_cp1251 x'CFF0E8E2E5F2'", "''", NULL, "'a'", "'b'", "'c'", "'d'", "'e'"}},
    {"cucs", "CHAR(6) CHARACTER SET ucs2",
     {"_utf8mb4 '\xe4\xb8\xa0x \xe4\xb8\xa0'", "''", NULL, "'a '", "_utf8mb4 '\xc3\xa9'", "'b'", "'c'", "'d'"}},
    {"v16", "VARCHAR(20) CHARACTER SET utf16",
     {"_utf8mb4 '\xf0\x9f\x98\x80 \xe4\xb8\xa0'", "''", NULL, "'a '", "'b'", "'c'", "'d'", "'e'"}},
    {"tt", "TINYTEXT", {"'tiny'", "''", NULL, "'a'", "'b'", "'c'", "'d'", "'e'"}},
    {"tx", "TEXT", {"'text \xc3\xa9'", "''", NULL, "REPEAT('t', 60000)", "'b'", "'c'", "'d'", "'e'"}},
    {"mt", "MEDIUMTEXT", {"'medium'", "''", NULL, "REPEAT('m', 70000)", "'b'", "'c'", "'d'", "'e'"}},
    {"lt", "LONGTEXT", {LONGTXT, "''", NULL, "'a'", "'b'", "'c'", "'d'", "'e'"}},
    {"e", "ENUM('a','b','c d','it''s','\xc3\xa9t\xc3\xa9')",
     {"'c d'", "'a'", NULL, "'it''s'", "'\xc3\xa9t\xc3\xa9'", "''", "'b'", "2"}},
    {"elat", "ENUM('x','\xc3\xa9') CHARACTER SET latin1",
     {"'\xc3\xa9'", "'x'", NULL, "'x'", "'\xc3\xa9'", "'x'", "'x'", "'x'"}},
    {"st", "SET('x','y','z')", {"'x,z'", "''", NULL, "'x,y,z'", "'y'", "'z'", "'x'", "'y,z'"}},
    {"bin", "BINARY(4)",
     {"x'00010200'", "x'00000000'", NULL, "x'41'", "''", "x'FFFFFFFF'", "x'20'", "x'41424344'"}},
    {"vb", "VARBINARY(20)", {"x'00FF00'", "''", NULL, "x'20'", "x'00'", "x'80'", "'a'", "'b'"}},
    {"tb", "TINYBLOB", {"x'00FF'", "''", NULL, "x'01'", "x'02'", "x'03'", "x'04'", "x'05'"}},
    {"bl", "BLOB", {"x'00000102000300'", "''", NULL, "REPEAT(x'00FF', 30000)", "x'02'", "x'03'", "x'04'", "x'05'"}},
    {"lb", "LONGBLOB", {"REPEAT(x'00FF10', 200000)", "''", NULL, "x'01'", "x'02'", "x'03'", "x'04'", "x'05'"}},
    {"dt", "DATE",
     {"'9999-12-31'", "'1000-01-01'", NULL, "'0000-00-00'", "'2024-02-29'", "'2020-00-15'", "'1970-01-01'", "'0001-01-01'"}},
    {"dtm", "DATETIME",
     {"'9999-12-31 23:59:59'", "'1000-01-01 00:00:00'", NULL, "'0000-00-00 00:00:00'",
      "'2024-02-29 12:34:56'", "'2020-00-15 10:00:00'", "'1970-01-01 00:00:00'", "'2000-01-01 00:00:01'"}},
    {"dtm1", "DATETIME(1)", {"'9999-12-31 23:59:59.9'", "'1000-01-01 00:00:00.1'", NULL, "'2024-01-01 00:00:00'", "'2024-01-01 00:00:00.5'", "'2024-01-01'", "'2024-01-01 1:2:3.4'", "'2024-01-01'"}},
    {"dtm2", "DATETIME(2)", {"'9999-12-31 23:59:59.99'", "'1000-01-01 00:00:00.01'", NULL, "'2024-01-01'", "'2024-01-01 00:00:00.5'", "'2024-01-01'", "'2024-01-01'", "'2024-01-01'"}},
    {"dtm3", "DATETIME(3)", {"'9999-12-31 23:59:59.999'", "'1000-01-01 00:00:00.001'", NULL, "'2024-01-01'", "'2024-01-01 00:00:00.5'", "'2024-01-01'", "'2024-01-01'", "'2024-01-01'"}},
    {"dtm4", "DATETIME(4)", {"'9999-12-31 23:59:59.9999'", "'1000-01-01 00:00:00.0001'", NULL, "'2024-01-01'", "'2024-01-01 00:00:00.5'", "'2024-01-01'", "'2024-01-01'", "'2024-01-01'"}},
    {"dtm5", "DATETIME(5)", {"'9999-12-31 23:59:59.99999'", "'1000-01-01 00:00:00.00001'", NULL, "'2024-01-01'", "'2024-01-01 00:00:00.5'", "'2024-01-01'", "'2024-01-01'", "'2024-01-01'"}},
    {"dtm6", "DATETIME(6)", {"'9999-12-31 23:59:59.999999'", "'1000-01-01 00:00:00.000001'", NULL, "'0000-00-00 00:00:00'", "'2024-01-01 00:00:00.5'", "'2024-01-01'", "'2024-01-01'", "'2024-01-01'"}},
    {"ts", "TIMESTAMP(6) NULL",
     {"'2038-01-19 03:14:07.999999'", "'1970-01-01 00:00:01.000001'", NULL, "'0000-00-00 00:00:00'",
      "'2024-02-29 12:00:00.5'", "'2001-09-09 01:46:40'", "'1999-12-31 23:59:59.1'", "'2024-06-01'"}},
    {"ts0", "TIMESTAMP NULL",
     {"'2038-01-19 03:14:07'", "'1970-01-01 00:00:01'", NULL, "'0000-00-00 00:00:00'", "'2024-02-29 12:00:00'", "'2000-01-01'", "'2000-01-01'", "'2000-01-01'"}},
    {"ts3", "TIMESTAMP(3) NULL", {"'2038-01-19 03:14:07.999'", "'1970-01-01 00:00:01.001'", NULL, "'2000-01-01'", "'2024-01-01 00:00:00.5'", "'2000-01-01'", "'2000-01-01'", "'2000-01-01'"}},
    {"tm", "TIME", {"'838:59:59'", "'-838:59:59'", NULL, "'00:00:00'", "'-00:00:01'", "'12:34:56'", "'-1:00:00'", "'100:00:00'"}},
    {"tm1", "TIME(1)", {"'838:59:59.9'", "'-838:59:59.9'", NULL, "'-00:00:00.1'", "'-00:00:01.5'", "'00:00:00.1'", "'-12:00:00'", "'1:00:00'"}},
    {"tm2", "TIME(2)", {"'838:59:59.99'", "'-838:59:59.99'", NULL, "'-00:00:00.01'", "'-00:00:01.5'", "'00:00:00.01'", "'-12:00:00'", "'1:00:00'"}},
    {"tm3", "TIME(3)", {"'838:59:59.999'", "'-838:59:59.999'", NULL, "'-00:00:00.001'", "'-00:00:01.5'", "'00:00:00.001'", "'-12:00:00'", "'1:00:00'"}},
    {"tm4", "TIME(4)", {"'838:59:59.9999'", "'-838:59:59.9999'", NULL, "'-00:00:00.0001'", "'-00:00:01.5'", "'00:00:00.0001'", "'-12:00:00'", "'1:00:00'"}},
    {"tm5", "TIME(5)", {"'838:59:59.99999'", "'-838:59:59.99999'", NULL, "'-00:00:00.00001'", "'-00:00:01.5'", "'00:00:00.00001'", "'-12:00:00'", "'1:00:00'"}},
    {"tm6", "TIME(6)", {"'838:59:59.999999'", "'-838:59:59.999999'", NULL, "'-00:00:00.000001'", "'-00:00:01.5'", "'00:00:00.000001'", "'-12:00:00'", "'1:00:00'"}},
    {"yr", "YEAR", {"2155", "1901", NULL, "0", "2000", "1970", "69", "2024"}},
    {"j", "JSON",
     {"'{\"a\": [1, {\"b\": \"\xc3\xbc \xf0\x9f\x98\x80\"}], \"c\": null, \"d\": \"\\\\\\\"\"}'", "'[]'", NULL,
      "'{\\n  \"pretty\": [1,\\n\\t2],\\r\\n  \"s\": \"x y\"\\n}'", "'1'", "'\"s\"'", "'null'", "'{}'"}},
    {"g", "GEOMETRY", {"ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))')", GC, NULL, "POINT(1.5, -2.25)", "ST_GeomFromText('GEOMETRYCOLLECTION EMPTY')", "ST_GeomFromText('MULTIPOLYGON(((0 0,1 0,1 1,0 0)),((5 5,6 5,6 6,5 5),(5.1 5.1,5.2 5.1,5.2 5.2,5.1 5.1)))')", "POINT(1e20, -0.0)", "POINT(0.1, 1e-300)"}},
    {"pt", "POINT", {"POINT(1.5, -2.25)", "POINT(0, 0)", NULL, "POINT(-180, 90)", "POINT(1e15, 1e16)", "POINT(0.000001, -1234567.890123)", "POINT(1, 2)", "POINT(3, 4)"}},
    {"ls", "LINESTRING", {"ST_GeomFromText('LINESTRING(0 0,1 1,2 3.5)')", "ST_GeomFromText('LINESTRING(0 0,1 1)')", NULL, "ST_GeomFromText('LINESTRING(-1 -1,1 1)')", "ST_GeomFromText('LINESTRING(0 0,1 1)')", "ST_GeomFromText('LINESTRING(0 0,1 1)')", "ST_GeomFromText('LINESTRING(0 0,1 1)')", "ST_GeomFromText('LINESTRING(0 0,1 1)')"}},
    {"pg", "POLYGON", {"ST_GeomFromText('POLYGON((0 0,10 0,10 10,0 10,0 0),(1 1,2 1,2 2,1 1))')", "ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))')", NULL, "ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))')", "ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))')", "ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))')", "ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))')", "ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))')"}},
    {"mpt", "MULTIPOINT", {"ST_GeomFromText('MULTIPOINT(1 1,2 2)')", "ST_GeomFromText('MULTIPOINT(0 0)')", NULL, "ST_GeomFromText('MULTIPOINT(0 0)')", "ST_GeomFromText('MULTIPOINT(0 0)')", "ST_GeomFromText('MULTIPOINT(0 0)')", "ST_GeomFromText('MULTIPOINT(0 0)')", "ST_GeomFromText('MULTIPOINT(0 0)')"}},
    {"mls", "MULTILINESTRING", {"ST_GeomFromText('MULTILINESTRING((0 0,1 1),(2 2,3 3))')", "ST_GeomFromText('MULTILINESTRING((0 0,1 1))')", NULL, "ST_GeomFromText('MULTILINESTRING((0 0,1 1))')", "ST_GeomFromText('MULTILINESTRING((0 0,1 1))')", "ST_GeomFromText('MULTILINESTRING((0 0,1 1))')", "ST_GeomFromText('MULTILINESTRING((0 0,1 1))')", "ST_GeomFromText('MULTILINESTRING((0 0,1 1))')"}},
    {"mpg", "MULTIPOLYGON", {"ST_GeomFromText('MULTIPOLYGON(((0 0,1 0,1 1,0 0)),((5 5,6 5,6 6,5 5)))')", "ST_GeomFromText('MULTIPOLYGON(((0 0,1 0,1 1,0 0)))')", NULL, "ST_GeomFromText('MULTIPOLYGON(((0 0,1 0,1 1,0 0)))')", "ST_GeomFromText('MULTIPOLYGON(((0 0,1 0,1 1,0 0)))')", "ST_GeomFromText('MULTIPOLYGON(((0 0,1 0,1 1,0 0)))')", "ST_GeomFromText('MULTIPOLYGON(((0 0,1 0,1 1,0 0)))')", "ST_GeomFromText('MULTIPOLYGON(((0 0,1 0,1 1,0 0)))')"}},
    {"gc", "GEOMETRYCOLLECTION", {GC, "ST_GeomFromText('GEOMETRYCOLLECTION(POINT(0 0))')", NULL, "ST_GeomFromText('GEOMETRYCOLLECTION EMPTY')", GC, GC, GC, GC}},
    {"ip6", "INET6", {"'2001:db8::ff00:42:8329'", "'::'", NULL, "'::1'", "'::ffff:192.0.2.1'", "'::1.2.3.4'", "'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'", "'1::'"}},
    {"ip4", "INET4", {"'255.255.255.255'", "'0.0.0.0'", NULL, "'192.0.2.1'", "'10.0.0.1'", "'1.2.3.4'", "'127.0.0.1'", "'8.8.8.8'"}},
    {"uu", "UUID", {"'123e4567-e89b-12d3-a456-426655440000'", "'00000000-0000-0000-0000-000000000000'", NULL, "'ffffffff-ffff-ffff-ffff-ffffffffffff'", "'6ccd780c-baba-1026-9564-5b8c656024db'", "'6ccd780c-baba-1026-9564-5b8c656024dc'", "'00000000-0000-0000-0000-000000000001'", "'10000000-0000-0000-0000-000000000000'"}},
    /* after the spatial columns: the charset fields count those too */
    {"vlat2", "VARCHAR(20) CHARACTER SET latin1",
     {"_latin1 x'E9'", "''", NULL, "'a'", "_latin1 x'FF'", "'c'", "'d'", "'e'"}},
    {"Odd Name", "INT", {"7", "-7", NULL, "0", "1", "2", "3", "4"}},
};
#define NCOLS (sizeof cols / sizeof cols[0])

static void create_tables(void)
{
    mbq_buf sql = MBQ_BUF_INIT;
    mbq_buf_puts(&sql, "CREATE TABLE " DB ".src (id INT PRIMARY KEY");
    for (size_t i = 0; i < NCOLS; i++)
        mbq_buf_printf(&sql, ", `%s` %s", cols[i].name, cols[i].decl);
    mbq_buf_puts(&sql, ") DEFAULT CHARSET=utf8mb4");
    tmy_exec(admin, "%s", sql.ptr);
    tmy_exec(admin, "CREATE TABLE " DB ".t LIKE " DB ".src");
    for (int r = 0; r < NROWS; r++) {
        mbq_buf_clear(&sql);
        mbq_buf_printf(&sql, "INSERT INTO " DB ".src VALUES (%d", r + 1);
        for (size_t i = 0; i < NCOLS; i++)
            mbq_buf_printf(&sql, ", %s", cols[i].v[r] ? cols[i].v[r] : "NULL");
        mbq_buf_puts(&sql, ")");
        tmy_exec(admin, "%s", sql.ptr);
    }
    mbq_buf_free(&sql);
}

/* The snapshot path's NDJSON of table t, now. */
static char *extract_now(const mbq_table_schema *s, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.ndjson", dir, name);
    mbq_mysql *c = tmy_connect(DB);
    mbq_extract_options o = MBQ_EXTRACT_OPTIONS_INIT;
    o.schema = s;
    o.path = path;
    o.compress = false;
    mbq_extract_result r;
    memset(&r, 0, sizeof r);
    int rc = mbq_mysql_extract(&r, c, &o);
    if (rc != 0)
        fprintf(stderr, "  extract failed: %s\n", mbq_error_last());
    CHECK_INT(rc, 0);
    mbq_extract_result_free(&r);
    mbq_mysql_close(c);
    return tmy_read_file(path, NULL);
}

/* The line of row `id` in an extract ("" when absent). */
static char *line_of(const char *text, int id)
{
    char key[32];
    int kl = snprintf(key, sizeof key, "{\"id\":%d", id);
    const char *end = text ? text + strlen(text) : NULL;
    for (const char *p = text; p && p < end;) {
        /* memchr: ASan's strict_string_checks makes strchr scan to the end */
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p + 1) : (size_t)(end - p);
        if (strncmp(p, key, (size_t)kl) == 0 && (p[kl] == ',' || p[kl] == '}')) {
            char *out = malloc(n + 1);
            memcpy(out, p, n);
            out[n] = '\0';
            return out;
        }
        p += n;
    }
    return strdup("");
}

/* A row image as the extract's line: keys are the BigQuery names, NULLs
 * and zero dates left out (mysql_extract.c encode_row). */
static char *line_from_image(const mbq_table_schema *s, const mbq_binlog_event *ev,
                             const mbq_binlog_value *img)
{
    mbq_buf b = MBQ_BUF_INIT;
    CHECK_INT(ev->n_columns, s->n_columns);
    mbq_buf_putc(&b, '{');
    bool first = true;
    for (size_t i = 0; i < s->n_columns && i < ev->n_columns; i++) {
        CHECK_STR(ev->column_names[i], s->columns[i].name);
        if (!img[i].data)
            continue;
        size_t mark = b.len;
        if (!first)
            mbq_buf_putc(&b, ',');
        mbq_buf_json_string(&b, s->columns[i].bq_name, strlen(s->columns[i].bq_name));
        mbq_buf_putc(&b, ':');
        int rc = mbq_typemap_encode(&b, s->columns[i].map.enc, img[i].data, img[i].len);
        if (rc == 1) {
            b.len = mark;
            b.ptr[mark] = '\0';
            continue;
        }
        if (rc < 0)
            fprintf(stderr, "  column %s: %s\n", s->columns[i].name, mbq_error_last());
        CHECK(rc >= 0);
        first = false;
    }
    mbq_buf_puts(&b, "}\n");
    return mbq_buf_detach(&b);
}

/* Say which column differs, not just that 300 KB lines do. */
static void explain_diff(const char *got, const char *want)
{
    size_t i = 0;
    while (got[i] && got[i] == want[i])
        i++;
    size_t from = i > 60 ? i - 60 : 0;
    fprintf(stderr, "  first difference at byte %zu:\n    binlog:   ...%.140s\n    snapshot: ...%.140s\n",
            i, got + from, want + from);
}

static int compare(const char *what, int id, char *got, const char *text)
{
    char *want = line_of(text, id);
    int same = strcmp(got, want) == 0;
    if (!same) {
        fprintf(stderr, "  %s of row %d differs from the snapshot's line\n", what, id);
        explain_diff(got, want);
    }
    CHECK(same);
    free(want);
    free(got);
    return same;
}

/* Read the rows of table t up to the next COMMIT and compare each image
 * with the extract(s). */
static void read_and_compare(mbq_binlog *b, const mbq_table_schema *s, char want_op,
                             const char *before, const char *after)
{
    mbq_binlog_event ev;
    size_t seen = 0;
    for (;;) {
        int rc = tbl_next_own(b, &ev, DB);
        if (rc != 0)
            fprintf(stderr, "  read failed: %s\n", mbq_error_last());
        CHECK_INT(rc, 0);
        if (rc != 0 || ev.kind == MBQ_BINLOG_COMMIT)
            break;
        CHECK_INT(ev.kind, MBQ_BINLOG_ROWS);
        if (ev.kind != MBQ_BINLOG_ROWS)
            break;
        for (size_t r = 0; r < ev.n_rows; r++, seen++) {
            const mbq_binlog_row *row = &ev.rows[r];
            CHECK_INT(row->op, want_op);
            const mbq_binlog_value *key = row->after ? row->after : row->before;
            char *ids = tbl_val(&key[0]);
            int id = atoi(ids);
            free(ids);
            if (row->before)
                compare("the before image", id, line_from_image(s, &ev, row->before), before);
            if (row->after)
                compare("the after image", id, line_from_image(s, &ev, row->after), after);
        }
    }
    CHECK_INT(seen, NROWS);
}

static void test_every_type_reads_as_the_snapshot_path_reads_it(void)
{
    mbq_mysql *c = tmy_connect(DB);
    mbq_table_schema *s = NULL;
    CHECK_INT(mbq_mysql_table_schema(&s, c, DB, "t"), 0);
    mbq_mysql_close(c);
    if (!s)
        return;
    mbq_binlog_pos start = tbl_current();
    mbq_binlog *b = tbl_open(start, DB, "t", 1000);
    CHECK(b != NULL);
    if (!b)
        goto done;
    /* Inserts: the after images are the rows as the snapshot reads them. */
    tmy_exec(admin, "INSERT INTO " DB ".t SELECT * FROM " DB ".src");
    char *a = extract_now(s, "a");
    read_and_compare(b, s, 'I', NULL, a);
    /* Updates: every row takes the values of another row. */
    mbq_buf sql = MBQ_BUF_INIT;
    mbq_buf_puts(&sql, "UPDATE " DB ".t dst JOIN " DB ".src src ON src.id = dst.id % " 
                       "8 + 1 SET ");
    for (size_t i = 0; i < NCOLS; i++)
        mbq_buf_printf(&sql, "%sdst.`%s` = src.`%s`", i ? ", " : "", cols[i].name, cols[i].name);
    tmy_exec(admin, "%s", sql.ptr);
    mbq_buf_free(&sql);
    char *bb = extract_now(s, "b");
    read_and_compare(b, s, 'U', a, bb);
    /* Deletes: the before images are the rows as they were. */
    tmy_exec(admin, "DELETE FROM " DB ".t");
    read_and_compare(b, s, 'D', bb, NULL);
    free(a);
    free(bb);
    mbq_binlog_close(b);
done:
    mbq_table_schema_free(s);
}

int main(void)
{
    test_require_env("MBQ_TEST_MYSQL_PORT");
    tmy_begin(&admin, &dir, DB);
    create_tables();
    RUN(test_every_type_reads_as_the_snapshot_path_reads_it);
    tmy_end(admin, dir, DB);
    return test_summary();
}
