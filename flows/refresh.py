"""The nightly refresh: scan -> extract & validate (per source) -> threshold -> load -> transform
-> audit -> publish. Reads like a table of contents; the work lives in the modules each task calls.

Re-runs resume: extract, transform and audit persist their results under cache keys built from
input file hashes, the code version, parameters and the state's version, so a re-run (a new
`politikpi refresh`, or `prefect flow-run retry`) skips what already completed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import threading
import time
from pathlib import Path

from flows.config import prefect_defaults

prefect_defaults()

from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.artifacts import create_markdown_artifact, create_table_artifact  # noqa: E402
from prefect.events import emit_event  # noqa: E402
from prefect.logging import get_logger  # noqa: E402
from prefect.runtime import flow_run  # noqa: E402

from flows import district as districts  # noqa: E402
from flows import faults  # noqa: E402
from flows.concurrency import district_slot  # noqa: E402
from flows.config import Settings  # noqa: E402
from flows.ingest import extract, state  # noqa: E402
from flows.ingest.load import load_results  # noqa: E402
from flows.ingest.sources import SOURCES  # noqa: E402
from flows.ingest.threshold import ThresholdExceeded, threshold_summary  # noqa: E402
from flows.release import releases  # noqa: E402
from flows.release.audit import audit_build  # noqa: E402
from flows.release.publish import Pinned, finish_interrupted_publish, publish_build, unchanged_release  # noqa: E402
from flows.release.store import PublishRefused, current_release  # noqa: E402
from flows.release.summary import quarantine_table, summary_markdown  # noqa: E402
from flows.transform.transform import build_matches, transform_build  # noqa: E402
from flows.transform.versions import file_results_key, state_key  # noqa: E402
from schemas.reference import serving  # noqa: E402

CACHE_DAYS = int(os.environ.get("POLITIKPI_CACHE_DAYS", 7))
CACHE = {"persist_result": True, "cache_expiration": dt.timedelta(days=CACHE_DAYS)}

__all__ = ["ThresholdExceeded", "refresh", "run_by_hand"]
BY_HAND_SLOT_WAIT = 2.0  # a run by hand refuses (exit 3) when another run holds its district's slot


def _run_id() -> str:
    return str(flow_run.get_id() or "local")


def results_dir(settings: Settings) -> Path:
    """Prefect's persisted task results live with the state, so every runner of this state (the
    served deployment, an operator, several workers with their own PREFECT_HOME) sees one cache."""
    return settings.state / "results"


def work_done(workdir: Path, key: str) -> bool:
    return (workdir / f"{key}.done").exists()


def mark_work_done(workdir: Path, key: str) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / f"{key}.done").touch()


def warm_imports() -> None:
    """Import the audit's and the report's libraries on a background thread (Great Expectations
    alone takes ~3 s) while extraction and the transform work in polars and DuckDB, which release
    the GIL. Started only when a run has files to process: a run with nothing new never needs them."""
    def run() -> None:
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        try:
            import great_expectations  # noqa: F401

            from flows.release.report import _plt

            _plt()
        except Exception:  # noqa: BLE001, S110 - the real import later reports any problem
            pass

    threading.Thread(target=run, name="politikpi-warm-imports", daemon=True).start()


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
    """Flow-level hook: a failed or crashed run is logged, appended to <state>/failures.jsonl and
    recorded in <state>/last_run.json (if this run had recorded its start there)."""
    message = str(state.message or state.name)[:500]
    get_logger("politikpi").error("refresh flow run %s %s: %s", flow_run.id, state.name, message)
    folder = Path(flow_run.parameters.get("state_dir", "data/state"))
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "failures.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"at": dt.datetime.now(dt.UTC).isoformat(), "flow_run_id": str(flow_run.id),
                             "state": state.name, "message": message}) + "\n")
    districts.record_end(folder, "crashed" if state.is_crashed() else "failed", None, message, str(flow_run.id))


def announce_rejected(rejected: list[dict], district_code: str) -> None:
    """One Prefect event per file rejected this run (`politikpi.file.rejected`): an automation can
    match it and tell the data owner. Carries file names and reasons only, never content."""
    for item in rejected:
        emit_event(event="politikpi.file.rejected",
                   resource={"prefect.resource.id": f"politikpi.file.{item['file']}",
                             "prefect.resource.name": item["file"], "politikpi.source": item["source"],
                             "politikpi.district": district_code},
                   payload={"reason": item["reason"], "district_code": district_code})


def announce_published(entry: dict, district_code: str) -> None:
    """`politikpi.release.published` (SPEC 8.3): the national deployment's trigger waits for these."""
    emit_event(event="politikpi.release.published",
               resource={"prefect.resource.id": f"politikpi.district.{district_code}",
                         "prefect.resource.name": district_code},
               payload={"district_code": district_code, "release_id": entry["release_id"],
                        "sha256": entry["sha256"], "data_through": str(entry.get("data_through"))})


def run_artifacts(outcome: dict, settings: Settings) -> None:
    """Markdown summary and a table of quarantine reasons, published as Prefect artifacts."""
    create_markdown_artifact(markdown=summary_markdown(outcome, settings), key="refresh-summary",
                             description="politikpi refresh: headline KPIs, changes, rows, audit, release")
    create_table_artifact(table=quarantine_table(settings), key="quarantine-reasons",
                          description="Quarantined rows per source and rule (no personal data)")


def task_key(context, parameters: dict) -> str:
    """Cache key: the task's name plus the key the flow computed from hashes, code and state."""
    return f"{context.task.name}-{parameters['key']}"


def io_only(task, task_run, state) -> bool:
    """Retry file and database I/O errors; a logic or validation error fails at once."""
    import duckdb

    exc = state.result(raise_on_failure=False)
    return isinstance(exc, (OSError, duckdb.IOException))


@task(name="scan landing", retries=2, retry_delay_seconds=[1, 5], retry_condition_fn=io_only)
def scan(landing: Path, state_dir: Path) -> tuple[list[extract.LandingFile], list, dict]:
    """List landing files and keep those whose content the state does not hold yet."""
    return extract.changed_files(landing, state_dir)


@task(name="extract and validate", cache_key_fn=task_key, **CACHE)
def extract_source(source: str, files: list, landing: Path, state_dir: Path, workdir: Path, hashes: dict,
                   key: str) -> list[extract.FileResult]:
    """Read, archive and validate one source's new or re-delivered files (sources run concurrently)."""
    results = extract.process_files(files, landing, state_dir, workdir, hashes)
    mark_work_done(workdir, key)
    faults.hit(f"extract:{source}")
    return results


@task(name="rebuild from archive", cache_key_fn=task_key, **CACHE)
def rebuild_source(source: str, entries: list[dict], state_dir: Path, workdir: Path,
                   key: str) -> list[extract.FileResult]:
    """Re-validate archived files of a source with the current rules (no landing file needed)."""
    results = extract.rebuild_files(entries, state_dir, workdir)
    mark_work_done(workdir, key)
    return results


@task(name="check failure threshold")
def check_threshold(results: list[extract.FileResult], settings: Settings, run_id: str) -> dict:
    """Per source, quarantined / read over this run's files; no retries (not I/O). A breach keeps the
    run's files listed in the work folder, so `politikpi quarantine` can show their rows."""
    return threshold_summary(results, settings, run_id)


@task(name="load state", retries=2, retry_delay_seconds=[1, 5], retry_condition_fn=io_only)
def load_state(results: list[extract.FileResult], state_dir: Path, workdir: Path, run_id: str,
               reset: list[str]) -> int:
    """Apply each file's outcome to the state database, each file wholly in or out (idempotent)."""
    with state.connect(state_dir) as con:
        applied = load_results(con, results, workdir, run_id, reset)
    faults.hit("load")
    return applied


@task(name="transform", cache_key_fn=task_key, **CACHE)
def transform(settings: Settings, key: str, full: bool = False) -> dict:
    """Run the SQL models over the state into a new release file (not yet published): a copy of
    the current release patched where the changed files move it, or (full) every table anew."""
    built = transform_build(settings, key, full, run_id=_run_id())
    faults.hit("transform")
    return built


@task(name="audit", cache_key_fn=task_key, **CACHE)
def audit(settings: Settings, built: dict, key: str, accept_restatement: str | None = None) -> dict:
    """Great Expectations on the built release; a failure leaves the current release current."""
    result = audit_build(settings, built, accept_restatement, run_id=_run_id())
    faults.hit("audit")
    return result


@task(name="publish", retries=2, retry_delay_seconds=[1, 5], retry_condition_fn=io_only)
def publish(settings: Settings, built: dict, audited: dict) -> dict:
    """Move the release under releases/, list it in the manifest, swap the stable path."""
    return publish_build(settings, built, audited)


@flow(name="refresh", on_failure=[notify_failure], on_crashed=[notify_failure])
def refresh(landing: str = "data/landing", state_dir: str = "data/state", warehouse: str = "warehouse",
            full_refresh: bool = False, reingest: str | None = None, accept_restatement: str | None = None,
            district: str | None = None, slot_wait_seconds: float | None = None) -> dict:
    """Nightly refresh: landing files in, an audited release of the KPI warehouse out.

    full_refresh re-validates every archived file; reingest (a glob on file identities, e.g.
    "reports/2019-03-*") re-validates the matching archived files after a rule change;
    accept_restatement (the operator's reason) lets closed months move beyond the audit's hard limit.
    A run with nothing new publishes nothing ("unchanged"); a pinned release (rollback) stays
    current and new data is only staged ("pinned"). district (default POLITIKPI_DISTRICT, else
    sydsjaelland) selects the municipalities the rules accept and the reference the build uses; where
    a Prefect server is configured the run holds the concurrency limit politikpi-district-<code>,
    waiting for it up to slot_wait_seconds (default POLITIKPI_SLOT_WAIT_SECONDS; a run by hand: 2 s)."""
    with serving(district) as code:  # the rules and the build read the district from the environment
        settings = Settings(Path(landing), Path(state_dir), Path(warehouse), district=code).resolved()
        with district_slot(code, slot_wait_seconds):
            try:
                return _refresh(settings, full_refresh, reingest, accept_restatement)
            except Exception as exc:  # recorded while the slot is held: a waiting run must not find it "running"
                districts.record_end(settings.state, "failed", None, f"{type(exc).__name__}: {exc}",
                                     str(flow_run.get_id() or "") or None)
                raise


def _refresh(settings: Settings, full_refresh: bool, reingest: str | None, accept_restatement: str | None) -> dict:
    logger = get_run_logger()
    run_id = str(flow_run.get_id() or dt.datetime.now(dt.UTC).strftime("local-%Y%m%dT%H%M%S"))
    workdir = settings.state / "work"
    results_at = {"result_storage": results_dir(settings)}  # one cache for every runner of this state
    with state.state_lock(settings.state):
        districts.claim(settings.state, settings.warehouse, settings.district)
        if crashed := districts.record_start(settings.state, run_id):
            logger.warning("the last run of %s never recorded an end: recorded as crashed (%s)", settings.district,
                           crashed["message"])
        todo, refused, hashes = scan(settings.landing, settings.state)
        rebuild = extract.archived_entries(settings.state, None if full_refresh else reingest) \
            if (full_refresh or reingest) else {}
        delivered = {lf.identity for lf in todo}  # a new delivery replaces its archived version
        rebuild = {name: [e for e in entries if e["identity"] not in delivered] for name, entries in rebuild.items()}
        full = bool(full_refresh or reingest)  # every table anew, never patched from the current release
        if not todo and not full and (current := unchanged_release(settings)):
            finish_interrupted_publish(settings)  # a run that failed after listing its release
            cleanup(settings, current["release_id"])  # what a stopped run parked is stale now
            return _finish(settings, logger, "unchanged", current, {}, refused, [])
        if todo or rebuild:
            extract.load_rules()  # before the sources' threads import them at once
            warm_imports()
        futures = [rebuild_source.with_options(refresh_cache=not work_done(workdir, key), **results_at).submit(
                       name, entries, settings.state, workdir, key=key)
                   for name, entries in rebuild.items() if entries
                   for key in [file_results_key("rebuild", name, entries, settings)]]
        for name in SOURCES:
            mine = [lf for lf in todo if lf.source == name]
            key = file_results_key("extract", name, [(lf.identity, hashes[lf.identity]) for lf in mine], settings)
            futures.append(extract_source.with_options(refresh_cache=not work_done(workdir, key), **results_at).submit(
                name, mine, settings.landing, settings.state, workdir, hashes, key=key))
        results = [r for f in futures for r in f.result()]
        summary = check_threshold(results, settings, run_id)
        reset = [e["identity"] for entries in rebuild.values() for e in entries]
        load_state(results, settings.state, workdir, run_id, reset)
        announce(results, logger, settings.district)  # before the build: a failed audit must not hide a rejected file
        if pin := releases.pinned(settings.warehouse):
            cleanup(settings, None)
            current = current_release(settings.warehouse)
            return _finish(settings, logger, "pinned", current, summary, refused, results, pin)
        if not full and (current := unchanged_release(settings)):  # e.g. only files already held came in
            finish_interrupted_publish(settings)
            cleanup(settings, current["release_id"])
            return _finish(settings, logger, "unchanged", current, summary, refused, results)
        key = state_key(settings, full)

        def build_and_audit(fresh: bool = False) -> tuple[dict, dict]:
            built = transform.with_options(refresh_cache=fresh, **results_at)(settings, key=key, full=full)
            if not build_matches(built):  # a cached result whose file is gone or holds another build
                logger.warning("cached build %s no longer holds that release: building it again", built["path"])
                built = transform.with_options(refresh_cache=True, **results_at)(settings, key=key, full=full)
            audited = audit.with_options(refresh_cache=fresh or not Path(built["docs"]).exists(), **results_at)(
                settings, built, key=f"{key}-{built['meta']['release_id']}-{accept_restatement or ''}",
                accept_restatement=accept_restatement)
            return built, audited

        built, audited = build_and_audit()
        try:
            try:
                entry = publish(settings, built, audited)
            except PublishRefused as exc:  # the cached build is a listed release whose file changed
                logger.warning("%s: building a new release instead", exc)
                built, audited = build_and_audit(fresh=True)
                entry = publish(settings, built, audited)
        except Pinned:  # an operator rolled back while this run was building
            pin = releases.pinned(settings.warehouse)
            current = current_release(settings.warehouse)
            return _finish(settings, logger, "pinned", current, summary, refused, results, pin)
        cleanup(settings, built["meta"]["release_id"])
    return _finish(settings, logger, "published", entry, summary, refused, results)


def run_by_hand(landing: str, state_dir: str, warehouse: str, full_refresh: bool = False, reingest: str | None = None,
                accept_restatement: str | None = None, district: str | None = None) -> dict:
    """The flow run `politikpi refresh` starts: without Prefect's heartbeat thread, which lets a
    zombie-run automation mark a vanished run Crashed but, sleeping in 1 s steps, holds every run's
    end by up to a second. A run by hand reports to its terminal (and a crash to failures.jsonl);
    deployment runs (serve, workers) keep Prefect's heartbeats, and so does a run by hand where
    PREFECT_FLOWS_HEARTBEAT_FREQUENCY is set (a default only, never overriding a chosen value)."""
    from prefect.settings import temporary_settings

    with temporary_settings(set_defaults={"flows.heartbeat_frequency": None}):
        return refresh(landing, state_dir, warehouse, full_refresh, reingest, accept_restatement, district,
                       slot_wait_seconds=BY_HAND_SLOT_WAIT)


def rejected_this_run(results: list) -> list[dict]:
    return [{"file": r.landing_path, "source": r.source, "reason": r.reason} for r in results if r.status == "rejected"]


def announce(results: list, logger, district_code: str) -> None:
    """Files rejected this run: a warning in the run's log and a Prefect event each."""
    if new := rejected_this_run(results):
        announce_rejected(new, district_code)
        logger.warning("%d file(s) rejected this run (the rest goes on): %s", len(new),
                       "; ".join(f"{r['file']}: {r['reason']}" for r in new)[:2000])


def _finish(settings: Settings, logger, status: str, release: dict | None, summary: dict, refused: list,
            results: list, pin: dict | None = None) -> dict:
    """The run's outcome: logged, published as artifacts, returned to the CLI."""
    new = rejected_this_run(results)
    rejected = new + [{"file": path, "reason": reason} for path, reason in refused]
    outcome = {"status": status, "release": release, "sources": summary, "rejected": rejected, "pinned": pin,
               "rejected_this_run": new, "files_ingested": sum(r.status == "ingested" for r in results)}
    run_artifacts(outcome, settings)
    rid = release["release_id"] if release else None
    districts.record_end(settings.state, status, rid, f"{status} {rid}", str(flow_run.get_id() or "") or None)
    if status == "published":
        announce_published(release, settings.district)
        logger.info("published release %s", rid)
    elif status == "unchanged":
        logger.info("nothing new; release %s stays current", rid)
    else:
        logger.warning("release %s is pinned (rollback at %s): new data staged, nothing published; "
                       "`politikpi unpin` to publish again", pin["release_id"], pin.get("at"))
    return outcome

