"""Extraction + validation of report files against DuckDB alone reading the same files.

    .venv/bin/python bench/extract_bench.py              # the national sample: 2015-2019 x12, ~11.9M reports
    .venv/bin/python bench/extract_bench.py --scale 10 --years 2019    # one year x10, ~2.1M reports

Baseline: DuckDB's read_csv of every report file (all columns as text) into a table: the floor
for "read the files". Ours: politikpi's extract stage for the reports source (encoding check,
DuckDB parse with reject tables, line numbers, archive Parquet, Pandera validation, cast).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import duckdb  # noqa: E402

from bench.common import OUT, ensure_sample, machine, median_time, table  # noqa: E402
from flows.files import file_sha256  # noqa: E402
from flows.ingest import extract, readers  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=12)
    parser.add_argument("--years", default="2015-2019")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    # The same sample as bench/run_all.py's national scenario (written once, reused).
    folder = "national" if (args.scale, args.years) == (12, "2015-2019") else f"scale{args.scale}"
    landing = ensure_sample(OUT / folder, args.scale, args.years)
    files, _ = extract.scan_landing(landing)
    reports = [f for f in files if f.source == "reports"]
    readable = [str(landing / f.path) for f in reports if "udtraek" not in f.path and "eftersending" not in f.path]

    # DuckDB cannot read Windows-1252: the baseline reads UTF-8 copies of those files (made untimed).
    utf8_dir = Path(tempfile.mkdtemp(prefix="politikpi-bench-utf8-"))
    inputs = [str(readers._utf8_copy(Path(p), readers.detect_encoding(Path(p)), utf8_dir)) for p in readable]

    def baseline():
        con = duckdb.connect()
        con.execute("create table t as select * from read_csv(?, delim=';', quote='\"', escape='\"', header=true, "
                    "all_varchar=true, ignore_errors=true)", [inputs])
        return con.execute("select count(*) from t").fetchone()[0]

    rows = baseline()
    base, base_runs = median_time(baseline, args.runs)
    hashes = {f.identity: file_sha256(landing / f.path) for f in reports}
    work = Path(tempfile.mkdtemp(prefix="politikpi-bench-"))

    def ours():
        extract.process_files(reports, landing, work / "state", work / "work", hashes)

    def reset():
        shutil.rmtree(work, ignore_errors=True)

    mine, mine_runs = median_time(ours, args.runs, setup=reset)
    reset()
    shutil.rmtree(utf8_dir, ignore_errors=True)
    print(machine())
    print(table(f"Reports: {len(reports)} files, {rows:,} rows (median of {args.runs})",
                ["what", "median s", "runs", "rows/s"],
                [["DuckDB read_csv alone (baseline)", f"{base:.2f}", " ".join(f"{t:.2f}" for t in base_runs),
                  f"{rows / base:,.0f}"],
                 ["politikpi extract + validate", f"{mine:.2f}", " ".join(f"{t:.2f}" for t in mine_runs),
                  f"{rows / mine:,.0f}"]]))
    print(f"ratio: {mine / base:.2f}x the baseline (target: within ~3x)")


if __name__ == "__main__":
    main()
