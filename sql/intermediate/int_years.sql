/*
  int_years — one row per calendar year from the first to the last year with any event
  (report, call-out or outreach activity), in local time.
*/
with reports as (
    select * from fct_reports
),

callouts as (
    select * from fct_callouts
),

outreach as (
    select * from fct_outreach
),

event_years as (
    select year from reports
    union all
    select year from callouts
    union all
    select year from outreach
),

final as (
    -- over no events min(year) is NULL and the range unnests to no rows: no year
    select unnest(range(min(year), max(year) + 1)) as year
    from event_years
)

select * from final
