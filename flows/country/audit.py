"""The national audit (SPEC 8.4), with Great Expectations as a district's: every municipality row
of kpi_reports, kpi_callouts, kpi_outreach and kpi_response_times equals its district release's row
and the reverse, for the districts built with this code and reference data (the others are listed
and left out of this check); the country's additive counts equal the sum of the districts'; all
districts of the reference are listed; the comparison's country rows equal kpi_response_times'."""

from __future__ import annotations

from pathlib import Path

import duckdb

from flows.country.build import alias
from flows.country.inputs import DistrictInput
from flows.release.audit import AuditFailed, audit, table_frames
from flows.transform.models import load as load_metadata
from flows.transform.transform import quote_path
from flows.transform.versions import code_version, reference_version
from schemas.reference import load_districts

EQUAL_TABLES = ("kpi_reports", "kpi_callouts", "kpi_outreach", "kpi_response_times")
# Counts of events. Not the ambassadors: a district's release counts its roster only for the years it
# has data, the country for every year any district has (a failed district's last good release ends earlier).
ADDITIVE = ("reports", "callouts", "timed_responses", "mobile_station_outings", "safety_followups",
            "citizen_adviser_inquiries", "sub_visits", "talks", "traffic_controls")


def comparable(item: DistrictInput) -> bool:
    """A district release built with this code and reference data: its rows must be the national rows."""
    return item.code_version == code_version() and item.reference_version == reference_version(item.district_code)


def equality_sql(con: duckdb.DuckDBPyConnection, used: list[DistrictInput]) -> str:
    """Per table and comparable district: rows only in the national release, rows only in the district's."""
    parts = []
    for item in used:
        if not comparable(item):
            continue
        db = alias(item.district_code)
        mine = f"(select municipality_code from dim_municipality where district_code = '{item.district_code}')"
        for table in EQUAL_TABLES:
            cols = ", ".join(f'"{c}"' for (c,) in con.execute(
                "select column_name from duckdb_columns() where database_name = ? and table_name = ? "
                "order by column_index", [db, table]).fetchall())
            national = f"select {cols} from release.main.{table} where municipality_code in {mine}"
            district = f"select {cols} from {db}.main.{table} where municipality_code is not null"
            parts.append(f"select '{table}' as table_name, '{item.district_code}' as district_code, "
                         f"(select count(*) from ({national} except all {district})) as only_national, "
                         f"(select count(*) from ({district} except all {national})) as only_district")
    return " union all ".join(parts) or \
        "select null::varchar as table_name, null::varchar as district_code, 0 as only_national, 0 as only_district"


def additive_sql(used: list[DistrictInput]) -> str:
    """The country's kpi_year_summary counts against the sum of the districts' (long: year, measure)."""
    sums = " union all ".join(f"select year, {', '.join(ADDITIVE)} from {alias(i.district_code)}.main.kpi_year_summary"
                              for i in used)
    measures = ", ".join(f"'{m}'" for m in ADDITIVE)
    return f"""
        with districts as (
            select year, {', '.join(f'sum({m})::bigint as {m}' for m in ADDITIVE)} from ({sums}) group by year
        ),
        expected as (unpivot districts on {', '.join(ADDITIVE)} into name measure value expected),
        actual as (unpivot (select year, {', '.join(ADDITIVE)} from release.main.kpi_year_summary)
                   on {', '.join(ADDITIVE)} into name measure value actual)
        select coalesce(e.year, a.year) as year, coalesce(e.measure, a.measure) as measure,
               coalesce(e.expected, 0) as expected, coalesce(a.actual, 0) as actual
        from expected as e full outer join actual as a on e.year = a.year and e.measure = a.measure
        where coalesce(e.measure, a.measure) in ({measures})
    """


COUNTRY_ROWS = """
    select c.period_grain, c.period_start, c.cause, c.responses as actual_responses, t.responses as expected_responses,
           c.mean_min = t.mean_min and c.median_min = t.median_min and c.p90_min = t.p90_min
           and c.share_within_10_min = t.share_within_10_min and c.responses = t.responses as equal
    from release.main.kpi_district_comparison as c
    left join release.main.kpi_response_times as t
        on t.period_grain = c.period_grain and t.period_start = c.period_start and t.municipality_code is null
        and t.cause is not distinct from c.cause
    where c.district_code is null
"""


def national_frames(used: list[DistrictInput]):
    """The frames the national audit validates (a function of the audit's connection)."""
    def frames(con: duckdb.DuckDBPyConnection) -> list:
        import great_expectations as gx

        E = gx.expectations
        metas = {k: v for k, v in load_metadata(national=True).items()
                 if k in {t for (t,) in con.execute("select table_name from duckdb_tables() "
                                                     "where database_name = 'release'").fetchall()}}
        out = table_frames(con, metas, extra_keys={"kpi_data_quality": ["district_code"]})
        out.append(["district_rows_equal", con.sql(equality_sql(con, used)).df(),
                    [E.ExpectColumnValuesToBeBetween(column="only_national", max_value=0),
                     E.ExpectColumnValuesToBeBetween(column="only_district", max_value=0)], True])
        out.append(["country_is_sum_of_districts", con.sql(additive_sql(used)).df(),
                    [E.ExpectColumnPairValuesToBeEqual(column_A="expected", column_B="actual")], True])
        out.append(["all_districts_listed", con.sql("select * from release.main.national_inputs").df(),
                    [E.ExpectTableRowCountToEqual(value=len(load_districts() or {})),
                     E.ExpectColumnValuesToBeUnique(column="district_code"),
                     E.ExpectColumnValuesToBeInSet(column="status", value_set=[
                         "not_in_fleet", "missing", "failed", "stale", "current"])], True])
        out.append(["comparison_country_rows", con.sql(COUNTRY_ROWS).df(),
                    [E.ExpectColumnValuesToBeInSet(column="equal", value_set=[True])], True])
        return out
    return frames


def audit_national(path: Path, used: list[DistrictInput], docs: Path) -> dict:
    """Audit the national build at path (its districts attached read-only); raises AuditFailed."""
    con = duckdb.connect()
    try:
        con.execute(f"attach {quote_path(path)} as release (read_only)")
        con.execute("use release")
        for item in used:
            con.execute(f"attach {quote_path(Path(item.file))} as {alias(item.district_code)} (read_only)")
        result = audit(con, docs, frames=national_frames(used))
    finally:
        con.close()
    summary = result.summary()
    summary["not_compared"] = sorted(f"{i.district_code} (code {i.code_version})" for i in used if not comparable(i))
    if not result.success:
        raise AuditFailed(result)
    return summary
