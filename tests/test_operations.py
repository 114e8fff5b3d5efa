"""Operating the warehouse as a team does: several runners of one state, a served deployment beside
an operator's run, a tampered manifest, a rollback that holds. Real processes throughout."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from flows.files import file_sha256
from flows.release.store import load_manifest
from tests.conftest import cli, copy_folders, wait_final, wait_for_deployment

pytestmark = pytest.mark.slow
KPI_TABLES = ("kpi_reports", "kpi_callouts", "kpi_response_times", "kpi_response_time_spread", "kpi_outreach",
              "kpi_safety_ambassadors", "kpi_year_summary")


def env_for(root: Path, prefect_env: dict, home: str | None = None) -> dict:
    env = dict(prefect_env, POLITIKPI_LANDING=str(root / "landing"), POLITIKPI_STATE=str(root / "state"),
               POLITIKPI_WAREHOUSE=str(root / "warehouse"))
    if home:
        env["PREFECT_HOME"] = str(root / home)
    return env


def kpis(path: Path) -> dict:
    with duckdb.connect(str(path), read_only=True) as con:
        return {t: sorted(con.execute(f"select * from {t}").fetchall(), key=repr) for t in KPI_TABLES}


def current_id(warehouse: Path, name: str = "politikpi.duckdb") -> str:
    with duckdb.connect(str(warehouse / name), read_only=True) as con:
        return con.execute("select release_id from _release").fetchone()[0]


def assert_consistent(warehouse: Path, env: dict) -> None:
    """verify is clean and every manifest checksum is its file's (checked here independently too)."""
    out = cli("verify", env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    manifest = load_manifest(warehouse)
    for entry in manifest["releases"]:
        assert file_sha256(warehouse / entry["file"]) == entry["sha256"], entry["release_id"]
    assert current_id(warehouse) == manifest["current"]


def redeliver(root: Path, identity: str, keep: int | None) -> int:
    """Re-deliver a report file: its first `keep` records (cut between records, never inside a quoted
    field: a cut record would get the whole file rejected), or (None) back to its original content.
    Returns the records delivered."""
    path, original = root / "landing" / identity, root / "originals" / identity
    if not original.exists():
        original.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, original)
    text = original.read_text(encoding="utf-8")
    records = list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))
    if keep is None:
        path.write_text(text, encoding="utf-8")
        return len(records) - 1
    out = io.StringIO()
    csv.writer(out, delimiter=";", lineterminator="\n").writerows(records[:keep + 1])
    path.write_text(out.getvalue(), encoding="utf-8")
    return keep


@pytest.fixture(scope="module")
def two_releases(tmp_path_factory, small_landing, prefect_env) -> Path:
    """Two published releases (the second after a re-delivery), made through the CLI."""
    root = tmp_path_factory.mktemp("ops")
    shutil.copytree(small_landing, root / "landing")
    env = env_for(root, prefect_env)
    assert cli("refresh", env=env).returncode == 0
    redeliver(root, "reports/2019-01-06.csv", 60)
    out = cli("refresh", env=env)
    assert out.returncode == 0, out.stderr
    assert len(load_manifest(root / "warehouse")["releases"]) == 2
    return root


@pytest.fixture()
def wh(tmp_path, two_releases, prefect_env):
    copy_folders(two_releases, tmp_path, ("landing", "state", "warehouse", "originals"))
    return tmp_path, env_for(tmp_path, prefect_env)


def test_runners_with_their_own_prefect_home_never_corrupt_a_release(wh, prefect_env):
    """The issue's sequence: runners of one state with different PREFECT_HOMEs (a service and an
    operator) and a state that returns to an earlier version, for which one home holds a cached build."""
    root, _ = wh
    h1, h2 = env_for(root, prefect_env, "home1"), env_for(root, prefect_env, "home2")
    first = current_id(root / "warehouse")
    for env in (h1, h2, h1):  # nothing new: nobody publishes a copy
        out = cli("refresh", env=env)
        assert out.returncode == 0, out.stderr
        assert f"nothing new; release {first} stays current" in out.stdout
    assert len(load_manifest(root / "warehouse")["releases"]) == 2
    redeliver(root, "reports/2019-01-06.csv", None)  # back to the content the first release was built from
    assert cli("refresh", env=h1).returncode == 0
    restated = current_id(root / "warehouse")
    original = kpis(root / "warehouse" / "politikpi.duckdb")
    redeliver(root, "reports/2019-01-06.csv", 60)
    assert cli("refresh", env=h2).returncode == 0  # its cleanup removes the build h1's cached result names
    redeliver(root, "reports/2019-01-06.csv", None)  # the state of `restated` again: a cached result exists
    out = cli("refresh", env=h1)
    assert out.returncode == 0, out.stderr
    back = current_id(root / "warehouse")
    ids = [r["release_id"] for r in load_manifest(root / "warehouse")["releases"]]
    assert len(set(ids)) == len(ids) == 5 and back not in (first, restated)
    assert kpis(root / "warehouse" / "politikpi.duckdb") == original
    assert_consistent(root / "warehouse", h1)
    out = cli("refresh", env=h2)
    assert f"nothing new; release {back} stays current" in out.stdout
    assert (root / "state" / "results").is_dir() and not (root / "home1" / "storage").exists()


def wait_until(what: str, check, seconds: float = 120):
    """check()'s first truthy value, polled on what the Prefect API reports (never a fixed sleep)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {seconds:.0f} s")


def publishing(client, flow_run_id) -> bool:
    """The flow run is RUNNING and so is its publish task (waiting for the warehouse lock the test holds)."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    run = client.read_flow_run(flow_run_id)
    tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return run.state.is_running() and any(t.name.startswith("publish") and t.state and t.state.is_running()
                                          for t in tasks)


def manual_run(client, warehouse: Path, seen: set):
    """The flow run a `politikpi refresh` of this warehouse started (no deployment), not yet seen."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId

    runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(is_null_=True)))
    return next((r for r in runs if r.id not in seen and Path(r.parameters.get("warehouse", "")) == warehouse), None)


def overlapped(client, *flow_run_ids) -> None:
    """The runs' [start_time, end_time] intervals, as the Prefect API recorded them, intersect."""
    a, b = (client.read_flow_run(i) for i in flow_run_ids)
    assert a.start_time and a.end_time and b.start_time and b.end_time, (a.state, b.state)
    assert a.start_time < b.end_time and b.start_time < a.end_time, (a.start_time, a.end_time, b.start_time, b.end_time)


def test_served_deployment_and_a_manual_run_never_corrupt_the_manifest(wh, prefect_env):
    """Both orders, each made to overlap for real: the test holds the warehouse lock (as an operator's
    rollback or repair does), so the first run waits in its publish task with the state locked; the
    second run starts only once the API shows that, and is refused (another politikpi process holds
    the state). The API's start and end times prove the overlap; the manifest names the run that
    published."""
    from prefect.client.orchestration import get_client

    from flows.release.releases import warehouse_lock

    root, env = wh
    warehouse = root / "warehouse"
    operator = env_for(root, prefect_env, "home-operator")
    served = subprocess.Popen([sys.executable, "-m", "flows", "serve", "--no-server"],
                              env=env_for(root, prefect_env, "home-serve"), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        with get_client(sync_client=True) as client:
            deployment = wait_for_deployment(client)
            seen: set = set()

            # 1. The deployment's run first; the operator's run starts while it is publishing.
            redeliver(root, "reports/2019-01-07.csv", 50)
            with warehouse_lock(warehouse):
                run = client.create_flow_run_from_deployment(deployment.id)
                wait_until("the deployment's run publishing", lambda: publishing(client, run.id))
                manual = cli("refresh", env=operator)
                busy = f"another politikpi process holds {root / 'state' / '.lock'}"  # the state, not the warehouse
                assert manual.returncode == 3 and busy in " ".join(manual.stderr.split()), manual.stderr
                refused = manual_run(client, warehouse, seen)
                assert refused is not None and client.read_flow_run(refused.id).state.is_final()
                seen.add(refused.id)
            assert wait_final(client, run.id).is_completed()
            overlapped(client, run.id, refused.id)
            assert load_manifest(warehouse)["releases"][-1]["flow_run_id"] == str(run.id)
            assert_consistent(warehouse, env)

            # 2. The operator's run first; the deployment's run starts while it is publishing.
            redeliver(root, "reports/2019-01-08.csv", 51)
            with warehouse_lock(warehouse):
                manual = subprocess.Popen([sys.executable, "-m", "flows", "refresh"], env=operator,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                mine = wait_until("the operator's run publishing", lambda: (
                    (r := manual_run(client, warehouse, seen)) and publishing(client, r.id) and r))
                run = client.create_flow_run_from_deployment(deployment.id)
                state = wait_final(client, run.id)
                assert state.is_failed() and busy in str(state.message), state
            stdout, stderr = manual.communicate(timeout=300)
            assert manual.returncode == 0 and "published release" in stdout, stdout + stderr
            overlapped(client, mine.id, run.id)
            assert load_manifest(warehouse)["releases"][-1]["flow_run_id"] == str(mine.id)
            assert len(load_manifest(warehouse)["releases"]) == 4
            assert_consistent(warehouse, env)
    finally:
        os.killpg(served.pid, signal.SIGINT)
        served.wait(timeout=30)
    last = cli("refresh", env=env)  # whatever ran when, the state now published equals one clean run's
    assert last.returncode == 0, last.stderr
    clean = root / "clean"
    shutil.copytree(root / "landing", clean / "landing")
    assert cli("refresh", env=env_for(clean, prefect_env)).returncode == 0
    assert kpis(warehouse / "politikpi.duckdb") == kpis(clean / "warehouse" / "politikpi.duckdb")
    assert_consistent(warehouse, env)


def _tamper(warehouse: Path, kind: str) -> str:
    manifest = load_manifest(warehouse)
    older = manifest["releases"][0]
    if kind == "checksum":
        older["sha256"] = "0" * 64
    elif kind == "dropped entry":
        manifest["releases"] = manifest["releases"][1:]
    elif kind == "unknown current":
        manifest["current"] = "20991231T000000Z-0123456789ab"
    elif kind == "not json":
        (warehouse / "manifest.json").write_text("{ not json", encoding="utf-8")
        return "cannot be read"
    (warehouse / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return {"checksum": "manifest's checksum is not the file's", "dropped entry": "is not listed in the manifest",
            "unknown current": "is not listed in it"}[kind]


@pytest.mark.parametrize("kind", ["checksum", "dropped entry", "unknown current", "not json"])
def test_verify_catches_a_tampered_manifest_and_repair_restores_it(wh, kind):
    root, env = wh
    warehouse = root / "warehouse"
    good = load_manifest(warehouse)
    message = _tamper(warehouse, kind)
    out = cli("verify", env=env)
    assert out.returncode == 1 and message in out.stderr, out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("FAILED: ")
    out = cli("repair", env=env)
    assert out.returncode == 0 and "repaired: " in out.stdout, out.stdout + out.stderr
    assert load_manifest(warehouse) == good
    assert_consistent(warehouse, env)


def test_verify_never_deletes_a_release_whose_entry_and_sidecar_were_lost(wh):
    root, env = wh
    warehouse = root / "warehouse"
    good = load_manifest(warehouse)
    older = good["releases"][0]
    (warehouse / "manifest.json").write_text(json.dumps({**good, "releases": good["releases"][1:]}), encoding="utf-8")
    sidecar = warehouse / "releases" / f"{older['release_id']}.json"
    sidecar.chmod(0o644)
    sidecar.unlink()
    out = cli("verify", env=env)
    assert out.returncode == 1 and "is not listed in the manifest" in out.stderr
    assert (warehouse / older["file"]).exists()  # reported, never deleted
    out = cli("repair", env=env)
    assert out.returncode == 0 and f"{older['release_id']}: listed again" in out.stdout
    ids = [r["release_id"] for r in load_manifest(warehouse)["releases"]]
    assert ids == [r["release_id"] for r in good["releases"]]
    assert_consistent(warehouse, env)


def test_verify_does_not_put_a_tampered_current_into_effect(wh):
    root, env = wh
    warehouse = root / "warehouse"
    good = load_manifest(warehouse)
    older = good["releases"][0]["release_id"]
    (warehouse / "manifest.json").write_text(json.dumps({**good, "current": older}), encoding="utf-8")
    out = cli("verify", env=env)
    assert out.returncode == 1 and f"is not the manifest's current release {older}" in out.stderr
    assert current_id(warehouse) == good["current"]  # readers still get the release they had
    assert cli("repair", env=env).returncode == 0
    assert load_manifest(warehouse)["current"] == good["current"]
    assert_consistent(warehouse, env)


def test_a_release_file_changed_after_publishing_is_reported_and_never_dropped(wh):
    root, env = wh
    warehouse = root / "warehouse"
    older = load_manifest(warehouse)["releases"][0]
    path = warehouse / older["file"]
    path.chmod(0o644)
    with open(path, "r+b") as fh:  # one flipped byte in the middle of the file
        fh.seek(path.stat().st_size // 2)
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0xFF]))
    out = cli("verify", env=env)
    assert out.returncode == 1 and "cannot be repaired" in out.stderr
    assert cli("repair", env=env).returncode == 0
    assert [r["release_id"] for r in load_manifest(warehouse)["releases"]][0] == older["release_id"]
    assert path.exists() and cli("verify", env=env).returncode == 1  # still reported
    out = cli("rollback", older["release_id"], env=env)
    assert out.returncode == 1 and "does not match its checksum" in out.stderr


def release_ids(warehouse: Path) -> tuple[str, str, str | None, list[str]]:
    """(the stable path's release, the KPI file's, the pinned one, the listed ones) as readers and the
    manifest see them."""
    manifest = load_manifest(warehouse)
    return (current_id(warehouse), current_id(warehouse, "politikpi_kpi.duckdb"),
            (manifest.get("pinned") or {}).get("release_id"), [r["release_id"] for r in manifest["releases"]])


def rows_from(path: Path, sql: str, identity: str) -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql, [identity]).fetchone()[0]


def test_rollback_pins_the_release_until_unpin(wh):
    root, env = wh
    warehouse, identity = root / "warehouse", "reports/2019-01-09.csv"
    older, newer = (r["release_id"] for r in load_manifest(warehouse)["releases"])
    assert older < newer and release_ids(warehouse) == (newer, newer, None, [older, newer])
    in_force = "select count(*) from fct_reports where file_identity = ?"
    held_before = rows_from(warehouse / "politikpi.duckdb", in_force, identity)
    assert held_before > 40  # the whole file is in force in both releases

    assert cli("rollback", older, env=env).returncode == 0
    assert release_ids(warehouse) == (older, older, older, [older, newer])

    delivered = redeliver(root, identity, 40)  # new data arrives while pinned: 40 of its records
    out = cli("refresh", env=env)
    assert out.returncode == 0, out.stderr
    assert f"release {older} is pinned" in out.stdout and "politikpi unpin" in out.stdout
    assert release_ids(warehouse) == (older, older, older, [older, newer])
    assert rows_from(warehouse / "politikpi.duckdb", in_force, identity) == held_before  # nothing of it published
    with duckdb.connect(str(root / "state" / "state.duckdb"), read_only=True) as con:  # staged, not lost
        status = con.execute("select status from files where identity = ?", [identity]).fetchone()[0]
        staged, quarantined = (con.execute(f"select count(*) from {t} where file_identity = ?", [identity]
                                           ).fetchone()[0] for t in ("staged_reports", "quarantine"))
    assert status == "ingested" and staged > 0 and staged + quarantined == delivered, (status, staged, quarantined)

    out = cli("unpin", env=env)
    assert out.returncode == 0 and f"release {older} is no longer pinned" in out.stdout
    assert release_ids(warehouse) == (older, older, None, [older, newer])  # unpinning publishes nothing
    out = cli("refresh", env=env)
    assert out.returncode == 0 and "published release" in out.stdout, out.stdout + out.stderr
    *_, ids = release_ids(warehouse)
    assert len(ids) == 3 and ids[:2] == [older, newer] and ids[2] > newer
    assert release_ids(warehouse) == (ids[2], ids[2], None, ids)
    # the re-delivered file is what the new release holds: at most its staged rows, fewer than before
    assert 0 < rows_from(warehouse / "politikpi.duckdb", in_force, identity) <= staged < held_before
    assert_consistent(warehouse, env)


def test_verify_on_a_folder_without_a_warehouse_fails_in_one_line(tmp_path, prefect_env):
    out = cli("verify", "--warehouse", str(tmp_path / "nothing-here"), env=prefect_env)
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and "no warehouse at" in out.stderr
