"""Reference data (the country's municipalities, police districts and populations), read from CSV
files, and the district a run serves. It lives beside the rules because the rules use it (the
district check); it imports nothing of the pipeline.

A reference folder with `police_districts.csv` is the country: `POLITIKPI_DISTRICT` (default
`sydsjaelland`) picks the district's municipalities out of `municipalities.csv`. A folder without
it is one district, every municipality listed (SPEC 8.1)."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DISTRICT = "sydsjaelland"


class UnknownDistrict(ValueError):
    """A district code the reference data does not list; the message lists those it does."""


def reference_dir() -> Path:
    """The reference folder: POLITIKPI_REFERENCE or the repo's reference/."""
    return Path(os.environ.get("POLITIKPI_REFERENCE", REPO_ROOT / "reference"))


def district_code() -> str:
    """The district this process serves: POLITIKPI_DISTRICT, else sydsjaelland."""
    return os.environ.get("POLITIKPI_DISTRICT") or DEFAULT_DISTRICT


@contextmanager
def serving(code: str | None) -> Iterator[str]:
    """POLITIKPI_DISTRICT = code (checked) for the block, restored after: the rules and the build
    read the district from the environment of the process (a flow run in a test keeps no trace)."""
    before = os.environ.get("POLITIKPI_DISTRICT")
    code = check_district(code)
    os.environ["POLITIKPI_DISTRICT"] = code
    try:
        yield code
    finally:
        if before is None:
            os.environ.pop("POLITIKPI_DISTRICT", None)
        else:
            os.environ["POLITIKPI_DISTRICT"] = before


@dataclass(frozen=True)
class District:
    code: str
    name: str
    journal_prefix: int


@dataclass(frozen=True)
class Municipality:
    code: int
    name: str
    population: int
    district_code: str = DEFAULT_DISTRICT
    police_district: str = ""
    station: str = ""


def _rows(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def load_districts(folder: Path | None = None) -> dict[str, District] | None:
    """The police districts by code, or None for a one-district folder (no police_districts.csv)."""
    path = (folder or reference_dir()) / "police_districts.csv"
    if not path.exists():
        return None
    return {r["district_code"]: District(r["district_code"], r["police_district"], int(r["journal_prefix"]))
            for r in _rows(path)}


def check_district(code: str | None = None, folder: Path | None = None) -> str:
    """The district code, checked against the reference data (one line naming the known codes)."""
    code = code or district_code()
    districts = load_districts(folder)
    if districts is not None and code not in districts:
        raise UnknownDistrict(f"unknown district {code!r} in {(folder or reference_dir()) / 'police_districts.csv'}; "
                              f"the districts are {', '.join(sorted(districts))}")
    return code


def latest_population(folder: Path | None = None) -> dict[int, tuple[int, int]]:
    """municipality_code -> (year, population) of the latest year held."""
    latest: dict[int, tuple[int, int]] = {}
    for row in _rows((folder or reference_dir()) / "population.csv"):
        code, year = int(row["municipality_code"]), int(row["year"])
        if code not in latest or year > latest[code][0]:
            latest[code] = (year, int(row["population"]))
    return latest


def load_municipalities(folder: Path | None = None, district: str | None = None,
                        country: bool = False) -> list[Municipality]:
    """The district's municipalities (or, with country, all of them) with their latest population."""
    folder = folder or reference_dir()
    latest = latest_population(folder)
    whole = load_districts(folder) is None
    code = check_district(district, folder)
    out = []
    for r in _rows(folder / "municipalities.csv"):
        mine = r.get("district_code") or code
        if country or whole or mine == code:
            muni = int(r["municipality_code"])
            out.append(Municipality(muni, r["municipality"], latest[muni][1], mine, r.get("police_district", ""),
                                    r.get("station") or ""))
    return out


def municipality_codes(folder: Path | None = None, district: str | None = None) -> list[int]:
    """The district's municipality codes, sorted."""
    return sorted(m.code for m in load_municipalities(folder, district))
