"""Each rule of SPEC section 2: a valid frame passes, one failing frame per rule names it."""

from __future__ import annotations

import polars as pl
import pytest

from flows.ingest.sources import SOURCES
from flows.ingest.validate import validate_rows

REPORT = {"line": 2, "journalnr": "4100-00000-00001-19", "anmeldt_tid": "01-02-2019 10:00:00",
          "gerningstid_fra": "01-02-2019 09:00:00", "kommunekode": "370", "lovomraade": "Straffelov",
          "overtraedelse": "Tyveri", "sidst_aendret": "01-02-2019 10:05:00"}
DISPATCH = {"line": 1, "haendelse_id": "SLF-1", "modtaget": "2019-02-01T00:30:00+01:00",
            "disponeret": "2019-02-01T00:31:00+01:00", "fremme": "2019-01-31T23:40:00Z",
            "afsluttet": None, "prioritet": "1", "aarsag": "husspektakel", "responstid_maalt": "true",
            "kommunekode": "370", "aflyst": "false", "sidst_aendret": "2019-02-01T02:00:00+01:00",
            "journalnr": None}
OUTREACH = {"line": 2, "dato": "05-03-2019", "kommunekode": "360", "aktivitet": "foredrag",
            "antal": "2", "lokalomraade": None}
AMBASSADOR = {"line": 2, "ambassadoer_id": "TA-1", "lokalomraade": "Bårse Nord", "kommunekode": "390",
              "aktiv_fra": "01-01-2018", "aktiv_til": None}


def run(source: str, row: dict, **changes) -> tuple[pl.DataFrame, pl.DataFrame]:
    frame = pl.DataFrame([{**row, **changes}], schema={k: (pl.Int64 if k == "line" else pl.String) for k in row})
    return validate_rows(SOURCES[source], frame)


@pytest.mark.parametrize("source,row", [("reports", REPORT), ("dispatches", DISPATCH),
                                        ("outreach", OUTREACH), ("ambassadors", AMBASSADOR)])
def test_valid_row_is_staged_and_cast(source, row):
    staged, quarantined = run(source, row)
    assert len(staged) == 1 and len(quarantined) == 0


@pytest.mark.parametrize("changes,rule", [
    ({"journalnr": "2019-123"}, "journalnr_pattern"),
    ({"journalnr": None}, "journalnr_required"),
    ({"anmeldt_tid": None}, "anmeldt_tid_required"),
    ({"anmeldt_tid": "2019-02-01 10:00"}, "anmeldt_tid_local_timestamp"),
    ({"anmeldt_tid": "31-03-2019 02:30:00"}, "anmeldt_tid_local_timestamp"),  # spring gap
    ({"gerningstid_fra": "02-02-2019 09:00:00"}, "gerningstid_fra_not_after_anmeldt_tid"),
    ({"kommunekode": "336"}, "kommunekode_in_district"),  # Stevns is not in the district
    ({"kommunekode": "3x0"}, "kommunekode_integer"),
    ({"lovomraade": "Straffeloven"}, "lovomraade_allowed_value"),
    ({"overtraedelse": None}, "overtraedelse_required"),
    ({"overtraedelse": "x" * 121}, "overtraedelse_at_most_120_chars"),
    ({"sidst_aendret": None}, "sidst_aendret_required"),
])
def test_report_rule_is_named(changes, rule):
    staged, quarantined = run("reports", REPORT, **changes)
    assert len(staged) == 0
    assert rule in quarantined["rules"][0].split("; ")


@pytest.mark.parametrize("changes,rule", [
    ({"haendelse_id": None}, "haendelse_id_required"),
    ({"modtaget": "2019-02-01T00:30:00"}, "modtaget_iso_timestamp_with_offset"),  # no offset
    ({"disponeret": "2019-01-31T23:00:00Z"}, "disponeret_not_before_modtaget"),
    ({"fremme": "2019-01-31T22:00:00Z"}, "fremme_not_before_modtaget"),
    ({"fremme": "2019-02-02T00:31:00+01:00"}, "fremme_at_most_24h_after_modtaget"),
    ({"prioritet": "4"}, "prioritet_1_2_or_3"),
    ({"prioritet": '"1"'}, "prioritet_integer"),  # a JSON string is not a number
    ({"prioritet": "1.0"}, "prioritet_integer"),
    ({"kommunekode": "370.0"}, "kommunekode_integer"),  # a decimal is a type error, not "not in district"
    ({"aarsag": "ukendt"}, "aarsag_allowed_value"),
    ({"aarsag": "brand"}, "responstid_maalt_only_for_measured_causes"),
    ({"aflyst": '"ja"'}, "aflyst_json_boolean"),
    ({"kommunekode": "336"}, "kommunekode_in_district"),
    ({"sidst_aendret": None}, "sidst_aendret_required"),
])
def test_dispatch_rule_is_named(changes, rule):
    staged, quarantined = run("dispatches", DISPATCH, **changes)
    assert len(staged) == 0
    assert rule in quarantined["rules"][0].split("; ")


@pytest.mark.parametrize("source,row,changes,rule", [
    ("outreach", OUTREACH, {"antal": "0"}, "antal_at_least_1"),
    ("outreach", OUTREACH, {"antal": "2.5"}, "antal_integer"),
    ("outreach", OUTREACH, {"kommunekode": "=SUM(B2:B9)"}, "kommunekode_integer"),  # a spreadsheet formula
    ("ambassadors", AMBASSADOR, {"kommunekode": "3,70"}, "kommunekode_integer"),
    ("outreach", OUTREACH, {"aktivitet": "kaffemoede"}, "aktivitet_allowed_value"),
    ("outreach", OUTREACH, {"dato": "31-02-2019"}, "dato_local_date"),
    ("ambassadors", AMBASSADOR, {"aktiv_til": "01-01-2017"}, "aktiv_til_not_before_aktiv_fra"),
    ("ambassadors", AMBASSADOR, {"kommunekode": "336"}, "kommunekode_in_district"),
])
def test_outreach_and_roster_rules_are_named(source, row, changes, rule):
    staged, quarantined = run(source, row, **changes)
    assert len(staged) == 0 and rule in quarantined["rules"][0]


def test_repeated_ambassador_id_quarantines_every_copy():
    rows = [AMBASSADOR, {**AMBASSADOR, "line": 3}, {**AMBASSADOR, "line": 4, "ambassadoer_id": "TA-2"}]
    frame = pl.DataFrame(rows, schema={k: (pl.Int64 if k == "line" else pl.String) for k in AMBASSADOR})
    staged, quarantined = validate_rows(SOURCES["ambassadors"], frame)
    assert staged["ambassadoer_id"].to_list() == ["TA-2"]
    assert quarantined["line"].to_list() == [2, 3]
    assert set(quarantined["rules"]) == {"ambassadoer_id_unique_in_roster"}


def test_autumn_repeated_hour_takes_the_summer_offset():
    staged, _ = run("reports", REPORT, anmeldt_tid="27-10-2019 02:30:00", gerningstid_fra=None)
    assert staged["anmeldt_tid"][0].isoformat() == "2019-10-27T00:30:00+00:00"


def test_one_row_breaking_two_rules_names_both():
    _, quarantined = run("reports", REPORT, kommunekode="336", lovomraade="X")
    assert quarantined["rules"][0] == "kommunekode_in_district; lovomraade_allowed_value"


def test_quarantined_raw_values_hold_no_personal_data_columns():
    _, quarantined = run("reports", REPORT, kommunekode="336")
    assert "fritekst" not in quarantined["raw_values"][0] and "336" in quarantined["raw_values"][0]


@pytest.mark.parametrize("source,row,column,value", [
    ("reports", REPORT, "kommunekode", "370.0"),
    ("dispatches", DISPATCH, "prioritet", "1.5"),
    ("outreach", OUTREACH, "antal", "=B2*2"),
    ("ambassadors", AMBASSADOR, "kommunekode", "=VLOOKUP(A2)"),
])
def test_a_value_that_is_not_a_whole_number_is_a_type_error_only(source, row, column, value):
    """A formula or a decimal in an integer column is named as a type error, not as a value rule
    ("not in district", "not 1, 2 or 3") that would send the data owner looking in the wrong place."""
    _, quarantined = run(source, row, **{column: value})
    assert quarantined["rules"].to_list() == [f"{column}_integer"]


@pytest.mark.parametrize("source,row,column,value,rule", [
    ("reports", REPORT, "anmeldt_tid", "31-02-2019 10:00:00", "anmeldt_tid_local_timestamp"),
    ("dispatches", DISPATCH, "modtaget", "2019-02-31T10:00:00+01:00", "modtaget_iso_timestamp_with_offset"),
    ("outreach", OUTREACH, "dato", "31-02-2019", "dato_local_date"),
    ("ambassadors", AMBASSADOR, "aktiv_fra", "30-02-2018", "aktiv_fra_local_date"),
])
def test_a_date_in_the_right_format_that_is_not_in_the_calendar_is_quarantined_beside_good_rows(
        source, row, column, value, rule):
    """31 February has the format's shape: the row is quarantined under the format's rule, and the
    other rows of the batch are staged (the parse never raises)."""
    frame = pl.DataFrame([row, {**row, "line": 3, column: value}],
                         schema={k: (pl.Int64 if k == "line" else pl.String) for k in row})
    if source == "ambassadors":
        frame = frame.with_columns(ambassadoer_id=pl.Series(["TA-1", "TA-2"]))
    staged, quarantined = validate_rows(SOURCES[source], frame)
    assert len(staged) == 1 and quarantined["line"].to_list() == [3]
    assert rule in quarantined["rules"][0].split("; ")


def test_an_offence_of_exactly_120_characters_is_valid():
    staged, quarantined = run("reports", REPORT, overtraedelse="x" * 120)
    assert len(staged) == 1 and len(quarantined) == 0


@pytest.mark.parametrize("changes", [
    {"disponeret": "2019-02-01T00:30:00+01:00"},                                        # dispatched as received
    {"fremme": "2019-02-01T00:30:00+01:00", "disponeret": None},                       # on scene as received
    {"fremme": "2019-02-02T00:30:00+01:00", "disponeret": None, "afsluttet": None},    # exactly 24 hours later
])
def test_dispatch_time_rules_include_their_boundary(changes):
    staged, quarantined = run("dispatches", DISPATCH, **changes)
    assert len(quarantined) == 0 and len(staged) == 1


@pytest.mark.parametrize("source,row", [("reports", REPORT), ("dispatches", DISPATCH),
                                        ("outreach", OUTREACH), ("ambassadors", AMBASSADOR)])
def test_a_row_without_a_municipality_is_quarantined_as_required(source, row):
    staged, quarantined = run(source, row, kommunekode=None)
    assert len(staged) == 0 and quarantined["rules"][0].split("; ") == ["kommunekode_required"]


# The contract's empty-able fields (SPEC 2.1-2.4: "optional", "or null", "empty = still active"); every
# other field of the raw models is required.
OPTIONAL = {"reports": {"gerningstid_fra"}, "dispatches": {"disponeret", "fremme", "afsluttet", "journalnr"},
            "outreach": {"lokalomraade"}, "ambassadors": {"aktiv_til"}}


@pytest.mark.parametrize("source,row", [("reports", REPORT), ("dispatches", DISPATCH),
                                        ("outreach", OUTREACH), ("ambassadors", AMBASSADOR)])
def test_every_required_column_is_named_when_missing_and_the_optional_ones_may_be_empty(source, row):
    for name in row:
        if name == "line":
            continue
        staged, quarantined = run(source, row, **{name: None})
        rules = quarantined["rules"][0].split("; ") if len(quarantined) else []
        if name in OPTIONAL[source]:
            assert len(staged) == 1, (source, name)
        else:
            assert len(staged) == 0 and f"{name}_required" in rules, (source, name, rules)


@pytest.mark.parametrize("source,row,changes", [
    ("reports", REPORT, {"gerningstid_fra": REPORT["anmeldt_tid"]}),            # began when reported
    ("outreach", OUTREACH, {"antal": "1"}),                                     # the least count
    ("ambassadors", AMBASSADOR, {"aktiv_fra": "01-01-2018", "aktiv_til": "01-01-2018"}),  # one day
])
def test_the_other_rules_include_their_boundary(source, row, changes):
    staged, quarantined = run(source, row, **changes)
    assert len(quarantined) == 0 and len(staged) == 1
