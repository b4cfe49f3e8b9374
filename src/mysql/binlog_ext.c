/* MariaDB's INET4, INET6 and UUID columns: the TABLE_MAP describes them as
 * BINARY(4) / BINARY(16) with the binary charset, exactly as a BINARY
 * column (checked against MariaDB 10.11: type 254, metadata fe10, collation
 * 63), yet the snapshot path receives their text ("::1", "1.2.3.4",
 * "123e4567-..."). Only the server's catalog tells them apart, so a wanted
 * table whose TABLE_MAP has a BINARY(4) or BINARY(16) column is looked up
 * once in information_schema (on the reader's second connection: the first
 * one is busy streaming). The cache is cleared at every DDL event. A reader
 * far behind a DDL that turned a BINARY(16) into a UUID (or back) would
 * read the older rows with the newer type; such a change rewrites the
 * table, and the engine re-checks the schema at that DDL anyway. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <mysql.h>

#include "mbq/buf.h"
#include "mbq/error.h"
#include "mbq/util.h"

#include "binlog_internal.h"
#include "mysql_internal.h"
#include "mbq/banned.h"

void bl_ext_clear(bl_ext_cache *cache)
{
    for (size_t i = 0; i < cache->n; i++) {
        free(cache->e[i].key);
        free(cache->e[i].column);
    }
    free(cache->e);
    cache->e = NULL;
    cache->n = 0;
}

static int add(bl_ext_cache *cache, const char *key, const char *column, uint8_t ext)
{
    bl_ext_entry *e = realloc(cache->e, (cache->n + 1) * sizeof *e);
    if (!e)
        return mbq_error_set(MBQ_ENOMEM, "out of memory");
    cache->e = e;
    e += cache->n;
    e->ext = ext;
    e->column = NULL;
    if (!(e->key = mbq_strdup(key)) || (column && !(e->column = mbq_strdup(column)))) {
        free(e->key);
        return MBQ_ENOMEM;
    }
    cache->n++;
    return 0;
}

static int lookup(bl_ext_cache *cache, mbq_mysql *meta, const bl_table *t, const char *key)
{
    mbq_buf sql = MBQ_BUF_INIT;
    MYSQL_RES *res = NULL;
    MYSQL_ROW row;
    int rc;
    if ((rc = mbq_buf_puts(&sql, "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS "
                                 "WHERE TABLE_SCHEMA = ")) < 0 ||
        (rc = put_literal(&sql, meta, t->database)) < 0 ||
        (rc = mbq_buf_puts(&sql, " AND TABLE_NAME = ")) < 0 ||
        (rc = put_literal(&sql, meta, t->table)) < 0 ||
        (rc = mbq_buf_puts(&sql, " AND DATA_TYPE IN ('inet4', 'inet6', 'uuid')")) < 0 ||
        (rc = query_store(&res, meta, &sql)) < 0)
        goto done;
    rc = add(cache, key, NULL, BL_EXT_NONE); /* resolved, even with no such column */
    while (rc == 0 && (row = mysql_fetch_row(res))) {
        if (!row[0] || !row[1])
            continue;
        uint8_t ext = strcasecmp(row[1], "inet4") == 0   ? BL_EXT_INET4
                      : strcasecmp(row[1], "inet6") == 0 ? BL_EXT_INET6
                                                         : BL_EXT_UUID;
        rc = add(cache, key, row[0], ext);
    }
done:
    if (rc < 0)
        mbq_error_wrap(rc, "cannot read the column types of '%s.%s': ", t->database, t->table);
    if (res)
        mysql_free_result(res);
    mbq_buf_free(&sql);
    return rc;
}

int bl_ext_resolve(bl_ext_cache *cache, mbq_mysql *meta, bl_table *t)
{
    bool candidate = false;
    for (size_t i = 0; i < t->n; i++)
        if (t->cols[i].type == BT_STRING && t->cols[i].cs == CS_BINARY &&
            (t->cols[i].meta == 4 || t->cols[i].meta == 16))
            candidate = true;
    if (!candidate)
        return 0;
    mbq_buf key = MBQ_BUF_INIT;
    int rc = mbq_buf_printf(&key, "%s\n%s", t->database, t->table);
    bool known = false;
    for (size_t i = 0; rc == 0 && i < cache->n; i++)
        known |= strcmp(cache->e[i].key, key.ptr) == 0;
    if (rc == 0 && !known)
        rc = lookup(cache, meta, t, key.ptr);
    for (size_t i = 0; rc == 0 && i < cache->n; i++) {
        const bl_ext_entry *e = &cache->e[i];
        if (!e->column || strcmp(e->key, key.ptr) != 0)
            continue;
        for (size_t k = 0; k < t->n; k++)
            if (strcasecmp(t->cols[k].name, e->column) == 0 && t->cols[k].type == BT_STRING &&
                t->cols[k].cs == CS_BINARY)
                t->cols[k].ext = e->ext;
    }
    mbq_buf_free(&key);
    return rc;
}
