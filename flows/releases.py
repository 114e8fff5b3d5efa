"""Operate the warehouse: recover after a crash, roll back, verify checksums, diff releases."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import duckdb

from flows.publish import RELEASE_ID, STABLE, file_sha256, load_manifest, point_stable_at, write_manifest
from flows.state import state_lock

# Key columns of every comparable table (value columns are the rest).
TABLE_KEYS = {
    "dim_municipality": ["municipality_code"],
    "kpi_reports": ["month", "municipality_code", "law_area"],
    "kpi_callouts": ["month", "municipality_code", "cause", "priority"],
    "kpi_response_times": ["period_grain", "period_start", "municipality_code", "cause"],
    "kpi_response_time_spread": ["period_grain", "period_start", "cause"],
    "kpi_outreach": ["month", "municipality_code", "activity"],
    "kpi_safety_ambassadors": ["year", "municipality_code"],
    "kpi_year_summary": ["year"],
}


class ReleaseError(RuntimeError):
    """A release operation cannot be done; the message says why and what to do."""


@contextmanager
def warehouse_lock(warehouse: Path):
    """One writer of the warehouse folder at a time (publish, rollback, retention)."""
    warehouse.mkdir(parents=True, exist_ok=True)
    with state_lock(warehouse, name=".lock"):
        yield


def checked_release(warehouse: Path, release_id: str) -> dict:
    """The manifest entry of a release id; refuses anything that is not a listed release id."""
    if not RELEASE_ID.match(release_id or ""):
        raise ReleaseError(f"{release_id!r} is not a release id (like 20191231T020000Z-0123456789ab); "
                           "see `politikpi releases`")
    for entry in load_manifest(warehouse)["releases"]:
        if entry["release_id"] == release_id:
            return entry
    raise ReleaseError(f"release {release_id} is not in {warehouse / 'manifest.json'}; see `politikpi releases`")


def recover(warehouse: Path) -> bool:
    """Repair what an interrupted publish leaves: unlisted release files (never published) are
    removed, and the stable path is re-pointed at the manifest's current release."""
    manifest = load_manifest(warehouse)
    listed = {Path(r["file"]).name for r in manifest["releases"]}
    repaired = False
    for orphan in (warehouse / "releases").glob("*.duckdb"):
        if orphan.name not in listed:
            orphan.unlink(missing_ok=True)
            repaired = True
    if not manifest["current"]:
        return repaired
    target = warehouse / next(r["file"] for r in manifest["releases"] if r["release_id"] == manifest["current"])
    stable = warehouse / STABLE
    if stable.exists() and os.path.samefile(stable, target):
        return repaired
    point_stable_at(warehouse, target)
    return True


def rollback(warehouse: Path, release_id: str) -> dict:
    """Make an earlier release current again, atomically."""
    with warehouse_lock(warehouse):
        entry = checked_release(warehouse, release_id)
        path = warehouse / entry["file"]
        if file_sha256(path) != entry["sha256"]:
            raise ReleaseError(f"{path} does not match its checksum in the manifest; not rolling back to it")
        manifest = load_manifest(warehouse)
        manifest["current"] = release_id
        write_manifest(warehouse, manifest)
        point_stable_at(warehouse, path)
        return entry


def verify(warehouse: Path) -> list[str]:
    """Every listed release exists with its checksum and the stable path is the current one."""
    problems = []
    manifest = load_manifest(warehouse)
    for entry in manifest["releases"]:
        path = warehouse / entry["file"]
        if not path.exists():
            problems.append(f"{entry['release_id']}: file {path} is missing")
        elif file_sha256(path) != entry["sha256"]:
            problems.append(f"{entry['release_id']}: checksum mismatch for {path}")
    stable = warehouse / STABLE
    if manifest["current"]:
        current = warehouse / f"releases/{manifest['current']}.duckdb"
        if not stable.exists() or not current.exists() or not os.path.samefile(stable, current):
            problems.append(f"{stable} is not the current release {manifest['current']}")
    listed = {Path(r["file"]).name for r in manifest["releases"]}
    problems += [f"{p} is not listed in the manifest" for p in sorted((warehouse / "releases").glob("*.duckdb"))
                 if p.name not in listed]
    return problems


def diff(warehouse: Path, a: str, b: str, limit: int = 20) -> dict:
    """Which KPI rows were added, removed or changed from release a to b, and why (inputs, code)."""
    paths = [warehouse / checked_release(warehouse, r)["file"] for r in (a, b)]
    con = duckdb.connect()
    for alias, path in zip(("a", "b"), paths, strict=True):
        con.execute(f"attach '{str(path).replace(chr(39), chr(39) * 2)}' as {alias} (read_only)")
    meta = {alias: con.execute(f"select input_files, code_version from {alias}._release").fetchone()
            for alias in ("a", "b")}
    import json

    inputs_a, inputs_b = (json.loads(meta[x][0]) for x in ("a", "b"))
    out = {"code_changed": meta["a"][1] != meta["b"][1], "code_versions": [meta["a"][1], meta["b"][1]],
           "inputs_added": sorted(set(inputs_b) - set(inputs_a)),
           "inputs_removed": sorted(set(inputs_a) - set(inputs_b)),
           "inputs_changed": sorted(k for k in set(inputs_a) & set(inputs_b) if inputs_a[k] != inputs_b[k]),
           "tables": {}}
    for table, keys in TABLE_KEYS.items():
        cols = [r[0] for r in con.execute(f"select column_name from duckdb_columns() where database_name = 'b' "
                                          f"and table_name = '{table}' order by column_index").fetchall()]
        values = [c for c in cols if c not in keys]
        on = " and ".join(f"a.{k} is not distinct from b.{k}" for k in keys)
        differs = " or ".join(f"a.{v} is distinct from b.{v}" for v in values)
        key_expr = ", ".join(f"coalesce(b.{k}, a.{k})::varchar" for k in keys)
        rows = con.execute(f"""
            select case when a.{keys[0]} is null and a.{values[0]} is null then 'added'
                        when b.{keys[0]} is null and b.{values[0]} is null then 'removed'
                        else 'changed' end as change,
                   [{key_expr}] as key,
                   {{ {', '.join(f"'{v}': [a.{v}::varchar, b.{v}::varchar]" for v in values)} }} as vals
            from a.{table} as a full outer join b.{table} as b on {on}
            where a.{keys[0]} is null and a.{values[0]} is null or b.{keys[0]} is null and b.{values[0]} is null
               or {differs}
        """).fetchall()
        counts = {k: sum(1 for r in rows if r[0] == k) for k in ("added", "removed", "changed")}
        out["tables"][table] = {**counts, "examples": [
            {"change": r[0], "key": r[1], "values": {k: v for k, v in r[2].items() if v[0] != v[1]}}
            for r in rows[:limit]]}
    con.close()
    return out
