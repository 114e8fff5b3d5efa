"""The nightly refresh: extract -> validate -> load -> transform -> audit -> publish.

Reads like a table of contents; the work lives in the modules each task calls.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

from flows.config import prefect_defaults

prefect_defaults()

from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.runtime import flow_run  # noqa: E402

from flows import extract, faults, publish, state, transform  # noqa: E402
from flows.audit import AuditFailed, audit  # noqa: E402
from flows.audit_queries import RELEASE_FACTS_SQL  # noqa: E402
from flows.releases import recover, warehouse_lock  # noqa: E402
from flows.config import Settings  # noqa: E402
from flows.sources import SOURCES  # noqa: E402


class ThresholdExceeded(RuntimeError):
    """Too many quarantined rows in this run's new files: nothing is published."""


@task(name="scan landing")
def scan(landing: Path, state_dir: Path) -> tuple[list[extract.LandingFile], list, dict]:
    """List landing files and keep those whose content the state does not hold yet."""
    files, refused = extract.scan_landing(landing)
    with state.connect(state_dir) as con:
        known = {r[0]: r[1:] for r in con.execute(
            "select identity, sha256, size_bytes, mtime_ns, landing_path from files").fetchall()}
    todo, hashes = [], {}
    for lf in files:
        prior = known.get(lf.identity)
        if prior and prior[1:] == (lf.size_bytes, lf.mtime_ns, lf.path):
            continue  # same path, size and mtime: unchanged without re-hashing
        sha = extract.readers.file_sha256(landing / lf.path)
        if prior and prior[0] == sha:
            continue
        todo.append(lf)
        hashes[lf.identity] = sha
    return todo, refused, hashes


@task(name="extract and validate")
def extract_source(source: str, files: list, landing: Path, state_dir: Path, workdir: Path,
                   hashes: dict) -> list[extract.FileResult]:
    """Read, archive and validate one source's new or re-delivered files."""
    return extract.process_files([lf for lf in files if lf.source == source], landing, state_dir,
                                 workdir, hashes)


@task(name="rebuild from archive")
def rebuild_source(source: str, state_dir: Path, workdir: Path) -> list[extract.FileResult]:
    """Re-validate every archived file of a source (full refresh): no landing file needed."""
    with state.connect(state_dir) as con:
        cols = [d[0] for d in con.execute("select * from files limit 0").description]
        entries = [dict(zip(cols, row, strict=True)) for row in con.execute(
            "select * from files where source = ? and status = 'ingested' order by identity",
            [source]).fetchall()]
    return extract.rebuild_files(entries, state_dir, workdir)


@task(name="check failure threshold")
def check_threshold(results: list[extract.FileResult], settings: Settings) -> dict:
    """SPEC section 3: per source, quarantined / read over this run's files."""
    summary = {}
    for name in SOURCES:
        mine = [r for r in results if r.source == name and r.status == "ingested"]
        read = sum(r.rows_read for r in mine)
        bad = sum(r.rows_quarantined for r in mine)
        share = bad / read if read else 0.0
        summary[name] = {"files": len(mine), "read": read, "quarantined": bad,
                         "staged": sum(r.rows_staged for r in mine), "share": round(share, 6)}
        if read >= settings.min_rows_for_threshold and share > settings.max_quarantine_share:
            raise ThresholdExceeded(
                f"{name}: {bad:,} of {read:,} rows quarantined ({share:.2%}) exceeds "
                f"{settings.max_quarantine_share:.0%}; nothing published. "
                f"See `politikpi quarantine --source {name}`.")
    return summary


@task(name="load state", retries=2, retry_delay_seconds=[1, 5])
def load_state(results: list[extract.FileResult], state_dir: Path, workdir: Path, run_id: str,
               full_refresh: bool) -> None:
    """Apply each file's outcome to the state database, one transaction per file."""
    with state.connect(state_dir) as con:
        if full_refresh:
            state.reset(con)
        for result in results:
            extract.load_file(con, result, run_id, workdir)


@task(name="transform, audit and publish")
def build_and_publish(settings: Settings, run_id: str, quarantine_summary: dict) -> dict:
    """Build a new release file from the state, audit it, and publish it if it passes."""
    logger = get_run_logger()
    with warehouse_lock(settings.warehouse):
        if recover(settings.warehouse):
            logger.warning("stable path re-pointed at the manifest's current release (an earlier crash)")
        building = settings.warehouse / ".building"
        shutil.rmtree(building, ignore_errors=True)  # leftovers of a crashed run are never published
        building.mkdir(parents=True)
        path = building / f"{run_id}.duckdb"
        con, published = transform.build_release(settings.state, path, settings.storage_version)
        faults.hit("transform:done")
        try:
            stable = settings.warehouse / publish.STABLE
            if stable.exists():
                con.execute(f"attach {transform.quote_path(stable)} as current (read_only)")
            docs = building / "docs"
            result = audit(con, docs, stable.exists(), settings.change_hard_share, settings.change_share)
            if not result.success:
                failed_docs = settings.state / "audits" / run_id
                shutil.copytree(docs, failed_docs, dirs_exist_ok=True)
                result.docs = str(failed_docs / "index.html")
                raise AuditFailed(result)
            faults.hit("audit:done")
            meta = release_metadata(con, published, run_id, result, quarantine_summary)
            publish.write_release_table(con, meta)
        finally:
            publish.close_build(con)
        entry = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in meta.items()}
        release_docs = settings.warehouse / "docs" / entry["release_id"]
        shutil.rmtree(release_docs, ignore_errors=True)
        os.makedirs(release_docs.parent, exist_ok=True)
        os.replace(docs, release_docs)
        entry["validation_summary"]["docs"] = str(release_docs / "index.html")
        entry = publish.publish(path, settings.warehouse, entry, settings.keep_releases)
    logger.info("published release %s", entry["release_id"])
    return entry


def release_metadata(con, published: list[str], run_id: str, result, quarantine_summary: dict) -> dict:
    """What goes into `_release` and the manifest entry."""
    inputs = dict(con.execute("select identity, sha256 from state.files "
                              "where status = 'ingested' order by identity").fetchall())
    rejected = dict(con.execute("select identity, reason from state.files "
                                "where status = 'rejected' order by identity").fetchall())
    counts = {t: con.execute(f'select count(*) from "{t}"').fetchone()[0] for t in published}
    data_through = con.execute(RELEASE_FACTS_SQL).fetchone()[0]
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    code = publish.code_version()
    summary = result.summary()
    summary["docs"] = None
    return {
        "release_id": publish.new_release_id(inputs, code, now), "created_at": now,
        "data_through": data_through, "code_version": code, "flow_run_id": run_id,
        "input_files": inputs, "row_counts": counts, "validation_summary": summary,
        "quarantine_summary": {**quarantine_summary, "rejected_files": rejected},
    }


@flow(name="refresh")
def refresh(landing: str = "data/landing", state_dir: str = "data/state",
            warehouse: str = "warehouse", full_refresh: bool = False) -> dict:
    """Nightly refresh: landing files in, an audited release of the KPI warehouse out."""
    settings = Settings(Path(landing), Path(state_dir), Path(warehouse)).resolved()
    run_id = flow_run.get_id() or dt.datetime.now(dt.UTC).strftime("local-%Y%m%dT%H%M%S")
    workdir = settings.state / "runs" / str(run_id)
    workdir.mkdir(parents=True, exist_ok=True)
    with state.state_lock(settings.state):
        todo, refused, hashes = scan(settings.landing, settings.state)
        results = []
        if full_refresh:
            for name in SOURCES:
                results += rebuild_source(name, settings.state, workdir)
        for name in SOURCES:
            results += extract_source(name, todo, settings.landing, settings.state, workdir, hashes)
        summary = check_threshold(results, settings)
        load_state(results, settings.state, workdir, str(run_id), full_refresh)
        entry = build_and_publish(settings, str(run_id), summary)
    shutil.rmtree(workdir, ignore_errors=True)
    rejected = [{"file": r.landing_path, "reason": r.reason} for r in results if r.status == "rejected"]
    rejected += [{"file": path, "reason": reason} for path, reason in refused]
    return {"release": entry, "sources": summary, "rejected": rejected,
            "files_ingested": sum(r.status == "ingested" for r in results)}
