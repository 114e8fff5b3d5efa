"""Publishing with real processes: readers during a swap, crashes, rollback, retention, audit."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from flows.release.store import load_manifest
from tests.conftest import cli, copy_folders

pytestmark = pytest.mark.slow


def env_for(root: Path, prefect_env: dict) -> dict:
    return dict(prefect_env, POLITIKPI_LANDING=str(root / "landing"), POLITIKPI_STATE=str(root / "state"),
                POLITIKPI_WAREHOUSE=str(root / "warehouse"))


@pytest.fixture(scope="module")
def published_once(tmp_path_factory, small_landing, prefect_env) -> Path:
    """One refresh through the CLI; tests get a copy of its folders."""
    root = tmp_path_factory.mktemp("published")
    shutil.copytree(small_landing, root / "landing")
    out = cli("refresh", env=env_for(root, prefect_env))
    assert out.returncode == 0, out.stderr
    return root


@pytest.fixture()
def wh(tmp_path, published_once, prefect_env):
    """A landing copy, state and a warehouse with one published release (hard links kept)."""
    copy_folders(published_once, tmp_path)
    return tmp_path, env_for(tmp_path, prefect_env)


def current_id(warehouse: Path, name: str = "politikpi.duckdb") -> str:
    with duckdb.connect(str(warehouse / name), read_only=True) as con:
        return con.execute("select release_id from _release").fetchone()[0]


def kpis(warehouse: Path) -> dict:
    with duckdb.connect(str(warehouse / "politikpi.duckdb"), read_only=True) as con:
        return {t: sorted(con.execute(f"select * from {t}").fetchall(), key=repr)
                for t in ("kpi_reports", "kpi_callouts", "kpi_response_times", "kpi_outreach", "kpi_year_summary")}


@pytest.mark.parametrize("point", ["before_move", "after_move", "after_manifest", "after_swap"])
def test_refresh_killed_while_publishing_leaves_a_complete_release(wh, point):
    root, env = wh
    warehouse = root / "warehouse"
    before = kpis(warehouse)  # a full refresh of the same state: a new release with the same KPIs
    out = cli("refresh", "--full-refresh", env=dict(env, POLITIKPI_FAULT=f"publish:{point}:kill"))
    assert out.returncode == -9
    manifest = load_manifest(warehouse)
    assert current_id(warehouse) in {r["release_id"] for r in manifest["releases"]}
    assert kpis(warehouse) == before
    verified = cli("verify", env=env)
    assert verified.returncode == 0, verified.stderr
    assert current_id(warehouse) == load_manifest(warehouse)["current"]
    assert cli("refresh", env=env).returncode == 0
    assert kpis(warehouse) == before


def test_rollback_retention_and_release_listing(wh):
    root, env = wh
    warehouse = root / "warehouse"
    env = dict(env, POLITIKPI_KEEP_RELEASES="2")
    for day in ("05", "06"):  # two re-deliveries, two new releases
        path = root / "landing" / "reports" / f"2019-01-{day}.csv"
        path.write_text("\n".join(path.read_text(encoding="utf-8").split("\n")[:100]) + "\n", encoding="utf-8")
        assert cli("refresh", env=env).returncode == 0
    manifest = load_manifest(warehouse)
    ids = [r["release_id"] for r in manifest["releases"]]
    files = sorted(p.name for p in (warehouse / "releases").glob("*.duckdb"))
    assert len(ids) == 2 and files == sorted([f"{i}.duckdb" for i in ids] + [f"{i}.kpi.duckdb" for i in ids])
    assert all(stat.S_IMODE(os.stat(warehouse / r[key]).st_mode) == 0o444
               for r in manifest["releases"] for key in ("file", "kpi_file"))
    out = cli("rollback", ids[0], env=env)
    assert out.returncode == 0, out.stderr
    assert current_id(warehouse) == ids[0] == load_manifest(warehouse)["current"]
    assert current_id(warehouse, "politikpi_kpi.duckdb") == ids[0]  # the KPI file rolled back with it
    listing = cli("releases", env=dict(env, COLUMNS="250")).stdout.splitlines()
    rows = {rid: next(line for line in listing if rid in line) for rid in ids}
    assert "* pinned" in rows[ids[0]] and "*" not in rows[ids[1]]
    assert cli("unpin", env=env).returncode == 0
    path = root / "landing" / "reports" / "2019-01-07.csv"
    path.write_text("\n".join(path.read_text(encoding="utf-8").split("\n")[:100]) + "\n", encoding="utf-8")
    assert cli("refresh", env=dict(env, POLITIKPI_KEEP_RELEASES="1")).returncode == 0
    assert len(load_manifest(warehouse)["releases"]) == 1  # the current one is always kept


@pytest.mark.parametrize("bad", ["../../etc/passwd", "/etc/passwd", "x'; drop table t; --",
                                 "20191231T020000Z-0123456789ab"])
def test_rollback_refuses_what_is_not_a_listed_release(wh, bad):
    root, env = wh
    before = current_id(root / "warehouse")
    out = cli("rollback", bad, env=env)
    assert out.returncode == 1 and ("not a release id" in out.stderr or "not in" in out.stderr)
    assert current_id(root / "warehouse") == before


def test_audit_failure_blocks_publishing_and_names_the_expectation(wh):
    root, env = wh
    before = current_id(root / "warehouse")
    header = (root / "landing" / "reports" / "2019-01-05.csv").read_text(encoding="utf-8").split("\n")[0]
    (root / "landing" / "reports" / "2019-03-05.csv").write_text(
        header + "\n4100-77777-00001-19;05-03-2019 10:00:00;;370;Særlov;Knivloven;05-03-2019 10:00:00;;\n",
        encoding="utf-8")
    out = cli("refresh", env=env)
    assert out.returncode == 2
    assert "coverage" in out.stderr and "missing_months" in out.stderr and "Data Docs" in out.stderr
    assert current_id(root / "warehouse") == before


def test_diff_shows_restated_history_and_changed_inputs(wh):
    root, env = wh
    a = current_id(root / "warehouse")
    path = root / "landing" / "reports" / "2019-01-05.csv"
    lines = path.read_text(encoding="utf-8").split("\n")
    path.write_text("\n".join(lines[:100]) + "\n", encoding="utf-8")  # a re-delivery with fewer reports
    assert cli("refresh", env=env).returncode == 0
    b = current_id(root / "warehouse")
    out = cli("diff", a, b, "--json", env=env)
    result = json.loads(out.stdout)
    assert result["inputs_changed"] == ["reports/2019-01-05.csv"] and not result["code_changed"]
    assert result["tables"]["kpi_reports"]["changed"] > 0
    assert result["tables"]["kpi_callouts"] == {"added": 0, "removed": 0, "changed": 0, "null_means": "all",
                                                "examples": []}
    assert result["restated"] == []  # January is the open month of A (data through mid-January): no revision
    entry = next(r for r in load_manifest(root / "warehouse")["releases"] if r["release_id"] == b)
    assert entry["build"] == {"kind": "patch", "base": a, "changed_files": 1}
    patched = kpis(root / "warehouse")
    out = cli("refresh", "--full-refresh", env=env)  # the same state, every table built anew
    assert out.returncode == 0, out.stderr
    manifest = load_manifest(root / "warehouse")
    assert next(r for r in manifest["releases"] if r["release_id"] == manifest["current"])["build"]["kind"] == "full"
    assert kpis(root / "warehouse") == patched


def test_oldest_duckdb_command_line_opens_a_release_and_the_kpi_file_while_one_is_published(wh, tmp_path):
    """Both a release built whole and one patched from it (a copy written by DuckDB 2.0), and the KPI
    file's stable path, read by DuckDB 1.4's command line over and over while the patch is published."""
    root, env = wh
    shipped = Path(sys.prefix) / "bin" / "duckdb"
    if not shipped.exists():
        pytest.skip("duckdb-cli (dev extra) is not installed")
    binary = tmp_path / "duckdb-1.4"
    shutil.copy(shipped, binary)  # the wheel installs it without the executable bit
    binary.chmod(0o755)
    assert subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.startswith("v1.4")
    kpi_file = root / "warehouse" / "politikpi_kpi.duckdb"
    tables = "select string_agg(table_name, '|' order by table_name) from duckdb_tables()"
    read = [binary, "-readonly", "-csv", "-noheader", str(kpi_file),
            f"select (select release_id from _release), ({tables}), (select count(*) > 0 from kpi_reports)"]
    path = root / "landing" / "reports" / "2019-01-05.csv"
    path.write_text(path.read_text(encoding="utf-8")[:5000].rsplit("\n", 1)[0] + "\n", encoding="utf-8")
    refresh = subprocess.Popen([sys.executable, "-m", "flows", "refresh"], env=env, cwd=root,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    while refresh.poll() is None or not seen:
        out = subprocess.run(read, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        seen.append(out.stdout.strip())
    assert refresh.returncode == 0, refresh.stderr.read()
    manifest = load_manifest(root / "warehouse")
    assert [r["build"]["kind"] for r in manifest["releases"]] == ["full", "patch"]
    seen.append(subprocess.run(read, capture_output=True, text=True).stdout.strip())
    ids = [r["release_id"] for r in manifest["releases"]]
    assert {line.split(",")[0] for line in seen} <= set(ids) and seen[-1].split(",")[0] == ids[-1], seen
    listed = seen[-1].split(",")[1].split("|")
    assert listed[0] == "_release" and listed[1] == "dim_municipality" and all(t.startswith("kpi_") for t in listed[2:])
    assert all(line.endswith(",true") for line in seen)
    for release in manifest["releases"]:
        for file in (release["file"], release["kpi_file"]):
            out = subprocess.run([binary, "-readonly", "-csv", str(root / "warehouse" / file),
                                  "select count(*) > 0 from kpi_reports"], capture_output=True, text=True)
            assert out.returncode == 0, out.stderr
            assert out.stdout.strip().endswith("true")


def test_second_refresh_refuses_while_the_state_is_locked(wh):
    from flows.ingest.state import state_lock

    root, env = wh
    with state_lock(root / "state"):
        out = cli("refresh", env=env)
    assert out.returncode == 3 and "another politikpi process holds" in out.stderr


def test_export_round_trips_every_kpi_table_through_xlsx_parquet_and_csv(wh, tmp_path):
    """Values read back from the workbook (openpyxl), the Parquet files and the CSV files (read with the
    tables' own column types) equal the release's KPI file: the same rows both ways (EXCEPT ALL) and the
    same number of rows, a file per table and no other."""
    from openpyxl import load_workbook

    root, env = wh
    warehouse = root / "warehouse"
    assert cli("export", "--out", tmp_path / "kpi.xlsx", env=env).returncode == 0
    assert cli("export", "--format", "parquet", "--out", tmp_path / "pq", env=env).returncode == 0
    out = cli("export", "--format", "csv", env=env)
    assert out.returncode == 0 and "OK: wrote" in out.stdout, out.stderr
    book = load_workbook(tmp_path / "kpi.xlsx", read_only=True)
    with duckdb.connect(str(warehouse / "politikpi_kpi.duckdb"), read_only=True) as con:
        tables = [r[0] for r in con.execute("select table_name from duckdb_tables() order by 1").fetchall()]
        assert book.sheetnames == ["README", *tables] and "kpi_reports" in tables and "fct_reports" not in tables
        described = {(r[0], r[1]) for r in book["README"].iter_rows(min_row=2, values_only=True)}
        rows_of = {}
        for table in tables:
            cur = con.execute(f'select * from "{table}"')
            header, rows = [d[0] for d in cur.description], cur.fetchall()
            rows_of[table] = rows
            assert {(table, c) for c in header} <= described
            sheet = list(book[table].iter_rows(values_only=True))
            assert list(sheet[0]) == header and len(sheet) - 1 == len(rows)
            for mine, theirs in zip(rows, sheet[1:], strict=True):
                theirs = (*theirs, *[None] * (len(header) - len(theirs)))  # empty trailing cells are not stored
                for a, b in zip(mine, theirs, strict=True):
                    if isinstance(a, dt.datetime):
                        a = a.astimezone(dt.UTC).replace(tzinfo=None)
                    elif isinstance(a, dt.date):
                        a = dt.datetime(a.year, a.month, a.day)  # Excel holds dates as date-times
                    if isinstance(a, float):  # a workbook holds a double to 16 significant digits
                        assert b == pytest.approx(a, rel=1e-15, abs=0), (table, header, mine, theirs)
                    else:
                        assert a == b, (table, header, mine, theirs)
        current = load_manifest(warehouse)["current"]
        csv_dir = warehouse / "exports" / f"{current}.csv"
        for folder, suffix in ((tmp_path / "pq", "parquet"), (csv_dir, "csv")):
            expected = sorted([f"{t}.{suffix}" for t in tables] + ["columns.csv"])
            assert sorted(p.name for p in folder.iterdir()) == expected
        for table in tables:
            columns = con.execute("select column_name, data_type from duckdb_columns() where table_name = ? "
                                  "order by column_index", [table]).fetchall()
            typed = "{" + ", ".join(f"'{c}': '{t}'" for c, t in columns) + "}"
            for name, read in (("parquet", f"read_parquet('{tmp_path / 'pq' / table}.parquet')"),
                               ("csv", f"read_csv('{csv_dir / table}.csv', header = true, auto_detect = false, "
                                       f"delim = ',', quote = '\"', escape = '\"', columns = {typed})")):
                exported = con.execute(f"select count(*) from {read}").fetchone()[0]
                assert exported == len(rows_of[table]), (name, table)  # every row, no row twice
                for a, b in ((f'"{table}"', read), (read, f'"{table}"')):  # neither holds a row the other lacks
                    assert con.execute(f"select count(*) from (from {a} except all from {b})").fetchone()[0] == 0, (
                        name, table, a, b)
        assert sum(len(r) for r in rows_of.values()) > 0 and len(rows_of["kpi_reports"]) > 0
    bad = cli("export", "--format", "pdf", env=env)
    assert bad.returncode == 1 and "--format must be one of xlsx, parquet, csv" in bad.stderr
