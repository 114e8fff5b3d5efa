"""Audit a built release with Great Expectations before it is published (write-audit-publish).

GX's DuckDB source is broken upstream (STACK.md): DuckDB computes small frames (the KPI
tables, reconciliation sums, audit queries over the event tables) and GX validates them as
pandas DataFrames. Each frame is one checkpoint whose results also build the release's Data Docs.
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from flows.audit_queries import (
    CHANGE_SQL,
    COVERAGE_SQL,
    KEYS,
    MISSING_DAYS_SQL,
    RECONCILIATION_SQL,
    RELEASE_FACTS_SQL,
)


@dataclass
class AuditResult:
    success: bool
    checks: list[dict] = field(default_factory=list)
    flagged: list[dict] = field(default_factory=list)
    docs: str | None = None

    @property
    def failures(self) -> list[dict]:
        return [c for c in self.checks if not c["success"] and c["blocking"]]

    def summary(self) -> dict:
        return {"success": self.success, "checks": len(self.checks), "failed": len(self.failures),
                "failures": self.failures, "flagged": self.flagged, "docs": self.docs}


class AuditFailed(RuntimeError):
    def __init__(self, result: AuditResult):
        self.result = result
        lines = [f"{c['frame']}: {c['expectation']}({c.get('column') or ''}) {c['detail']}" for c in result.failures]
        super().__init__("audit failed, nothing published: " + "; ".join(lines))


def audit_frames(con: duckdb.DuckDBPyConnection, has_current: bool) -> list[tuple[str, object, bool]]:
    """(frame name, pandas DataFrame, blocking) for every audited frame: DuckDB computes them all."""
    frames = [(table, con.sql(f"select * from {table}").df(), True) for table in KEYS]
    frames.append(("reconciliation", con.sql(RECONCILIATION_SQL).df(), True))
    frames.append(("coverage", con.sql(COVERAGE_SQL).df(), True))
    frames.append(("release_facts", con.sql(RELEASE_FACTS_SQL).df(), True))
    frames.append(("days_without_data", con.sql(MISSING_DAYS_SQL).df(), False))
    if has_current:
        change = con.sql(CHANGE_SQL).df()
        frames.append(("change_vs_current", change, True))
        frames.append(("change_vs_current_flag", change, False))
    return frames


def expectations(name: str, hard_share: float, flag_share: float) -> list:
    """The Great Expectations suite of one audited frame."""
    import great_expectations as gx

    E = gx.expectations
    if name in KEYS:
        keys = KEYS[name]
        exps = [E.ExpectColumnValuesToNotBeNull(column=k) for k in keys if not k.startswith("?")]
        keys = [k.lstrip("?") for k in keys]
        exps.append(E.ExpectCompoundColumnsToBeUnique(column_list=keys) if len(keys) > 1
                    else E.ExpectColumnValuesToBeUnique(column=keys[0]))
    else:
        exps = []
    return exps + {
        "kpi_reports": lambda: [E.ExpectColumnValuesToBeBetween(column="reports", min_value=0),
                                E.ExpectColumnValuesToBeInSet(column="law_area",
                                                              value_set=["Straffelov", "Færdselslov", "Særlov"])],
        "kpi_callouts": lambda: [E.ExpectColumnValuesToBeBetween(column="callouts", min_value=0),
                                 E.ExpectColumnValuesToBeInSet(column="priority", value_set=[1, 2, 3])],
        "kpi_outreach": lambda: [E.ExpectColumnValuesToBeBetween(column="activities", min_value=0)],
        "kpi_safety_ambassadors": lambda: [E.ExpectColumnValuesToBeBetween(column="ambassadors", min_value=0)],
        "kpi_response_times": lambda: [
            *[E.ExpectColumnValuesToBeBetween(column=c, min_value=0, max_value=24 * 60)
              for c in ("mean_min", "median_min", "p90_min", "max_min")],
            E.ExpectColumnValuesToBeBetween(column="responses", min_value=1),
            E.ExpectColumnValuesToBeInSet(column="period_grain", value_set=["month", "quarter", "year"])],
        "reconciliation": lambda: [E.ExpectColumnPairValuesToBeEqual(column_A="expected", column_B="actual")],
        "coverage": lambda: [E.ExpectColumnValuesToBeBetween(column="missing_months", min_value=0, max_value=0)],
        "release_facts": lambda: [E.ExpectColumnValuesToNotBeNull(column="data_through")],
        "days_without_data": lambda: [E.ExpectTableRowCountToEqual(value=0)],
        "change_vs_current": lambda: [E.ExpectColumnValuesToBeBetween(column="change_share", max_value=hard_share)],
        "change_vs_current_flag": lambda: [E.ExpectColumnValuesToBeBetween(column="change_share",
                                                                           max_value=flag_share)],
    }.get(name, list)()


def _detail(outcome, frame) -> str:
    if outcome.success:
        return ""
    result = outcome.result or {}
    unexpected = result.get("partial_unexpected_list") or []
    if "expected" in frame.columns:
        unexpected = frame[frame["expected"] != frame["actual"]].to_dict("records")
    if "observed_value" in result and not unexpected:
        return f"(observed {result['observed_value']})"
    return f"(unexpected: {unexpected[:5]})"


def audit(con: duckdb.DuckDBPyConnection, docs_dir: Path | None = None, has_current: bool = False,
          hard_share: float = 0.5, flag_share: float = 0.25, auditor: Auditor | None = None) -> AuditResult:
    """Validate the built release; blocking failures fail it, flags are recorded. With an
    auditor (a process that has imported Great Expectations already) the frames go there."""
    frames = audit_frames(con, has_current)
    if auditor is not None:
        return auditor.validate(frames, docs_dir, hard_share, flag_share)
    return validate(frames, docs_dir, hard_share, flag_share)


def validate(frames: list, docs_dir: Path | None, hard_share: float, flag_share: float) -> AuditResult:
    """Great Expectations over the frames: one checkpoint each, then the Data Docs site once."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    for name in [n for n in logging.root.manager.loggerDict if n.startswith("great_expectations")]:
        logging.getLogger(name).setLevel(logging.WARNING)  # GX sets some of its loggers to INFO itself
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    if docs_dir:
        context.add_data_docs_site(site_name="release", site_config={
            "class_name": "SiteBuilder", "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)}})
    source = context.data_sources.add_pandas("release")
    result = AuditResult(success=True, docs=str(docs_dir / "index.html") if docs_dir else None)
    for name, frame, blocking in frames:
        suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=expectations(name, hard_share,
                                                                                            flag_share)))
        batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("all")
        definition = context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
        checkpoint = context.checkpoints.add(gx.Checkpoint(
            name=f"audit_{name}", validation_definitions=[definition], actions=[], result_format="SUMMARY"))
        run = checkpoint.run(batch_parameters={"dataframe": frame})
        for validation in run.run_results.values():
            for outcome in validation.results:
                config = outcome.expectation_config
                check = {"frame": name, "expectation": config.type, "column": config.kwargs.get("column"),
                         "success": bool(outcome.success), "blocking": blocking, "detail": _detail(outcome, frame)}
                result.checks.append(check)
                if not outcome.success and blocking:
                    result.success = False
                elif not outcome.success:
                    result.flagged.append(check)
    if docs_dir:  # once, for every checkpoint run above (an action per checkpoint rebuilds the site each time)
        context.build_data_docs(site_names=["release"])
    return result


class Auditor:
    """Great Expectations in a process of its own (`python -m flows.audit`), started as soon as a
    run has new files: its ~3 s import runs on another core while extraction, load and transform
    run here, instead of competing for this process's GIL. One request: pickled frames in,
    pickled AuditResult out. Any failure of the process falls back to validating in-process."""

    def __init__(self) -> None:
        env = dict(os.environ, GX_ANALYTICS_ENABLED="false")
        self.proc = subprocess.Popen([sys.executable, "-m", "flows.audit"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)

    def validate(self, frames: list, docs_dir: Path | None, hard_share: float, flag_share: float) -> AuditResult:
        try:
            out, _ = self.proc.communicate(pickle.dumps((frames, docs_dir, hard_share, flag_share)), timeout=600)
            status, value = pickle.loads(out)
        except Exception as exc:  # noqa: BLE001 - a broken helper must not decide the audit
            self.close()
            logging.getLogger("politikpi").warning("audit process failed (%s); auditing in-process", exc)
            return validate(frames, docs_dir, hard_share, flag_share)
        if status != "ok":
            raise RuntimeError(f"audit process: {value}")
        return value

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _serve_one() -> None:
    """The auditor process: import Great Expectations, then answer one request on stdin."""
    import great_expectations  # noqa: F401 - the point of this process: import before the request

    request = sys.stdin.buffer.read()
    if not request:  # the parent went away (or had nothing to audit)
        return
    frames, docs_dir, hard_share, flag_share = pickle.loads(request)
    try:
        reply = ("ok", validate(frames, docs_dir, hard_share, flag_share))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
        reply = ("error", f"{type(exc).__name__}: {exc}")
    sys.stdout.buffer.write(pickle.dumps(reply))
    sys.stdout.buffer.flush()


if __name__ == "__main__":  # run as `python -m flows.audit`: answer with the importable module's classes
    from flows.audit import _serve_one as serve

    serve()
