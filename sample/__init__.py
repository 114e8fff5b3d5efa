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
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

from sample import events as ev
from sample.late import LateDelivery, write_late_delivery
from schemas.reference import DEFAULT_DISTRICT, check_district, load_districts, load_municipalities

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
    district: str = DEFAULT_DISTRICT  # SPEC 8.2: volumes in proportion to its population, its own ids


def year_factor(year: int) -> float:
    """Volumes of other years: 2 % fewer per year before 2019, 2 % more after."""
    return 1.0 + 0.02 * (year - 2019)


def volumes(year: int, scale: int, ratio: float = 1.0) -> dict[str, int]:
    """The target count of every valid volume for one year; ratio = the district's population over
    the deck district's (the deck's 2019 rates per 1,000 inhabitants, SPEC 8.2)."""
    factor = year_factor(year) * scale * ratio
    return {key: round(value * factor) for key, value in DECK_2019.items()}


# Mean response minutes of each district (its median municipality): plausible for its geography,
# urban districts faster; none is slower than the deck's district (12:36 in 2017, the slowest).
DISTRICT_RESPONSE_MEAN_MIN = {
    "koebenhavn": 6.8, "koebenhavnsvestegn": 7.6, "nordsjaelland": 9.1, "oestjylland": 8.9, "fyn": 9.8,
    "sydoestjylland": 9.9, "nordjylland": 10.9, "midtvestjylland": 11.3, "syddanmark": 10.8,
    "midtvestsjaelland": 11.2, "bornholm": 9.4,
}


def population_ratio(district: str) -> float:
    """The district's population (latest year held) over the deck district's."""
    def total(code: str) -> int:
        return sum(m.population for m in load_municipalities(district=code))
    return 1.0 if district == DEFAULT_DISTRICT else total(district) / total(DEFAULT_DISTRICT)


def place_for(district: str) -> ev.Place:
    """The district's sample identity: the deck district as it always was, any other from the
    reference data (journal prefix, municipalities, a neighbour for the out-of-district dirt)."""
    if district == DEFAULT_DISTRICT:
        return ev.Place()
    check_district(district)
    munis = load_municipalities(district=district)
    mine = {m.code for m in munis}
    neighbour = min(m.code for m in load_municipalities(country=True) if m.code not in mine)
    pops = sorted(m.population for m in munis)
    median = (pops[(len(pops) - 1) // 2] + pops[len(pops) // 2]) / 2
    base = DISTRICT_RESPONSE_MEAN_MIN.get(district, 10.0)
    return ev.Place(
        code=district, journal_prefix=load_districts()[district].journal_prefix, id_prefix=district.upper(),
        outside=neighbour, main=max(munis, key=lambda m: m.population).code,
        # bigger municipalities are reached faster: +-~15 % around the district's mean
        response_mean={m.code: round(base * (median / m.population) ** 0.12, 2) for m in munis},
        towns={m.code: list(dict.fromkeys([m.name, *(t.strip() for t in re.split(r",| og ", m.station) if t.strip())]))
               for m in munis},
    )


def district_seed(spec: SampleSpec) -> int:
    """The deck district keeps its seed (its bytes never change); another district's is its own."""
    return spec.seed if spec.district == DEFAULT_DISTRICT else spec.seed + zlib.crc32(spec.district.encode()) % 999_983


def write_sample(out: Path, spec: SampleSpec, progress=None) -> dict[str, int]:
    """Write the landing folder for spec into out; returns the files written per source."""
    out = Path(out)
    unknown = sorted(set(spec.sources) - set(SOURCES))
    if unknown:
        raise ValueError(f"unknown sample source(s) {', '.join(unknown)}: choose from {', '.join(SOURCES)}")
    munis = load_municipalities(district=spec.district)
    place, ratio = place_for(spec.district), population_ratio(spec.district)
    written: dict[str, int] = {}
    for year in spec.years:  # each year has its own seed: 2019 is the same alone or in a range
        target = volumes(year, spec.scale, ratio)
        rng = random.Random(district_seed(spec) * 100_003 + year)
        for source, writer in (
            ("reports", ev.write_reports),
            ("dispatches", ev.write_dispatches),
            ("outreach", ev.write_outreach),
        ):
            source_rng = random.Random(rng.random())
            if source not in spec.sources:
                continue
            n = writer(out, year, target, munis, source_rng, spec.scale, progress, spec.days, place)
            written[source] = written.get(source, 0) + n
    if "ambassadors" not in spec.sources:
        return written
    last = max(spec.years)
    share = 1.0 if spec.days is None else min(1.0, spec.days / len(ev.days_of(last)))
    written["ambassadors"] = ev.write_ambassadors(
        out, last, volumes(last, spec.scale, ratio), munis, random.Random(district_seed(spec) + last), spec.scale,
        share, place)
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
