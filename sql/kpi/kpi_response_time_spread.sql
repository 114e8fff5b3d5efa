/*
  kpi_response_time_spread — one row per (period_grain, period_start, cause), cause NULL =
  all causes: longest municipal mean minus shortest, among municipalities with at least 20
  responses, naming both (code and name); NULL when fewer than two qualify. Ties go to the
  lower municipality code.
*/
with response_times as (
    select * from kpi_response_times
),

municipalities as (
    select * from dim_municipality
),

periods as (
    select distinct period_grain, period_start, cause
    from response_times
),

qualifying as (
    select
        period_grain,
        period_start,
        cause,
        municipality_code,
        mean_min,
        row_number() over (
            partition by period_grain, period_start, cause order by mean_min desc, municipality_code
        ) as longest_rank,
        row_number() over (
            partition by period_grain, period_start, cause order by mean_min, municipality_code
        ) as shortest_rank,
        count(*) over (partition by period_grain, period_start, cause) as qualifying_count
    from response_times
    where municipality_code is not null and responses >= 20
),

longest as (
    select * from qualifying where longest_rank = 1 and qualifying_count >= 2
),

shortest as (
    select * from qualifying where shortest_rank = 1 and qualifying_count >= 2
),

final as (
    select
        periods.period_grain,
        periods.period_start,
        periods.cause,
        longest.municipality_code as longest_municipality_code,
        longest_name.municipality as longest_municipality,
        longest.mean_min as longest_mean_min,
        shortest.municipality_code as shortest_municipality_code,
        shortest_name.municipality as shortest_municipality,
        shortest.mean_min as shortest_mean_min,
        longest.mean_min - shortest.mean_min as spread_min
    from periods
    left join longest
        on periods.period_grain = longest.period_grain
        and periods.period_start = longest.period_start
        and periods.cause is not distinct from longest.cause
    left join shortest
        on periods.period_grain = shortest.period_grain
        and periods.period_start = shortest.period_start
        and periods.cause is not distinct from shortest.cause
    left join municipalities as longest_name on longest.municipality_code = longest_name.municipality_code
    left join municipalities as shortest_name on shortest.municipality_code = shortest_name.municipality_code
)

select * from final
