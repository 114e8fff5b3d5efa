/*
  audit: change — Closed months of the current release (before its data_through month) compared with the new build:
corrections restate history, but a large move is more likely an error (POLITIKPI_CHANGE_SHARE flags,
POLITIKPI_CHANGE_HARD_SHARE fails the audit unless --accept-restatement).
*/
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
