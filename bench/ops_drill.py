"""Operations drill: the README's several-machines recipe, run for real and checked.

    .venv/bin/python bench/ops_drill.py [--days 20] [--concurrent 3] [--keep] [--code worktree]

PostgreSQL (Debian's `postgresql`, installed with apt-get if missing): a throwaway cluster on a
free port on 127.0.0.1 is the database of `prefect server start`. On it: the `politikpi`
process work pool, the deployment from prefect.yaml (`prefect deploy --name nightly`, with
absolute folders), and two `prefect worker start --pool politikpi`, each with its own
PREFECT_HOME, sharing one state and one warehouse folder. The 2019 sample (`--days` days) arrives
in the landing folder day by day, with re-deliveries (a file rewritten with changed content
under its name). After each delivery refreshes run back to back and at the same time:
deployment runs mixed with manual `politikpi refresh` runs (an operator's PREFECT_HOME, the same
server). Meanwhile a reader process opens the stable path read-only in a loop.

Checks (exit 1 if one fails): every flow run Completed, or refused because another run held the
state (exit 3: an overlap, not a failure); `politikpi verify` clean after every step; every
manifest sha256 is its file's and every release file holds the release its entry names; every
reader check a complete, audited, listed release with non-empty KPI tables; the final KPI
tables equal one clean run's (a fresh state and warehouse refreshed once over the final landing).

The code is a snapshot of a commit (`git archive`; `--code REV`, HEAD by default), so edits in
the working tree do not leak into a run; `--code worktree` runs the working tree as it is.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine, table  # noqa: E402
from bench.fleet import (  # noqa: E402
    BIN,
    REPO,
    Fleet,
    clean_run,
    cut_records,
    day_of,
    deliver,
    differing_tables,
    free_port,
    kpis,
    load_manifest,
    sample_files,
    spawn,
    stop,
    warehouse_problems,
)


def ensure_postgres() -> Path:
    """Debian's PostgreSQL binaries; apt-get installs `postgresql` when they are missing."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
        install = [*sudo, "apt-get", "install", "-y", "-q", "--no-install-recommends", "postgresql"]
        print("installing Debian's postgresql with apt-get", flush=True)
        if subprocess.run(install, env=env).returncode:
            subprocess.run([*sudo, "apt-get", "update", "-q"], env=env, check=True)
            subprocess.run(install, env=env, check=True)
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent


@contextlib.contextmanager
def postgres_cluster():
    """initdb into a temp folder (as the postgres user when run as root), start it on a free
    loopback port, create database `prefect`; yields (SQLAlchemy URL, psql command). Stopped
    and removed on exit."""
    bindir = ensure_postgres()
    folder = Path(tempfile.mkdtemp(prefix="politikpi-pg-"))
    as_pg = []
    password = secrets.token_hex(16)
    (folder / "pw").write_text(password)
    if os.geteuid() == 0:  # initdb refuses root
        as_pg = ["runuser", "-u", "postgres", "--"]
        for path in (folder, folder / "pw"):
            shutil.chown(path, "postgres", "postgres")
    port = free_port()
    data = folder / "data"
    run = lambda cmd, **kw: subprocess.run([str(c) for c in cmd], check=True, capture_output=True, **kw)  # noqa: E731
    run([*as_pg, bindir / "initdb", "-D", data, "-U", "postgres", f"--pwfile={folder / 'pw'}", "--auth-local=trust",
         "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync"])
    options = (f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={folder} "
               "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")  # throwaway: speed over durability
    run([*as_pg, bindir / "pg_ctl", "-D", data, "-l", folder / "postgres.log", "-w", "-t", "60", "-o", options,
         "start"])
    env = dict(os.environ, PGPASSWORD=password)
    psql = [str(bindir / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "prefect", "-tAc"]
    try:
        run([bindir / "createdb", "-h", "127.0.0.1", "-p", port, "-U", "postgres", "prefect"], env=env)
        version = run([bindir / "postgres", "--version"], text=True).stdout.strip()
        yield f"postgresql+asyncpg://postgres:{password}@127.0.0.1:{port}/prefect", (psql, env, version)
    finally:
        subprocess.run([*as_pg, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def start_server(work: Path, db_url: str) -> tuple[subprocess.Popen, str]:
    """`prefect server start` on loopback with PostgreSQL as its database, its own PREFECT_HOME."""
    from flows.server import wait_healthy

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "POLITIKPI_"))}
    env.update(PREFECT_HOME=str(work / "homes" / "server"), PREFECT_API_DATABASE_CONNECTION_URL=db_url,
               PREFECT_UI_ENABLED="false", PREFECT_SERVER_ANALYTICS_ENABLED="false",
               # the deployment's concurrency limit re-offers a queued run after 2 s, not 30 s
               PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS="2")
    proc = spawn([BIN / "prefect", "server", "start", "--host", "127.0.0.1", "--port", port], env,
                 work / "logs" / "server.log")
    api_url = f"http://127.0.0.1:{port}/api"
    wait_healthy(api_url, timeout=240)
    return proc, api_url


def code_snapshot(work: Path, rev: str) -> tuple[Path, str]:
    """The code the drill runs: a `git archive` of a commit (HEAD by default), or the working tree."""
    git = lambda *a: subprocess.run(["git", "-C", str(REPO), *a], check=True, capture_output=True,  # noqa: E731
                                    text=True).stdout.strip()
    if rev == "worktree":
        dirty = git("status", "--porcelain", "flows", "schemas", "sql", "reference")
        return REPO, f"working tree at {git('log', '-1', '--format=%h')}" + (" (uncommitted changes)" if dirty else "")
    code = work / "code"
    code.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(code)], input=archive, check=True)
    return code, git("log", "-1", "--format=%h (%cd)", "--date=format:%Y-%m-%d %H:%M", rev)


def redeliveries(files: list[str], days: int) -> dict[int, tuple[str, str]]:
    """Every fourth step re-delivers an earlier dispatch file without its last records; every
    third such re-delivery instead restores the earliest file cut so far."""
    plan, cut = {}, []
    for step in range(4, days + 1, 4):
        if len(cut) >= 2 and step % 12 == 0:
            plan[step] = (cut.pop(0), "restore")
        else:
            rel = next(f for f in files if f.startswith(f"dispatches/2019-01-{step - 2:02d}"))
            cut.append(rel)
            plan[step] = (rel, "cut")
    return plan


PATTERNS = ["back to back: manual, deployment, manual", "at the same time", "back to back: deployment, deployment"]


def run_step(fleet: Fleet, step: int, concurrent: int, rng: random.Random) -> str:
    pattern = PATTERNS[step % len(PATTERNS)]
    if pattern == "at the same time":
        pending = []
        for k in range(concurrent):  # deployment, manual, deployment, ...: started within a few seconds
            pending.append(fleet.deployment_run() if k % 2 == 0 else fleet.manual_run())
            time.sleep(rng.uniform(0, 3))
        fleet.wait(pending)
    else:
        for kind in pattern.split(": ")[1].split(", "):
            fleet.wait([fleet.deployment_run() if kind == "deployment" else fleet.manual_run()])
    return pattern


def code_version(code: Path) -> str:
    script = "from flows.transform.versions import code_version; print(code_version())"
    return subprocess.run([sys.executable, "-c", script],
                          cwd=code, check=True, capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=20, help="days of the 2019 sample, delivered one per step")
    parser.add_argument("--concurrent", type=int, default=3, help="runs started together in a concurrent step")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-quarantine-share", default="0.2",
                        help="POLITIKPI_MAX_QUARANTINE_SHARE of every runner (one day's dirt exceeds 5 %%)")
    parser.add_argument("--code", default="HEAD", metavar="REV|worktree",
                        help="the commit to run (a `git archive` of it), or `worktree` for the files as they are")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, state, warehouse)")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background
    started = time.monotonic()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="politikpi-drill-"))
    os.environ["PREFECT_HOME"] = str(work / "homes" / "drill")  # before anything imports prefect
    Path(os.environ["PREFECT_HOME"]).mkdir(parents=True)
    fig: dict = {"verify": [], "own": [], "releases": set(), "steps": []}
    with contextlib.ExitStack() as stack:
        stack.callback(lambda: None if args.keep else shutil.rmtree(work, ignore_errors=True))
        code, commit = code_snapshot(work, args.code)
        fig["code_version"] = code_version(code)
        sample = work / "sample"
        subprocess.run([sys.executable, "-m", "flows", "sample", "--year", "2019", "--days", str(args.days),
                        "--out", str(sample)], cwd=code, check=True, capture_output=True)
        files = sample_files(sample)
        plan = redeliveries(files, args.days)
        fig["redelivered"] = len(plan)
        db_url, (psql, pg_env, pg_version) = stack.enter_context(postgres_cluster())
        server, api_url = start_server(work, db_url)
        stack.callback(stop, server, signal.SIGTERM)
        fleet = Fleet(work / "fleet", api_url, code, {"POLITIKPI_MAX_QUARANTINE_SHARE": args.max_quarantine_share})
        stack.callback(fleet.stop_all)
        fleet.set_up()
        fleet.start_workers(args.workers)
        stop_file, reader_out = work / "reader.stop", work / "reader.json"
        reader = spawn([sys.executable, REPO / "bench" / "fleet.py", "reader", fleet.warehouse, stop_file, reader_out],
                       dict(os.environ), work / "logs" / "reader.log")
        stack.callback(stop, reader, signal.SIGKILL, 1)
        print(f"drill in {work}: PostgreSQL {pg_version.split()[-1]} on {db_url.rsplit('@', 1)[1]}, Prefect server "
              f"{api_url}, {args.workers} workers, code {commit}", flush=True)
        for step in range(1, args.days + 1):
            t0, before = time.monotonic(), len(fleet.outcomes)
            for rel in files:
                if day_of(rel, args.days) == step:
                    deliver(fleet.landing, rel, (sample / rel).read_bytes())
            note = ""
            if step in plan:
                rel, how = plan[step]
                data = (sample / rel).read_bytes()
                deliver(fleet.landing, rel, cut_records(data, rel) if how == "cut" else data)
                note = f"; re-delivered {rel} ({'last 2 records cut' if how == 'cut' else 'original restored'})"
            pattern = run_step(fleet, step, args.concurrent, rng)
            verify, own = warehouse_problems(fleet)
            fig["verify"] += [f"step {step}: {p}" for p in verify]
            fig["own"] += [f"step {step}: {p}" for p in own]
            fig["releases"] |= {r["release_id"] for r in load_manifest(fleet.warehouse)["releases"]}
            runs = fleet.outcomes[before:]
            print(f"step {step:2d} {time.monotonic() - t0:5.1f} s  {pattern:42s} "
                  f"{' '.join(f'{o.kind[0]}:{o.verdict}' for o in runs)}  verify {len(verify)} "
                  f"problem(s){note}", flush=True)
            for problem in verify + own:
                print(f"         problem: {problem}", flush=True)
            for o in runs:
                if o.verdict == "failure":
                    print(f"         failure: {o.kind} {o.ident}: {o.detail}", flush=True)
        stop_file.touch()
        reader.wait(timeout=60)
        fig["reader"] = json.loads(reader_out.read_text())
        fig["server_runs"], fig["upcoming"] = fleet.server_runs()
        fig["queued"] = fleet.queued_by_limit()
        fig["per_worker"] = fleet.runs_per_worker()
        fig["pg_flow_runs"] = subprocess.run([*psql, "select count(*) from flow_run"], env=pg_env, text=True,
                                             capture_output=True).stdout.strip()
        fig["other_code"] = sum(r.get("code_version") != fig["code_version"]
                                for r in load_manifest(fleet.warehouse)["releases"])
        final = kpis(fleet.warehouse)
        fig["clean_differs"] = differing_tables(final, clean_run(fleet, work / "clean"))
        fig["kpi_rows"] = sum(len(v) for v in final.values())
        fig["tally"] = fleet.tally()
        fig["outcomes"] = list(fleet.outcomes)
        fig["work"] = work
    report(args, fig, commit, pg_version, time.monotonic() - started)


def problems(found: list[str], steps: int) -> str:
    """"0", or how many problem lines, in how many steps, how many distinct."""
    if not found:
        return "0"
    distinct = {p.split(": ", 1)[1] for p in found}
    in_steps = {p.split(": ", 1)[0] for p in found}
    return f"{len(found)} in {len(in_steps)} of {steps} steps ({len(distinct)} distinct)"


def report(args, fig: dict, commit: str, pg_version: str, wall: float) -> None:
    tally, reader, server_runs = fig["tally"], fig["reader"], fig["server_runs"]
    states = {}
    for run in server_runs:
        verdict = ("completed" if run.state.is_completed() else
                   "refused: state busy" if run.state.is_final() and "another politikpi process holds"
                   in (run.state.message or "") else f"other: {run.state.name}")
        states[verdict] = states.get(verdict, 0) + 1
    server_bad = sum(n for k, n in states.items() if k.startswith("other"))
    rows = [
        ["days delivered (re-deliveries)", f"{args.days} ({fig['redelivered']})"],
        ["runs: deployment / manual", f"{tally['deployment']} / {tally['manual']}"],
        ["  deployment runs taken per worker",
         ", ".join(f"{k} {v}" for k, v in fig["per_worker"].items())],
        ["  queued by the deployment's concurrency limit", fig["queued"]],
        ["overlaps refused (state busy, exit 3)", tally["overlap"]],
        ["failures (must be 0)", tally["failure"]],
        ["flow runs on the server", f"{len(server_runs)}: " + ", ".join(f"{k} {v}" for k, v in sorted(states.items()))],
        ["  flow_run rows in PostgreSQL", f"{fig['pg_flow_runs']} (those + the cron's next {fig['upcoming']} nights)"],
        ["releases published (distinct ids in the manifest)", len(fig["releases"])],
        ["`politikpi verify` problems, every step (must be 0)", problems(fig["verify"], args.days)],
        ["manifest sha256 / release-id problems (must be 0)", problems(fig["own"], args.days)],
        ["releases built by other code than --code", fig["other_code"]],
        ["reader checks / reader errors (must be 0)", f"{reader['checks']} / {reader['errors']}"],
        ["  releases the reader saw", reader["seen"]],
        ["final KPI tables equal one clean run's", "yes" if not fig["clean_differs"] else
         f"NO: {', '.join(fig['clean_differs'])}"],
        ["wall time", f"{wall:.0f} s"],
    ]
    print()
    print(machine())
    print(table(f"ops drill: {args.workers} workers + manual runs on one state; {pg_version}; code {commit}",
                ["what", "figure"], rows))
    for title, items in (("verify problem", fig["verify"]), ("manifest/file problem", fig["own"]),
                         ("reader error", reader["first_errors"])):
        for item in dict.fromkeys(p.split(": ", 1)[1] if p.startswith("step ") else p for p in items):
            print(f"{title}: {item}")
    for o in fig["outcomes"]:
        if o.verdict == "failure":
            print(f"failure: {o.kind} {o.ident}: {o.detail}")
    if args.keep:
        print(f"kept: {fig['work']}")
    bad = (tally["failure"] + server_bad + len(fig["verify"]) + len(fig["own"]) + fig["other_code"]
           + reader["errors"] + (reader["checks"] == 0) + bool(fig["clean_differs"]))
    print("drill: " + ("FAILED" if bad else "OK"))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
