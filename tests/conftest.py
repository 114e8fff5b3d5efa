"""Shared fixtures: one Prefect test server per session, small deterministic samples."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Prefect reads its settings at import: point it at a throwaway home before anything imports it.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="politikpi-prefect-")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


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


def cli(*args: str, env: dict | None = None, timeout: int = 300):
    """Run `politikpi` in a real process."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "flows", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout)


@pytest.fixture(scope="session")
def small_landing(tmp_path_factory) -> Path:
    """Two weeks of the 2019 sample (every format and kind of dirt), written once."""
    from flows.sample import SampleSpec, write_sample

    out = tmp_path_factory.mktemp("landing")
    write_sample(out, SampleSpec(years=(2019,), days=14))
    return out


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path
