"""Audit a built release with Great Expectations before it is published (write-audit-publish).

GX's DuckDB source is broken upstream (STACK.md): DuckDB computes small frames (the KPI
tables, reconciliation sums) and GX validates them as pandas DataFrames.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import duckdb

# Each audited frame: (name, SQL, expectations as (GX class name, kwargs)).
KEYS = {
    "kpi_reports": ["month", "municipality_code", "law_area"],
    "kpi_callouts": ["month", "municipality_code", "cause", "priority"],
    "kpi_outreach": ["month", "municipality_code", "activity"],
    "kpi_year_summary": ["year"],
}
RECONCILIATION_SQL = """
select 'reports: kpi = facts' as check_name,
       (select count(*) from fct_reports) as expected, (select coalesce(sum(reports), 0) from kpi_reports) as actual
union all select 'callouts: kpi = facts',
       (select count(*) from fct_callouts), (select coalesce(sum(callouts), 0) from kpi_callouts)
union all select 'outreach: kpi = facts',
       (select coalesce(sum(activities), 0) from fct_outreach), (select coalesce(sum(activities), 0) from kpi_outreach)
union all select 'responses: district = sum of municipalities',
       (select coalesce(sum(responses), 0) from kpi_response_times where municipality_code is null and cause is null),
       (select coalesce(sum(responses), 0) from kpi_response_times where municipality_code is not null and cause is null)
union all select 'responses: all causes = sum of causes',
       (select coalesce(sum(responses), 0) from kpi_response_times where municipality_code is null and cause is null),
       (select coalesce(sum(responses), 0) from kpi_response_times where municipality_code is null and cause is not null)
union all select 'year summary reports = kpi_reports',
       (select coalesce(sum(reports), 0) from kpi_reports), (select coalesce(sum(reports), 0) from kpi_year_summary)
union all select 'year summary callouts = kpi_callouts',
       (select coalesce(sum(callouts), 0) from kpi_callouts), (select coalesce(sum(callouts), 0) from kpi_year_summary)
union all select 'ambassadors: district <= sum of municipalities',
       (select count(*) from kpi_safety_ambassadors d where municipality_code is null),
       (select count(*) from kpi_safety_ambassadors d where municipality_code is null and ambassadors <=
           (select coalesce(sum(ambassadors), 0) from kpi_safety_ambassadors m where m.year = d.year and m.municipality_code is not null))
union all select 'row conservation: read = staged + quarantined (every file)',
       (select count(*) from state.files where status = 'ingested'),
       (select count(*) from state.files where status = 'ingested' and rows_read = rows_staged + rows_quarantined)
"""


@dataclass
class AuditResult:
    success: bool
    checks: list[dict] = field(default_factory=list)

    @property
    def failures(self) -> list[dict]:
        return [c for c in self.checks if not c["success"]]


class AuditFailed(RuntimeError):
    def __init__(self, result: AuditResult):
        self.result = result
        lines = [f"{c['frame']}: {c['expectation']} {c['detail']}" for c in result.failures]
        super().__init__("audit failed: " + "; ".join(lines))


def _suites(con: duckdb.DuckDBPyConnection) -> list[tuple[str, object, list]]:
    import great_expectations as gx

    E = gx.expectations
    frames = []
    for table, keys in KEYS.items():
        exps = [E.ExpectColumnValuesToNotBeNull(column=k) for k in keys]
        exps.append(E.ExpectCompoundColumnsToBeUnique(column_list=keys) if len(keys) > 1
                    else E.ExpectColumnValuesToBeUnique(column=keys[0]))
        frames.append((table, con.sql(f"select * from {table}").df(), exps))
    counts = {"kpi_reports": "reports", "kpi_callouts": "callouts", "kpi_outreach": "activities"}
    for table, column in counts.items():
        frames[[f[0] for f in frames].index(table)][2].append(
            E.ExpectColumnValuesToBeBetween(column=column, min_value=0))
    frames[0][2].append(E.ExpectColumnValuesToBeInSet(
        column="law_area", value_set=["Straffelov", "Færdselslov", "Særlov"]))
    rt = con.sql("select * from kpi_response_times").df()
    rt_exps = [E.ExpectColumnValuesToNotBeNull(column=c) for c in ("period_grain", "period_start", "responses")]
    rt_exps += [E.ExpectColumnValuesToBeBetween(column=c, min_value=0, max_value=24 * 60)
                for c in ("mean_min", "median_min", "p90_min", "max_min")]
    rt_exps.append(E.ExpectColumnValuesToBeBetween(column="responses", min_value=1))
    rt_exps.append(E.ExpectColumnValuesToBeInSet(column="period_grain", value_set=["month", "quarter", "year"]))
    frames.append(("kpi_response_times", rt, rt_exps))
    recon = con.sql(RECONCILIATION_SQL).df()
    frames.append(("reconciliation", recon,
                   [E.ExpectColumnPairValuesToBeEqual(column_A="expected", column_B="actual")]))
    return frames


def audit(con: duckdb.DuckDBPyConnection) -> AuditResult:
    """Validate the built release; returns every check's outcome."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    source = context.data_sources.add_pandas("release")
    result = AuditResult(success=True)
    for name, frame, expectations in _suites(con):
        batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("all") \
            .get_batch(batch_parameters={"dataframe": frame})
        for expectation in expectations:
            outcome = batch.validate(expectation)
            detail = ""
            if not outcome.success:
                unexpected = outcome.result.get("partial_unexpected_list") or []
                if name == "reconciliation":
                    bad = frame[frame["expected"] != frame["actual"]]
                    unexpected = bad.to_dict("records")
                detail = f"(unexpected: {unexpected[:5]})"
            result.checks.append({"frame": name, "expectation": expectation.expectation_type,
                                  "column": getattr(expectation, "column", None),
                                  "success": bool(outcome.success), "detail": detail})
            result.success &= bool(outcome.success)
    return result
