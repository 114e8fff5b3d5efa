"""Publish: finish the release file, move it under releases/, update the manifest, swap the
stable path atomically. Readers holding the old file keep it; new readers get the new one."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import duckdb

from flows.readers import file_sha256
from flows.sqlrunner import sql_literal

STABLE = "politikpi.duckdb"
RELEASE_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{12}$")
CODE_DIRS = ("flows", "schemas", "sql")
# Modules that compute no number of a release (command line, server wrapper, run artifacts, fault
# injection; the sample generator lives outside CODE_DIRS): editing them must not turn off patched
# releases or empty caches.
NOT_CODE = {"flows/__main__.py", "flows/cli.py", "flows/server.py", "flows/artifacts.py", "flows/faults.py"}
REPO = Path(__file__).resolve().parent.parent


@functools.cache
def code_version() -> str:
    """Package version plus a hash of the code and SQL that computed the numbers."""
    from importlib.metadata import PackageNotFoundError, version

    digest = hashlib.sha256()
    for folder in CODE_DIRS:
        for path in sorted((REPO / folder).rglob("*")):
            if path.suffix in (".py", ".sql", ".toml") and "__pycache__" not in path.parts \
                    and path.relative_to(REPO).as_posix() not in NOT_CODE:
                digest.update(path.relative_to(REPO).as_posix().encode())
                digest.update(path.read_bytes())
    try:
        base = version("politikpi")
    except PackageNotFoundError:
        base = "0+unknown"
    return f"{base}+{digest.hexdigest()[:12]}"


def write_release_table(con: duckdb.DuckDBPyConnection, meta: dict) -> None:
    """The `_release` row: what this release is, what it was built from, how it was checked."""
    con.execute("""
        create or replace table _release (
            release_id varchar, created_at timestamptz, data_through date, code_version varchar,
            flow_run_id varchar, input_files varchar, row_counts varchar,
            validation_summary varchar, quarantine_summary varchar)
    """)
    con.execute("insert into _release values (?, ?, ?, ?, ?, ?, ?, ?, ?)", [
        meta["release_id"], meta["created_at"], meta["data_through"], meta["code_version"],
        meta["flow_run_id"], json.dumps(meta["input_files"]), json.dumps(meta["row_counts"]),
        json.dumps(meta["validation_summary"]), json.dumps(meta["quarantine_summary"]),
    ])
    con.execute("comment on table _release is 'One row: this release''s id, time, data_through "
                "(last day with data from every source), code version, flow run, input files with "
                "hashes (JSON), row counts (JSON), audit summary (JSON) and quarantine summary (JSON).'")
    for column, text in {
        "release_id": "Release id: UTC time and a hash of inputs and code.",
        "created_at": "When the release was built.",
        "data_through": "Last day with data from every event source (reports, call-outs, outreach).",
        "code_version": "Package version + hash of flows/, schemas/ and sql/.",
        "flow_run_id": "Prefect flow run that built the release.",
        "input_files": "JSON object: file identity -> sha256 of every ingested input file.",
        "row_counts": "JSON object: table -> rows.",
        "validation_summary": "JSON: the Great Expectations audit (checks run, failed).",
        "quarantine_summary": "JSON: rows read, staged and quarantined per source; rejected files.",
    }.items():
        con.execute(f"comment on column _release.{column} is {sql_literal(text)}")


def close_build(con: duckdb.DuckDBPyConnection) -> None:
    """CHECKPOINT and detach, so the file is complete with no WAL beside it."""
    con.execute("checkpoint release")
    con.execute("use memory")
    con.execute("detach release")
    con.close()


class ManifestError(RuntimeError):
    """manifest.json cannot be read; `politikpi repair` rebuilds it from the release files."""


def load_manifest(warehouse: Path) -> dict:
    path = warehouse / "manifest.json"
    if not path.exists():
        return {"current": None, "releases": []}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(manifest.get("releases"), list) or not all(
                isinstance(r, dict) and RELEASE_ID.match(str(r.get("release_id"))) for r in manifest["releases"]):
            raise ValueError("its releases are not a list of release entries")
        if manifest.get("pinned") is not None and not isinstance(manifest["pinned"], dict):
            raise ValueError("its pin is not a release pin")
    except (ValueError, AttributeError) as exc:
        raise ManifestError(f"{path} cannot be read ({str(exc).splitlines()[0][:120]}); "
                            "run `politikpi repair` to rebuild it from the release files") from None
    manifest.setdefault("current", None)
    return manifest


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def point_stable_at(warehouse: Path, release_file: Path) -> None:
    """Hard-link the release under a temporary name, then rename it over the stable path."""
    tmp = warehouse / f".{STABLE}.tmp{os.getpid()}"
    tmp.unlink(missing_ok=True)
    os.link(release_file, tmp)
    os.replace(tmp, warehouse / STABLE)
    fd = os.open(warehouse, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PublishRefused(RuntimeError):
    """Publishing would make the warehouse lie (a cached build that is not what it claims to be)."""


def sidecar_path(warehouse: Path, release_id: str) -> Path:
    """`releases/<id>.json`: the release's manifest entry, written once and read-only, so a
    tampered or lost manifest can be rebuilt (`politikpi repair`) and a changed file told apart."""
    return warehouse / "releases" / f"{release_id}.json"


def write_sidecar(warehouse: Path, entry: dict) -> None:
    path = sidecar_path(warehouse, entry["release_id"])
    if path.exists():
        return
    _write_atomic(path, json.dumps(entry, indent=2, ensure_ascii=False, default=str))
    os.chmod(path, 0o444)


def publish(build_file: Path, warehouse: Path, entry: dict, keep: int, sha256: str | None = None) -> dict:
    """Move the built file into releases/ (read-only), record it as current, swap the stable path.

    Order matters for crashes: (1) the file lands under releases/ (an orphan until listed),
    (2) the manifest lists it as current, (3) its sidecar records it as published, (4) the
    stable path is re-pointed. `sha256` is the build file's hash if the caller computed it
    already (the file is final before publishing). A crash between (1) and (3) leaves an
    unlisted file with no sidecar, which `recover` removes (nobody could have seen it); a crash
    before (4) leaves the stable path on the previous complete release; `recover` (run by every
    refresh, rollback and verify) re-points it and writes a missing sidecar."""
    from flows.faults import hit

    releases = warehouse / "releases"
    releases.mkdir(parents=True, exist_ok=True)
    target = releases / f"{entry['release_id']}.duckdb"
    os.chmod(build_file, 0o444)
    hit("publish:before_move")
    if not target.exists():  # a hard link: the build stays where it is for a resumed run's cache
        os.link(build_file, target)
    elif not os.path.samefile(target, build_file):
        raise PublishRefused(f"{target} exists and is not this run's build; nothing published "
                             "(run `politikpi verify`)")
    hit("publish:after_move")
    entry = {**entry, "file": f"releases/{target.name}", "sha256": sha256 or file_sha256(target)}
    manifest = load_manifest(warehouse)
    manifest["releases"] = [r for r in manifest["releases"] if r["release_id"] != entry["release_id"]]
    manifest["releases"].append(entry)
    manifest["current"] = entry["release_id"]
    write_manifest(warehouse, manifest)
    hit("publish:after_manifest")
    write_sidecar(warehouse, entry)
    point_stable_at(warehouse, target)
    hit("publish:after_swap")
    prune(warehouse, keep)
    return entry


def write_manifest(warehouse: Path, manifest: dict) -> None:
    _write_atomic(warehouse / "manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False))


def write_json_atomic(path: Path, data: dict) -> None:
    """Any small JSON record, written atomically (a reader never sees half of it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, default=str))


def prune(warehouse: Path, keep: int) -> list[str]:
    """Keep the newest `keep` releases and always the current one; delete the rest."""
    manifest = load_manifest(warehouse)
    ordered = sorted(manifest["releases"], key=lambda r: r["release_id"])
    keep_ids = {r["release_id"] for r in ordered[-max(keep, 1):]} | {manifest["current"]} \
        | {(manifest.get("pinned") or {}).get("release_id")}
    removed = [r for r in ordered if r["release_id"] not in keep_ids]
    manifest["releases"] = [r for r in ordered if r["release_id"] in keep_ids]
    write_manifest(warehouse, manifest)
    for r in removed:
        (warehouse / r["file"]).unlink(missing_ok=True)
        sidecar_path(warehouse, r["release_id"]).unlink(missing_ok=True)
        shutil.rmtree(warehouse / "docs" / r["release_id"], ignore_errors=True)
        (warehouse / "reports" / f"{r['release_id']}.html").unlink(missing_ok=True)
    return [r["release_id"] for r in removed]
