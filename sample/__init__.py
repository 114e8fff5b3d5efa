"""Deterministic sample landing data, calibrated to the district's 2019 deck (docs/input-contract.md,
"The sample landing data"). A package of its own: it computes no number of a release, so editing
it changes no release's code version.

Valid, de-duplicated records reproduce the deck exactly; dirt (corrections, duplicates,
invalid rows, broken lines, an unreadable file) comes on top and is never needed to reach
the deck's figures. Files are written one day at a time, so memory follows a day, not a year.
Other years (`--years 2015-2019`) carry trends in response times (events.RESPONSE_TREND_PER_YEAR)
that are exactly 1.0, and never applied, in 2019; write_late_delivery adds a late restatement.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from pathlib import Path

from sample import events as ev
from sample.late import LateDelivery, write_late_delivery
from schemas.reference import load_municipalities

__all__ = ["DECK_2019", "SOURCES", "LateDelivery", "SampleSpec", "parse_years", "volumes", "write_late_delivery",
           "write_sample"]

# The deck's figures for 2019 ("Overblik"): the generator's calibration, and nowhere else.
DECK_2019 = {
    "reports": 205_690,
    "callouts": 36_836,
    "ambassadors": 127,
    "ambassador_local_areas": 95,
    "mobil_politistation": 208,
    "tryghedsopfoelgning": 1_763,
    "borgerraadgiver": 377,
    "sub_besoeg": 1_617,
    "foredrag": 43,
    "faerdselskontrol": 421,
}


SOURCES = ("reports", "dispatches", "outreach", "ambassadors")


@dataclass(frozen=True)
class SampleSpec:
    years: tuple[int, ...]
    scale: int = 1
    seed: int = 2019
    days: int | None = None  # write only the first N days of each year (small test samples)
    # write only these sources (a quick sample of one source); the others' random draws are still
    # made, so what is written is byte for byte what the full sample holds
    sources: tuple[str, ...] = SOURCES


def year_factor(year: int) -> float:
    """Volumes of other years: 2 % fewer per year before 2019, 2 % more after."""
    return 1.0 + 0.02 * (year - 2019)


def volumes(year: int, scale: int) -> dict[str, int]:
    """The target count of every valid volume for one year."""
    factor = year_factor(year) * scale
    return {key: round(value * factor) for key, value in DECK_2019.items()}


def write_sample(out: Path, spec: SampleSpec, progress=None) -> dict[str, int]:
    """Write the landing folder for spec into out; returns the files written per source."""
    out = Path(out)
    unknown = sorted(set(spec.sources) - set(SOURCES))
    if unknown:
        raise ValueError(f"unknown sample source(s) {', '.join(unknown)}: choose from {', '.join(SOURCES)}")
    munis = load_municipalities()
    written: dict[str, int] = {}
    for year in spec.years:  # each year has its own seed: 2019 is the same alone or in a range
        target = volumes(year, spec.scale)
        rng = random.Random(spec.seed * 100_003 + year)
        for source, writer in (
            ("reports", ev.write_reports),
            ("dispatches", ev.write_dispatches),
            ("outreach", ev.write_outreach),
        ):
            source_rng = random.Random(rng.random())
            if source not in spec.sources:
                continue
            n = writer(out, year, target, munis, source_rng, spec.scale, progress, spec.days)
            written[source] = written.get(source, 0) + n
    if "ambassadors" not in spec.sources:
        return written
    last = max(spec.years)
    share = 1.0 if spec.days is None else min(1.0, spec.days / len(ev.days_of(last)))
    written["ambassadors"] = ev.write_ambassadors(
        out, last, volumes(last, spec.scale), munis, random.Random(spec.seed + last), spec.scale, share
    )
    return written


def parse_years(text: str) -> tuple[int, ...]:
    """'2019' or '2015-2019' -> a tuple of years."""
    text, latest = text.strip(), dt.date.today().year + 1
    try:
        first, last = (int(part) for part in text.split("-", 1)) if "-" in text else (int(text), int(text))
    except ValueError:
        raise ValueError(f"--year must be a year (2019) or a range (2015-2019), got {text!r}") from None
    if not (1990 <= first <= latest and 1990 <= last <= latest):
        raise ValueError(f"--year {text}: the sample covers the years 1990 to {latest}")
    if first > last:
        raise ValueError(f"--year {text}: the range runs backwards (write {last}-{first})")
    return tuple(range(first, last + 1))
