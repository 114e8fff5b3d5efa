"""The multi-year sample shows trends, and a late delivery restates a closed month (issue 15).

Checked on the raw files the generator writes, read with DuckDB (not the pipeline): the
in-force version of a call-out is the one with the latest `sidst_aendret` (SPEC 2.5).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import pytest

from sample import SampleSpec, write_late_delivery, write_sample
from sample import events as ev

SORO, FAXE, LOLLAND = 340, 320, 360


def responses(root: Path, skip: str | None = None) -> duckdb.DuckDBPyConnection:
    """A connection with table r: the in-force measured responses of the landing folder root
    (haendelse_id, k = municipality, y = local year, m = local month, s = seconds, fremme,
    sidst_aendret), leaving out files whose name contains skip."""
    con = duckdb.connect()
    con.execute("set TimeZone = 'Europe/Copenhagen'")
    con.execute(f"""
        create table d as
        select * from read_json('{root}/dispatches/*.jsonl*', format = 'newline_delimited',
            ignore_errors = true, filename = true,
            columns = {{haendelse_id: 'VARCHAR', modtaget: 'VARCHAR', fremme: 'VARCHAR', prioritet: 'VARCHAR',
                        aflyst: 'VARCHAR', responstid_maalt: 'VARCHAR', kommunekode: 'VARCHAR',
                        sidst_aendret: 'VARCHAR'}})
        where regexp_matches(haendelse_id, '^SLF-\\d{{4}}-\\d{{8}}$') and prioritet in ('1', '2', '3')""")
    where = f"filename not like '%{skip}%'" if skip else "true"
    con.execute(f"""
        create table r as
        select haendelse_id, kommunekode::int as k, year(modtaget::timestamptz) as y,
               date_trunc('month', modtaget::timestamptz)::date as m,
               epoch(fremme::timestamptz) - epoch(modtaget::timestamptz) as s,
               fremme::timestamptz as fremme, sidst_aendret::timestamptz as sidst_aendret
        from (select *, row_number() over (partition by haendelse_id
                                           order by sidst_aendret::timestamptz desc, filename desc) as rn
              from d where {where})
        where rn = 1 and responstid_maalt = 'true' and aflyst = 'false' and fremme is not null""")
    return con


def yearly_means(con, code: int | None) -> list[float]:
    where = "true" if code is None else f"k = {code}"
    return [m for (m,) in con.execute(f"select avg(s) / 60 from r where {where} group by y order by y").fetchall()]


def falls(values: list[float]) -> bool:
    return all(a > b for a, b in zip(values, values[1:], strict=False))


def test_response_factors_leave_2019_and_later_untouched():
    for code in ev.RESPONSE_MEAN_MIN:
        assert ev.response_factor(2019, code) == 1.0 and ev.response_factor(2024, code) == 1.0
        assert ev.response_factor(2010, code) == ev.response_factor(2015, code)
    assert ev.response_factor(2015, SORO) > ev.response_factor(2016, SORO) > 1.0 > ev.response_factor(2015, FAXE)


@pytest.fixture(scope="module")
def five_years(tmp_path_factory) -> Path:
    """The call-outs of the full 2015-2019 sample (byte for byte those of the whole sample)."""
    out = tmp_path_factory.mktemp("trends")
    write_sample(out, SampleSpec(years=tuple(range(2015, 2020)), sources=("dispatches",)))
    return out


def test_soro_improves_year_on_year_while_faxe_does_not(five_years):
    con = responses(five_years)
    assert [y for (y,) in con.execute("select distinct y from r order by y").fetchall()] == list(range(2015, 2020))
    soro, faxe = yearly_means(con, SORO), yearly_means(con, FAXE)
    assert falls(soro), soro
    assert soro[0] - soro[-1] > 4  # about 19.5 -> 14.1 minutes
    assert faxe[-1] > faxe[0] and not any(a > b for a, b in zip(faxe, faxe[1:], strict=False)), faxe
    assert min(n for (n,) in con.execute(f"select count(*) from r where k = {SORO} group by y").fetchall()) >= 20


def test_the_district_mean_drifts_down_and_the_spread_shrinks(five_years):
    con = responses(five_years)
    district = yearly_means(con, None)
    assert falls(district), district
    assert 12.0 < district[-1] < 12.2 and 12.3 < district[2] < 12.8  # 2017: Rigspolitiet measured 12:36
    spread = [s for (s,) in con.execute(
        "select max(m) - min(m) from (select y, k, avg(s) / 60 as m from r group by y, k) group by y order by y"
    ).fetchall()]
    assert falls(spread), spread


def test_2019_is_the_same_alone_in_a_range_and_with_one_source(tmp_path):
    write_sample(tmp_path / "alone", SampleSpec(years=(2019,), days=3))
    write_sample(tmp_path / "range", SampleSpec(years=(2018, 2019), days=3, sources=("dispatches",)))
    alone = sorted(p.name for p in (tmp_path / "alone" / "dispatches").iterdir())
    assert alone == sorted(p.name for p in (tmp_path / "range" / "dispatches").glob("2019-*"))
    for name in alone:
        assert ((tmp_path / "alone" / "dispatches" / name).read_bytes()
                == (tmp_path / "range" / "dispatches" / name).read_bytes()), name
    assert not (tmp_path / "range" / "reports").exists()
    with pytest.raises(ValueError, match="unknown sample source"):
        write_sample(tmp_path / "x", SampleSpec(years=(2019,), days=1, sources=("dispatch",)))


def test_late_delivery_restates_a_closed_month(tmp_path):
    write_sample(tmp_path, SampleSpec(years=(2019,), days=100, sources=("dispatches",)))  # 1 Jan - 10 Apr
    before = responses(tmp_path)
    late = write_late_delivery(tmp_path)
    assert late.path == tmp_path / "dispatches" / "2020-01-02_eftersending_2019-03.jsonl"
    first = late.path.read_bytes()
    assert write_late_delivery(tmp_path) == late and late.path.read_bytes() == first  # deterministic

    after = responses(tmp_path)
    cells = "select m, k, count(*), sum(s) from r group by all order by all"
    old = {(m, k): (n, s) for m, k, n, s in before.execute(cells).fetchall()}
    new = {(m, k): (n, s) for m, k, n, s in after.execute(cells).fetchall()}
    moved = {key for key in old if old[key] != new[key]}
    assert moved == {(dt.date(2019, 3, 1), LOLLAND)}  # one closed month of one municipality
    n, total = old[(dt.date(2019, 3, 1), LOLLAND)]
    assert new[(dt.date(2019, 3, 1), LOLLAND)] == (n, total - 180 * late.changed)  # each 3 minutes earlier
    assert late.responses == n and 0 < late.changed <= n
    assert late.mean_before_min == pytest.approx(total / n / 60)
    assert late.mean_after_min == pytest.approx((total - 180 * late.changed) / n / 60)

    # every record of the file is a newer version of an in-force call-out, only fremme and sidst_aendret differ
    records = [json.loads(line) for line in late.path.read_text(encoding="utf-8").splitlines()]
    assert len(records) == late.changed
    shown = {r[0]: r for r in before.execute(
        "select haendelse_id, s, sidst_aendret from r where k = 360 and m = '2019-03-01'").fetchall()}
    for rec in records:
        _, seconds, changed_at = shown[rec["haendelse_id"]]
        assert seconds > 600 and rec["kommunekode"] == LOLLAND and rec["responstid_maalt"] is True
        assert dt.datetime.fromisoformat(rec["sidst_aendret"]) > changed_at
        assert (dt.datetime.fromisoformat(rec["fremme"]) - dt.datetime.fromisoformat(rec["modtaget"])
                ).total_seconds() == seconds - 180


def test_late_delivery_follows_the_contract(tmp_path):
    """The real readers and validation take every row of the file as valid (SPEC 2.2)."""
    from flows.ingest.readers import read_many
    from flows.ingest.sources import SOURCES
    from flows.ingest.validate import validate_rows

    write_sample(tmp_path, SampleSpec(years=(2019,), days=100, sources=("dispatches",)))
    late = write_late_delivery(tmp_path)
    (parsed,) = read_many([late.path], SOURCES["dispatches"], tmp_path)
    good, bad = validate_rows(SOURCES["dispatches"], parsed.rows)
    assert bad.height == 0 and good.height == late.changed


def test_late_delivery_needs_the_month_in_the_landing_folder(tmp_path):
    write_sample(tmp_path, SampleSpec(years=(2019,), days=20, sources=("dispatches",)))
    with pytest.raises(ValueError, match="no measured call-out of 2019-03"):
        write_late_delivery(tmp_path)
