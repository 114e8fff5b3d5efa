"""The release store: release files under releases/, their sidecars, the manifest and the stable
path, each changed atomically. Readers holding the old file keep it; new readers get the new one.
No Prefect; the publish stage (flows/release/publish.py) and the operator commands
(flows/release/releases.py) both work through it."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from flows.files import file_sha256, write_json_atomic

STABLE = "politikpi.duckdb"
KPI_STABLE = "politikpi_kpi.duckdb"  # the KPI file's stable path: dim_municipality, kpi_ tables, _release
NATIONAL_STABLE = "politikpi_national.duckdb"  # the national warehouse's stable path (SPEC 8.4)
KPI_SUFFIX = ".kpi.duckdb"  # releases/<id>.kpi.duckdb beside releases/<id>.duckdb
RELEASE_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{12}$")


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


def current_release(warehouse: Path) -> dict | None:
    """The manifest entry of the current release, if there is one."""
    manifest = load_manifest(warehouse)
    return next((r for r in manifest["releases"] if r["release_id"] == manifest["current"]), None)


def is_national(warehouse: Path) -> bool:
    """A national warehouse (SPEC 8.4): its manifest says so, or its stable path is there."""
    try:
        if json.loads((warehouse / "manifest.json").read_text(encoding="utf-8")).get("kind") == "national":
            return True
    except (OSError, ValueError, AttributeError):
        pass
    return (warehouse / NATIONAL_STABLE).exists()


def stable_path(warehouse: Path) -> Path:
    """The stable path readers open: politikpi.duckdb, or politikpi_national.duckdb in a national warehouse."""
    return warehouse / (NATIONAL_STABLE if is_national(warehouse) else STABLE)


def kpi_path(release_file: Path) -> Path:
    """The KPI file beside a release file (releases/<id>.kpi.duckdb, or .building/<id>.kpi.duckdb)."""
    return release_file.with_name(release_file.stem + KPI_SUFFIX)


def is_kpi_file(path: Path) -> bool:
    return path.name.endswith(KPI_SUFFIX)


def point_stable_at(warehouse: Path, release_file: Path) -> None:
    """Swap the stable paths: the release first, then its KPI file (if it has one), each by
    hard-linking under a temporary name and renaming over the stable path. A reader of either
    always opens a complete release; the two name the same release except for the moment between."""
    for source, name in ((release_file, stable_path(warehouse).name), (kpi_path(release_file), KPI_STABLE)):
        if name == KPI_STABLE and not source.exists():
            continue
        tmp = warehouse / f".{name}.tmp{os.getpid()}"
        tmp.unlink(missing_ok=True)
        os.link(source, tmp)
        os.replace(tmp, warehouse / name)
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
    write_json_atomic(path, entry)
    os.chmod(path, 0o444)


def add_release(build_file: Path, warehouse: Path, entry: dict, keep: int, sha256: str | None = None,
                kpi_sha256: str | None = None) -> dict:
    """Move the built file into releases/ (read-only), record it as current, swap the stable path.

    Order matters for crashes: (1) the file and its KPI file land under releases/ (orphans until
    listed), (2) the manifest lists it as current, (3) its sidecar records it as published, (4) the
    stable paths are re-pointed (release, then KPI file). `sha256` is the build file's hash if the caller computed it
    already (the file is final before publishing). A crash between (1) and (3) leaves an
    unlisted file with no sidecar, which `recover` removes (nobody could have seen it); a crash
    before (4) leaves the stable path on the previous complete release; `recover` (run by every
    refresh, rollback and verify) re-points it and writes a missing sidecar."""
    from flows.faults import hit

    releases = warehouse / "releases"
    releases.mkdir(parents=True, exist_ok=True)
    target = releases / f"{entry['release_id']}.duckdb"
    pairs = [(build_file, target)] + ([(kpi_path(build_file), kpi_path(target))]
                                      if kpi_path(build_file).exists() else [])
    for source, _ in pairs:
        os.chmod(source, 0o444)
    hit("publish:before_move")
    for source, linked in pairs:
        if not linked.exists():  # a hard link: the build stays where it is for a resumed run's cache
            os.link(source, linked)
        elif not os.path.samefile(linked, source):
            raise PublishRefused(f"{linked} exists and is not this run's build; nothing published "
                                 "(run `politikpi verify`)")
    hit("publish:after_move")
    entry = {**entry, "file": f"releases/{target.name}", "sha256": sha256 or file_sha256(target),
             "published_at": entry.get("published_at") or _now()}
    if len(pairs) > 1:
        entry |= {"kpi_file": f"releases/{kpi_path(target).name}",
                  "kpi_sha256": kpi_sha256 or file_sha256(kpi_path(target))}
    manifest = load_manifest(warehouse)
    manifest["releases"] = [r for r in manifest["releases"] if r["release_id"] != entry["release_id"]]
    manifest["releases"].append(entry)
    manifest["current"] = entry["release_id"]
    if entry.get("kind") == "national":
        manifest["kind"] = "national"
    elif entry.get("district_code"):
        manifest["district_code"] = entry["district_code"]
    write_manifest(warehouse, manifest)
    hit("publish:after_manifest")
    write_sidecar(warehouse, entry)
    point_stable_at(warehouse, target)
    hit("publish:after_swap")
    prune(warehouse, keep)
    return entry


def _now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def write_manifest(warehouse: Path, manifest: dict) -> None:
    write_json_atomic(warehouse / "manifest.json", manifest)


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
        kpi_path(warehouse / r["file"]).unlink(missing_ok=True)
        sidecar_path(warehouse, r["release_id"]).unlink(missing_ok=True)
        shutil.rmtree(warehouse / "docs" / r["release_id"], ignore_errors=True)
        (warehouse / "reports" / f"{r['release_id']}.html").unlink(missing_ok=True)
    return [r["release_id"] for r in removed]
