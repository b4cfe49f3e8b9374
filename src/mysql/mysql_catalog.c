/* The database's tables, columns and unique indexes in three queries of
 * information_schema, whatever the number of tables (discovery looks at
 * every table of the database on every run). See mbq_mysql_catalog in
 * mbq/mysql_source.h. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mbq/error.h"
#include "mbq/mysql_source.h"
#include "mbq/util.h"

#include "mysql_internal.h"
#include "mbq/banned.h"

static int cmp_table(const void *a, const void *b)
{
    return strcmp(((const mbq_catalog_table *)a)->name, ((const mbq_catalog_table *)b)->name);
}

static mbq_catalog_table *find_table(mbq_catalog *cat, const char *name)
{
    mbq_catalog_table key = {.name = (char *)name};
    return bsearch(&key, cat->tables, cat->n, sizeof *cat->tables, cmp_table);
}

/* "SELECT <cols> FROM information_schema.<from> WHERE TABLE_SCHEMA = '<db>' <tail>" */
static int catalog_query(MYSQL_RES **res, mbq_mysql *c, const char *cols, const char *from,
                         const char *db, const char *tail)
{
    mbq_buf sql = MBQ_BUF_INIT;
    int rc;
    if ((rc = mbq_buf_printf(&sql, "SELECT %s FROM information_schema.%s WHERE TABLE_SCHEMA = ",
                             cols, from)) == 0 &&
        (rc = put_literal(&sql, c, db)) == 0 && (rc = mbq_buf_puts(&sql, tail)) == 0)
        rc = query_store(res, c, &sql);
    mbq_buf_free(&sql);
    return rc;
}

static int read_tables(mbq_catalog *cat, mbq_mysql *c, const char *db)
{
    MYSQL_RES *res = NULL;
    MYSQL_ROW row;
    /* Views have no key and no snapshot of their own: base tables only. */
    int rc = catalog_query(&res, c, "TABLE_NAME", "TABLES", db, " AND TABLE_TYPE = 'BASE TABLE'");
    if (rc < 0)
        goto done;
    size_t n = (size_t)mysql_num_rows(res);
    if (!(cat->tables = mbq_calloc(n ? n : 1, sizeof *cat->tables))) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    while ((row = mysql_fetch_row(res)) != NULL && cat->n < n) {
        if (!row[0])
            continue;
        if (!(cat->tables[cat->n].name = mbq_strdup(row[0]))) {
            rc = MBQ_ENOMEM;
            goto done;
        }
        cat->n++;
    }
    /* Byte order, not the server's collation: the same list every run. */
    qsort(cat->tables, cat->n, sizeof *cat->tables, cmp_table);
done:
    if (res)
        mysql_free_result(res);
    return rc;
}

/* Does `hay` hold `needle` (lowercase ASCII) in any letter case? */
static bool contains_nocase(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return true;
    return false;
}

static int add_column(mbq_catalog_table *t, MYSQL_ROW row)
{
    mbq_catalog_column *cols = mbq_realloc(t->columns, (t->n_columns + 1) * sizeof *cols);
    if (!cols)
        return MBQ_ENOMEM;
    t->columns = cols;
    mbq_catalog_column *col = &cols[t->n_columns];
    memset(col, 0, sizeof *col);
    t->n_columns++;
    col->name = mbq_strdup(row[1]);
    col->data_type = mbq_strdup(row[2] ? row[2] : "");
    col->nullable = row[3] && strcasecmp(row[3], "YES") == 0;
    /* MySQL says "on update CURRENT_TIMESTAMP", MariaDB
     * "on update current_timestamp()"; both in EXTRA. */
    col->on_update_now = row[4] && contains_nocase(row[4], "on update current_timestamp");
    if (!col->name || !col->data_type)
        return MBQ_ENOMEM;
    for (char *p = col->data_type; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return 0;
}

static int read_columns(mbq_catalog *cat, mbq_mysql *c, const char *db)
{
    MYSQL_RES *res = NULL;
    MYSQL_ROW row;
    int rc = catalog_query(&res, c, "TABLE_NAME, COLUMN_NAME, DATA_TYPE, IS_NULLABLE, EXTRA",
                           "COLUMNS", db, " ORDER BY TABLE_NAME, ORDINAL_POSITION");
    while (rc == 0 && (row = mysql_fetch_row(res)) != NULL) {
        mbq_catalog_table *t = row[0] && row[1] ? find_table(cat, row[0]) : NULL;
        if (t)
            rc = add_column(t, row);
    }
    if (res)
        mysql_free_result(res);
    return rc;
}

/* Append column `col` to unique index `index` of t (rows come ordered by
 * index, then position). */
static int add_index_column(mbq_catalog_table *t, const char *index, const char *col)
{
    mbq_catalog_index *ix = t->n_unique ? &t->unique[t->n_unique - 1] : NULL;
    if (!ix || strcmp(ix->name, index) != 0) {
        mbq_catalog_index *u = mbq_realloc(t->unique, (t->n_unique + 1) * sizeof *u);
        if (!u)
            return MBQ_ENOMEM;
        t->unique = u;
        ix = &u[t->n_unique++];
        memset(ix, 0, sizeof *ix);
        if (!(ix->name = mbq_strdup(index)))
            return MBQ_ENOMEM;
    }
    char **cols = mbq_realloc(ix->columns, (ix->n_columns + 1) * sizeof *cols);
    if (!cols)
        return MBQ_ENOMEM;
    ix->columns = cols;
    if (!(cols[ix->n_columns] = mbq_strdup(col)))
        return MBQ_ENOMEM;
    ix->n_columns++;
    return 0;
}

static int read_unique_indexes(mbq_catalog *cat, mbq_mysql *c, const char *db)
{
    MYSQL_RES *res = NULL;
    MYSQL_ROW row;
    int rc = catalog_query(&res, c, "TABLE_NAME, INDEX_NAME, COLUMN_NAME", "STATISTICS", db,
                           " AND NON_UNIQUE = 0 ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX");
    while (rc == 0 && (row = mysql_fetch_row(res)) != NULL) {
        mbq_catalog_table *t = row[0] && row[1] && row[2] ? find_table(cat, row[0]) : NULL;
        if (t)
            rc = add_index_column(t, row[1], row[2]);
    }
    if (res)
        mysql_free_result(res);
    return rc;
}

int mbq_mysql_catalog(mbq_catalog **out, mbq_mysql *c, const char *database)
{
    int rc;
    mbq_catalog *cat = mbq_calloc(1, sizeof *cat);
    *out = NULL;
    if (!cat)
        return MBQ_ENOMEM;
    if ((rc = read_tables(cat, c, database)) < 0 || (rc = read_columns(cat, c, database)) < 0 ||
        (rc = read_unique_indexes(cat, c, database)) < 0) {
        rc = mbq_error_wrap(rc, "cannot list the tables of database '%s': ", database);
        mbq_catalog_free(cat);
        return rc;
    }
    *out = cat;
    return 0;
}

void mbq_catalog_free(mbq_catalog *cat)
{
    if (!cat)
        return;
    for (size_t i = 0; i < cat->n; i++) {
        mbq_catalog_table *t = &cat->tables[i];
        for (size_t j = 0; j < t->n_columns; j++) {
            free(t->columns[j].name);
            free(t->columns[j].data_type);
        }
        free(t->columns);
        for (size_t j = 0; j < t->n_unique; j++) {
            for (size_t k = 0; k < t->unique[j].n_columns; k++)
                free(t->unique[j].columns[k]);
            free(t->unique[j].columns);
            free(t->unique[j].name);
        }
        free(t->unique);
        free(t->name);
    }
    free(cat->tables);
    free(cat);
}
