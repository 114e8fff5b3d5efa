/*
  kpi_outreach — one row per (month, municipality_code, activity): activities = sum of
  `antal` (a log row can count several). Base rows only.
*/
with outreach as (
    select * from fct_outreach
),

municipalities as (
    select * from dim_municipality
),

summed as (
    select month, municipality_code, activity, sum(activities)::bigint as activities
    from outreach
    group by all
),

final as (
    select
        summed.month,
        summed.municipality_code,
        municipalities.municipality,
        summed.activity,
        summed.activities
    from summed
    left join municipalities on summed.municipality_code = municipalities.municipality_code
)

select * from final
