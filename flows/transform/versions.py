"""What a build is made from, as versions and cache keys: the code that computes numbers, the
reference data, the state's files. A release records them; a run compares them to decide whether
anything is new, whether the current release may be patched, and which cached work still holds."""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

from flows.config import Settings
from flows.ingest.state import connect as state_connect
from schemas.reference import district_code, reference_dir

REPO = Path(__file__).resolve().parents[2]
# What computes the numbers of a release: readers, rules, SQL, build, reference data. The sample
# generator is a package of its own; the modules below compute no number (command line, Prefect
# wrapping, server process, run summaries, fault injection, release store and report): editing them
# must not turn off patched releases or empty caches.
CODE_DIRS = ("flows", "schemas", "sql")
NOT_CODE = {"flows/__main__.py", "flows/refresh.py", "flows/serve.py", "flows/server.py",
            "flows/faults.py", "flows/release/summary.py", "flows/release/report.py", "flows/release/releases.py",
            "flows/release/store.py", "flows/release/publish.py", "flows/release/disclosure.py",
            "flows/release/export.py", "flows/national.py", "flows/deploy.py", "flows/concurrency.py",
            "flows/fleet.py", "flows/district.py", "flows/country/report.py", "flows/release/charts.py",
            "flows/transform/docs.py"}
NOT_CODE_DIRS = ("flows/cli/",)  # the command line, every module of it


@functools.cache
def code_version() -> str:
    """Package version plus a hash of the code and SQL that computed the numbers."""
    from importlib.metadata import PackageNotFoundError, version

    digest = hashlib.sha256()
    for folder in CODE_DIRS:
        for path in sorted((REPO / folder).rglob("*")):
            if path.suffix in (".py", ".sql", ".toml") and "__pycache__" not in path.parts \
                    and path.relative_to(REPO).as_posix() not in NOT_CODE \
                    and not path.relative_to(REPO).as_posix().startswith(NOT_CODE_DIRS):
                digest.update(path.relative_to(REPO).as_posix().encode())
                digest.update(path.read_bytes())
    try:
        base = version("politikpi")
    except PackageNotFoundError:
        base = "0+unknown"
    return f"{base}+{digest.hexdigest()[:12]}"


def _hash(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, default=str, sort_keys=True).encode()).hexdigest()


def file_results_key(kind: str, source: str, items: list, settings: Settings) -> str:
    """Cache key of one source's extraction: its files' hashes, the code, the state folder."""
    return _hash(kind, source, items, code_version(), str(settings.state))


def reference_version(district: str | None = None) -> str:
    """The reference files' hashes and the district they are read for (another district of the same
    files is other reference data: other municipalities, names and populations)."""
    return _hash([(p.name, hashlib.sha256(p.read_bytes()).hexdigest()) for p in sorted(reference_dir().glob("*.csv"))],
                 district or district_code())


def state_version(settings: Settings) -> str:
    """What a release is built from: every file held (identity, hash, status), the code, the
    storage format, the reference data. Recorded in the manifest: a run whose state version is the
    current release's has nothing new to publish."""
    with state_connect(settings.state, read_only=True) as con:
        files = con.execute("select identity, sha256, status from files order by identity").fetchall()
    return _hash(files, code_version(), settings.storage_version, reference_version())


def state_key(settings: Settings, full: bool = False) -> str:
    """Cache key of the build: the state version and the folders; a full build (--full-refresh,
    --reingest) has its own key, so it is never a cached patch."""
    return _hash(state_version(settings), str(settings.state), str(settings.warehouse), "full" if full else "")
