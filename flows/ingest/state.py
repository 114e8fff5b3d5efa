"""The state folder: the file registry, staged rows and quarantine that persist between runs.

Layout: `state.duckdb` (tables below), `archive/<sha256>.parquet` (each ingested file's raw
rows minus personal data, so a rebuild never needs the landing folder), `.lock`.
"""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path

import duckdb

from flows.config import duckdb_memory

DDL = """
create table if not exists files (
    identity varchar primary key, source varchar, landing_path varchar, sha256 varchar,
    size_bytes bigint, mtime_ns bigint, encoding varchar, status varchar, reason varchar, rows_read bigint,
    rows_staged bigint, rows_quarantined bigint, run_id varchar, ingested_at timestamptz
);
create table if not exists staged_reports (
    file_identity varchar, line bigint, journalnr varchar, anmeldt_tid timestamptz,
    gerningstid_fra timestamptz, kommunekode integer, lovomraade varchar, overtraedelse varchar,
    sidst_aendret timestamptz
);
create table if not exists staged_dispatches (
    file_identity varchar, line bigint, haendelse_id varchar, modtaget timestamptz,
    disponeret timestamptz, fremme timestamptz, afsluttet timestamptz, prioritet integer,
    aarsag varchar, responstid_maalt boolean, kommunekode integer, aflyst boolean,
    sidst_aendret timestamptz, journalnr varchar
);
create table if not exists staged_outreach (
    file_identity varchar, line bigint, dato date, kommunekode integer, aktivitet varchar,
    antal integer, lokalomraade varchar
);
create table if not exists staged_ambassadors (
    file_identity varchar, line bigint, ambassadoer_id varchar, lokalomraade varchar,
    kommunekode integer, aktiv_fra date, aktiv_til date
);
create table if not exists rejections (
    identity varchar, source varchar, landing_path varchar, sha256 varchar, reason varchar, run_id varchar,
    rejected_at timestamptz
);
create table if not exists quarantine (
    source varchar, file_identity varchar, line bigint, kind varchar, rules varchar,
    record_key varchar, raw_values varchar, length bigint, sha256 varchar, run_id varchar
);
"""


class StateBusy(RuntimeError):
    """Another process holds the state lock."""


@contextmanager
def state_lock(state: Path, name: str = ".lock", wait: float = 0):
    """One writer at a time: an exclusive lock on a file in the folder, waited for up to `wait`
    seconds (a refresh refuses at once; a publish waits for an operator's short command)."""
    state.mkdir(parents=True, exist_ok=True)
    fd = os.open(state / name, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + wait
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.2)
                    continue
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
                raise StateBusy(f"another politikpi process holds {state / name} (pid {holder}); "
                                "wait for it to finish") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


def db_path(state: Path) -> Path:
    return state / "state.duckdb"


def connect(state: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    state.mkdir(parents=True, exist_ok=True)
    if read_only:
        return duckdb.connect(str(db_path(state)), read_only=True)
    con = duckdb.connect(str(db_path(state)), config={"memory_limit": duckdb_memory()})
    con.execute(DDL)
    return con


def archive_path(state: Path, sha256: str, part: str = "rows") -> Path:
    return state / "archive" / f"{sha256}.{part}.parquet"
