"""What an on-call engineer reads: each failure names the file, the rule or the month and what to
do; rejected files reach automation; the commands filter, export and explain. Real CLI processes."""

from __future__ import annotations

import gzip
import json
import re
import time
import urllib.request
from pathlib import Path

import pytest

from flows.release.store import load_manifest
from tests.conftest import cli, copy_folders

pytestmark = pytest.mark.slow


def env_for(root: Path, prefect_env: dict) -> dict:
    return dict(prefect_env, POLITIKPI_LANDING=str(root / "landing"), POLITIKPI_STATE=str(root / "state"),
                POLITIKPI_WAREHOUSE=str(root / "warehouse"), COLUMNS="100")


@pytest.fixture(scope="module")
def published(tmp_path_factory, prefect_env) -> Path:
    """Forty days of the 2019 sample (January is a closed month), published once."""
    from sample import SampleSpec, write_sample

    root = tmp_path_factory.mktemp("messages")
    write_sample(root / "landing", SampleSpec(years=(2019,), days=40))
    out = cli("refresh", env=env_for(root, prefect_env))
    assert out.returncode == 0, out.stderr
    return root


@pytest.fixture()
def wh(tmp_path, published, prefect_env):
    copy_folders(published, tmp_path)
    return tmp_path, env_for(tmp_path, prefect_env)


def header(root: Path, source: str) -> str:
    path = next(p for p in sorted((root / "landing" / source).glob("*.csv")))
    return path.read_text(encoding="utf-8").split("\n")[0]


def test_threshold_breach_names_files_and_rules_and_quarantine_shows_the_stopped_run(wh):
    root, env = wh
    bad = root / "landing" / "reports" / "2019-02-20.csv"
    bad.write_text(header(root, "reports") + "\n" + "".join(f"bad-{i};x;;999;?;;;;\n" for i in range(250)),
                   encoding="utf-8")
    also = bad.with_name("2019-02-21.csv")  # validated in the same batch: the same work file
    also.write_text(header(root, "reports") + "\n" + "".join(f"bad-{i};x;;999;?;;;;\n" for i in range(3)),
                    encoding="utf-8")
    out = cli("refresh", env=env)
    assert out.returncode == 2
    message = out.stderr.strip().splitlines()[-1]
    assert "reports: 253 of" in message and "reports/2019-02-20.csv 250 of 250" in message
    assert "top rules: " in message and "journalnr_pattern (253)" in message
    assert "POLITIKPI_MAX_QUARANTINE_SHARE" in message
    shown = json.loads(cli("quarantine", "--file", "reports/2019-02-20.csv", "--format", "json", env=env).stdout)
    assert len(shown["rows"]) == 250 and all(r["status"].startswith("stopped run") for r in shown["rows"])
    table = cli("quarantine", "--source", "reports", env=env).stdout
    assert "stopped by the failure threshold" in table and "stopped run" in table
    bad.unlink()
    also.unlink()
    again = cli("refresh", env=env)
    assert again.returncode == 0 and "nothing new" in again.stdout
    shown = json.loads(cli("quarantine", "--format", "json", env=env).stdout)
    assert not any(r["status"].startswith("stopped run") for r in shown["rows"])  # stale rows are gone


def test_audit_failure_speaks_in_kpis_and_months_and_a_restatement_can_be_accepted(wh):
    root, env = wh
    path = root / "landing" / "outreach" / "2019-01.csv"
    path.write_text(path.read_text(encoding="utf-8").replace(";", ","), encoding="utf-8")  # comma-separated
    before = load_manifest(root / "warehouse")["current"]
    out = cli("refresh", env=env)
    assert out.returncode == 2, out.stdout + out.stderr
    message = out.stderr.strip().splitlines()[-1]
    assert "outreach 2019-01, all municipalities: 377 -> 0 (-100 %), after rejected file outreach/2019-01.csv" \
        in message
    assert "POLITIKPI_CHANGE_HARD_SHARE" in message and '--accept-restatement "<reason>"' in message
    assert "outreach/2019-01.csv (wrong columns" in message and "comma-separated" in message  # why it was rejected
    for _ in range(40):  # the rejected file is announced although the audit failed
        if [e for e in _events(env["PREFECT_API_URL"], "politikpi.file.rejected")
                if e["resource"]["prefect.resource.id"] == "politikpi.file.outreach/2019-01.csv"]:
            break
        time.sleep(0.5)
    else:
        raise AssertionError("no politikpi.file.rejected event for outreach/2019-01.csv")
    assert load_manifest(root / "warehouse")["current"] == before
    out = cli("refresh", "--accept-restatement", "January outreach withdrawn by the station", env=env)
    assert out.returncode == 0, out.stderr
    manifest = load_manifest(root / "warehouse")
    entry = next(r for r in manifest["releases"] if r["release_id"] == manifest["current"])
    assert entry["validation_summary"]["restatement"]["reason"] == "January outreach withdrawn by the station"
    logged = json.loads((root / "state" / "restatements.jsonl").read_text(encoding="utf-8").splitlines()[-1])
    assert logged["release_id"] == manifest["current"] and "outreach 2019-01" in logged["changes"][0]
    assert "restatement accepted: January outreach" in cli("releases", env=dict(env, COLUMNS="250")).stdout
    reasons = json.loads(cli("quarantine", "--format", "json", env=env).stdout)["rejected_files"]
    assert any("comma-separated" in r["reason"] for r in reasons)


def _events(api_url: str, name: str) -> list[dict]:
    request = urllib.request.Request(f"{api_url}/events/filter", method="POST",
                                     data=json.dumps({"filter": {"event": {"name": [name]}}, "limit": 50}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["events"]


def test_a_rejected_file_reaches_automation_and_is_resolved_by_a_good_delivery(wh):
    root, env = wh
    path = root / "landing" / "reports" / "2019-02-21.csv"
    good = header(root, "reports") + \
        "\n4100-77777-00001-19;21-02-2019 10:00:00;;370;Særlov;Knivloven;21-02-2019 10:00:00;;\n"
    path.write_text(good.replace(";", ","), encoding="utf-8")
    out = cli("refresh", "--fail-on-rejected", env=env)
    assert out.returncode == 4, out.stdout + out.stderr
    assert "published release" in out.stdout
    assert "WARNING: 1 file(s) rejected this run: reports/2019-02-21.csv" in out.stderr
    for _ in range(40):  # the server stores events asynchronously
        found = [e for e in _events(env["PREFECT_API_URL"], "politikpi.file.rejected")
                 if e["resource"]["prefect.resource.id"] == "politikpi.file.reports/2019-02-21.csv"]
        if found:
            break
        time.sleep(0.5)
    assert found and "comma-separated" in found[0]["payload"]["reason"]
    path.write_text(good, encoding="utf-8")  # the data owner delivers it again, right this time
    assert cli("refresh", "--fail-on-rejected", env=env).returncode == 0
    rejected = json.loads(cli("quarantine", "--format", "json", env=env).stdout)["rejected_files"]
    mine = [r for r in rejected if r["identity"] == "reports/2019-02-21.csv"]
    assert [r["state"] for r in mine] == ["resolved"]
    assert "resolved reports/2019-02-21.csv" in cli("quarantine", "--limit", "0", env=env).stdout


def test_quarantine_filters_everything_it_shows_and_exports(wh):
    root, env = wh
    out = cli("quarantine", "--source", "report", env=env)
    assert out.returncode == 1 and "the sources are reports, dispatches, outreach, ambassadors" in out.stderr
    good = "4100-77777-00002-19;22-02-2019 10:00:00;;370;Særlov;Knivloven;22-02-2019 10:00:00;;"
    with gzip.open(root / "landing" / "reports" / "2019-02-22.csv.gz", "wt", encoding="utf-8") as fh:
        fh.write(f"{header(root, 'reports')}\n{good}\n{good.replace('-00002-', '-00003-').replace(';370;', ';336;')}\n")
    assert cli("refresh", env=env).returncode == 0
    for name in ("reports/2019-02-22.csv", "reports/2019-02-22.csv.gz"):  # its identity, or the delivered name
        rows = json.loads(cli("quarantine", "--file", name, "--format", "json", env=env).stdout)
        assert [(r["file"], r["line"], r["rules"]) for r in rows["rows"]] == \
            [("reports/2019-02-22.csv.gz", 3, "kommunekode_in_district")]
        assert rows["rejected_files"] == []
    csv_out = cli("quarantine", "--source", "dispatches", "--format", "csv", env=env).stdout.splitlines()
    assert csv_out[0].startswith("status,source,file,line") and all(",dispatches," in line for line in csv_out[1:])
    table = cli("quarantine", "--source", "reports", "--limit", "5", env=env).stdout
    assert "dispatches" not in table and "outreach/" not in table
    tables = [line for line in table.splitlines() if line[:1] in "┏┃┡│└"]
    assert tables and max(len(line) for line in tables) <= 100  # the tables fit the terminal (COLUMNS=100)
    assert "rejected file reports/2019-07-01_udtraek_v2.csv: wrong columns" in table  # one line, not wrapped
    assert cli("quarantine", "--file", "reports/nope.csv", env=env).returncode == 1


def test_diff_and_releases_read_like_a_report(wh):
    root, env = wh
    path = root / "landing" / "reports" / "2019-01-05.csv"
    path.write_text("\n".join(path.read_text(encoding="utf-8").split("\n")[:100]) + "\n", encoding="utf-8")
    assert cli("refresh", env=env).returncode == 0
    a, b = (r["release_id"] for r in load_manifest(root / "warehouse")["releases"])
    out = cli("diff", a, b, "--limit", "50", env=env)
    assert out.returncode == 0 and "WARNING" not in out.stderr
    assert "month 2019-01-01, municipality_code 370 Næstved, law_area" in out.stdout
    assert re.search(r"kpi_year_summary changed: year 2019: reports \d{2},\d{3} -> \d{2},\d{3}", out.stdout)
    backwards = cli("diff", b, a, env=env)
    assert f"WARNING: {b} is newer than {a}" in backwards.stderr
    listing = cli("releases", env=dict(env, COLUMNS="250")).stdout
    assert f"patch of {a} (1 changed file)" in listing and "full" in listing


def test_mistakes_get_one_line_that_says_what_to_do(wh, tmp_path):
    root, env = wh
    cases = [
        (["refresh", "--landing", str(root / "landing" / "reports" / "2019-01-05.csv")], "is a file, not a folder"),
        (["report", "--year", "1999"], "no data for 1999"),
        (["sample", "--year", "1800", "--out", str(tmp_path / "s")], "the sample covers the years 1990 to"),
        (["verify", "--warehouse", str(tmp_path)], "no warehouse at"),
        (["quarantine", "--state", str(tmp_path)], "no state at"),
        (["unpin", "--warehouse", str(tmp_path)], "no warehouse at"),
        (["refresh", "--fail-on-rejectd"], "No such option: --fail-on-rejectd"),  # 1, never 2 (data quality)
        (["quarantine", "--limit", "-1"], "Invalid value for '--limit'"),
    ]
    for args, expected in cases:
        out = cli(*args, env=env)
        assert out.returncode == 1, args
        assert out.stderr.count("\n") == 1 and expected in out.stderr, (args, out.stderr)
    assert "<bool>" not in cli("refresh", "--help", env=env).stdout
