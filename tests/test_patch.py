"""A nightly release patched from the current one equals a release built whole from the same state."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import duckdb
import pytest

from flows.ingest import extract, state
from flows.ingest.load import load_results
from flows.ingest.sources import SOURCES
from flows.transform import patch, runner, transform
from sample import SampleSpec, write_sample


def ingest(landing: Path, state_dir: Path, work: Path) -> None:
    todo, _, hashes = extract.changed_files(landing, state_dir)
    results = []
    for name in SOURCES:
        results += extract.process_files([f for f in todo if f.source == name], landing, state_dir, work, hashes)
    with state.connect(state_dir) as con:
        load_results(con, results, work, "test", [])


def held(state_dir: Path) -> dict[str, str]:
    with state.connect(state_dir, read_only=True) as con:
        return dict(con.execute("select identity, sha256 from files where status = 'ingested'").fetchall())


def build(state_dir: Path, path: Path, base: Path | None = None, changed: list[str] | None = None) -> list[str]:
    con, published = transform.build_release(state_dir, path, "v1.1.0", base=base, changed=changed)
    transform.close_build(con)
    return published


def differences(a: Path, b: Path, tables: list[str]) -> dict[str, tuple[int, int, int]]:
    """Per table: (rows, rows only in a, rows only in b) — as multisets."""
    con = duckdb.connect()
    con.execute(f"attach '{a}' as a (read_only)")
    con.execute(f"attach '{b}' as b (read_only)")
    out = {}
    for t in tables:
        only_a = con.execute(f"select count(*) from (from a.{t} except all from b.{t})").fetchone()[0]
        only_b = con.execute(f"select count(*) from (from b.{t} except all from a.{t})").fetchone()[0]
        out[t] = (con.execute(f"select count(*) from a.{t}").fetchone()[0], only_a, only_b)
    return out


def redeliver_with_corrections(path: Path) -> None:
    """The same file again: two reports moved to another municipality (later change time), one
    withdrawn (its line dropped), i.e. history restated in an earlier month."""
    raw = path.read_bytes()
    text = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode("utf-8-sig")
    lines = text.split("\n")
    header, rows = lines[0], [line for line in lines[1:] if line.count(";") == 8 and '"' not in line]
    fields = [r.split(";") for r in rows[:3]]
    for f in fields[:2]:
        f[3] = "390" if f[3] != "390" else "370"
        f[6] = "31-01-2019 23:00:00"
    kept = [";".join(f) for f in fields[:2]] + rows[3:]
    path.write_bytes(("\n".join([header, *kept]) + "\n").encode("utf-8"))


@pytest.fixture(scope="module")
def states(tmp_path_factory, small_landing):
    """A state after ten days, then the same state after a delivery touching every kind of change."""
    root = tmp_path_factory.mktemp("patch")
    landing = root / "landing"
    for folder in SOURCES:
        (landing / folder).mkdir(parents=True)
    first = [p for p in small_landing.rglob("*") if p.is_file()
             and (p.parent.name not in ("reports", "dispatches") or p.name[:10] <= "2019-01-10")
             and "eftersending" not in p.name and "udtraek" not in p.name and "12-31" not in p.name]
    for p in first:
        shutil.copy2(p, landing / p.relative_to(small_landing))
    write_sample(root / "y2018", SampleSpec(years=(2018,), days=2))  # a year no later change touches
    for folder in ("reports", "dispatches"):
        for p in (root / "y2018" / folder).glob("2018-01-0*"):
            shutil.copy2(p, landing / folder / p.name)
    ingest(landing, root / "state", root / "work")
    before = held(root / "state")
    tables = build(root / "state", root / "r1.duckdb")
    # Later days, late corrections (eftersending, udtraek), the second roster, a re-delivery that
    # restates January, and a new year.
    for p in small_landing.rglob("*"):
        if p.is_file() and not (landing / p.relative_to(small_landing)).exists():
            shutil.copy2(p, landing / p.relative_to(small_landing))
    redeliver = landing / "reports" / "2019-01-02.csv"
    redeliver_with_corrections(redeliver)
    write_sample(root / "y2020", SampleSpec(years=(2020,), days=2))
    for folder in ("reports", "dispatches"):
        for p in (root / "y2020" / folder).glob("2020-01-0*"):
            shutil.copy2(p, landing / folder / p.name)
    ingest(landing, root / "state", root / "work")
    after = held(root / "state")
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    return root, tables, changed


def test_patched_release_equals_a_full_build(states):
    root, tables, changed = states
    assert "reports/2019-01-02.csv" in changed and any(c.startswith("reports/2020") for c in changed)
    build(root / "state", root / "full.duckdb")
    build(root / "state", root / "patched.duckdb", base=root / "r1.duckdb", changed=changed)
    diff = differences(root / "full.duckdb", root / "patched.duckdb", tables)
    assert {t: d for t, d in diff.items() if d[1] or d[2]} == {}
    assert diff["fct_reports"][0] > 0 and diff["kpi_year_summary"][0] == 3  # 2018, 2019 and the new 2020
    with duckdb.connect(str(root / "r1.duckdb"), read_only=True) as con:  # the base is left as it was
        assert con.execute("select max(year) from kpi_year_summary").fetchone()[0] == 2019


def test_patch_with_nothing_changed_is_the_base(states, tmp_path):
    root, tables, _ = states
    shutil.copy(root / "r1.duckdb", tmp_path / "base.duckdb")
    # the state holds more now; with no changed files named, the facts stay as the base has them
    build(root / "state", tmp_path / "same.duckdb", base=tmp_path / "base.duckdb", changed=[])
    facts = ["fct_reports", "fct_callouts"]
    diff = differences(tmp_path / "base.duckdb", tmp_path / "same.duckdb", facts)
    assert all(d[1] == d[2] == 0 for d in diff.values())


def test_a_model_reading_a_partly_patched_input_is_refused(tmp_path):
    """A published model that reads a fact's staging model would see only the touched keys."""
    sql = tmp_path / "sql"
    (sql / "staging").mkdir(parents=True)
    (sql / "marts").mkdir()
    (sql / "staging" / "stg_x.sql").write_text("select k, file_identity from state.src")
    (sql / "marts" / "fct_x.sql").write_text("select k, file_identity, 2019 as year from stg_x")
    (sql / "marts" / "summary_x.sql").write_text("select count(*) as n from stg_x")
    (sql / "marts" / "fct_x.toml").write_text(
        'description = "x"\n[incremental]\nunique_key = "k"\nsource = "src"\nsource_key = "k"\nyear = "year"\n')
    con = duckdb.connect()
    con.execute(f"attach '{tmp_path / 'state.duckdb'}' as state_db")
    con.execute("create table state_db.src as select 'a' as k, 'f1' as file_identity")
    con.execute(f"attach '{tmp_path / 'release.duckdb'}' as release")
    con.execute("use release")
    con.execute("create table fct_x as select 'a' as k, 'f1' as file_identity, 2019 as year")
    con.execute("create table summary_x as select 1 as n")
    with pytest.raises(runner.ModelError, match="summary_x.sql: reads stg_x"):
        patch.patch(con, ["f1"], root=sql)

