#!/usr/bin/env python3
"""The fault table from three runs of one matrix: as it is, under CRIU_MATRIX_FAULT=restart and
under CRIU_MATRIX_FAULT=no-restore.

    scripts/fault-table.py NORMAL_RUN RESTART_RUN NO_RESTORE_RUN

Every cell that passes in NORMAL_RUN must be `fail` in each fault run, with a `witness:` message
in its reason, and its record must name the fault. Prints one line per such cell that does not,
then the counts; exits 1 when any cell does not.
"""
import json
import sys
from pathlib import Path


def records(run):
    path = Path(run) / "cells.jsonl" if Path(run).is_dir() else Path(run)
    return {r["name"]: r for r in map(json.loads, path.read_text().splitlines()) if r}


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    normal, faults = records(sys.argv[1]), {"restart": records(sys.argv[2]), "no-restore": records(sys.argv[3])}
    passing = sorted(n for n, r in normal.items() if r["verdict"] == "pass")
    bad = 0
    for mode, run in faults.items():
        caught = 0
        for name in passing:
            r = run.get(name)
            if r is None:
                print(f"{mode}: {name}: not in the run")
            elif r.get("fault") != mode:
                print(f"{mode}: {name}: the record names fault {r.get('fault')!r}")
            elif r["verdict"] != "fail" or "witness:" not in r.get("reason", ""):
                print(f"{mode}: {name}: {r['verdict']}: {r.get('reason', '')[:160]}")
            else:
                caught += 1
                continue
            bad += 1
        print(f"{mode}: {caught} of {len(passing)} cells that pass normally fail with a witness message")
    others = {}
    for r in normal.values():
        if r["verdict"] != "pass":
            others[r["verdict"]] = others.get(r["verdict"], 0) + 1
    print(f"normally: {len(passing)} pass of {len(normal)} cells; the others: {others}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
