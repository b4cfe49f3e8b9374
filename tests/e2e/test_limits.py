#!/usr/bin/env python3
"""BigQuery's per-job limits (label `state`): what mbq does so that no table
can hit one and fail on every run forever.

- A staged file above bigquery.max_load_file_size (BigQuery: 4 GB per gzip
  file in a load job) is split into parts, each loaded by its own job into
  the staging table (first WRITE_TRUNCATE, then WRITE_APPEND), then merged.
  A tiny setting (a few KiB) proves the path end to end on the emulator.
- Killed between parts, the next runs resume at the first part not loaded
  and load each part exactly once: the staging table holds every staged row
  once before the MERGE, and the target ends equal to the source.
- The metadata mirror's INSERT text stays under bigquery.max_query_size
  (BigQuery: 1 MB per query): many pending rows go in several INSERTs, and
  every row arrives once.

A first sync or full refresh in parts replaces the target with one copy
job (WRITE_TRUNCATE), which the patched emulator runs as BigQuery documents
it (tools/emulator/patches/0013-copy-jobs.patch: the destination's rows
and schema replaced by the source's in one transaction, looked up by job
id, 409 for a duplicate id), so the whole flow runs against it: parts into
a staging table with the target's layout, the target untouched until the
copy, one copy, counted from the emulator's own job list."""
import os
import re
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mbqtest import (Workspace, assert_target_equals_source, bq_query, bq_request, check, check_eq,
                     expect_ok, mysql, require_services, run_cases, private_emulator)

COLS = ["id", "val", "n", "updated_at"]
PART_BYTES = 4096

ITEMS_DDL = """
CREATE TABLE items (
  id BIGINT NOT NULL PRIMARY KEY,
  val VARCHAR(200),
  n INT,
  updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
);
"""


def insert_rows(ws, first, count, day):
    values = ",".join("(%d, REPEAT('x%d', 12), %d, '2024-01-%02d 00:%02d:%02d.000000')"
                      % (i, i, i, day, (i // 60) % 60, i % 60)
                      for i in range(first, first + count))
    mysql("INSERT INTO items (id, val, n, updated_at) VALUES " + values, db=ws.db)


def parts_ws(name, extra=""):
    """A small first sync (one file, under the bound), then 300 changed rows
    (about 40 KiB of NDJSON: about ten parts of 4 KiB)."""
    ws = Workspace(name)
    mysql(ITEMS_DDL, db=ws.db)
    insert_rows(ws, 1, 10, 1)
    ws.write_config([{"name": "items", "primary_key": "id", "updated_column": "updated_at"}],
                    # uncompressed: the part count follows the rows (gzip
                    # would shrink 40 KiB of similar rows below one part;
                    # split_unit proves gzip parts)
                    extra_bigquery="max_load_file_size: %d\ncompression: none\n%s"
                    % (PART_BYTES, extra))
    r = ws.sync()
    expect_ok(r)
    check("split into" not in r.stderr, "the first sync fits one file: %r" % r)
    insert_rows(ws, 11, 300, 2)
    return ws


def staging_files(ws):
    d = os.path.join(ws.state, "staging")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def test_incremental_above_the_file_bound_loads_in_parts():
    ws = parts_ws("parts")
    r = ws.sync()
    expect_ok(r)
    m = re.search(r"split into (\d+) parts of at most (\d+) bytes", r.stderr)
    check(m is not None, "the staged file was split: %r" % r)
    n = int(m.group(1))
    check(n >= 8, "about ten parts of 4 KiB: %d" % n)
    loaded = re.findall(r"loaded part (\d+) of (\d+) rows", r.stderr)
    check_eq([int(p) for p, _ in loaded], list(range(1, n + 1)), "every part loaded once, in order")
    run0 = ws.inspect("items")["tables"][0]["recent_runs"][0]
    check_eq(sum(int(k) for _, k in loaded), run0["staged_rows"], "the parts hold the staged rows")
    check("merged %d staged rows" % run0["staged_rows"] in r.stderr, "one MERGE: %r" % r)
    check_eq(assert_target_equals_source(ws, "items", COLS, "id", ["updated_at"]), 310, "rows")
    check_eq(ws.inspect("items")["tables"][0]["in_flight"], None, "no run in flight")
    check_eq(staging_files(ws), [], "the parts are removed after the commit")
    ws.cleanup()


def test_damaged_staged_file_is_extracted_again_not_split():
    ws = parts_ws("partdamage")
    killed(ws, "stage.enter", 1)
    files = staging_files(ws)
    check_eq(len(files), 1, "one staged file before the split: %r" % files)
    path = os.path.join(ws.state, "staging", files[0])
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    r = ws.sync()
    expect_ok(r)
    check("not what was extracted" in r.stderr or "ends inside a row" in r.stderr,
          "the damage is noticed: %r" % r)
    check("extracting again" in r.stderr, "and the window extracted again: %r" % r)
    check_eq(assert_target_equals_source(ws, "items", COLS, "id", ["updated_at"]), 310, "rows")
    ws.cleanup()


def staging_tables(ws):
    st, body = bq_request("GET", "/datasets/%s/tables" % ws.dataset)
    return [t["tableReference"]["tableId"] for t in body.get("tables", [])
            if "__mbq_stage_" in t["tableReference"]["tableId"]]


def killed(ws, point, hit):
    r = ws.sync(env=ws.env(MBQ_FAULT=point, MBQ_FAULT_HIT=hit))
    check(r.returncode == -9, "sync was not killed at '%s' #%d: %r" % (point, hit, r))
    return r


def test_kills_between_parts_load_each_part_exactly_once():
    ws = parts_ws("partkill")
    # Killed after part 3's job ran, before the journal knew it.
    r = killed(ws, "stage.part_loaded", 3)
    check("split into" in r.stderr, "split in the first try: %r" % r)
    fl = ws.inspect("items")["tables"][0]["in_flight"]
    check_eq(fl["state"], "stage", "in flight at stage")
    # The resumed run finds part 3's job by its id instead of loading it
    # again, goes on, and is killed after the next parts are journaled.
    r = killed(ws, "stage.part_done", 3)
    check("split into" not in r.stderr, "the journaled parts are reused, not split again: %r" % r)
    check(re.search(r"loaded part 3 of \d+ rows into '[^']+' \(job found from an earlier try\)",
                    r.stderr), "part 3's job was found, not run again: %r" % r)
    check("loaded part 1 " not in r.stderr and "loaded part 2 " not in r.stderr,
          "parts 1 and 2 are not loaded again: %r" % r)
    # Stopped before the MERGE: the staging table holds each staged row once.
    killed(ws, "merge.enter", 1)
    fl = ws.inspect("items")["tables"][0]["in_flight"]
    check_eq(fl["state"], "merge", "in flight at merge")
    rows = bq_query("SELECT COUNT(*), COUNT(DISTINCT id) FROM `%s.%s`"
                    % (ws.dataset, fl["staging_table"]))
    check_eq(rows, [[str(fl["staged_rows"]), str(fl["staged_rows"])]],
             "staging table rows (all, distinct) after three runs")
    r = ws.sync()
    expect_ok(r)
    check_eq(assert_target_equals_source(ws, "items", COLS, "id", ["updated_at"]), 310, "rows")
    check_eq(ws.inspect("items")["tables"][0]["in_flight"], None, "no run in flight")
    check_eq(staging_tables(ws), [], "the staging table is dropped")
    check_eq(staging_files(ws), [], "the parts are removed")
    ws.cleanup()


EVENTS_DDL = """
CREATE TABLE events (
  id BIGINT NOT NULL PRIMARY KEY,
  day DATE,
  n INT,
  updated_at DATETIME(6) NOT NULL
);
"""
EVENT_COLS = ["id", "day", "n", "updated_at"]


def events_ws(name):
    """A target partitioned by `day`; then an incremental window whose rows
    fall in 10 days (and the NULL partition): 11 partitions."""
    ws = Workspace(name)
    mysql(EVENTS_DDL, db=ws.db)
    mysql("INSERT INTO events VALUES " + ",".join(
        "(%d, '2024-01-%02d', 0, '2024-02-01 00:00:00')" % (i, i % 3 + 1) for i in range(1, 31)),
        db=ws.db)
    ws.write_config([{"name": "events", "primary_key": "id", "updated_column": "updated_at",
                      "partition_by": "day"}], extra_bigquery="max_partitions_per_job: 3")
    expect_ok(ws.sync())
    mysql("UPDATE events SET n = id, updated_at = '2024-02-02 00:00:00' WHERE id <= 20", db=ws.db)
    mysql("INSERT INTO events VALUES " + ",".join(
        "(%d, '2024-01-%02d', %d, '2024-02-02 00:00:00')" % (i, i % 10 + 10, i)
        for i in range(31, 61)) + ", (61, NULL, 61, '2024-02-02 00:00:00')", db=ws.db)
    return ws


def test_merge_into_partitioned_target_runs_in_partition_ranges():
    ws = events_ws("pranges")
    table = bq_request("GET", "/datasets/%s/tables/events" % ws.dataset)[1]
    check_eq(table.get("timePartitioning", {}).get("field"), "day", "target partitioned by day")
    r = ws.sync()
    expect_ok(r)
    m = re.search(r"fall in (\d+) partitions of 'events': MERGE in (\d+) ranges of at most 3",
                  r.stderr)
    check(m is not None, "the MERGE went in ranges: %r" % r)
    check_eq((int(m.group(1)), int(m.group(2))), (14, 5),
             "13 days and the NULL partition, in ranges of 3")
    check_eq(assert_target_equals_source(ws, "events", EVENT_COLS, "id", ["updated_at"]), 61,
             "rows")
    ws.cleanup()


def test_merge_ranges_resume_after_a_kill():
    ws = events_ws("prangekill")
    r = ws.sync("--log-level", "debug",
                env=ws.env(MBQ_FAULT="merge.range_done", MBQ_FAULT_HIT=2))
    check(r.returncode == -9, "killed after the second range: %r" % r)
    # While the staging table is there: the ranges cover every staged row
    # once, each within 3 partitions (the emulator does not enforce the
    # limit, so the conditions themselves are checked).
    conds = re.findall(r"range \d+: (.*)$", r.stderr, re.M)
    check_eq(len(conds), 5, "five ranges logged: %r" % r)
    fl = ws.inspect("events")["tables"][0]["in_flight"]
    total = 0
    for c in conds:
        rows = bq_query("SELECT COUNT(*), COUNT(DISTINCT IFNULL(CAST(day AS STRING), 'null')) "
                        "FROM `%s.%s` AS S WHERE %s" % (ws.dataset, fl["staging_table"], c))
        check(int(rows[0][1]) <= 3, "range %s: %r partitions" % (c, rows))
        total += int(rows[0][0])
    check_eq(total, fl["staged_rows"], "the ranges cover the staged rows once")
    r = ws.sync()
    expect_ok(r)
    check("(job found from an earlier try)" in r.stderr, "done ranges are found, not rerun: %r" % r)
    check_eq(assert_target_equals_source(ws, "events", EVENT_COLS, "id", ["updated_at"]), 61,
             "rows")
    check_eq(ws.inspect("events")["tables"][0]["in_flight"], None, "no run in flight")
    ws.cleanup()


def copy_jobs_into(dataset):
    """(job id, source table, destination table, write disposition) of each
    copy job the emulator ran into dataset, oldest first: jobs.list names the
    copy jobs (statistics.copy), jobs.get gives their configuration."""
    st, body = bq_request("GET", "/jobs")
    check_eq(st, 200, "jobs.list")
    out = []
    for j in body.get("jobs") or []:
        if "copy" not in (j.get("statistics") or {}):
            continue
        jid = j["jobReference"]["jobId"]
        st, job = bq_request("GET", "/jobs/" + jid)
        check_eq(st, 200, "jobs.get of copy job %s" % jid)
        c = job["configuration"]["copy"]
        if c["destinationTable"]["datasetId"] == dataset:
            out.append((jid, c["sourceTable"]["tableId"], c["destinationTable"]["tableId"],
                        c.get("writeDisposition")))
    return out


def full_ws(name, rows=300):
    """A full-refresh table partitioned by day whose extract (about 40 KiB)
    is well above a 4 KiB bound: every sync replaces the target in parts."""
    ws = Workspace(name)
    mysql(ITEMS_DDL, db=ws.db)
    insert_rows(ws, 1, rows, 1)
    ws.write_config([{"name": "items", "primary_key": "id", "mode": "full",
                      "partition_by": "updated_at", "cluster_by": "id"}],
                    extra_bigquery="max_load_file_size: %d\nstream_load: false\ncompression: none"
                    % PART_BYTES)
    return ws


def test_replace_in_parts_is_one_copy_and_atomic_for_readers():
    ws = full_ws("replparts")
    r = ws.sync()
    expect_ok(r)
    check("split into" in r.stderr, "the first sync went in parts: %r" % r)
    copies = copy_jobs_into(ws.dataset)
    check_eq(len(copies), 1, "one copy job replaced the target: %r" % copies)
    check_eq(copies[0][2:], ("items", "WRITE_TRUNCATE"), "copied over the target")
    check(copies[0][1] != "items", "copied from a staging table: %r" % copies)
    check_eq(assert_target_equals_source(ws, "items", COLS, "id", ["updated_at"]), 300, "rows")
    # A full refresh, killed between parts: readers still see the old
    # content, whole; the staging table has the target's layout.
    before = bq_query("SELECT COUNT(*), SUM(n) FROM `%s.items`" % ws.dataset)
    mysql("DELETE FROM items WHERE id <= 50; UPDATE items SET n = n + 1000 WHERE id > 250",
          db=ws.db)
    insert_rows(ws, 301, 40, 3)
    env = ws.env(MBQ_FAULT="stage.part_done", MBQ_FAULT_HIT="3")
    r = ws.sync(env=env)
    check(r.returncode == -9, "killed after the third part: %r" % r)
    check_eq(bq_query("SELECT COUNT(*), SUM(n) FROM `%s.items`" % ws.dataset), before,
             "the target is untouched while parts load")
    fl = ws.inspect("items")["tables"][0]["in_flight"]
    st = bq_request("GET", "/datasets/%s/tables/%s" % (ws.dataset, fl["staging_table"]))[1]
    tg = bq_request("GET", "/datasets/%s/tables/items" % ws.dataset)[1]
    check_eq((st.get("timePartitioning"), st.get("clustering")),
             (tg.get("timePartitioning"), tg.get("clustering")),
             "the staging table has the target's partitioning and clustering")
    r = ws.sync()
    expect_ok(r)
    # The resumed run loads only the parts it has not loaded; then, since
    # its snapshot is older than this sync, a new full refresh catches up
    # (its own parts, its own copy).
    resumed, _, caught_up = r.stderr.partition("catches up")
    check(caught_up != "", "the resumed full refresh is followed by a catch-up: %r" % r)
    check("loaded part 1 " not in resumed and "loaded part 4 " in resumed,
          "loaded parts are not loaded again: %r" % r)
    check_eq(len(copy_jobs_into(ws.dataset)), 3, "one copy for the resumed run, one for the catch-up")
    check_eq(assert_target_equals_source(ws, "items", COLS, "id", ["updated_at"]), 290, "rows")
    check_eq(staging_files(ws), [], "the parts are removed")
    check_eq(staging_tables(ws), [], "the staging table is dropped")
    ws.cleanup()


def seed_pending_mirror_rows(ws, n):
    """n more committed table runs whose mirror is pending, as after weeks of
    failed mirrors (copies of the last one)."""
    db = sqlite3.connect(os.path.join(ws.state, "state.db"))
    cols = ("run_id, last_run_id, table_name, state, load_mode, attempt, low, high, staged_rows, "
            "started_ms, updated_ms, finished_ms")
    for _ in range(n):
        db.execute("INSERT INTO table_runs (%s, mirror_state) SELECT %s, 'pending' FROM table_runs "
                   "WHERE id = (SELECT MIN(id) FROM table_runs)" % (cols, cols))
    db.commit()
    db.close()


def test_mirror_inserts_stay_under_the_query_size_bound():
    ws = Workspace("mirrorbatch")
    mysql(ITEMS_DDL, db=ws.db)
    insert_rows(ws, 1, 10, 1)
    ws.write_config([{"name": "items", "primary_key": "id", "updated_column": "updated_at"}],
                    extra_bigquery="max_query_size: 4KiB")
    expect_ok(ws.sync())
    seed_pending_mirror_rows(ws, 80)
    r = ws.sync("--log-level", "debug")
    expect_ok(r)
    sizes = [int(s) for s in re.findall(r"INSERT of table runs \d+\.\.\d+: (\d+) bytes", r.stderr)]
    check(len(sizes) >= 4, "80 rows of a few hundred bytes need several INSERTs: %r" % sizes)
    check(all(s <= 4096 for s in sizes), "each INSERT within max_query_size: %r" % sizes)
    m = re.search(r"mirrored (\d+) table run\(s\)", r.stderr)
    check(m is not None and int(m.group(1)) >= 80, "the 80 seeded runs mirrored: %r" % r)
    total = 1 + int(m.group(1))
    rows = bq_query("SELECT COUNT(*), COUNT(DISTINCT table_run_id) FROM `%s.sync_metadata`"
                    % ws.dataset)
    check_eq(rows, [[str(total), str(total)]], "every mirror row once (the first run's too)")
    pending = sqlite3.connect(os.path.join(ws.state, "state.db")).execute(
        "SELECT COUNT(*) FROM table_runs WHERE mirror_state = 'pending'").fetchone()[0]
    check_eq(pending, 0, "nothing left pending")
    ws.cleanup()


def test_limits_above_bigquery_are_refused_in_config():
    ws = Workspace("limitcfg")
    mysql(ITEMS_DDL, db=ws.db)
    for extra, words in [("max_load_file_size: 4GiB", "below 4 GB"),
                         ("max_query_size: 2MiB", "at most 1000000 bytes"),
                         ("max_load_file_size: 100", "at least 1 KiB"),
                         ("max_partitions_per_job: 4001", "max_partitions_per_job")]:
        ws.write_config([{"name": "items", "primary_key": "id", "updated_column": "updated_at"}],
                        extra_bigquery=extra)
        with open(ws.config) as f:
            text = f.read()
        with open(ws.config, "w") as f:
            f.write(text.replace("compression: none", "compression: gzip"))
        r = ws.sync()
        check_eq(r.returncode, 2, "%s: %r" % (extra, r))
        check(words in r.stderr, "%s: message says '%s': %r" % (extra, words, r))
    ws.cleanup()


if __name__ == "__main__":
    require_services()
    private_emulator()  # a fresh emulator of its own (mbqtest.py says why)
    run_cases([
        test_limits_above_bigquery_are_refused_in_config,
        test_mirror_inserts_stay_under_the_query_size_bound,
        test_incremental_above_the_file_bound_loads_in_parts,
        test_kills_between_parts_load_each_part_exactly_once,
        test_damaged_staged_file_is_extracted_again_not_split,
        test_merge_into_partitioned_target_runs_in_partition_ranges,
        test_merge_ranges_resume_after_a_kill,
        test_replace_in_parts_is_one_copy_and_atomic_for_readers,
    ])
