"""Operate the warehouse: recover after a crash, roll back and pin, verify, repair, diff releases."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager, suppress
from pathlib import Path

import duckdb

from flows.files import file_sha256
from flows.ingest.state import state_lock
from flows.release.store import (
    KPI_STABLE,
    RELEASE_ID,
    ManifestError,
    is_kpi_file,
    kpi_path,
    load_manifest,
    point_stable_at,
    sidecar_path,
    stable_path,
    write_manifest,
    write_sidecar,
)
from flows.transform.models import load as load_metadata
from flows.transform.runner import sql_literal


class ReleaseError(RuntimeError):
    """A release operation cannot be done; the message says why and what to do."""


@contextmanager
def warehouse_lock(warehouse: Path, wait: float = 0):
    """One writer of the warehouse folder at a time (publish, rollback, retention)."""
    warehouse.mkdir(parents=True, exist_ok=True)
    with state_lock(warehouse, name=".lock", wait=wait):
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


def _entry_file(warehouse: Path, entry: dict) -> Path:
    return warehouse / "releases" / f"{entry['release_id']}.duckdb"


def _interrupted(warehouse: Path, orphan: Path) -> bool:
    """An unlisted release file that only an interrupted publish can have left: no sidecar, not the
    stable path, and its build still beside it in .building/ (so removing it loses nothing)."""
    build = warehouse / ".building" / orphan.name
    stable = stable_path(warehouse)
    return (RELEASE_ID.match(orphan.stem) is not None and not sidecar_path(warehouse, orphan.stem).exists()
            and build.exists() and os.path.samefile(build, orphan)
            and not (stable.exists() and os.path.samefile(stable, orphan)))


def recover(warehouse: Path) -> bool:
    """Finish or undo what an interrupted publish or rollback leaves, and nothing else: a release
    file linked but never listed (see _interrupted) is removed, a listed release gets its missing
    sidecar, and the stable path is re-pointed at the manifest's current release when that is what
    a publish or rollback was doing (the newest release, or the pinned one). Anything else is
    `verify`'s to report and `repair`'s to mend: recover never deletes a published release."""
    manifest = load_manifest(warehouse)
    listed = {r["release_id"]: r for r in manifest["releases"]}
    repaired = False
    for orphan in (warehouse / "releases").glob("*.duckdb"):
        if is_kpi_file(orphan):
            continue
        if orphan.stem not in listed and _interrupted(warehouse, orphan):
            orphan.unlink(missing_ok=True)
            kpi_path(orphan).unlink(missing_ok=True)
            repaired = True
    for release_id, entry in listed.items():
        if not sidecar_path(warehouse, release_id).exists() and _entry_file(warehouse, entry).exists():
            write_sidecar(warehouse, entry)
    current = listed.get(manifest["current"])
    if current is None or not _entry_file(warehouse, current).exists():
        return repaired
    target = _entry_file(warehouse, current)
    if _points_at(warehouse, target):
        return repaired
    pin = (manifest.get("pinned") or {}).get("release_id")
    if current["release_id"] not in (max(listed), pin):
        return repaired  # not what a publish or rollback leaves: verify reports it
    point_stable_at(warehouse, target)
    return True


def _points_at(warehouse: Path, target: Path) -> bool:
    """Both stable paths are this release's files (the KPI path only if the release has a KPI file)."""
    pairs = [(stable_path(warehouse), target)]
    if kpi_path(target).exists():
        pairs.append((warehouse / KPI_STABLE, kpi_path(target)))
    return all(s.exists() and os.path.samefile(s, t) for s, t in pairs)


def rollback(warehouse: Path, release_id: str) -> dict:
    """Make an earlier release current again, atomically, and pin it: `refresh` keeps staging new
    data but publishes nothing until `politikpi unpin`."""
    with warehouse_lock(warehouse):
        entry = checked_release(warehouse, release_id)
        path = warehouse / entry["file"]
        if file_sha256(path) != entry["sha256"]:
            raise ReleaseError(f"{path} does not match its checksum in the manifest; not rolling back to it")
        if entry.get("kpi_file") and file_sha256(warehouse / entry["kpi_file"]) != entry.get("kpi_sha256"):
            raise ReleaseError(f"{warehouse / entry['kpi_file']} does not match its checksum in the manifest; "
                               "not rolling back to it")
        manifest = load_manifest(warehouse)
        manifest["current"] = release_id
        manifest["pinned"] = {"release_id": release_id, "at": _now(), "by": "rollback"}
        write_manifest(warehouse, manifest)
        point_stable_at(warehouse, path)
        return entry


def unpin(warehouse: Path) -> dict | None:
    """Let the next refresh publish again; returns the pin that was lifted (None if none was set)."""
    with warehouse_lock(warehouse):
        manifest = load_manifest(warehouse)
        pin = manifest.pop("pinned", None)
        if pin:
            write_manifest(warehouse, manifest)
        return pin


def pinned(warehouse: Path) -> dict | None:
    return load_manifest(warehouse).get("pinned")


def _now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def _sidecar(warehouse: Path, release_id: str) -> dict | None:
    path = sidecar_path(warehouse, release_id)
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
    except ValueError:
        return None


def _release_row(path: Path) -> dict | None:
    """The `_release` row a release file holds about itself (None if it cannot be opened)."""
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            row = con.execute("select * from _release").fetchone()
            cols = [d[0] for d in con.description]
    except duckdb.Error:
        return None
    return dict(zip(cols, row, strict=True)) if row else None


def verify(warehouse: Path) -> list[str]:
    """Every inconsistency between manifest, release files, sidecars and the stable path."""
    problems = []
    manifest = load_manifest(warehouse)
    ids = [r["release_id"] for r in manifest["releases"]]
    problems += [f"{i}: listed {ids.count(i)} times in the manifest" for i in sorted(set(ids)) if ids.count(i) > 1]
    for entry in manifest["releases"]:
        rid, path = entry["release_id"], _entry_file(warehouse, entry)
        if entry.get("file") != f"releases/{rid}.duckdb":
            problems.append(f"{rid}: the manifest names file {entry.get('file')!r}, not releases/{rid}.duckdb")
        if not path.exists():
            problems.append(f"{rid}: file {path} is missing")
            continue
        actual, side = file_sha256(path), _sidecar(warehouse, rid)
        if actual != entry.get("sha256"):
            if side and side.get("sha256") == actual:
                problems.append(f"{rid}: the manifest's checksum is not the file's (the file matches its "
                                "sidecar: the manifest was changed; `politikpi repair` restores it)")
            else:
                problems.append(f"{rid}: checksum mismatch for {path} (the file changed after it was "
                                "published; it cannot be repaired: roll back to another release)")
        elif side and side.get("sha256") != actual:
            problems.append(f"{rid}: its sidecar {sidecar_path(warehouse, rid).name} disagrees with the file")
        elif side and (changed := sorted(k for k in side.keys() | entry.keys() if side.get(k) != entry.get(k))):
            problems.append(f"{rid}: the manifest entry differs from its sidecar in {', '.join(changed)} "
                            "(`politikpi repair` restores it)")
        row = _release_row(path)
        if row is None or row.get("release_id") != rid:
            problems.append(f"{rid}: {path} does not hold release {rid} in its _release table")
        problems += _verify_kpi_file(warehouse, entry)
    stable, current = stable_path(warehouse), manifest["current"]
    if current and current not in ids:
        problems.append(f"the manifest's current release {current} is not listed in it")
    elif current:
        target = warehouse / "releases" / f"{current}.duckdb"
        if not stable.exists() or not target.exists() or not os.path.samefile(stable, target):
            problems.append(f"{stable} is not the manifest's current release {current} (if that is meant, "
                            f"`politikpi rollback {current}`; else `politikpi repair` keeps the stable path's)")
        elif not _points_at(warehouse, target):
            problems.append(f"{warehouse / KPI_STABLE} is not the current release {current}'s KPI file "
                            f"(`politikpi repair` re-points it)")
    elif stable.exists():
        problems.append(f"{stable} exists but the manifest names no current release")
    pin = (manifest.get("pinned") or {}).get("release_id")
    if pin and pin not in ids:
        problems.append(f"the pinned release {pin} is not listed in the manifest")
    for path in sorted((warehouse / "releases").glob("*.duckdb")):
        if is_kpi_file(path):
            if path.name.removesuffix(".kpi.duckdb") not in ids:
                problems.append(f"{path} is the KPI file of no listed release")
            continue
        if not RELEASE_ID.match(path.stem):
            problems.append(f"{path} is not a release file: move it out of releases/")
        elif path.stem not in ids:
            problems.append(f"{path} is not listed in the manifest (`politikpi repair` lists it again)")
    return problems


def _verify_kpi_file(warehouse: Path, entry: dict) -> list[str]:
    """A release's KPI file: where the manifest says, its checksum, the release it holds."""
    rid, kpi = entry["release_id"], kpi_path(_entry_file(warehouse, entry))
    if not entry.get("kpi_file"):
        return [f"{rid}: {kpi} is not listed in the manifest"] if kpi.exists() else []
    if entry["kpi_file"] != f"releases/{kpi.name}":
        return [f"{rid}: the manifest names KPI file {entry['kpi_file']!r}, not releases/{kpi.name}"]
    if not kpi.exists():
        return [f"{rid}: KPI file {kpi} is missing"]
    if file_sha256(kpi) != entry.get("kpi_sha256"):
        return [f"{rid}: checksum mismatch for {kpi} (changed after it was published: roll back to another release)"]
    row = _release_row(kpi)
    if row is None or row.get("release_id") != rid:
        return [f"{rid}: {kpi} does not hold release {rid} in its _release table"]
    return []


def repair(warehouse: Path) -> list[str]:
    """Rebuild the manifest from the release files and their sidecars, keeping every release:
    entries and checksums come from the sidecars (or the file's own `_release` row), the current
    release stays the manifest's if it is intact (else the stable path's, else the newest), and the
    stable path is re-pointed. A file that changed after publishing stays listed with its recorded
    checksum (verify keeps reporting it) and is never made current. Returns what was done."""
    with warehouse_lock(warehouse):
        done: list[str] = []
        try:
            old = load_manifest(warehouse)
        except ManifestError:
            old, done = {"current": None, "releases": []}, ["manifest.json could not be read: rebuilt"]
        listed = {r["release_id"]: r for r in old["releases"] if isinstance(r, dict) and "release_id" in r}
        entries, intact = {}, set()
        for path in sorted((warehouse / "releases").glob("*.duckdb")):
            rid = path.stem
            if is_kpi_file(path) or not RELEASE_ID.match(rid):
                continue
            actual = file_sha256(path)
            entry = _sidecar(warehouse, rid) or listed.get(rid) or _entry_from_file(path, actual)
            if entry is None:
                done.append(f"{path}: not a release (no sidecar, no _release row); left alone")
                continue
            entry = {**entry, "release_id": rid, "file": f"releases/{rid}.duckdb"}
            recorded = (_sidecar(warehouse, rid) or {}).get("sha256") or entry.get("sha256") or actual
            entry["sha256"] = recorded
            if kpi_path(path).exists() and not entry.get("kpi_file"):  # an entry rebuilt from the file
                entry |= {"kpi_file": f"releases/{kpi_path(path).name}", "kpi_sha256": file_sha256(kpi_path(path))}
            if recorded == actual:
                intact.add(rid)
            else:
                done.append(f"{rid}: the file changed after publishing; kept listed, not current")
            if rid not in listed:
                done.append(f"{rid}: listed again")
            elif listed[rid].get("sha256") != entry["sha256"]:
                done.append(f"{rid}: checksum restored")
            elif listed[rid] != entry:
                done.append(f"{rid}: manifest entry restored from its sidecar")
            entries[rid] = entry
        done += [f"{rid}: its file is gone; removed from the manifest" for rid in listed if rid not in entries]
        stable = stable_path(warehouse)
        on_stable = next((rid for rid in intact if stable.exists()
                          and os.path.samefile(stable, warehouse / entries[rid]["file"])), None)
        pin = (old.get("pinned") or {}).get("release_id") if isinstance(old.get("pinned"), dict) else None
        was = old.get("current")
        # The manifest's current stands if a publish (the newest) or a rollback (the pin) made it so;
        # otherwise what readers have been getting (the stable path) stays current.
        current = was if was in intact and (was == max(intact, default=None) or was == pin) \
            else on_stable or (was if was in intact else max(intact, default=None))
        if current != old.get("current"):
            done.append(f"current release set to {current}")
        manifest = {**old, "current": current, "releases": [entries[rid] for rid in sorted(entries)]}
        # what the manifest says of the whole warehouse, from its releases (a lost manifest loses it)
        if any(e.get("kind") == "national" for e in entries.values()):
            manifest["kind"] = "national"
        if owners := [entries[rid]["district_code"] for rid in sorted(entries) if entries[rid].get("district_code")]:
            manifest["district_code"] = owners[-1]
        if pin not in intact and manifest.pop("pinned", None):
            done.append("a pin that names no intact release was lifted")
        if manifest != old or done:
            write_manifest(warehouse, manifest)
        for rid in intact:
            write_sidecar(warehouse, entries[rid])
        if current and not _points_at(warehouse, warehouse / entries[current]["file"]):
            point_stable_at(warehouse, warehouse / entries[current]["file"])
            done.append(f"{stable} re-pointed at {current}")
        return done


def _entry_from_file(path: Path, sha256: str) -> dict | None:
    """A manifest entry rebuilt from the `_release` row (for a release published before sidecars)."""
    row = _release_row(path)
    if row is None:
        return None
    entry = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}
    for key in ("input_files", "row_counts", "validation_summary", "quarantine_summary"):
        with suppress(ValueError):
            entry[key] = json.loads(entry.get(key) or "null")
    return {**entry, "sha256": sha256}


def diff(warehouse: Path, a: str, b: str, limit: int = 20) -> dict:
    """Which KPI rows were added, removed or changed from release a to b, and why (inputs, code);
    `restated`: the values of closed months that the releases after a restated (kpi_revisions)."""
    paths = [warehouse / checked_release(warehouse, r)["file"] for r in (a, b)]
    con = duckdb.connect()
    for alias, path in zip(("a", "b"), paths, strict=True):
        con.execute(f"attach {sql_literal(str(path))} as {alias} (read_only)")
    meta = {alias: con.execute(f"select input_files, code_version, created_at from {alias}._release").fetchone()
            for alias in ("a", "b")}
    inputs_a, inputs_b = (json.loads(meta[x][0]) for x in ("a", "b"))
    out = {"code_changed": meta["a"][1] != meta["b"][1], "code_versions": [meta["a"][1], meta["b"][1]],
           "inputs_added": sorted(set(inputs_b) - set(inputs_a)),
           "inputs_removed": sorted(set(inputs_a) - set(inputs_b)),
           "inputs_changed": sorted(k for k in set(inputs_a) & set(inputs_b) if inputs_a[k] != inputs_b[k]),
           "a_is_newer": meta["a"][2] > meta["b"][2],
           "municipalities": {str(code): name for code, name in con.execute(
               "select municipality_code, municipality from b.dim_municipality").fetchall()},
           "tables": {}}
    held = {r[0] for r in con.execute("select table_name from duckdb_tables() where database_name = 'a'").fetchall()}
    held_b = {r[0] for r in con.execute("select table_name from duckdb_tables() where database_name = 'b'").fetchall()}
    # The restatements of closed months logged since A (B's log minus A's; A may predate the log; a
    # national release keeps none)
    out["restated"] = [dict(zip(("release_id", "table_name", "key", "column_name", "old_value", "new_value",
                                 "inputs_changed", "code_changed"), row, strict=True)) for row in con.execute(f"""
        select release_id, table_name, key, column_name, old_value, new_value, inputs_changed, code_changed
        from b.kpi_revisions
        {"where release_id not in (select release_id from a.kpi_revisions)" if "kpi_revisions" in held else ""}
        order by release_id, table_name, key, column_name""").fetchall()] if "kpi_revisions" in held_b else []
    for table, meta in load_metadata(national=True).items():
        if not meta.keys or table == "kpi_revisions" or table.startswith("rpt_") or table not in held & held_b:
            continue  # the log is shown as `restated`; the report's models repeat the kpi_ tables
        cols_b = {r[0] for r in con.execute("select column_name from duckdb_columns() where database_name = 'b' "
                                            f"and table_name = '{table}'").fetchall()}
        # a national release's district rows: the district is part of the key
        keys = (["district_code"] if "district_code" in cols_b and "district_code" not in meta.keys else []) \
            + list(meta.keys)
        cols = [r[0] for r in con.execute(f"select column_name from duckdb_columns() where database_name = 'b' "
                                          f"and table_name = '{table}' order by column_index").fetchall()]
        values = [c for c in cols if c not in keys]
        on = " and ".join(f"a.{k} is not distinct from b.{k}" for k in keys)
        differs = " or ".join(f"a.{v} is distinct from b.{v}" for v in values)
        key_expr = ", ".join(f"'{k}': coalesce(b.{k}, a.{k})::varchar" for k in keys)
        rows = con.execute(f"""
            select case when a._in is null then 'added' when b._in is null then 'removed' else 'changed' end,
                   {{ {key_expr} }} as key,
                   {{ {', '.join(f"'{v}': [a.{v}::varchar, b.{v}::varchar]" for v in values)} }} as vals
            from (select *, true as _in from a.{table}) as a
            full outer join (select *, true as _in from b.{table}) as b on {on}
            where a._in is null or b._in is null or {differs}
        """).fetchall()
        counts = {k: sum(1 for r in rows if r[0] == k) for k in ("added", "removed", "changed")}
        out["tables"][table] = {**counts, "null_means": meta.null_means, "examples": [
            {"change": r[0], "key": r[1], "values": {k: v for k, v in r[2].items() if v[0] != v[1]}}
            for r in rows[:limit]]}
    con.close()
    return out
