/* Every MySQL type mbq maps, with edge values, extracted from a real MariaDB
 * and decoded by a real JSON parser (json-c); each value is compared with
 * what the server holds, read back by a separate query in the form the
 * documented mapping promises. Works in database mbq_t_types. */
#include <float.h>
#include <math.h>

#include "test_mysql_util.h"

#include "mbq/error.h"

#define DB "mbq_t_types"

static MYSQL *admin;
static char *dir;

/* Column, the SQL giving the expected text (NULL where a NULL/zero date is
 * expected), and how to compare. */
enum cmp { C_TEXT, C_INT, C_FLOAT, C_DOUBLE, C_BYTES, C_JSON };
struct colspec {
    const char *name, *decl, *expect_sql;
    enum cmp cmp;
    const char *bq_type;
};

#define ZD(c) "IF(YEAR(" c ")=0 OR MONTH(" c ")=0 OR DAYOFMONTH(" c ")=0, NULL, CAST(" c " AS CHAR))"

static const struct colspec cols[] = {
    {"ti", "TINYINT", "CAST(ti AS CHAR)", C_INT, "INT64"},
    {"tiu", "TINYINT UNSIGNED", "CAST(tiu AS CHAR)", C_INT, "INT64"},
    {"t1", "TINYINT(1)", "CAST(t1 AS CHAR)", C_INT, "INT64"},
    {"si", "SMALLINT", "CAST(si AS CHAR)", C_INT, "INT64"},
    {"siu", "SMALLINT UNSIGNED", "CAST(siu AS CHAR)", C_INT, "INT64"},
    {"mi", "MEDIUMINT", "CAST(mi AS CHAR)", C_INT, "INT64"},
    {"miu", "MEDIUMINT UNSIGNED", "CAST(miu AS CHAR)", C_INT, "INT64"},
    {"i", "INT", "CAST(i AS CHAR)", C_INT, "INT64"},
    {"iu", "INT UNSIGNED", "CAST(iu AS CHAR)", C_INT, "INT64"},
    {"bi", "BIGINT", "CAST(bi AS CHAR)", C_INT, "INT64"},
    {"biu", "BIGINT UNSIGNED", "CAST(biu AS CHAR)", C_TEXT, "NUMERIC"},
    {"d", "DECIMAL(12,2)", "CAST(d AS CHAR)", C_TEXT, "NUMERIC"},
    {"dbig", "DECIMAL(65,30)", "CAST(dbig AS CHAR)", C_TEXT, "BIGNUMERIC"},
    {"dstr", "DECIMAL(65,0)", "CAST(dstr AS CHAR)", C_TEXT, "STRING"},
    {"f", "FLOAT", "CAST(CAST(f AS DOUBLE) AS CHAR)", C_FLOAT, "FLOAT64"},
    {"db", "DOUBLE", "CAST(db AS CHAR)", C_DOUBLE, "FLOAT64"},
    {"b1", "BIT(1)", "CAST(b1 + 0 AS CHAR)", C_INT, "INT64"},
    {"b8", "BIT(8)", "CAST(b8 + 0 AS CHAR)", C_INT, "INT64"},
    {"b64", "BIT(64)", "CAST(b64 + 0 AS CHAR)", C_TEXT, "NUMERIC"},
    {"c", "CHAR(10)", "c", C_TEXT, "STRING"},
    {"vc", "VARCHAR(100)", "vc", C_TEXT, "STRING"},
    {"tx", "TEXT", "tx", C_TEXT, "STRING"},
    {"lat", "VARCHAR(20) CHARACTER SET latin1", "CONVERT(lat USING utf8mb4)", C_TEXT, "STRING"},
    {"e", "ENUM('a','b','c d','it''s')", "CAST(e AS CHAR)", C_TEXT, "STRING"},
    {"st", "SET('x','y','z')", "CAST(st AS CHAR)", C_TEXT, "STRING"},
    {"bin", "BINARY(4)", "HEX(bin)", C_BYTES, "BYTES"},
    {"vb", "VARBINARY(20)", "HEX(vb)", C_BYTES, "BYTES"},
    {"bl", "BLOB", "HEX(bl)", C_BYTES, "BYTES"},
    {"dt", "DATE", ZD("dt"), C_TEXT, "DATE"},
    {"dtm", "DATETIME", ZD("dtm"), C_TEXT, "DATETIME"},
    {"dtm6", "DATETIME(6)", ZD("dtm6"), C_TEXT, "DATETIME"},
    {"ts", "TIMESTAMP(6) NULL",
     "IF(YEAR(ts)=0, NULL, DATE_FORMAT(ts, '%Y-%m-%d %H:%i:%s.%f+00:00'))", C_TEXT, "TIMESTAMP"},
    {"ts0", "TIMESTAMP NULL",
     "IF(YEAR(ts0)=0, NULL, DATE_FORMAT(ts0, '%Y-%m-%d %H:%i:%s.%f+00:00'))", C_TEXT, "TIMESTAMP"},
    {"tm", "TIME", "CAST(tm AS CHAR)", C_TEXT, "STRING"},
    {"tm6", "TIME(6)", "CAST(tm6 AS CHAR)", C_TEXT, "STRING"},
    {"yr", "YEAR", "CAST(yr + 0 AS CHAR)", C_INT, "INT64"},
    {"j", "JSON", "CAST(j AS CHAR)", C_JSON, "JSON"},
    {"g", "GEOMETRY", "ST_AsText(g)", C_TEXT, "STRING"},
    {"pt", "POINT", "ST_AsText(pt)", C_TEXT, "STRING"},
    {"Odd Name", "INT", "CAST(`Odd Name` AS CHAR)", C_INT, "INT64"},
};
#define NCOLS (sizeof cols / sizeof cols[0])

static void setup(void)
{
    tmy_begin(&admin, &dir, DB);
    char sql[8192];
    size_t n = (size_t)snprintf(sql, sizeof sql, "CREATE TABLE " DB ".all_types (id INT PRIMARY KEY");
    for (size_t i = 0; i < NCOLS; i++)
        n += (size_t)snprintf(sql + n, sizeof sql - n, ", `%s` %s", cols[i].name, cols[i].decl);
    snprintf(sql + n, sizeof sql - n, ") DEFAULT CHARSET=utf8mb4");
    tmy_exec(admin, "%s", sql);
    /* Row 1: maxima and awkward text. */
    tmy_exec(admin,
             "INSERT INTO " DB ".all_types VALUES (1, 127, 255, 2, 32767, 65535, 8388607, 16777215,"
             " 2147483647, 4294967295, 9223372036854775807, 18446744073709551615, 9999999999.99,"
             " 99999999999999999999999999999999999.999999999999999999999999999999,"
             " 99999999999999999999999999999999999999999999999999999999999999999,"
             " 3.4028234e38, 1.7976931348623157e308, b'1', b'11111111', b'%s',"
             " 'abc', 'emoji \xf0\x9f\x98\x80 \"q\" back\\\\slash\\nnl\\ttab', 'ctl \\0 \x01 \x1f end',"
             " _latin1 x'E9FF41D7', 'c d', 'x,z', x'00010200', x'00FF00', x'00000102000300',"
             " '9999-12-31', '9999-12-31 23:59:59', '9999-12-31 23:59:59.999999',"
             " '2038-01-19 03:14:07.999999', '2038-01-19 03:14:07', '838:59:59', '838:59:59.999999',"
             " 2155, '{\"a\": [1, {\"b\": \"\xc3\xbc \xf0\x9f\x98\x80\"}], \"c\": null, \"d\": \"\\\\\\\"\"}',"
             " ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))'), POINT(1.5, -2.25), 7)",
             "1111111111111111111111111111111111111111111111111111111111111111");
    /* Row 2: minima and empties. */
    tmy_exec(admin,
             "INSERT INTO " DB ".all_types VALUES (2, -128, 0, -128, -32768, 0, -8388608, 0,"
             " -2147483648, 0, -9223372036854775808, 0, -9999999999.99,"
             " -99999999999999999999999999999999999.999999999999999999999999999999,"
             " -99999999999999999999999999999999999999999999999999999999999999999,"
             " -1.17549435e-38, -2.2250738585072014e-308, b'0', b'0', b'0',"
             " '', '', '', '', 'it''s', '', x'00000000', '', '',"
             " '1000-01-01', '1000-01-01 00:00:00', '1000-01-01 00:00:00.000001',"
             " '1970-01-01 00:00:01.000001', '1970-01-01 00:00:01', '-838:59:59', '-00:00:00.000001',"
             " 1901, '[]', ST_GeomFromText('GEOMETRYCOLLECTION(POINT(0 0))'), POINT(0, 0), -7)");
    /* Row 3: NULL in every column. */
    tmy_exec(admin, "INSERT INTO " DB ".all_types (id) VALUES (3)");
    /* Row 4: zero dates (NULL in BigQuery) and plain fractions. */
    tmy_exec(admin,
             "INSERT INTO " DB ".all_types (id, f, db, dt, dtm, dtm6, ts, ts0, yr, d, j) VALUES"
             " (4, 0.1, 0.1, '0000-00-00', '0000-00-00 00:00:00', '2020-00-15 10:00:00',"
             " '0000-00-00 00:00:00', '0000-00-00 00:00:00', 0, 0.5,"
             " '{\\n  \"pretty\": [1,\\n\\t2],\\r\\n  \"s\": \"x y\"\\n}')");
}

static char *b64_to_hex(const char *s)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(s);
    char *out = calloc(n * 2 + 1, 1);
    unsigned v = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n && s[i] != '='; i++) {
        const char *p = strchr(tbl, s[i]);
        if (!p)
            return out;
        v = v << 6 | (unsigned)(p - tbl);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o += (size_t)snprintf(out + o, 3, "%02X", (v >> bits) & 0xff);
        }
    }
    return out;
}

static void compare_value(int id, const struct colspec *c, json_object *row)
{
    char *want = tmy_scalar(admin, "SELECT %s FROM " DB ".all_types WHERE id = %d", c->expect_sql,
                            id);
    json_object *v = NULL;
    bool present = json_object_object_get_ex(row, c->name[0] == 'O' ? "Odd_Name" : c->name, &v);
    if (!want) {
        if (present)
            fprintf(stderr, "  row %d column '%s': expected no key (NULL), got %s\n", id, c->name,
                    json_object_to_json_string(v));
        CHECK(!present);
        return;
    }
    if (!present) {
        fprintf(stderr, "  row %d column '%s': missing, expected '%s'\n", id, c->name, want);
        CHECK(present);
        free(want);
        return;
    }
    switch (c->cmp) {
    case C_TEXT:
        CHECK(json_object_is_type(v, json_type_string));
        if (strcmp(json_object_get_string(v), want) != 0)
            fprintf(stderr, "  row %d column '%s'\n", id, c->name);
        CHECK_STR(json_object_get_string(v), want);
        break;
    case C_INT: {
        /* A bare number up to +-(2^53 - 1), a string beyond (BigQuery's
         * rule for INT64 in JSON loads). */
        const char *digits = want[0] == '-' ? want + 1 : want;
        bool big = strlen(digits) > 16 ||
                   (strlen(digits) == 16 && strcmp(digits, "9007199254740991") > 0);
        CHECK(json_object_is_type(v, big ? json_type_string : json_type_int));
        CHECK_STR(json_object_get_string(v), want);
        break;
    }
    case C_DOUBLE:
        CHECK(json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int));
        CHECK(json_object_get_double(v) == strtod(want, NULL));
        break;
    case C_FLOAT:
        CHECK(json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int));
        CHECK((float)json_object_get_double(v) == (float)strtod(want, NULL));
        break;
    case C_JSON: {
        /* The document itself, not a string holding its text (a load job
         * takes a JSON column's value raw): equal to MariaDB's, parsed. */
        json_object *w = json_tokener_parse(want);
        CHECK(w != NULL);
        CHECK(!json_object_is_type(v, json_type_string) || json_object_is_type(w, json_type_string));
        if (!json_object_equal(v, w))
            fprintf(stderr, "  row %d column '%s': %s, expected %s\n", id, c->name,
                    json_object_to_json_string(v), want);
        CHECK(json_object_equal(v, w));
        json_object_put(w);
        break;
    }
    case C_BYTES: {
        CHECK(json_object_is_type(v, json_type_string));
        char *hex = b64_to_hex(json_object_get_string(v));
        if (strcmp(hex, want) != 0)
            fprintf(stderr, "  row %d column '%s'\n", id, c->name);
        CHECK_STR(hex, want);
        free(hex);
        break;
    }
    }
    free(want);
}

static mbq_table_schema *schema;

static void test_introspection_maps_every_column(void)
{
    mbq_mysql *c = tmy_connect(DB);
    if (!c)
        return;
    CHECK_INT(mbq_mysql_table_schema(&schema, c, DB, "all_types"), 0);
    mbq_mysql_close(c);
    if (!schema)
        return;
    CHECK_INT(schema->n_columns, NCOLS + 1);
    CHECK_INT(schema->n_pk, 1);
    for (size_t i = 0; i < NCOLS && i + 1 < schema->n_columns; i++) {
        const mbq_column *col = &schema->columns[i + 1];
        CHECK_STR(col->name, cols[i].name);
        if (strcmp(mbq_bq_type_name(col->map.bq_type), cols[i].bq_type) != 0)
            fprintf(stderr, "  column '%s'\n", col->name);
        CHECK_STR(mbq_bq_type_name(col->map.bq_type), cols[i].bq_type);
    }
    const mbq_column *e = mbq_table_schema_column(schema, "e");
    CHECK(e && e->n_values == 4);
    if (e && e->n_values == 4) {
        CHECK_STR(e->values[2], "c d");
        CHECK_STR(e->values[3], "it's");
    }
    const mbq_column *j = mbq_table_schema_column(schema, "j");
    CHECK(j && j->is_json);
    const mbq_column *biu = mbq_table_schema_column(schema, "biu");
    CHECK(biu && biu->is_unsigned && biu->nullable);
    const mbq_column *odd = mbq_table_schema_column(schema, "odd name");
    CHECK(odd && strcmp(odd->bq_name, "Odd_Name") == 0);
}

static void extract_and_compare(bool compress)
{
    if (!schema)
        return;
    mbq_mysql *c = tmy_connect(DB);
    if (!c)
        return;
    char path[512];
    snprintf(path, sizeof path, "%s/all_types%s", dir, compress ? ".json.gz" : ".json");
    mbq_extract_options o = MBQ_EXTRACT_OPTIONS_INIT;
    o.schema = schema;
    o.path = path;
    o.compress = compress;
    mbq_extract_result r;
    int rc = mbq_mysql_extract(&r, c, &o);
    if (rc)
        fprintf(stderr, "  %s\n", mbq_error_last());
    CHECK_INT(rc, 0);
    CHECK_INT(r.rows, 4);
    CHECK_INT(r.zero_dates, 5); /* dt, dtm, dtm6 (month 0), ts, ts0 of row 4 */
    CHECK(r.checksum && strncmp(r.checksum, "sha256:", 7) == 0);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(!tmy_exists(tmp));
    size_t len = 0;
    char *text = tmy_read_file(path, &len);
    CHECK(text != NULL);
    CHECK_INT(len, r.raw_bytes);
    size_t n = 0;
    json_object **lines = text ? tmy_parse_lines(text, &n) : NULL;
    CHECK(lines != NULL);
    CHECK_INT(n, 4);
    for (size_t i = 0; lines && i < n && i < 4; i++) {
        json_object *id = NULL;
        CHECK(json_object_object_get_ex(lines[i], "id", &id));
        CHECK_INT(json_object_get_int(id), (int)i + 1); /* ORDER BY pk */
        for (size_t k = 0; k < NCOLS; k++)
            compare_value((int)i + 1, &cols[k], lines[i]);
    }
    /* Row 3 is NULL everywhere: only its key is written. */
    if (lines && n >= 3)
        CHECK_INT(json_object_object_length(lines[2]), 1);
    tmy_free_lines(lines, n);
    free(text);
    mbq_extract_result_free(&r);
    mbq_mysql_close(c);
}

static void test_every_value_survives_plain_ndjson(void)
{
    extract_and_compare(false);
}

static void test_every_value_survives_gzip_ndjson(void)
{
    extract_and_compare(true);
}

/* A JSON column holding text that is not JSON (MariaDB lets a session turn
 * its check off): the value goes as a JSON string holding the text, the
 * result counts it and names the first such value, and the rest of the
 * table is unaffected. */
static void test_json_column_text_that_is_not_json_is_kept_as_a_string(void)
{
    tmy_exec(admin, "CREATE TABLE " DB ".jt (id INT PRIMARY KEY, j JSON)");
    tmy_exec(admin, "SET SESSION check_constraint_checks = 0");
    tmy_exec(admin, "INSERT INTO " DB ".jt VALUES (1, '{\"ok\": true}'), (2, '{bad'),"
                    " (3, '[1,'), (4, '\"s\"')");
    tmy_exec(admin, "SET SESSION check_constraint_checks = 1");
    mbq_mysql *c = tmy_connect(DB);
    mbq_table_schema *s = NULL;
    if (!c)
        return;
    CHECK_INT(mbq_mysql_table_schema(&s, c, DB, "jt"), 0);
    char path[512];
    snprintf(path, sizeof path, "%s/jt.json", dir);
    mbq_extract_options o = MBQ_EXTRACT_OPTIONS_INIT;
    o.schema = s;
    o.path = path;
    o.compress = false;
    mbq_extract_result r;
    CHECK_INT(mbq_mysql_extract(&r, c, &o), 0);
    CHECK_INT(r.rows, 4);
    CHECK_INT(r.not_json, 2);
    CHECK_STR(r.not_json_first, "column 'j' of the row with id=2");
    char *text = tmy_read_file(path, NULL);
    CHECK(text && strstr(text, "{\"id\":1,\"j\":{\"ok\":true}}\n"));
    CHECK(text && strstr(text, "{\"id\":2,\"j\":\"{bad\"}\n"));
    CHECK(text && strstr(text, "{\"id\":3,\"j\":\"[1,\"}\n"));
    CHECK(text && strstr(text, "{\"id\":4,\"j\":\"s\"}\n"));
    free(text);
    mbq_extract_result_free(&r);
    mbq_table_schema_free(s);
    mbq_mysql_close(c);
}

int main(void)
{
    test_require_env("MBQ_TEST_MYSQL_PORT");
    setup();
    RUN(test_introspection_maps_every_column);
    RUN(test_every_value_survives_plain_ndjson);
    RUN(test_every_value_survives_gzip_ndjson);
    RUN(test_json_column_text_that_is_not_json_is_kept_as_a_string);
    mbq_table_schema_free(schema);
    tmy_end(admin, dir, DB);
    return test_summary();
}
