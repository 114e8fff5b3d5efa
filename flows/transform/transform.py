"""The build stage: reference data + staged rows from the state -> sql/ models -> a release file
with its `_release` row, not yet audited or published. Patched from the current release where it
allows (flows/transform/patch.py), else built whole (flows/transform/runner.py). No Prefect."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
from pathlib import Path

import duckdb

from flows.config import Settings, duckdb_memory
from flows.ingest.state import connect as state_connect
from flows.ingest.state import db_path
from flows.release.store import current_release
from flows.transform import patch, runner
from flows.transform.versions import code_version, reference_version, state_version
from schemas.reference import load_municipalities, reference_dir

STORAGE_VERSION = re.compile(r"^v\d+\.\d+\.\d+$")


def quote_path(path: Path) -> str:
    return runner.sql_literal(str(path))


def duckdb_limits() -> dict:
    """DuckDB would take 80 % of RAM; bound it (it spills to disk beyond) and let it reorder rows
    (no model depends on insertion order: every window names its order)."""
    return {"memory_limit": duckdb_memory(), "preserve_insertion_order": False}


def open_build(path: Path, storage_version: str) -> duckdb.DuckDBPyConnection:
    """A connection whose default database is a new release file in the given storage format."""
    if not STORAGE_VERSION.match(storage_version):
        raise ValueError(f"storage version must look like v1.1.0, got {storage_version!r}")
    remove_build(path)
    con = duckdb.connect(config=duckdb_limits())
    con.execute(f"attach {quote_path(path)} as release (storage_version '{storage_version}')")
    con.execute("use release")
    return con


def remove_build(path: Path) -> None:
    """An earlier attempt's build and its WAL (a run killed mid-build leaves both). DuckDB 2.0
    already ignores a WAL written for another file (tried); removing it does not depend on that."""
    path.unlink(missing_ok=True)
    path.with_name(path.name + ".wal").unlink(missing_ok=True)


def load_reference(con: duckdb.DuckDBPyConnection, folder: Path | None = None, district: str | None = None,
                   country: bool = False) -> None:
    """`ref_municipalities` (the district's, or with country all of them, each with its
    district_code) and `ref_population` (their rows of population.csv) as temporary tables."""
    folder = folder or reference_dir()
    munis = load_municipalities(folder, district, country)
    con.execute("create or replace temp table ref_municipalities (municipality_code integer, municipality varchar, "
                "police_district varchar, district_code varchar, station varchar)")
    con.executemany("insert into ref_municipalities values (?, ?, ?, ?, ?)",
                    [(m.code, m.name, m.police_district, m.district_code, m.station or None) for m in munis])
    con.execute("create or replace temp table ref_population as "
                "select municipality_code::integer as municipality_code, year::integer as year, "
                "population::bigint as population, source from read_csv(?, header=true) "
                "where municipality_code::integer in (select municipality_code from ref_municipalities)",
                [str(folder / "population.csv")])


PREVIOUS_TABLES = ("_release", "kpi_reports", "kpi_callouts", "kpi_outreach", "kpi_response_times", "kpi_revisions")


def attach_previous(con: duckdb.DuckDBPyConnection, previous: Path | None = None, info: dict | None = None) -> None:
    """The release this build replaces, as catalog `previous` (the revisions log compares with it
    and carries its rows), and `_build_info`: this release, the replaced one, whether inputs or code
    changed. Without a previous release (or for a table it predates) empty tables stand in."""
    con.execute("attach ':memory:' as previous")
    for statement in runner.run_sql_file("previous/empty"):
        con.execute(statement)
    if previous is not None:
        con.execute(f"attach {quote_path(previous)} as previous_file (read_only)")
        held = {r[0] for r in con.execute("select table_name from duckdb_tables() "
                                          "where database_name = 'previous_file'").fetchall()}
        for table in set(PREVIOUS_TABLES) & held:
            con.execute(f'drop table previous."{table}"')
            con.execute(f'create view previous."{table}" as select * from previous_file."{table}"')
    info = info or {}
    con.execute("create or replace temp table _build_info as select ?::varchar as release_id, "
                "?::varchar as previous_release_id, ?::boolean as inputs_changed, ?::boolean as code_changed",
                [info.get("release_id", "build"), info.get("previous_release_id"), info.get("inputs_changed"),
                 info.get("code_changed")])


def build_release(state_dir: Path, path: Path, storage_version: str, progress=None,
                  base: Path | None = None, changed: list[str] | None = None,
                  previous: Path | None = None, info: dict | None = None,
                  ) -> tuple[duckdb.DuckDBPyConnection, list[str]]:
    """Run every model into a new release file at path; returns the published tables.

    With a base (the current release, built by the same code from an earlier state), the new
    file starts as a copy of it and only what the changed input files move is recomputed
    (flows/transform/patch.py); the tables are the same as a full build's. `previous` is the release
    this one replaces (the revisions log), `info` its `_build_info`. The connection stays open for
    the caller, who closes it."""
    if base is None:
        con = open_build(path, storage_version)
        con.execute(f"attach {quote_path(db_path(state_dir))} as state (read_only)")
        load_reference(con)
        attach_previous(con, previous, info)
        return con, runner.build(con, progress=progress)
    remove_build(path)
    shutil.copyfile(base, path)  # a new file (the base is read-only and stays as it is)
    os.chmod(path, 0o644)
    con = duckdb.connect(config=duckdb_limits())
    con.execute(f"attach {quote_path(path)} as release")
    con.execute("use release")
    con.execute(f"attach {quote_path(db_path(state_dir))} as state_db (read_only)")
    load_reference(con)
    attach_previous(con, previous, info)
    return con, patch.patch(con, changed or [], progress=progress)


def build_path(settings: Settings, release_id: str) -> Path:
    """Each build has its own file, named for the release it becomes: a cached result's path can
    never hold another run's build."""
    return settings.warehouse / ".building" / f"{release_id}.duckdb"


def build_matches(built: dict) -> bool:
    """A (possibly cached) build result is trusted only if its file still holds that release."""
    path = Path(built["path"])
    if not path.is_file():
        return False
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            return con.execute("select release_id from _release").fetchone()[0] == built["meta"]["release_id"]
    except duckdb.Error:
        return False


def patch_base(settings: Settings, current: dict | None, inputs: dict[str, str]) -> tuple[Path, list[str], str] | None:
    """The current release (its manifest entry), if the new one may be patched from it: same code,
    storage format and reference data, and few changed input files (`inputs`: identity -> sha256
    of the state's ingested files). Returns (its file, the changed identities, its id)."""
    if current is None or current.get("storage_version") != settings.storage_version \
            or current.get("code_version") != code_version() \
            or current.get("reference_version") != reference_version(settings.district):
        return None
    base = settings.warehouse / current["file"]
    if not base.is_file():
        return None
    before = current["input_files"]
    changed = sorted(k for k in inputs.keys() | before.keys() if inputs.get(k) != before.get(k))
    if len(changed) > settings.patch_max_share * max(len(inputs), 1):
        return None
    return base, changed, current["release_id"]


def transform_build(settings: Settings, key: str, full: bool = False, run_id: str = "local") -> dict:
    """Build the release file for this state version and write its `_release` row: patched from
    the current release when it allows (patch_base), else built whole (always when `full`)."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    release_id = f"{now:%Y%m%dT%H%M%SZ}-{key[:12]}"
    path = build_path(settings, release_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with state_connect(settings.state, read_only=True) as state_con:
        inputs = dict(state_con.execute("select identity, sha256 from files where status = 'ingested' "
                                        "order by identity").fetchall())
    replaced = current_release(settings.warehouse)  # the release this one replaces (and may patch)
    patchable = None if full else patch_base(settings, replaced, inputs)
    if patchable is None:
        base_file, changed, build = None, None, {"kind": "full"}
    else:
        base_file, changed, base_id = patchable
        build = {"kind": "patch", "base": base_id, "changed_files": len(changed)}
    previous = settings.warehouse / replaced["file"] if replaced else None
    info = {"release_id": release_id, "previous_release_id": replaced and replaced["release_id"],
            "inputs_changed": replaced is not None and replaced["input_files"] != inputs,
            "code_changed": replaced is not None and replaced.get("code_version") != code_version()}
    con, published = build_release(settings.state, path, settings.storage_version, base=base_file, changed=changed,
                                   previous=previous if previous and previous.is_file() else None, info=info)
    try:
        rejected = dict(con.execute("select identity, reason from state.files where status = 'rejected' "
                                    "order by identity").fetchall())
        totals = {r[0]: dict(zip(("files", "read", "staged", "quarantined", "rejected_files"), r[1:], strict=True))
                  for r in con.execute(runner.audit_sql("state_totals")).fetchall()}
        meta = {
            "release_id": release_id, "created_at": now,
            "data_through": con.execute(runner.audit_sql("release_facts")).fetchone()[0],
            "code_version": code_version(), "flow_run_id": run_id, "input_files": inputs,
            "row_counts": {t: con.execute(f'select count(*) from "{t}"').fetchone()[0] for t in published},
            "validation_summary": {"pending": True},
            "quarantine_summary": {"sources": totals, "rejected_files": rejected},
            "storage_version": settings.storage_version, "build": build,
            "reference_version": reference_version(settings.district),
            "state_version": state_version(settings), "district_code": settings.district,
        }
        write_release_table(con, meta)
    finally:
        close_build(con)
    meta = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in meta.items()}
    return {"path": str(path), "published": published, "meta": meta, "docs": str(path.with_suffix(".docs"))}


def write_release_table(con: duckdb.DuckDBPyConnection, meta: dict) -> None:
    """The `_release` row: what this release is, what it was built from, how it was checked."""
    con.execute("""
        create or replace table _release (
            release_id varchar, created_at timestamptz, data_through date, code_version varchar,
            flow_run_id varchar, input_files varchar, row_counts varchar,
            validation_summary varchar, quarantine_summary varchar, district_code varchar)
    """)
    con.execute("insert into _release values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
        meta["release_id"], meta["created_at"], meta["data_through"], meta["code_version"],
        meta["flow_run_id"], json.dumps(meta["input_files"]), json.dumps(meta["row_counts"]),
        json.dumps(meta["validation_summary"]), json.dumps(meta["quarantine_summary"]), meta.get("district_code"),
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
        "district_code": "The police district the release is for (reference/police_districts.csv).",
    }.items():
        con.execute(f"comment on column _release.{column} is {runner.sql_literal(text)}")


def close_build(con: duckdb.DuckDBPyConnection) -> None:
    """CHECKPOINT and detach, so the file is complete with no WAL beside it."""
    con.execute("checkpoint release")
    con.execute("use memory")
    con.execute("detach release")
    con.close()
