"""The audit's DuckDB queries: small frames computed over the release (and the current one)."""

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

RECONCILIATION_SQL = """
select 'reports: kpi = facts' as check_name,
       (select count(*) from fct_reports) as expected,
       (select coalesce(sum(reports), 0) from kpi_reports) as actual
union all select 'callouts: kpi = facts',
       (select count(*) from fct_callouts), (select coalesce(sum(callouts), 0) from kpi_callouts)
union all select 'outreach: kpi = facts',
       (select coalesce(sum(activities), 0) from fct_outreach), (select coalesce(sum(activities), 0) from kpi_outreach)
union all select 'responses: kpi = measured facts',
       (select count(*) from fct_callouts where response_seconds is not null),
       (select coalesce(sum(responses), 0) from kpi_response_times
        where period_grain = 'month' and municipality_code is not null and cause is not null)
union all select 'responses: district = sum of municipalities (every period, cause)',
       (select count(*) from kpi_response_times d where municipality_code is null),
       (select count(*) from kpi_response_times d where municipality_code is null and responses =
           (select sum(responses) from kpi_response_times m where m.municipality_code is not null
            and m.period_grain = d.period_grain and m.period_start = d.period_start
            and m.cause is not distinct from d.cause))
union all select 'responses: all causes = sum of causes (every period, municipality)',
       (select count(*) from kpi_response_times d where cause is null),
       (select count(*) from kpi_response_times d where cause is null and responses =
           (select sum(responses) from kpi_response_times m where m.cause is not null
            and m.period_grain = d.period_grain and m.period_start = d.period_start
            and m.municipality_code is not distinct from d.municipality_code))
union all select 'year summary reports = kpi_reports',
       (select coalesce(sum(reports), 0) from kpi_reports), (select coalesce(sum(reports), 0) from kpi_year_summary)
union all select 'year summary callouts = kpi_callouts',
       (select coalesce(sum(callouts), 0) from kpi_callouts), (select coalesce(sum(callouts), 0) from kpi_year_summary)
union all select 'ambassadors: district <= sum of municipalities (every year)',
       (select count(*) from kpi_safety_ambassadors d where municipality_code is null),
       (select count(*) from kpi_safety_ambassadors d where municipality_code is null and ambassadors <=
           (select coalesce(sum(ambassadors), 0) from kpi_safety_ambassadors m
            where m.year = d.year and m.municipality_code is not null))
union all select 'row conservation: read = staged + quarantined (every ingested file)',
       (select count(*) from state.files where status = 'ingested'),
       (select count(*) from state.files where status = 'ingested' and rows_read = rows_staged + rows_quarantined)
"""

# Every month from the first to the last month with reports must be present.
COVERAGE_SQL = """
with months as (select distinct month from kpi_reports),
span as (select unnest(range(min(month), max(month) + interval 1 month, interval 1 month))::date as month
         from months having count(*) > 0)
select count(*) filter (where months.month is null) as missing_months
from span left join months using (month)
"""

RELEASE_FACTS_SQL = """
select least((select max(reported_local)::date from fct_reports),
             (select max(received_local)::date from fct_callouts),
             (select max(activity_date) from fct_outreach)) as data_through
"""

# Days inside the covered period with no reports or no call-outs: flagged, not blocking.
MISSING_DAYS_SQL = """
with days as (
    select unnest(range((select min(reported_local)::date from fct_reports),
                        (select max(reported_local)::date from fct_reports) + interval 1 day,
                        interval 1 day))::date as day
),
report_days as (select distinct reported_local::date as day from fct_reports),
callout_days as (select distinct received_local::date as day from fct_callouts)
select days.day, 'reports' as source from days anti join report_days using (day)
union all
select days.day, 'dispatches' from days anti join callout_days using (day)
order by 1, 2
"""

# Closed months of the current release (before its data_through month) compared with the
# new build: corrections restate history, but a large move is more likely an error.
CHANGE_SQL = """
with closed as (
    select date_trunc('month', data_through)::date as first_open from current._release
),
measures as (
    select 'reports' as kpi, month, sum(reports)::double as value, 'new' as side from kpi_reports group by month
    union all select 'reports', month, sum(reports), 'old' from current.kpi_reports group by month
    union all select 'callouts', month, sum(callouts), 'new' from kpi_callouts group by month
    union all select 'callouts', month, sum(callouts), 'old' from current.kpi_callouts group by month
    union all select 'outreach', month, sum(activities), 'new' from kpi_outreach group by month
    union all select 'outreach', month, sum(activities), 'old' from current.kpi_outreach group by month
    union all select 'mean_response_min', period_start, mean_min, 'new' from kpi_response_times
        where period_grain = 'month' and municipality_code is null and cause is null
    union all select 'mean_response_min', period_start, mean_min, 'old' from current.kpi_response_times
        where period_grain = 'month' and municipality_code is null and cause is null
),
paired as (
    select kpi, month, max(value) filter (where side = 'old') as old_value,
           max(value) filter (where side = 'new') as new_value
    from measures group by kpi, month
)
select kpi, month, old_value, new_value,
       abs(coalesce(new_value, 0) - old_value) / nullif(old_value, 0) as change_share
from paired, closed
where month < closed.first_open and old_value is not null
order by kpi, month
"""
