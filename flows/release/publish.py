"""The publish stage: an audited build becomes the current release (through the release store,
flows/release/store.py), with its KPI file, its Data Docs and its report beside it. No Prefect."""

from __future__ import annotations

import logging
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb

from flows.config import Settings
from flows.files import file_sha256
from flows.release import releases, store
from flows.transform.runner import sql_literal
from flows.transform.transform import quote_path
from flows.transform.versions import state_version

PUBLISH_LOCK_WAIT = 120  # seconds a publish waits for an operator's verify, repair, rollback or unpin


class Pinned(RuntimeError):
    """A rollback pinned the current release: nothing is published until `politikpi unpin`."""


def unchanged_release(settings: Settings) -> dict | None:
    """The current release when it was built from exactly this state (so nothing is new)."""
    current = store.current_release(settings.warehouse)
    if current is None or current.get("state_version") != state_version(settings):
        return None
    return current if (settings.warehouse / current["file"]).is_file() else None


def finish_interrupted_publish(settings: Settings) -> None:
    """The stable path and sidecar of a release a failed run had already listed as current."""
    with releases.warehouse_lock(settings.warehouse, wait=PUBLISH_LOCK_WAIT):
        releases.recover(settings.warehouse)


def publish_build(settings: Settings, built: dict, audited: dict) -> dict:
    """Publish the audited build. Idempotent: an already-current release is left as it is; a
    listed one is made current again only if its file is this very build and matches its checksum."""
    with releases.warehouse_lock(settings.warehouse, wait=PUBLISH_LOCK_WAIT), ThreadPoolExecutor(1) as pool:
        releases.recover(settings.warehouse)
        entry = {**built["meta"], "validation_summary": audited}
        manifest = store.load_manifest(settings.warehouse)
        if manifest.get("pinned"):
            raise Pinned(f"release {manifest['pinned']['release_id']} is pinned (rollback)")
        listed = {r["release_id"]: r for r in manifest["releases"]}
        if entry["release_id"] in listed:
            return _republish(settings, listed[entry["release_id"]], Path(built["path"]), manifest)
        docs = settings.warehouse / "docs" / entry["release_id"]
        if not docs.exists():
            shutil.copytree(built["docs"], docs)
        entry["validation_summary"] = {**audited, "docs": str(docs / "index.html")}
        build = Path(built["path"])
        sha256 = pool.submit(file_sha256, build)  # hashing releases the GIL: beside the KPI file and the report
        kpi_sha256 = file_sha256(write_kpi_file(build, settings.storage_version))
        entry["report"] = str(write_release_report(build, settings.warehouse, entry["release_id"]))
        return store.add_release(build, settings.warehouse, entry, settings.keep_releases,
                                 sha256=sha256.result(), kpi_sha256=kpi_sha256)


def kpi_tables(con: duckdb.DuckDBPyConnection, catalog: str) -> list[str]:
    """What the KPI file holds: dim_municipality, the kpi_ tables and _release (no event rows); in a
    national release also dim_police_district and national_inputs (what `export` writes)."""
    return [r[0] for r in con.execute(
        "select table_name from duckdb_tables() where database_name = ? and schema_name = 'main' "
        "and (table_name in ('dim_municipality', 'dim_police_district', 'national_inputs', '_release') "
        "or table_name like 'kpi\\_%' escape '\\') "
        "order by table_name", [catalog]).fetchall()]


def write_kpi_file(build: Path, storage_version: str) -> Path:
    """The build's KPI file beside it (<id>.kpi.duckdb): its dim_municipality, kpi_ tables and
    `_release` row with their comments, in the same storage format. Written anew while the build is
    unpublished; a published one (hard-linked under releases/) is never touched again."""
    out = store.kpi_path(build)
    if out.exists() and out.stat().st_nlink > 1:
        return out
    out.unlink(missing_ok=True)
    with duckdb.connect() as con:
        con.execute(f"attach {quote_path(build)} as release (read_only)")
        con.execute(f"attach {quote_path(out)} as kpi (storage_version '{storage_version}')")
        tables = kpi_tables(con, "release")
        script = [f'create table kpi."{table}" as select * from release."{table}"' for table in tables]
        script += [f'comment on table kpi."{table}" is {sql_literal(comment)}' for table, comment in con.execute(
            "select table_name, comment from duckdb_tables() where database_name = 'release' "
            "and comment is not null").fetchall() if table in tables]
        script += [f'comment on column kpi."{table}"."{column}" is {sql_literal(comment)}'
                   for table, column, comment in con.execute(
                       "select table_name, column_name, comment from duckdb_columns() where database_name = 'release' "
                       "and comment is not null").fetchall() if table in tables]
        con.execute(";\n".join(script))  # one script, as the build's comments (runner.apply_comments)
        con.execute("checkpoint kpi")
        con.execute("detach kpi")
    return out


def _republish(settings: Settings, listed: dict, build: Path, manifest: dict) -> dict:
    """A resumed run whose release is already listed: current already, or made current again."""
    target = settings.warehouse / listed["file"]
    if not (target.is_file() and os.path.samefile(target, build)) or file_sha256(target) != listed["sha256"]:
        raise store.PublishRefused(
            f"release {listed['release_id']} is listed, but its file is not this run's build or does not match "
            "its checksum; nothing published (run `politikpi verify`)")
    if manifest["current"] != listed["release_id"]:
        manifest["current"] = listed["release_id"]
        store.write_manifest(settings.warehouse, manifest)
        store.point_stable_at(settings.warehouse, target)
    return listed


def write_release_report(release_file: Path, warehouse: Path, release_id: str) -> Path | None:
    """The KPI report next to each release; a report that cannot be drawn never blocks publishing."""
    from flows.release.report import write_report

    try:
        return write_report(release_file, warehouse / "reports" / f"{release_id}.html")
    except Exception as exc:  # noqa: BLE001 - the release is audited; the report is a by-product
        logging.getLogger("prefect.politikpi").warning("report for %s not written: %s", release_id, exc)
        return None
