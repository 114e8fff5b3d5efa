"""Samples of a few days keep their dirt in proportion: each refreshes cleanly on its own and as
a new day on top of a history, while the full year keeps every kind of dirt (issue: the sample
of a few days must stay under the failure threshold)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sample import SampleSpec, write_sample

pytestmark = pytest.mark.slow

# Each kind of dirt the generator plants (sample/events.py) -> the validation rule that must catch it.
REPORT_RULES = {
    "journalnr_pattern": "journalnr_pattern",
    "anmeldt_tid_required": "anmeldt_tid_required",
    "anmeldt_tid_format": "anmeldt_tid_local_timestamp",
    "gerningstid_after_anmeldt": "gerningstid_fra_not_after_anmeldt_tid",
    "kommunekode_in_district": "kommunekode_in_district",
    "kommunekode_integer": "kommunekode_integer",
    "lovomraade_enum": "lovomraade_allowed_value",
    "overtraedelse_empty": "overtraedelse_required",
    "overtraedelse_length": "overtraedelse_at_most_120_chars",
    "sidst_aendret_required": "sidst_aendret_required",
}
DISPATCH_RULES = {
    "haendelse_id_required": "haendelse_id_required",
    "modtaget_format": "modtaget_iso_timestamp_with_offset",
    "fremme_before_modtaget": "fremme_not_before_modtaget",
    "fremme_within_24h": "fremme_at_most_24h_after_modtaget",
    "prioritet_enum": "prioritet_1_2_or_3",
    "aarsag_enum": "aarsag_allowed_value",
    "responstid_only_measured_causes": "responstid_maalt_only_for_measured_causes",
    "kommunekode_in_district": "kommunekode_in_district",
    "sidst_aendret_required": "sidst_aendret_required",
    "aflyst_boolean": "aflyst_json_boolean",
}


def refreshed(root: Path, landing: Path) -> dict:
    """One real refresh with the default threshold; returns the run's rows per source."""
    from flows.refresh import refresh

    outcome = refresh(str(landing), str(root / "state"), str(root / "warehouse"))
    assert outcome["status"] == "published"
    return outcome["sources"]


def assert_clean(sources: dict) -> None:
    for name, rows in sources.items():
        assert rows["share"] < 0.01, (name, rows)
    assert sources["reports"]["read"] > 0 and sources["dispatches"]["read"] > 0


@pytest.mark.parametrize("days,scale", [(1, 1), (3, 1), (1, 20)])
def test_a_sample_of_a_few_days_refreshes_under_the_threshold(prefect_server, tmp_path, days, scale):
    write_sample(tmp_path / "landing", SampleSpec(years=(2019,), days=days, scale=scale))
    assert_clean(refreshed(tmp_path, tmp_path / "landing"))


def test_one_new_day_on_top_of_a_history_refreshes_under_the_threshold(prefect_server, tmp_path):
    write_sample(tmp_path / "landing", SampleSpec(years=(2019,), days=4, scale=2))
    night = tmp_path / "night"
    for folder in ("reports", "dispatches"):  # the fourth day arrives the next night
        (night / folder).mkdir(parents=True)
        for path in (tmp_path / "landing" / folder).glob("2019-01-04*"):
            path.rename(night / folder / path.name)
    refreshed(tmp_path, tmp_path / "landing")
    for path in night.rglob("2019-01-04*"):
        shutil.copy(path, tmp_path / "landing" / path.parent.name / path.name)
    sources = refreshed(tmp_path, tmp_path / "landing")
    assert_clean(sources)
    assert sources["reports"]["files"] >= 1 and sources["dispatches"]["files"] == 1


def test_the_full_year_keeps_every_kind_of_dirt(tmp_path):
    """The rules of every invalid row the generator knows appear in a whole year (proportional
    dirt never drops a kind there); read with the real readers and validation."""
    from flows.ingest.readers import read_many
    from flows.ingest.sources import SOURCES
    from flows.ingest.validate import validate_rows
    from sample import events as ev

    write_sample(tmp_path, SampleSpec(years=(2019,)))
    seen = {}
    for name in ("reports", "dispatches"):
        paths = sorted((tmp_path / name).iterdir())
        for parsed in read_many(paths, SOURCES[name], tmp_path):
            if hasattr(parsed, "rows"):
                _, bad = validate_rows(SOURCES[name], parsed.rows)
                seen.setdefault(name, set()).update(r for rules in bad["rules"] for r in rules.split("; "))
    # By name, not by count: each kind the generator plants is caught by the rule written for it, and no
    # other rule fires (a kind caught by the wrong rule, or by none, fails here).
    assert set(REPORT_RULES) == set(ev.REPORT_DIRT) and set(DISPATCH_RULES) == set(ev.DISPATCH_DIRT)
    assert seen["reports"] == set(REPORT_RULES.values()), seen["reports"] ^ set(REPORT_RULES.values())
    assert seen["dispatches"] == set(DISPATCH_RULES.values()), seen["dispatches"] ^ set(DISPATCH_RULES.values())
