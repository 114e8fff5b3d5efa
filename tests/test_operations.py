"""Operating the warehouse as a team does: several runners of one state, a served deployment beside
an operator's run, a tampered manifest, a rollback that holds. Real processes throughout."""

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


def current_id(warehouse: Path) -> str:
    with duckdb.connect(str(warehouse / "politikpi.duckdb"), read_only=True) as con:
        return con.execute("select release_id from _release").fetchone()[0]


def assert_consistent(warehouse: Path, env: dict) -> None:
    """verify is clean and every manifest checksum is its file's (checked here independently too)."""
    out = cli("verify", env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    manifest = load_manifest(warehouse)
    for entry in manifest["releases"]:
        assert file_sha256(warehouse / entry["file"]) == entry["sha256"], entry["release_id"]
    assert current_id(warehouse) == manifest["current"]


def redeliver(root: Path, identity: str, keep_lines: int | None) -> None:
    """Re-deliver a report file: shortened to keep_lines, or (None) back to its original content."""
    path, original = root / "landing" / identity, root / "originals" / identity
    if not original.exists():
        original.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, original)
    text = original.read_text(encoding="utf-8")
    path.write_text(text if keep_lines is None else "\n".join(text.split("\n")[:keep_lines]) + "\n", encoding="utf-8")


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


def test_served_deployment_and_a_manual_run_never_corrupt_the_manifest(wh, prefect_env):
    from prefect.client.orchestration import get_client

    root, env = wh
    served = subprocess.Popen([sys.executable, "-m", "flows", "serve", "--no-server"],
                              env=env_for(root, prefect_env, "home-serve"), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        with get_client(sync_client=True) as client:
            deployment = wait_for_deployment(client)
            outcomes = []
            for step in range(2):  # a new delivery, then a deployment run and a manual run at the same time
                redeliver(root, f"reports/2019-01-0{7 + step}.csv", 50 + step)
                run = client.create_flow_run_from_deployment(deployment.id)
                manual = cli("refresh", env=env_for(root, prefect_env, "home-operator"))
                assert manual.returncode in (0, 3), manual.stderr  # 3: the deployment's run held the state
                outcomes.append(manual.returncode)
                state = wait_final(client, run.id)
                assert state.is_completed() or "another politikpi process holds" in str(state.message), state
                assert_consistent(root / "warehouse", env)
    finally:
        os.killpg(served.pid, signal.SIGINT)
        served.wait(timeout=30)
    last = cli("refresh", env=env)  # whatever ran when, the state now published equals one clean run's
    assert last.returncode == 0, last.stderr
    clean = root / "clean"
    shutil.copytree(root / "landing", clean / "landing")
    assert cli("refresh", env=env_for(clean, prefect_env)).returncode == 0
    assert kpis(root / "warehouse" / "politikpi.duckdb") == kpis(clean / "warehouse" / "politikpi.duckdb")
    assert_consistent(root / "warehouse", env)


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


def test_rollback_pins_the_release_until_unpin(wh):
    root, env = wh
    warehouse = root / "warehouse"
    older, newer = (r["release_id"] for r in load_manifest(warehouse)["releases"])
    assert cli("rollback", older, env=env).returncode == 0
    redeliver(root, "reports/2019-01-09.csv", 40)  # new data arrives while pinned
    out = cli("refresh", env=env)
    assert out.returncode == 0, out.stderr
    assert f"release {older} is pinned" in out.stdout and "politikpi unpin" in out.stdout
    assert current_id(warehouse) == older and len(load_manifest(warehouse)["releases"]) == 2
    with duckdb.connect(str(root / "state" / "state.duckdb"), read_only=True) as con:  # staged, not lost
        assert con.execute("select count(*) from staged_reports where file_identity = 'reports/2019-01-09.csv'"
                           ).fetchone()[0] < 40
    out = cli("unpin", env=env)
    assert out.returncode == 0 and f"release {older} is no longer pinned" in out.stdout
    out = cli("refresh", env=env)
    assert out.returncode == 0 and "published release" in out.stdout, out.stdout + out.stderr
    assert current_id(warehouse) not in (older, newer)
    assert_consistent(warehouse, env)


def test_verify_on_a_folder_without_a_warehouse_fails_in_one_line(tmp_path, prefect_env):
    out = cli("verify", "--warehouse", str(tmp_path / "nothing-here"), env=prefect_env)
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and "no warehouse at" in out.stderr
