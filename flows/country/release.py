"""Write-audit-publish of the national release (SPEC 8.4), through the same release store as a
district's: the inputs snapshot, the build, the audit, the atomic swap of politikpi_national.duckdb.
No Prefect: the national flow (flows/national.py) and the tests call it."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import duckdb

from flows.config import Settings
from flows.country.audit import audit_national
from flows.country.build import build_national, national_key
from flows.country.inputs import snapshot
from flows.fleet import Fleet
from flows.release import releases, store
from flows.transform.transform import quote_path


class NationalRefused(RuntimeError):
    """The national warehouse cannot be used; the message says why."""


def national_release_id(key: str) -> str:
    return f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{key[:12]}"


def build_and_publish(fleet: Fleet, run_id: str = "local", settings: Settings | None = None) -> dict:
    """The national release from the fleet's district releases: 'published', or 'unchanged' when
    the same district releases and code built the current one. An audit failure raises AuditFailed
    and the current national release stays current."""
    settings = settings or Settings()
    warehouse = fleet.national_warehouse
    warehouse.mkdir(parents=True, exist_ok=True)
    if owner := store.load_manifest(warehouse).get("district_code"):
        raise NationalRefused(f"{warehouse} is district {owner}'s warehouse, not a national one: point the fleet "
                              "file's national_warehouse at a folder of its own")
    inputs = snapshot(fleet)
    key = national_key(inputs)
    current = store.current_release(warehouse)
    statuses = {i.district_code: i.status for i in inputs}
    if pin := releases.pinned(warehouse):  # a rollback: nothing is published until `politikpi unpin`
        return {"status": "pinned", "release": current or pin, "inputs": statuses}
    if current is not None and current.get("state_version") == key and (warehouse / current["file"]).is_file():
        return {"status": "unchanged", "release": current, "inputs": statuses}
    release_id = national_release_id(key)
    path = warehouse / ".building" / f"{release_id}.duckdb"
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = build_national(path, inputs, settings.storage_version, run_id, release_id)
    docs = path.with_suffix(".docs")
    shutil.rmtree(docs, ignore_errors=True)
    used = [i for i in inputs if i.has_release]
    summary = audit_national(path, used, docs)
    with duckdb.connect() as con:
        con.execute(f"attach {quote_path(path)} as release")
        con.execute("update release._release set validation_summary = ?", [json.dumps(summary, default=str)])
        con.execute("checkpoint release")
        con.execute("detach release")
    with releases.warehouse_lock(warehouse, wait=120):
        releases.recover(warehouse)
        if pin := releases.pinned(warehouse):  # rolled back while this run was building
            return {"status": "pinned", "release": store.current_release(warehouse) or pin, "inputs": statuses}
        shutil.copytree(docs, warehouse / "docs" / release_id, dirs_exist_ok=True)
        entry = {**meta, "state_version": key,
                 "validation_summary": {**summary, "docs": str(warehouse / "docs" / release_id / "index.html")}}
        entry = store.add_release(path, warehouse, entry, settings.keep_releases)
    shutil.rmtree(docs, ignore_errors=True)
    for item in (warehouse / ".building").glob("*"):
        if item.stem != release_id:
            shutil.rmtree(item) if item.is_dir() else item.unlink(missing_ok=True)
    return {"status": "published", "release": entry, "inputs": statuses}


def national_published_payload(outcome: dict) -> dict:
    entry = outcome["release"]
    return {"release_id": entry["release_id"], "sha256": entry["sha256"], "data_through": entry.get("data_through"),
            "inputs": outcome["inputs"]}


def read_inputs(release_file: Path) -> list[dict]:
    """A national release's national_inputs rows."""
    with duckdb.connect(str(release_file), read_only=True) as con:
        cur = con.execute("select * from national_inputs order by district_code")
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]
