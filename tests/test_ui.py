"""The Prefect UI of the server politikpi starts shows a real refresh run and its artifacts (headless chromium)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.conftest import free_port


def api_post(url: str, body: dict) -> list[dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def page_dom(browser: str, url: str, profile) -> str:
    """The page's DOM after its scripts ran (the UI is a single-page app: the HTML alone says nothing)."""
    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--window-size=1400,1200", "--virtual-time-budget=15000", "--dump-dom", url],
        capture_output=True, text=True, timeout=120)
    return done.stdout


def test_ui_shows_a_refresh_run_and_its_artifacts(small_landing, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        pytest.skip("chromium is not installed (make chromium installs Debian's chromium where apt-get can)")
    from flows.server import local_server

    shutil.copytree(small_landing, tmp_path / "landing")
    home, port = tmp_path / "prefect-home", free_port()
    with local_server(port=port, home=home) as api_url:
        env = dict(os.environ, PREFECT_API_URL=api_url, PREFECT_HOME=str(home))
        done = subprocess.run([sys.executable, "-m", "flows", "refresh", "--landing", str(tmp_path / "landing"),
                               "--state", str(tmp_path / "state"), "--warehouse", str(tmp_path / "warehouse")],
                              env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr

        runs = api_post(f"{api_url}/flow_runs/filter", {"flows": {"name": {"any_": ["refresh"]}}})
        assert len(runs) == 1 and runs[0]["state_type"] == "COMPLETED", runs
        run_id, run_name = runs[0]["id"], runs[0]["name"]
        keys = {a["key"] for a in api_post(f"{api_url}/artifacts/filter", {"flow_runs": {"id": {"any_": [run_id]}}})}
        assert {"refresh-summary", "quarantine-reasons"} <= keys, keys  # the API has them: now the UI must show them

        ui = api_url.removesuffix("/api")
        pages = {  # the link Prefect prints (`prefect deployment run`, logs), and the flow run's Artifacts tab
            "run": f"{ui}/runs/flow-run/{run_id}",
            "artifacts": f"{ui}/v2/runs/flow-run/{run_id}?tab=Artifacts",
        }
        dom = {}
        for name, url in pages.items():
            for attempt in range(3):  # a page still loading on a busy machine gets another go
                dom[name] = page_dom(browser, url, tmp_path / f"profile-{name}-{attempt}")
                if run_name in dom[name] and (name == "run" or "quarantine-reasons" in dom[name]):
                    break
                time.sleep(2)

    for name, text in dom.items():
        assert run_name in text, f"{pages[name]} does not show flow run {run_name}: {text[:500]}"
        assert re.search(r">\s*refresh\s*<", text), f"{pages[name]} does not name the flow `refresh`"
    for key in ("refresh-summary", "quarantine-reasons"):
        assert re.search(rf">\s*{key}\s*<", dom["artifacts"]), f"{pages['artifacts']} does not show artifact {key}"
