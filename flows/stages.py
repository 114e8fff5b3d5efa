"""What the refresh flow's tasks do, as plain functions: cache keys, transform, audit, publish,
clean-up, failure notice and run artifacts. flows/refresh.py wraps them in Prefect tasks."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb

from flows import extract, publish, releases
from flows import transform as transform_mod
from flows.audit import AuditFailed
from flows.audit import audit as run_audit
from flows.audit_queries import RELEASE_FACTS_SQL
from flows.config import Settings
from flows.quarantine import PENDING
from flows.sources import SOURCES
from flows.state import connect as state_connect
from schemas.reference import reference_dir

CACHE_DAYS = int(os.environ.get("POLITIKPI_CACHE_DAYS", 7))
CACHE = {"persist_result": True, "cache_expiration": dt.timedelta(days=CACHE_DAYS)}


class ThresholdExceeded(RuntimeError):
    """Too many quarantined rows in this run's new files: nothing is loaded or published."""


def _hash(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, default=str, sort_keys=True).encode()).hexdigest()


def file_results_key(kind: str, source: str, items: list, settings: Settings) -> str:
    """Cache key of one source's extraction: its files' hashes, the code, the state folder."""
    return _hash(kind, source, items, publish.code_version(), str(settings.state))


def reference_version() -> str:
    return _hash([(p.name, hashlib.sha256(p.read_bytes()).hexdigest()) for p in sorted(reference_dir().glob("*.csv"))])


def state_version(settings: Settings) -> str:
    """What a release is built from: every file held (identity, hash, status), the code, the
    storage format, the reference data. Recorded in the manifest: a run whose state version is the
    current release's has nothing new to publish."""
    with state_connect(settings.state, read_only=True) as con:
        files = con.execute("select identity, sha256, status from files order by identity").fetchall()
    return _hash(files, publish.code_version(), settings.storage_version, reference_version())


def state_key(settings: Settings, full: bool = False) -> str:
    """Cache key of the build: the state version and the folders; a full build (--full-refresh,
    --reingest) has its own key, so it is never a cached patch."""
    return _hash(state_version(settings), str(settings.state), str(settings.warehouse), "full" if full else "")


def results_dir(settings: Settings) -> Path:
    """Prefect's persisted task results live with the state, so every runner of this state (the
    served deployment, an operator, several workers with their own PREFECT_HOME) sees one cache."""
    return settings.state / "results"


def current_release(settings: Settings) -> dict | None:
    """The manifest entry of the current release, if there is one."""
    manifest = publish.load_manifest(settings.warehouse)
    return next((r for r in manifest["releases"] if r["release_id"] == manifest["current"]), None)


def unchanged_release(settings: Settings) -> dict | None:
    """The current release when it was built from exactly this state (so nothing is new)."""
    current = current_release(settings)
    if current is None or current.get("state_version") != state_version(settings):
        return None
    return current if (settings.warehouse / current["file"]).is_file() else None


def build_matches(built: dict) -> bool:
    """A (possibly cached) build result is trusted only if its file still holds that release."""
    path = Path(built["path"])
    if not path.is_file():
        return False
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            return con.execute("select release_id from _release").fetchone()[0] == built["meta"]["release_id"]
    except duckdb.Error:
        return False


def patch_base(settings: Settings) -> tuple[Path, list[str], str] | None:
    """The current release, if the new one may be patched from it: same code, storage format and
    reference data, and few changed input files. Returns (its file, the changed identities, its id)."""
    current = current_release(settings)
    if current is None or current.get("storage_version") != settings.storage_version \
            or current.get("code_version") != publish.code_version() \
            or current.get("reference_version") != reference_version():
        return None
    base = settings.warehouse / current["file"]
    if not base.is_file():
        return None
    with state_connect(settings.state, read_only=True) as con:
        now = dict(con.execute("select identity, sha256 from files where status = 'ingested'").fetchall())
    before = current["input_files"]
    changed = sorted(k for k in now.keys() | before.keys() if now.get(k) != before.get(k))
    if len(changed) > settings.patch_max_share * max(len(now), 1):
        return None
    return base, changed, current["release_id"]


def work_done(workdir: Path, key: str) -> bool:
    return (workdir / f"{key}.done").exists()


def mark_work_done(workdir: Path, key: str) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / f"{key}.done").touch()


def threshold_summary(results: list[extract.FileResult], settings: Settings, run_id: str = "") -> dict:
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
            publish.write_json_atomic(workdir / PENDING, {
                "run_id": run_id, "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "files": [{k: getattr(r, k) for k in ("identity", "source", "landing_path", "sha256")}
                          for r in results if r.status == "ingested"]})
            raise ThresholdExceeded(
                f"{name}: {bad:,} of {read:,} rows quarantined ({share:.2%}) exceeds "
                f"{settings.max_quarantine_share:.0%}; nothing loaded or published. {_worst(mine, workdir)}. "
                f"`politikpi quarantine --source {name}` lists the rows; fix and re-deliver the files, or raise "
                "POLITIKPI_MAX_QUARANTINE_SHARE")
    return summary


def _worst(files: list[extract.FileResult], workdir: Path) -> str:
    """The files and rules behind a breach, worst first (what the on-call engineer forwards)."""
    import polars as pl

    files = sorted((r for r in files if r.rows_quarantined), key=lambda r: -r.rows_quarantined)
    named = ", ".join(f"{r.landing_path} {r.rows_quarantined:,} of {r.rows_read:,}" for r in files[:3])
    named += f" and {len(files) - 3} more" if len(files) > 3 else ""
    parts = [p for r in files if (p := workdir / f"{r.sha256}.quarantine.parquet").exists()]
    rules = pl.read_parquet(parts).get_column("rules").str.split("; ").explode().value_counts(sort=True) \
        if parts else None
    top = ", ".join(f"{rule} ({n:,})" for rule, n in rules.head(3).iter_rows()) if rules is not None else "?"
    return f"Files: {named}; top rules: {top}"


def build_path(settings: Settings, release_id: str) -> Path:
    """Each build has its own file, named for the release it becomes: a cached result's path can
    never hold another run's build."""
    return settings.warehouse / ".building" / f"{release_id}.duckdb"


STATE_TOTALS_SQL = """
select source, count(*) filter (where status = 'ingested') as files,
       coalesce(sum(rows_read), 0) as read, coalesce(sum(rows_staged), 0) as staged,
       coalesce(sum(rows_quarantined), 0) as quarantined,
       count(*) filter (where status = 'rejected') as rejected_files
from state.files group by source order by source
"""


def transform_build(settings: Settings, key: str, full: bool = False) -> dict:
    """Build the release file for this state version and write its `_release` row: patched from
    the current release when it allows (patch_base), else built whole (always when `full`)."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    release_id = f"{now:%Y%m%dT%H%M%SZ}-{key[:12]}"
    path = build_path(settings, release_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    patchable = None if full else patch_base(settings)
    if patchable is None:
        base_file, changed, build = None, None, {"kind": "full"}
    else:
        base_file, changed, base_id = patchable
        build = {"kind": "patch", "base": base_id, "changed_files": len(changed)}
    con, published = transform_mod.build_release(settings.state, path, settings.storage_version,
                                                 base=base_file, changed=changed)
    try:
        inputs = dict(con.execute("select identity, sha256 from state.files where status = 'ingested' "
                                  "order by identity").fetchall())
        rejected = dict(con.execute("select identity, reason from state.files where status = 'rejected' "
                                    "order by identity").fetchall())
        totals = {r[0]: dict(zip(("files", "read", "staged", "quarantined", "rejected_files"), r[1:], strict=True))
                  for r in con.execute(STATE_TOTALS_SQL).fetchall()}
        meta = {
            "release_id": release_id, "created_at": now,
            "data_through": con.execute(RELEASE_FACTS_SQL).fetchone()[0], "code_version": publish.code_version(),
            "flow_run_id": _run_id(), "input_files": inputs,
            "row_counts": {t: con.execute(f'select count(*) from "{t}"').fetchone()[0] for t in published},
            "validation_summary": {"pending": True},
            "quarantine_summary": {"sources": totals, "rejected_files": rejected},
            "storage_version": settings.storage_version, "reference_version": reference_version(), "build": build,
            "state_version": state_version(settings),
        }
        publish.write_release_table(con, meta)
    finally:
        publish.close_build(con)
    meta = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in meta.items()}
    return {"path": str(path), "published": published, "meta": meta, "docs": str(path.with_suffix(".docs"))}


def _run_id() -> str:
    from prefect.runtime import flow_run

    return str(flow_run.get_id() or "local")


REJECTED_INPUTS_SQL = """
select source, list(identity || ' (' || reason || ')' order by identity) from state.files
where status = 'rejected' and identity in (select unnest(json_keys(input_files::json)) from current._release)
group by source
"""


def audit_build(settings: Settings, built: dict, accept_restatement: str | None = None) -> dict:
    """Audit the build; record the outcome in its `_release` row unless it is already published.
    An accepted restatement (the operator's reason) is logged in <state>/restatements.jsonl."""
    path, docs = Path(built["path"]), Path(built["docs"])
    already_published = path.stat().st_nlink > 1  # hard-linked under releases/: immutable now
    con = duckdb.connect()
    try:
        con.execute(f"attach {transform_mod.quote_path(path)} as release {'(read_only)' if already_published else ''}")
        con.execute("use release")
        con.execute(f"attach {transform_mod.quote_path(settings.state / 'state.duckdb')} as state (read_only)")
        stable = settings.warehouse / publish.STABLE
        has_current = stable.exists() and not os.path.samefile(stable, path)
        if has_current:
            con.execute(f"attach {transform_mod.quote_path(stable)} as current (read_only)")
        shutil.rmtree(docs, ignore_errors=True)
        rejected = dict(con.execute(REJECTED_INPUTS_SQL).fetchall()) if has_current else {}
        result = run_audit(con, docs, has_current, settings.change_hard_share, settings.change_share,
                           rejected=rejected, accept_restatement=accept_restatement)
        summary = result.summary()
        accepted = [c for c in result.checks if c.get("accepted")]
        if accepted:
            summary["restatement"] = {"reason": accept_restatement, "changes": accepted[0]["restated"]}
            with open(settings.state / "restatements.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                                     "release_id": built["meta"]["release_id"], "flow_run_id": _run_id(),
                                     **summary["restatement"]}, ensure_ascii=False) + "\n")
        if not result.success:
            kept = settings.state / "audits" / path.stem
            shutil.copytree(docs, kept, dirs_exist_ok=True)
            result.docs = str(kept / "index.html")
            raise AuditFailed(result)
        if not already_published:
            con.execute("update _release set validation_summary = ?", [json.dumps(summary, default=str)])
            con.execute("checkpoint release")
    finally:
        con.close()
    return summary


def warm_imports() -> None:
    """Import the audit's and the report's libraries on a background thread (Great Expectations
    alone takes ~3 s) while extraction and the transform work in polars and DuckDB, which release
    the GIL. Started only when a run has files to process: a run with nothing new never needs them."""
    def run() -> None:
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        try:
            import great_expectations  # noqa: F401

            from flows.report import _plt

            _plt()
        except Exception:  # noqa: BLE001, S110 - the real import later reports any problem
            pass

    threading.Thread(target=run, name="politikpi-warm-imports", daemon=True).start()


def finish_interrupted_publish(settings: Settings) -> None:
    """The stable path and sidecar of a release a failed run had already listed as current."""
    with releases.warehouse_lock(settings.warehouse, wait=PUBLISH_LOCK_WAIT):
        releases.recover(settings.warehouse)


PUBLISH_LOCK_WAIT = 120  # seconds a publish waits for an operator's verify, repair, rollback or unpin


class Pinned(RuntimeError):
    """A rollback pinned the current release: nothing is published until `politikpi unpin`."""


def publish_build(settings: Settings, built: dict, audited: dict) -> dict:
    """Publish the audited build. Idempotent: an already-current release is left as it is; a
    listed one is made current again only if its file is this very build and matches its checksum."""
    with releases.warehouse_lock(settings.warehouse, wait=PUBLISH_LOCK_WAIT), ThreadPoolExecutor(1) as pool:
        releases.recover(settings.warehouse)
        entry = {**built["meta"], "validation_summary": audited}
        manifest = publish.load_manifest(settings.warehouse)
        if manifest.get("pinned"):
            raise Pinned(f"release {manifest['pinned']['release_id']} is pinned (rollback)")
        listed = {r["release_id"]: r for r in manifest["releases"]}
        if entry["release_id"] in listed:
            return _republish(settings, listed[entry["release_id"]], Path(built["path"]), manifest)
        docs = settings.warehouse / "docs" / entry["release_id"]
        if not docs.exists():
            shutil.copytree(built["docs"], docs)
        entry["validation_summary"] = {**audited, "docs": str(docs / "index.html")}
        sha256 = pool.submit(publish.file_sha256, Path(built["path"]))  # hashing releases the GIL: beside the report
        entry["report"] = str(write_release_report(Path(built["path"]), settings.warehouse, entry["release_id"]))
        return publish.publish(Path(built["path"]), settings.warehouse, entry, settings.keep_releases,
                               sha256=sha256.result())


def _republish(settings: Settings, listed: dict, build: Path, manifest: dict) -> dict:
    """A resumed run whose release is already listed: current already, or made current again."""
    target = settings.warehouse / listed["file"]
    if not (target.is_file() and os.path.samefile(target, build)) or publish.file_sha256(target) != listed["sha256"]:
        raise publish.PublishRefused(
            f"release {listed['release_id']} is listed, but its file is not this run's build or does not match "
            "its checksum; nothing published (run `politikpi verify`)")
    if manifest["current"] != listed["release_id"]:
        manifest["current"] = listed["release_id"]
        publish.write_manifest(settings.warehouse, manifest)
        publish.point_stable_at(settings.warehouse, target)
    return listed


def write_release_report(release_file: Path, warehouse: Path, release_id: str) -> Path | None:
    """The KPI report next to each release; a report that cannot be drawn never blocks publishing."""
    from prefect.logging import get_logger

    from flows.report import write_report

    try:
        return write_report(release_file, warehouse / "reports" / f"{release_id}.html")
    except Exception as exc:  # noqa: BLE001 - the release is audited; the report is a by-product
        get_logger("politikpi").warning("report for %s not written: %s", release_id, exc)
        return None


def cleanup(settings: Settings, release_id: str | None) -> None:
    """After a successful run: staged work is loaded, older builds are superseded, old cache
    entries (results persisted by Prefect) past POLITIKPI_CACHE_DAYS are deleted."""
    shutil.rmtree(settings.state / "work", ignore_errors=True)
    for item in (settings.warehouse / ".building").glob("*"):
        if item.stem != release_id:
            shutil.rmtree(item) if item.is_dir() else item.unlink(missing_ok=True)
    cutoff = time.time() - CACHE_DAYS * 86400
    for folder in (results_dir(settings), settings.state / "audits"):
        if folder.exists():
            for item in folder.iterdir():
                if item.stat().st_mtime < cutoff:
                    shutil.rmtree(item) if item.is_dir() else item.unlink(missing_ok=True)


def notify_failure(flow, flow_run, state) -> None:
    """Flow-level hook: a failed or crashed run is logged and appended to <state>/failures.jsonl."""
    from prefect.logging import get_logger

    message = str(state.message or state.name)[:500]
    get_logger("politikpi").error("refresh flow run %s %s: %s", flow_run.id, state.name, message)
    folder = Path(flow_run.parameters.get("state_dir", "data/state"))
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "failures.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"at": dt.datetime.now(dt.UTC).isoformat(), "flow_run_id": str(flow_run.id),
                             "state": state.name, "message": message}) + "\n")


def announce_rejected(rejected: list[dict]) -> None:
    """One Prefect event per file rejected this run (`politikpi.file.rejected`): an automation can
    match it and tell the data owner. Carries file names and reasons only, never content."""
    from prefect.events import emit_event

    for item in rejected:
        emit_event(event="politikpi.file.rejected",
                   resource={"prefect.resource.id": f"politikpi.file.{item['file']}",
                             "prefect.resource.name": item["file"], "politikpi.source": item["source"]},
                   payload={"reason": item["reason"]})


def run_artifacts(outcome: dict, settings: Settings) -> None:
    """Markdown summary and a table of quarantine reasons, published as Prefect artifacts."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    from flows.artifacts import quarantine_table, summary_markdown

    create_markdown_artifact(markdown=summary_markdown(outcome, settings), key="refresh-summary",
                             description="politikpi refresh: headline KPIs, changes, rows, audit, release")
    create_table_artifact(table=quarantine_table(settings), key="quarantine-reasons",
                          description="Quarantined rows per source and rule (no personal data)")
