/*
  kpi_callouts — one row per (month, municipality_code, cause, priority) with call-outs:
  distinct incidents after corrections, cancelled ones included. Base rows only.
*/
with callouts as (
    select * from fct_callouts
),

municipalities as (
    select * from dim_municipality
),

counted as (
    select
        month,
        municipality_code,
        cause,
        priority,
        count(distinct incident_id) as callouts
    from callouts
    group by all
),

final as (
    select
        counted.month,
        counted.municipality_code,
        municipalities.municipality,
        counted.cause,
        counted.priority,
        counted.callouts
    from counted
    left join municipalities on counted.municipality_code = municipalities.municipality_code
)

select * from final
