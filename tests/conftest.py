"""Shared fixtures: one Prefect test server per session (per xdist worker under `make test`), small
deterministic samples."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Prefect reads its settings at import: point it at a throwaway home before anything imports it.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="politikpi-prefect-")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# Prefect's test server (prefect_test_harness) runs no lease reaper: a run a test kills would hold its
# district's concurrency slot forever and every later run of that district would wait for it. The
# limits are tested on a real `prefect server start` (tests/test_fleet_server.py), which turns them on.
os.environ["POLITIKPI_CONCURRENCY_LIMITS"] = "off"


@pytest.fixture(scope="session")
def prefect_server():
    """One Prefect test server for the whole session (~25 s once)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def prefect_env(prefect_server) -> dict:
    """Environment for subprocesses: they use the session's Prefect server, not a temporary one."""
    from prefect.settings import get_current_settings

    return dict(os.environ, PREFECT_API_URL=str(get_current_settings().api.url))


def free_port() -> int:
    """A free port in 4300-4399 (other suites use 4200-4299); under `make test` each xdist worker
    draws from its own share, so two tests on two workers never pick the same one."""
    import random

    from flows.server import port_problem

    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", 1))
    width = 100 // workers
    low = 4300 + width * int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    high = low + width
    for port in random.sample(range(low, high), high - low):
        if port_problem(port) is None:
            return port
    raise RuntimeError(f"no free port in {low}-{high - 1}")


def cli(*args: str, env: dict | None = None, timeout: int = 300):
    """Run `politikpi` in a real process."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "flows", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout)


@pytest.fixture(scope="session")
def small_landing(tmp_path_factory) -> Path:
    """Two weeks of the 2019 sample (every format and kind of dirt), written once."""
    from sample import SampleSpec, write_sample

    out = tmp_path_factory.mktemp("landing")
    write_sample(out, SampleSpec(years=(2019,), days=14))
    return out


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def copy_folders(source: Path, target: Path, folders=("landing", "state", "warehouse")) -> None:
    """A copy of a published root for one test (`cp -a` keeps the release hard links)."""
    import subprocess

    for folder in folders:
        if (source / folder).exists():
            subprocess.run(["cp", "-a", str(source / folder), str(target / folder)], check=True)


def wait_for_deployment(client, name: str = "refresh/nightly", seconds: float = 60):
    """The deployment once `serve` (or a deploy) has registered it."""
    import time

    for _ in range(int(seconds * 2)):
        try:
            return client.read_deployment_by_name(name)
        except Exception:
            time.sleep(0.5)
    raise AssertionError(f"deployment {name} was not created within {seconds:.0f} s")


def wait_final(client, flow_run_id, seconds: float = 300):
    """The flow run's final state."""
    import time

    for _ in range(int(seconds * 2)):
        state = client.read_flow_run(flow_run_id).state
        if state.is_final():
            return state
        time.sleep(0.5)
    raise AssertionError(f"flow run {flow_run_id} not finished within {seconds:.0f} s: {state}")


# The fast tier (`make test-fast`, and what `make mutate` runs against every mutant): the value tests
# of these files that need no Prefect server and start no `politikpi` process. They build real
# DuckDB files through the real readers, Pandera models and SQL models.
FAST_FILES = {"test_sql_models.py", "test_kpi_beyond_deck.py", "test_revisions.py", "test_disclosure.py",
              "test_schemas.py", "test_patch.py", "test_rules_that_matter.py", "test_readers.py", "test_country.py",
              "test_order.py", "test_national_models.py"}


# The longest files first: under `make test` each worker takes a file at a time in this order, so the
# long ones never start last and leave one worker running alone (longest processing time first).
SLOWEST_FIRST = ["test_workers.py", "test_operations.py", "test_fleet_server.py", "test_messages.py",
                 "test_hardening.py", "test_publish.py", "test_orchestration.py", "test_national.py",
                 "test_serve.py", "test_sample_dirt.py", "test_refresh_e2e.py", "test_report.py"]


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: SLOWEST_FIRST.index(item.path.name) if item.path.name in SLOWEST_FIRST
               else len(SLOWEST_FIRST))
    for item in items:
        if item.path.name in FAST_FILES and not {"prefect_server", "prefect_env"} & set(item.fixturenames) \
                and not item.get_closest_marker("slow") and "cli(" not in _source(item):
            item.add_marker(pytest.mark.fast)


def _source(item) -> str:
    import inspect

    try:
        return inspect.getsource(item.function)
    except (OSError, TypeError):
        return ""
