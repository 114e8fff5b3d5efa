/*
  kpi_callouts — one row per (month, municipality_code, cause, priority) with call-outs:
  distinct incidents after corrections, cancelled ones included. Base rows only.
*/
with callouts as (
    select * from fct_callouts
),

final as (
    select
        month,
        municipality_code,
        cause,
        priority,
        count(distinct incident_id) as callouts
    from callouts
    group by all
)

select * from final
