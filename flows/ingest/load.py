"""The load stage: each file's validated outcome into the state database, one transaction per
batch of files (a file is wholly in or wholly out), its earlier version withdrawn first; then
invalid corrections are marked. Idempotent: a resumed run skips what the state already holds."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from flows.ingest.extract import FileResult, work_paths

LOAD_BATCH_ROWS = 1_000_000  # rows applied per state transaction (several files at once)


def load_results(con, results: list[FileResult], workdir: Path, run_id: str, reset: list[str]) -> int:
    """Apply outcomes in order, skipping files the state already holds in this version (a resumed
    run); files being rebuilt (reset) are always re-applied. Several files share a transaction
    (each is wholly in or wholly out either way). Returns how many were applied."""
    if len({r.identity for r in results}) < len(results):
        raise RuntimeError("state load: a file identity has two outcomes in one run; nothing was loaded (report it)")
    held = {r[0]: r[1] for r in con.execute("select identity, sha256 from files").fetchall()}
    todo = [r for r in results if r.identity in reset or held.get(r.identity) != r.sha256]
    batch: list[FileResult] = []
    for result in todo:
        batch.append(result)
        if sum(r.rows_read for r in batch) >= LOAD_BATCH_ROWS:
            _load_batch(con, batch, run_id, workdir)
            batch = []
    if batch:
        _load_batch(con, batch, run_id, workdir)
    if todo:
        mark_corrections(con)
    return len(todo)


def _load_batch(con, batch: list[FileResult], run_id: str, workdir: Path) -> None:
    """One transaction for a batch of files: DuckDB reads their staged and quarantined rows from
    the validation batches' work files itself (in parallel, no copy through Python)."""
    ingested = [r for r in batch if r.status == "ingested"]
    staged: dict[str, list[FileResult]] = {}
    for r in ingested:
        staged.setdefault(r.source, []).append(r)
    apply_files(con, [r.entry(run_id) for r in batch],
                {source: _rows_of(mine, workdir, "staged") for source, mine in staged.items()},
                _rows_of(ingested, workdir, "quarantine"), run_id)


def _rows_of(results: list[FileResult], workdir: Path, part: str) -> tuple[list[str], list[str], int]:
    """(the files' identities, the work files holding their rows, how many rows validation counted):
    an identity has one outcome a run, so its rows are the work files' rows naming it."""
    paths = [str(p) for p in work_paths(workdir, (r.work for r in results), part)]
    counted = sum(r.rows_staged if part == "staged" else r.rows_quarantined for r in results)
    return [r.identity for r in results], paths, counted


FILES_SCHEMA = {
    "identity": pl.String, "source": pl.String, "landing_path": pl.String, "sha256": pl.String,
    "size_bytes": pl.Int64, "mtime_ns": pl.Int64, "encoding": pl.String, "status": pl.String, "reason": pl.String,
    "rows_read": pl.Int64, "rows_staged": pl.Int64, "rows_quarantined": pl.Int64, "run_id": pl.String,
}


def _insert_parquet(con: duckdb.DuckDBPyConnection, table: str, rows: tuple[list[str], list[str], int],
                    run_id: str | None = None) -> None:
    """Insert the rows of the listed file identities from their work files into `table`. Row
    conservation at the load: the rows inserted must be the rows validation counted."""
    identities, paths, expected = rows
    if not paths:
        return
    inserted = con.execute(
        f"insert into {table} by name select {'? as run_id, ' if run_id else ''}* "
        "from read_parquet(?, hive_partitioning = false) where file_identity in (select unnest(?::varchar[]))",
        [*([run_id] if run_id else []), paths, identities]).fetchone()[0]
    if inserted != expected:
        raise RuntimeError(f"state load: {inserted:,} rows went into {table}, validation counted {expected:,}; "
                           "nothing of this batch was loaded (re-run the refresh; if it repeats, report it)")


def apply_files(con: duckdb.DuckDBPyConnection, entries: list[dict],
                staged: dict[str, tuple[list[str], list[str], int]],
                quarantined: tuple[list[str], list[str], int] | None, run_id: str) -> None:
    """In one transaction: withdraw what these files' earlier versions contributed, then add these
    versions: `staged` per source and `quarantined` as (identities, work files, rows counted)."""
    files = pl.DataFrame(entries, schema=FILES_SCHEMA)
    con.execute("begin transaction")
    try:
        con.register("incoming_files", files)
        for table in ("staged_reports", "staged_dispatches", "staged_outreach", "staged_ambassadors", "quarantine"):
            con.execute(f"delete from {table} where file_identity in (select identity from incoming_files)")
        con.execute("delete from files where identity in (select identity from incoming_files)")
        for source, rows in staged.items():
            _insert_parquet(con, f"staged_{source}", rows)
        if quarantined:
            _insert_parquet(con, "quarantine", quarantined, run_id)
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

