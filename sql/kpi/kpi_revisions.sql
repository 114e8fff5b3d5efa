/*
  kpi_revisions — the restatement log: one row per value of a closed month that this release
  changes in the release it replaces (`previous`, the release current when this one was built),
  plus every row that release carried. A month is closed when it ends before the first day of the
  month holding the replaced release's data_through. Compared at month grain, rollups included,
  keys matched NULL-safe: kpi_reports.reports, kpi_callouts.callouts, kpi_outreach.activities,
  kpi_response_times.responses and .mean_min. `_build_info` (written by the build) names this
  release, the replaced one and whether inputs or code changed.
*/
with closed as (
    select date_trunc('month', data_through)::date as first_open_month from previous._release
),

values_now as (
    select 'kpi_reports' as table_name, month as period_start, json_object('month', strftime(month, '%Y-%m-%d'),
           'municipality_code', municipality_code, 'law_area', law_area)::varchar as key,
           'reports' as column_name, reports::double as value
    from kpi_reports
    union all
    select 'kpi_callouts', month, json_object('month', strftime(month, '%Y-%m-%d'),
           'municipality_code', municipality_code, 'cause', cause, 'priority', priority)::varchar,
           'callouts', callouts::double
    from kpi_callouts
    union all
    select 'kpi_outreach', month, json_object('month', strftime(month, '%Y-%m-%d'),
           'municipality_code', municipality_code, 'activity', activity)::varchar,
           'activities', activities::double
    from kpi_outreach
    union all
    select 'kpi_response_times', period_start, json_object('period_grain', period_grain,
           'period_start', strftime(period_start, '%Y-%m-%d'), 'municipality_code', municipality_code,
           'cause', cause)::varchar,
           unnest(['responses', 'mean_min']), unnest([responses::double, mean_min])
    from kpi_response_times where period_grain = 'month'
),

values_before as (
    select 'kpi_reports' as table_name, month as period_start, json_object('month', strftime(month, '%Y-%m-%d'),
           'municipality_code', municipality_code, 'law_area', law_area)::varchar as key,
           'reports' as column_name, reports::double as value
    from previous.kpi_reports
    union all
    select 'kpi_callouts', month, json_object('month', strftime(month, '%Y-%m-%d'),
           'municipality_code', municipality_code, 'cause', cause, 'priority', priority)::varchar,
           'callouts', callouts::double
    from previous.kpi_callouts
    union all
    select 'kpi_outreach', month, json_object('month', strftime(month, '%Y-%m-%d'),
           'municipality_code', municipality_code, 'activity', activity)::varchar,
           'activities', activities::double
    from previous.kpi_outreach
    union all
    select 'kpi_response_times', period_start, json_object('period_grain', period_grain,
           'period_start', strftime(period_start, '%Y-%m-%d'), 'municipality_code', municipality_code,
           'cause', cause)::varchar,
           unnest(['responses', 'mean_min']), unnest([responses::double, mean_min])
    from previous.kpi_response_times where period_grain = 'month'
),

changed as (
    select coalesce(n.table_name, b.table_name) as table_name, coalesce(n.key, b.key) as key,
           coalesce(n.column_name, b.column_name) as column_name,
           b.value as old_value, n.value as new_value
    from values_now as n
    full outer join values_before as b
        on n.table_name = b.table_name and n.key = b.key and n.column_name = b.column_name
    where coalesce(n.period_start, b.period_start) < (select first_open_month from closed)
      and n.value is distinct from b.value
),

new_rows as (
    select i.release_id, i.previous_release_id, c.table_name, c.key, c.column_name, c.old_value, c.new_value,
           i.inputs_changed, i.code_changed
    from changed as c cross join _build_info as i
),

final as (
    select release_id, previous_release_id, table_name, key, column_name, old_value, new_value,
           inputs_changed, code_changed
    from previous.kpi_revisions
    union all
    select * from new_rows
)

select * from final
