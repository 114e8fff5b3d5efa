"""The national models (sql/national/) on hand-written district releases: no Prefect, no fleet.

A reference of three districts: Bornholm (one municipality, two population years), Fyn (two
municipalities whose latest population years differ) and Nordjylland (no release: still listed in
dim_police_district). Bornholm and Fyn are built from a few staged rows each with the district build
(transform.build_release), then the national release from both (country.build.build_national).
Every expected value is worked out here from the rows and the reference, never read back from SQL.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from flows.country.build import build_national
from flows.country.inputs import DistrictInput
from flows.ingest import state
from flows.transform import transform

DISTRICTS = "district_code,police_district,journal_prefix\n" \
            "bornholm,Bornholms Politi,1100\nfyn,Fyns Politi,2300\nnordjylland,Nordjyllands Politi,5100\n"
MUNICIPALITIES = "municipality_code,municipality,police_district,district_code,station\n" \
                 "400,Bornholm,Bornholms Politi,bornholm,Rønne\n410,Middelfart,Fyns Politi,fyn,\n" \
                 "420,Assens,Fyns Politi,fyn,\n851,Aalborg,Nordjyllands Politi,nordjylland,\n"
POPULATION = {400: {2018: 39_000, 2020: 39_499}, 410: {2019: 38_000}, 420: {2019: 41_000, 2021: 42_000},
              851: {2020: 217_000}}


def callout(hid: str, when: str, seconds: int, code: int, cause: str = "husspektakel") -> dict:
    at = dt.datetime.fromisoformat(when)
    return {"file_identity": "dispatches/a.jsonl", "line": 1, "haendelse_id": hid, "modtaget": at,
            "disponeret": None, "fremme": at + dt.timedelta(seconds=seconds), "prioritet": 1, "aarsag": cause,
            "responstid_maalt": True, "kommunekode": code, "aflyst": False, "sidst_aendret": at}


def report(jnr: str, when: str, code: int) -> dict:
    at = dt.datetime.fromisoformat(when)
    return {"file_identity": "reports/a.csv", "line": 2, "journalnr": jnr, "anmeldt_tid": at, "kommunekode": code,
            "lovomraade": "Straffelov", "overtraedelse": "Tyveri", "sidst_aendret": at}


def district_release(root: Path, code: str, callouts: list[dict], reports: list[dict], monkeypatch) -> Path:
    monkeypatch.setenv("POLITIKPI_DISTRICT", code)
    st, path = root / code / "state", root / code / "release.duckdb"
    with state.connect(st) as con:
        for table, rows in (("staged_dispatches", callouts), ("staged_reports", reports)):
            for row in rows:
                con.execute(f"insert into {table} ({', '.join(row)}) values ({', '.join('?' for _ in row)})",
                            list(row.values()))
    con, _ = transform.build_release(st, path, "v1.1.0")
    con.close()
    return path


BORNHOLM_Q1 = [600 + 10 * i for i in range(20)]   # 2019 Q1, exactly 20: ranked, and not low_sample
FYN_Q1 = [300 + i for i in range(21)]             # 2019 Q1: faster, so Fyn ranks second
FYN_Q2 = [890 + i for i in range(20)] + [300, 300, 300, 601, 1201]  # the thresholds' boundary seconds + 1


def quantile(values: list[int], q: float) -> float:
    """Continuous quantile, in minutes."""
    ordered, rank = sorted(values), q * (len(values) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return (ordered[low] + (rank - low) * (ordered[high] - ordered[low])) / 60


@pytest.fixture(scope="module")
def national(tmp_path_factory):
    root = tmp_path_factory.mktemp("national")
    folder = root / "reference"
    folder.mkdir()
    (folder / "police_districts.csv").write_text(DISTRICTS, encoding="utf-8")
    (folder / "municipalities.csv").write_text(MUNICIPALITIES, encoding="utf-8")
    (folder / "population.csv").write_text("municipality_code,year,population,source\n" + "".join(
        f"{code},{year},{n},test\n" for code, years in POPULATION.items() for year, n in years.items()),
        encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POLITIKPI_REFERENCE", str(folder))
        bornholm = district_release(root, "bornholm", [
            *(callout(f"B{i}", f"2019-02-{1 + i:02d}T12:00:00+00:00", s, 400) for i, s in enumerate(BORNHOLM_Q1)),
            callout("B-Q4", "2019-11-10T12:00:00+00:00", 1200, 400, cause="indbrud_igang"),
            callout("B-2020", "2020-02-10T12:00:00+00:00", 600, 400),
        ], [report(f"1100-00001-0000{i}-19", "2019-03-01T10:00:00+00:00", 400) for i in range(3)], mp)
        fyn = district_release(root, "fyn", [
            *(callout(f"F{i}", f"2019-02-{1 + i:02d}T12:00:00+00:00", s, 410) for i, s in enumerate(FYN_Q1)),
            *(callout(f"G{i}", f"2019-05-{1 + i:02d}T12:00:00+00:00", s, 420) for i, s in enumerate(FYN_Q2)),
        ], [report("2300-00001-00001-19", "2019-05-01T10:00:00+00:00", 410),
            report("2300-00001-00002-19", "2019-05-02T10:00:00+00:00", 420)], mp)
        inputs = [DistrictInput("bornholm", "Bornholms Politi", "current", "", release_id="b1", sha256="b" * 64,
                                file=str(bornholm)),
                  DistrictInput("fyn", "Fyns Politi", "current", "", release_id="f1", sha256="f" * 64, file=str(fyn)),
                  DistrictInput("nordjylland", "Nordjyllands Politi", "missing", "no release")]
        path = root / "national.duckdb"
        build_national(path, inputs, "v1.1.0", "run", "n1")
    with duckdb.connect(str(path), read_only=True) as con:
        yield con


def test_every_police_district_is_listed_with_its_municipalities_and_latest_population(national):
    got = national.execute("select district_code, police_district, municipalities, population, population_year "
                           "from dim_police_district order by district_code").fetchall()
    assert got == [("bornholm", "Bornholms Politi", 1, 39_499, 2020),   # the latest year held, not the first
                   ("fyn", "Fyns Politi", 2, 38_000 + 42_000, 2021),    # the latest of its municipalities' years
                   ("nordjylland", "Nordjyllands Politi", 1, 217_000, 2020)]  # no release: listed all the same


def comparison(con, grain: str, start: str, cause=None) -> dict:
    cur = con.execute("""select * from kpi_district_comparison where period_grain = ? and period_start = ?::date
                         and cause is not distinct from ?""", [grain, start, cause])
    names = [d[0] for d in cur.description]
    rows = cur.fetchall()
    by_district = {row[names.index("district_code")]: dict(zip(names, row, strict=True)) for row in rows}
    assert len(by_district) == len(rows)  # one row per key
    return by_district


def test_the_comparison_pools_each_districts_responses_and_ranks_the_slowest_first(national):
    year = comparison(national, "year", "2019-01-01")
    assert set(year) == {"bornholm", "fyn", None}  # a district without a release has no row
    born, fyn, country = year["bornholm"], year["fyn"], year[None]
    for row, seconds in ((born, [*BORNHOLM_Q1, 1200]), (fyn, FYN_Q1 + FYN_Q2),
                         (country, [*BORNHOLM_Q1, 1200, *FYN_Q1, *FYN_Q2])):
        assert row["responses"] == len(seconds)
        assert row["mean_min"] == pytest.approx(sum(seconds) / len(seconds) / 60)
        assert row["median_min"] == pytest.approx(quantile(seconds, 0.5))
        assert row["p90_min"] == pytest.approx(quantile(seconds, 0.9))
        assert row["share_within_10_min"] == sum(s <= 600 for s in seconds) / len(seconds)
        assert row["share_within_20_min"] == sum(s <= 1200 for s in seconds) / len(seconds)
    assert (born["rank_mean"], fyn["rank_mean"], country["rank_mean"]) == (1, 2, None)  # the slowest first
    assert country["police_district"] is None and born["police_district"] == "Bornholms Politi"
    q1 = comparison(national, "quarter", "2019-01-01")
    # Bornholm's 20 responses are enough to be ranked (with Fyn's 21), and not a low sample
    assert (q1["bornholm"]["rank_mean"], q1["fyn"]["rank_mean"]) == (1, 2)
    assert (q1["bornholm"]["responses"], q1["bornholm"]["low_sample"]) == (20, False)


def test_a_district_under_20_responses_is_not_ranked_and_causes_have_their_own_rows(national):
    q4 = comparison(national, "quarter", "2019-10-01")
    assert set(q4) == {"bornholm", None} and q4["bornholm"]["responses"] == 1
    assert q4["bornholm"]["rank_mean"] is None and q4["bornholm"]["low_sample"] is True
    burglary = comparison(national, "year", "2019-01-01", "indbrud_igang")
    assert set(burglary) == {"bornholm", None} and burglary["bornholm"]["mean_min"] == 20.0
    assert burglary["bornholm"]["reports"] is None and burglary["bornholm"]["population_year"] is None


def test_reports_per_1000_use_each_districts_population_of_the_nearest_year(national):
    year = comparison(national, "year", "2019-01-01")
    # 2019: Bornholm's nearest years are 2018 and 2020, a tie to the earlier; Fyn holds 2019 for both
    assert (year["bornholm"]["reports"], year["bornholm"]["population_year"]) == (3, 2018)
    assert year["bornholm"]["reports_per_1000"] == pytest.approx(3 * 1000 / 39_000)
    assert (year["fyn"]["reports"], year["fyn"]["population_year"]) == (2, 2019)
    assert year["fyn"]["reports_per_1000"] == pytest.approx(2 * 1000 / (38_000 + 41_000))
    assert (year[None]["reports"], year[None]["population_year"]) == (5, 2019)
    assert year[None]["reports_per_1000"] == pytest.approx(5 * 1000 / (39_000 + 38_000 + 41_000))
    # quarters: Bornholm reported in Q1 and Fyn in Q2, each beside its own responses
    q1, q2 = comparison(national, "quarter", "2019-01-01"), comparison(national, "quarter", "2019-04-01")
    assert (q1["bornholm"]["reports"], q1["fyn"]["reports"], q2["fyn"]["reports"]) == (3, 0, 2)
    assert q1["fyn"]["reports_per_1000"] == 0.0  # no report: 0 per 1,000
    assert year[None]["population_year"] == 2019
    assert comparison(national, "year", "2020-01-01")["bornholm"]["population_year"] == 2020
