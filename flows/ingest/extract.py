"""Landing folder -> per-file results: scan, hash, read, archive, validate.

Plain functions; flows/refresh.py wraps them in Prefect tasks. Nothing here writes the state
database: validated rows wait as Parquet in the run's work folder (one pair of files per validation
batch, every row naming its file) until the run has passed the failure threshold, then
`load_results` applies them to the state (each file wholly in or wholly out).
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from flows.files import file_sha256, write_parquet_atomic
from flows.ingest import state
from flows.ingest.sources import SOURCES

if TYPE_CHECKING:  # the readers (numpy, pyarrow) and the rules (Pandera) load when a file is read
    from flows.ingest import readers


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
    work: str | None = None  # the validation batch whose work files hold its rows (work_file)

    def entry(self, run_id: str) -> dict:
        """Its row of the state's `files` registry."""
        return {**{k: v for k, v in asdict(self).items() if k != "work"}, "run_id": run_id}


def work_file(workdir: Path, work: str, part: str) -> Path:
    """A validation batch's staged or quarantined rows, every row naming its `file_identity`: one
    Parquet per batch, not per file (nationally 7,300 small writes cost 2.5 s of extraction)."""
    return workdir / f"{work}.{part}.parquet"


def work_paths(workdir: Path, works, part: str) -> list[Path]:
    """The staged or quarantined work files of these validation batches (None: no batch)."""
    return sorted({work_file(workdir, work, part) for work in works if work})


def read_work(workdir: Path, works, identities: list[str], part: str, columns: list[str] | None = None) -> pl.DataFrame:
    """The staged or quarantined rows of these files from their batches' work files (those that
    still exist), each file read once."""
    paths = [p for p in work_paths(workdir, works, part) if p.exists()]
    if not paths:
        return pl.DataFrame()
    rows = pl.scan_parquet(paths).filter(pl.col("file_identity").is_in(identities))
    return (rows.select(columns) if columns else rows).collect()


def load_rules() -> None:
    """Import the readers, the validator and every source's rules now, on this thread: the sources'
    extraction then runs on several threads, and two threads importing the same modules at once
    can deadlock Python's import locks (`_DeadlockError: ... pandera.errors`). A run with nothing
    new never calls this, and never pays for Pandera."""
    from flows.ingest import readers, validate  # noqa: F401

    for source in SOURCES.values():
        source.model  # noqa: B018 - imports schemas.<source>


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


# Measured nationally (bench/out/national, reports and call-outs at once): 1M rows and 96 MB held
# 2.2 GB, 500k rows and 64 MB 1.4 GB, for +1 s of 29 s.
BATCH_ROWS = 500_000  # validate several files at once, but never hold more raw rows than this
BATCH_BYTES = 64 << 20  # read several files in one DuckDB scan, up to about this much text
GZIP_RATIO = 5  # a gzipped file counts as this many times its size towards a batch
WORKERS = max(2, min(4, os.cpu_count() or 1))  # threads for checking files and writing Parquet


def _base(lf: LandingFile, sha256: str) -> dict:
    return dict(identity=lf.identity, source=lf.source, landing_path=lf.path, sha256=sha256,
                size_bytes=lf.size_bytes, mtime_ns=lf.mtime_ns)


def _read_groups(files: list[LandingFile]):
    """Consecutive files whose text adds up to about BATCH_BYTES (one file for file-scoped rules)."""
    group, size = [], 0
    for lf in files:
        group.append(lf)
        size += lf.size_bytes * (GZIP_RATIO if lf.path.endswith(".gz") else 1)
        if size >= BATCH_BYTES or _file_scoped(lf.source):
            yield group
            group, size = [], 0
    if group:
        yield group


def _archive(state_dir: Path, sha256: str, parsed: readers.Parsed) -> None:
    """The file's raw rows minus personal data, and its broken lines (line, reason, length, hash)."""
    write_parquet_atomic(parsed.rows, state.archive_path(state_dir, sha256, "rows"))
    if len(parsed.broken):
        write_parquet_atomic(parsed.broken, state.archive_path(state_dir, sha256, "broken"))


def _archived_broken(state_dir: Path, sha256: str) -> pl.DataFrame:
    from flows.ingest import readers

    path = state.archive_path(state_dir, sha256, "broken")
    return pl.read_parquet(path) if path.exists() else pl.DataFrame(schema=readers.BROKEN_SCHEMA)


def process_files(files: list[LandingFile], landing: Path, state_dir: Path, workdir: Path,
                  hashes: dict[str, str]) -> list[FileResult]:
    """Read and archive the landing files of one source, several per DuckDB scan, then validate
    them in batches; files are checked and Parquet is written on a few threads."""
    from flows.ingest import readers

    workdir.mkdir(parents=True, exist_ok=True)
    results: list[FileResult] = []
    with ThreadPoolExecutor(WORKERS, thread_name_prefix="politikpi-extract") as pool:
        writes = []
        batch: list[tuple[dict, str, pl.DataFrame, pl.DataFrame]] = []
        for group in _read_groups(files):
            parsed = readers.read_many([landing / lf.path for lf in group], SOURCES[group[0].source], workdir, pool)
            for lf, outcome in zip(group, parsed, strict=True):
                base = _base(lf, hashes[lf.identity])
                if isinstance(outcome, readers.Rejected):
                    results.append(FileResult(**base, encoding=None, status="rejected", reason=str(outcome),
                                              rows_read=0, rows_staged=0, rows_quarantined=0))
                    continue
                writes.append(pool.submit(_archive, state_dir, base["sha256"], outcome))
                batch.append((base, outcome.encoding, outcome.rows, outcome.broken))
                if _batch_full(batch):
                    results += validate_batch(batch, workdir, pool)
                    batch = []
        results += validate_batch(batch, workdir, pool)
        for write in writes:
            write.result()
    return sorted(results, key=lambda r: r.identity)


def rebuild_files(entries: list[dict], state_dir: Path, workdir: Path) -> list[FileResult]:
    """Re-validate ingested files from their archived raw rows (no landing file needed)."""
    results, batch = [], []
    with ThreadPoolExecutor(WORKERS, thread_name_prefix="politikpi-rebuild") as pool:
        for entry in entries:
            rows = pl.read_parquet(state.archive_path(state_dir, entry["sha256"], "rows"))
            broken = _archived_broken(state_dir, entry["sha256"])
            base = {k: entry[k] for k in ("identity", "source", "landing_path", "sha256", "size_bytes", "mtime_ns")}
            batch.append((base, entry["encoding"], rows, broken))
            if _batch_full(batch):
                results += validate_batch(batch, workdir, pool)
                batch = []
        return results + validate_batch(batch, workdir, pool)


def _file_scoped(source: str) -> bool:
    """A source whose rules look across a whole file (a roster's unique ids) validates file by file."""
    return getattr(SOURCES[source].schema, "FILE_SCOPED_RULES", False)


def _batch_full(batch: list) -> bool:
    return _file_scoped(batch[0][0]["source"]) or sum(len(b[2]) for b in batch) >= BATCH_ROWS


def validate_batch(batch: list[tuple[dict, str, pl.DataFrame, pl.DataFrame]], workdir: Path,
                   pool: ThreadPoolExecutor) -> list[FileResult]:
    """Validate several files of one source in one Pandera call; park their outcome in the batch's
    two work files (work_file), each row naming its file."""
    from flows.ingest.validate import broken_to_quarantine, validate_rows

    if not batch:
        return []
    source = SOURCES[batch[0][0]["source"]]
    # Named for what it holds: another batch (another run's, or with other content) never shares it.
    work = f"{source.name}-" + hashlib.sha256("\n".join(
        f"{base['identity']}\t{base['sha256']}" for base, *_ in batch).encode()).hexdigest()[:24]
    raw = pl.concat([rows.with_columns(file_identity=pl.lit(base["identity"]))
                     for base, _, rows, _ in batch])
    staged, quarantined = validate_rows(source, raw, carry=("file_identity",))
    broken = [broken_to_quarantine(b).with_columns(file_identity=pl.lit(base["identity"]))
              for base, _, _, b in batch if len(b)]
    quarantined = pl.concat([quarantined, *(b.select(quarantined.columns) for b in broken)]) \
        .with_columns(source=pl.lit(source.name)).sort("file_identity", "line")
    writes = [pool.submit(write_parquet_atomic, frame, work_file(workdir, work, part), scratch=True)
              for frame, part in ((staged, "staged"), (quarantined, "quarantine"))]
    staged_n = dict(staged.group_by("file_identity").len().iter_rows())
    quarantined_n = dict(quarantined.group_by("file_identity").len().iter_rows())
    results = [FileResult(**base, encoding=encoding, status="ingested", reason=None,
                          rows_read=len(rows) + len(broken_lines), rows_staged=staged_n.get(base["identity"], 0),
                          rows_quarantined=quarantined_n.get(base["identity"], 0), work=work)
               for base, encoding, rows, broken_lines in batch]
    for write in writes:
        write.result()
    return results


def changed_files(landing: Path, state_dir: Path) -> tuple[list[LandingFile], list, dict[str, str]]:
    """Landing files whose content the state does not hold yet, their hashes, and refused paths."""
    files, refused = scan_landing(landing)
    with state.connect(state_dir) as con:
        known = {r[0]: r[1:] for r in con.execute(
            "select identity, sha256, size_bytes, mtime_ns, landing_path from files").fetchall()}
    todo, hashes = [], {}
    for lf in files:
        prior = known.get(lf.identity)
        if prior and prior[1:] == (lf.size_bytes, lf.mtime_ns, lf.path):
            continue  # same path, size and mtime as when ingested: unchanged, no need to re-hash
        sha = file_sha256(landing / lf.path)
        if prior and prior[0] == sha:
            continue
        todo.append(lf)
        hashes[lf.identity] = sha
    return todo, refused, hashes


def archived_entries(state_dir: Path, pattern: str | None) -> dict[str, list[dict]]:
    """Registry entries of ingested files (all, or those whose identity matches a glob), per source."""
    import fnmatch

    with state.connect(state_dir) as con:
        cols = [d[0] for d in con.execute("select * from files limit 0").description]
        entries = [dict(zip(cols, row, strict=True)) for row in con.execute(
            "select * from files where status = 'ingested' order by identity").fetchall()]
    out: dict[str, list[dict]] = {}
    for entry in entries:
        if pattern is None or fnmatch.fnmatch(entry["identity"], pattern):
            out.setdefault(entry["source"], []).append(
                {k: v for k, v in entry.items() if k not in ("ingested_at",)})
    return out
