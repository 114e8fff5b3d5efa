"""The pipeline against its floor, at district and national volume.

    make bench                                   # all scenarios (national: ~12M reports, ~2M call-outs)
    .venv/bin/python bench/run_all.py --only 1   # just the 2019 district sample

Scenarios: (1) 2019 district sample, full refresh; (2) national volume over 2015-2019, full
refresh; (3) the nightly case on that history: one new day of files; (4) a run with no new
files; (5) orchestration overhead of a flow run against a running Prefect server.
Baseline, measured in the same run: DuckDB alone reading the same landing files (UTF-8 copies
of the Windows-1252 ones, made untimed) and running the same sql/ models, with no validation,
no orchestration and no publishing. Every refresh runs `politikpi refresh` in its own process
against a running Prefect server; figures are medians of --runs runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import duckdb  # noqa: E402

from bench.common import OUT, ROOT, ensure_sample, machine, run_timed, table  # noqa: E402
from flows.ingest import readers, state  # noqa: E402
from flows.server import local_server  # noqa: E402
from flows.transform import runner, transform  # noqa: E402

BASELINE_SQL = {
    "staged_reports": """select null::varchar as file_identity, 0::bigint as line, journalnr,
        timezone('Europe/Copenhagen', try_strptime(anmeldt_tid, '%d-%m-%Y %H:%M:%S')) as anmeldt_tid,
        timezone('Europe/Copenhagen', try_strptime(gerningstid_fra, '%d-%m-%Y %H:%M:%S')) as gerningstid_fra,
        try_cast(kommunekode as integer) as kommunekode, lovomraade, overtraedelse,
        timezone('Europe/Copenhagen', try_strptime(sidst_aendret, '%d-%m-%Y %H:%M:%S')) as sidst_aendret
        from read_csv(?, delim=';', header=true, all_varchar=true, ignore_errors=true)""",
    "staged_dispatches": """select null::varchar as file_identity, 0::bigint as line, haendelse_id,
        try_cast(modtaget as timestamptz) as modtaget, try_cast(disponeret as timestamptz) as disponeret,
        try_cast(fremme as timestamptz) as fremme, try_cast(afsluttet as timestamptz) as afsluttet,
        try_cast(prioritet as integer) as prioritet, aarsag, try_cast(responstid_maalt as boolean) as responstid_maalt,
        try_cast(kommunekode as integer) as kommunekode, try_cast(aflyst as boolean) as aflyst,
        try_cast(sidst_aendret as timestamptz) as sidst_aendret, journalnr
        from read_json(?, format='newline_delimited', ignore_errors=true, columns={
            'haendelse_id': 'VARCHAR', 'modtaget': 'VARCHAR', 'disponeret': 'VARCHAR', 'fremme': 'VARCHAR',
            'afsluttet': 'VARCHAR', 'prioritet': 'VARCHAR', 'aarsag': 'VARCHAR', 'responstid_maalt': 'VARCHAR',
            'kommunekode': 'VARCHAR', 'aflyst': 'VARCHAR', 'sidst_aendret': 'VARCHAR', 'journalnr': 'VARCHAR'})""",
    "staged_outreach": """select null::varchar as file_identity, 0::bigint as line,
        try_strptime(dato, '%d-%m-%Y')::date as dato, try_cast(kommunekode as integer) as kommunekode, aktivitet,
        try_cast(antal as integer) as antal, lokalomraade
        from read_csv(?, delim=';', header=true, all_varchar=true, ignore_errors=true)""",
    "staged_ambassadors": """select filename as file_identity, 0::bigint as line, ambassadoer_id, lokalomraade,
        try_cast(kommunekode as integer) as kommunekode, try_strptime(aktiv_fra, '%d-%m-%Y')::date as aktiv_fra,
        try_strptime(aktiv_til, '%d-%m-%Y')::date as aktiv_til
        from read_csv(?, delim=';', header=true, all_varchar=true, ignore_errors=true, filename=true)""",
}


def utf8_inputs(landing: Path, folder: str, suffixes: tuple[str, ...], scratch: Path) -> list[str]:
    """The source's readable files, as DuckDB can read them (cp1252 transcoded, untimed)."""
    out = []
    for path in sorted((landing / folder).glob("*")):
        if not path.name.endswith(suffixes):
            continue
        try:
            out.append(str(readers._utf8_copy(path, readers.detect_encoding(path), scratch)))
        except readers.Rejected:
            continue
    return out


def baseline(landing: Path, runs: int) -> tuple[float, list[float]]:
    """The baseline in a process of its own: DuckDB holds every row in memory, and a child forked
    from a large process would start from its high-water mark (spoiling the refreshes' peak RSS)."""
    out = subprocess.run([sys.executable, __file__, "--baseline", str(landing), "--runs", str(runs)],
                         check=True, capture_output=True, text=True)
    times = json.loads(out.stdout.strip().splitlines()[-1])
    return statistics.median(times), times


def baseline_here(landing: Path, runs: int) -> list[float]:
    """DuckDB alone: read the landing files and run the same sql/ models."""
    scratch = Path(tempfile.mkdtemp(prefix="politikpi-baseline-"))
    inputs = {"staged_reports": utf8_inputs(landing, "reports", (".csv", ".csv.gz"), scratch),
              "staged_dispatches": utf8_inputs(landing, "dispatches", (".jsonl", ".jsonl.gz"), scratch),
              "staged_outreach": utf8_inputs(landing, "outreach", (".csv",), scratch),
              "staged_ambassadors": utf8_inputs(landing, "ambassadors", (".csv",), scratch)}
    inputs["staged_reports"] = [p for p in inputs["staged_reports"] if "udtraek" not in p]
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        con = duckdb.connect()
        con.execute("attach ':memory:' as state")
        for table_name, sql in BASELINE_SQL.items():
            con.execute(f"create table state.{table_name} as {sql}", [inputs[table_name]])
        con.execute("create table state.files as select distinct file_identity as identity, 'ambassadors' as source, "
                    "'ingested' as status, null::varchar as sha256, null::varchar as reason, 0 as rows_read, "
                    "0 as rows_staged, 0 as rows_quarantined from state.staged_ambassadors")
        con.execute("use state")
        con.execute(state.DDL)  # the tables the baseline does not fill (quarantine, rejections): empty
        con.execute("use memory")
        transform.load_reference(con)
        transform.attach_previous(con)
        runner.build(con)
        con.close()
        times.append(time.perf_counter() - started)
    shutil.rmtree(scratch, ignore_errors=True)
    return times


def refresh(landing: Path, root: Path, env: dict) -> tuple[float, int]:
    return run_timed([sys.executable, "-m", "flows", "refresh", "--landing", str(landing), "--state",
                      str(root / "state"), "--warehouse", str(root / "warehouse")], env)


def full_refresh(landing: Path, runs: int, env: dict) -> tuple[float, list[float], int, Path]:
    times, peak, root = [], 0, None
    for _ in range(runs):
        if root:
            shutil.rmtree(root, ignore_errors=True)
        root = Path(tempfile.mkdtemp(prefix="politikpi-bench-"))
        seconds, rss = refresh(landing, root, env)
        times.append(seconds)
        peak = max(peak, rss)
    return statistics.median(times), times, peak, root


def overhead(env: dict, runs: int) -> tuple[float, list[float]]:
    """A flow of 8 no-op tasks in a fresh process, against the running server, minus the same
    process doing the same calls without Prefect."""
    with_prefect = ("from prefect import flow, task\n@task\ndef t(i): return i\n"
                    "@flow\ndef f():\n    return [t(i) for i in range(8)]\nf()\n")
    without = "def t(i): return i\ndef f():\n    return [t(i) for i in range(8)]\nimport prefect\nf()\n"
    deltas = []
    for _ in range(runs):
        a, _ = run_timed([sys.executable, "-c", with_prefect], env)
        b, _ = run_timed([sys.executable, "-c", without], env)
        deltas.append(a - b)
    return statistics.median(deltas), deltas


def next_days(scale: int, year: int, days: int) -> Path:
    """The nightly case: the first days of the next year, as the sample writes them (untimed)."""
    out = Path(tempfile.mkdtemp(prefix="politikpi-days-"))
    subprocess.run([sys.executable, "-m", "flows", "sample", "--year", str(year), "--scale", str(scale), "--days",
                    str(days), "--out", str(out)], check=True, capture_output=True)
    return out


def add_day(landing: Path, days: Path, day: str) -> None:
    """One day's report and dispatch files arrive in the landing folder."""
    for folder in ("reports", "dispatches"):
        for path in (days / folder).glob(f"{day}*"):
            if "eftersending" not in path.name:
                shutil.copy(path, landing / folder / path.name)


def nights(landing: Path, root: Path, env: dict, scale: int, runs: int) -> tuple[list[float], list[float]]:
    """Refreshes with no new files, then consecutive nights each bringing one new day (every
    release patched from the last) — on a copy of the landing folder, against the same state."""
    idle = [refresh(landing, root, env)[0] for _ in range(runs)]
    nightly_landing = Path(tempfile.mkdtemp(prefix="politikpi-nightly-")) / "landing"
    shutil.copytree(landing, nightly_landing)
    days = next_days(scale, 2020, runs)
    nightly = []
    for k in range(1, runs + 1):
        add_day(nightly_landing, days, f"2020-01-{k:02d}")
        nightly.append(refresh(nightly_landing, root, env)[0])  # a real night: default threshold, dirt in proportion
    shutil.rmtree(nightly_landing.parent, ignore_errors=True)
    return idle, nightly


class Rows(list):
    """Rows of the result table; each is also printed as it is measured (a long run keeps its figures)."""

    def append(self, row: list) -> None:
        super().append(row)
        print("  ".join(str(x) for x in row if x != ""), flush=True)


def fmt(times: list[float]) -> str:
    return " ".join(f"{t:.1f}" for t in times)


def fresh_clone(runs: int) -> tuple[list[float], list[float]]:
    """A user's first minute: `git clone` of this repository, then `make venv` (the install step
    `make test` starts with) and `make run` (install, 2019 sample, refresh, overview)."""
    installs, make_runs = [], []
    for _ in range(runs):
        clone = Path(tempfile.mkdtemp(prefix="politikpi-clone-")) / "politikpi"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("POLITIKPI_", "PREFECT_API_URL", "VIRTUAL_ENV"))}
        installs.append(run_timed(["make", "-C", str(clone), "venv"], env)[0])
        shutil.rmtree(clone / ".venv")
        make_runs.append(run_timed(["make", "-C", str(clone), "run"], env)[0])
        shutil.rmtree(clone.parent, ignore_errors=True)
    return installs, make_runs


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def write_readme(results: list[dict], header: str) -> None:
    """Regenerate the README's performance table (between its bench markers) from this run."""
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    lines = [start, header, "", "| target | measured | baseline (same run) | verdict |", "|---|---:|---:|---|"]
    lines += [f"| {r['target']} | {r['measured']} | {r['baseline']} | {r['verdict']} |" for r in results]
    lines.append(end)
    before, _, rest = text.partition(start)
    _, _, after = rest.partition(end)
    readme.write_text(before + "\n".join(lines) + after, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scale", type=int, default=12, help="national scale over 2015-2019 (12: ~12M reports)")
    parser.add_argument("--only", type=int, choices=[1, 2], help="1: district only; 2: national only")
    parser.add_argument("--no-clone", action="store_true", help="skip the fresh-clone `make run` scenario")
    parser.add_argument("--readme", action="store_true", help="regenerate README.md's performance table")
    parser.add_argument("--baseline", type=Path, help=argparse.SUPPRESS)  # internal: the baseline's process
    args = parser.parse_args()
    if args.baseline:
        print(json.dumps(baseline_here(args.baseline, args.runs)))
        return
    print(machine())
    rows, results = Rows(), []

    def target(name: str, measured: str, baseline_text: str, ok: bool) -> None:
        results.append({"target": name, "measured": measured, "baseline": baseline_text, "verdict": verdict(ok)})
        print(f"TARGET {name}: {measured} (baseline {baseline_text or '-'}) {verdict(ok)}", flush=True)

    with local_server(port=4299, home=Path(tempfile.mkdtemp(prefix="politikpi-bench-prefect-"))) as api:
        env = dict(os.environ, PREFECT_API_URL=api)
        cost, cost_runs = overhead(env, args.runs)
        rows.append(["(5) orchestration overhead, 8 tasks", f"{cost:.1f}", fmt(cost_runs), "", "", ""])
        if args.only in (None, 1):
            landing = ensure_sample(OUT / "district2019", 1)
            base, base_runs = baseline(landing, args.runs)
            full, full_runs, peak, root = full_refresh(landing, args.runs, env)
            rows.append(["DuckDB alone, 2019 district (baseline)", f"{base:.1f}", fmt(base_runs), "", "", ""])
            rows.append(["(1) full refresh, 2019 district", f"{full:.1f}", fmt(full_runs), f"{full / base:.1f}x",
                         f"{peak:,}", ""])
            target("2019 district full refresh within 4x of DuckDB alone", f"{full:.1f} s = {full / base:.1f}x",
                   f"{base:.1f} s", full <= 4 * base)
            idle, nightly = nights(landing, root, env, 1, args.runs)  # the same nights on a 1-year history
            extra = statistics.median(nightly) - statistics.median(idle)
            rows.append(["(3) nightly on the 2019 district (no new files / one new day)",
                         f"{statistics.median(idle):.1f} / {statistics.median(nightly):.1f}", fmt(nightly),
                         f"+{extra:.1f} s", "", ""])
            target("district nightly (one new day) at most +2 s over a run with no new files",
                   f"{statistics.median(nightly):.1f} s = +{extra:.1f} s", f"{statistics.median(idle):.1f} s",
                   extra <= 2)
            target("a run with no new files under 2 s (2019 district)", f"{statistics.median(idle):.1f} s", "",
                   statistics.median(idle) < 2)
        if args.only in (None, 2):
            landing = ensure_sample(OUT / "national", args.scale, "2015-2019")
            base, base_runs = baseline(landing, max(1, args.runs - 1))
            full, full_runs, peak, root = full_refresh(landing, max(1, args.runs - 2), env)
            rows.append([f"DuckDB alone, national x{args.scale} 2015-19 (baseline)", f"{base:.1f}", fmt(base_runs),
                         "", "", ""])
            rows.append([f"(2) full refresh, national x{args.scale}", f"{full:.1f}", fmt(full_runs),
                         f"{full / base:.1f}x", f"{peak:,}", ""])
            target(f"national x{args.scale} full refresh within 2x of DuckDB alone",
                   f"{full:.1f} s = {full / base:.1f}x", f"{base:.1f} s", full <= 2 * base)
            target(f"national x{args.scale} full refresh peak RSS under 2 GB", f"{peak:,} MiB", "", peak < 2048)
            idle, nightly = nights(landing, root, env, args.scale, args.runs)
            rows.append(["(4) no new files", f"{statistics.median(idle):.1f}", fmt(idle), "", "", ""])
            extra = statistics.median(nightly) - statistics.median(idle)
            rows.append(["(3) nightly: one new day", f"{statistics.median(nightly):.1f}", fmt(nightly),
                         f"+{extra:.1f} s = {extra / full:.1%} of full", "", ""])
            target("national nightly (one new day) under 2 % of the full refresh (its cost over a run with no "
                   "new files, as the issue measures it)",
                   f"{statistics.median(nightly):.1f} s = +{extra:.1f} s over no new files = {extra / full:.1%}",
                   f"full {full:.1f} s", extra < 0.02 * full)
            target("a run with no new files under 2 s (national)", f"{statistics.median(idle):.1f} s", "",
                   statistics.median(idle) < 2)
    if not args.no_clone:
        installs, make_runs = fresh_clone(1)
        rows.append(["(6) fresh clone: make venv / make run", f"{installs[0]:.1f} / {make_runs[0]:.1f}",
                     "", "", "", ""])
        target("a fresh clone's `make run` (install included) under 60 s", f"{make_runs[0]:.1f} s", "",
               make_runs[0] < 60)
        target("a fresh clone's install step (`make venv`, as `make test` starts) under 60 s", f"{installs[0]:.1f} s",
               "", installs[0] < 60)
    print(table(f"politikpi benchmarks (medians of {args.runs} unless noted)",
                ["scenario", "median s", "runs s", "ratio", "peak MiB", ""], rows))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "targets.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    print("\n".join(f"{r['verdict']}  {r['target']}: {r['measured']}" for r in results))
    if args.readme:
        import datetime as dt

        write_readme(results, f"`make bench` on {machine()}, {dt.date.today()}: medians of {args.runs} runs "
                              "(national full refresh: 1 run; fresh clone: 1 run).")


if __name__ == "__main__":
    main()
