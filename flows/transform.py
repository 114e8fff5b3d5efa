"""Build a release file: reference data + staged rows from the state -> sql/ models."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import duckdb

from flows import patch, sqlrunner
from flows.config import duckdb_memory
from flows.state import db_path
from schemas.reference import reference_dir

STORAGE_VERSION = re.compile(r"^v\d+\.\d+\.\d+$")


def quote_path(path: Path) -> str:
    return sqlrunner.sql_literal(str(path))


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


def load_reference(con: duckdb.DuckDBPyConnection, folder: Path | None = None) -> None:
    folder = folder or reference_dir()
    con.execute("create or replace temp table ref_municipalities as "
                "select * from read_csv(?, header=true, auto_detect=true)",
                [str(folder / "municipalities.csv")])
    con.execute("create or replace temp table ref_population as "
                "select municipality_code::integer as municipality_code, year::integer as year, "
                "population::bigint as population, source from read_csv(?, header=true)",
                [str(folder / "population.csv")])


def build_release(state_dir: Path, path: Path, storage_version: str, progress=None,
                  base: Path | None = None, changed: list[str] | None = None,
                  ) -> tuple[duckdb.DuckDBPyConnection, list[str]]:
    """Run every model into a new release file at path; returns the published tables.

    With a base (the current release, built by the same code from an earlier state), the new
    file starts as a copy of it and only what the changed input files move is recomputed
    (flows/patch.py); the tables are the same as a full build's. The connection stays open for
    the caller, who closes it."""
    if base is None:
        con = open_build(path, storage_version)
        con.execute(f"attach {quote_path(db_path(state_dir))} as state (read_only)")
        load_reference(con)
        return con, sqlrunner.build(con, progress=progress)
    remove_build(path)
    shutil.copyfile(base, path)  # a new file (the base is read-only and stays as it is)
    os.chmod(path, 0o644)
    con = duckdb.connect(config=duckdb_limits())
    con.execute(f"attach {quote_path(path)} as release")
    con.execute("use release")
    con.execute(f"attach {quote_path(db_path(state_dir))} as state_db (read_only)")
    load_reference(con)
    return con, patch.patch(con, changed or [], progress=progress)
