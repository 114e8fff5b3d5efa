"""Landing folder -> per-file results: scan, hash, read, archive, validate.

Plain functions; flows/refresh.py wraps them in Prefect tasks. Nothing here writes the state
database: a file's validated rows wait as Parquet in the run's work folder until the run has
passed the failure threshold, then `load_file` applies each file in one transaction.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

from flows import readers, state
from flows.sources import SOURCES, Source
from flows.validate import broken_to_quarantine, validate_rows


@dataclass(frozen=True)
class LandingFile:
    identity: str
    source: str
    path: str
    size_bytes: int
    mtime_ns: int


@dataclass
class FileResult:
    identity: str
    source: str
    landing_path: str
    sha256: str
    size_bytes: int
    mtime_ns: int
    encoding: str | None
    status: str  # ingested | rejected
    reason: str | None
    rows_read: int
    rows_staged: int
    rows_quarantined: int

    def entry(self, run_id: str) -> dict:
        return {**asdict(self), "run_id": run_id}


def identity_of(relative: str) -> str:
    """File identity: the path relative to the landing folder without a `.gz` suffix."""
    return relative[:-3] if relative.endswith(".gz") else relative


def scan_landing(landing: Path) -> tuple[list[LandingFile], list[tuple[str, str]]]:
    """Every file below landing: (files of a known source, [(path, reason)] for the rest)."""
    found: dict[str, LandingFile] = {}
    refused: list[tuple[str, str]] = []
    root = landing.resolve()
    for dirpath, _dirs, names in os.walk(landing):
        for name in sorted(names):
            path = Path(dirpath) / name
            rel = path.relative_to(landing).as_posix()
            if name.startswith("."):
                continue
            if path.is_symlink() and not path.resolve().is_relative_to(root):
                refused.append((rel, "symlink pointing outside the landing folder"))
                continue
            top = rel.split("/", 1)[0]
            source = SOURCES.get(top)
            if source is None or not name.lower().endswith(source.suffixes):
                refused.append((rel, "not a file of a known source (reports/, dispatches/, "
                                     "outreach/, ambassadors/ with their suffixes)"))
                continue
            st = path.stat()
            ident = identity_of(rel)
            # x.csv and x.csv.gz are one identity: the one sorting last is the delivery.
            if ident in found:
                refused.append((found[ident].path, f"superseded by {rel} (same file identity)"))
            found[ident] = LandingFile(ident, source.name, rel, st.st_size, st.st_mtime_ns)
    return sorted(found.values(), key=lambda f: f.identity), refused


def process_file(lf: LandingFile, landing: Path, state_dir: Path, workdir: Path,
                 sha256: str) -> FileResult:
    """Read, archive and validate one landing file; results wait in workdir as Parquet."""
    source: Source = SOURCES[lf.source]
    base = dict(identity=lf.identity, source=lf.source, landing_path=lf.path, sha256=sha256,
                size_bytes=lf.size_bytes, mtime_ns=lf.mtime_ns)
    try:
        parsed = readers.read_file(landing / lf.path, source, workdir)
    except readers.Rejected as exc:
        return FileResult(**base, encoding=None, status="rejected", reason=str(exc),
                          rows_read=0, rows_staged=0, rows_quarantined=0)
    state.write_parquet_atomic(parsed.rows, state.archive_path(state_dir, sha256, "rows"))
    state.write_parquet_atomic(parsed.broken, state.archive_path(state_dir, sha256, "broken"))
    return validate_archived(lf.source, base, parsed.encoding, parsed.rows, parsed.broken, workdir)


def validate_archived(source_name: str, base: dict, encoding: str | None, rows: pl.DataFrame,
                      broken: pl.DataFrame, workdir: Path) -> FileResult:
    """Validate raw rows (fresh or from the archive) and park the outcome in workdir."""
    source = SOURCES[source_name]
    staged, quarantined = validate_rows(source, rows)
    quarantined = pl.concat([quarantined, broken_to_quarantine(broken)]).sort("line")
    sha = base["sha256"]
    state.write_parquet_atomic(staged, workdir / f"{sha}.staged.parquet")
    state.write_parquet_atomic(quarantined, workdir / f"{sha}.quarantine.parquet")
    return FileResult(**base, encoding=encoding, status="ingested", reason=None,
                      rows_read=len(rows) + len(broken), rows_staged=len(staged),
                      rows_quarantined=len(quarantined))


def rebuild_file(entry: dict, state_dir: Path, workdir: Path) -> FileResult:
    """Re-validate an ingested file from its archived raw rows (no landing file needed)."""
    sha = entry["sha256"]
    rows = pl.read_parquet(state.archive_path(state_dir, sha, "rows"))
    broken = pl.read_parquet(state.archive_path(state_dir, sha, "broken"))
    base = {k: entry[k] for k in ("identity", "source", "landing_path", "sha256", "size_bytes",
                                  "mtime_ns")}
    return validate_archived(entry["source"], base, entry["encoding"], rows, broken, workdir)


def load_file(con, result: FileResult, run_id: str, workdir: Path) -> None:
    """Apply one file's outcome to the state database in a single transaction."""
    if result.status == "ingested":
        staged = pl.read_parquet(workdir / f"{result.sha256}.staged.parquet")
        quarantined = pl.read_parquet(workdir / f"{result.sha256}.quarantine.parquet")
    else:
        staged = quarantined = pl.DataFrame()
    state.apply_file(con, result.entry(run_id), staged, quarantined)
