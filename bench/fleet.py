"""Several runners on one state, as the README's several-machines recipe sets them up: a
`process` work pool, the `prefect.yaml` deployment, workers each with their own PREFECT_HOME,
deployment runs and manual `politikpi refresh` runs, and the checks on what they leave.

Shared by the operations drill (bench/ops_drill.py, PostgreSQL) and tests/test_workers.py
(SQLite). `python bench/fleet.py reader WAREHOUSE STOP OUT` is the drill's reader process.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
BUSY = "another politikpi process holds"  # StateBusy: a refused overlap, not a failure
TABLES = ["kpi_reports", "kpi_callouts", "kpi_response_times", "kpi_response_time_spread", "kpi_outreach",
          "kpi_safety_ambassadors", "kpi_year_summary"]
KEY_TABLES = ["kpi_reports", "kpi_callouts", "kpi_response_times", "kpi_year_summary"]
SOURCES = ("reports", "dispatches", "outreach", "ambassadors")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spawn(cmd: list[str], env: dict, log: Path, cwd: Path | None = None) -> subprocess.Popen:
    """A process in its own session (its group is stopped as a whole), output to a log file."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen([str(c) for c in cmd], env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def stop(proc: subprocess.Popen, sig: int = signal.SIGINT, timeout: float = 30) -> None:
    """SIGINT (a worker's documented stop; it ignores SIGTERM for long), then SIGKILL to its group."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        except ProcessLookupError:
            return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # anything the leader left behind in its group
    proc.wait()


@contextmanager
def prefect_client(api_url: str):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        yield client


@dataclass
class Outcome:
    kind: str  # deployment | manual
    ident: str  # flow run id, or the manual run's log file
    verdict: str = "pending"  # ok | overlap | failure
    detail: str = ""


@dataclass
class Fleet:
    """One state and warehouse, one Prefect server, the code at `code`, runners with their homes."""

    root: Path
    api_url: str
    code: Path = REPO
    extra_env: dict = field(default_factory=dict)
    procs: list = field(default_factory=list)
    outcomes: list = field(default_factory=list)
    workers: dict = field(default_factory=dict)
    manual_runs: int = 0

    def __post_init__(self) -> None:
        self.landing, self.state, self.warehouse = (self.root / n for n in ("landing", "state", "warehouse"))
        self.landing.mkdir(parents=True, exist_ok=True)
        self.logs = self.root / "logs"

    def env(self, home: str, **more) -> dict:
        (self.root / "homes" / home).mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "POLITIKPI_"))}
        env.update(PREFECT_HOME=str(self.root / "homes" / home), PREFECT_API_URL=self.api_url,
                   PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_WORKER_QUERY_SECONDS="2",
                   POLITIKPI_LANDING=str(self.landing), POLITIKPI_STATE=str(self.state),
                   POLITIKPI_WAREHOUSE=str(self.warehouse), PYTHONUNBUFFERED="1")
        env.update(self.extra_env)
        env.update(more)
        return env

    def prefect(self, *args: str, home: str = "operator", **env) -> str:
        done = subprocess.run([str(BIN / "prefect"), *args], env=self.env(home, **env), cwd=self.code,
                              capture_output=True, text=True, timeout=300)
        if done.returncode:
            raise RuntimeError(f"prefect {' '.join(args)} failed: {(done.stdout + done.stderr)[-2000:]}")
        return done.stdout

    def set_up(self) -> None:
        """The README's recipe: the work pool, then `prefect deploy --name nightly` from the code."""
        self.prefect("work-pool", "create", "politikpi", "--type", "process")
        params = {"landing": str(self.landing), "state_dir": str(self.state), "warehouse": str(self.warehouse)}
        self.prefect("deploy", "--no-prompt", "--name", "nightly", "--params", json.dumps(params),
                     POLITIKPI_HOME=str(self.code))
        with prefect_client(self.api_url) as client:
            self.deployment_id = client.read_deployment_by_name("refresh/nightly").id

    def start_workers(self, count: int = 2) -> None:
        for i in range(count):
            self.start_worker(f"worker-{i + 1}")

    def start_worker(self, name: str, timeout: float = 120) -> None:
        """`prefect worker start --pool politikpi` with its own PREFECT_HOME; returns once it polls."""
        before = self.log(name).count(f"Worker '{name}' started")
        proc = spawn([BIN / "prefect", "worker", "start", "--pool", "politikpi", "--name", name],
                     self.env(name), self.logs / f"{name}.log", cwd=self.root)
        self.procs.append(proc)
        self.workers[name] = proc
        deadline = time.monotonic() + timeout
        while self.log(name).count(f"Worker '{name}' started") == before:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{name} did not start: {self.log(name)[-1000:]}")
            time.sleep(0.5)

    def stop_worker(self, name: str) -> None:
        """Ctrl-C, as the README stops a worker (SIGINT)."""
        stop(self.workers[name])

    def ran(self, name: str) -> list[str]:
        """Flow runs a worker took (not counting a submission the deployment's limit turned back)."""
        log = self.log(name)
        tried = re.findall(r"submitting flow run '([0-9a-f-]+)'", log)
        turned_back = re.findall(r"Aborted submission of flow run '([0-9a-f-]+)'", log)
        return [run for run in dict.fromkeys(tried) if tried.count(run) > turned_back.count(run)]

    def worker_of(self, outcome: Outcome) -> str:
        return next(name for name in self.workers if outcome.ident in self.ran(name))

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def deployment_run(self) -> Outcome:
        with prefect_client(self.api_url) as client:
            run = client.create_flow_run_from_deployment(self.deployment_id)
        outcome = Outcome("deployment", str(run.id))
        self.outcomes.append(outcome)
        return outcome

    def manual_run(self, home: str = "operator") -> tuple[Outcome, subprocess.Popen]:
        """`politikpi refresh` as an operator runs it (its own PREFECT_HOME, the same server)."""
        self.manual_runs += 1
        log = self.logs / f"manual-{self.manual_runs:03d}.log"
        proc = spawn([sys.executable, "-m", "flows", "refresh"], self.env(home), log, cwd=self.code)
        outcome = Outcome("manual", str(log))
        self.outcomes.append(outcome)
        return outcome, proc

    def wait(self, pending: list, timeout: float = 900) -> None:
        """Wait for deployment runs (Outcome) and manual runs ((Outcome, Popen)) to finish; judge them."""
        deadline = time.monotonic() + timeout
        for item in pending:
            if isinstance(item, tuple):
                outcome, proc = item
                try:
                    code = proc.wait(timeout=max(deadline - time.monotonic(), 1))
                except subprocess.TimeoutExpired:
                    stop(proc, signal.SIGKILL)
                    code = "timeout"
                text = Path(outcome.ident).read_text(errors="replace")
                lines = [ln for ln in text.splitlines() if ln.strip()]
                outcome.detail = f"exit {code}: {lines[-1] if lines else ''}"[:400]
                outcome.verdict = "ok" if code == 0 else "overlap" if code == 3 and BUSY in text else "failure"
        runs = [o for o in pending if isinstance(o, Outcome)]
        with prefect_client(self.api_url) as client:
            while runs:
                for outcome in list(runs):
                    state = client.read_flow_run(outcome.ident).state
                    if state.is_final():
                        outcome.detail = f"{state.name}: {state.message or ''}"[:400]
                        outcome.verdict = ("ok" if state.is_completed() else
                                           "overlap" if BUSY in (state.message or "") else "failure")
                        runs.remove(outcome)
                if runs and time.monotonic() > deadline:
                    for outcome in runs:
                        outcome.verdict, outcome.detail = "failure", f"not finished after {timeout:.0f} s"
                    break
                time.sleep(1)

    def server_runs(self) -> tuple[list, int]:
        """Every flow run of `refresh` the server knows but the cron's upcoming nightly ones, and their number."""
        from prefect.client.schemas.filters import FlowFilter, FlowFilterName

        out, offset = [], 0
        with prefect_client(self.api_url) as client:
            while batch := client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["refresh"])),
                                                 limit=200, offset=offset):
                out += batch
                offset += len(batch)
        soon = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
        upcoming = [r for r in out if r.state.name == "Scheduled" and r.expected_start_time > soon]
        return [r for r in out if r not in upcoming], len(upcoming)

    def queued_by_limit(self) -> int:
        """Deployment runs that waited for the deployment's concurrency slot at least once."""
        with prefect_client(self.api_url) as client:
            return sum(any(s.name == "AwaitingConcurrencySlot" for s in client.read_flow_run_states(o.ident))
                       for o in self.outcomes if o.kind == "deployment")

    def runs_per_worker(self) -> dict[str, int]:
        return {name: len(self.ran(name)) for name in self.workers}

    def tally(self) -> dict[str, int]:
        count = lambda kind=None, verdict=None: sum(  # noqa: E731
            (kind is None or o.kind == kind) and (verdict is None or o.verdict == verdict) for o in self.outcomes)
        return {"deployment": count("deployment"), "manual": count("manual"), "overlap": count(verdict="overlap"),
                "failure": count(verdict="failure") + count(verdict="pending")}

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            stop(proc)
        self.procs.clear()


def day_of(rel: str, days: int) -> int:
    """The delivery step of a sample file: its January day, else its month (rosters, outreach)."""
    match = re.search(r"(\d{4})-(\d\d)(?:-(\d\d))?", rel)
    month, day = int(match.group(2)), int(match.group(3) or 1)
    return min(day if month == 1 else month, days)


def sample_files(sample: Path) -> list[str]:
    return sorted(p.relative_to(sample).as_posix() for s in SOURCES for p in (sample / s).rglob("*") if p.is_file())


def deliver(landing: Path, rel: str, data: bytes) -> None:
    """Write a landing file as a sender would: under a dot-name (never scanned), then renamed."""
    target = landing / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(f".{target.name}.part")
    part.write_bytes(data)
    os.replace(part, target)


def cut_records(data: bytes, name: str, lines: int = 2) -> bytes:
    """A re-delivery with changed content: a JSON Lines file without its last records."""
    text = gzip.decompress(data) if name.endswith(".gz") else data
    kept = b"".join(text.splitlines(keepends=True)[:-lines])
    return gzip.compress(kept, mtime=0) if name.endswith(".gz") else kept


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_manifest(warehouse: Path) -> dict:
    path = warehouse / "manifest.json"
    return json.loads(path.read_text()) if path.exists() else {"current": None, "releases": []}


def warehouse_problems(fleet: Fleet) -> tuple[list[str], list[str]]:
    """`politikpi verify`'s problems, and this check's own: every manifest entry's sha256 is its
    file's, and every release file holds the release its entry names."""
    import duckdb

    done = subprocess.run([sys.executable, "-m", "flows", "verify"], env=fleet.env("operator"), cwd=fleet.code,
                          capture_output=True, text=True, timeout=300)
    verify = [ln.strip().removeprefix("problem: ") for ln in done.stderr.splitlines()
              if ln.startswith("problem")]
    if done.returncode and not verify:
        verify = [f"verify exit {done.returncode}: {(done.stdout + done.stderr).strip()[-300:]}"]
    own = []
    manifest = load_manifest(fleet.warehouse)
    for entry in manifest["releases"]:
        path = fleet.warehouse / entry["file"]
        if not path.exists():
            own.append(f"{entry['release_id']}: {path.name} missing")
            continue
        if file_sha256(path) != entry["sha256"]:
            own.append(f"{entry['release_id']}: manifest sha256 {entry['sha256'][:12]} is not its file's "
                       f"{file_sha256(path)[:12]}")
        with duckdb.connect(str(path), read_only=True) as con:
            inside = con.execute("select release_id from _release").fetchone()[0]
        if inside != entry["release_id"]:
            own.append(f"{path.name} holds release {inside}")
    return verify, own


def kpis(warehouse: Path) -> dict:
    import duckdb

    with duckdb.connect(str(warehouse / "politikpi.duckdb"), read_only=True) as con:
        return {t: sorted(con.execute(f"select * from {t}").fetchall(), key=repr) for t in TABLES}


def clean_run(fleet: Fleet, root: Path) -> dict:
    """One refresh of a fresh state and warehouse over the fleet's final landing folder."""
    env = fleet.env("clean", POLITIKPI_LANDING=str(fleet.landing), POLITIKPI_STATE=str(root / "state"),
                    POLITIKPI_WAREHOUSE=str(root / "warehouse"))
    done = subprocess.run([sys.executable, "-m", "flows", "refresh"], env=env, cwd=fleet.code,
                          capture_output=True, text=True, timeout=900)
    if done.returncode:
        raise RuntimeError(f"clean refresh failed: {(done.stdout + done.stderr)[-2000:]}")
    return kpis(root / "warehouse")


def differing_tables(a: dict, b: dict) -> list[str]:
    return [t for t in TABLES if a.get(t) != b.get(t)]


def reader_loop(warehouse: Path, stop_file: Path, out: Path, pause: float = 0.05) -> None:
    """Open the stable path read-only again and again: each time a complete, audited release
    listed in the manifest, with its key KPI tables non-empty."""
    import duckdb

    from flows.release.store import stable_path

    checks, errors, first, seen = 0, 0, [], set()
    while not stop_file.exists():
        stable = stable_path(warehouse)  # politikpi_national.duckdb in a national warehouse
        if not stable.exists():
            time.sleep(pause)
            continue
        problem = None
        try:
            with duckdb.connect(str(stable), read_only=True) as con:
                rows = con.execute("select release_id, validation_summary from _release").fetchall()
                empty = [t for t in KEY_TABLES if not con.execute(f"select count(*) from {t}").fetchone()[0]]
            listed = {r["release_id"] for r in load_manifest(warehouse)["releases"]}
            if len(rows) != 1:
                problem = f"_release has {len(rows)} rows"
            elif rows[0][0] not in listed:
                problem = f"release {rows[0][0]} is not in manifest.json"
            elif json.loads(rows[0][1]).get("success") is not True:
                problem = f"release {rows[0][0]} is not audited: {rows[0][1][:100]}"
            elif empty:
                problem = f"release {rows[0][0]}: empty {', '.join(empty)}"
            else:
                seen.add(rows[0][0])
        except Exception as exc:  # noqa: BLE001 - any failure to open or read is a reader error
            problem = f"{type(exc).__name__}: {str(exc)[:200]}"
        checks += 1
        if problem:
            errors += 1
            first = (first + [problem])[:10]
        time.sleep(pause)
    out.write_text(json.dumps({"checks": checks, "errors": errors, "first_errors": first, "seen": len(seen)}))


if __name__ == "__main__" and sys.argv[1:2] == ["reader"]:
    reader_loop(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
