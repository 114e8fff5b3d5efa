"""Crash anywhere: SIGKILL `politikpi refresh` (its whole process group) at many points of a run.

    .venv/bin/python bench/chaos.py [--kills 60]

Each kill starts from the same published state (two weeks of the 2019 sample) with one more week
of files arriving, kills the refresh at a random moment spread over a whole run (every fifth
kill at a fault point inside publishing), then checks: the stable path opens and holds a
complete, audited release listed in the manifest; `politikpi verify` passes (after repairing an
interrupted publish); a re-run publishes KPI tables equal to a clean run's.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import duckdb  # noqa: E402

from bench.common import machine, table  # noqa: E402
from flows.release.store import load_manifest  # noqa: E402
from flows.server import local_server  # noqa: E402
from sample import SampleSpec, write_sample  # noqa: E402

TABLES = ["kpi_reports", "kpi_callouts", "kpi_response_times", "kpi_response_time_spread", "kpi_outreach",
          "kpi_safety_ambassadors", "kpi_year_summary"]
PUBLISH_POINTS = ["publish:before_move", "publish:after_move", "publish:after_manifest", "publish:after_swap"]


def cli(root: Path, env: dict, *args: str, fault: str | None = None) -> subprocess.Popen:
    env = dict(env, POLITIKPI_LANDING=str(root / "landing"), POLITIKPI_STATE=str(root / "state"),
               POLITIKPI_WAREHOUSE=str(root / "warehouse"))
    if fault:
        env["POLITIKPI_FAULT"] = f"{fault}:kill"
    return subprocess.Popen([sys.executable, "-m", "flows", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def kpis(warehouse: Path) -> dict:
    with duckdb.connect(str(warehouse / "politikpi.duckdb"), read_only=True) as con:
        return {t: sorted(con.execute(f"select * from {t}").fetchall(), key=repr) for t in TABLES}


def stable_ok(warehouse: Path) -> bool:
    """The stable path opens and holds one complete, audited release listed in the manifest."""
    try:
        with duckdb.connect(str(warehouse / "politikpi.duckdb"), read_only=True) as con:
            release_id, summary = con.execute("select release_id, validation_summary from _release").fetchone()
            con.execute("select count(*) from kpi_year_summary").fetchone()
        listed = {r["release_id"] for r in load_manifest(warehouse)["releases"]}
        return release_id in listed and '"success": true' in summary
    except Exception:  # noqa: BLE001 - any failure to open or read counts as broken
        return False


def copy_tree(src: Path, dst: Path) -> None:
    subprocess.run(["cp", "-a", str(src), str(dst)], check=True)  # keeps the stable path's hard link


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="politikpi-chaos-"))
    full = work / "full"
    write_sample(full, SampleSpec(years=(2019,), days=21))
    template = work / "template"
    (template / "landing").mkdir(parents=True)
    for folder in ("outreach", "ambassadors", "reports", "dispatches"):
        shutil.copytree(full / folder, template / "landing" / folder)
    for path in [*(template / "landing" / "reports").glob("2019-01-1[5-9]*"),
                 *(template / "landing" / "reports").glob("2019-01-2*"),
                 *(template / "landing" / "dispatches").glob("2019-01-1[5-9]*"),
                 *(template / "landing" / "dispatches").glob("2019-01-2*")]:
        path.unlink()
    counts = {"kills tried": 0, "killed before finishing": 0, "stable path broken": 0, "verify failed": 0,
              "re-runs failed": 0, "re-runs differing from a clean run": 0}
    with local_server(port=4298, home=work / "prefect") as api:
        env = dict(os.environ, PREFECT_API_URL=api)
        assert cli(template, env, "refresh").wait() == 0, "template refresh failed"
        shutil.rmtree(template / "landing")
        shutil.copytree(full, template / "landing")
        clean = work / "clean"
        copy_tree(template, clean)
        started = time.monotonic()
        assert cli(clean, env, "refresh").wait() == 0, "clean refresh failed"
        duration = time.monotonic() - started
        reference = kpis(clean / "warehouse")
        manifest = load_manifest(clean / "warehouse")
        build = next(r for r in manifest["releases"] if r["release_id"] == manifest["current"])["build"]
        for i in range(args.kills):
            run = work / f"kill{i}"
            copy_tree(template, run)
            fault = PUBLISH_POINTS[(i // 5) % 4] if i % 5 == 4 else None
            proc = cli(run, env, "refresh", fault=fault)
            if not fault:
                time.sleep(rng.uniform(0.2, duration))
                os.killpg(proc.pid, signal.SIGKILL)
            code = proc.wait()
            counts["kills tried"] += 1
            counts["killed before finishing"] += code == -signal.SIGKILL
            counts["stable path broken"] += not stable_ok(run / "warehouse")
            counts["verify failed"] += cli(run, env, "verify").wait() != 0
            if cli(run, env, "refresh").wait() != 0:
                counts["re-runs failed"] += 1
            elif kpis(run / "warehouse") != reference:
                counts["re-runs differing from a clean run"] += 1
            shutil.rmtree(run, ignore_errors=True)
    print(machine())
    print(f"a clean refresh of the added week took {duration:.1f} s (its release: {build}); kills spread over "
          f"0.2 s .. that, every fifth at a point inside publishing")
    print(table("chaos: SIGKILL to the refresh's process group", ["what", "count"],
                [[k, v] for k, v in counts.items()]))
    shutil.rmtree(work, ignore_errors=True)
    bad = counts["stable path broken"] + counts["verify failed"] + counts["re-runs failed"] + \
        counts["re-runs differing from a clean run"]
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
