"""Files: written atomically (a temporary file beside the target, renamed over it, so a reader or a
resumed run sees the old file or the new one, never half of one) and identified by content hash.
Light to import: a run with nothing new needs only this."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path


def _temporary(path: Path) -> Path:
    """The temporary name beside `path`, this process's and this thread's own: two threads may
    write the same file at once (two deliveries with the same content are one Parquet file)."""
    return path.with_name(f".{path.name}.tmp{os.getpid()}-{threading.get_ident()}")


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_json_atomic(path: Path, data: dict) -> None:
    """Any small JSON record (a manifest, a sidecar, a parked run's file list)."""
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, default=str))


def file_sha256(path: Path) -> str:
    """The content hash that identifies a landing file, and checks a release file."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def write_parquet_atomic(frame, path: Path, scratch: bool = False) -> None:
    """A polars DataFrame as a Parquet file (zstd). A scratch file, read once and deleted (a run's
    staged and quarantined rows before the load), is written uncompressed and without statistics
    (~40 % cheaper to write; nationally about 0.7 GB, until the run's cleanup)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    options = {"compression": "uncompressed", "statistics": False} if scratch else {}
    frame.write_parquet(tmp, **options)
    os.replace(tmp, path)
