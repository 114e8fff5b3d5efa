"""The country's night, drilled (`make fleet-drill`): twelve districts and the national release on
one PostgreSQL-backed Prefect server with basic auth and two process workers.

    .venv/bin/python bench/country_drill.py [--quiet 10] [--keep]

1. The 2019 sample of all 12 districts (`politikpi sample --country`, written once under bench/out).
2. One district's full refresh by hand (the baseline), then `politikpi deploy` and the 12 districts'
   full refreshes as deployment runs on two workers; the national trigger builds the first
   national release.
3. The night: one new day for every district, and for one district a file over the failure
   threshold (250 rows, all naming another district's municipality). The 12 runs start together
   (as the cron would); the bad district's run fails, the others publish, and the trigger builds
   one national release that lists the failed district with its last good release.
4. A crash: another day for one district; during its run, SIGKILL the worker's whole process group
   and the flow run's own (Prefect starts flow runs in a group of their own: a machine that dies
   takes both). The zombie automation marks the run Crashed; the district's next run records
   `crashed` and its tables equal a clean run's over the same landing folder.
5. Throughout, a reader opens politikpi_national.duckdb in a loop and never sees an error; after
   every step `politikpi verify` is clean on all 13 warehouses.

Printed: the night's wall time (last delivery -> national release published), each district's
run time, the national build against DuckDB alone over the same district releases and SQL (no
audit, no publish; medians of 3, same run), peak memory of every process, the targets.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import OUT, machine, table  # noqa: E402
from bench.fleet import BIN, REPO, free_port, spawn, stop  # noqa: E402
from bench.ops_drill import postgres_cluster  # noqa: E402

AUTH = "politikpi:drill-" + os.urandom(6).hex()
BAD_DISTRICT, CRASH_DISTRICT = "syddanmark", "fyn"
HEADER = ("journalnr;anmeldt_tid;gerningstid_fra;kommunekode;lovomraade;overtraedelse;sidst_aendret;fritekst;"
          "anmelder_cpr")


class Peaks:
    """Peak RSS (VmHWM) of every process under the drill, polled from /proc."""

    def __init__(self) -> None:
        self.peaks: dict[int, tuple[int, str]] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.wait(0.5):
            for status in Path("/proc").glob("[0-9]*/status"):
                with contextlib.suppress(OSError, ValueError):
                    text = status.read_text()
                    hwm = next((int(line.split()[1]) for line in text.splitlines() if line.startswith("VmHWM")), 0)
                    cmd = (status.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                    if ("prefect" in cmd or "flows" in cmd or "postgres" in cmd) and hwm:
                        pid = int(status.parent.name)
                        if hwm > self.peaks.get(pid, (0, ""))[0]:
                            self.peaks[pid] = (hwm, cmd[:120])

    def top(self) -> tuple[int, str]:
        return max(self.peaks.values(), default=(0, ""))


class Country:
    def __init__(self, work: Path, api_url: str, limit: int = 0) -> None:
        self.work, self.api_url, self.limit = work, api_url, limit
        self.fleet_path = work / "country" / "politikpi.toml"
        self.workers: dict[str, subprocess.Popen] = {}

    def env(self, home: str, **more) -> dict:
        (self.work / "homes" / home).mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "POLITIKPI_"))}
        env.update(PREFECT_HOME=str(self.work / "homes" / home), PREFECT_API_URL=self.api_url,
                   PREFECT_API_AUTH_STRING=AUTH, PREFECT_SERVER_ANALYTICS_ENABLED="false",
                   PREFECT_WORKER_QUERY_SECONDS="2", PYTHONUNBUFFERED="1", **more)
        return env

    def politikpi(self, *args, home: str = "operator", check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([str(BIN / "politikpi"), *map(str, args)], env=self.env(home), cwd=REPO,
                              capture_output=True, text=True, timeout=1800)
        if check and done.returncode:
            raise RuntimeError(f"politikpi {' '.join(map(str, args))}: {done.stderr[-2000:]}")
        return done

    def start_worker(self, name: str) -> None:
        log = self.work / "logs" / f"{name}.log"
        before = log.read_text(errors="replace").count("started!") if log.exists() else 0
        limit = ["--limit", str(self.limit)] if self.limit else []
        self.workers[name] = spawn([BIN / "prefect", "worker", "start", "--pool", "politikpi", "--name", name, *limit],
                                   self.env(name), log, cwd=REPO)
        deadline = time.monotonic() + 120
        while log.read_text(errors="replace").count("started!") == before:
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker {name} did not start: {log.read_text()[-1000:]}")
            time.sleep(0.5)

    def client(self):
        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

        @contextlib.contextmanager
        def made():
            with temporary_settings({PREFECT_API_URL: self.api_url, PREFECT_API_AUTH_STRING: AUTH}), \
                    get_client(sync_client=True) as client:
                yield client
        return made()

    def run_districts(self, codes: list[str]) -> dict[str, object]:
        """One deployment run per district, created together; returns their final flow runs."""
        with self.client() as client:
            ids = {code: client.create_flow_run_from_deployment(
                client.read_deployment_by_name(f"refresh/district-{code}").id).id for code in codes}
        return self.wait(ids)

    def wait(self, ids: dict, timeout: float = 1800) -> dict:
        deadline, done = time.monotonic() + timeout, {}
        with self.client() as client:
            while len(done) < len(ids) and time.monotonic() < deadline:
                for code, run_id in ids.items():
                    if code not in done and (run := client.read_flow_run(run_id)).state.is_final():
                        done[code] = run
                time.sleep(1)
        missing = set(ids) - set(done)
        if missing:
            raise RuntimeError(f"runs not finished in {timeout:.0f} s: {sorted(missing)}")
        return done

    def national_current(self) -> str | None:
        from flows.fleet import read_fleet
        from flows.release.store import load_manifest

        return load_manifest(read_fleet(self.fleet_path).national_warehouse).get("current")

    def wait_national(self, before: str | None, timeout: float = 600) -> tuple[str, float]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (now := self.national_current()) and now != before:
                return now, time.time()
            time.sleep(0.2)
        raise RuntimeError(f"no new national release within {timeout:.0f} s (still {before})")

    def verify_all(self) -> list[str]:
        from flows.fleet import read_fleet

        fleet = read_fleet(self.fleet_path)
        problems = []
        for folder in [d.warehouse for d in fleet.districts.values()] + [fleet.national_warehouse]:
            if (folder / "manifest.json").exists():
                done = self.politikpi("verify", "--warehouse", folder, check=False)
                if done.returncode:
                    problems.append(f"{folder}: {done.stderr.strip()[-300:]}")
        return problems


def seconds(run) -> float:
    return (run.end_time - run.start_time).total_seconds() if run.end_time and run.start_time else float("nan")


def deliver_day(country_root: Path, new_days: Path, code: str, day: str) -> None:
    for source in ("reports", "dispatches"):
        for path in (new_days / code / source).glob(f"{day}*"):
            target = country_root / code / "landing" / source / path.name
            shutil.copyfile(path, target.with_name(f".{target.name}.tmp"))
            os.replace(target.with_name(f".{target.name}.tmp"), target)


def write_new_days(new_days: Path) -> None:
    """2020-01-01 and 2020-01-02 for every district (reports and dispatches)."""
    from sample import SampleSpec, write_sample
    from schemas.reference import load_districts

    for code in load_districts():
        if not (new_days / code).exists():
            write_sample(new_days / code, SampleSpec(years=(2020,), days=2, district=code,
                                                     sources=("reports", "dispatches")))


def bad_file(path: Path, rows: int = 250) -> None:
    """A day's file whose rows all name a municipality of another district: over the threshold."""
    lines = [HEADER] + [f"3700-00009-{i:05d}-20;01-01-2020 10:00:00;;101;Straffelov;Tyveri;01-01-2020 10:05:00;;"
                        for i in range(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def national_vs_duckdb(fleet_path: Path, runs: int = 3) -> tuple[float, float, float]:
    """Medians over `runs` of: the national build stage (attach the district releases, the same models,
    the national tables, comments and `_release` into a release file), the build and its audit (as
    the flow runs them, no publish), and DuckDB alone attaching the same district releases and running
    the same models in memory (no audit, no publish)."""
    import duckdb

    from flows.country.audit import audit_national
    from flows.country.build import _models, attach_districts, build_national, load_country_reference
    from flows.country.inputs import snapshot
    from flows.fleet import read_fleet
    from flows.transform import runner

    fleet = read_fleet(fleet_path)
    inputs = snapshot(fleet)
    scratch = fleet.national_warehouse.parent / "bench"
    scratch.mkdir(exist_ok=True)
    build, audited, alone = [], [], []
    for i in range(runs):
        started = time.perf_counter()
        con = duckdb.connect(config={"memory_limit": "1GB"})
        used = attach_districts(con, inputs)
        load_country_reference(con, used)
        runner.run(con, _models())
        con.close()
        alone.append(time.perf_counter() - started)
        path = scratch / f"n{i}.duckdb"
        started = time.perf_counter()
        build_national(path, inputs, "v1.1.0", "bench", f"20200101T000000Z-{i:012d}")
        build.append(time.perf_counter() - started)
        audit_national(path, used, scratch / f"docs{i}")
        audited.append(time.perf_counter() - started)
    shutil.rmtree(scratch, ignore_errors=True)
    return statistics.median(build), statistics.median(audited), statistics.median(alone)


def bursts(fleet_path: Path, quiet: float, since: float) -> int:
    """Bursts of district publishes after `since` (epoch s): a gap longer than the quiet period starts a new one."""
    import datetime as dt

    from flows.fleet import read_fleet
    from flows.release.store import load_manifest

    times = sorted(dt.datetime.fromisoformat(r["published_at"]).timestamp()
                   for d in read_fleet(fleet_path).districts.values()
                   for r in load_manifest(d.warehouse)["releases"] if r.get("published_at"))
    times = [t for t in times if t >= since]
    return (1 + sum(1 for a, b in zip(times, times[1:], strict=False) if b - a > quiet)) if times else 0


def main() -> None:  # noqa: PLR0915 - the drill reads top to bottom
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quiet", type=float, default=10, help="the national trigger's quiet period (s, >= 10)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--worker-limit", type=int, default=0,
                        help="flow runs a worker runs at once (`prefect worker start --limit`); 0 = no limit")
    args = parser.parse_args()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.environ["PREFECT_HOME"] = str(OUT / "country-drill-home")
    sample, new_days = OUT / "country-sample", OUT / "country-new-days"
    started = time.time()
    if not (sample / ".complete").exists():
        shutil.rmtree(sample, ignore_errors=True)
        subprocess.run([str(BIN / "politikpi"), "sample", "--country", "--out", str(sample)], check=True)
        (sample / ".complete").touch()
    write_new_days(new_days)
    print(f"samples ready in {time.time() - started:.0f} s", flush=True)
    work = OUT / "country-drill"
    shutil.rmtree(work, ignore_errors=True)
    (work / "logs").mkdir(parents=True)
    shutil.copytree(sample, work / "country", ignore=shutil.ignore_patterns(".complete"))
    fleet_text = (work / "country" / "politikpi.toml").read_text(encoding="utf-8")
    (work / "country" / "politikpi.toml").write_text(
        fleet_text.replace("\n\n", f"\nquiet_seconds = {args.quiet}\n\n", 1), encoding="utf-8")
    peaks = Peaks()
    peaks.thread.start()
    checks: dict[str, list] = {"verify": [], "failures": []}
    with contextlib.ExitStack() as stack:
        db_url, _ = stack.enter_context(postgres_cluster())
        port = free_port()
        server_env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "POLITIKPI_"))}
        server_env.update(PREFECT_HOME=str(work / "homes" / "server"), PREFECT_API_DATABASE_CONNECTION_URL=db_url,
                          PREFECT_UI_ENABLED="false", PREFECT_SERVER_ANALYTICS_ENABLED="false",
                          PREFECT_SERVER_API_AUTH_STRING=AUTH)
        server = spawn([BIN / "prefect", "server", "start", "--host", "127.0.0.1", "--port", port], server_env,
                       work / "logs" / "server.log")
        stack.callback(stop, server)
        from flows.server import wait_healthy

        api_url = f"http://127.0.0.1:{port}/api"
        wait_healthy(api_url, timeout=240)
        country = Country(work, api_url, args.worker_limit)
        stack.callback(lambda: [stop(p) for p in country.workers.values()])

        # 2. baseline: one district's full refresh by hand, then the 12 on two workers
        scratch = work / "baseline"
        t0 = time.perf_counter()
        country.politikpi("refresh", "--district", "sydsjaelland", "--landing", work / "country" / "sydsjaelland" /
                          "landing", "--state", scratch / "state", "--warehouse", scratch / "warehouse")
        one_district = time.perf_counter() - t0
        print(f"one district's full refresh by hand: {one_district:.1f} s", flush=True)
        drill_started = time.time()
        country.politikpi("deploy", "--fleet", country.fleet_path)
        for name in ("worker-1", "worker-2"):
            country.start_worker(name)
        reader_out, reader_stop = work / "reader.json", work / "reader.stop"
        from flows.fleet import read_fleet

        fleet = read_fleet(country.fleet_path)
        reader = subprocess.Popen([sys.executable, str(REPO / "bench" / "fleet.py"), "reader",
                                   str(fleet.national_warehouse), str(reader_stop), str(reader_out)])
        codes = sorted(fleet.districts)
        t0 = time.perf_counter()
        full = country.run_districts(codes)
        twelve = time.perf_counter() - t0
        checks["failures"] += [f"full refresh {c}: {r.state.name}" for c, r in full.items()
                               if not r.state.is_completed()]
        first, _ = country.wait_national(None)
        print(f"12 full refreshes on 2 workers: {twelve:.1f} s; national release {first}", flush=True)
        checks["verify"] += country.verify_all()

        # 3. the night
        for code in codes:
            deliver_day(work / "country", new_days, code, "2020-01-01")
        bad_file(work / "country" / BAD_DISTRICT / "landing" / "reports" / "2020-01-01_ekstra.csv")
        last_delivery = time.time()
        night_runs = country.run_districts(codes)
        second, published_at = country.wait_national(first)
        night = published_at - last_delivery
        first_start = min(r.start_time.timestamp() for r in night_runs.values() if r.start_time)
        last_end = max(r.end_time.timestamp() for r in night_runs.values() if r.end_time)
        print(f"the night: {night:.1f} s from the last delivery to national release {second}", flush=True)
        expected = {c: ("Failed" if c == BAD_DISTRICT else "Completed") for c in codes}
        checks["failures"] += [f"night {c}: {r.state.name} (expected {expected[c]})" for c, r in night_runs.items()
                               if r.state.name != expected[c]]
        from flows.country.release import read_inputs

        statuses = {r["district_code"]: r["status"] for r in read_inputs(fleet.national_warehouse /
                                                                         "politikpi_national.duckdb")}
        wanted = {c: "failed" if c == BAD_DISTRICT else "current" for c in codes}
        if statuses != wanted:
            checks["failures"].append(f"national_inputs after the night: {statuses}")
        checks["verify"] += country.verify_all()
        from prefect.client.schemas.filters import FlowRunFilter

        with country.client() as client:
            national_id = client.read_deployment_by_name("national/national").id
            national_runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(deployment_id={"any_": [national_id]}))
        # a manifest's published_at and its event's time differ by up to ~2 s: gaps within 2 s of the quiet
        # period may go either way, so they count as new bursts for the upper bound
        expected_runs = bursts(country.fleet_path, args.quiet - 2, drill_started)
        print(f"national runs so far: {len(national_runs)}; bursts of district publishes (gaps > "
              f"{args.quiet - 2:.0f} s start a new one): at most {expected_runs}", flush=True)
        if len(national_runs) > expected_runs:
            checks["failures"].append(f"{len(national_runs)} national runs for {expected_runs} bursts of publishes")

        # 4. the crash
        deliver_day(work / "country", new_days, CRASH_DISTRICT, "2020-01-02")
        with country.client() as client:
            run_id = client.create_flow_run_from_deployment(
                client.read_deployment_by_name(f"refresh/district-{CRASH_DISTRICT}").id).id
            while client.read_flow_run(run_id).state.name != "Running":
                time.sleep(0.2)
        time.sleep(1.5)
        victim = next(name for name in country.workers
                      if str(run_id) in (work / "logs" / f"{name}.log").read_text(errors="replace"))
        proc = country.workers[victim]
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        groups = {os.getpgid(int(pid)) for pid in children if pid.strip()} | {proc.pid}
        killed_at = time.time()
        for group in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        proc.wait()
        print(f"SIGKILLed {victim}'s process group and its flow run's ({len(groups)} groups) during "
              f"{CRASH_DISTRICT}'s run", flush=True)
        crashed = country.wait({CRASH_DISTRICT: run_id}, timeout=600)[CRASH_DISTRICT]
        to_crashed = time.time() - killed_at
        print(f"Prefect marked it {crashed.state.name} {to_crashed:.0f} s later", flush=True)
        if crashed.state.name != "Crashed":
            checks["failures"].append(f"killed run ended {crashed.state.name}, not Crashed")
        country.start_worker(victim)
        recovered = country.run_districts([CRASH_DISTRICT])[CRASH_DISTRICT]
        last_run = json.loads((fleet.districts[CRASH_DISTRICT].state / "last_run.json").read_text())
        if recovered.state.name != "Completed" or (last_run.get("previous") or {}).get("status") != "crashed":
            checks["failures"].append(f"recovery: {recovered.state.name}, previous {last_run.get('previous')}")
        clean = work / "clean"
        country.politikpi("refresh", "--district", CRASH_DISTRICT, "--landing",
                          fleet.districts[CRASH_DISTRICT].landing, "--state", clean / "state",
                          "--warehouse", clean / "warehouse")
        from bench.fleet import differing_tables, kpis

        differ = differing_tables(kpis(fleet.districts[CRASH_DISTRICT].warehouse), kpis(clean / "warehouse"))
        if differ:
            checks["failures"].append(f"after the crash {CRASH_DISTRICT} differs from a clean run in {differ}")
        third, _ = country.wait_national(second)
        checks["verify"] += country.verify_all()
        reader_stop.touch()
        reader.wait(timeout=60)
        read = json.loads(reader_out.read_text())
        if read["errors"]:
            checks["failures"].append(f"reader errors: {read['first_errors']}")
        build_only, ours, alone = national_vs_duckdb(country.fleet_path)
        peaks.stop.set()
        peak_kib, peak_cmd = peaks.top()

    rows = [[code, f"{seconds(full[code]):.1f}", f"{seconds(night_runs[code]):.1f}", night_runs[code].state.name,
             statuses.get(code)] for code in codes]
    print()
    print(table("District runs (Prefect start -> end, seconds)", ["district", "full 2019", "night", "night state",
                                                                  "national status"], rows))
    print()
    targets = [
        ["the night (last delivery -> national release)", f"{night:.1f} s", "<= 90 s", night <= 90],
        ["national build vs DuckDB alone, same SQL and releases (medians of 3)",
         f"{build_only:.2f} / {alone:.2f} s = {build_only / alone:.2f}x", "<= 2x", build_only <= 2 * alone],
        ["12 full refreshes on 2 workers vs one district's", f"{twelve:.1f} / {one_district:.1f} s = "
         f"{twelve / one_district:.1f}x", "<= 12x", twelve <= 12 * one_district],
        ["peak memory of any process", f"{peak_kib / 1024:.0f} MiB ({peak_cmd.split()[1] if peak_cmd else ''})",
         "<= 2 GB", peak_kib <= 2 * 1024 * 1024],
    ]
    print(table(f"Targets ({machine()}; worker limit {args.worker_limit or 'none'})",
                ["target", "measured", "goal", "met"],
                [[t, m, g, "yes" if ok else "NO"] for t, m, g, ok in targets]))
    print(f"\nthe night: last delivery -> first run started {first_start - last_delivery:.1f} s; 12 runs "
          f"{last_end - first_start:.1f} s (first start -> last end); -> national published "
          f"{published_at - last_end:.1f} s "
          f"(quiet period {args.quiet:.0f} s, the trigger's check, the run's start, build, audit, publish); national "
          f"build + audit {ours:.2f} s (build {build_only:.2f} s)")
    print(f"reader: {read['checks']} opens of politikpi_national.duckdb, {read['errors']} errors, "
          f"{read['seen']} releases seen; verify: {len(checks['verify'])} problems on 13 warehouses after 4 steps; "
          f"crash -> Crashed in {to_crashed:.0f} s; national releases {first}, {second}, {third}")
    problems = checks["verify"] + checks["failures"]
    for problem in problems:
        print(f"FAILED: {problem}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
