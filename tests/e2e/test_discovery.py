#!/usr/bin/env python3
"""Discovery end to end (label `state`): a database of 50 tables of mixed
shapes (single and composite primary keys, unique NOT NULL indexes, no key,
no cursor, NULLable and wrongly typed cursors, ON UPDATE CURRENT_TIMESTAMP,
odd names: spaces, a backtick, non-ASCII, a keyword, mixed case) plus a view,
synced through one `discover: true` entry with an exclude and one table
named on its own. Asserted: the resolved list `mbq check` prints (key,
cursor, mode, target per table; the skipped ones), every synced table equal
to its source, a table created later synced by the next run, a dropped one
reported, --tables with a discovered name."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mbqtest import (Workspace, bq_query, bq_table, check, check_eq, expect_ok, mysql,
                     private_emulator, require_services, run_cases)


def q(name):
    """A MySQL identifier, quoted."""
    return "`" + name.replace("`", "``") + "`"


def fnv1a(s):
    h = 2166136261
    for b in s.encode():
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


def bq_name(name):
    """The target mbq gives a table (docs/configuration.md, Patterns): one
    '_' per character other than ASCII letters, digits and '_', then the
    hash when anything changed."""
    out = "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in name)
    return out if out == name else "%s_%08x" % (out, fnv1a(name))


# name -> (DDL body, expected: None = skipped, else (key list, cursor or None))
SHAPES = {}


def shape(name, ddl, expect, rows="auto"):
    SHAPES[name] = (ddl, expect, rows)


for i in range(1, 17):  # 16 plain tables: PRIMARY KEY id, updated_at DATETIME NOT NULL
    shape("orders_%02d" % i, "id INT PRIMARY KEY, v VARCHAR(10), updated_at DATETIME(6) NOT NULL",
          (["id"], "updated_at"))
for i in range(1, 6):  # composite primary keys, cursor named modified_at
    shape("line_items_%d" % i, "order_id INT NOT NULL, line_no INT NOT NULL, qty INT, "
          "modified_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), "
          "PRIMARY KEY (order_id, line_no)", (["order_id", "line_no"], "modified_at"))
for i in range(1, 5):  # no PRIMARY KEY, a unique index on NOT NULL columns
    shape("uniq_%d" % i, "code VARCHAR(8) NOT NULL, n INT, UPDATED_AT DATETIME NOT NULL, "
          "UNIQUE KEY u_code (code)", (["code"], "UPDATED_AT"))
# Two unique indexes: one on a NULLable column (unusable), one on NOT NULL columns.
shape("uniq_pick", "a INT NULL, b INT NOT NULL, c INT NOT NULL, updated_at DATETIME NOT NULL, "
      "UNIQUE KEY a_first (a), UNIQUE KEY z_bc (b, c)", (["b", "c"], "updated_at"))
for i in range(1, 5):  # no usable key at all
    shape("nokey_%d" % i, "x INT, updated_at DATETIME NOT NULL", None)
shape("nokey_nullable_unique", "x INT NULL, UNIQUE KEY ux (x)", None)
for i in range(1, 6):  # a key but no cursor: full refresh
    shape("nocursor_%d" % i, "id BIGINT PRIMARY KEY, name VARCHAR(20)", (["id"], None))
for i in range(1, 4):  # ON UPDATE CURRENT_TIMESTAMP under another name
    shape("touched_%d" % i, "id INT PRIMARY KEY, ts TIMESTAMP NOT NULL DEFAULT "
          "CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP", (["id"], "ts"))
shape("nullable_cursor_1", "id INT PRIMARY KEY, updated_at DATETIME NULL", (["id"], None))
shape("nullable_cursor_2", "id INT PRIMARY KEY, modified_at DATETIME NULL", (["id"], None))
shape("date_cursor", "id INT PRIMARY KEY, updated_at DATE NOT NULL", (["id"], None))
shape("int_cursor", "id INT PRIMARY KEY, updated_at BIGINT NOT NULL", (["id"], "updated_at"))
# Odd names: each must be quoted in every statement mbq sends.
shape("odd name", "id INT PRIMARY KEY, `updated_at` DATETIME NOT NULL", (["id"], "updated_at"))
shape("we`ird", "`k``ey` INT PRIMARY KEY, updated_at DATETIME NOT NULL", (["k`ey"], "updated_at"))
shape("ünïcode-tbl", "id INT PRIMARY KEY, updated_at DATETIME NOT NULL", (["id"], "updated_at"))
shape("select", "`from` INT PRIMARY KEY, `where` VARCHAR(5)", (["from"], None))
shape("MixedCase", "Id INT PRIMARY KEY, Updated_At DATETIME NOT NULL", (["Id"], "Updated_At"))
shape("tmp_scratch", "id INT PRIMARY KEY", "excluded")
shape("orders_named", "id INT PRIMARY KEY, updated_at DATETIME(6) NOT NULL", "named")
assert len(SHAPES) == 50, len(SHAPES)


def insert_rows(ws):
    """Two rows in every table, values by column type."""
    cols = {}
    for t, c, typ in mysql("SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE FROM "
                           "information_schema.COLUMNS WHERE TABLE_SCHEMA = '%s' "
                           "ORDER BY TABLE_NAME, ORDINAL_POSITION" % ws.db):
        cols.setdefault(t, []).append((c, typ))
    for name in SHAPES:
        names, rows = [q(c) for c, _ in cols[name]], []
        for r in (1, 2):
            vals = []
            for _, typ in cols[name]:
                if typ in ("datetime", "timestamp"):
                    vals.append("'2024-01-0%d 00:00:00'" % r)
                elif typ == "date":
                    vals.append("'2024-01-0%d'" % r)
                elif typ == "varchar":
                    vals.append("'v%d'" % r)
                else:
                    vals.append("%d" % r)
            rows.append("(" + ", ".join(vals) + ")")
        mysql("INSERT INTO %s (%s) VALUES %s" % (q(name), ", ".join(names), ", ".join(rows)),
              db=ws.db)


def make_db(ws):
    mysql(";".join("CREATE TABLE %s (%s)" % (q(name), ddl) for name, (ddl, _, _) in SHAPES.items()),
          db=ws.db)
    insert_rows(ws)
    mysql("CREATE VIEW v_orders AS SELECT * FROM orders_01", db=ws.db)


def write_config(ws):
    ws.write_config([{"name": "orders_named", "primary_key": "id",
                      "updated_column": "updated_at", "target": "orders_own_target"}])
    text = open(ws.config).read()
    entry = '  - discover: true\n    exclude: ["tmp_*"]\n    lookback: 1m\n'
    text = text.replace("mysql:\n", entry + "mysql:\n", 1)
    open(ws.config, "w").write(text)


LINE = re.compile(r"^table (`(?:[^`]|``)+`) -> (\S+): key \((.*?)\); cursor (none|`(?:[^`]|``)+`); "
                  r"mode (incremental|full); (.*)$")


def unq(s):
    return s[1:-1].replace("``", "`")


def parse_resolved(out):
    tables, skipped, dropped = {}, {}, set()
    for line in out.splitlines():
        m = LINE.match(line)
        if m:
            key = [unq(k) for k in re.findall(r"`(?:[^`]|``)+`", m.group(3))]
            cursor = None if m.group(4) == "none" else unq(m.group(4))
            tables[unq(m.group(1))] = (m.group(2), key, cursor, m.group(5), m.group(6))
        m = re.match(r"^skip (`(?:[^`]|``)+`): (.*)$", line)
        if m:
            skipped[unq(m.group(1))] = m.group(2)
        m = re.match(r"^dropped (`(?:[^`]|``)+`):", line)
        if m:
            dropped.add(unq(m.group(1)))
    return tables, skipped, dropped


def expected():
    tables, skipped = {}, set()
    for name, (_, exp, _) in SHAPES.items():
        if exp == "excluded":
            continue
        if exp == "named":
            tables[name] = ("orders_own_target", ["id"], "updated_at", "incremental")
        elif exp is None:
            skipped.add(name)
        else:
            key, cursor = exp
            tables[name] = (bq_name(name), key, cursor, "incremental" if cursor else "full")
    return tables, skipped


def check_resolved(out):
    got, skipped, _ = parse_resolved(out)
    want, want_skipped = expected()
    check_eq(sorted(skipped), sorted(want_skipped), "skipped tables")
    for name, (target, key, cursor, mode) in want.items():
        check(name in got, "%s in the resolved list:\n%s" % (name, out))
        g = got[name]
        check_eq((g[0], g[1], g[2], g[3]), (target, key, cursor, mode), "resolution of %s" % name)
    check_eq(sorted(got), sorted(want), "exactly these tables")
    check("tmp_scratch" not in out, "an excluded table is not listed")
    check("v_orders" not in out, "a view is not a table to sync")
    check("ON UPDATE CURRENT_TIMESTAMP" in got["touched_1"][4], "why: %s" % got["touched_1"][4])
    check("can be NULL" in got["nullable_cursor_1"][4], "why: %s" % got["nullable_cursor_1"][4])
    check("not a cursor type" in got["date_cursor"][4], "why: %s" % got["date_cursor"][4])
    check("unique index `z_bc`" in got["uniq_pick"][4], "why: %s" % got["uniq_pick"][4])
    check("named in the config" in got["orders_named"][4], "why: %s" % got["orders_named"][4])
    check("never guesses a key" in skipped["nokey_1"], "skip reason: %s" % skipped["nokey_1"])
    return got


def count_bq(ws, target):
    return int(bq_query("SELECT COUNT(*) FROM `%s.%s`" % (ws.dataset, target))[0][0])


def test_fifty_tables_resolved_synced_and_followed():
    ws = Workspace("discovery")
    make_db(ws)
    write_config(ws)
    import subprocess
    chk = subprocess.run([os.environ["MBQ_BIN"], "check", "--config", ws.config], env=ws.env(),
                         capture_output=True, text=True, timeout=300)
    check_eq(chk.returncode, 0, "mbq check: %s %s" % (chk.stdout[-3000:], chk.stderr[-2000:]))
    check("1 named in the config, 43 discovered, 5 skipped, 0 dropped" in chk.stdout,
          "counts line: %s" % chk.stdout.splitlines()[:6])
    got = check_resolved(chk.stdout)
    # The dry run prints the same list and changes nothing.
    dry = ws.sync("--dry-run")
    check_eq(dry.returncode, 0, "dry run: %r" % dry)
    check_eq(parse_resolved(dry.stdout)[0], got, "--dry-run prints the list check prints")
    check(bq_table(ws.dataset, "orders_01") is None, "a dry run creates nothing")

    r = ws.sync()
    expect_ok(r, "sync of 44 tables")
    for line in ("nokey_1", "nokey_nullable_unique"):
        check(re.search(r"\[%s\] not synced: no PRIMARY KEY" % line, r.stderr) is not None,
              "the run's log reports %s: %s" % (line, r.stderr[-2000:]))
    want, _ = expected()
    for name, (target, key, cursor, mode) in want.items():
        check_eq(count_bq(ws, target), 2, "rows of %s in %s" % (name, target))
    # Content of the odd names, key by key.
    rows = bq_query("SELECT `k_ey`, updated_at FROM `%s.%s` ORDER BY 1"
                    % (ws.dataset, bq_name("we`ird")))
    check_eq([r[0] for r in rows], ["1", "2"], "we`ird's key column (mapped name k_ey)")
    rows = bq_query("SELECT `from`, `where` FROM `%s.select` ORDER BY 1" % ws.dataset)
    check_eq(rows, [["1", "v1"], ["2", "v2"]], "the keyword table")
    print("FIGURE discovery_tables_synced=%d" % len(want))

    # Incremental: a change in a discovered table with a cursor arrives.
    mysql("UPDATE %s SET updated_at = '2024-02-01 00:00:00' WHERE id = 1;"
          "INSERT INTO %s VALUES (3, '2024-02-01 00:00:00')" % (q("odd name"), q("odd name")),
          db=ws.db)
    # A table created since, and one dropped since.
    mysql("CREATE TABLE orders_new (id INT PRIMARY KEY, updated_at DATETIME NOT NULL);"
          "INSERT INTO orders_new VALUES (7, '2024-03-01 00:00:00');"
          "DROP TABLE orders_05", db=ws.db)
    chk = subprocess.run([os.environ["MBQ_BIN"], "check", "--config", ws.config], env=ws.env(),
                         capture_output=True, text=True, timeout=300)
    check_eq(chk.returncode, 0, "check after changes: %s" % chk.stdout[-2000:])
    got, _, dropped = parse_resolved(chk.stdout)
    check("orders_new" in got and "orders_05" not in got, "new table listed, dropped one not")
    check_eq(dropped, {"orders_05"}, "dropped tables reported by check")
    r = ws.sync()
    expect_ok(r, "sync after changes")
    check(re.search(r"\[orders_05\] synced before but gone from MySQL", r.stderr) is not None,
          "the run reports the dropped table: %s" % r.stderr[-2000:])
    check_eq(count_bq(ws, "orders_new"), 1, "a new table is synced by the next run")
    check_eq(count_bq(ws, bq_name("odd name")), 3, "incremental rows of a discovered table")
    check_eq(count_bq(ws, "orders_05"), 2, "a dropped table's BigQuery table is kept")
    # --tables takes a discovered name.
    mysql("INSERT INTO orders_new VALUES (8, '2024-03-02 00:00:00')", db=ws.db)
    r = ws.sync("--tables", "orders_new")
    expect_ok(r, "--tables with a discovered table")
    check_eq(count_bq(ws, "orders_new"), 2, "--tables synced it")
    check(re.search(r"\[orders_01/", r.stderr) is None, "--tables synced only that table")
    ws.cleanup()


def test_pattern_entry_refuses_per_table_keys():
    ws = Workspace("discovery_cfg")
    ws.write_config([{"name": "'orders_*'", "primary_key": "id"}])
    import subprocess
    chk = subprocess.run([os.environ["MBQ_BIN"], "check", "--config", ws.config], env=ws.env(),
                         capture_output=True, text=True, timeout=60)
    check_eq(chk.returncode, 2, "config error: %s" % chk.stderr)
    check("'tables[0].primary_key' cannot be set on a pattern" in chk.stderr,
          "message: %s" % chk.stderr)
    ws.cleanup()


if __name__ == "__main__":
    require_services()
    private_emulator()
    run_cases([test_pattern_entry_refuses_per_table_keys,
               test_fifty_tables_resolved_synced_and_followed])
