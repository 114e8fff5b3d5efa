"""The national flow (SPEC 8.4): wait for the districts' quiet period -> snapshot their releases ->
build -> audit -> publish politikpi_national.duckdb. Started by the national deployment's trigger
when districts publish, on its own schedule, or by hand (`politikpi national --fleet FILE`).
The work lives in flows/country/."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from flows.config import prefect_defaults

prefect_defaults()

from prefect import flow, get_run_logger  # noqa: E402
from prefect.artifacts import create_markdown_artifact  # noqa: E402
from prefect.events import emit_event  # noqa: E402
from prefect.runtime import flow_run  # noqa: E402

from flows.concurrency import national_slot  # noqa: E402
from flows.country.release import build_and_publish, national_published_payload  # noqa: E402
from flows.fleet import read_fleet  # noqa: E402
from flows.release.store import ManifestError, load_manifest  # noqa: E402


def last_publish(fleet) -> dt.datetime | None:
    """When the latest district release of the fleet was published (its manifest entry)."""
    latest = None
    for folders in fleet.districts.values():
        try:
            manifest = load_manifest(folders.warehouse)
        except ManifestError:
            continue
        for entry in manifest["releases"]:
            if at := entry.get("published_at"):
                instant = dt.datetime.fromisoformat(at)
                latest = instant if latest is None or instant > latest else latest
    return latest


def wait_for_quiet(fleet, quiet: float, logger, limit: float = 3600) -> float:
    """Wait until no district has published for `quiet` seconds (at most `limit`); returns the wait.
    Publishes that land while this run waits are in its inputs: a burst of k publishes makes one
    national release."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        latest = last_publish(fleet)
        age = (dt.datetime.now(dt.UTC) - latest).total_seconds() if latest else quiet
        if age >= quiet:
            return time.monotonic() - started
        logger.info("a district published %.0f s ago: waiting for %.0f s of quiet", age, quiet)
        time.sleep(min(quiet - age, 5) + 0.05)
    return time.monotonic() - started


@flow(name="national")
def national(fleet: str, quiet_seconds: float | None = None, slot_wait_seconds: float | None = None) -> dict:
    """Build and publish the national release from the fleet's district releases.

    quiet_seconds (default: the fleet file's quiet_seconds, else 60) is the quiet period after the
    last district publish before the inputs are read; 0 reads them at once. Holds the concurrency
    limit politikpi-national where a Prefect server is configured."""
    logger = get_run_logger()
    parsed = read_fleet(Path(fleet))
    quiet = parsed.quiet_seconds if quiet_seconds is None else quiet_seconds
    with national_slot(slot_wait_seconds):
        waited = wait_for_quiet(parsed, quiet, logger) if quiet > 0 else 0.0
        outcome = build_and_publish(parsed, run_id=str(flow_run.get_id() or "local"))
    entry = outcome["release"]
    if outcome["status"] == "published":
        emit_event(event="politikpi.national.published",
                   resource={"prefect.resource.id": "politikpi.national", "prefect.resource.name": "national"},
                   payload=national_published_payload(outcome))
        logger.info("published national release %s", entry["release_id"])
    elif outcome["status"] == "pinned":
        logger.warning("the national release is pinned by a rollback: nothing published (`politikpi unpin`)")
    else:
        logger.info("nothing new: national release %s stays current", entry["release_id"])
    lines = [f"# National release {entry['release_id']} ({outcome['status']})", "",
             f"Waited {waited:.0f} s for the districts' quiet period.", "", "| district | status |", "|---|---|"]
    lines += [f"| {code} | {status} |" for code, status in sorted(outcome["inputs"].items())]
    create_markdown_artifact(markdown="\n".join(lines), key="national-summary",
                             description="politikpi national: the districts' statuses and the release")
    return {**outcome, "waited_seconds": round(waited, 1)}


def run_by_hand(fleet: str, quiet_seconds: float | None = None) -> dict:
    """The national flow run `politikpi national` starts (no heartbeat thread, as a district's by hand)."""
    from prefect.settings import temporary_settings

    with temporary_settings(set_defaults={"flows.heartbeat_frequency": None}):
        return national(fleet, quiet_seconds, slot_wait_seconds=2.0)
