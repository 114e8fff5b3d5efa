"""Reference data (the district's municipalities and populations), read from CSV files. It lives
beside the rules because the rules use it (the district check); it imports nothing of the pipeline."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def reference_dir() -> Path:
    """The district's reference folder: POLITIKPI_REFERENCE or the repo's reference/."""
    return Path(os.environ.get("POLITIKPI_REFERENCE", REPO_ROOT / "reference"))


@dataclass(frozen=True)
class Municipality:
    code: int
    name: str
    population: int


def load_municipalities(folder: Path | None = None) -> list[Municipality]:
    """Municipalities of the district with their latest population figure."""
    folder = folder or reference_dir()
    with open(folder / "population.csv", encoding="utf-8") as fh:
        latest: dict[int, tuple[int, int]] = {}
        for row in csv.DictReader(fh):
            code, year = int(row["municipality_code"]), int(row["year"])
            if code not in latest or year > latest[code][0]:
                latest[code] = (year, int(row["population"]))
    with open(folder / "municipalities.csv", encoding="utf-8") as fh:
        return [
            Municipality(int(r["municipality_code"]), r["municipality"],
                         latest[int(r["municipality_code"])][1])
            for r in csv.DictReader(fh)
        ]


def municipality_codes(folder: Path | None = None) -> list[int]:
    """The district's municipality codes, sorted."""
    return sorted(m.code for m in load_municipalities(folder))
