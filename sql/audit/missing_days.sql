/*
  audit: missing_days — Days inside the covered period with no reports or no call-outs: flagged, not blocking.
*/
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
