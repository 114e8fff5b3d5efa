"""The statisticians' measures beyond the deck (SPEC 4.1), on hand-written state rows: one rule per test.

Thresholds and intervals in kpi_response_times, the rolling trend with its interval, year over year,
the district's goals, data quality per cell, and municipality names beside every code. Each expected
value is worked out here by hand (or in Python from the same seconds), never read back from SQL.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from pathlib import Path

import pytest

from flows.ingest import state
from flows.transform import transform

UTC = dt.UTC
NAMES = {320: "Faxe", 330: "Slagelse", 340: "Sorø", 360: "Lolland", 370: "Næstved", 376: "Guldborgsund",
         390: "Vordingborg"}
ACTIVITIES = ["mobil_politistation", "tryghedsopfoelgning", "borgerraadgiver", "sub_besoeg", "foredrag",
              "faerdselskontrol"]


def ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def callout(hid: str, received: str, seconds: int | None, code: int = 370, cause: str = "husspektakel",
            dispatched: int | None = None, file: str = "dispatches/a.jsonl", line: int = 1,
            changed: str = "2020-06-01T00:00:00Z") -> dict:
    """A staged call-out; fremme and disponeret given as seconds after modtaget."""
    at = ts(received)
    return {"file_identity": file, "line": line, "haendelse_id": hid, "modtaget": at,
            "disponeret": None if dispatched is None else at + dt.timedelta(seconds=dispatched),
            "fremme": None if seconds is None else at + dt.timedelta(seconds=seconds), "prioritet": 1,
            "aarsag": cause, "responstid_maalt": True, "kommunekode": code, "aflyst": False,
            "sidst_aendret": ts(changed)}


def report(jnr: str, at: str, code: int = 370, file: str = "reports/a.csv", line: int = 2,
           changed: str | None = None) -> dict:
    return {"file_identity": file, "line": line, "journalnr": jnr, "anmeldt_tid": ts(at), "kommunekode": code,
            "lovomraade": "Straffelov", "overtraedelse": "Tyveri", "sidst_aendret": ts(changed or at)}


def activity(day: str, code: int = 370, what: str = "foredrag", antal: int = 1, file: str = "outreach/a.csv",
             line: int = 2) -> dict:
    return {"file_identity": file, "line": line, "dato": dt.date.fromisoformat(day), "kommunekode": code,
            "aktivitet": what, "antal": antal}


def quarantined(source: str, file: str, raw: str | None, line: int = 9, kind: str = "row") -> dict:
    """A quarantined row: its raw values as JSON text (None for a broken line kept as length and hash)."""
    return {"source": source, "file_identity": file, "line": line, "kind": kind, "rules": "some_rule",
            "raw_values": raw, "length": None if raw else 120, "sha256": None if raw else "ab" * 32}


def build(tmp_path: Path, callouts=(), reports=(), outreach=(), quarantine=(), files=(), ambassadors=()):
    """A state holding exactly these rows, built into a release; returns an open connection."""
    st = tmp_path / "state"
    with state.connect(st) as con:
        for table, rows in (("staged_dispatches", callouts), ("staged_reports", reports),
                            ("staged_outreach", outreach), ("quarantine", quarantine),
                            ("staged_ambassadors", ambassadors)):
            for row in rows:
                con.execute(f"insert into {table} ({', '.join(row)}) values ({', '.join('?' for _ in row)})",
                            list(row.values()))
        for ident, source, status in files:
            con.execute("insert into files (identity, source, status) values (?, ?, ?)", [ident, source, status])
    con, _ = transform.build_release(st, tmp_path / "release.duckdb", "v1.1.0")
    return con


def minutes(seconds) -> float:
    return seconds / 60


# --- thresholds and intervals (kpi_response_times) ----------------------------------------------------------------

def test_shares_within_5_10_15_20_minutes_count_the_boundary_second(tmp_path):
    seconds = [299, 300, 301, 599, 600, 601, 899, 900, 901, 1199, 1200, 1201]
    con = build(tmp_path, callouts=[callout(f"H{i}", "2019-05-10T12:00:00Z", s) for i, s in enumerate(seconds)])
    got = con.execute("""select share_within_5_min, share_within_10_min, share_within_15_min, share_within_20_min
                         from kpi_response_times where period_grain = 'month' and municipality_code = 370
                         and cause = 'husspektakel'""").fetchone()
    assert got == (2 / 12, 5 / 12, 8 / 12, 11 / 12)  # 300, 600, 900 and 1,200 seconds are within


def test_dispatch_and_travel_medians_over_the_responses_with_a_dispatch_time(tmp_path):
    con = build(tmp_path, callouts=[
        callout("A", "2019-05-10T12:00:00Z", 600, dispatched=60),    # dispatch 60 s, travel 540 s
        callout("B", "2019-05-10T12:00:00Z", 900, dispatched=120),   # 120, 780
        callout("C", "2019-05-10T12:00:00Z", 1000, dispatched=300),  # 300, 700
        callout("D", "2019-05-10T12:00:00Z", 700, dispatched=None),  # no disponeret: not counted
        callout("E", "2019-05-10T12:00:00Z", 400, dispatched=500),   # disponeret after fremme: not counted
        callout("F", "2019-05-10T12:00:00Z", 480, code=340, dispatched=None),  # Sorø: none with a time
    ])
    rows = dict(((code, cause), rest) for code, cause, *rest in con.execute(
        """select municipality_code, cause, responses, with_dispatch_time, dispatch_median_min, travel_median_min
           from kpi_response_times where period_grain = 'year'""").fetchall())
    assert rows[(370, "husspektakel")] == [5, 3, minutes(120), minutes(700)]
    assert rows[(340, "husspektakel")] == [1, 0, None, None]  # NULL when with_dispatch_time is 0
    # the district: Sorø adds a response but no dispatch time, so the medians are those of Næstved
    assert rows[(None, None)] == [6, 3, minutes(120), minutes(700)]


def test_dispatch_and_travel_medians_are_continuous_over_an_even_count(tmp_path):
    con = build(tmp_path, callouts=[
        callout("A", "2019-05-10T12:00:00Z", 600, dispatched=60),    # dispatch 60 s, travel 540 s
        callout("B", "2019-05-10T12:00:00Z", 900, dispatched=120),   # 120, 780
        callout("C", "2019-05-10T12:00:00Z", 1000, dispatched=300),  # 300, 700
        callout("D", "2019-05-10T12:00:00Z", 1500, dispatched=500),  # 500, 1000
    ])
    got = con.execute("""select with_dispatch_time, dispatch_median_min, travel_median_min from kpi_response_times
                         where period_grain = 'month' and municipality_code is null and cause is null""").fetchone()
    # the mean of the middle two, not one of them: (120 + 300) / 2 and (700 + 780) / 2
    assert got == (4, minutes(210), minutes(740))


def test_year_over_year_response_median_and_p90_are_continuous_quantiles_of_the_year(tmp_path):
    con = build(tmp_path, callouts=[callout(f"H{i}", f"2019-0{1 + i}-10T12:00:00Z", s, code=340)
                                    for i, s in enumerate([300, 600, 900, 1800])] +
                                   [callout("L", "2018-12-31T23:30:00Z", 1200, code=340)])  # 2019 locally
    seconds = [300, 600, 900, 1200, 1800]
    for code in (340, None):
        assert yoy(con, "median_response_min")[(2019, code)][0] == minutes(900)
        # position 0.9 * 4 = 3.6: 1,200 + 0.6 * (1,800 - 1,200) = 1,560 s
        assert yoy(con, "p90_response_min")[(2019, code)][0] == pytest.approx(minutes(1560))
        assert yoy(con, "mean_response_min")[(2019, code)][0] == pytest.approx(minutes(sum(seconds) / 5))
    assert set(yoy(con, "median_response_min")) == {(2019, 340), (2019, None)}


def test_a_dispatch_at_the_moment_of_arrival_counts_with_zero_travel(tmp_path):
    con = build(tmp_path, callouts=[callout("A", "2019-05-10T12:00:00Z", 600, dispatched=600)])  # disponeret = fremme
    got = con.execute("""select with_dispatch_time, dispatch_median_min, travel_median_min from kpi_response_times
                         where period_grain = 'year' and municipality_code is null and cause is null""").fetchone()
    assert got == (1, 10.0, 0.0)


def test_low_sample_is_fewer_than_20_responses(tmp_path):
    con = build(tmp_path, callouts=[callout(f"A{i}", "2019-05-10T12:00:00Z", 600, code=340) for i in range(19)] +
                                   [callout(f"B{i}", "2019-05-10T12:00:00Z", 600, code=370) for i in range(20)])
    got = dict(con.execute("""select municipality_code, low_sample from kpi_response_times
                              where period_grain = 'year' and cause is null and municipality_code is not null"""
                           ).fetchall())
    assert got == {340: True, 370: False}


def test_response_times_keep_their_columns_in_order_and_add_the_new_ones_after(tmp_path):
    con = build(tmp_path, callouts=[callout("A", "2019-05-10T12:00:00Z", 600)])
    columns = [d[0] for d in con.execute("select * from kpi_response_times limit 0").description]
    assert columns == ["period_grain", "period_start", "municipality_code", "municipality", "cause", "responses",
                       "mean_min", "median_min", "p90_min", "max_min", "low_sample", "share_within_5_min",
                       "share_within_10_min", "share_within_15_min", "share_within_20_min", "with_dispatch_time",
                       "dispatch_median_min", "travel_median_min"]


# --- names beside codes ---------------------------------------------------------------------------------------------

def test_every_kpi_table_names_its_municipality_and_null_where_the_code_is_null(tmp_path):
    rows = [callout(f"A{i}", "2019-05-10T12:00:00Z", 600, code=340) for i in range(20)]
    rows += [callout(f"B{i}", "2019-05-10T12:00:00Z", 1200, code=360) for i in range(20)]
    con = build(tmp_path, callouts=rows, reports=[report("4100-00001-00001-19", "2019-05-10T10:00:00Z", code=320)],
                outreach=[activity("2019-05-10", code=390)],
                ambassadors=[{"file_identity": "ambassadors/r.csv", "line": 2, "ambassadoer_id": "A1",
                              "lokalomraade": "Bårse", "kommunekode": 390, "aktiv_fra": dt.date(2019, 1, 1),
                              "aktiv_til": None}],
                files=[("dispatches/a.jsonl", "dispatches", "ingested"), ("reports/a.csv", "reports", "ingested"),
                       ("outreach/a.csv", "outreach", "ingested"), ("ambassadors/r.csv", "ambassadors", "ingested")])
    tables = [t for (t,) in con.execute("""select distinct table_name from duckdb_columns()
                                          where database_name = 'release' and column_name = 'municipality_code'
                                          and table_name like 'kpi_%' order by 1""").fetchall()]
    assert {"kpi_reports", "kpi_callouts", "kpi_outreach", "kpi_response_times", "kpi_safety_ambassadors",
            "kpi_response_time_trend", "kpi_year_over_year", "kpi_goal_progress", "kpi_data_quality"} <= set(tables)
    for table in tables:
        columns = [d[0] for d in con.execute(f"select * from {table} limit 0").description]
        assert columns[columns.index("municipality_code") + 1] == "municipality", table
        pairs = con.execute(f"select distinct municipality_code, municipality from {table}").fetchall()
        assert pairs and all(name == (NAMES[code] if code is not None else None) for code, name in pairs), table
    assert (None, None) in con.execute("select distinct municipality_code, municipality from kpi_response_times"
                                       ).fetchall()
    got = con.execute("""select longest_municipality_code, longest_municipality, shortest_municipality_code,
                                shortest_municipality from kpi_response_time_spread
                         where period_grain = 'year' and cause is null""").fetchone()
    assert got == (360, "Lolland", 340, "Sorø")
    month_only_one = build(tmp_path / "one", callouts=[callout("A", "2019-05-10T12:00:00Z", 600)])
    assert month_only_one.execute("""select longest_municipality, shortest_municipality
                                     from kpi_response_time_spread""").fetchall() == [(None, None)] * 6


# --- the rolling trend ----------------------------------------------------------------------------------------------

def quarter_days(year: int, quarter: int, n: int) -> list[str]:
    """n distinct mid-quarter UTC instants (well inside the local quarter)."""
    month = 3 * (quarter - 1) + 2
    return [f"{year}-{month:02d}-{1 + i % 27:02d}T{10 + i // 27:02d}:00:00Z" for i in range(n)]


def trend_row(con, quarter_start: str, code=None, cause=None) -> dict:
    cur = con.execute("""select * from kpi_response_time_trend where quarter_start = ?::date
                         and municipality_code is not distinct from ? and cause is not distinct from ?""",
                      [quarter_start, code, cause])
    names = [d[0] for d in cur.description]
    row = cur.fetchone()
    return dict(zip(names, row, strict=True)) if row else None


def test_trend_window_is_the_quarter_and_the_three_before_it_across_a_year_boundary(tmp_path):
    con = build(tmp_path, callouts=[
        callout("Q1-2018", "2018-02-10T12:00:00Z", 60),     # 2018 Q1: outside the window of 2019 Q1
        callout("Q2-2018", "2018-05-10T12:00:00Z", 120),    # 2018 Q2: the window's first quarter
        callout("Q4-2018", "2018-11-10T12:00:00Z", 180),    # 2018 Q4
        callout("NYE", "2018-12-31T23:30:00Z", 240),        # 00:30 on 1 January in Denmark: 2019 Q1
        callout("Q2-2019", "2019-05-10T12:00:00Z", 300),    # after 2019 Q1
        callout("Q3-2019", "2019-08-10T12:00:00Z", 360),    # compared with 2018 Q3, which has no row itself
    ])
    row = trend_row(con, "2019-01-01")
    assert row["responses"] == 3 and row["mean_min"] == pytest.approx(minutes(120 + 180 + 240) / 3)
    assert row["median_min"] == minutes(180) and row["low_sample"] is True
    # the comparison window (2017 Q2 - 2018 Q1) holds the 2018 Q1 response
    assert (row["prev_responses"], row["prev_mean_min"]) == (1, minutes(60))
    # a row for every quarter with a response in the district: 2018 Q3 has none, so no row (although
    # its window holds responses and it is 2019 Q3's comparison window)
    quarters = [str(q) for (q,) in con.execute(
        "select quarter_start from kpi_response_time_trend where municipality_code is null and cause is null "
        "order by 1").fetchall()]
    assert quarters == ["2018-01-01", "2018-04-01", "2018-10-01", "2019-01-01", "2019-04-01", "2019-07-01"]
    q3 = trend_row(con, "2019-07-01")  # window 2018 Q4 - 2019 Q3; comparison 2017 Q4 - 2018 Q3
    assert (q3["responses"], q3["prev_responses"], q3["prev_mean_min"]) == (4, 2, minutes(60 + 120) / 2)
    first = trend_row(con, "2018-01-01")
    assert (first["prev_responses"], first["prev_mean_min"]) == (0, None)


def test_trend_change_and_its_interval_match_a_hand_computation(tmp_path):
    prev = [300 + (i * 53) % 500 for i in range(24)]     # 2017, six a quarter
    cur = [360 + (i * 71) % 600 for i in range(24)]      # 2018, six a quarter: 1.9 minutes slower
    same = [300 + (i * 53) % 500 for i in range(24)]     # Lolland: the same both years
    base = [300 + (i * 37) % 300 for i in range(24)]     # Sorø: 30 s faster in 2018, within the noise:
    faster = [s - 30 for s in base]                      # the interval's upper end lies between 0 and 1
    flat = [600] * 24                                    # Guldborgsund: 10 minutes, every one, both years
    rows = []
    for year, seconds, code in ((2017, prev, 370), (2018, cur, 370), (2017, same, 360), (2018, same, 360),
                                (2017, base, 340), (2018, faster, 340), (2017, flat, 376), (2018, flat, 376)):
        days = [d for q in range(1, 5) for d in quarter_days(year, q, 6)]
        rows += [callout(f"{code}-{year}-{i}", day, s, code=code) for i, (day, s) in enumerate(zip(days, seconds,
                                                                                                    strict=True))]
    con = build(tmp_path, callouts=rows)
    for code, now, before in ((370, cur, prev), (360, same, same), (340, faster, base), (376, flat, flat)):
        row = trend_row(con, "2018-10-01", code, "husspektakel")
        change = minutes(statistics.mean(now)) - minutes(statistics.mean(before))
        half = 1.96 * math.sqrt(minutes(statistics.stdev(now)) ** 2 / len(now)
                                + minutes(statistics.stdev(before)) ** 2 / len(before))
        assert (row["responses"], row["prev_responses"]) == (24, 24)
        assert row["window_complete"] is True and row["prev_window_complete"] is True
        assert row["change_min"] == pytest.approx(change, abs=1e-12)
        assert row["change_ci_low_min"] == pytest.approx(change - half)
        assert row["change_ci_high_min"] == pytest.approx(change + half)
        assert row["change_significant"] is (change - half > 0 or change + half < 0)
        if row["prev_mean_min"]:
            assert row["change_pct"] == pytest.approx(100 * change / minutes(statistics.mean(before)))
    assert trend_row(con, "2018-10-01", 370, "husspektakel")["change_significant"] is True
    assert trend_row(con, "2018-10-01", 360, "husspektakel")["change_significant"] is False
    soroe = trend_row(con, "2018-10-01", 340, "husspektakel")
    assert soroe["change_min"] == pytest.approx(-0.5) and 0 < soroe["change_ci_high_min"] < 1
    assert soroe["change_significant"] is False
    # no spread and no change: the interval is [0, 0], which does not exclude 0
    guldborgsund = trend_row(con, "2018-10-01", 376, "husspektakel")
    assert (guldborgsund["change_ci_low_min"], guldborgsund["change_ci_high_min"]) == (0.0, 0.0)
    assert guldborgsund["change_significant"] is False
    # the district pools the municipalities' responses: 96 against 96
    district = trend_row(con, "2018-10-01")
    both_now, both_before = cur + same + faster + flat, prev + same + base + flat
    change = minutes(statistics.mean(both_now) - statistics.mean(both_before))
    half = 1.96 * math.sqrt(minutes(statistics.stdev(both_now)) ** 2 / 96
                            + minutes(statistics.stdev(both_before)) ** 2 / 96)
    assert (district["responses"], district["prev_responses"]) == (96, 96)
    assert district["change_ci_low_min"] == pytest.approx(change - half)
    assert district["median_min"] == pytest.approx(minutes(statistics.median(both_now)))
    ordered, rank = sorted(both_now), 0.9 * (96 - 1)  # continuous 90th percentile of the pooled window
    p90 = ordered[int(rank)] + (rank - int(rank)) * (ordered[int(rank) + 1] - ordered[int(rank)])
    assert district["p90_min"] == pytest.approx(minutes(p90))


def test_trend_completeness_flags_and_what_they_withhold(tmp_path):
    rows = []
    for year in (2017, 2018):
        for q in range(1, 5):
            rows += [callout(f"{year}-{q}-{i}", day, 600 + 30 * i + (60 if year == 2018 else 0))
                     for i, day in enumerate(quarter_days(year, q, 5))]
    rows += [callout("2019-1", "2019-02-10T12:00:00Z", 900), callout("2019-3", "2019-08-10T12:00:00Z", 900)]
    # reports end on 15 August 2018: data_through lies in 2018 Q3, so no window ending later is complete
    con = build(tmp_path, callouts=rows, reports=[report("4100-00001-00001-18", "2018-08-15T10:00:00Z"),
                                                  report("4100-00001-00002-18", "2018-01-05T10:00:00Z")])
    q3 = trend_row(con, "2018-07-01")
    assert (q3["window_complete"], q3["prev_window_complete"]) == (True, False)  # 2016 Q4 precedes the first
    assert q3["change_min"] is None and q3["change_pct"] is None and q3["change_ci_low_min"] is None
    q4 = trend_row(con, "2018-10-01")
    assert (q4["window_complete"], q4["prev_window_complete"]) == (False, True)  # after data_through's quarter
    assert q4["change_min"] is None and q4["change_significant"] is None
    first = trend_row(con, "2017-01-01")
    assert (first["window_complete"], first["prev_window_complete"]) == (False, False)
    # the first complete window starts in the first quarter with a response
    assert trend_row(con, "2017-10-01")["window_complete"] is True
    # a window a year after data_through's quarter: its comparison window ends in that quarter, so is complete
    later = trend_row(con, "2019-07-01")
    assert (later["window_complete"], later["prev_window_complete"]) == (False, True)
    # outreach ending on 15 August 2018 ends data_through there as well (the last day of its last activity)
    con = build(tmp_path / "outreach", callouts=rows, outreach=[activity("2018-03-01"), activity("2018-08-15", line=3)])
    assert trend_row(con, "2018-07-01")["window_complete"] is True
    assert trend_row(con, "2018-10-01")["window_complete"] is False
    # with the report gone, data_through is the last call-out's day (2019 Q1): 2018 Q4 compares
    con = build(tmp_path / "all", callouts=rows)
    q4 = trend_row(con, "2018-10-01")
    assert (q4["window_complete"], q4["prev_window_complete"]) == (True, True)
    assert q4["change_min"] == pytest.approx(1.0)  # every 2018 response is 60 s longer than its 2017 twin
    # 20 responses in each window: the interval is there; one municipality's 5 a quarter: it is not
    assert q4["responses"] == 20 and q4["change_ci_low_min"] is not None
    assert q4["low_sample"] is False


def test_trend_interval_needs_20_responses_in_each_window_and_change_pct_a_nonzero_mean(tmp_path):
    before = [d for q in range(1, 5) for d in quarter_days(2017, q, 6)][:19]  # 19 responses, on scene at once
    after = [d for q in range(1, 5) for d in quarter_days(2018, q, 6)]        # 24 responses
    con = build(tmp_path, callouts=[callout(f"P{i}", day, 0) for i, day in enumerate(before)]
                + [callout(f"C{i}", day, 300 + i) for i, day in enumerate(after)]
                # Sorø the other way round: 24 responses, then 19
                + [callout(f"SP{i}", day.replace("2018", "2017"), 300 + i, code=340) for i, day in enumerate(after)]
                + [callout(f"SC{i}", day.replace("2017", "2018"), 400 + i, code=340) for i, day in enumerate(before)])
    soroe = trend_row(con, "2018-10-01", 340)
    assert (soroe["responses"], soroe["prev_responses"]) == (19, 24) and soroe["change_min"] is not None
    assert soroe["change_ci_low_min"] is None and soroe["change_significant"] is None  # 19 < 20
    row = trend_row(con, "2018-10-01", 370)  # Næstved
    assert (row["window_complete"], row["prev_window_complete"]) == (True, True)
    assert (row["responses"], row["prev_responses"], row["prev_mean_min"]) == (24, 19, 0.0)
    assert row["change_min"] == pytest.approx(minutes(statistics.mean(300 + i for i in range(24))))
    assert row["change_pct"] is None  # prev_mean_min is 0
    assert row["change_ci_low_min"] is None and row["change_ci_high_min"] is None  # 19 < 20
    assert row["change_significant"] is None


# --- year over year -------------------------------------------------------------------------------------------------

def yoy(con, measure: str) -> dict:
    return {(year, code): rest for year, code, *rest in con.execute(
        """select year, municipality_code, value, prev_value, change, change_pct, population_year
           from kpi_year_over_year where measure = ? order by all""", [measure]).fetchall()}


def test_year_over_year_counts_have_a_row_for_every_municipality_and_the_district(tmp_path):
    con = build(tmp_path,
                reports=[report("4100-00001-00001-18", "2018-03-01T10:00:00Z", code=340),
                         report("4100-00001-00002-18", "2018-03-01T10:00:00Z", code=340),
                         report("4100-00001-00001-19", "2019-03-01T10:00:00Z", code=340),
                         report("4100-00001-00002-19", "2019-03-01T10:00:00Z", code=320),
                         report("4100-00001-00003-19", "2018-12-31T23:30:00Z", code=320)],  # 2019 locally
                callouts=[callout("A", "2019-05-10T12:00:00Z", 600, code=340)])
    reports = yoy(con, "reports")
    assert len(reports) == 16  # 2018 and 2019 x (7 municipalities + the district)
    assert reports[(2019, 340)][:4] == [1.0, 2.0, -1.0, -50.0]
    assert reports[(2019, 320)][:4] == [2.0, 0.0, 2.0, None]  # change_pct NULL when prev_value is 0
    assert reports[(2018, 330)][:4] == [0.0, None, None, None] and reports[(2019, 330)][:4] == [0.0, 0.0, 0.0, None]
    assert reports[(2019, None)][:4] == [3.0, 2.0, 1.0, 50.0]
    assert reports[(2019, None)][4] is None  # a count names no population year
    callouts = yoy(con, "callouts")  # call-outs only in 2019: no 2018 row, so prev_value is NULL
    assert set(callouts) == {(2019, code) for code in [*NAMES, None]}
    assert callouts[(2019, 340)][:4] == [1.0, None, None, None] and callouts[(2019, 370)][0] == 0.0
    assert yoy(con, "responses")[(2019, 390)][0] == 0.0
    measures = {m for (m,) in con.execute("select distinct measure from kpi_year_over_year").fetchall()}
    assert not any(m.startswith("outreach_") for m in measures)  # no outreach data in any year: no rows
    # a response measure has a row only where there are responses
    assert set(yoy(con, "mean_response_min")) == {(2019, 340), (2019, None)}
    assert yoy(con, "share_within_10_min")[(2019, 340)][0] == 1.0


def test_year_summary_has_every_year_with_zero_where_a_source_has_nothing(tmp_path):
    con = build(tmp_path, reports=[report("R1", "2018-03-01T10:00:00Z"), report("R2", "2018-04-01T10:00:00Z")],
                callouts=[callout("C1", "2019-05-10T12:00:00Z", 600), callout("C2", "2019-05-11T12:00:00Z", None)],
                outreach=[activity("2019-02-01", what="foredrag", antal=3),
                          activity("2019-03-01", what="mobil_politistation", antal=2, line=3)])
    cur = con.execute("select * from kpi_year_summary order by year")
    names = [d[0] for d in cur.description]
    got = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    drop = ("population", "municipalities")
    assert [{k: v for k, v in row.items() if k not in drop} for row in got] == [
        {"year": 2018, "reports": 2, "callouts": 0, "timed_responses": 0, "mean_response_min": None,
         "safety_ambassadors": 0, "ambassador_local_areas": 0,
         "mobile_station_outings": 0, "safety_followups": 0, "citizen_adviser_inquiries": 0, "sub_visits": 0,
         "talks": 0, "traffic_controls": 0},
        {"year": 2019, "reports": 0, "callouts": 2, "timed_responses": 1, "mean_response_min": 10.0,
         "safety_ambassadors": 0, "ambassador_local_areas": 0,
         "mobile_station_outings": 2, "safety_followups": 0, "citizen_adviser_inquiries": 0, "sub_visits": 0,
         "talks": 3, "traffic_controls": 0}]
    assert [row["municipalities"] for row in got] == [7, 7]


def test_year_over_year_outreach_has_a_row_per_activity_summing_antal(tmp_path):
    con = build(tmp_path, outreach=[activity("2019-02-01", code=360, what="foredrag", antal=3),
                                    activity("2019-02-01", code=360, what="foredrag", antal=3, line=3)])
    measures = {m for (m,) in con.execute("select distinct measure from kpi_year_over_year").fetchall()}
    assert measures == {f"outreach_{a}" for a in ACTIVITIES}
    assert yoy(con, "outreach_foredrag")[(2019, 360)][0] == 6.0
    assert yoy(con, "outreach_foredrag")[(2019, None)][0] == 6.0
    assert yoy(con, "outreach_sub_besoeg")[(2019, 360)][0] == 0.0
    assert con.execute("select distinct months_with_data from kpi_year_over_year").fetchall() == [(1,)]


def test_year_over_year_response_measures_are_over_all_causes_and_months_counted_once(tmp_path):
    con = build(tmp_path,
                reports=[report("R1", "2019-03-01T10:00:00Z", code=340),
                         report("R2", "2019-03-02T10:00:00Z", code=320)],
                callouts=[callout("A", "2019-05-10T12:00:00Z", 300, code=340, cause="husspektakel"),
                          callout("B", "2019-05-11T12:00:00Z", 900, code=340, cause="indbrud_igang")],
                outreach=[activity("2019-02-01", code=360), activity("2019-02-02", code=320, line=3)])
    for code in (340, None):
        assert yoy(con, "mean_response_min")[(2019, code)][0] == 10.0  # (300 + 900) / 2 s, both causes
    months = dict(con.execute("select measure, max(months_with_data) from kpi_year_over_year "
                              "where measure in ('reports', 'callouts', 'outreach_foredrag') group by all").fetchall())
    assert months == {"reports": 1, "callouts": 1, "outreach_foredrag": 1}  # two rows, one month each


def test_year_over_year_response_measures_carry_their_own_years_months_one_row_per_key(tmp_path):
    con = build(tmp_path, callouts=[callout("A", "2019-05-10T12:00:00Z", 300, code=340),
                                    callout("B", "2020-01-10T12:00:00Z", 600, code=340),
                                    callout("C", "2020-02-10T12:00:00Z", 900, code=340)],
                # reports in two months of 2019: the response measures take the call-outs' months, not these
                reports=[report("R1", "2019-01-10T10:00:00Z", code=340), report("R2", "2019-03-10T10:00:00Z")])
    rows = con.execute("""select year, municipality_code, measure, value, prev_value, months_with_data
                          from kpi_year_over_year where measure = 'mean_response_min' order by all""").fetchall()
    assert rows == [(2019, 340, "mean_response_min", 5.0, None, 1), (2019, None, "mean_response_min", 5.0, None, 1),
                    (2020, 340, "mean_response_min", 12.5, 5.0, 2),
                    (2020, None, "mean_response_min", 12.5, 5.0, 2)]
    assert con.execute("""select count(*) from (select year, municipality_code, measure from kpi_year_over_year
                          group by all having count(*) > 1)""").fetchone() == (0,)


def test_year_over_year_per_1000_uses_the_nearest_population_year_ties_to_the_earlier(tmp_path, monkeypatch):
    folder = tmp_path / "reference"
    folder.mkdir()
    source = Path(__file__).resolve().parent.parent / "reference"
    deck = [line for line in (source / "municipalities.csv").read_text(encoding="utf-8").splitlines()
            if line.startswith("municipality_code") or int(line.split(",")[0]) in NAMES]
    (folder / "municipalities.csv").write_text("\n".join(deck) + "\n", encoding="utf-8")  # one district
    lines = ["municipality_code,year,population,source"]
    for code in NAMES:  # 2017 and 2019 (Vordingborg: 2020) for every municipality: for 2018 the tie goes to 2017
        lines += [f"{code},2017,{code * 100},test", f"{code},{2020 if code == 390 else 2019},{code * 200},test"]
    (folder / "population.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.setenv("POLITIKPI_REFERENCE", str(folder))
    con = build(tmp_path, reports=[report("4100-00001-00001-18", "2018-03-01T10:00:00Z", code=340),
                                   report("4100-00001-00001-20", "2020-03-01T10:00:00Z", code=340),
                                   report("4100-00001-00002-20", "2020-03-01T10:00:00Z", code=390)])
    rates = yoy(con, "reports_per_1000")
    assert rates[(2018, 340)][0] == pytest.approx(1000 / 34_000) and rates[(2018, 340)][4] == 2017
    assert rates[(2020, 340)][0] == pytest.approx(1000 / 68_000) and rates[(2020, 340)][4] == 2019
    assert (2019, 340) not in rates  # no report in 2019: the year has no data in the source, no rows
    assert rates[(2020, 340)][1] is None  # so 2020's prev_value is NULL
    assert rates[(2020, 390)][0] == pytest.approx(1000 / 78_000) and rates[(2020, 390)][4] == 2020
    district_2020 = 2 * 1000 / sum(code * 200 for code in NAMES)
    # the district's figure sums its municipalities' (2019 for six, 2020 for one); its year is the latest of them
    assert rates[(2020, None)][0] == pytest.approx(district_2020) and rates[(2020, None)][4] == 2020
    assert rates[(2020, 370)][0] == 0.0
    # dim_municipality holds the latest figure held and its year
    assert con.execute("select population, population_year from dim_municipality where municipality_code = 340"
                       ).fetchone() == (340 * 200, 2019)


# --- the district's goals -------------------------------------------------------------------------------------------

def goals(con) -> dict:
    cur = con.execute("select * from kpi_goal_progress order by all")
    names = [d[0] for d in cur.description]
    return {(r[0], r[1], r[2]): dict(zip(names, r, strict=True)) for r in cur.fetchall()}


def test_goals_follow_the_three_smaller_municipalities_and_the_spread(tmp_path):
    rows = []
    plan = {  # municipality: (2018 responses, seconds), (2019 responses, seconds)
        340: ((20, 900), (20, 840)),   # Sorø: 15 -> 14 minutes, 20 both years: met
        320: ((20, 720), (19, 600)),   # Faxe: faster, but 19 responses in 2019: met NULL
        360: ((25, 1200), (0, 0)),     # Lolland: no responses in 2019: value NULL
        370: ((20, 480), (20, 540)),   # Næstved: not a small municipality
    }
    for code, years in plan.items():
        for year, (n, seconds) in zip((2018, 2019), years, strict=True):
            rows += [callout(f"{code}-{year}-{i}", f"{year}-05-10T12:00:00Z", seconds, code=code) for i in range(n)]
    rows += [callout(f"320-2020-{i}", "2020-05-10T12:00:00Z", 540, code=320) for i in range(20)]  # Faxe again
    con = build(tmp_path, callouts=rows)
    got = goals(con)
    assert set(got) == {(y, g, c) for y in (2018, 2019, 2020) for g, c in
                        [("shrink_spread", None), ("improve_small_municipality", 320),
                         ("improve_small_municipality", 340), ("improve_small_municipality", 360)]}
    soroe = got[(2019, "improve_small_municipality", 340)]
    district_2019 = (20 * 840 + 19 * 600 + 20 * 540) / 59 / 60
    assert soroe["municipality"] == "Sorø" and soroe["value"] == 14.0 and soroe["prev_value"] == 15.0
    assert soroe["district_value"] == pytest.approx(district_2019)
    assert soroe["gap_min"] == pytest.approx(14.0 - district_2019)
    assert (soroe["responses"], soroe["change"], soroe["met"]) == (20, -1.0, True)
    faxe = got[(2019, "improve_small_municipality", 320)]
    assert (faxe["value"], faxe["prev_value"], faxe["change"], faxe["responses"]) == (10.0, 12.0, -2.0, 19)
    assert faxe["met"] is None  # 19 responses in 2019
    faxe = got[(2020, "improve_small_municipality", 320)]
    # 20 responses in 2020, but 19 the year before: met NULL
    assert (faxe["value"], faxe["prev_value"], faxe["responses"], faxe["met"]) == (9.0, 10.0, 20, None)
    lolland = got[(2019, "improve_small_municipality", 360)]
    assert (lolland["value"], lolland["prev_value"], lolland["responses"], lolland["met"]) == (None, 20.0, 0, None)
    assert lolland["gap_min"] is None and lolland["change"] is None
    first = got[(2018, "improve_small_municipality", 340)]
    assert (first["prev_value"], first["met"]) == (None, None)
    # the spread: 2018 Lolland 20 - Næstved 8 = 12; 2019 Sorø 14 - Næstved 9 = 5 (Faxe has only 19)
    spread = got[(2019, "shrink_spread", None)]
    assert (spread["value"], spread["prev_value"], spread["change"], spread["met"]) == (5.0, 12.0, -7.0, True)
    assert spread["municipality"] is None and spread["district_value"] is None and spread["gap_min"] is None


def test_goals_take_the_median_of_an_even_number_of_municipalities_in_each_years_population(tmp_path, monkeypatch):
    """Six municipalities: the median is the mean of the middle two, taken with each year's
    population; a municipality on the median is not below it."""
    folder = tmp_path / "reference"
    folder.mkdir()
    source = Path(__file__).resolve().parent.parent / "reference"
    six = [320, 330, 340, 360, 370, 376]
    deck = [line for line in (source / "municipalities.csv").read_text(encoding="utf-8").splitlines()
            if line.startswith("municipality_code") or int(line.split(",")[0]) in six]
    (folder / "municipalities.csv").write_text("\n".join(deck) + "\n", encoding="utf-8")
    population = {2018: [100, 200, 300, 400, 500, 600],   # median 350: 320, 330, 340 are smaller
                  2019: [100, 200, 400, 400, 500, 600]}   # median 400: 340 and 360 sit on it
    lines = ["municipality_code,year,population,source"]
    lines += [f"{code},{year},{n},test" for year, ns in population.items() for code, n in zip(six, ns, strict=True)]
    (folder / "population.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.setenv("POLITIKPI_REFERENCE", str(folder))
    con = build(tmp_path, callouts=[callout(f"{code}-{year}", f"{year}-05-10T12:00:00Z", 600, code=code)
                                    for code in six for year in (2018, 2019, 2020)])
    small = {(year, code) for year, goal, code in goals(con) if goal == "improve_small_municipality"}
    # 2020 has no population figure: the nearest year held (2019) decides
    assert small == {(2018, 320), (2018, 330), (2018, 340), (2019, 320), (2019, 330), (2020, 320), (2020, 330)}


def test_goals_read_the_year_over_all_causes_and_an_unchanged_value_is_not_met(tmp_path):
    """Two causes in two quarters: a goal's value is the year's mean over all causes (not a cause's,
    a month's or a quarter's), one row per key; a spread or mean equal to last year's is not met."""
    rows = []
    for year in (2018, 2019):
        for code, (a, b) in {340: (900, 300), 370: (600, 600)}.items():  # Sorø: 15 and 5 min, 10 over both
            rows += [callout(f"{code}-{year}-a{i}", f"{year}-02-10T12:00:00Z", a, code=code, cause="husspektakel")
                     for i in range(20)]
            rows += [callout(f"{code}-{year}-b{i}", f"{year}-08-10T12:00:00Z", b, code=code, cause="indbrud")
                     for i in range(20)]
    con = build(tmp_path, callouts=rows)
    every = con.execute("select year, goal, municipality_code from kpi_goal_progress").fetchall()
    assert len(every) == len(set(every)) == 2 * 4
    got = goals(con)
    soroe, spread = got[(2019, "improve_small_municipality", 340)], got[(2019, "shrink_spread", None)]
    assert (soroe["value"], soroe["prev_value"], soroe["responses"], soroe["met"]) == (10.0, 10.0, 40, False)
    assert soroe["district_value"] == 10.0 and soroe["gap_min"] == 0.0
    assert (spread["value"], spread["prev_value"], spread["met"]) == (0.0, 0.0, False)


def test_a_spread_goal_without_a_spread_is_null_not_missing(tmp_path):
    con = build(tmp_path, callouts=[callout("A", "2019-05-10T12:00:00Z", 600, code=340)])
    got = goals(con)
    assert got[(2019, "shrink_spread", None)]["value"] is None and got[(2019, "shrink_spread", None)]["met"] is None
    assert got[(2019, "improve_small_municipality", 320)]["value"] is None  # every row present


# --- data quality per cell ------------------------------------------------------------------------------------------

def test_data_quality_attributes_each_key_of_a_quarantined_row_on_its_own(tmp_path):
    r, d, o = "reports/2019-02-01.csv", "dispatches/2019-02-01.jsonl", "outreach/2019.csv"
    con = build(
        tmp_path,
        reports=[report("4100-00001-00001-19", "2019-02-01T10:00:00Z", code=370, file=r, line=2),
                 report("4100-00001-00001-19", "2019-02-01T10:00:00Z", code=370, file=r, line=3),  # duplicate
                 report("4100-00001-00001-19", "2019-02-01T10:00:00Z", code=340, file=r, line=4,
                        changed="2019-02-02T10:00:00Z")],  # a later version: the earlier ones still count
        callouts=[callout("A", "2019-01-31T23:30:00Z", 600, code=360, file=d)],  # 00:30 on 1 Feb in Denmark
        outreach=[activity("2019-02-03", code=390, antal=5, file=o),  # one row, whatever its antal
                  activity("2019-02-03", code=390, file="outreach/gone.csv")],  # a rejected file: nowhere
        quarantine=[
            quarantined("reports", r, '{"anmeldt_tid": "03-02-2019 10:00:00", "kommunekode": "336"}'),  # not ours
            quarantined("reports", r, '{"anmeldt_tid": "30-02-2019 10:00:00", "kommunekode": "370"}'),  # no 30 Feb
            quarantined("reports", r, '{"anmeldt_tid": "2019-02-03 10:00", "kommunekode": "370"}'),  # wrong format
            quarantined("reports", r, '{"anmeldt_tid": "31-03-2019 02:30:00", "kommunekode": "0370"}'),  # gap hour
            # another source's format is not the format, nor is a day written with one digit
            quarantined("reports", r, '{"anmeldt_tid": "1-03-2019 10:00:00", "kommunekode": "370"}'),
            quarantined("reports", r, '{"anmeldt_tid": "2019-03-01T10:00:00+01:00", "kommunekode": "370"}'),
            quarantined("reports", r, '{"anmeldt_tid": "01-03-2019", "kommunekode": "370"}'),
            quarantined("dispatches", d, '{"modtaget": "01-03-2019 10:00:00", "kommunekode": "360"}'),
            quarantined("outreach", o, '{"dato": "1-3-2019", "kommunekode": "390"}'),
            quarantined("reports", r, None, kind="line"),  # broken line: length and hash only
            quarantined("dispatches", d, '{"modtaget": "2019-01-31T23:30:00Z", "kommunekode": "\\"360\\""}'),
            quarantined("dispatches", d, '{"modtaget": "2019-01-31T23:30:00", "kommunekode": "360"}'),  # no offset
            quarantined("outreach", o, '{"dato": "03-02-2019", "kommunekode": null}'),
            quarantined("outreach", "outreach/gone.csv", '{"dato": "03-02-2019", "kommunekode": "390"}'),
            quarantined("ambassadors", "ambassadors/r.csv", '{"aktiv_fra": "03-02-2019", "kommunekode": "390"}'),
        ],
        files=[(r, "reports", "ingested"), (d, "dispatches", "ingested"), (o, "outreach", "ingested"),
               ("outreach/gone.csv", "outreach", "rejected"), ("ambassadors/r.csv", "ambassadors", "ingested")])
    got = {(str(m) if m else None, c, s): (v, q, share) for m, c, s, v, q, share in con.execute(
        """select month, municipality_code, source, rows_valid, rows_quarantined, quarantined_share
           from kpi_data_quality""").fetchall()}
    assert got == {
        ("2019-02-01", 370, "reports"): (2, 0, 0.0),
        ("2019-02-01", 340, "reports"): (1, 0, 0.0),
        ("2019-02-01", None, "reports"): (0, 1, 1.0),      # bad municipality code: municipality NULL
        (None, 370, "reports"): (0, 5, 1.0),               # no such date, wrong format: month NULL
        ("2019-03-01", 370, "reports"): (0, 1, 1.0),       # a spring-gap time still has a real date
        (None, None, "reports"): (0, 1, 1.0),              # the broken line
        ("2019-02-01", 360, "dispatches"): (1, 0, 0.0),    # local month, not UTC's January
        ("2019-02-01", None, "dispatches"): (0, 1, 1.0),   # "360" as a JSON string is not a code
        (None, 360, "dispatches"): (0, 2, 1.0),            # without an offset, or the reports' format
        ("2019-02-01", 390, "outreach"): (1, 0, 0.0),      # rows, not antal
        ("2019-02-01", None, "outreach"): (0, 1, 1.0),
        (None, 390, "outreach"): (0, 1, 1.0),              # a one-digit day is not DD-MM-YYYY
    }  # the rejected file and the ambassadors count nowhere


def test_data_quality_puts_a_row_at_the_first_instant_of_a_local_month_in_that_month(tmp_path):
    con = build(tmp_path, reports=[report("R1", "2019-02-01T00:00:00+01:00")],
                callouts=[callout("C1", "2019-02-01T00:00:00+01:00", 600)],
                files=[("reports/a.csv", "reports", "ingested"), ("dispatches/a.jsonl", "dispatches", "ingested")])
    got = con.execute("select source, month, rows_valid from kpi_data_quality order by source").fetchall()
    assert got == [("dispatches", dt.date(2019, 2, 1), 1), ("reports", dt.date(2019, 2, 1), 1)]


def test_data_quality_share_mixes_valid_and_quarantined_rows_of_one_cell(tmp_path):
    d = "dispatches/2019-05-10.jsonl"
    con = build(tmp_path, callouts=[callout(f"A{i}", "2019-05-10T12:00:00Z", 600, file=d, line=i) for i in range(3)],
                quarantine=[quarantined("dispatches", d, '{"modtaget": "2019-05-10T14:00:00+02:00", '
                                                         '"kommunekode": "370"}')],
                files=[(d, "dispatches", "ingested")])
    assert con.execute("select month, municipality_code, municipality, rows_valid, rows_quarantined, "
                       "quarantined_share from kpi_data_quality").fetchall() == [
        (dt.date(2019, 5, 1), 370, "Næstved", 3, 1, 0.25)]
