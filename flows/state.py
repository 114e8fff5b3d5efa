"""The state folder: the file registry, staged rows and quarantine that persist between runs.

Layout: `state.duckdb` (tables below), `archive/<sha256>.parquet` (each ingested file's raw
rows minus personal data, so a rebuild never needs the landing folder), `.lock`.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

import duckdb
import polars as pl

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
create table if not exists quarantine (
    source varchar, file_identity varchar, line bigint, kind varchar, rules varchar,
    record_key varchar, raw_values varchar, length bigint, sha256 varchar, run_id varchar
);
"""


class StateBusy(RuntimeError):
    """Another process holds the state lock."""


@contextmanager
def state_lock(state: Path, name: str = ".lock"):
    """One writer at a time: an exclusive, non-blocking lock on a file in the folder."""
    state.mkdir(parents=True, exist_ok=True)
    fd = os.open(state / name, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
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
    con = duckdb.connect(str(db_path(state)), config={"memory_limit": os.environ.get("POLITIKPI_DUCKDB_MEMORY", "2GB")})
    con.execute(DDL)
    return con


def archive_path(state: Path, sha256: str, part: str = "rows") -> Path:
    return state / "archive" / f"{sha256}.{part}.parquet"


def write_parquet_atomic(frame: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    frame.write_parquet(tmp)
    os.replace(tmp, path)


def apply_file(con: duckdb.DuckDBPyConnection, entry: dict, staged: pl.DataFrame,
               quarantined: pl.DataFrame) -> None:
    """Withdraw what the file's earlier version contributed, then add this version: one transaction."""
    source, identity = entry["source"], entry["identity"]
    con.execute("begin transaction")
    try:
        for table in ("staged_reports", "staged_dispatches", "staged_outreach", "staged_ambassadors"):
            con.execute(f"delete from {table} where file_identity = ?", [identity])
        con.execute("delete from quarantine where file_identity = ?", [identity])
        con.execute("delete from files where identity = ?", [identity])
        if len(staged):
            con.register("incoming_staged", staged)
            con.execute(f"insert into staged_{source} by name "
                        "select ? as file_identity, * from incoming_staged", [identity])
            con.unregister("incoming_staged")
        if len(quarantined):
            con.register("incoming_quarantine", quarantined)
            con.execute("insert into quarantine by name select ? as source, ? as file_identity, "
                        "? as run_id, * from incoming_quarantine",
                        [source, identity, entry["run_id"]])
            con.unregister("incoming_quarantine")
        columns = list(entry)
        con.execute(
            f"insert into files ({', '.join(columns)}, ingested_at) "
            f"values ({', '.join('?' for _ in columns)}, now())",
            [entry[c] for c in columns],
        )
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise


CORRECTION_SQL = """
update quarantine set kind = case when exists (
        select 1 from {table} as s where s.{key} = quarantine.record_key) then 'correction' else 'row' end
where source = '{source}' and kind in ('row', 'correction')
"""


def mark_corrections(con: duckdb.DuckDBPyConnection) -> None:
    """A quarantined row whose key has a valid version is an invalid correction (that version stays
    in force); recomputed after every load, since files arrive in any order."""
    for source, table, key in (("reports", "staged_reports", "journalnr"),
                               ("dispatches", "staged_dispatches", "haendelse_id")):
        con.execute(CORRECTION_SQL.format(table=table, key=key, source=source))

