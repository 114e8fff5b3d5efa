/*
  kpi_response_times — one row per (period_grain, period_start, municipality_code, cause),
  with rollups (NULL = all). Minutes from call received to first patrol on scene, computed
  from whole seconds: count, mean, median, p90 (continuous), max; low_sample under 20.
*/
with callouts as (
    select * from fct_callouts
    where response_seconds is not null
),

by_period as (
    select 'month' as period_grain, date_trunc('month', received_local)::date as period_start,
           municipality_code, cause, response_seconds
    from callouts
    union all
    select 'quarter', date_trunc('quarter', received_local)::date,
           municipality_code, cause, response_seconds
    from callouts
    union all
    select 'year', date_trunc('year', received_local)::date,
           municipality_code, cause, response_seconds
    from callouts
),

aggregated as (
    select
        period_grain,
        period_start,
        municipality_code,
        cause,
        count(*) as responses,
        avg(response_seconds) / 60 as mean_min,
        quantile_cont(response_seconds, 0.5) / 60 as median_min,
        quantile_cont(response_seconds, 0.9) / 60 as p90_min,
        max(response_seconds) / 60 as max_min
    from by_period
    group by grouping sets (
        (period_grain, period_start, municipality_code, cause),
        (period_grain, period_start, municipality_code),
        (period_grain, period_start, cause),
        (period_grain, period_start)
    )
),

final as (
    select *, responses < 20 as low_sample
    from aggregated
)

select * from final
