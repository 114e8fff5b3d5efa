"""Disclosure control (SPEC 5) at the value level: which cell is hidden, the tie order by code, the
"<3" set, totals hidden only when nothing else can be, and charts that show nothing a table hides.

The report's tables and chart series are taken from a real release file built from staged rows
(no Prefect: the rule lives in flows/release/, the flow adds nothing to it)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from flows.release.charts import series
from flows.release.disclosure import PRIMARY, SECONDARY, protect, protect_by_code
from flows.release.report import gather, goal_tables, per_1000_table, response_table, spread_hidden, tiles
from flows.transform.transform import write_release_table
from tests.test_kpi_beyond_deck import NAMES, build, callout, report


def reference(cells: list[list[int]], rows: bool, cols: bool):
    """SPEC 5 read literally, written apart from flows/release/disclosure.py: hidden cells, hidden
    row totals, hidden column totals."""
    hidden = {(r, c) for r, row in enumerate(cells) for c, v in enumerate(row) if v in (1, 2)}
    hidden_totals: set = set()
    lines = ([("row", r, [(r, c) for c in range(len(cells[0]))]) for r in range(len(cells))] if rows else []) + \
            ([("col", c, [(r, c) for r in range(len(cells))]) for c in range(len(cells[0]))] if cols else [])
    changed = True
    while changed:  # passes over every line (rows, then columns) until one changes nothing
        changed = False
        for kind, index, line in lines:
            if (kind, index) in hidden_totals or len([x for x in line if x in hidden]) != 1:
                continue
            others = sorted((cells[r][c], r, c) for r, c in line if (r, c) not in hidden and cells[r][c] > 0)
            if others:
                hidden.add(others[0][1:])
            else:
                hidden_totals.add((kind, index))
            changed = True
    return hidden, hidden_totals


@settings(max_examples=400, deadline=None)
@given(st.integers(1, 6).flatmap(lambda cols: st.lists(st.lists(st.integers(0, 8), min_size=cols, max_size=cols),
                                                        min_size=1, max_size=6)), st.booleans(), st.booleans())
def test_protect_hides_exactly_what_the_rule_says_for_any_table(cells, rows, cols):
    grid = protect(cells, row_totals=rows, col_totals=cols)
    hidden, totals = reference(cells, rows, cols)
    assert grid.primary == {(r, c) for r, row in enumerate(cells) for c, v in enumerate(row) if v in (1, 2)}
    assert grid.hidden == hidden
    assert grid.hidden_row_totals == {i for kind, i in totals if kind == "row"}
    assert grid.hidden_col_totals == {i for kind, i in totals if kind == "col"}
    for kind, i in totals:  # a total is hidden only when its line has nothing else left to hide
        line = [(i, c) for c in range(len(cells[0]))] if kind == "row" else [(r, i) for r in range(len(cells))]
        assert all(cell in hidden for cell in line if cells[cell[0]][cell[1]] > 0)
    for r, row in enumerate(cells):
        for c, v in enumerate(row):
            assert grid.shown(r, c) == (PRIMARY if v in (1, 2) else SECONDARY if (r, c) in hidden else v)


def test_the_smallest_other_cell_is_hidden_ties_to_the_lower_position_totals_only_when_nothing_is_left():
    grid = protect([[0, 12, 0, 2, 12, 12, 5]], row_totals=True, col_totals=False)  # the deck's talks: Lolland has 2
    assert [grid.shown(0, c) for c in range(7)] == [0, 12, 0, PRIMARY, 12, 12, SECONDARY]
    grid = protect([[7, 4, 2, 4, 9]], row_totals=True, col_totals=False)
    assert [grid.shown(0, c) for c in range(5)] == [7, SECONDARY, PRIMARY, 4, 9] and not grid.hidden_row_totals
    grid = protect([[0, 2, 0]], row_totals=True, col_totals=False)  # nothing else to hide: the total goes
    assert grid.hidden_row_totals == {0} and grid.hidden == {(0, 1)}
    grid = protect([[3, 5, 0]], row_totals=True, col_totals=False)  # nothing hidden: nothing more
    assert grid.hidden == set() and not grid.hidden_row_totals
    assert protect_by_code({390: 4, 320: 4, 360: 1}) == ({320: SECONDARY, 360: PRIMARY, 390: 4}, False)
    assert protect_by_code({390: 0, 320: 2}) == ({320: PRIMARY, 390: 0}, True)  # only a total left to hide


def tie_release(tmp_path):
    """2021 (the deck municipalities' population year): a reports tie at 5 between Faxe (320) and
    Sorø (340), whose rate is higher (so Sorø is listed first); a responses tie at 4 between them,
    Sorø's mean longer (listed first); Lolland's 2 responses and one call-out in February."""
    reports_per = {330: 2, 320: 5, 340: 5, 360: 10, 370: 20, 376: 30, 390: 40}
    reports = [report(f"R{code}-{i}", f"2021-03-{1 + i % 27:02d}T10:00:00+01:00", code)
               for code, n in reports_per.items() for i in range(n)]
    responses = {330: (6, 300), 320: (4, 600), 340: (4, 1200), 360: (2, 900), 370: (8, 400), 376: (9, 500),
                 390: (10, 450)}
    callouts = [callout(f"C{code}-{i}", f"2021-01-{1 + i:02d}T10:00:00+01:00", seconds, code)
                for code, (n, seconds) in responses.items() for i in range(n)]
    callouts.append(callout("C-feb", "2021-02-10T10:00:00+01:00", None, 370))  # 1 in February: "<3"
    callouts += [callout(f"C-mar-{i}", "2021-03-10T10:00:00+01:00", None, 370) for i in range(5)]  # 5: ".."
    con = build(tmp_path, callouts=callouts, reports=reports)
    write_release_table(con, {"release_id": "r1", "created_at": None, "data_through": None, "code_version": "test",
                              "flow_run_id": None, "input_files": {}, "row_counts": {}, "validation_summary": {},
                              "quarantine_summary": {}})
    return gather(con, 2021)


def shown_column(table: dict, column: int) -> dict[str, str]:
    return {row["label"]: row["cells"][column]["text"] for row in table["rows"] if not row.get("total")}


def test_report_tables_break_ties_by_municipality_code_not_by_display_order(tmp_path):
    data = tie_release(tmp_path)
    per_1000, response = per_1000_table(data), response_table(data)
    assert per_1000["order"].index(340) < per_1000["order"].index(320)  # Sorø's rate is higher: listed before Faxe
    counts = shown_column(per_1000, 0)
    assert counts["Slagelse"] == PRIMARY and counts["Faxe"] == SECONDARY and counts["Sorø"] == "5"
    rates = shown_column(per_1000, 1)
    assert rates["Slagelse"] == rates["Faxe"] == SECONDARY and rates["Sorø"] != SECONDARY
    assert response["order"].index(340) < response["order"].index(320)  # Sorø's mean (20 min) is the longest
    counts = shown_column(response, 0)
    assert counts["Lolland"] == PRIMARY and counts["Faxe"] == SECONDARY and counts["Sorø"] == "4"
    means = shown_column(response, 1)
    assert means["Lolland"] == means["Faxe"] == SECONDARY and means["Sorø"] == "20:00"


def test_no_chart_shows_a_value_its_table_hides(tmp_path):
    data = tie_release(tmp_path)
    per_1000, response = per_1000_table(data), response_table(data)
    plotted = series(data, per_1000, response)
    hidden = lambda table: {r["label"] for r in table["rows"] if r["cells"][0]["text"] in (PRIMARY, SECONDARY)}  # noqa: E731
    assert hidden(per_1000) == {"Slagelse", "Faxe"} and hidden(response) == {"Lolland", "Faxe"}
    assert {name for name, _ in plotted["per_1000"]} == set(NAMES.values()) - hidden(per_1000)
    assert {label.removesuffix(" *") for label, _, _ in plotted["response"]} == set(NAMES.values()) - hidden(response)
    # February's single call-out is "<3", and March (5) goes with it: the year's total is on a tile
    assert [month for month, _ in plotted["callouts"]] == ["jan"]
    assert [tile["text"] for tile in tiles(data, per_1000, response) if tile["label"] == "Udrykninger"] == ["49"]
    # the small municipalities: Lolland's 2 responses are "<3", Faxe's 4 are hidden in the response table
    goals = {r["municipality"]: r["responses"] for r in data["goals"] if r["goal"] == "improve_small_municipality"}
    assert goals == {"Faxe": 4, "Sorø": 4, "Lolland": 2}
    assert {name for name, _, _ in plotted["small"]} == {"Sorø"}
    rows = {r["label"]: [c["text"] for c in r["cells"]] for r in goal_tables(data, response)["small"]["rows"]}
    assert rows["Faxe"][1:4] == [SECONDARY, SECONDARY, rows["Faxe"][3]] and rows["Faxe"][4:] == [SECONDARY] * 2
    assert rows["Lolland"][1:3] == [PRIMARY, SECONDARY] and rows["Sorø"][1:3] == ["4", "20:00"]
    assert {name for name, _, _ in plotted["trend"]} == set(NAMES.values()) - hidden(response)


def test_a_spread_from_a_hidden_mean_is_hidden_everywhere_and_a_mean_over_few_responses_too(tmp_path):
    plan = {320: (20, 900), 340: (20, 300), 360: (2, 600), 370: (30, 600), 376: (31, 600), 390: (32, 600),
            330: (33, 600)}  # a tie at 20: Faxe (320), the longest mean, is hidden beside Lolland's 2
    con = build(tmp_path, callouts=[callout(f"C{code}-{i}", f"2021-01-{1 + i % 28:02d}T10:00:00+01:00", s, code)
                                    for code, (n, s) in plan.items() for i in range(n)])
    write_release_table(con, {"release_id": "r1", "created_at": None, "data_through": None, "code_version": "test",
                              "flow_run_id": None, "input_files": {}, "row_counts": {}, "validation_summary": {},
                              "quarantine_summary": {}})
    data = gather(con, 2021)
    per_1000, response = per_1000_table(data), response_table(data)
    assert response["hidden"] == {320, 360} and data["spread"][0]["longest_municipality"] == "Faxe"
    assert spread_hidden(data, response) and series(data, per_1000, response)["spread"] == []
    spread_row = goal_tables(data, response)["spread"]["rows"][0]
    assert spread_row["label"] == "2021" and [c["text"] for c in spread_row["cells"]] == [SECONDARY] * 3


def test_the_mean_tile_is_hidden_over_fewer_than_3_responses(tmp_path):
    con = build(tmp_path, callouts=[callout("C1", "2021-01-05T10:00:00+01:00", 600, 370)])
    write_release_table(con, {"release_id": "r1", "created_at": None, "data_through": None, "code_version": "test",
                              "flow_run_id": None, "input_files": {}, "row_counts": {}, "validation_summary": {},
                              "quarantine_summary": {}})
    data = gather(con, 2021)
    shown = {tile["label"]: tile for tile in tiles(data, per_1000_table(data), response_table(data))}
    assert shown["Gns. responstid (min)"]["text"] == SECONDARY and shown["Gns. responstid (min)"]["change"] is None
    assert shown["Udrykninger"]["text"] == SECONDARY  # its one month is "<3": nothing else to hide but the total
