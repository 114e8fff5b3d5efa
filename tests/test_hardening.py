"""Faults, load and hostile input: disk full, read-only, many readers, names and options."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest

from tests.conftest import cli

pytestmark = pytest.mark.slow
CPR = re.compile(r"\b\d{6}-\d{4}\b")


def env_for(root: Path, prefect_env: dict) -> dict:
    return dict(prefect_env, POLITIKPI_LANDING=str(root / "landing"), POLITIKPI_STATE=str(root / "state"),
                POLITIKPI_WAREHOUSE=str(root / "warehouse"))


def release_id(warehouse: Path) -> str:
    with duckdb.connect(str(warehouse / "politikpi.duckdb"), read_only=True) as con:
        return con.execute("select release_id from _release").fetchone()[0]


@pytest.fixture()
def mounted(tmp_path):
    """A small tmpfs for the warehouse (root only; skipped where mounting is not allowed)."""
    target = tmp_path / "warehouse"
    target.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(target)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root): disk-full and read-only tests skipped")
    yield target
    subprocess.run(["umount", "-l", str(target)], capture_output=True)


def add_day(landing: Path, day: int) -> None:
    """A new day of reports: one valid report, so the next refresh publishes a new release."""
    header = (landing / "reports" / "2019-01-05.csv").read_text(encoding="utf-8").split("\n")[0]
    (landing / "reports" / f"2019-01-{day:02d}-extra.csv").write_text(
        f"{header}\n4100-88888-{day:05d}-19;{day:02d}-01-2019 10:00:00;;370;Særlov;Knivloven;"
        f"{day:02d}-01-2019 10:00:00;;\n",
        encoding="utf-8")


@pytest.mark.parametrize("fault", ["disk full", "read-only"])
def test_full_or_read_only_warehouse_fails_clearly_and_keeps_the_release(tmp_path, mounted, small_landing,
                                                                        prefect_env, fault):
    shutil.copytree(small_landing, tmp_path / "landing")
    env = env_for(tmp_path, prefect_env)
    assert cli("refresh", env=env).returncode == 0
    before = release_id(mounted)
    add_day(tmp_path / "landing", 20)
    if fault == "disk full":
        free = shutil.disk_usage(mounted).free
        (mounted / "filler").write_bytes(b"\0" * (free - 64 * 1024))
    else:
        subprocess.run(["mount", "-o", "remount,ro", str(mounted)], check=True)
    out = cli("refresh", env=env)
    assert out.returncode == 1
    assert ("No space left" in out.stderr or "Read-only" in out.stderr), out.stderr
    assert out.stderr.count("\n") <= 2  # one clear line, no traceback
    assert release_id(mounted) == before
    if fault == "disk full":
        (mounted / "filler").unlink()
    else:
        subprocess.run(["mount", "-o", "remount,rw", str(mounted)], check=True)
    assert cli("refresh", env=env).returncode == 0 and release_id(mounted) != before


def test_no_personal_data_in_prefect_artifacts_or_logs(tmp_path, small_landing, prefect_server):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    from flows.refresh import refresh

    shutil.copytree(small_landing, tmp_path / "landing")
    state = refresh(str(tmp_path / "landing"), str(tmp_path / "state"), str(tmp_path / "warehouse"), return_state=True)
    run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts()
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
    text = "\n".join(str(a.data) for a in artifacts if a.flow_run_id == run_id) + "\n".join(log.message for log in logs)
    assert "refresh-summary" in {a.key for a in artifacts} and "quarantine-reasons" in {a.key for a in artifacts}
    assert not CPR.search(text)
    assert not any(name in text for name in ("Hansen", "Nielsen", "Østergaard", "Kjær"))
    reports = list((tmp_path / "warehouse" / "reports").glob("*.html"))
    assert reports and not CPR.search(reports[0].read_text(encoding="utf-8"))
