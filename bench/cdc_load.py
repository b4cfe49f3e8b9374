#!/usr/bin/env python3
"""The steady write load of bench/cdc.sh, and the lag sampler.

    cdc_load.py STATE_DB RATE SECONDS TXN_ROWS FIRST_ID LIVE_IDS OUT_JSON -- mariadb args...

Writes RATE row changes a second for SECONDS into bench.bench_cdc (the
shape of bench/table.sh) through one `mariadb` client: transactions of
TXN_ROWS row changes each (30% inserts of new ids from FIRST_ID, 40%
updates, 30% deletes of live ids, LIVE_IDS being the ids the table starts
with: the table keeps its size), paced evenly. Meanwhile, once a second, it reads the follower's
journal (STATE_DB, read-only: cdc_stream.lag_ms, cdc_tables' row counters)
and keeps the samples. OUT_JSON gets the counts and the samples."""
import json
import random
import sqlite3
import subprocess
import sys
import threading
import time


def sampler(db_path, stop, samples):
    uri = "file:%s?mode=ro" % db_path
    while not stop.is_set():
        t = time.time()
        try:
            c = sqlite3.connect(uri, uri=True, timeout=2)
            lag, status, upd = c.execute(
                "SELECT lag_ms, status, updated_ms FROM cdc_stream WHERE id = 1").fetchone()
            rows = c.execute("SELECT COALESCE(SUM(rows_inserted + rows_updated + rows_deleted), 0) "
                             "FROM cdc_tables").fetchone()[0]
            c.close()
            samples.append({"t": t, "lag_ms": lag, "status": status, "updated_ms": upd,
                            "applied": rows})
        except Exception as e:  # noqa: BLE001 - a busy journal skips one sample
            samples.append({"t": t, "error": str(e)})
        stop.wait(max(0.0, 1.0 - (time.time() - t)))


def main():
    db, rate, seconds, txn_rows, first_id, live_n, out = sys.argv[1:8]
    mariadb = sys.argv[9:]
    rate, seconds, txn_rows = float(rate), float(seconds), int(txn_rows)
    next_id, live = int(first_id), list(range(1, int(live_n) + 1))
    rnd = random.Random(7)
    p = subprocess.Popen(mariadb, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    p.stdin.write(b"SET time_zone = '+00:00';\n")
    stop, samples = threading.Event(), []
    th = threading.Thread(target=sampler, args=(db, stop, samples), daemon=True)
    th.start()
    counts = {"I": 0, "U": 0, "D": 0, "transactions": 0}
    per_txn = txn_rows / rate
    t0 = time.time()
    k = 0
    while True:
        due = t0 + k * per_txn
        now = time.time()
        if due - t0 >= seconds:
            break
        if due > now:
            time.sleep(due - now)
        n_ins = max(1, txn_rows * 3 // 10)
        n_del = max(1, txn_rows * 3 // 10)
        n_upd = max(0, txn_rows - n_ins - n_del)
        sql = ["BEGIN;"]
        vals = []
        for _ in range(n_ins):
            i = next_id
            next_id += 1
            live.append(i)
            vals.append("(%d, %d, %d, %d.%02d, 'cdc %d %s', JSON_OBJECT('k', %d), "
                        "NOW(6), NOW(6))" % (i, i % 1000, 1 + i % 4, i % 1000, i % 100, i,
                                             chr(97 + i % 26) * (20 + i % 60), i % 17))
        sql.append("INSERT INTO bench_cdc VALUES %s;" % ", ".join(vals))
        for _ in range(n_upd):
            i = live[rnd.randrange(len(live))]
            sql.append("UPDATE bench_cdc SET qty = qty + 1, status = 1 + (qty %% 4), "
                       "updated_at = NOW(6) WHERE id = %d;" % i)
        for _ in range(n_del):
            j = rnd.randrange(len(live))
            live[j], live[-1] = live[-1], live[j]
            sql.append("DELETE FROM bench_cdc WHERE id = %d;" % live.pop())
        sql.append("COMMIT;")
        p.stdin.write(("\n".join(sql) + "\n").encode())
        p.stdin.flush()
        counts["I"] += n_ins
        counts["U"] += n_upd
        counts["D"] += n_del
        counts["transactions"] += 1
        k += 1
    p.stdin.close()
    p.wait()
    elapsed = time.time() - t0
    # Keep sampling until the follower has applied everything written.
    written_end = time.time()
    target = counts["I"] + counts["U"] + counts["D"]
    caught_up_at = None
    deadline = written_end + 600
    while time.time() < deadline:
        last = next((s for s in reversed(samples) if "applied" in s), None)
        if last and last["applied"] >= target and last["t"] > written_end and \
                last["lag_ms"] == 0:
            caught_up_at = last["t"]
            break
        time.sleep(0.5)
    stop.set()
    th.join()
    json.dump({"counts": counts, "write_seconds": elapsed, "written_end": written_end,
               "caught_up_at": caught_up_at, "t0": t0, "samples": samples}, open(out, "w"))
    if p.returncode != 0:
        sys.exit("mariadb writer failed: %d" % p.returncode)


if __name__ == "__main__":
    main()
