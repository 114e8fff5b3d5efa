"""What the national release is built from (SPEC 8.4): one snapshot of each fleet district's
manifest, its current release checked against its checksum, and each district's status. No Prefect."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from pathlib import Path

from flows.district import read_last_run
from flows.files import file_sha256
from flows.fleet import Fleet
from flows.release.store import ManifestError, load_manifest
from schemas.reference import load_districts

STALE_DAYS = 2  # newest data_through among current-or-stale districts minus a district's > 2 days
STATUSES = ("not_in_fleet", "missing", "failed", "stale", "current")


@dataclass
class DistrictInput:
    district_code: str
    police_district: str
    status: str
    reason: str
    release_id: str | None = None
    sha256: str | None = None
    code_version: str | None = None
    data_through: dt.date | None = None
    published_at: dt.datetime | None = None
    file: str | None = None  # absolute path of the release file (build-time only, not published)
    reference_version: str | None = None

    @property
    def has_release(self) -> bool:
        return self.release_id is not None

    def row(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in ("file", "reference_version", "police_district")}


def _date(value) -> dt.date | None:
    return dt.date.fromisoformat(str(value)[:10]) if value else None


def _instant(value) -> dt.datetime | None:
    if not value:
        return None
    instant = dt.datetime.fromisoformat(str(value))
    return instant if instant.tzinfo else instant.replace(tzinfo=dt.UTC)


def _verified(warehouse: Path, manifest: dict) -> tuple[dict | None, str]:
    """The current release if its file matches its checksum, else the newest listed one that does."""
    listed = {r["release_id"]: r for r in manifest["releases"]}
    current = listed.get(manifest.get("current") or "")
    if current is None:
        return None, "no current release"
    for entry in [current] + sorted((r for r in listed.values() if r is not current),
                                    key=lambda r: r["release_id"], reverse=True):
        path = warehouse / entry["file"]
        if path.is_file() and file_sha256(path) == entry.get("sha256"):
            if entry is current:
                return entry, ""
            return entry, (f"current release {current['release_id']} does not match its checksum; "
                           f"using {entry['release_id']}, the newest that does")
    return None, f"no listed release matches its checksum (current {current['release_id']})"


def district_input(code: str, name: str, fleet: Fleet) -> DistrictInput:
    """One district's input and status, from one snapshot of its manifest and its last recorded run."""
    if code not in fleet.districts:
        return DistrictInput(code, name, "not_in_fleet", f"not in the fleet file {fleet.path.name}")
    folders = fleet.districts[code]
    try:
        manifest = load_manifest(folders.warehouse)
    except ManifestError as exc:
        return DistrictInput(code, name, "missing", str(exc)[:300])
    owner = manifest.get("district_code")
    if manifest.get("kind") == "national" or (owner and owner != code):
        return DistrictInput(code, name, "missing", f"{folders.warehouse} holds "
                             f"{'the national release' if not owner else f'district {owner}'}'s releases, not {code}'s")
    entry, problem = _verified(folders.warehouse, manifest)
    if entry is None:
        return DistrictInput(code, name, "missing", problem or f"no release in {folders.warehouse}")
    if entry.get("district_code") not in (None, code):
        return DistrictInput(code, name, "missing", f"release {entry['release_id']} is district "
                             f"{entry['district_code']}'s, not {code}'s")
    found = DistrictInput(
        code, name, "failed" if problem else "current", problem, entry["release_id"], entry["sha256"],
        entry.get("code_version"), _date(entry.get("data_through")),
        _instant(entry.get("published_at") or entry.get("created_at")),
        str(folders.warehouse / entry["file"]), entry.get("reference_version"))
    last = read_last_run(folders.state) or {}
    ended = _instant(last.get("ended"))
    if not problem and last.get("status") in ("failed", "crashed") and ended and found.published_at \
            and ended >= found.published_at:
        found.status = "failed"
        found.reason = (f"last run {last['status']} at {ended:%Y-%m-%d %H:%M} UTC ({last.get('message', '')[:160]}); "
                        f"its last good release {entry['release_id']} is used")
    return found


def snapshot(fleet: Fleet) -> list[DistrictInput]:
    """Every district of the reference data, with its status (first that applies: not_in_fleet,
    missing, failed, stale, current)."""
    districts = load_districts() or {}
    inputs = [district_input(code, d.name, fleet) for code, d in sorted(districts.items())]
    fresh = [i.data_through for i in inputs if i.status == "current" and i.data_through]
    newest = max(fresh, default=None)
    for item in inputs:
        if item.status == "current" and newest and item.data_through \
                and (newest - item.data_through).days > STALE_DAYS:
            item.status = "stale"
            item.reason = (f"data through {item.data_through}, {(newest - item.data_through).days} days behind the "
                           f"newest district ({newest})")
    return inputs


def national_data_through(inputs: list[DistrictInput]) -> dt.date | None:
    """The earliest data_through among districts with status current."""
    return min((i.data_through for i in inputs if i.status == "current" and i.data_through), default=None)
