"""The audit's keys and DuckDB queries (sql/audit/): small frames computed over the release (and
the current one), which Great Expectations then validates."""

from flows.sqlrunner import SQL_DIR

# Key columns per KPI table; a leading `?` marks a key that may be NULL (a rollup: "all").
KEYS = {
    "kpi_reports": ["month", "municipality_code", "law_area"],
    "kpi_callouts": ["month", "municipality_code", "cause", "priority"],
    "kpi_outreach": ["month", "municipality_code", "activity"],
    "kpi_response_times": ["period_grain", "period_start", "?municipality_code", "?cause"],
    "kpi_response_time_spread": ["period_grain", "period_start", "?cause"],
    "kpi_safety_ambassadors": ["year", "?municipality_code"],
    "kpi_year_summary": ["year"],
    "dim_municipality": ["municipality_code"],
}


def _audit_sql(name: str) -> str:
    """An audit query from sql/audit/ (outside model discovery: it reads the release, builds nothing)."""
    return (SQL_DIR / "audit" / f"{name}.sql").read_text(encoding="utf-8")


RECONCILIATION_SQL = _audit_sql("reconciliation")
COVERAGE_SQL = _audit_sql("coverage")
RELEASE_FACTS_SQL = _audit_sql("release_facts")
MISSING_DAYS_SQL = _audit_sql("missing_days")
CHANGE_SQL = _audit_sql("change")
