"""Audit a built release with Great Expectations before it is published (write-audit-publish).

GX's DuckDB source is broken upstream (every expectation fails): DuckDB computes small frames (the KPI
tables, reconciliation sums, audit queries over the event tables) and GX validates them as
pandas DataFrames. Each frame is one suite and one validation definition, whose stored results build the
release's Data Docs.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from flows.config import Settings
from flows.release import store
from flows.transform.models import load as load_metadata
from flows.transform.runner import audit_sql
from flows.transform.transform import quote_path


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
        lines = [c.get("message") or f"{c['frame']}: {c['expectation']}({c.get('column') or ''}) {c['detail']}"
                 for c in result.failures]
        super().__init__("audit failed, nothing published: " + "; ".join(lines))


KPI_SOURCE = {"reports": "reports", "callouts": "dispatches", "mean_response_min": "dispatches",
              "outreach": "outreach"}
KPI_UNIT = {"mean_response_min": " min"}


def restatements(frame, limit: float, rejected: dict[str, list[str]] | None = None) -> list[str]:
    """Closed months whose district total moved more than `limit` since the current release, in
    the user's terms: "outreach 2019-11, all municipalities: 146 -> 0 (-100 %), after rejected file ..."."""
    out = []
    for row in frame[frame["change_share"] > limit].to_dict("records"):
        old, new, unit = row["old_value"], row["new_value"], KPI_UNIT.get(row["kpi"], "")
        missing = new is None or new != new  # no rows any more: a count of 0, a mean that does not exist
        new_text = ("none" if unit else "0") if missing else f"{new:,.{2 if unit else 0}f}"
        pct = 100 * ((0 if missing else new) - old) / old
        files = (rejected or {}).get(KPI_SOURCE.get(row["kpi"], ""), [])
        after = f", after rejected file{'s' if len(files) > 1 else ''} {', '.join(files[:3])}" if files else ""
        out.append(f"{row['kpi']} {row['month']:%Y-%m}, all municipalities: {old:,.{2 if unit else 0}f} -> "
                   f"{new_text}{unit} ({pct:+.0f} %){after}")
    return out


def table_frames(con: duckdb.DuckDBPyConnection, metas: dict, extra_keys: dict | None = None) -> list:
    """Each keyed table's frame: keys not NULL (rollup keys may be) and unique, and the .toml's
    bounds and allowed values. extra_keys: table -> key columns that come first (the national
    release's district_code)."""
    import great_expectations as gx

    E = gx.expectations
    frames = []
    for table, meta in metas.items():
        if not meta.keys:
            continue
        first = list((extra_keys or {}).get(table, ()))
        exps = [E.ExpectColumnValuesToNotBeNull(column=k) for k in first + list(meta.keys) if k not in meta.rollup_keys]
        keys = first + list(meta.keys)
        exps.append(E.ExpectCompoundColumnsToBeUnique(column_list=keys) if len(keys) > 1
                    else E.ExpectColumnValuesToBeUnique(column=keys[0]))
        for rule in meta.expect:
            if "min" in rule or "max" in rule:
                exps.append(E.ExpectColumnValuesToBeBetween(column=rule["column"], min_value=rule.get("min"),
                                                            max_value=rule.get("max")))
            else:
                exps.append(E.ExpectColumnValuesToBeInSet(column=rule["column"], value_set=meta.allowed_values(rule)))
        frames.append([table, con.sql(f"select * from {table}").df(), exps, True])
    return frames


def _frames(con: duckdb.DuckDBPyConnection, has_current: bool, hard_share: float, flag_share: float) -> list:
    """(frame name, DataFrame, expectations, blocking) for every audited frame."""
    import great_expectations as gx

    E = gx.expectations
    frames = table_frames(con, load_metadata())
    frames.append(["reconciliation", con.sql(audit_sql("reconciliation")).df(),
                   [E.ExpectColumnPairValuesToBeEqual(column_A="expected", column_B="actual")], True])
    frames.append(["coverage", con.sql(audit_sql("coverage")).df(),
                   [E.ExpectColumnValuesToBeBetween(column="missing_months", min_value=0, max_value=0)], True])
    frames.append(["release_facts", con.sql(audit_sql("release_facts")).df(),
                   [E.ExpectColumnValuesToNotBeNull(column="data_through")], True])
    frames.append(["days_without_data", con.sql(audit_sql("missing_days")).df(),
                   [E.ExpectTableRowCountToEqual(value=0)], False])
    if has_current:
        change = con.sql(audit_sql("change")).df()
        frames.append(["change_vs_current", change,
                       [E.ExpectColumnValuesToBeBetween(column="change_share", max_value=hard_share)], True])
        frames.append(["change_vs_current_flag", change,
                       [E.ExpectColumnValuesToBeBetween(column="change_share", max_value=flag_share)], False])
    return frames


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
          hard_share: float = 0.5, flag_share: float = 0.25, rejected: dict[str, list[str]] | None = None,
          accept_restatement: str | None = None, frames=None) -> AuditResult:
    """Validate the built release; blocking failures fail it, flags are recorded. With
    accept_restatement (the operator's reason), the change check flags instead of blocking."""
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
    if frames is None:
        frames = _frames(con, has_current, hard_share, flag_share)
    for name, frame, expectations, blocking in (frames(con) if callable(frames) else frames):
        suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=expectations))
        batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("all")
        definition = context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
        # Run directly, not through a Checkpoint (it would add nothing but its own store entry, ~15 ms
        # a frame): the result is stored all the same, and the Data Docs below are built from the store.
        validation = definition.run(batch_parameters={"dataframe": frame}, result_format="SUMMARY")
        for outcome in validation.results:
            config = outcome.expectation_config
            check = {"frame": name, "expectation": config.type, "column": config.kwargs.get("column"),
                     "success": bool(outcome.success), "blocking": blocking, "detail": _detail(outcome, frame)}
            if name == "change_vs_current" and not outcome.success:
                moved = restatements(frame, hard_share, rejected)
                more = f"; and {len(moved) - 5} more" if len(moved) > 5 else ""
                check["message"] = (
                    f"closed months changed by more than {hard_share:.0%} (POLITIKPI_CHANGE_HARD_SHARE): "
                    + "; ".join(moved[:5]) + more
                    + "; if a rejected file caused it, fix and deliver that file again; if the restatement "
                    + 'is real, re-run with --accept-restatement "<reason>"')
                if accept_restatement:
                    blocking = False
                    check.update(blocking=False, accepted=accept_restatement, restated=moved)
            result.checks.append(check)
            if not outcome.success and blocking:
                result.success = False
            elif not outcome.success:
                result.flagged.append(check)
    if docs_dir:  # once, for every validation above (an action per checkpoint would rebuild the site each time)
        context.build_data_docs(site_names=["release"])
    return result


def audit_build(settings: Settings, built: dict, accept_restatement: str | None = None, run_id: str = "local") -> dict:
    """The audit stage: audit the build; record the outcome in its `_release` row unless it is
    already published. An accepted restatement (the operator's reason) is logged in
    <state>/restatements.jsonl. A failure keeps the Data Docs under <state>/audits/."""
    path, docs = Path(built["path"]), Path(built["docs"])
    already_published = path.stat().st_nlink > 1  # hard-linked under releases/: immutable now
    con = duckdb.connect()
    try:
        con.execute(f"attach {quote_path(path)} as release {'(read_only)' if already_published else ''}")
        con.execute("use release")
        con.execute(f"attach {quote_path(settings.state / 'state.duckdb')} as state (read_only)")
        stable = settings.warehouse / store.STABLE
        has_current = stable.exists() and not os.path.samefile(stable, path)
        if has_current:
            con.execute(f"attach {quote_path(stable)} as current (read_only)")
        shutil.rmtree(docs, ignore_errors=True)
        rejected = dict(con.execute(audit_sql("rejected_inputs")).fetchall()) if has_current else {}
        result = audit(con, docs, has_current, settings.change_hard_share, settings.change_share,
                       rejected=rejected, accept_restatement=accept_restatement)
        summary = result.summary()
        accepted = [c for c in result.checks if c.get("accepted")]
        if accepted:
            summary["restatement"] = {"reason": accept_restatement, "changes": accepted[0]["restated"]}
            with open(settings.state / "restatements.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                                     "release_id": built["meta"]["release_id"], "flow_run_id": run_id,
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
