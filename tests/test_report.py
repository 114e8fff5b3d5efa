"""The KPI report: numbers from the release, small counts hidden, a screenshot in Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest

from flows.release.report import count, minutes, write_report

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def release(prefect_server, small_landing, tmp_path_factory) -> Path:
    from flows.refresh import refresh

    root = tmp_path_factory.mktemp("report")
    shutil.copytree(small_landing, root / "landing")
    result = refresh(str(root / "landing"), str(root / "state"), str(root / "warehouse"))
    assert Path(result["release"]["report"]).exists()  # written next to the release
    return root / "warehouse" / "politikpi.duckdb"


def test_small_counts_are_hidden_and_minutes_read_as_clock():
    shown = [count(None), count(0), count(1), count(2), count(3), count(205690)]
    assert shown == ["–", "0", "<3", "<3", "3", "205.690"]
    assert minutes(12.6) == "12:36"


def test_report_numbers_match_the_release(release, tmp_path):
    page = write_report(release, tmp_path / "r.html").read_text(encoding="utf-8")
    with duckdb.connect(str(release), read_only=True) as con:
        reports, callouts, mean = con.execute(
            "select reports, callouts, mean_response_min from kpi_year_summary where year = 2019").fetchone()
        release_id = con.execute("select release_id from _release").fetchone()[0]
        per_1000 = con.execute(
            "select sum(reports_per_1000) from kpi_reports where municipality_code = 360").fetchone()[0]
    assert f">{count(reports)}<" in page and f">{count(callouts)}<" in page and f">{minutes(mean)}<" in page
    assert release_id in page and f"{per_1000:.1f}" in page
    assert "Periode: 1. januar – 14. januar 2019" in page  # the two-week sample: the period says so
    assert "<script" not in page and not re.search(r'(src|href)="https?:', page)  # nothing fetched: works offline
    assert page.count("<svg") == 4 and len(page) < 400_000


def test_report_renders_in_headless_chromium(release, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        pytest.skip("chromium is not installed (make test installs Debian's chromium where apt-get can)")
    page = write_report(release, tmp_path / "r.html")
    shot = tmp_path / "report.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run",
                    f"--user-data-dir={tmp_path / 'profile'}",
                    "--window-size=1200,2400", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 50_000
    shutil.copy(shot, Path(__file__).resolve().parent.parent / "bench" / "out" / "report-screenshot.png") \
        if (Path(__file__).resolve().parent.parent / "bench" / "out").exists() else None
