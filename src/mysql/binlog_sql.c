/* The binlog reader's SQL side (binlog.h): positions, the snapshot's
 * position, the source's settings and the user's privileges. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <mysql.h>
#include <mysqld_error.h>

#include "mbq/binlog.h"
#include "mbq/buf.h"
#include "mbq/error.h"
#include "mbq/util.h"

#include "mysql_internal.h"
#include "mbq/banned.h"

/* The numeric suffix of "mysql-bin.000012" (12); -1 when there is none. */
static long long file_seq(const char *f)
{
    const char *dot = strrchr(f, '.');
    if (!dot || !dot[1])
        return -1;
    long long v = 0;
    for (const char *p = dot + 1; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
    }
    return v;
}

int mbq_binlog_pos_cmp(const mbq_binlog_pos *a, const mbq_binlog_pos *b)
{
    if (!a->file[0] || !b->file[0])
        return (a->file[0] != 0) - (b->file[0] != 0);
    long long sa = file_seq(a->file), sb = file_seq(b->file);
    if (sa != sb)
        return sa < sb ? -1 : 1;
    if (sa < 0) {
        int c = strcmp(a->file, b->file);
        if (c)
            return c < 0 ? -1 : 1;
    }
    return a->pos < b->pos ? -1 : a->pos > b->pos ? 1 : 0;
}

/* Run `sql` and keep its result. */
static int query(MYSQL_RES **res, mbq_mysql *c, const char *sql, const char *what)
{
    *res = NULL;
    if (mysql_query(c->my, sql) != 0 || !(*res = mysql_store_result(c->my)))
        return my_error(c, what);
    return 0;
}

static int set_pos(mbq_binlog_pos *out, const char *file, const char *pos)
{
    memset(out, 0, sizeof *out);
    if (!file || !*file)
        return 0;
    if (strlen(file) >= sizeof out->file)
        return mbq_error_set(MBQ_EDATA, "binlog file name '%.64s...' is too long", file);
    memcpy(out->file, file, strlen(file) + 1);
    out->pos = pos ? strtoull(pos, NULL, 10) : 0;
    return 0;
}

/* The user as the server knows it ('bob'@'%'), for messages. */
static void current_user(char *buf, size_t cap, mbq_mysql *c)
{
    MYSQL_RES *res = NULL;
    MYSQL_ROW row;
    snprintf(buf, cap, "'%s'", c->user);
    if (mysql_query(c->my, "SELECT CURRENT_USER()") == 0 && (res = mysql_store_result(c->my)) &&
        (row = mysql_fetch_row(res)) && row[0]) {
        const char *at = strrchr(row[0], '@');
        if (at)
            snprintf(buf, cap, "'%.*s'@'%s'", (int)(at - row[0]), row[0], at + 1);
    }
    if (res)
        mysql_free_result(res);
}

static int no_monitor(mbq_mysql *c)
{
    char who[300];
    current_user(who, sizeof who, c);
    return mbq_error_set(MBQ_EAUTH,
                         "user %s cannot read the binlog positions (SHOW MASTER STATUS: %s): "
                         "change data capture needs BINLOG MONITOR (REPLICATION CLIENT on MySQL); "
                         "run GRANT BINLOG MONITOR, REPLICATION SLAVE ON *.* TO %s",
                         who, mysql_error(c->my), who);
}

int mbq_binlog_current_pos(mbq_binlog_pos *out, mbq_mysql *c)
{
    MYSQL_RES *res = NULL;
    MYSQL_ROW row;
    int rc = 0;
    memset(out, 0, sizeof *out);
    if (mysql_query(c->my, "SHOW MASTER STATUS") != 0) {
        rc = mysql_errno(c->my) == ER_SPECIFIC_ACCESS_DENIED_ERROR ||
                     mysql_errno(c->my) == ER_ACCESS_DENIED_ERROR
                 ? no_monitor(c)
                 : my_error(c, "cannot read the binlog position");
        goto done;
    }
    if (!(res = mysql_store_result(c->my))) {
        rc = my_error(c, "cannot read the binlog position");
        goto done;
    }
    if (!(row = mysql_fetch_row(res)) || !row[0]) {
        rc = mbq_error_set(MBQ_ECONFIG, "log_bin is OFF on MySQL at %s; change data capture needs "
                                        "the binary log (log_bin=ON)",
                           c->where);
        goto done;
    }
    rc = set_pos(out, row[0], row[1]);
done:
    if (res)
        mysql_free_result(res);
    return rc;
}

int mbq_binlog_snapshot_pos(mbq_binlog_pos *out, char **gtid, mbq_mysql *c)
{
    MYSQL_RES *res = NULL;
    MYSQL_ROW row;
    const char *file = NULL, *pos = NULL;
    int rc;
    memset(out, 0, sizeof *out);
    if (gtid)
        *gtid = NULL;
    /* MariaDB: these status variables are the binlog position of the
     * transaction's consistent snapshot (START TRANSACTION WITH CONSISTENT
     * SNAPSHOT makes InnoDB and the binlog agree on one point; see the KB's
     * "Enhancements for START TRANSACTION WITH CONSISTENT SNAPSHOT"). */
    if ((rc = query(&res, c, "SHOW SESSION STATUS LIKE 'binlog\\_snapshot\\_%'",
                    "cannot read the snapshot's binlog position")) < 0)
        goto done;
    while ((row = mysql_fetch_row(res))) {
        if (row[0] && strcasecmp(row[0], "Binlog_snapshot_file") == 0)
            file = row[1];
        else if (row[0] && strcasecmp(row[0], "Binlog_snapshot_position") == 0)
            pos = row[1];
    }
    if (!file || !*file) {
        rc = mbq_error_set(MBQ_ECONFIG, "MySQL at %s gives no binlog_snapshot_file: change data "
                                        "capture needs MariaDB with log_bin=ON",
                           c->where);
        goto done;
    }
    if ((rc = set_pos(out, file, pos)) < 0 || !gtid)
        goto done;
    mysql_free_result(res);
    /* The current GTID position, for information; the file position above
     * is what the hand-off relies on. */
    if ((rc = query(&res, c, "SELECT @@global.gtid_binlog_pos", "cannot read gtid_binlog_pos")) < 0)
        goto done;
    row = mysql_fetch_row(res);
    if (!(*gtid = mbq_strdup(row && row[0] ? row[0] : "")))
        rc = MBQ_ENOMEM;
done:
    if (res)
        mysql_free_result(res);
    return rc;
}

int mbq_binlog_file_exists(bool *out, mbq_mysql *c, const char *file)
{
    MYSQL_RES *res = NULL;
    MYSQL_ROW row;
    *out = false;
    if (mysql_query(c->my, "SHOW BINARY LOGS") != 0) {
        if (mysql_errno(c->my) == ER_SPECIFIC_ACCESS_DENIED_ERROR)
            return no_monitor(c);
        return my_error(c, "cannot list the binlog files");
    }
    if (!(res = mysql_store_result(c->my)))
        return my_error(c, "cannot list the binlog files");
    while ((row = mysql_fetch_row(res)))
        if (row[0] && strcmp(row[0], file) == 0)
            *out = true;
    mysql_free_result(res);
    return 0;
}

/* ---- mbq_binlog_check --------------------------------------------------- */

static int check_setting(mbq_mysql *c, MYSQL_RES *vars, const char *name, const char *want)
{
    MYSQL_ROW row;
    const char *val = NULL;
    mysql_data_seek(vars, 0);
    while ((row = mysql_fetch_row(vars)))
        if (row[0] && strcasecmp(row[0], name) == 0)
            val = row[1] ? row[1] : "";
    if (!val)
        return mbq_error_set(MBQ_ECONFIG,
                             "MySQL at %s has no %s setting: change data capture needs %s=%s "
                             "(MariaDB 10.5 or later, MySQL 8.0 or later)",
                             c->where, name, name, want);
    if (strcasecmp(val, want) != 0)
        return mbq_error_set(MBQ_ECONFIG, "%s is %s; change data capture needs %s (MySQL at %s)",
                             name, val, want, c->where);
    return 0;
}

/* REPLICATION SLAVE (the binlog dump) among the global grants SHOW GRANTS
 * lists: "GRANT <privileges> ON *.* TO ...". Exact tokens: REPLICATION
 * SLAVE ADMIN is another privilege. */
static bool grants_hold(MYSQL_RES *res, const char *priv)
{
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res))) {
        const char *g = row[0];
        if (!g || strncmp(g, "GRANT ", 6) != 0)
            continue;
        const char *on = strstr(g, " ON *.* TO ");
        if (!on)
            continue;
        const char *p = g + 6;
        while (p < on) {
            const char *comma = memchr(p, ',', (size_t)(on - p));
            const char *e = comma ? comma : on;
            size_t n = (size_t)(e - p);
            if ((n == strlen(priv) && strncmp(p, priv, n) == 0) ||
                (n == 14 && strncmp(p, "ALL PRIVILEGES", 14) == 0))
                return true;
            p = comma ? comma + 2 : on;
        }
    }
    return false;
}

static int check_grants(mbq_mysql *c)
{
    MYSQL_RES *res = NULL;
    int rc;
    if ((rc = query(&res, c, "SHOW GRANTS", "cannot read the user's grants")) < 0)
        return rc;
    bool ok = grants_hold(res, "REPLICATION SLAVE");
    mysql_free_result(res);
    if (!ok) {
        char who[300];
        current_user(who, sizeof who, c);
        return mbq_error_set(MBQ_EAUTH,
                             "user %s lacks the REPLICATION SLAVE privilege that reading the "
                             "binlog needs; run GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* "
                             "TO %s (REPLICATION CLIENT instead of BINLOG MONITOR on MySQL)",
                             who, who);
    }
    /* BINLOG MONITOR: probed, since a role may grant it. */
    mbq_binlog_pos p;
    return mbq_binlog_current_pos(&p, c);
}

int mbq_binlog_check(mbq_mysql *c)
{
    MYSQL_RES *vars = NULL;
    MYSQL_ROW row;
    int rc;
    if ((rc = query(&vars, c,
                    "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('log_bin', 'binlog_format', "
                    "'binlog_row_image', 'binlog_row_metadata', 'log_bin_compress')",
                    "cannot read the binlog settings")) < 0)
        goto done;
    if ((rc = check_setting(c, vars, "log_bin", "ON")) < 0 ||
        (rc = check_setting(c, vars, "binlog_format", "ROW")) < 0 ||
        (rc = check_setting(c, vars, "binlog_row_image", "FULL")) < 0 ||
        (rc = check_setting(c, vars, "binlog_row_metadata", "FULL")) < 0)
        goto done;
    mysql_data_seek(vars, 0);
    while ((row = mysql_fetch_row(vars)))
        if (row[0] && strcasecmp(row[0], "log_bin_compress") == 0 && row[1] &&
            strcasecmp(row[1], "ON") == 0) {
            /* Compressed events are not decoded by the reader. */
            rc = mbq_error_set(MBQ_ECONFIG, "log_bin_compress is ON; change data capture needs "
                                            "OFF (MySQL at %s)",
                               c->where);
            goto done;
        }
    rc = check_grants(c);
done:
    if (vars)
        mysql_free_result(vars);
    return rc;
}
