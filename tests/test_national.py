"""The national release (SPEC 8.4) on three small districts of a fleet of four: two current, one
whose last run failed (its last good release is used) and one with no release (missing)."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest
from conftest import cli, write

from flows.fleet import read_fleet, write_fleet

pytestmark = pytest.mark.slow
DISTRICTS = {"bornholm": 4, "koebenhavn": 2, "fyn": 3}  # district -> days of sample
EQUAL = ("kpi_reports", "kpi_callouts", "kpi_outreach", "kpi_response_times")


def rows(path: Path, sql: str, params=None) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


@pytest.fixture(scope="module")
def country(prefect_server, tmp_path_factory):
    from flows.national import national
    from flows.refresh import ThresholdExceeded, refresh
    from sample import SampleSpec, write_sample

    root = tmp_path_factory.mktemp("country")
    fleet_path = write_fleet(root / "politikpi.toml", [*DISTRICTS, "nordsjaelland"])
    fleet = read_fleet(fleet_path)
    releases = {}
    for code, days in DISTRICTS.items():
        folders = fleet.districts[code]
        write_sample(folders.landing, SampleSpec(years=(2019,), days=days, district=code))
        done = refresh(str(folders.landing), str(folders.state), str(folders.warehouse), district=code)
        releases[code] = done["release"]["release_id"]
    # fyn is delivered a file of 250 rows that all name another district's municipality: its run fails
    header = ("journalnr;anmeldt_tid;gerningstid_fra;kommunekode;lovomraade;overtraedelse;sidst_aendret;fritekst;"
              "anmelder_cpr")
    bad = [f"2300-00009-{i:05d}-19;05-01-2019 10:00:00;;101;Straffelov;Tyveri;05-01-2019 10:05:00;;"
           for i in range(250)]
    write(fleet.districts["fyn"].landing / "reports" / "2019-01-05_extra.csv", "\n".join([header, *bad]) + "\n")
    fyn = fleet.districts["fyn"]
    with pytest.raises(ThresholdExceeded):
        refresh(str(fyn.landing), str(fyn.state), str(fyn.warehouse), district="fyn")
    outcome = national(str(fleet_path), quiet_seconds=0)
    return root, fleet, releases, outcome


def national_file(fleet) -> Path:
    return fleet.national_warehouse / "politikpi_national.duckdb"


def district_file(fleet, code: str) -> Path:
    return fleet.districts[code].warehouse / "politikpi.duckdb"


def test_every_district_is_listed_with_its_status_and_the_release_it_gave(country):
    _, fleet, releases, outcome = country
    assert outcome["status"] == "published"
    listed = {code: (status, release, reason) for code, release, status, reason in
              rows(national_file(fleet), "select district_code, release_id, status, reason from national_inputs")}
    assert len(listed) == 12
    assert {code: s for code, (s, _, _) in listed.items() if s != "not_in_fleet"} == \
        {"bornholm": "current", "koebenhavn": "current", "fyn": "failed", "nordsjaelland": "missing"}
    assert listed["fyn"][1] == releases["fyn"] and "last run failed" in listed["fyn"][2]
    assert listed["nordsjaelland"][1] is None
    assert {code for code, (_, release, _) in listed.items() if release} == set(DISTRICTS)


def test_every_municipality_row_equals_its_district_release_row_both_ways(country):
    _, fleet, _, _ = country
    with duckdb.connect() as con:
        con.execute(f"attach '{national_file(fleet)}' as n (read_only)")
        for code in DISTRICTS:
            con.execute(f"attach '{district_file(fleet, code)}' as {code} (read_only)")
            for table in EQUAL:
                cols = ", ".join(r[0] for r in con.execute(f"describe {code}.{table}").fetchall())
                national = f"""select {cols} from n.{table} where municipality_code in
                               (select municipality_code from n.dim_municipality where district_code = '{code}')"""
                district = f"select {cols} from {code}.{table} where municipality_code is not null"
                assert con.execute(f"select count(*) from ({district})").fetchone()[0] > 0, (code, table)
                for a, b in ((national, district), (district, national)):
                    assert con.execute(f"select count(*) from ({a} except all {b})").fetchone()[0] == 0, (code, table)


def test_the_country_is_the_sum_of_its_districts_and_the_comparison_matches_response_times(country):
    _, fleet, _, _ = country
    path = national_file(fleet)
    total = sum(rows(district_file(fleet, code), "select sum(reports) from kpi_reports")[0][0] for code in DISTRICTS)
    assert rows(path, "select sum(reports) from kpi_year_summary") == [(total,)]
    assert rows(path, "select municipalities from kpi_year_summary") == [(1 + 4 + 10,)]
    country_rows = rows(path, """select c.responses, c.mean_min, c.median_min, c.p90_min, t.responses, t.mean_min,
                                        t.median_min, t.p90_min
                                 from kpi_district_comparison as c join kpi_response_times as t
                                   on t.period_grain = c.period_grain and t.period_start = c.period_start
                                  and t.municipality_code is null and t.cause is not distinct from c.cause
                                 where c.district_code is null""")
    assert country_rows and all(r[:4] == r[4:] for r in country_rows)
    ranked = rows(path, """select district_code, mean_min, rank_mean, responses from kpi_district_comparison
                           where period_grain = 'year' and cause is null and district_code is not null
                           order by mean_min desc""")
    assert {r[0] for r in ranked} == set(DISTRICTS)
    qualifying = [r for r in ranked if r[3] >= 20]
    assert [r[2] for r in qualifying] == list(range(1, len(qualifying) + 1))
    assert all(r[2] is None for r in ranked if r[3] < 20)


def test_the_national_release_holds_the_country_and_no_event_rows(country):
    _, fleet, _, _ = country
    path = national_file(fleet)
    tables = {t for (t,) in rows(path, "select table_name from duckdb_tables()")}
    assert not {t for t in tables if t.startswith("fct_")} and "dim_ambassadors" not in tables
    assert {"dim_police_district", "national_inputs", "kpi_district_comparison", "kpi_data_quality"} <= tables
    assert rows(path, "select count(*), count(distinct district_code) from dim_municipality") == [(98, 12)]
    assert rows(path, "select count(*) from dim_police_district") == [(12,)]
    assert rows(path, "select count(distinct district_code) from kpi_data_quality") == [(3,)]
    assert rows(path, "select district_code from _release") == [(None,)]
    country, districts = rows(path, "select safety_ambassadors, ambassador_local_areas from kpi_year_summary")[0], [
        rows(district_file(fleet, code), "select safety_ambassadors, ambassador_local_areas from kpi_year_summary")[0]
        for code in DISTRICTS]
    assert country == tuple(map(sum, zip(*districts, strict=True)))  # ids repeat across districts: still additive


def test_the_same_district_releases_publish_nothing_new_and_verify_is_clean(country):
    from flows.national import national

    _, fleet, _, outcome = country
    again = national(str(fleet.path), quiet_seconds=0)
    assert again["status"] == "unchanged" and again["release"]["release_id"] == outcome["release"]["release_id"]
    done = cli("verify", "--warehouse", fleet.national_warehouse)
    assert done.returncode == 0, done.stderr
    done = cli("report", "--national", "--fleet", fleet.path, "--out", fleet.path.parent / "national.html")
    assert done.returncode == 0, done.stderr
    html = (fleet.path.parent / "national.html").read_text(encoding="utf-8")
    assert "Københavns Politi" in html and "Hele landet" in html and "mangler" in html


def test_the_audit_fails_a_national_row_that_differs_from_its_district(country, tmp_path):
    from flows.country.audit import audit_national
    from flows.country.inputs import snapshot
    from flows.release.audit import AuditFailed

    _, fleet, _, _ = country
    changed = tmp_path / "national.duckdb"
    shutil.copyfile(national_file(fleet), changed)
    with duckdb.connect(str(changed)) as con:
        con.execute("""update kpi_reports set reports = reports + 1 where municipality_code = 400
                       and month = (select min(month) from kpi_reports where municipality_code = 400)""")
    used = [i for i in snapshot(fleet) if i.has_release]
    with pytest.raises(AuditFailed, match="district_rows_equal"):
        audit_national(changed, used, tmp_path / "docs")


def test_a_district_behind_is_stale_a_changed_or_foreign_release_is_missing(country, tmp_path):
    """Statuses from the manifests alone: data_through more than 2 days behind the newest -> stale; a
    current release whose file no longer matches its checksum, with no older one that does -> missing;
    another district's warehouse -> missing."""
    import json

    from flows.country.inputs import snapshot

    _, fleet, _, _ = country
    root = tmp_path / "fleet"
    for code in ("bornholm", "koebenhavn", "fyn"):
        shutil.copytree(fleet.districts[code].warehouse, root / code / "warehouse", symlinks=True)
    shutil.copytree(fleet.districts["bornholm"].warehouse, root / "nordsjaelland" / "warehouse", symlinks=True)
    path = write_fleet(root / "politikpi.toml", ["bornholm", "koebenhavn", "fyn", "nordsjaelland"])
    manifest_path = root / "koebenhavn" / "warehouse" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for entry in manifest["releases"]:  # three days behind bornholm's copy
        entry["data_through"] = "2019-01-01"
    manifest_path.write_text(json.dumps(manifest))
    fyn = root / "fyn" / "warehouse"
    current = json.loads((fyn / "manifest.json").read_text())["current"]
    release_file = fyn / "releases" / f"{current}.duckdb"
    release_file.chmod(0o644)
    with open(release_file, "ab") as fh:
        fh.write(b"tampered")
    statuses = {i.district_code: (i.status, i.release_id, i.reason) for i in snapshot(read_fleet(path))}
    assert statuses["bornholm"][0] == "current"
    assert statuses["koebenhavn"][0] == "stale" and "3 days behind" in statuses["koebenhavn"][2]
    assert statuses["fyn"][0] == "missing" and "no listed release matches its checksum" in statuses["fyn"][2]
    assert statuses["nordsjaelland"][0] == "missing" and "district bornholm" in statuses["nordsjaelland"][2]


def test_a_rolled_back_national_release_stays_pinned_and_a_district_run_refuses_its_warehouse(country):
    from flows.district import WrongDistrict, claim
    from flows.national import national

    _, fleet, _, outcome = country
    rid = outcome["release"]["release_id"]
    assert cli("rollback", rid, "--warehouse", fleet.national_warehouse).returncode == 0
    try:
        again = national(str(fleet.path), quiet_seconds=0)
        assert again["status"] == "pinned" and again["release"]["release_id"] == rid
    finally:
        assert cli("unpin", "--warehouse", fleet.national_warehouse).returncode == 0
    with pytest.raises(WrongDistrict, match="holds the national release"):
        claim(fleet.districts["bornholm"].state, fleet.national_warehouse, "bornholm")


def test_reports_per_1000_divides_by_the_districts_population_of_the_year_nearest_held(country):
    import csv

    _, fleet, _, _ = country
    held: dict[int, list[tuple[int, int]]] = {}
    with open(Path(__file__).resolve().parent.parent / "reference" / "population.csv", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            held.setdefault(int(r["municipality_code"]), []).append((int(r["year"]), int(r["population"])))
    nearest = {code: min(years, key=lambda y: (abs(y[0] - 2019), y[0]))[1] for code, years in held.items()}
    path = national_file(fleet)
    for code in DISTRICTS:
        members = [c for (c,) in rows(path, "select municipality_code from dim_municipality where district_code = ?",
                                      [code])]
        reports, rate = rows(path, """select reports, reports_per_1000 from kpi_district_comparison
                                      where period_grain = 'year' and cause is null and district_code = ?""",
                             [code])[0]
        assert rate == pytest.approx(reports * 1000 / sum(nearest[c] for c in members)), code
