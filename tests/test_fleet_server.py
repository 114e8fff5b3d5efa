"""The fleet on a real Prefect server with basic authentication (SPEC 8.3): anonymous clients are
refused (REST and the events websockets), the CLI and deploy work with the auth string, the national
deployment's trigger turns a burst of publishes into one run, and a district's slot is held by one
run at a time across processes."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import cli, free_port

from flows.fleet import write_fleet

pytestmark = pytest.mark.slow
AUTH = "politikpi:s3cret-for-tests"
QUIET = 10  # Prefect's smallest window for a proactive trigger


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`prefect server start` with PREFECT_SERVER_API_AUTH_STRING (the server only)."""
    from flows.server import running_server

    home = tmp_path_factory.mktemp("prefect-auth")
    os.environ["PREFECT_SERVER_API_AUTH_STRING"] = AUTH
    try:
        context = running_server(free_port(), home=home)
        found = context.__enter__()
    finally:
        del os.environ["PREFECT_SERVER_API_AUTH_STRING"]
    try:
        yield found
    finally:
        context.__exit__(None, None, None)


def client_env(server, auth: str | None = AUTH) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_")}
    env |= {"PREFECT_API_URL": server.api_url, "PREFECT_HOME": str(Path(server.log).parent / "client"),
            "POLITIKPI_CONCURRENCY_LIMITS": "on"}
    if auth:
        env["PREFECT_API_AUTH_STRING"] = auth
    return env


def post(url: str, auth: str | None) -> int:
    request = urllib.request.Request(url, data=b"{}", method="POST", headers={"Content-Type": "application/json"})
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def websocket(url: str, token: str | None) -> str:
    import websockets

    async def talk() -> str:
        try:
            async with websockets.connect(url, subprotocols=["prefect"], open_timeout=10) as ws:
                await ws.send(json.dumps({"type": "auth", "token": token}))
                return json.loads(await asyncio.wait_for(ws.recv(), 10))["type"]
        except websockets.ConnectionClosed as exc:
            return f"closed {exc.rcvd.code if exc.rcvd else '?'}"
    return asyncio.run(talk())


def test_an_anonymous_client_gets_401_and_the_events_websockets_refuse_it(server):
    url = f"{server.api_url}/flow_runs/filter"
    assert post(url, None) == 401
    assert post(url, "politikpi:wrong") == 401
    assert post(url, AUTH) == 200
    ws = server.api_url.replace("http://", "ws://")
    for path in ("/events/in", "/events/out"):  # Prefect 3.2 once let these through
        assert websocket(ws + path, None) == "closed 1008"
        assert websocket(ws + path, "politikpi:wrong") == "closed 1008"
        assert websocket(ws + path, AUTH) == "auth_success"


def fleet_file(root: Path) -> Path:
    path = write_fleet(root / "politikpi.toml", ["bornholm", "fyn"])
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("\n\n", f"\nquiet_seconds = {QUIET}\n\n", 1), encoding="utf-8")
    return path


def national_runs(server) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: server.api_url, PREFECT_API_AUTH_STRING: AUTH}), \
            get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("national/national")
        return sorted(client.read_flow_runs(flow_run_filter=FlowRunFilter(deployment_id={"any_": [deployment.id]})),
                      key=lambda run: run.created)


EMIT = """
import sys, time
from prefect.events import emit_event
from prefect.events.clients import get_events_client
for i, code in enumerate(sys.argv[2:]):
    if i:
        time.sleep(float(sys.argv[1]))
    emit_event(event="politikpi.release.published", resource={"prefect.resource.id": f"politikpi.district.{code}"},
               payload={"district_code": code})
    print(time.time(), flush=True)
from prefect.events.worker import EventsWorker
EventsWorker.drain_all()
"""


def emit(server, *codes: str, gap: float = 2) -> list[float]:
    done = subprocess.run([sys.executable, "-c", EMIT, str(gap), *codes], env=client_env(server), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [float(line) for line in done.stdout.split()]


def wait_runs(server, count: int, seconds: float) -> list:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        runs = national_runs(server)
        if len(runs) >= count:
            return runs
        time.sleep(1)
    return national_runs(server)


def test_deploy_needs_the_auth_string_and_works_with_it(server, tmp_path):
    fleet = fleet_file(tmp_path)
    done = cli("deploy", "--fleet", fleet, env=client_env(server, auth=None))
    assert done.returncode == 1 and "401" in done.stderr and "PREFECT_API_AUTH_STRING" in done.stderr, done.stderr
    done = cli("deploy", "--fleet", fleet, env=client_env(server))
    assert done.returncode == 0, done.stderr
    assert "refresh/district-bornholm, refresh/district-fyn, national/national" in done.stdout
    listed = subprocess.run([str(Path(sys.executable).with_name("prefect")), "deployment", "ls"],
                            env=client_env(server), capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0 and "district-fyn" in listed.stdout, listed.stderr
    gcl = subprocess.run([str(Path(sys.executable).with_name("prefect")), "gcl", "ls"],
                         env=client_env(server, auth=None), capture_output=True, text=True, timeout=120)
    assert gcl.returncode != 0  # the CLI without the auth string is refused too


def test_publishes_within_the_quiet_period_start_one_national_run_and_a_later_one_one_more(server, tmp_path):
    done = cli("deploy", "--fleet", fleet_file(tmp_path), env=client_env(server))
    assert done.returncode == 0, done.stderr
    before = len(national_runs(server))
    time.sleep(2 * QUIET + 6)  # no publish, no run (a trigger without for_each fired every 2 x quiet)
    assert len(national_runs(server)) == before
    sent = emit(server, "bornholm", "fyn", "bornholm", gap=2)
    runs = wait_runs(server, before + 1, QUIET + 30)
    time.sleep(QUIET + 6)  # a second run, if the trigger made one per publish, would be there by now
    runs = national_runs(server)
    assert len(runs) == before + 1, [(r.name, r.created) for r in runs]
    assert runs[-1].created.timestamp() >= sent[-1] + QUIET - 1  # after the last publish's quiet period
    assert runs[-1].parameters["fleet"] == str(fleet_file(tmp_path).resolve())
    emit(server, "fyn")
    runs = wait_runs(server, before + 2, QUIET + 30)
    assert len(runs) == before + 2


HOLD = """
import sys, time
from flows.concurrency import district_slot
with district_slot("fyn"):
    start = time.time()
    time.sleep(float(sys.argv[1]))
    print(start, time.time(), flush=True)
"""


def test_one_district_slot_is_held_by_one_process_at_a_time(server):
    env = client_env(server) | {"PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    procs = [subprocess.Popen([sys.executable, "-c", HOLD, "3"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    spans = []
    for proc in procs:
        out, errors = proc.communicate(timeout=180)
        assert proc.returncode == 0, errors
        spans.append(tuple(map(float, out.split())))
    (a_start, a_end), (b_start, b_end) = sorted(spans)
    assert b_start >= a_end - 0.2, spans  # the second waited for the first to release the slot


def test_a_run_by_hand_refuses_while_another_run_of_its_district_holds_the_slot(server, tmp_path):
    env = client_env(server) | {"PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    holder = subprocess.Popen([sys.executable, "-c", HOLD, "20"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(6)  # the holder has the slot
        (tmp_path / "landing").mkdir()
        done = cli("refresh", "--district", "fyn", "--landing", tmp_path / "landing", "--state", tmp_path / "state",
                   "--warehouse", tmp_path / "warehouse", env=client_env(server))
        assert done.returncode == 3, done.stderr
        assert "concurrency limit politikpi-district-fyn" in done.stderr
        assert not (tmp_path / "state" / "last_run.json").exists()  # it never started
    finally:
        holder.kill()
