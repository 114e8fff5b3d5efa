/*
  kpi_outreach — one row per (month, municipality_code, activity): activities = sum of
  `antal` (a log row can count several). Base rows only.
*/
with outreach as (
    select * from fct_outreach
),

final as (
    select month, municipality_code, activity, sum(activities)::bigint as activities
    from outreach
    group by all
)

select * from final
