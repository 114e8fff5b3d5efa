"""The failure threshold: per source, quarantined / read over this run's new files. A breach stops
the run before anything is loaded or published and parks the run's file list in the work folder,
so `politikpi quarantine` can show the stopped run's rows. No Prefect."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from flows.config import Settings
from flows.files import write_json_atomic
from flows.ingest.extract import FileResult, read_work
from flows.ingest.quarantine import PENDING
from flows.ingest.sources import SOURCES


class ThresholdExceeded(RuntimeError):
    """Too many quarantined rows in this run's new files: nothing is loaded or published."""


def threshold_summary(results: list[FileResult], settings: Settings, run_id: str = "") -> dict:
    summary = {}
    for name in SOURCES:
        mine = [r for r in results if r.source == name and r.status == "ingested"]
        read = sum(r.rows_read for r in mine)
        bad = sum(r.rows_quarantined for r in mine)
        share = bad / read if read else 0.0
        summary[name] = {"files": len(mine), "read": read, "quarantined": bad,
                         "staged": sum(r.rows_staged for r in mine), "share": round(share, 6)}
        if read >= settings.min_rows_for_threshold and share > settings.max_quarantine_share:
            workdir = settings.state / "work"
            write_json_atomic(workdir / PENDING, {
                "run_id": run_id, "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "files": [{k: getattr(r, k) for k in ("identity", "source", "landing_path", "sha256", "work")}
                          for r in results if r.status == "ingested"]})
            raise ThresholdExceeded(
                f"{name}: {bad:,} of {read:,} rows quarantined ({share:.2%}) exceeds "
                f"{settings.max_quarantine_share:.0%}; nothing loaded or published. {_worst(mine, workdir)}. "
                f"`politikpi quarantine --source {name}` lists the rows; fix and re-deliver the files, or raise "
                "POLITIKPI_MAX_QUARANTINE_SHARE")
    return summary


def _worst(files: list[FileResult], workdir: Path) -> str:
    """The files and rules behind a breach, worst first (what the on-call engineer forwards)."""
    files = sorted((r for r in files if r.rows_quarantined), key=lambda r: -r.rows_quarantined)
    named = ", ".join(f"{r.landing_path} {r.rows_quarantined:,} of {r.rows_read:,}" for r in files[:3])
    named += f" and {len(files) - 3} more" if len(files) > 3 else ""
    quarantined = read_work(workdir, [r.work for r in files], [r.identity for r in files], "quarantine",
                            columns=["rules"])
    rules = quarantined.get_column("rules").str.split("; ").explode().value_counts(sort=True) \
        if len(quarantined) else None
    top = ", ".join(f"{rule} ({n:,})" for rule, n in rules.head(3).iter_rows()) if rules is not None else "?"
    return f"Files: {named}; top rules: {top}"
