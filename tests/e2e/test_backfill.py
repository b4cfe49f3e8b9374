#!/usr/bin/env python3
"""Chunked backfills (`chunk_rows`): a first sync or full refresh read in
primary-key-range chunks, each its own snapshot and load job into a shadow
table, copied over the target in one copy job at the end.

- A first sync in chunks over two connections (`--jobs 2`) ends equal to
  the source; the shadow table is gone; the cursor is the mark.
- Killed at every chunk state (planned, extracted, load submitted, load
  done but not journaled, loaded, copy submitted, copy done), the next run
  resumes at the first chunk not loaded: it re-reads at most the one chunk
  that was in flight, never plans again, and the target has every row
  once.
- Writes during the backfill (killed after three chunks, then rows updated
  in chunks already loaded, inserted beyond the last key, deleted from
  chunks not read yet) are right after the resumed run's catch-up window.
- A full-mode table (no cursor) swaps its shadow in at once: killed before
  the copy, the target still holds the previous full refresh exactly.

Copy jobs run on the patched emulator (tools/emulator/patches/0013) and
are counted from its own job list."""
import os
import random
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mbqtest import (Workspace, assert_target_equals_source, bq_query, bq_table, check, check_eq,
                     count_loss, expect_ok, mysql, private_emulator, require_services, run_cases)
from test_limits import copy_jobs_into

COLS = ["id", "k2", "val", "updated_at"]
KEY = "id, k2"
N_ROWS = 600
CHUNK = 60  # 10 chunks

DDL = """
CREATE TABLE items (
  id INT NOT NULL,
  k2 VARCHAR(8) NOT NULL,
  val VARCHAR(100),
  updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (id, k2)
);
"""

def make_ws(name, mode="incremental", rows=N_ROWS):
    ws = Workspace(name)
    mysql(DDL, db=ws.db)
    # A composite key with skew: ids 1..rows/3, three k2 each.
    values = ",".join("(%d, '%s', 'v%d', '2024-01-01 00:00:00.000000' + INTERVAL %d SECOND)"
                      % (i // 3 + 1, "abc"[i % 3], i, i) for i in range(rows))
    mysql("INSERT INTO items (id, k2, val, updated_at) VALUES " + values, db=ws.db)
    t = {"name": "items", "primary_key": ["id", "k2"], "chunk_rows": CHUNK}
    if mode == "incremental":
        t["updated_column"] = "updated_at"
        t["lookback"] = "2s"
    else:
        t["mode"] = "full"
    ws.write_config([t], extra_bigquery="stream_load: false")
    return ws


def env(ws, **kw):
    return ws.env(**kw)


def chunk_lines(r):
    return re.findall(r"chunk (\d+): \d+ rows", r.stderr)


def test_first_sync_in_chunks_on_two_connections_equals_source():
    ws = make_ws("bf_first")
    n_copies = len(copy_jobs_into(ws.dataset))
    r = ws.sync("--jobs", "2", env=env(ws))
    expect_ok(r)
    check("backfill planned: 10 chunks" in r.stderr, "planned 10 chunks: %r" % r)
    check_eq(sorted(map(int, chunk_lines(r))), list(range(1, 11)), "each chunk once")
    check_eq(len(copy_jobs_into(ws.dataset)) - n_copies, 1, "one copy job")
    check_eq(assert_target_equals_source(ws, "items", COLS, KEY, ["updated_at"]), N_ROWS, "rows")
    check_eq(bq_table(ws.dataset, "items__mbq_backfill_1"), None, "shadow table dropped")
    t = ws.inspect("items")["tables"][0]
    check_eq(t["in_flight"], None, "nothing in flight")
    check_eq(t["cursor"], "2024-01-01 00:09:59.000000", "cursor is the mark")
    # The next run is an ordinary incremental window: no chunks.
    mysql("UPDATE items SET val = 'changed' WHERE id = 1", db=ws.db)
    r = ws.sync(env=env(ws))
    expect_ok(r)
    check("backfill" not in r.stderr, "no backfill after the first sync: %r" % r)
    assert_target_equals_source(ws, "items", COLS, KEY, ["updated_at"])
    ws.cleanup()


KILL_POINTS = [
    ("backfill.planned", 1),
    ("backfill.chunk_extracted", 4),
    ("backfill.load_submit", 4),
    ("backfill.chunk_load_done", 4),
    ("backfill.chunk_loaded", 4),
    ("backfill.copy_submit", 1),
    ("backfill.copy_done", 1),
]


def test_kill_at_every_chunk_state_resumes_losing_at_most_one_chunk():
    for point, hit in KILL_POINTS:
        ws = make_ws("bf_kill")
        r = ws.sync(env=env(ws, MBQ_FAULT=point, MBQ_FAULT_HIT=hit))
        check(r.returncode in (137, -9), "%s: killed: %r" % (point, r))
        fl = ws.inspect("items")["tables"][0]["in_flight"]
        check(fl is not None, "%s: a run in flight" % point)
        bf = fl.get("backfill") or {}
        loaded = bf.get("chunks_loaded", 0)
        check_eq(bf.get("chunks"), 10, "%s: inspect shows the plan" % point)
        r = ws.sync(env=env(ws))
        expect_ok(r, point)
        check("backfill planned" not in r.stderr, "%s: resumed, not planned again: %r"
              % (point, r))
        redone = chunk_lines(r)
        # The resumed run does only the chunks not loaded at the kill (the one
        # in flight included): at most one chunk's work is lost.
        check_eq(len(redone), 10 - loaded, "%s: chunks done on resume" % point)
        lost, dups = count_loss(ws, "items", KEY)
        check_eq((lost, dups), (0, 0), "%s: lost, duplicated" % point)
        check_eq(assert_target_equals_source(ws, "items", COLS, KEY, ["updated_at"]), N_ROWS,
                 point)
        ws.cleanup()


def test_writes_during_the_backfill_arrive_by_the_catch_up_window():
    ws = make_ws("bf_writes")
    # Killed once the third chunk is loaded: chunks 1-3 are in the shadow.
    r = ws.sync(env=env(ws, MBQ_FAULT="backfill.chunk_loaded", MBQ_FAULT_HIT=3))
    check(r.returncode in (137, -9), "killed: %r" % r)
    # Updates to rows of loaded chunks, inserts beyond the last key, deletes
    # from chunks not read yet, an insert into a gap of a loaded chunk.
    mysql("UPDATE items SET val = 'updated' WHERE id IN (1, 5, 20)", db=ws.db)
    mysql("INSERT INTO items (id, k2, val) VALUES (100000, 'z', 'beyond'), (5, 'zz', 'gap')",
          db=ws.db)
    mysql("DELETE FROM items WHERE id BETWEEN 150 AND 160", db=ws.db)
    r = ws.sync(env=env(ws))
    expect_ok(r)
    check("catches up from cursor 2024-01-01 00:09:59.000000" in r.stderr,
          "a catch-up window from the mark: %r" % r)
    n = assert_target_equals_source(ws, "items", COLS, KEY, ["updated_at"])
    check_eq(n, N_ROWS + 2 - 33, "rows")
    ws.cleanup()


def test_full_mode_swaps_the_shadow_in_at_once():
    ws = make_ws("bf_full", mode="full")
    expect_ok(ws.sync(env=env(ws)), "first full sync")
    before = assert_target_equals_source(ws, "items", COLS, KEY, ["updated_at"])
    old = bq_query("SELECT id, k2, val FROM `%s.items` ORDER BY id, k2" % ws.dataset)
    mysql("UPDATE items SET val = CONCAT(val, '-2')", db=ws.db)
    n_copies = len(copy_jobs_into(ws.dataset))
    r = ws.sync(env=env(ws, MBQ_FAULT="backfill.copy_submit", MBQ_FAULT_HIT=1))
    check(r.returncode in (137, -9), "killed before the copy: %r" % r)
    check_eq(len(copy_jobs_into(ws.dataset)), n_copies, "no copy ran")
    # Every chunk is in the shadow; readers of the target still see the
    # previous refresh, whole.
    check_eq(bq_query("SELECT id, k2, val FROM `%s.items` ORDER BY id, k2" % ws.dataset), old,
             "target untouched until the copy")
    check_eq(before, N_ROWS, "rows before")
    r = ws.sync(env=env(ws))
    expect_ok(r)
    check_eq(len(copy_jobs_into(ws.dataset)), n_copies + 1, "one copy")
    check_eq(assert_target_equals_source(ws, "items", COLS, KEY, ["updated_at"]), N_ROWS, "rows")
    check_eq(ws.inspect("items")["tables"][0]["cursor"], None, "full mode keeps no cursor")
    ws.cleanup()


def test_reset_abandons_the_backfill_with_its_shadow_and_files():
    ws = make_ws("bf_reset")
    r = ws.sync(env=env(ws, MBQ_FAULT="backfill.chunk_extracted", MBQ_FAULT_HIT=3))
    check(r.returncode in (137, -9), "killed: %r" % r)
    fl = ws.inspect("items")["tables"][0]["in_flight"]
    shadow = "items__mbq_backfill_%d" % fl["id"]
    chunk_dir = os.path.join(ws.state, "staging", "backfill.%d" % fl["id"])
    check(bq_table(ws.dataset, shadow) is not None, "the shadow exists")
    check(os.listdir(chunk_dir), "the chunk file of the killed run is there")
    r = ws.state_cmd("reset", "items", "--full", "--yes", env=env(ws))
    expect_ok(r, "reset")
    check_eq(bq_table(ws.dataset, shadow), None, "the shadow is dropped")
    check(not os.path.exists(chunk_dir), "the chunk files are gone")
    expect_ok(ws.sync(env=env(ws)), "sync after the reset")
    check_eq(assert_target_equals_source(ws, "items", COLS, KEY, ["updated_at"]), N_ROWS, "rows")
    ws.cleanup()


SEED = int(os.environ.get("MBQ_KILL_SEED") or random.SystemRandom().randrange(1 << 31))


def test_random_kills_under_writes_end_equal_to_the_source():
    """SIGKILL at random instants (seeded: MBQ_KILL_SEED) on two connections
    while a writer updates, inserts and deletes; then runs until one ends."""
    rng = random.Random(SEED)
    print("     seed %d" % SEED, flush=True)
    ws = make_ws("bf_random", rows=1200)
    stop = threading.Event()
    wrng = random.Random(SEED + 1)

    def writer():
        i = 0
        while not stop.is_set():
            i += 1
            # Updates to rows of any chunk (read or not yet), inserts beyond
            # every key. (A delete of a row whose chunk was read needs delete
            # sync, which an incremental cursor does not give.)
            if wrng.random() < 0.6:
                mysql("UPDATE items SET val = 'w%d' WHERE id = %d" % (i, wrng.randrange(1, 401)),
                      db=ws.db)
            else:
                mysql("INSERT INTO items (id, k2, val) VALUES (%d, 'n', 'i%d')"
                      % (100000 + i, i), db=ws.db)
            time.sleep(0.02)

    th = threading.Thread(target=writer, daemon=True)
    th.start()
    kills = 0
    try:
        for _ in range(8):
            p = subprocess.Popen([os.environ["MBQ_BIN"], "sync", "--jobs", "2", "--config",
                                  ws.config], env=env(ws), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE)
            time.sleep(rng.uniform(0.2, 4.0))
            if p.poll() is None:
                p.kill()
                kills += 1
            p.communicate(timeout=300)
            if p.returncode == 0:
                break
    finally:
        stop.set()
        th.join()
    r = ws.sync(env=env(ws))
    expect_ok(r, "final run (seed %d, %d kills)" % (SEED, kills))
    lost, dups = count_loss(ws, "items", KEY)
    check_eq((lost, dups), (0, 0), "lost, duplicated (seed %d)" % SEED)
    assert_target_equals_source(ws, "items", COLS, KEY, ["updated_at"])
    print("     %d kills" % kills, flush=True)
    ws.cleanup()


if __name__ == "__main__":
    require_services()
    private_emulator()
    run_cases([
        test_first_sync_in_chunks_on_two_connections_equals_source,
        test_kill_at_every_chunk_state_resumes_losing_at_most_one_chunk,
        test_writes_during_the_backfill_arrive_by_the_catch_up_window,
        test_full_mode_swaps_the_shadow_in_at_once,
        test_reset_abandons_the_backfill_with_its_shadow_and_files,
        test_random_kills_under_writes_end_equal_to_the_source,
    ])
