"""What `politikpi quarantine` shows: quarantined rows (loaded, or parked by a run the failure
threshold stopped) and rejected files with whether a later delivery resolved them. Plain
functions over the state folder; the CLI renders, exports or filters what they return."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import polars as pl

from flows.ingest.state import db_path

COLUMNS = ["status", "source", "file", "line", "kind", "rules", "raw_values", "length", "sha256"]
PENDING = "pending.json"  # written by the failure threshold in <state>/work


def _file_filter(column_identity: str, column_path: str, file: str | None) -> tuple[str, list]:
    """A file is named by its identity (reports/x.csv) or the path it was delivered under (x.csv.gz)."""
    if not file:
        return "", []
    return f" and ({column_identity} = ? or {column_path} = ?)", [file, file]


def loaded_rows(state: Path, source: str | None, file: str | None) -> pl.DataFrame:
    """Quarantined rows the state holds, with the path each file was delivered under."""
    where, params = _file_filter("q.file_identity", "f.landing_path", file)
    if source:
        where += " and q.source = ?"
        params.append(source)
    with duckdb.connect(str(db_path(state)), read_only=True) as con:
        return con.sql(f"""
            select 'loaded' as status, q.source, coalesce(f.landing_path, q.file_identity) as file, q.line, q.kind,
                   q.rules, q.raw_values, q.length, q.sha256
            from quarantine as q left join files as f on f.identity = q.file_identity
            where true {where} order by q.source, file, q.line""", params=params).pl()


def pending(state: Path) -> dict | None:
    """The files of the last run the failure threshold stopped (None if the last run was not stopped)."""
    path = state / "work" / PENDING
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def pending_rows(state: Path, source: str | None, file: str | None) -> pl.DataFrame:
    """Quarantined rows of the stopped run's files, parked in the work folder (never loaded)."""
    from flows.ingest.extract import read_work

    run = pending(state) or {}
    entries = [e for e in run.get("files", []) if (not source or e["source"] == source)
               and (not file or file in (e["identity"], e["landing_path"]))]
    # A run stopped before work files were per batch lists no `work`: its rows are not shown.
    rows = read_work(state / "work", [e.get("work") for e in entries], [e["identity"] for e in entries], "quarantine")
    if not len(rows):
        return pl.DataFrame(schema={c: (pl.Int64 if c in ("line", "length") else pl.String) for c in COLUMNS})
    files = pl.DataFrame({"file_identity": [e["identity"] for e in entries],
                          "file": [e["landing_path"] for e in entries]})
    return rows.join(files, on="file_identity").with_columns(
        status=pl.lit(f"stopped run {run.get('run_id', '')}"[:60])).select(COLUMNS).sort("source", "file", "line")


def all_rows(state: Path, source: str | None, file: str | None) -> pl.DataFrame:
    return pl.concat([pending_rows(state, source, file), loaded_rows(state, source, file)], how="vertical_relaxed")


def rejected_files(state: Path, source: str | None, file: str | None) -> list[dict]:
    """Every rejected delivery: open while its identity is still rejected, resolved once a later
    delivery of the same file was ingested."""
    where, params = _file_filter("r.identity", "r.landing_path", file)
    if source:
        where += " and r.source = ?"
        params.append(source)
    with duckdb.connect(str(db_path(state)), read_only=True) as con:
        has_log = con.execute("select count(*) from duckdb_tables() where table_name = 'rejections'").fetchone()[0]
        log = "rejections" if has_log else \
            "(select identity, source, landing_path, sha256, reason, run_id, ingested_at as rejected_at " \
            "from files where status = 'rejected')"
        rows = con.execute(f"""
            select r.landing_path, r.identity, r.reason, r.rejected_at,
                   case when f.status = 'ingested' then 'resolved' when f.sha256 = r.sha256 then 'open'
                        else 'replaced' end as state,
                   f.landing_path as now_path, f.ingested_at as now_at
            from (select * from {log} qualify row_number() over (partition by identity, sha256
                  order by rejected_at) = 1) as r
            left join files as f on f.identity = r.identity
            where true {where} order by state, r.identity, r.rejected_at""", params).fetchall()
    return [dict(zip(("file", "identity", "reason", "rejected_at", "state", "now_path", "now_at"), r, strict=True))
            for r in rows]
