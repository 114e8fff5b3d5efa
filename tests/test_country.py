"""The country (SPEC 8): reference data, --district, the sample per district, the fleet file."""

from __future__ import annotations

import csv
import gzip
import json
import re
from pathlib import Path

import polars as pl
import pytest
from conftest import cli

from flows.fleet import FleetError, read_fleet
from flows.ingest.sources import SOURCES
from flows.ingest.validate import validate_rows
from schemas.reference import UnknownDistrict, load_districts, load_municipalities, serving

REFERENCE = Path(__file__).resolve().parent.parent / "reference"
DECK_DISTRICT = {320: ("Faxe", 36_713, "Haslev"), 330: ("Slagelse", 79_122, "Slagelse"),
                 340: ("Sorø", 29_993, "Sorø"), 360: ("Lolland", 40_539, "Nakskov og Maribo"),
                 370: ("Næstved", 83_181, "Næstved (hovedstation)"), 376: ("Guldborgsund", 60_328, "Nykøbing F."),
                 390: ("Vordingborg", 45_268, "Vordingborg")}


def read_csv(name: str) -> list[dict]:
    with open(REFERENCE / name, encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_98_municipalities_each_in_exactly_one_of_12_districts_with_unique_codes():
    rows = read_csv("municipalities.csv")
    districts = load_districts()
    assert len(rows) == 98 and len({r["municipality_code"] for r in rows}) == 98
    assert len(districts) == 12 and {r["district_code"] for r in rows} == set(districts)
    assert len({d.journal_prefix for d in districts.values()}) == 12
    assert all(re.fullmatch(r"[a-z]+", code) for code in districts)
    assert "411" not in {r["municipality_code"] for r in rows}  # Christiansø is not a municipality
    names = {r["police_district"] for r in rows}
    assert names == {d.name for d in districts.values()}
    population = {int(r["municipality_code"]) for r in read_csv("population.csv")}
    assert population == {int(r["municipality_code"]) for r in rows}


def test_the_deck_district_keeps_its_seven_municipalities_names_stations_and_2021_populations():
    mine = {m.code: (m.name, m.population, m.station) for m in load_municipalities(district="sydsjaelland")}
    assert mine == DECK_DISTRICT
    assert load_districts()["sydsjaelland"].journal_prefix == 4100
    populations = {(r["municipality_code"], r["year"]): r["population"]
                   for r in read_csv("population.csv")}
    assert {int(c): int(p) for (c, y), p in populations.items() if y == "2021" and int(c) in DECK_DISTRICT} == \
        {code: pop for code, (_, pop, _) in DECK_DISTRICT.items()}


def test_the_district_selects_the_municipalities_a_row_may_name(monkeypatch):
    report = {"line": 2, "journalnr": "0100-00000-00001-19", "anmeldt_tid": "01-02-2019 10:00:00",
              "gerningstid_fra": None, "kommunekode": "147", "lovomraade": "Straffelov",
              "overtraedelse": "Tyveri", "sidst_aendret": "01-02-2019 10:05:00"}
    frame = pl.DataFrame([report], schema={k: (pl.Int64 if k == "line" else pl.String) for k in report})
    with serving("sydsjaelland"):
        staged, quarantined = validate_rows(SOURCES["reports"], frame)
    assert len(staged) == 0 and quarantined["rules"].to_list() == ["kommunekode_in_district"]
    with serving("koebenhavn"):
        staged, quarantined = validate_rows(SOURCES["reports"], frame)
    assert len(staged) == 1 and len(quarantined) == 0
    with serving("koebenhavn"), pytest.raises(UnknownDistrict, match="the districts are bornholm, fyn"):
        load_municipalities(district="atlantis")


def test_a_reference_folder_without_police_districts_is_one_district(tmp_path, monkeypatch):
    (tmp_path / "municipalities.csv").write_text("municipality_code,municipality,police_district,station\n"
                                                 "400,Bornholm,Bornholms Politi,Rønne\n", encoding="utf-8")
    (tmp_path / "population.csv").write_text("municipality_code,year,population,source\n400,2021,39499,test\n",
                                             encoding="utf-8")
    monkeypatch.setenv("POLITIKPI_REFERENCE", str(tmp_path))
    monkeypatch.setenv("POLITIKPI_DISTRICT", "whatever")
    assert [m.code for m in load_municipalities()] == [400]


def test_sample_per_district_scales_with_population_and_never_repeats_an_id(tmp_path):
    done = cli("sample", "--country", "--days", "2", "--out", tmp_path / "country")
    assert done.returncode == 0, done.stderr
    fleet = read_fleet(tmp_path / "country" / "politikpi.toml")
    assert sorted(fleet.districts) == sorted(load_districts())
    assert fleet.districts["fyn"].landing == (tmp_path / "country" / "fyn" / "landing").resolve()
    seen, reports = {}, {}
    for code, district in load_districts().items():
        landing = tmp_path / "country" / code / "landing"
        text = "".join((gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()).decode()
                       for p in sorted((landing / "dispatches").glob("*.jsonl*")))
        ids = set(re.findall(r'"haendelse_id": "([^"]+)"', text))
        assert all(i.startswith("SLF-" if code == "sydsjaelland" else f"{code.upper()}-") for i in ids), code
        assert not ids & set(seen), (code, sorted(ids & set(seen))[:3])
        seen.update(dict.fromkeys(ids, code))
        journals = re.findall(r"^(\d{4})-\d{5}-\d{5}-\d\d;", (landing / "reports" / "2019-01-02.csv")
                              .read_text(encoding="utf-8", errors="replace"), re.M)
        assert journals and {int(j) for j in journals} <= {district.journal_prefix, 9999}, code
        codes = {int(c) for c in re.findall(r'"kommunekode": (\d+)', text)}
        mine = {m.code for m in load_municipalities(district=code)}
        assert codes & mine and len(codes - mine) <= 1, code  # its own, and at most a neighbour (the dirt)
        reports[code] = len(journals)
    population = {c: sum(m.population for m in load_municipalities(district=c)) for c in load_districts()}
    assert reports["koebenhavn"] / reports["bornholm"] == pytest.approx(population["koebenhavn"] /
                                                                         population["bornholm"], rel=0.35)


def test_the_deck_district_sample_is_the_same_bytes_with_or_without_district(tmp_path):
    assert cli("sample", "--days", "3", "--out", tmp_path / "a").returncode == 0
    assert cli("sample", "--days", "3", "--district", "sydsjaelland", "--out", tmp_path / "b").returncode == 0
    for path in sorted((tmp_path / "a").rglob("*.*")):
        assert path.read_bytes() == (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes(), path


def fleet_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "politikpi.toml"
    path.write_text(body, encoding="utf-8")
    return path


GOOD = 'national_warehouse = "n/wh"\n[districts.fyn]\nlanding = "fyn/l"\nstate = "fyn/s"\nwarehouse = "fyn/w"\n'


@pytest.mark.parametrize("body,message", [
    ('colour = "blue"\n' + GOOD, "unknown key 'colour'"),
    (GOOD.replace("[districts.fyn]", "[districts.fuen]"), "districts.fuen: unknown district code 'fuen'"),
    (GOOD.replace('warehouse = "fyn/w"', 'warehouse = "fyn/w"\nschedule = "daily"'),
     "districts.fyn.schedule: unknown key"),
    (GOOD.replace('state = "fyn/s"\n', ""), "districts.fyn.state is required"),
    (GOOD.replace('national_warehouse = "n/wh"\n', ""), "national_warehouse is required"),
])
def test_a_fleet_file_error_names_the_file_and_the_key(tmp_path, body, message):
    path = fleet_file(tmp_path, body)
    with pytest.raises(FleetError) as caught:
        read_fleet(path)
    assert str(path.resolve()) in str(caught.value) and message in str(caught.value)


def test_fleet_paths_are_relative_to_the_file_and_the_command_line_wins_over_them(tmp_path):
    fleet = read_fleet(fleet_file(tmp_path, GOOD))
    assert fleet.national_warehouse == (tmp_path / "n" / "wh").resolve()
    assert fleet.districts["fyn"].cron == "0 2 * * *" and fleet.districts["fyn"].timezone == "Europe/Copenhagen"
    path = fleet_file(tmp_path, GOOD)
    env = {**__import__("os").environ, "POLITIKPI_LANDING": str(tmp_path / "from-env")}
    # the fleet file beats the environment variable ...
    done = cli("refresh", "--fleet", path, "--district", "fyn", env=env)
    assert done.returncode == 1 and f"landing folder {(tmp_path / 'fyn' / 'l').resolve()} does not exist" in done.stderr
    # ... and the command line beats the fleet file
    done = cli("refresh", "--fleet", path, "--district", "fyn", "--landing", tmp_path / "cli", env=env)
    assert done.returncode == 1 and f"landing folder {tmp_path / 'cli'} does not exist" in done.stderr
    done = cli("refresh", "--fleet", path, "--district", "bornholm")
    assert done.returncode == 1 and "district 'bornholm' is not in the fleet" in done.stderr
    done = cli("refresh", "--fleet", path)
    assert done.returncode == 1 and "needs --district" in done.stderr


def test_a_state_or_warehouse_of_another_district_is_refused_in_one_line(tmp_path):
    from flows.district import WrongDistrict, claim

    claim(tmp_path / "state", tmp_path / "warehouse", "fyn")
    with pytest.raises(WrongDistrict, match=r"belongs to district 'fyn', not 'bornholm': give --district fyn"):
        claim(tmp_path / "state", tmp_path / "warehouse", "bornholm")
    (tmp_path / "wh2").mkdir()
    (tmp_path / "wh2" / "manifest.json").write_text(json.dumps({"current": None, "releases": [],
                                                                "district_code": "koebenhavn"}))
    with pytest.raises(WrongDistrict, match="warehouse .* holds releases of district 'koebenhavn'"):
        claim(tmp_path / "state", tmp_path / "wh2", "fyn")
