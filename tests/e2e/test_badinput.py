#!/usr/bin/env python3
"""Bad input proof (label `reliability`, issue 8).

A table of cases, each run through the built programs (`mbq check`,
`mbq sync`, `mbq-state reset`): the input, a fragment the error message must
hold, and the exit code (include/mbq/exitcode.h). Then data the source may
hold: tables, keys and columns that do not exist, duplicate keys, invalid
UTF-8, and hostile table and column names, synced end to end and compared by
content. Prints "bad-input cases: N"."""
import base64
import json
import os
import socket
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mbqtest  # noqa: E402
from mbqtest import (Workspace, bq_query, bq_table, check, check_clean_failure, check_eq,  # noqa: E402
                     check_no_sanitizer, expect_ok, mysql, require_services, run, run_cases, private_emulator)

OK, FAILED, USAGE, UNAVAILABLE, NOPERM = 0, 1, 2, 69, 77
CASES_RUN = []


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def base_config(ws, endpoint="${MBQ_E2E_BQ_ENDPOINT}", mysql_port=None, password="${MBQ_E2E_MYSQL_PASSWORD}"):
    return """tables:
  - name: items
    primary_key: id
    updated_column: updated_at
mysql:
  host: 127.0.0.1
  port: %s
  user: %s
  password: %s
  database: %s
  connect_timeout: 3s
bigquery:
  endpoint: %s
  project_id: mbq-test
  dataset: %s
  compression: gzip
  max_retries: 1
  retry_max_elapsed: 5s
state:
  dir: %s
""" % (mysql_port or os.environ["MBQ_TEST_MYSQL_PORT"], os.environ["MBQ_TEST_MYSQL_RO_USER"],
       password, ws.db, endpoint, ws.dataset, ws.state)


def replace(text, old, new):
    check(old in text, "case setup: %r not in config" % old)
    return text.replace(old, new, 1)


WS = None
KEY_DIR = None


def key_file(name, content):
    p = os.path.join(KEY_DIR, name)
    with open(p, "w") as f:
        f.write(content)
    return p


def config_cases(ws):
    """(name, config text or a path marker, fragment, exit code, command)."""
    b = base_config(ws)
    cp = closed_port()
    https_closed = "https://127.0.0.1:%d" % cp
    good_key = {"type": "service_account", "project_id": "mbq-test", "private_key_id": "k1",
                "private_key": "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n",
                "client_email": "mbq@mbq-test.iam.gserviceaccount.com",
                "token_uri": "http://127.0.0.1:%d/token" % cp}
    return [
        ("empty file", "", "empty", USAGE),
        ("only a comment", "# nothing here\n", "empty", USAGE),
        ("malformed YAML: unclosed flow sequence", "tables: [\n", "line", USAGE),
        ("malformed YAML: tab indentation", replace(b, "  host:", "\thost:"), "line", USAGE),
        ("malformed YAML: bad indentation", replace(b, "  user:", "     user:"), "line", USAGE),
        ("unknown top-level key", b + "tabels: []\n", "unknown key 'tabels'", USAGE),
        ("unknown mysql key", replace(b, "  host:", "  hostname: x\n  host:"), "unknown key 'hostname'", USAGE),
        ("unknown table key", replace(b, "    primary_key: id", "    primary_keys: id"), "primary_keys", USAGE),
        ("unknown bigquery key", replace(b, "  project_id:", "  projectid: x\n  project_id:"), "projectid", USAGE),
        ("missing tables section", b.split("mysql:")[0].replace("tables:", "x_tables:") and
         "mysql:" + b.split("mysql:", 1)[1], "tables", USAGE),
        ("missing mysql section", b.split("mysql:")[0] + "bigquery:" + b.split("bigquery:", 1)[1],
         "mysql", USAGE),
        ("missing bigquery section", b.split("bigquery:")[0] + "state:" + b.split("state:", 1)[1],
         "bigquery", USAGE),
        ("empty tables list", replace(b, b.split("mysql:")[0], "tables: []\n"), "tables", USAGE),
        ("table without name", replace(b, "  - name: items\n    primary_key: id",
                                       "  - primary_key: id"), "name", USAGE),
        ("table without primary_key", replace(b, "    primary_key: id\n", ""), "primary_key", USAGE),
        ("tables is a mapping", replace(b, "  - name: items", "  name: items").replace(
            "    primary_key", "  primary_key").replace("    updated_column", "  updated_column"),
         "tables", USAGE),
        ("mysql is a scalar", b.split("mysql:")[0] + "mysql: localhost\nbigquery:" +
         b.split("bigquery:", 1)[1], "mysql", USAGE),
        ("port not a number", replace(b, "  port: ", "  port: abc\n  x_port: "), "port", USAGE),
        ("port out of range", b.replace("  port: %s" % os.environ["MBQ_TEST_MYSQL_PORT"],
                                        "  port: 70000"), "port", USAGE),
        ("max_retries negative", replace(b, "  max_retries: 1", "  max_retries: -1"),
         "max_retries", USAGE),
        ("max_retries not a number", replace(b, "  max_retries: 1", "  max_retries: lots"),
         "max_retries", USAGE),
        ("duration with a bad unit", replace(b, "  connect_timeout: 3s", "  connect_timeout: 5 parsecs"),
         "connect_timeout", USAGE),
        ("negative lookback", replace(b, "    updated_column: updated_at",
                                      "    updated_column: updated_at\n    lookback: -5m"),
         "lookback", USAGE),
        ("compression not an option", replace(b, "  compression: gzip", "  compression: zip"),
         "compression", USAGE),
        ("invalid project id", replace(b, "  project_id: mbq-test", "  project_id: Bad_Project!"),
         "project_id", USAGE),
        ("invalid dataset name", replace(b, "  dataset: %s" % ws.dataset, "  dataset: bad-dataset"),
         "dataset", USAGE),
        ("unset environment variable", replace(b, "${MBQ_E2E_MYSQL_PASSWORD}", "${MBQ_NO_SUCH_VAR_8}"),
         "MBQ_NO_SUCH_VAR_8", USAGE),
        ("duplicate table entries", replace(b, "mysql:", "  - name: items\n    primary_key: id\nmysql:"),
         "items", USAGE),
        ("duplicate key in a mapping", replace(b, "  host: 127.0.0.1", "  host: 127.0.0.1\n  host: 10.0.0.1"),
         "host", USAGE),
        ("mode not an option", replace(b, "    updated_column: updated_at",
                                       "    updated_column: updated_at\n    mode: sometimes"), "mode", USAGE),
        ("ssl mode not an option", replace(b, "  connect_timeout: 3s",
                                           "  connect_timeout: 3s\n  ssl:\n    mode: maybe"), "mode", USAGE),
        ("log level not an option", b + "log:\n  level: loud\n", "level", USAGE),
        ("updated_column is a list", replace(b, "    updated_column: updated_at",
                                             "    updated_column: [a, b]"), "updated_column", USAGE),
        ("cluster_by over 4 columns", replace(b, "    updated_column: updated_at",
                                              "    updated_column: updated_at\n    cluster_by: [a, b, c, d, e]"),
         "cluster_by", USAGE),
        ("invalid target table name", replace(b, "    updated_column: updated_at",
                                              "    updated_column: updated_at\n    target: \"a b;c\""),
         "target", USAGE),
        ("a directory instead of a file", ("DIR",), "", USAGE),
        ("missing config file", ("MISSING",), "", USAGE),
        # Credentials and hosts (`mbq check` connects, changes nothing).
        ("credentials file missing", replace(b, "  endpoint: ${MBQ_E2E_BQ_ENDPOINT}",
                                             "  endpoint: %s\n  credentials: %s/none.json" % (https_closed, KEY_DIR)),
         "none.json", NOPERM),
        ("credentials file not JSON", replace(b, "  endpoint: ${MBQ_E2E_BQ_ENDPOINT}",
                                              "  endpoint: %s\n  credentials: %s" % (
                                                  https_closed, key_file("garbage.json", "{not json"))),
         "garbage.json", NOPERM),
        ("incomplete user credentials", replace(b, "  endpoint: ${MBQ_E2E_BQ_ENDPOINT}",
                                                "  endpoint: %s\n  credentials: %s" % (
                                                    https_closed, key_file("user.json", json.dumps(
                                                        {"type": "authorized_user", "client_id": "x",
                                                         "refresh_token": "y"})))),
         "client_secret", NOPERM),
        ("credentials of an unknown type", replace(b, "  endpoint: ${MBQ_E2E_BQ_ENDPOINT}",
                                                   "  endpoint: %s\n  credentials: %s" % (
                                                       https_closed, key_file("odd.json", json.dumps(
                                                           {"type": "gdch_service_account"})))),
         "gdch_service_account", NOPERM),
        ("credentials with a broken private key", replace(b, "  endpoint: ${MBQ_E2E_BQ_ENDPOINT}",
                                                          "  endpoint: %s\n  credentials: %s" % (
                                                              https_closed, key_file("badkey.json", json.dumps(good_key)))),
         "key", NOPERM),
        ("wrong MySQL password", base_config(ws, password="not-the-password"), "access denied", NOPERM),
        ("unreachable MySQL host", base_config(ws, mysql_port=closed_port()), "mysql", UNAVAILABLE),
        ("unreachable BigQuery endpoint", base_config(ws, endpoint="http://127.0.0.1:%d" % closed_port()),
         "bigquery", UNAVAILABLE),
    ]


def run_mbq(args, env=None):
    return run([os.environ["MBQ_BIN"]] + args, env or WS.env(), timeout=120)


def test_config_and_connection_table():
    bad = []
    cases = config_cases(WS)
    for name, text, frag, code in cases:
        if isinstance(text, tuple):
            path = KEY_DIR if text[0] == "DIR" else os.path.join(KEY_DIR, "no-such.yml")
            frag = os.path.basename(path)
        else:
            path = os.path.join(KEY_DIR, "case.yml")
            with open(path, "w") as f:
                f.write(text)
        env = None
        if "credentials" in name:
            # The real endpoint (an override turns auth off): the key is
            # loaded before any request is made.
            env = WS.env()
            env.pop("BIGQUERY_EMULATOR_HOST", None)
            with open(path) as f:
                t = f.read()
            with open(path, "w") as f:
                f.write("\n".join(l for l in t.splitlines() if "endpoint:" not in l) + "\n")
        r = run_mbq(["check", "--config", path], env=env)
        try:
            check_clean_failure(r, [code], [frag] if frag else [], "case '%s'" % name)
            # Every error says which file it is about.
            check(os.path.basename(path) in r.stderr or code != USAGE,
                  "case '%s': the message names the file: %r" % (name, r))
            CASES_RUN.append(name)
        except mbqtest.CheckFailed as e:
            bad.append(str(e)[:900])
    check(not bad, "%d of %d cases failed:\n  %s" % (len(bad), len(cases), "\n  ".join(bad)))


# ---- data cases through `mbq sync` ----------------------------------------------

def data_ws(name, ddl, rows_sql=None, table=None):
    ws = Workspace("bad_" + name)
    mysql(ddl, db=ws.db)
    if rows_sql:
        mysql(rows_sql, db=ws.db)
    ws.write_config([table or {"name": "items", "primary_key": "id", "updated_column": "updated_at"}])
    return ws


ITEMS = ("CREATE TABLE items (id BIGINT PRIMARY KEY, val VARCHAR(20), "
         "updated_at DATETIME(6) NOT NULL DEFAULT '2024-01-01 00:00:00')")


def sync_fails(ws, frags, name, codes=(FAILED,)):
    r = ws.sync()
    check_clean_failure(r, list(codes), frags, name)
    CASES_RUN.append(name)
    return r


def test_missing_table_key_and_column():
    ws = data_ws("missing", ITEMS, "INSERT INTO items (id, val) VALUES (1, 'a')",
                 {"name": "no_such_table", "primary_key": "id"})
    sync_fails(ws, ["no_such_table"], "table that does not exist")
    ws.write_config([{"name": "items", "primary_key": "no_such_key", "updated_column": "updated_at"}])
    sync_fails(ws, ["no_such_key"], "primary key column that does not exist")
    ws.write_config([{"name": "items", "primary_key": "id", "updated_column": "no_such_col"}])
    sync_fails(ws, ["no_such_col"], "cursor column that does not exist")
    # And the table that is fine next to a missing one still syncs (exit 1).
    ws.write_config([{"name": "items", "primary_key": "id", "updated_column": "updated_at"},
                     {"name": "gone", "primary_key": "id"}])
    r = ws.sync()
    check_clean_failure(r, [FAILED], ["gone"], "one missing table among two")
    check_eq(bq_query("SELECT COUNT(*) FROM `%s.items`" % ws.dataset), [["1"]], "the good table synced")
    CASES_RUN.append("a missing table does not stop the others")
    ws.cleanup()


def test_duplicate_keys_in_source_are_reported_never_dropped():
    # The configured primary_key is not unique in the source (no PRIMARY KEY
    # or UNIQUE index): an upsert by it would merge distinct rows into one,
    # so mbq must stop the table before loading anything, saying why
    # (src/schema.c). Exit 0 would mean rows were merged or duplicated.
    ws = data_ws("dupkeys", "CREATE TABLE items (id BIGINT, val VARCHAR(20), "
                 "updated_at DATETIME(6) NOT NULL DEFAULT '2024-01-01 00:00:00')",
                 "INSERT INTO items (id, val) VALUES (1, 'a'), (1, 'b'), (2, 'c')")
    uniq = ["items", "primary_key ('id') is not guaranteed unique"]
    r = ws.sync()
    check_clean_failure(r, [FAILED], uniq, "duplicate keys in source")
    check_eq(ws.inspect("items")["tables"][0]["cursor"], None, "no cursor committed")
    # More duplicates later: still refused, never hidden by a MERGE.
    mysql("INSERT INTO items (id, val, updated_at) VALUES (2, 'd', '2024-02-01'), (2, 'e', '2024-02-01')",
          db=ws.db)
    r = ws.sync()
    check_clean_failure(r, [FAILED], uniq, "duplicate keys, next run")
    check_eq(ws.inspect("items")["tables"][0]["cursor"], None, "still no cursor committed")
    CASES_RUN.append("duplicate keys in a source table")
    ws.cleanup()


def test_invalid_utf8_in_text_columns_becomes_replacement_char():
    ws = data_ws("utf8", "CREATE TABLE items (id BIGINT PRIMARY KEY, "
                 "l1 VARCHAR(20) CHARACTER SET latin1, u8 VARCHAR(20) CHARACTER SET utf8mb4, "
                 "bin VARCHAR(20) CHARACTER SET binary, "
                 "updated_at DATETIME(6) NOT NULL DEFAULT '2024-01-01 00:00:00')",
                 "INSERT INTO items (id, l1, u8, bin) VALUES (1, X'E9FF', 'ok', X'C328FF')")
    r = ws.sync()
    check_no_sanitizer(r)
    expect_ok(r, "sync with latin1 bytes and invalid UTF-8")
    rows = bq_query("SELECT l1, u8 FROM `%s.items`" % ws.dataset)
    check_eq(rows, [["\u00e9\u00ff", "ok"]], "latin1 text converted to UTF-8")
    CASES_RUN.append("latin1 bytes in a text column")
    ws.cleanup()


def test_unsupported_or_odd_column_types_are_mapped_or_refused_clearly():
    ws = data_ws("types", "CREATE TABLE items (id BIGINT PRIMARY KEY, "
                 "g GEOMETRY, s SET('a','b'), e ENUM('x','y'), b BIT(5), y YEAR, "
                 "j JSON, t TIME(3), u BIGINT UNSIGNED, d DECIMAL(65,30), inet INET6, uu UUID, "
                 "big BIGINT, updated_at DATETIME(6) NOT NULL DEFAULT '2024-01-01 00:00:00')",
                 "INSERT INTO items (id, g, s, e, b, y, j, t, u, d, inet, uu, big) VALUES (1, POINT(1, 2), "
                 "'a,b', 'y', b'10101', 2024, '{\"k\": 1,\\n  \"n\": {\"a\": [1, 2]}}', '-838:59:59.000', "
                 "18446744073709551615, "
                 "1.5, '::1', '123e4567-e89b-12d3-a456-426655440000', 9007199254740993)")
    r = ws.sync()
    check_no_sanitizer(r)
    if r.returncode != 0:
        # A type with no mapping must be named, never skipped silently.
        check_clean_failure(r, [FAILED], ["unsupported"], "a column type without mapping")
        CASES_RUN.append("unsupported column type refused by name")
    else:
        t = bq_table(ws.dataset, "items")
        names = [f["name"] for f in t["schema"]["fields"]]
        for c in ("g", "s", "e", "b", "y", "j", "t", "u", "d", "inet", "uu"):
            check(c in names, "column %s mapped (schema %s)" % (c, names))
        # The JSON document (pretty-printed in MariaDB) arrives as a document.
        rows = bq_query("SELECT JSON_VALUE(j, '$.k'), TO_JSON_STRING(j) FROM `%s.items`"
                        % ws.dataset)
        check_eq(rows, [["1", '{"k":1,"n":{"a":[1,2]}}']], "a JSON column is queryable as JSON")
        # An INT64 beyond 2^53 goes as a string (BigQuery's rule) and stays exact.
        rows = bq_query("SELECT CAST(big AS STRING), big + 0 = 9007199254740993 FROM `%s.items`"
                        % ws.dataset)
        check_eq(rows, [["9007199254740993", "true"]], "a BIGINT beyond 2^53 is exact")
        CASES_RUN.append("every odd column type mapped")
    ws.cleanup()


HOSTILE = [
    # (MySQL table name, BigQuery target, a hostile column name)
    ("back`tick", "t_backtick", "col`umn"),
    ("quo\"te's", "t_quotes", "it's \"q\""),
    ("with space", "t_space", "a column"),
    ("dot.ted", "t_dotted", "x.y"),
    ("semi;colon", "t_semicolon", "v; DROP TABLE canary; --"),
    ("ünïcødé_表", "t_unicode", "naïve_列"),
    ("select", "t_keyword", "from"),
    ("x` ; DROP TABLE canary; --", "t_injection", "\\`) OR 1=1 --"),
]


def mq(name):
    return "`" + name.replace("`", "``") + "`"


def test_hostile_table_and_column_names_sync_end_to_end():
    ws = Workspace("bad_hostile")
    mysql("CREATE TABLE canary (id INT PRIMARY KEY); INSERT INTO canary VALUES (1)", db=ws.db)
    tables = []
    for i, (tname, target, col) in enumerate(HOSTILE):
        mysql("CREATE TABLE %s (%s BIGINT PRIMARY KEY, %s VARCHAR(40), `when` DATETIME(6) NOT NULL "
              "DEFAULT '2024-01-01 00:00:00') DEFAULT CHARSET=utf8mb4"
              % (mq(tname), mq("id" + col), mq(col)), db=ws.db)
        mysql("INSERT INTO %s VALUES (1, 'one', '2024-01-01'), (2, 'two ` \" '' ;', '2024-01-02')"
              % mq(tname), db=ws.db)
        tables.append({"name": json.dumps(tname), "primary_key": json.dumps("id" + col),
                       "updated_column": "when", "target": target})
    ws.write_config(tables)
    r = ws.sync()
    check_no_sanitizer(r)
    expect_ok(r, "sync of hostile names")
    # The canary survived on the MySQL side; each target holds its rows.
    check_eq(mysql("SELECT COUNT(*) FROM canary", db=ws.db), [["1"]], "MySQL canary table")
    for tname, target, col in HOSTILE:
        t = bq_table(ws.dataset, target)
        check(t is not None, "target %s of %r exists" % (target, tname))
        names = [f["name"] for f in t["schema"]["fields"]]
        check_eq(len(names), 3, "target %s columns %s" % (target, names))
        for n in names:
            check(all(ch.isalnum() and ch.isascii() or ch == "_" for ch in n),
                  "BigQuery column name %r of %r follows the naming rule" % (n, col))
        rows = bq_query("SELECT `%s`, `%s` FROM `%s.%s` ORDER BY 1" % (names[0], names[1], ws.dataset, target))
        check_eq(rows, [["1", "one"], ["2", "two ` \" ' ;"]], "content of %s (%r)" % (target, tname))
    # A second, incremental run goes through the MERGE with the same names.
    for tname, target, col in HOSTILE:
        mysql("UPDATE %s SET %s = 'upd', `when` = '2024-02-01' WHERE %s = 1; INSERT INTO %s VALUES "
              "(3, 'three', '2024-02-01')" % (mq(tname), mq(col), mq("id" + col), mq(tname)), db=ws.db)
    r = ws.sync()
    check_no_sanitizer(r)
    expect_ok(r, "incremental sync of hostile names")
    for tname, target, col in HOSTILE:
        t = bq_table(ws.dataset, target)
        names = [f["name"] for f in t["schema"]["fields"]]
        rows = bq_query("SELECT `%s`, `%s` FROM `%s.%s` ORDER BY 1" % (names[0], names[1], ws.dataset, target))
        check_eq(rows, [["1", "upd"], ["2", "two ` \" ' ;"], ["3", "three"]], "merged %s" % target)
        CASES_RUN.append("hostile name %r" % tname)
    check_eq(mysql("SELECT COUNT(*) FROM canary", db=ws.db), [["1"]], "MySQL canary table")
    ws.cleanup()


def test_reset_with_an_unparseable_cursor():
    ws = data_ws("reset", ITEMS, "INSERT INTO items (id, val) VALUES (1, 'a')")
    expect_ok(ws.sync())
    before = ws.inspect("items")["tables"][0]["cursor"]
    for value, frag in [("yesterday", "yesterday"), ("2024-13-45 99:00:00", "2024-13-45"),
                        ("", "cursor"), ("2024-01-01 00:00:00; DROP TABLE x", "drop table")]:
        r = ws.state_cmd("reset", "items", "--cursor", value, "--yes")
        check_clean_failure(r, [USAGE], [frag], "reset --cursor %r" % value)
        check_eq(ws.inspect("items")["tables"][0]["cursor"], before, "cursor unchanged by %r" % value)
        CASES_RUN.append("reset with cursor %r" % value)
    r = ws.state_cmd("reset", "no_such_table", "--full", "--yes")
    check_clean_failure(r, [USAGE], ["no_such_table"], "reset of an unknown table")
    CASES_RUN.append("reset of an unknown table")
    ws.cleanup()


if __name__ == "__main__":
    require_services()
    private_emulator()  # a fresh emulator of its own (mbqtest.py says why)
    WS = Workspace("bad_config")
    mysql(ITEMS, db=WS.db)
    KEY_DIR = tempfile.mkdtemp(prefix="mbq-badinput-")
    orig_exit = sys.exit

    def report_and_exit(code):
        print("bad-input cases: %d" % len(CASES_RUN))
        print("FIGURE badinput_cases=%d" % len(CASES_RUN))
        orig_exit(code)
    sys.exit = report_and_exit
    run_cases([test_config_and_connection_table, test_missing_table_key_and_column,
               test_duplicate_keys_in_source_are_reported_never_dropped,
               test_invalid_utf8_in_text_columns_becomes_replacement_char,
               test_unsupported_or_odd_column_types_are_mapped_or_refused_clearly,
               test_hostile_table_and_column_names_sync_end_to_end,
               test_reset_with_an_unparseable_cursor])
