#!/usr/bin/env python3
"""Time and memory of repeated WRITE_TRUNCATE loads into one table.

    python3 tools/emulator/measure_truncate_loads.py BINARY [N]

starts BINARY (as probe.py does), loads 200 NDJSON rows N times (default
100) into one table with WRITE_TRUNCATE and the table's own schema, as mbq
reloads a staging table, and prints the wall time and the emulator's RSS
afterwards. Patch 0011 drops and recreates the table for such a load only
when its stored columns change; this measures what that saves.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from probe import PROJECT, UPLOAD, Emulator, multipart  # noqa: E402

SCHEMA = {"fields": [{"name": "id", "type": "INTEGER"}, {"name": "name", "type": "STRING"}]}
ROWS = "".join('{"id":%d,"name":"n%d"}\n' % (i, i) for i in range(200)).encode()


def meta(i):
    return json.dumps({"jobReference": {"projectId": PROJECT, "jobId": "j%d" % i},
                       "configuration": {"load": {
                           "sourceFormat": "NEWLINE_DELIMITED_JSON", "writeDisposition": "WRITE_TRUNCATE",
                           "destinationTable": {"projectId": PROJECT, "datasetId": "d", "tableId": "stg"},
                           "schema": SCHEMA}}})


def rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) // 1024
    return -1


def main():
    if len(sys.argv) not in (2, 3):
        raise SystemExit(__doc__)
    n = int(sys.argv[2]) if len(sys.argv) == 3 else 100
    emu = Emulator(sys.argv[1])
    try:
        emu.call("POST", f"/bigquery/v2/projects/{PROJECT}/datasets",
                 json.dumps({"datasetReference": {"projectId": PROJECT, "datasetId": "d"}}),
                 {"Content-Type": "application/json"})
        start = time.time()
        for i in range(n):
            body, hdrs = multipart(meta(i), ROWS)
            st, _, doc = emu.call("POST", UPLOAD + "?uploadType=multipart", body, hdrs)
            if st != 200 or ((doc or {}).get("status") or {}).get("errorResult"):
                raise SystemExit("load %d failed: HTTP %d %s" % (i, st, doc))
        took = time.time() - start
        print("%d WRITE_TRUNCATE loads of 200 rows into one table: %.1f s (%.0f ms each), RSS %d MiB"
              % (n, took, 1000 * took / n, rss_mib(emu.proc.pid)))
    finally:
        emu.close()


if __name__ == "__main__":
    main()
