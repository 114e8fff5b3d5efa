"""The restatement log (`kpi_revisions`, SPEC 4.1) through the real models: a release that changes a
closed month of the release it replaces logs each changed value; the open month logs nothing; the
next release carries the rows; the key is the compact JSON the contract names."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import polars as pl

from flows.ingest import state
from flows.transform import transform

CPH = dt.timezone(dt.timedelta(hours=1))


def stage(st: Path, reports: list[tuple[str, dt.datetime, int]], callouts: list[tuple[str, dt.datetime, int, int]],
          file: str) -> None:
    """Replace what `file` staged with these reports (journalnr, time, code) and measured call-outs
    (id, received, code, response seconds), as a re-delivered file does."""
    with state.connect(st) as con:
        for table in ("staged_reports", "staged_dispatches"):
            con.execute(f"delete from {table} where file_identity = ?", [file])
        con.register("r", pl.DataFrame(
            {"file_identity": file, "line": range(2, len(reports) + 2), "journalnr": [r[0] for r in reports],
             "anmeldt_tid": [r[1] for r in reports], "kommunekode": [r[2] for r in reports],
             "lovomraade": "Straffelov", "overtraedelse": "Tyveri", "sidst_aendret": [r[1] for r in reports]}))
        con.execute("insert into staged_reports by name select * from r")
        con.register("d", pl.DataFrame(
            {"file_identity": file, "line": range(2, len(callouts) + 2), "haendelse_id": [c[0] for c in callouts],
             "modtaget": [c[1] for c in callouts], "disponeret": [c[1] for c in callouts],
             "fremme": [c[1] + dt.timedelta(seconds=c[3]) for c in callouts], "prioritet": 1,
             "aarsag": "roeveri", "responstid_maalt": True, "kommunekode": [c[2] for c in callouts],
             "aflyst": False, "sidst_aendret": [c[1] for c in callouts]}))
        con.execute("insert into staged_dispatches by name select * from d")


def release(st: Path, path: Path, release_id: str, data_through: dt.date, previous: Path | None = None,
            previous_id: str | None = None) -> None:
    info = {"release_id": release_id, "previous_release_id": previous_id, "inputs_changed": True,
            "code_changed": False}
    con, _ = transform.build_release(st, path, "v1.1.0", previous=previous, info=info)
    transform.write_release_table(con, {
        "release_id": release_id, "created_at": dt.datetime.now(dt.UTC), "data_through": data_through,
        "code_version": "test", "flow_run_id": "test", "input_files": {}, "row_counts": {},
        "validation_summary": {}, "quarantine_summary": {}})
    transform.close_build(con)


def revisions(path: Path) -> list[dict]:
    with duckdb.connect(str(path), read_only=True) as con:
        cur = con.execute("select * from kpi_revisions order by release_id, table_name, key, column_name")
        return [dict(zip([d[0] for d in cur.description], row, strict=True)) for row in cur.fetchall()]


def test_a_restated_closed_month_is_logged_the_open_month_is_not_and_the_log_is_carried(tmp_path):
    st = tmp_path / "state"
    feb, mar = dt.datetime(2019, 2, 10, 12, tzinfo=CPH), dt.datetime(2019, 3, 10, 12, tzinfo=CPH)
    stage(st, [("J1", feb, 370), ("J2", feb, 370), ("J3", mar, 370)],
          [("H1", feb, 370, 600), ("H2", mar, 370, 600)], "reports/x.csv")
    release(st, tmp_path / "r1.duckdb", "R1", dt.date(2019, 3, 31))
    assert revisions(tmp_path / "r1.duckdb") == []  # the first release replaces nothing

    # The re-delivery moves J2 to Lolland (360) in February (closed: R1's data run through March),
    # adds a report in March (open) and restates H1's response time (closed) and H2's (open).
    stage(st, [("J1", feb, 370), ("J2", feb, 360), ("J3", mar, 370), ("J4", mar, 370)],
          [("H1", feb, 370, 900), ("H2", mar, 370, 1200)], "reports/x.csv")
    release(st, tmp_path / "r2.duckdb", "R2", dt.date(2019, 3, 31), tmp_path / "r1.duckdb", "R1")
    rows = revisions(tmp_path / "r2.duckdb")
    assert {r["release_id"] for r in rows} == {"R2"} and {r["previous_release_id"] for r in rows} == {"R1"}
    months = {json.loads(r["key"]).get("month") or json.loads(r["key"]).get("period_start") for r in rows}
    assert months == {"2019-02-01"}, rows  # nothing of the open month
    changed = {(r["table_name"], r["key"], r["column_name"]): (r["old_value"], r["new_value"]) for r in rows}
    assert changed[("kpi_reports", '{"month":"2019-02-01","municipality_code":370,"law_area":"Straffelov"}',
                    "reports")] == (2, 1)
    assert changed[("kpi_reports", '{"month":"2019-02-01","municipality_code":360,"law_area":"Straffelov"}',
                    "reports")] == (None, 1)  # a row that appeared
    rollup = '{"period_grain":"month","period_start":"2019-02-01","municipality_code":null,"cause":null}'
    assert changed[("kpi_response_times", rollup, "mean_min")] == (10.0, 15.0)
    assert ("kpi_response_times", rollup, "responses") not in changed  # 1 -> 1: not changed
    assert all(r["inputs_changed"] and not r["code_changed"] for r in rows)

    # A release that changes nothing carries the log as it is.
    release(st, tmp_path / "r3.duckdb", "R3", dt.date(2019, 3, 31), tmp_path / "r2.duckdb", "R2")
    assert revisions(tmp_path / "r3.duckdb") == rows


def test_a_release_from_before_the_log_existed_is_compared_all_the_same(tmp_path):
    """The release a build replaces may predate kpi_revisions (an older code version): empty stands in."""
    st = tmp_path / "state"
    feb = dt.datetime(2019, 2, 10, 12, tzinfo=CPH)
    stage(st, [("J1", feb, 370)], [("H1", feb, 370, 600)], "reports/x.csv")
    release(st, tmp_path / "r1.duckdb", "R1", dt.date(2019, 3, 31))
    with duckdb.connect(str(tmp_path / "r1.duckdb")) as con:
        con.execute("drop table kpi_revisions")
    stage(st, [("J1", feb, 330)], [("H1", feb, 370, 600)], "reports/x.csv")
    release(st, tmp_path / "r2.duckdb", "R2", dt.date(2019, 3, 31), tmp_path / "r1.duckdb", "R1")
    assert {(json.loads(r["key"])["municipality_code"], r["old_value"], r["new_value"])
            for r in revisions(tmp_path / "r2.duckdb") if r["table_name"] == "kpi_reports"} == {(370, 1, None),
                                                                                                 (330, None, 1)}
