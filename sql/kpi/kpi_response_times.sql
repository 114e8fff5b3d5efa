/*
  kpi_response_times — one row per (period_grain, period_start, municipality_code, cause),
  with rollups (NULL = all). Minutes from call received to first patrol on scene, computed
  from whole seconds: count, mean, median, p90 (continuous), max; low_sample under 20; the
  shares on scene within 5, 10, 15 and 20 minutes (seconds <= 300, 600, 900, 1,200); the
  responses with a dispatch time (disponeret, not after fremme) and, over those, the median
  call-to-dispatch and dispatch-to-scene intervals. Every aggregate on integer seconds, / 60.
*/
with callouts as (
    select * from fct_callouts
    where response_seconds is not null
),

municipalities as (
    select * from dim_municipality
),

responses as (
    select
        received_local,
        municipality_code,
        cause,
        response_seconds,
        dispatched_at is not null and dispatched_at <= on_scene_at as has_dispatch_time,
        case when dispatched_at is not null and dispatched_at <= on_scene_at
            then (epoch(dispatched_at) - epoch(received_at))::bigint end as dispatch_seconds,
        case when dispatched_at is not null and dispatched_at <= on_scene_at
            then (epoch(on_scene_at) - epoch(dispatched_at))::bigint end as travel_seconds
    from callouts
),

by_period as (
    select 'month' as period_grain, date_trunc('month', received_local)::date as period_start, *
    from responses
    union all
    select 'quarter', date_trunc('quarter', received_local)::date, *
    from responses
    union all
    select 'year', date_trunc('year', received_local)::date, *
    from responses
),

aggregated as (
    select
        period_grain,
        period_start,
        municipality_code,
        cause,
        count(*) as responses,
        mean_min(response_seconds) as mean_min,
        quantile_min(response_seconds, 0.5) as median_min,
        quantile_min(response_seconds, 0.9) as p90_min,
        max(response_seconds) / 60 as max_min,
        share_within(response_seconds, 300) as share_within_5_min,
        share_within(response_seconds, 600) as share_within_10_min,
        share_within(response_seconds, 900) as share_within_15_min,
        share_within(response_seconds, 1200) as share_within_20_min,
        count(*) filter (where has_dispatch_time) as with_dispatch_time,
        quantile_cont(dispatch_seconds, 0.5) filter (where has_dispatch_time) / 60 as dispatch_median_min,
        quantile_cont(travel_seconds, 0.5) filter (where has_dispatch_time) / 60 as travel_median_min
    from by_period
    group by grouping sets (
        (period_grain, period_start, municipality_code, cause),
        (period_grain, period_start, municipality_code),
        (period_grain, period_start, cause),
        (period_grain, period_start)
    )
),

final as (
    select
        aggregated.period_grain,
        aggregated.period_start,
        aggregated.municipality_code,
        municipalities.municipality,
        aggregated.cause,
        aggregated.responses,
        aggregated.mean_min,
        aggregated.median_min,
        aggregated.p90_min,
        aggregated.max_min,
        aggregated.responses < 20 as low_sample,
        aggregated.share_within_5_min,
        aggregated.share_within_10_min,
        aggregated.share_within_15_min,
        aggregated.share_within_20_min,
        aggregated.with_dispatch_time,
        aggregated.dispatch_median_min,
        aggregated.travel_median_min
    from aggregated
    left join municipalities on aggregated.municipality_code = municipalities.municipality_code
)

select * from final
