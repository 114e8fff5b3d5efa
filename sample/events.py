"""Event generators for the sample: reports, dispatches, outreach, the ambassador roster.

Each generator writes one year of one source and returns the number of files written.
Valid base records hit the year's target exactly; dirt comes on top of them.
"""

from __future__ import annotations

import datetime as dt
import math
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from sample import writers as w

TZ = ZoneInfo("Europe/Copenhagen")
UTC = dt.UTC
LOCAL_FMT = "%d-%m-%Y %H:%M:%S"

LAW_AREAS = {
    "Færdselslov": (0.55, ["Hastighedsoverskridelse", "Spirituskørsel", "Kørsel uden kørekort",
                           "Færdselsuheld med materiel skade", "Kørsel i mobiltelefon"]),
    "Straffelov": (0.36, ["Tyveri", "Indbrud i beboelse", "Vold", "Hærværk",
                          "Bedrageri – netbank", "Butikstyveri", "Trusler"]),
    "Særlov": (0.09, ["Lov om euforiserende stoffer", "Våbenloven", "Knivloven"]),
}
MEASURED = ["husspektakel", "indbrud_igang", "overfald_slagsmaal", "roeveri",
            "spirituskoersel", "anden_politimaessig"]
CAUSES = {"husspektakel": 14, "indbrud_igang": 4, "overfald_slagsmaal": 7, "roeveri": 1,
          "spirituskoersel": 5, "anden_politimaessig": 25, "faerdselsuheld": 16, "brand": 3,
          "eftersoegning": 4, "psykisk_syg": 9, "andet": 12}
# Mean response minutes: rural municipalities slower; the district mean lands near 12.
RESPONSE_MEAN_MIN = {370: 9.6, 330: 10.3, 376: 12.1, 390: 12.7, 320: 14.3, 340: 14.9, 360: 16.2}
# Year effects on response times (issue 15), anchored on the deck's year: how much slower a
# municipality was per year before 2019, as a share of its 2019 times. 2015-2019 tells the
# district's story: its mean drifts down toward 2019 (about 13.2 min in 2015, 12.5 in 2017 —
# Rigspolitiet measured 12:36 that year — 12.1 in 2019) and the spread between the longest and
# the shortest municipal mean shrinks every year (about 10.7 -> 7.0 min), the district's goal.
# Of the smaller municipalities Sorø improves clearly (about 19.5 -> 14.1 min), Lolland
# moderately (20.6 -> 16.5), and Faxe does not: it gets slower every year (12.9 -> 15.2).
RESPONSE_TREND_PER_YEAR = {370: 0.005, 330: 0.015, 376: 0.025, 390: 0.025, 320: -0.03, 340: 0.08, 360: 0.06}
TREND_YEARS = (2015, 2019)  # years before keep 2015's level, years after keep 2019's


def response_factor(year: int, code: int) -> float:
    """The factor on a response time of year in municipality code: exactly 1.0 from 2019 on."""
    first, anchor = TREND_YEARS
    years_before = min(max(anchor - year, 0), anchor - first)
    return 1.0 + RESPONSE_TREND_PER_YEAR.get(code, 0.0) * years_before
REPORT_HOURS = [2, 1.5, 1, 1, 1, 1.5, 3, 5, 7, 8, 8, 8, 7.5, 7.5, 7.5, 7, 7, 6.5, 6, 5.5, 5, 4.5, 4, 3]
CALL_HOURS = [5, 5, 4, 3, 2, 2, 2, 3, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 6, 6, 6, 6, 6, 6]
ACTIVITIES = {"mobil_politistation": 2, "tryghedsopfoelgning": 6, "borgerraadgiver": 3,
              "sub_besoeg": 8, "foredrag": 1, "faerdselskontrol": 3}
TOWNS = {
    320: ["Haslev", "Faxe", "Karise", "Rønnede", "Dalby", "Faxe Ladeplads"],
    330: ["Slagelse", "Korsør", "Skælskør", "Dalmose", "Boeslunde", "Vemmelev"],
    340: ["Sorø", "Dianalund", "Ruds Vedby", "Stenlille", "Fjenneslev"],
    360: ["Nakskov", "Maribo", "Rødby", "Søllested", "Horslunde", "Holeby"],
    370: ["Næstved", "Fensmark", "Glumsø", "Fuglebjerg", "Herlufmagle", "Karrebæksminde"],
    376: ["Nykøbing F.", "Sakskøbing", "Nysted", "Stubbekøbing", "Marielyst", "Væggerløse"],
    390: ["Vordingborg", "Præstø", "Stege", "Bårse", "Kalvehave", "Nyråd"],
}


@dataclass(frozen=True)
class Place:
    """The district a sample is written for (SPEC 8.2): the journal numbers' prefix, the incident
    ids' prefix, a neighbouring municipality (the out-of-district dirt), the busiest municipality,
    mean response minutes and town names per municipality. The default is the deck's district."""

    code: str = "sydsjaelland"
    journal_prefix: int = 4100
    id_prefix: str = "SLF"
    outside: int = 336  # Stevns: a neighbour in Midt- og Vestsjællands Politi
    main: int = 370
    response_mean: dict = field(default_factory=lambda: dict(RESPONSE_MEAN_MIN))
    towns: dict = field(default_factory=lambda: dict(TOWNS))


PARTS = ["Centrum", "Nord", "Syd", "Øst", "Vest", "Land", "Strand", "Å-kvarteret"]
FIRST = ["Jens", "Mette", "Søren", "Anne", "Lars", "Hanne", "Mads", "Louise", "Bjørn", "Åse"]
LAST = ["Hansen", "Nielsen", "Jensen", "Pedersen", "Andersen", "Sørensen", "Kjær", "Østergaard"]


def allocate(total: int, weights: list[float]) -> list[int]:
    """Split total into integers proportional to weights (largest remainder); sums exactly."""
    s = sum(weights)
    raw = [total * x / s for x in weights]
    out = [math.floor(x) for x in raw]
    order = sorted(range(len(raw)), key=lambda i: (out[i] - raw[i], i))
    for i in order[: total - sum(out)]:
        out[i] += 1
    return out


def days_of(year: int) -> list[dt.date]:
    start = dt.date(year, 1, 1)
    return [start + dt.timedelta(days=i) for i in range((dt.date(year + 1, 1, 1) - start).days)]


def spring_gap_day(year: int) -> dt.date:
    """Last Sunday of March: 02:00-03:00 local time does not exist."""
    d = dt.date(year, 3, 31)
    return d - dt.timedelta(days=(d.weekday() + 1) % 7)


def person(rng) -> str:
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def cpr(rng) -> str:
    return f"{rng.randint(1, 28):02d}{rng.randint(1, 12):02d}{rng.randint(40, 99):02d}-{rng.randint(0, 9999):04d}"


def free_text(rng) -> str:
    """Free text with personal data and everything that is hard to quote."""
    kinds = [
        lambda: f"Anmelder {person(rng)} oplyser at cyklen blev stjålet",
        lambda: f"Ringede kl. 14; {person(rng)} (cpr {cpr(rng)}) var til stede",
        lambda: f'Naboen sagde "det var ham igen"; {person(rng)} nægter',
        lambda: f"Skade for ca. 2.500 €\nSe bilag; kontakt {person(rng)}",
        lambda: "",
    ]
    return rng.choice(kinds)()


def local(t: dt.datetime) -> str:
    return t.strftime(LOCAL_FMT)


def journal(year: int, seq: int, district: int = 4100) -> str:
    return f"{district:04d}-{seq // 100_000:05d}-{seq % 100_000:05d}-{year % 100:02d}"


def report_format(day_index: int) -> dict:
    """Rotate encodings and compression across the daily report files."""
    kind = day_index % 10
    if kind == 0:
        return {"encoding": "cp1252", "gz": day_index % 20 == 0, "crlf": True}
    if kind == 1:
        return {"encoding": "utf-8-sig", "gz": False, "crlf": True}
    return {"encoding": "utf-8", "gz": kind in (2, 3), "crlf": False}


def dirt_plan(rng, rules, written_days: int, year_days: int, scale: int) -> list[tuple[int, str]]:
    """(day index, rule) of each invalid row: 3 x scale per rule over a whole year, and over fewer
    days a share in proportion (rules taken in turn), so the dirt always follows the volume
    written and a sample of a few days stays well under the failure threshold. The random draws
    are the same either way: a full year is byte for byte what it always was."""
    per_rule = 3 * scale
    plan = [(rng.randrange(written_days), rule) for rule in rules for _ in range(per_rule)]
    if written_days >= year_days:
        return plan
    in_turn = [plan[r * per_rule + k] for k in range(per_rule) for r in range(len(rules))]
    return in_turn[:round(len(plan) * written_days / year_days)]


REPORT_DIRT = {
    "journalnr_pattern": lambda r, rng, p: r.__setitem__(0, "2019-123"),
    "anmeldt_tid_required": lambda r, rng, p: r.__setitem__(1, ""),
    "anmeldt_tid_format": lambda r, rng, p: r.__setitem__(1, "2019-03-04 10:00"),
    "gerningstid_after_anmeldt": lambda r, rng, p: r.__setitem__(2, "31-12-2030 23:00:00"),
    "kommunekode_in_district": lambda r, rng, p: r.__setitem__(3, str(p.outside)),
    "kommunekode_integer": lambda r, rng, p: r.__setitem__(3, "3x0"),
    "lovomraade_enum": lambda r, rng, p: r.__setitem__(4, "Straffeloven"),
    "overtraedelse_empty": lambda r, rng, p: r.__setitem__(5, ""),
    "overtraedelse_length": lambda r, rng, p: r.__setitem__(5, "Tyveri " * 30),
    "sidst_aendret_required": lambda r, rng, p: r.__setitem__(6, ""),
}


def write_reports(out: Path, year: int, target: dict, munis, rng, scale: int, progress,
                  limit: int | None = None, place: Place = Place()) -> int:
    """One file per day; corrections and duplicates land in later days' files."""
    days = days_of(year)
    weekday = [1.05, 1.05, 1.0, 1.0, 1.05, 0.95, 0.9]
    per_day = allocate(target["reports"], [weekday[d.weekday()] * rng.uniform(0.85, 1.15) for d in days])
    codes = [m.code for m in munis]
    pops = [m.population for m in munis]
    areas = list(LAW_AREAS)
    area_w = [LAW_AREAS[a][0] for a in areas]
    gap = spring_gap_day(year)
    dirt_days = dirt_plan(rng, REPORT_DIRT, len(days[:limit]), len(days), scale)
    pending: dict[int, list[list[str]]] = {}
    seq = 0
    for i, day in enumerate(days[:limit]):
        fmt = report_format(i)
        n = per_day[i]
        rows = pending.pop(i, [])
        for code, hour, law in zip(rng.choices(codes, pops, k=n), rng.choices(range(24), REPORT_HOURS, k=n),
                                   rng.choices(areas, area_w, k=n), strict=True):
            seq += 1
            if day == gap and hour == 2:
                hour = 3
            at = dt.datetime.combine(day, dt.time(hour, rng.randrange(60), rng.randrange(60)))
            began_at = at - dt.timedelta(minutes=rng.randint(5, 4000))
            if began_at.date() == gap and began_at.hour == 2:
                began_at -= dt.timedelta(hours=1)
            began = "" if rng.random() < 0.3 else local(began_at)
            changed = at + dt.timedelta(seconds=rng.randint(30, 3000))
            changed = min(changed, dt.datetime.combine(day, dt.time(23, 59, 59)))
            if changed.date() == gap and changed.hour == 2:
                changed += dt.timedelta(hours=1)
            offence = rng.choice(LAW_AREAS[law][1])
            row = [journal(year, seq, place.journal_prefix), local(at), began, str(code), law, offence, local(changed),
                   free_text(rng), cpr(rng) if rng.random() < 0.8 else ""]
            rows.append(row)
            later = min(i + rng.randint(1, 6), len(days[:limit]) - 1)
            roll = rng.random()
            if roll < 0.01:  # a valid correction: a later change of law area and offence
                fixed = list(row)
                fixed[4] = rng.choice(areas)
                fixed[5] = rng.choice(LAW_AREAS[fixed[4]][1])
                fixed[6] = local(changed + dt.timedelta(days=later - i, hours=1))
                pending.setdefault(later, []).append(fixed)
            elif roll < 0.011:  # an invalid newer correction: quarantined, the old one stays
                bad = list(row)
                bad[3] = str(place.outside)
                bad[6] = local(changed + dt.timedelta(days=later - i, hours=2))
                pending.setdefault(later, []).append(bad)
            elif roll < 0.014:  # an exact duplicate, re-exported the next days
                pending.setdefault(later, []).append(list(row))
        for rule in [r for d, r in dirt_days if d == i]:
            bad = list(rows[0]) if rows else [journal(year, 0, place.journal_prefix)] * 9
            bad[0] = f"9999-{rng.randint(0, 99999):05d}-{rng.randint(0, 99999):05d}-{year % 100:02d}"
            REPORT_DIRT[rule](bad, rng, place)
            rows.append(bad)
        raw = []
        if i % 61 == 5:  # a record with a stray unquoted ';': the wrong number of fields
            raw.append((min(3, len(rows)), f"{place.journal_prefix:04d}-99999-00001-{year % 100};01-01-{year} "
                        f"10:00:00;;{place.main};Straffelov;Tyveri;01-01-{year} 10:05:00;Stjålet; "
                        f"{person(rng)} ringede;{cpr(rng)}"))
        suffix = ".csv.gz" if fmt["gz"] else ".csv"
        encoding = fmt["encoding"]
        w.write_csv(out / "reports" / f"{day.isoformat()}{suffix}", w.REPORT_COLUMNS, rows,
                    encoding=encoding, gz=fmt["gz"], crlf=fmt["crlf"], raw_lines=raw)
        if progress:
            progress("reports", day)
    last = days[:limit][-1].isoformat()
    w.write_broken_gzip(out / "reports" / f"{last}_eftersending.csv.gz",
                        ";".join(w.REPORT_COLUMNS) + "\n" + "x;" * 8 + "x\n" * 500)
    w.write_csv(out / "reports" / f"{year}-07-01_udtraek_v2.csv",
                ["sagsnr", "tid", "kommune"], [["1", "2", "3"]])
    return len(days[:limit]) + 2


def iso(ts: float, utc: bool) -> str:
    if utc:
        return dt.datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return dt.datetime.fromtimestamp(ts, TZ).isoformat(timespec="seconds")


DISPATCH_DIRT = {
    "haendelse_id_required": lambda r, p: r.__setitem__("haendelse_id", None),
    "modtaget_format": lambda r, p: r.__setitem__("modtaget", "2019-13-01T25:00:00"),
    "fremme_before_modtaget": lambda r, p: r.__setitem__("fremme", "2000-01-01T00:00:00+01:00"),
    "fremme_within_24h": lambda r, p: r.__setitem__("fremme", "2035-01-01T00:00:00+01:00"),
    "prioritet_enum": lambda r, p: r.__setitem__("prioritet", 4),
    "aarsag_enum": lambda r, p: r.__setitem__("aarsag", "ukendt"),
    "responstid_only_measured_causes": lambda r, p: r.update(aarsag="brand", responstid_maalt=True),
    "kommunekode_in_district": lambda r, p: r.__setitem__("kommunekode", p.outside),
    "sidst_aendret_required": lambda r, p: r.__setitem__("sidst_aendret", None),
    "aflyst_boolean": lambda r, p: r.__setitem__("aflyst", "ja"),
}


def _callout(rng, year: int, seq: int, day: dt.date, code: int, hour: int, cause: str,
             factor: float = 1.0, place: Place = Place()) -> dict:
    """One call-out; factor (response_factor) scales its response time without drawing anything,
    so every year's random stream, and 2019's bytes, are the same with or without it."""
    start = dt.datetime.combine(day, dt.time(hour, rng.randrange(60), rng.randrange(60)), TZ)
    received = start.timestamp()
    priority = rng.choices([1, 2, 3], [0.35, 0.45, 0.2])[0]
    measured = cause in MEASURED and priority == 1 and rng.random() < 0.55
    cancelled = rng.random() < 0.04
    mean = place.response_mean.get(code, 12.0)
    sigma = 0.5
    drawn = 60 * rng.lognormvariate(math.log(mean) - sigma**2 / 2, sigma)
    if factor != 1.0:  # never in 2019: the deck's year is generated exactly as before
        drawn *= factor
    seconds = round(drawn)
    seconds = min(max(seconds, 60), 3 * 3600) * (1 if priority == 1 else 2)
    on_scene = None if cancelled or rng.random() < 0.03 else received + seconds
    dispatched = received + min(rng.randint(15, 240), seconds - 1)
    closed = (on_scene or received) + rng.randint(300, 7200)
    utc = seq % 9 == 0
    return {
        "haendelse_id": f"{place.id_prefix}-{year}-{seq:08d}",
        "modtaget": iso(received, utc),
        "disponeret": None if cancelled and rng.random() < 0.5 else iso(dispatched, utc),
        "fremme": None if on_scene is None else iso(on_scene, utc),
        "afsluttet": iso(closed, utc),
        "prioritet": priority,
        "aarsag": cause,
        "responstid_maalt": measured,
        "kommunekode": code,
        "aflyst": cancelled,
        "sidst_aendret": iso(closed + rng.randint(0, 600), utc),
        "journalnr": journal(year, rng.randint(1, 200_000), place.journal_prefix) if rng.random() < 0.4 else None,
    }


def write_dispatches(out: Path, year: int, target: dict, munis, rng, scale: int, progress,
                     limit: int | None = None, place: Place = Place()) -> int:
    """One JSON Lines file per local day, some gzipped, with broken lines and corrections."""
    days = days_of(year)
    weekend = [1.0, 0.95, 0.95, 1.0, 1.1, 1.3, 1.25]
    per_day = allocate(target["callouts"], [weekend[d.weekday()] * rng.uniform(0.85, 1.15) for d in days])
    codes = [m.code for m in munis]
    pops = [m.population for m in munis]
    causes, cause_w = list(CAUSES), list(CAUSES.values())
    factors = {code: response_factor(year, code) for code in codes}
    dirt_days = dirt_plan(rng, DISPATCH_DIRT, len(days[:limit]), len(days), scale)
    pending: dict[int, list] = {}
    seq = 0
    for i, day in enumerate(days[:limit]):
        recs: list = pending.pop(i, [])
        n = per_day[i]
        for code, hour, cause in zip(rng.choices(codes, pops, k=n), rng.choices(range(24), CALL_HOURS, k=n),
                                     rng.choices(causes, cause_w, k=n), strict=True):
            seq += 1
            rec = _callout(rng, year, seq, day, code, hour, cause, factors[code], place)
            recs.append(rec)
            later = min(i + rng.randint(1, 3), len(days[:limit]) - 1)
            roll = rng.random()
            if roll < 0.01 and rec["fremme"]:  # valid correction: closing time amended
                fixed = dict(rec, afsluttet=rec["sidst_aendret"])
                fixed["sidst_aendret"] = iso(dt.datetime.fromisoformat(rec["sidst_aendret"]).timestamp() + 86400, False)
                pending.setdefault(later, []).append(fixed)
            elif roll < 0.011:  # invalid newer correction
                bad = dict(rec, prioritet=7)
                bad["sidst_aendret"] = iso(dt.datetime.fromisoformat(rec["sidst_aendret"]).timestamp() + 90000, False)
                pending.setdefault(later, []).append(bad)
            elif roll < 0.014:
                pending.setdefault(later, []).append(dict(rec))
        for rule in [r for d, r in dirt_days if d == i]:
            bad = dict(recs[0], haendelse_id=f"{place.id_prefix}-BAD-{rng.randint(0, 10**9)}")
            DISPATCH_DIRT[rule](bad, place)
            recs.append(bad)
        if i % 45 == 7:
            recs.insert(min(2, len(recs)), '{"haendelse_id": "' + place.id_prefix + '-x", "modtaget": "2019-01-01T10:0')
        if i % 90 == 11:
            recs.insert(min(4, len(recs)), "ikke json; ring til " + person(rng))
        gz = i % 4 == 0
        w.write_jsonl(out / "dispatches" / f"{day.isoformat()}.jsonl{'.gz' if gz else ''}", recs, gz=gz)
        if progress:
            progress("dispatches", day)
    return len(days[:limit])


def _area_names(code: int, n: int, place: Place = Place()) -> list[str]:
    towns = place.towns.get(code, [f"Område {code}"])
    names = []
    for i in range(n):
        name = f"{towns[i % len(towns)]} {PARTS[(i // len(towns)) % len(PARTS)]}"
        rnd = i // (len(towns) * len(PARTS))
        names.append(name if rnd == 0 else f"{name} {rnd + 1}")
    return names


OUTREACH_DIRT = [
    lambda r, p: r.__setitem__(3, "0"),
    lambda r, p: r.__setitem__(3, "-2"),
    lambda r, p: r.__setitem__(2, "kaffemoede"),
    lambda r, p: r.__setitem__(0, "31-02-2019"),
    lambda r, p: r.__setitem__(1, str(p.outside)),
    lambda r, p: r.__setitem__(0, ""),
]


def write_outreach(out: Path, year: int, target: dict, munis, rng, scale: int, progress,
                   limit: int | None = None, place: Place = Place()) -> int:
    """Monthly activity logs: CSV in several encodings, and xlsx with real or text dates."""
    codes = [m.code for m in munis]
    pops = [m.population for m in munis]
    months: dict[int, list[list]] = {m: [] for m in range(1, 13)}
    for activity, biggest in ACTIVITIES.items():
        per_month = allocate(target[activity], [rng.uniform(0.7, 1.3) for _ in range(12)])
        for month, total in zip(range(1, 13), per_month, strict=True):
            last_day = (dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)).day
            for code, count in zip(codes, allocate(total, pops), strict=True):
                while count > 0:
                    n = min(count, rng.randint(1, biggest))
                    day = dt.date(year, month, rng.randint(1, last_day)).strftime("%d-%m-%Y")
                    area = rng.choice(_area_names(code, 6, place)) if rng.random() < 0.5 else ""
                    note = f"Talt med {person(rng)}" if rng.random() < 0.1 else ""
                    row = [day, str(code), activity, str(n), area, note]
                    months[month].append(row)
                    count -= n
                    if count >= n and rng.random() < 0.05:  # identical row: two activities
                        months[month].append(list(row))
                        count -= n
    for month, rows in months.items():
        rng.shuffle(rows)
        for fn in OUTREACH_DIRT if month in (2, 8) else []:
            bad = list(rows[0])
            fn(bad, place)
            rows.append(bad)
        name = out / "outreach" / f"{year}-{month:02d}"
        if month in (3, 6, 9, 12):
            w.write_xlsx(name.with_suffix(".xlsx"), w.OUTREACH_COLUMNS, rows, date_cells=True)
        elif month == 11:
            w.write_xlsx(name.with_suffix(".xlsx"), w.OUTREACH_COLUMNS, rows, date_cells=False)
        else:
            encoding = {1: "utf-8-sig", 5: "cp1252"}.get(month, "utf-8")
            w.write_csv(name.with_suffix(".csv"), w.OUTREACH_COLUMNS, rows, encoding=encoding)
    return 12


def write_ambassadors(out: Path, year: int, target: dict, munis, rng, scale: int, share: float = 1.0,
                      place: Place = Place()) -> int:
    """Two roster snapshots; the later one (in force) yields the deck's figures for year. `share`
    is the part of the year the sample writes: the roster's dirt comes in that proportion."""
    codes = [m.code for m in munis]
    areas_per_code = allocate(target["ambassador_local_areas"], [m.population for m in munis])
    areas = [(code, name) for code, k in zip(codes, areas_per_code, strict=True)
             for name in _area_names(code, k, place)]
    extra = target["ambassadors"] - len(areas)
    members = list(areas) + [rng.choice(areas) for _ in range(extra)]
    rows, seen = [], set()
    d = lambda y, m, dd: dt.date(y, m, dd).strftime("%d-%m-%Y")  # noqa: E731
    for n, (code, area) in enumerate(members, start=1):
        start = d(rng.randint(year - 4, year), rng.randint(1, 11), rng.randint(1, 28))
        end_roll = rng.random()
        end = "" if end_roll < 0.7 else d(year + (end_roll > 0.85), 12, 31)
        name = area
        if (code, area) in seen:  # the same area spelled with spaces or decomposed letters
            name = unicodedata.normalize("NFD", area) if n % 2 else f" {area}  "
        seen.add((code, area))
        rows.append([f"TA-{n:05d}", name, str(code), start, end, person(rng)])
    for _k in range(8 * scale):  # left before the year: not active in it
        code, area = rng.choice(areas)
        rows.append([f"TA-{len(rows) + 1:05d}", area, str(code), d(year - 3, 3, 1), d(year - 1, 6, 30), person(rng)])
    for _k in range(4 * scale):  # signed up for next year
        code, area = rng.choice(areas)
        rows.append([f"TA-{len(rows) + 1:05d}", area, str(code), d(year + 1, 2, 1), "", person(rng)])
    # a repeated id, a neighbour's municipality, a date in the wrong format, an end before the start
    first, second, third = (codes * 3)[:3] if place.code != "sydsjaelland" else (320, 330, 340)
    town = {c: place.towns.get(c, [f"Område {c}"])[0] for c in (first, second, third)}
    dirt = [
        ["TA-90001", f"{town[first]} Nord", str(first), d(year, 1, 1), "", person(rng)],
        ["TA-90001", f"{town[first]} Syd", str(first), d(year, 1, 1), "", person(rng)],
        ["TA-90002", "Stevns Klint" if place.outside == 336 else f"Område {place.outside}", str(place.outside),
         d(year, 1, 1), "", person(rng)],
        ["TA-90003", f"{'Korsør' if second == 330 else town[second]} Nord", str(second), f"{year}-05-01", "",
         person(rng)],
        ["TA-90004", f"{town[third]} Nord", str(third), d(year, 5, 1), d(year, 1, 1), person(rng)],
    ]
    final = rows + dirt[:round(len(dirt) * share)]
    rng.shuffle(final)
    w.write_csv(out / "ambassadors" / f"tryghedsambassadoerer_{year}-12-31.csv", w.AMBASSADOR_COLUMNS, final)
    early = [r for r in rows if rng.random() < 0.8]
    w.write_csv(out / "ambassadors" / f"tryghedsambassadoerer_{year}-06-30.csv", w.AMBASSADOR_COLUMNS, early,
                encoding="utf-8-sig")
    return 2
