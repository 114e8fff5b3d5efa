"""Which district a state folder and a warehouse belong to (SPEC 8.1), and each district run's
outcome in `<state>/last_run.json` (SPEC 8.3). No Prefect."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from flows.files import write_json_atomic
from flows.ingest import state as state_db
from flows.release.store import load_manifest

LAST_RUN = "last_run.json"
ENDED = ("published", "unchanged", "pinned", "failed", "crashed")


class WrongDistrict(RuntimeError):
    """A state or warehouse that belongs to another district; the message says what to do."""


def claim(state: Path, warehouse: Path, district: str) -> None:
    """Record the district in a new state; refuse a state or warehouse of another district."""
    manifest = load_manifest(warehouse)
    if manifest.get("kind") == "national":
        raise WrongDistrict(f"warehouse {warehouse} holds the national release: give a district's --warehouse")
    owner = manifest.get("district_code") or next(
        (r["district_code"] for r in reversed(manifest["releases"]) if r.get("district_code")), None)
    if owner and owner != district:
        raise WrongDistrict(f"warehouse {warehouse} holds releases of district {owner!r}, not {district!r}: "
                            f"give --district {owner} or another --warehouse")
    with state_db.connect(state) as con:
        con.execute("create table if not exists state_info (key varchar primary key, value varchar)")
        row = con.execute("select value from state_info where key = 'district_code'").fetchone()
        if row is None:
            con.execute("insert into state_info values ('district_code', ?)", [district])
        elif row[0] != district:
            raise WrongDistrict(f"state {state} belongs to district {row[0]!r}, not {district!r}: "
                                f"give --district {row[0]} or another --state")


def state_district(state: Path) -> str | None:
    """The district recorded in a state folder (None for a new or older state)."""
    if not state_db.db_path(state).exists():
        return None
    with state_db.connect(state, read_only=True) as con:
        held = con.execute("select 1 from duckdb_tables() where table_name = 'state_info'").fetchone()
        row = held and con.execute("select value from state_info where key = 'district_code'").fetchone()
    return row[0] if row else None


def now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def read_last_run(state: Path) -> dict | None:
    path = Path(state) / LAST_RUN
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def record_start(state: Path, flow_run_id: str) -> dict | None:
    """Under the state lock, at a run's start: a run that started and never recorded its end is
    recorded `crashed` (returned), then this run as `running`."""
    last = read_last_run(state)
    crashed = None
    if last and last.get("status") == "running":
        crashed = {**last, "status": "crashed", "ended": now(),
                   "message": f"run {last.get('flow_run_id')} started {last.get('started')} and never recorded "
                              "an end (killed, or its machine stopped); found by the next run"}
        write_json_atomic(Path(state) / LAST_RUN, crashed)
    before = {k: v for k, v in (crashed or last or {}).items() if k != "previous"} or None
    write_json_atomic(Path(state) / LAST_RUN, {
        "status": "running", "started": now(), "ended": None, "flow_run_id": flow_run_id,
        "release_id": None, "message": "", "previous": before})
    return crashed


def record_end(state: Path, status: str, release_id: str | None, message: str,
               flow_run_id: str | None = None) -> None:
    """A run's outcome: published, unchanged, pinned or failed (the flow's end and its failure hook).
    Only the run that recorded its start writes its end: a run refused at the lock (another run
    holds the state) or by the district check leaves the record alone."""
    last = read_last_run(state) or {}
    if last.get("status") != "running" or (flow_run_id and last.get("flow_run_id") != flow_run_id):
        return
    write_json_atomic(Path(state) / LAST_RUN, {
        "status": status, "started": last.get("started"), "ended": now(),
        "flow_run_id": flow_run_id or last.get("flow_run_id"), "release_id": release_id,
        "message": message.splitlines()[0][:300] if message else "",
        "previous": last.get("previous") if last.get("status") == "running" else None})
