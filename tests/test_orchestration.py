"""Re-runs resume and give exactly a clean run's result; the nightly deployment on a real server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from flows.faults import InjectedFault
from tests.conftest import cli, wait_final, wait_for_deployment

pytestmark = pytest.mark.slow
TABLES = ["kpi_reports", "kpi_callouts", "kpi_response_times", "kpi_response_time_spread", "kpi_outreach",
          "kpi_safety_ambassadors", "kpi_year_summary", "fct_reports", "fct_callouts"]
REPO = Path(__file__).resolve().parent.parent


def kpis(warehouse: Path) -> dict:
    with duckdb.connect(str(warehouse / "politikpi.duckdb"), read_only=True) as con:
        return {t: sorted(con.execute(f"select * from {t}").fetchall(), key=repr) for t in TABLES}


def folders(root: Path) -> tuple[str, str, str]:
    return str(root / "landing"), str(root / "state"), str(root / "warehouse")


@pytest.fixture(scope="module")
def clean(prefect_server, small_landing, tmp_path_factory) -> dict:
    from flows.refresh import refresh

    root = tmp_path_factory.mktemp("clean")
    shutil.copytree(small_landing, root / "landing")
    refresh(*folders(root))
    return kpis(root / "warehouse")


def task_states(flow_run_id) -> dict[str, list[str]]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    out: dict[str, list[str]] = {}
    for run in runs:
        out.setdefault(run.name.rsplit("-", 1)[0], []).append(run.state.name)
    return out


@pytest.mark.parametrize("stage,cached", [
    ("extract:reports", "extract and validate"),  # the other sources' extraction is not redone
    ("load", None),
    ("transform", None),
    ("audit", "transform"),
    ("publish:after_manifest", None),  # the release is listed: the re-run finishes its publish, nothing new to do
])
def test_failure_in_a_stage_then_rerun_gives_the_clean_result(clean, small_landing, tmp_path, monkeypatch,
                                                              stage, cached):
    from flows.refresh import refresh

    shutil.copytree(small_landing, tmp_path / "landing")
    monkeypatch.setenv("POLITIKPI_FAULT", stage)
    with pytest.raises(InjectedFault):
        refresh(*folders(tmp_path))
    monkeypatch.delenv("POLITIKPI_FAULT")
    state = refresh(*folders(tmp_path), return_state=True)
    assert state.is_completed()
    assert kpis(tmp_path / "warehouse") == clean
    if cached:
        assert "Cached" in task_states(state.state_details.flow_run_id)[cached]


def test_prefect_flow_run_retry_resumes_a_failed_run(clean, small_landing, tmp_path, prefect_env):
    shutil.copytree(small_landing, tmp_path / "landing")
    landing, state_dir, warehouse = folders(tmp_path)
    env = dict(prefect_env, POLITIKPI_LANDING=landing, POLITIKPI_STATE=state_dir, POLITIKPI_WAREHOUSE=warehouse)
    failed = cli("refresh", env=dict(env, POLITIKPI_FAULT="audit"))
    assert failed.returncode == 1 and "fault injected at audit" in failed.stderr
    run_id = json.loads((tmp_path / "state" / "failures.jsonl").read_text().splitlines()[-1])["flow_run_id"]
    retry = subprocess.run([str(Path(sys.executable).with_name("prefect")), "flow-run", "retry", run_id,
                            "--entrypoint", f"{REPO}/flows/refresh.py:refresh"],
                           capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert retry.returncode == 0, retry.stdout + retry.stderr
    assert kpis(tmp_path / "warehouse") == clean


def test_nightly_deployment_on_a_real_server_runs_on_demand(small_landing, tmp_path):
    from flows.server import local_server

    shutil.copytree(small_landing, tmp_path / "landing")
    with local_server(port=4242, home=tmp_path / "prefect-home") as api_url:
        env = dict(os.environ, PREFECT_API_URL=api_url, PREFECT_HOME=str(tmp_path / "prefect-home"))
        server = subprocess.Popen(
            [sys.executable, "-m", "flows", "serve", "--no-server", "--landing", str(tmp_path / "landing"),
             "--state", str(tmp_path / "state"), "--warehouse", str(tmp_path / "warehouse")],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            from prefect.client.orchestration import get_client
            from prefect.settings import PREFECT_API_URL, temporary_settings

            with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
                deployment = wait_for_deployment(client)
                schedule = deployment.schedules[0].schedule
                assert schedule.cron == "0 2 * * *" and schedule.timezone == "Europe/Copenhagen"
                run = client.create_flow_run_from_deployment(deployment.id)
                state = wait_final(client, run.id, seconds=180)
                assert state.is_completed(), state
        finally:
            os.killpg(server.pid, signal.SIGINT)
            server.wait(timeout=30)
    assert (tmp_path / "warehouse" / "politikpi.duckdb").exists()
