"""SQL models on a handful of hand-written staged rows: one behaviour per test."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from flows.ingest import state
from flows.transform import runner, transform


def build(tmp_path: Path, reports=(), callouts=(), outreach=(), ambassadors=(), files=()):
    """A state holding exactly these staged rows, transformed into a release; returns a connection."""
    st = tmp_path / "state"
    with state.connect(st) as con:
        for table, rows in (("staged_reports", reports), ("staged_dispatches", callouts),
                            ("staged_outreach", outreach), ("staged_ambassadors", ambassadors)):
            for row in rows:
                cols = ", ".join(row)
                con.execute(f"insert into {table} ({cols}) values ({', '.join('?' for _ in row)})", list(row.values()))
        for ident, source, *status in files:
            con.execute("insert into files (identity, source, status) values (?, ?, ?)",
                        [ident, source, status[0] if status else "ingested"])
    con, _ = transform.build_release(st, tmp_path / "release.duckdb", "v1.1.0")
    return con


def report(jnr, at, code=370, law="Straffelov", changed=None, file="reports/a.csv", line=2):
    return {"file_identity": file, "line": line, "journalnr": jnr, "anmeldt_tid": at, "kommunekode": code,
            "lovomraade": law, "overtraedelse": "Tyveri", "sidst_aendret": changed or at}


def callout(hid, received, seconds, code=370, cause="husspektakel", measured=True, cancelled=False,
            priority=1, changed="2019-06-01T00:00:00Z", file="dispatches/a.jsonl"):
    return {"file_identity": file, "line": 1, "haendelse_id": hid, "modtaget": received,
            "fremme": None if seconds is None else f"epoch_placeholder:{seconds}", "prioritet": priority,
            "aarsag": cause, "responstid_maalt": measured, "kommunekode": code, "aflyst": cancelled,
            "sidst_aendret": changed}


def build_callouts(tmp_path, rows):
    """Callouts with fremme given as seconds after modtaget."""
    import datetime as dt

    fixed = []
    for row in rows:
        row = dict(row)
        received = dt.datetime.fromisoformat(row["modtaget"].replace("Z", "+00:00"))
        if row["fremme"]:
            row["fremme"] = received + dt.timedelta(seconds=int(row["fremme"].split(":")[1]))
        row["modtaget"] = received
        fixed.append(row)
    return build(tmp_path, callouts=fixed)


def test_runner_orders_models_by_what_they_read():
    names = [m.name for m in runner.order(runner.discover())]
    assert names.index("stg_cases__reports") < names.index("fct_reports") < names.index("kpi_reports")
    assert names.index("kpi_response_times") < names.index("kpi_response_time_spread")


def test_runner_refuses_cycles_and_duplicate_names(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.sql").write_text("select * from y")
    (tmp_path / "y.sql").write_text("select * from x")
    with pytest.raises(runner.ModelError, match="cycle"):
        runner.order(runner.discover(tmp_path))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "y.sql").write_text("select 1")
    with pytest.raises(runner.ModelError, match="duplicate model name 'y'"):
        runner.discover(tmp_path)


def test_runner_stops_with_the_file_path_on_error(tmp_path):
    import duckdb

    (tmp_path / "bad.sql").write_text("select no_such_column from (select 1 as a)")
    with pytest.raises(runner.ModelError, match="bad.sql"):
        runner.run(duckdb.connect(), runner.order(runner.discover(tmp_path)))


def test_report_month_is_local_time(tmp_path):
    con = build(tmp_path, reports=[report("J1", "2019-01-31T23:30:00Z")])  # 00:30 on 1 Feb in Denmark
    assert str(con.execute("select month from kpi_reports").fetchone()[0]) == "2019-02-01"


def test_latest_valid_correction_wins_whatever_the_file_order(tmp_path):
    con = build(tmp_path, reports=[
        report("J1", "2019-03-01T10:00:00Z", law="Straffelov", changed="2019-03-05T10:00:00Z", file="reports/z.csv"),
        report("J1", "2019-03-01T10:00:00Z", law="Særlov", changed="2019-03-09T10:00:00Z", file="reports/a.csv"),
        report("J1", "2019-03-01T10:00:00Z", law="Særlov", changed="2019-03-09T10:00:00Z", file="reports/a.csv"),
    ])
    assert con.sql("select law_area, reports from kpi_reports").fetchall() == [("Særlov", 1)]


def test_correction_tie_goes_to_the_file_sorting_last(tmp_path):
    con = build(tmp_path, reports=[
        report("J1", "2019-03-01T10:00:00Z", law="Straffelov", file="reports/b.csv"),
        report("J1", "2019-03-01T10:00:00Z", law="Særlov", file="reports/a.csv"),
    ])
    assert con.sql("select law_area from fct_reports").fetchall() == [("Straffelov",)]


def test_a_tie_within_one_file_goes_to_its_later_line(tmp_path):
    """Same id, same sidst_aendret, same file: SPEC 2.5 leaves it open; the later line wins (as a
    source system appends a correction), for reports and call-outs alike."""
    con = build(tmp_path, reports=[
        report("J1", "2019-03-01T10:00:00Z", law="Særlov", line=2),
        report("J1", "2019-03-01T10:00:00Z", law="Straffelov", line=7),
        report("J1", "2019-03-01T10:00:00Z", law="Færdselslov", line=4),
    ])
    assert con.sql("select law_area, source_line from fct_reports").fetchall() == [("Straffelov", 7)]
    rows = [dict(callout("H1", "2019-03-01T10:00:00Z", 600, code=code), line=line)
            for code, line in ((340, 3), (390, 9), (320, 5))]
    con = build_callouts(tmp_path / "callouts", rows)
    assert con.sql("select municipality_code, source_line from fct_callouts").fetchall() == [(390, 9)]


def test_a_callouts_response_time_is_kept_in_seconds_and_minutes(tmp_path):
    con = build_callouts(tmp_path, [callout("H1", "2019-03-01T10:00:00Z", 611)])
    assert con.sql("select response_seconds, response_min from fct_callouts").fetchall() == [(611, 611 / 60)]


def test_reports_per_1000_uses_the_nearest_population_year(tmp_path):
    con = build(tmp_path, reports=[report("J1", "2019-03-01T10:00:00Z", code=340)])
    per_1000, year = con.execute("select reports_per_1000, population_year from kpi_reports").fetchone()
    assert year == 2021 and per_1000 == pytest.approx(1000 / 29_993)


def test_response_quantiles_match_a_hand_computation(tmp_path):
    seconds = [300, 420, 600, 660, 900, 1500]
    rows = [callout(f"H{i}", "2019-05-10T12:00:00Z", s) for i, s in enumerate(seconds)]
    con = build_callouts(tmp_path, rows)
    got = con.execute("""select responses, mean_min, median_min, p90_min, max_min, low_sample from kpi_response_times
                     where period_grain = 'month' and municipality_code = 370 and cause = 'husspektakel'""").fetchone()
    ordered = sorted(seconds)
    rank = 0.9 * (len(ordered) - 1)
    p90 = ordered[int(rank)] + (rank - int(rank)) * (ordered[int(rank) + 1] - ordered[int(rank)])
    assert got == (6, pytest.approx(statistics.mean(seconds) / 60), pytest.approx(statistics.median(seconds) / 60),
                   pytest.approx(p90 / 60), 25.0, True)


def test_cancelled_and_unmeasured_callouts_have_no_response_time_but_count(tmp_path):
    con = build_callouts(tmp_path, [
        callout("H1", "2019-05-10T12:00:00Z", 600),
        callout("H2", "2019-05-10T12:00:00Z", 60, cancelled=True),
        callout("H3", "2019-05-10T12:00:00Z", 60, measured=False, cause="brand"),
        callout("H4", "2019-05-10T12:00:00Z", None),
    ])
    assert con.execute("select sum(callouts) from kpi_callouts").fetchone()[0] == 4
    assert con.execute("select incident_id, response_seconds, response_min from fct_callouts order by all").fetchall() \
        == [("H1", 600, 10.0), ("H2", None, None), ("H3", None, None), ("H4", None, None)]
    assert con.execute("""select responses, max_min from kpi_response_times where period_grain = 'year'
                      and municipality_code is null and cause is null""").fetchone() == (1, 10.0)


def test_rollups_cover_all_four_combinations_and_reconcile(tmp_path):
    con = build_callouts(tmp_path, [
        callout("H1", "2019-05-10T12:00:00Z", 600, code=370),
        callout("H2", "2019-05-10T12:00:00Z", 900, code=360, cause="roeveri"),
    ])
    rows = con.execute("""select municipality_code, cause, responses from kpi_response_times
                      where period_grain = 'quarter' order by all""").fetchall()
    assert rows == [(360, "roeveri", 1), (360, None, 1), (370, "husspektakel", 1), (370, None, 1),
                    (None, "husspektakel", 1), (None, "roeveri", 1), (None, None, 2)]


def test_spread_names_longest_and_shortest_among_municipalities_with_20_responses(tmp_path):
    rows = [callout(f"A{i}", "2019-05-10T12:00:00Z", 600) for i in range(20)]
    rows += [callout(f"B{i}", "2019-05-10T12:00:00Z", 1200, code=360) for i in range(20)]
    rows += [callout(f"C{i}", "2019-05-10T12:00:00Z", 3000, code=340) for i in range(19)]  # too few
    con = build_callouts(tmp_path, rows)
    got = con.execute("""select longest_municipality_code, shortest_municipality_code, spread_min
                     from kpi_response_time_spread where period_grain = 'year' and cause is null""").fetchone()
    assert got == (360, 370, 10.0)


def test_ambassadors_active_across_a_year_boundary_count_in_both_years(tmp_path):
    con = build(tmp_path,
                reports=[report("J1", "2018-06-01T10:00:00Z"), report("J2", "2019-06-01T10:00:00Z")],
                ambassadors=[
                    {"file_identity": "ambassadors/r2.csv", "line": 2, "ambassadoer_id": "A", "lokalomraade": "Bårse ",
                     "kommunekode": 390, "aktiv_fra": "2018-12-01", "aktiv_til": "2019-01-31"},
                    {"file_identity": "ambassadors/r2.csv", "line": 3, "ambassadoer_id": "B",
                     "lokalomraade": "Ba\u030arse", "kommunekode": 390, "aktiv_fra": "2019-02-01", "aktiv_til": None},
                    {"file_identity": "ambassadors/r1.csv", "line": 2, "ambassadoer_id": "OLD", "lokalomraade": "X",
                     "kommunekode": 390, "aktiv_fra": "2010-01-01", "aktiv_til": None},
                ],
                files=[("ambassadors/r1.csv", "ambassadors"), ("ambassadors/r2.csv", "ambassadors")])
    got = con.sql("""select year, ambassadors, local_areas from kpi_safety_ambassadors
                     where municipality_code is null order by year""").fetchall()
    assert got == [(2018, 1, 1), (2019, 2, 1)]  # the older roster is not in force; NFC + trim: one area


def test_an_ambassador_counts_in_a_year_from_its_last_day_and_not_after_the_year_it_ended(tmp_path):
    def ambassador(aid, start, end, line):
        return {"file_identity": "ambassadors/r.csv", "line": line, "ambassadoer_id": aid,
                "lokalomraade": f"Område {aid}", "kommunekode": 390, "aktiv_fra": start, "aktiv_til": end}

    con = build(tmp_path, reports=[report("J1", "2018-06-01T10:00:00Z"), report("J2", "2019-06-01T10:00:00Z")],
                ambassadors=[ambassador("C", "2017-01-01", "2018-06-30", 2),   # 2018 only
                             ambassador("E", "2018-12-31", None, 3),           # from 2018's last day on
                             ambassador("D", "2019-12-31", None, 4),           # 2019's last day
                             ambassador("F", "2017-01-01", "2019-01-01", 5)],  # to 2019's first day
                files=[("ambassadors/r.csv", "ambassadors")])
    got = con.sql("""select year, ambassadors, local_areas from kpi_safety_ambassadors
                     where municipality_code is null order by year""").fetchall()
    assert got == [(2018, 3, 3), (2019, 3, 3)]


def test_a_rejected_roster_file_is_never_the_roster_in_force_though_it_sorts_last(tmp_path):
    roster = [{"file_identity": "ambassadors/r1.csv", "line": 2, "ambassadoer_id": "A", "lokalomraade": "Bårse",
               "kommunekode": 390, "aktiv_fra": "2019-01-01", "aktiv_til": None}]  # r2 was rejected: no rows
    con = build(tmp_path, reports=[report("J1", "2019-06-01T10:00:00Z")], ambassadors=roster,
                files=[("ambassadors/r1.csv", "ambassadors"), ("ambassadors/r2.csv", "ambassadors", "rejected")])
    in_force = con.sql("select ambassador_id, file_identity from dim_ambassadors").fetchall()
    assert in_force == [("A", "ambassadors/r1.csv")]


def test_every_published_table_and_column_has_a_comment(tmp_path):
    con = build(tmp_path, reports=[report("J1", "2019-03-01T10:00:00Z")])
    missing = con.sql("""select table_name || '.' || column_name from duckdb_columns()
                         where database_name = 'release' and comment is null""").fetchall()
    tables = con.sql(
        "select table_name from duckdb_tables() where database_name = 'release' and comment is null").fetchall()
    assert missing == [] and tables == []
