"""Many readers: N processes query the stable path in a loop while M releases are published.

    .venv/bin/python bench/soak.py [--readers 20] [--releases 20]

Each reader opens the stable path read-only, reads `_release` and a KPI sum, closes, repeats.
Releases are published by in-process refreshes, each with one more day of report files. Prints
queries run, errors (must be 0), releases seen by readers and whether every one was complete.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine, table  # noqa: E402

READER = r"""
import sys, time, json, duckdb
path, stop = sys.argv[1], sys.argv[2]
import os
seen, errors, queries, slowest = set(), [], 0, 0.0
while not os.path.exists(stop):
    started = time.perf_counter()
    try:
        with duckdb.connect(path, read_only=True) as con:
            rid = con.execute("select release_id from _release").fetchone()[0]
            if not con.execute("select sum(reports) from kpi_year_summary").fetchone()[0]:
                raise RuntimeError("empty release")
        seen.add(rid)
        queries += 1
    except Exception as exc:
        errors.append(repr(exc)[:200])
    slowest = max(slowest, time.perf_counter() - started)
print(json.dumps({"seen": sorted(seen), "errors": errors, "queries": queries, "slowest": slowest}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readers", type=int, default=20)
    parser.add_argument("--releases", type=int, default=20)
    args = parser.parse_args()
    from prefect.testing.utilities import prefect_test_harness

    from flows.refresh import refresh
    from flows.release.store import load_manifest
    from sample import SampleSpec, write_sample

    work = Path(tempfile.mkdtemp(prefix="politikpi-soak-"))
    full = work / "full"
    write_sample(full, SampleSpec(years=(2019,), days=14 + args.releases))
    landing = work / "landing"
    shutil.copytree(full, landing)
    later = sorted(p for p in (landing / "reports").glob("2019-*.csv*")
                   if p.name >= "2019-01-15" and "eftersending" not in p.name and "udtraek" not in p.name)
    parked = work / "parked"
    parked.mkdir()
    for path in later:
        path.rename(parked / path.name)
    folders = (str(landing), str(work / "state"), str(work / "warehouse"))
    published = []
    with prefect_test_harness(server_startup_timeout=120):
        published.append(refresh(*folders)["release"]["release_id"])
        stop = work / "stop"
        readers = [subprocess.Popen([sys.executable, "-c", READER, folders[2] + "/politikpi.duckdb", str(stop)],
                                    stdout=subprocess.PIPE, text=True) for _ in range(args.readers)]
        started = time.monotonic()
        for path in sorted(parked.iterdir())[: args.releases - 1]:
            path.rename(landing / "reports" / path.name)
            published.append(refresh(*folders)["release"]["release_id"])
        elapsed = time.monotonic() - started
        stop.touch()
        results = [json.loads(r.communicate(timeout=300)[0]) for r in readers]
    listed = {r["release_id"] for r in load_manifest(work / "warehouse")["releases"]}
    seen = set().union(*[set(r["seen"]) for r in results])
    print(machine())
    print(table("soak: readers during publishing", ["what", "value"], [
        ["reader processes", args.readers], ["releases published", len(set(published))],
        ["publishing took (s)", f"{elapsed:.1f}"], ["queries run", sum(r["queries"] for r in results)],
        ["reader errors", sum(len(r["errors"]) for r in results)], ["distinct releases seen", len(seen)],
        ["releases seen that were not published", len(seen - set(published))],
        ["slowest open+query (s)", f"{max(r['slowest'] for r in results):.2f}"],
        ["kept in manifest (retention)", len(listed)]]))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
