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
import polars as pl

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


def write_parquet_atomic(frame: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    frame.write_parquet(tmp)
    os.replace(tmp, path)


FILES_SCHEMA = {
    "identity": pl.String, "source": pl.String, "landing_path": pl.String, "sha256": pl.String,
    "size_bytes": pl.Int64, "mtime_ns": pl.Int64, "encoding": pl.String, "status": pl.String, "reason": pl.String,
    "rows_read": pl.Int64, "rows_staged": pl.Int64, "rows_quarantined": pl.Int64, "run_id": pl.String,
}


def apply_files(con: duckdb.DuckDBPyConnection, entries: list[dict], staged: dict[str, pl.DataFrame],
                quarantined: pl.DataFrame | None, run_id: str) -> None:
    """In one transaction: withdraw what these files' earlier versions contributed, then add these
    versions (staged rows per source and quarantined rows carry their `file_identity`)."""
    files = pl.DataFrame(entries, schema=FILES_SCHEMA)
    con.execute("begin transaction")
    try:
        con.register("incoming_files", files)
        for table in ("staged_reports", "staged_dispatches", "staged_outreach", "staged_ambassadors", "quarantine"):
            con.execute(f"delete from {table} where file_identity in (select identity from incoming_files)")
        con.execute("delete from files where identity in (select identity from incoming_files)")
        for source, frame in staged.items():
            con.register("incoming_staged", frame)
            con.execute(f"insert into staged_{source} by name select * from incoming_staged")
            con.unregister("incoming_staged")
        if quarantined is not None and len(quarantined):
            con.register("incoming_quarantine", quarantined)
            con.execute("insert into quarantine by name select ? as run_id, * from incoming_quarantine", [run_id])
            con.unregister("incoming_quarantine")
        con.execute("insert into files by name select *, now() as ingested_at from incoming_files")
        con.execute("""insert into rejections select identity, source, landing_path, sha256, reason, run_id, now()
                       from incoming_files where status = 'rejected'""")
        con.unregister("incoming_files")
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

