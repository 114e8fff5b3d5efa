"""Start a Prefect server on loopback for `politikpi serve` and the tests (never 0.0.0.0)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path


def wait_healthy(api_url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"Prefect server at {api_url} not healthy after {timeout:.0f} s")


@contextmanager
def local_server(port: int = 4200, home: Path | None = None):
    """`prefect server start --host 127.0.0.1` (embedded SQLite); yields its API URL."""
    env = dict(os.environ, PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_UI_ENABLED="false")
    env.pop("PREFECT_API_URL", None)
    if home:
        env["PREFECT_HOME"] = str(home)
    prefect = str(Path(sys.executable).with_name("prefect"))
    proc = subprocess.Popen([prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    api_url = f"http://127.0.0.1:{port}/api"
    try:
        wait_healthy(api_url)
        yield api_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


class ServeError(RuntimeError):
    """`politikpi serve` cannot start; the message says why and where the log is."""


def serve_nightly(landing: Path, state: Path, warehouse: Path, cron: str, timezone: str, port: int,
                  start_server: bool, say=print) -> None:
    """Serve the refresh flow as deployment `refresh/nightly` (on a server started here, or PREFECT_API_URL)."""
    from contextlib import nullcontext

    with local_server(port) if start_server else nullcontext(None) as api_url:
        if api_url:
            os.environ["PREFECT_API_URL"] = api_url
        from prefect.schedules import Cron

        from flows.refresh import refresh as refresh_flow

        say(f"serving refresh/nightly ({cron}, {timezone}) against {os.environ.get('PREFECT_API_URL')}")
        refresh_flow.serve(
            name="nightly", schedules=[Cron(cron, timezone=timezone)], global_limit=1,
            parameters={"landing": str(landing.resolve()), "state_dir": str(state.resolve()),
                        "warehouse": str(warehouse.resolve())},
            description="Nightly politikpi refresh", print_starting_message=False)
