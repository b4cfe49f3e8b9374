#!/usr/bin/env python3
"""`mbq check` with tables in mode cdc, against the test MariaDB (label
`cdc`): the binlog settings change data capture needs and the replication
privileges, each failing requirement reported by name (binlog_format,
binlog_row_image, binlog_row_metadata, REPLICATION SLAVE with the GRANT to
run), and a pass when all hold. The global settings are put back after each
case, whatever happens."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mbqtest import Workspace, check, check_eq, config_set, mysql, require_services, run, run_cases

PW = "cdc-check-pw"


def workspace(user):
    ws = Workspace("cdc_check")
    mysql("CREATE TABLE orders (id INT PRIMARY KEY, v VARCHAR(10))", db=ws.db)
    ws.write_config([{"name": "orders", "primary_key": "id", "mode": "cdc"},
                     {"name": "orders_copy", "primary_key": "id", "target": "orders_plain"}])
    mysql("CREATE TABLE orders_copy (id INT PRIMARY KEY)", db=ws.db)
    config_set(ws, "mysql", "user", user)
    config_set(ws, "mysql", "password", PW)
    return ws


def users():
    mysql("DROP USER IF EXISTS 'mbq_cdc_ok'@'%%'; DROP USER IF EXISTS 'mbq_cdc_norepl'@'%%';"
          "CREATE USER 'mbq_cdc_ok'@'%%' IDENTIFIED BY '%s';"
          "GRANT SELECT ON *.* TO 'mbq_cdc_ok'@'%%';"
          "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'mbq_cdc_ok'@'%%';"
          "CREATE USER 'mbq_cdc_norepl'@'%%' IDENTIFIED BY '%s';"
          "GRANT SELECT ON *.* TO 'mbq_cdc_norepl'@'%%';" % (PW, PW))


def mbq_check(ws):
    return run([os.environ["MBQ_BIN"], "check", "--config", ws.config], ws.env(), 120)


def with_global(name, value, fn):
    old = mysql("SELECT @@GLOBAL.%s" % name)[0][0]
    mysql("SET GLOBAL %s = '%s'" % (name, value))
    try:
        fn()
    finally:
        mysql("SET GLOBAL %s = '%s'" % (name, old))


def test_all_requirements_hold():
    ws = workspace("mbq_cdc_ok")
    try:
        r = mbq_check(ws)
        check_eq(r.returncode, 0, "check exit code (%r)" % r)
        check("ok    binlog: log_bin ON, binlog_format ROW, binlog_row_image FULL, "
              "binlog_row_metadata FULL, replication privileges held (1 table(s) in mode cdc, "
              "server_id 4" in r.stdout, "the binlog line: %r" % r)
        check("ok    table 'orders': 2 columns, change data capture (binlog)" in r.stdout,
              "the cdc table line: %r" % r)
        check("info  table 'orders': deletes: hard (from the binlog)" in r.stdout, "deletes: %r" % r)
    finally:
        ws.cleanup()


def failing_setting(name, bad, fragment):
    def case():
        ws = workspace("mbq_cdc_ok")
        try:
            def probe():
                r = mbq_check(ws)
                check_eq(r.returncode, 1, "check exit code (%r)" % r)
                check(("FAIL  binlog: " + fragment) in r.stdout, "names %s: %r" % (name, r))
                # The other tables are still checked.
                check("ok    table 'orders_copy'" in r.stdout, "other tables checked: %r" % r)
            with_global(name, bad, probe)
        finally:
            ws.cleanup()
    case.__name__ = "test_%s_%s" % (name, bad.lower())
    return case


def test_user_without_replication_slave():
    ws = workspace("mbq_cdc_norepl")
    try:
        r = mbq_check(ws)
        check_eq(r.returncode, 1, "check exit code (%r)" % r)
        check("FAIL  binlog: user " in r.stdout and "lacks the REPLICATION SLAVE privilege" in r.stdout,
              "names the privilege: %r" % r)
        check("GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO " in r.stdout,
              "says the GRANT to run: %r" % r)
    finally:
        ws.cleanup()


def test_no_cdc_table_no_binlog_check():
    """Without a cdc table the binlog is none of check's business: a
    STATEMENT binlog and a user without replication rights pass."""
    ws = workspace("mbq_cdc_norepl")
    try:
        ws.write_config([{"name": "orders", "primary_key": "id"}])
        config_set(ws, "mysql", "user", "mbq_cdc_norepl")
        config_set(ws, "mysql", "password", PW)

        def probe():
            r = mbq_check(ws)
            check_eq(r.returncode, 0, "check exit code (%r)" % r)
            check("binlog" not in r.stdout, "no binlog line: %r" % r)
        with_global("binlog_format", "STATEMENT", probe)
    finally:
        ws.cleanup()


if __name__ == "__main__":
    require_services()
    users()
    run_cases([
        test_all_requirements_hold,
        failing_setting("binlog_format", "STATEMENT", "binlog_format is STATEMENT; change data "
                        "capture needs ROW"),
        failing_setting("binlog_format", "MIXED", "binlog_format is MIXED; change data capture "
                        "needs ROW"),
        failing_setting("binlog_row_image", "MINIMAL", "binlog_row_image is MINIMAL; change data "
                        "capture needs FULL"),
        failing_setting("binlog_row_metadata", "MINIMAL", "binlog_row_metadata is MINIMAL; change "
                        "data capture needs FULL"),
        test_user_without_replication_slave,
        test_no_cdc_table_no_binlog_check,
    ])
