"""A late restatement for the sample (issue 15): corrected call-outs of a month already closed.

Written on top of an existing landing folder, after a first refresh, so that the next refresh
restates a closed month by the correction rule of SPEC 2.5 (the valid version with the latest
`sidst_aendret` wins). Deterministic: the same landing folder gives the same bytes.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path

from sample import events as ev
from sample import writers as w
from schemas.reference import load_municipalities

DAILY_FILE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.jsonl(\.gz)?$")
INCIDENT_ID = re.compile(r"^SLF-\d{4}-\d{8}$")
FIELDS = ("haendelse_id", "modtaget", "disponeret", "fremme", "afsluttet", "prioritet", "aarsag",
          "responstid_maalt", "kommunekode", "aflyst", "sidst_aendret", "journalnr")  # SPEC 2.2


@dataclass(frozen=True)
class LateDelivery:
    """What write_late_delivery wrote and what it does to the month's municipal mean."""

    path: Path
    month: str  # YYYY-MM, local time
    municipality: int
    changed: int  # call-outs re-delivered with an earlier `fremme`
    seconds_earlier: int  # by how much each of them moved
    responses: int  # measured responses of the municipality in the month (unchanged)
    mean_before_min: float  # the municipality's mean response of the month, before and after
    mean_after_min: float


def write_late_delivery(out: Path, month: str = "2019-03", municipality: int = 360, *,
                        seconds_earlier: int = 180, longer_than: int = 600,
                        delivered: dt.datetime | None = None) -> LateDelivery:
    """Write `dispatches/<delivered date>_eftersending_<month>.jsonl` into the landing folder out:
    a later version of call-outs of a closed month with corrected times.

    The story: the control room checked the patrol cars' GPS logs for `month` in `municipality`
    (default March 2019, Lolland) and found that on the long responses `fremme` had been logged
    when the patrol radioed in, not when it arrived. It re-delivers every call-out of that month
    and municipality that is response-time measured, not cancelled, has `fremme`, and whose
    response (modtaget -> fremme) is longer than `longer_than` seconds (600 = 10 minutes), as
    they stand in force in the landing folder (latest valid `sidst_aendret`) with two changes:
    `fremme` `seconds_earlier` seconds earlier (default 180 = 3 minutes) and `sidst_aendret` =
    `delivered` (default 10:00 local time on 2 January of the following year), later than every
    earlier version, so the new version wins (SPEC 2.5). Nothing else changes: no call-out is
    added or removed, so counts stay; only response times of that month and municipality fall,
    each changed one by exactly `seconds_earlier`, so the municipality's monthly mean falls by
    seconds_earlier * changed / responses seconds (and with it the district's month, quarter
    and year means, the rollups and the spread). Timestamps keep each record's own style (UTC
    `Z` or local offset), per SPEC 2.2.

    On the full 2019 sample (`politikpi sample --year 2019`, defaults here) it re-delivers 28 of
    the 33 measured responses of Lolland in March 2019: Lolland's March mean falls from 16.80 to
    14.26 min (-2.55 min = 180 s x 28 / 33), the district's March mean from 12.56 to 12.29 min
    (311 responses, -0.27 min, -2.1 %); responses and call-outs counts do not change, and no
    other month or municipality changes (the quarter and year of March change through it).

    The file's identity is new, so writing it again over itself gives the same bytes (not a
    re-delivery); calling it with other arguments re-delivers it with the new content.
    """
    if not (0 < seconds_earlier <= longer_than):
        raise ValueError("seconds_earlier must be positive and at most longer_than (fremme stays after modtaget)")
    try:
        first = dt.date.fromisoformat(f"{month}-01")
    except ValueError:
        raise ValueError(f"month must be YYYY-MM, got {month!r}") from None
    after = dt.date(first.year + first.month // 12, first.month % 12 + 1, 1)
    if delivered is None:
        delivered = dt.datetime(first.year + 1, 1, 2, 10, 0, 0, tzinfo=ev.TZ)
    if delivered.tzinfo is None:
        raise ValueError("delivered must carry a time zone")
    folder = Path(out) / "dispatches"
    name = f"{delivered.astimezone(ev.TZ):%Y-%m-%d}_eftersending_{month}.jsonl"
    codes = {m.code for m in load_municipalities()}
    if municipality not in codes:
        raise ValueError(f"municipality {municipality} is not one of the district's ({sorted(codes)})")

    in_force: dict[str, tuple[tuple[float, str], dict]] = {}
    for path in sorted(folder.glob("*.jsonl*")):
        identity = path.name.removesuffix(".gz")
        if identity == name or not identity.endswith(".jsonl"):
            continue  # an earlier version of this very delivery is replaced, never built on
        daily = DAILY_FILE.match(path.name)
        if daily:  # a daily export holds its day's call-outs and corrections of the days before
            day = dt.date.fromisoformat(daily.group(1))
            if not (first - dt.timedelta(days=1) <= day < after + dt.timedelta(days=14)):
                continue
        for rec in _records(path):
            if not _valid(rec, codes) or rec["kommunekode"] != municipality:
                continue
            received = _instant(rec["modtaget"]).astimezone(ev.TZ).date()
            if not first <= received < after:
                continue
            rank = (_instant(rec["sidst_aendret"]).timestamp(), identity)
            held = in_force.get(rec["haendelse_id"])
            if held is None or rank > held[0]:
                in_force[rec["haendelse_id"]] = (rank, rec)

    responses: list[int] = []
    changed: list[dict] = []
    for incident in sorted(in_force):
        (changed_at, _), rec = in_force[incident]
        if not rec["responstid_maalt"] or rec["aflyst"] or rec["fremme"] is None:
            continue
        seconds = round(_instant(rec["fremme"]).timestamp() - _instant(rec["modtaget"]).timestamp())
        responses.append(seconds)
        if seconds <= longer_than:
            continue
        if changed_at >= delivered.timestamp():
            raise ValueError(f"{incident} was changed at or after {delivered.isoformat()}: choose a later delivery")
        utc = rec["modtaget"].endswith("Z")
        fixed = dict(rec)  # same fields in the same order
        fixed["fremme"] = ev.iso(_instant(rec["fremme"]).timestamp() - seconds_earlier, utc)
        fixed["sidst_aendret"] = ev.iso(delivered.timestamp(), utc)
        changed.append(fixed)
    if not changed:
        raise ValueError(f"no measured call-out of {month} in municipality {municipality} longer than "
                         f"{longer_than} s in {folder}: write a sample that covers that month first")
    w.write_jsonl(folder / name, changed)
    before = sum(responses) / len(responses) / 60
    return LateDelivery(
        path=folder / name, month=month, municipality=municipality, changed=len(changed),
        seconds_earlier=seconds_earlier, responses=len(responses), mean_before_min=before,
        mean_after_min=before - seconds_earlier * len(changed) / len(responses) / 60,
    )


def _records(path: Path):
    """Every JSON object of a JSON Lines file (gzipped or not); broken lines are skipped."""
    import gzip

    with (gzip.open(path, "rt", encoding="utf-8") if path.name.endswith(".gz")
          else path.open(encoding="utf-8")) as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict):
                yield rec


def _instant(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def _valid(rec: dict, codes: set[int]) -> bool:
    """The rules of SPEC 2.2 a version must pass to be in force (each invalid row the sample
    writes fails one of them): only a valid version is corrected."""
    try:
        return _checked(rec, codes)
    except (TypeError, ValueError, AttributeError):
        return False


def _checked(rec: dict, codes: set[int]) -> bool:
    if set(rec) != set(FIELDS) or not INCIDENT_ID.match(rec["haendelse_id"]):
        return False
    times = {k: None if rec[k] is None else _instant(rec[k])
             for k in ("modtaget", "disponeret", "fremme", "afsluttet", "sidst_aendret")}
    received = times["modtaget"]
    if received is None or times["sidst_aendret"] is None:
        return False
    if any(t is not None and t.tzinfo is None for t in times.values()):
        return False
    ok_types = (type(rec["prioritet"]) is int and rec["prioritet"] in (1, 2, 3)
                and type(rec["kommunekode"]) is int and rec["kommunekode"] in codes
                and type(rec["responstid_maalt"]) is bool and type(rec["aflyst"]) is bool
                and rec["aarsag"] in ev.CAUSES
                and (not rec["responstid_maalt"] or rec["aarsag"] in ev.MEASURED)
                and (rec["journalnr"] is None or isinstance(rec["journalnr"], str)))
    ok_times = ((times["disponeret"] is None or times["disponeret"] >= received)
                and (times["fremme"] is None
                     or received <= times["fremme"] <= received + dt.timedelta(hours=24)))
    return ok_types and ok_times
