/*
  kpi_response_time_trend — one row per (quarter_start, municipality_code, cause), NULL = all
  (the four rollups of kpi_response_times), for every quarter with a response in the district
  whose rolling window holds a response. Window = the quarter and the three before it;
  comparison window = the four quarters one year earlier; statistics pooled over each
  window's responses, on integer seconds, / 60. The change, its 95 % interval
  (1.96 * sqrt(s1^2/n1 + s2^2/n2), s = stddev_samp) and significance need both windows
  complete: every quarter on or after the first quarter with a response in the district and
  on or before the quarter holding data_through (computed as sql/audit/release_facts.sql does);
  the interval also needs 20 responses in each window.
*/
with callouts as (
    select * from fct_callouts
),

reports as (
    select * from fct_reports
),

outreach as (
    select * from fct_outreach
),

municipalities as (
    select * from dim_municipality
),

release_facts as (
    select least((select max(reported_local)::date from reports),
                 (select max(received_local)::date from callouts),
                 (select max(activity_date) from outreach)) as data_through
),

responses as (
    select
        date_trunc('quarter', received_local)::date as quarter_start,
        municipality_code,
        cause,
        response_seconds
    from callouts
    where response_seconds is not null
),

district_quarters as (
    select distinct quarter_start from responses
),

bounds as (
    select
        (select min(quarter_start) from district_quarters) as first_quarter,
        date_trunc('quarter', data_through)::date as last_quarter
    from release_facts
),

window_ends as (
    select quarter_start as window_end from district_quarters
    union
    select (quarter_start - interval 12 month)::date from district_quarters
),

windowed as (
    select window_ends.window_end, responses.municipality_code, responses.cause, responses.response_seconds
    from window_ends
    inner join responses
        on responses.quarter_start between (window_ends.window_end - interval 9 month)::date
        and window_ends.window_end
),

window_stats as (
    select
        window_end,
        municipality_code,
        cause,
        count(*) as responses,
        mean_min(response_seconds) as mean_min,
        quantile_min(response_seconds, 0.5) as median_min,
        quantile_min(response_seconds, 0.9) as p90_min,
        -- stddev_samp from exact integer sums: a float sum's order varies with DuckDB's threads, and
        -- a re-run must give bit-identical results
        case when count(*) > 1 then sqrt((count(*)::hugeint * sum(response_seconds::hugeint * response_seconds)
            - sum(response_seconds::hugeint) * sum(response_seconds::hugeint))::double
            / (count(*) * (count(*) - 1))) end / 60 as sd_min
    from windowed
    group by grouping sets (
        (window_end, municipality_code, cause),
        (window_end, municipality_code),
        (window_end, cause),
        (window_end)
    )
),

paired as (
    select
        current_window.window_end as quarter_start,
        current_window.municipality_code,
        current_window.cause,
        current_window.responses,
        current_window.mean_min,
        current_window.median_min,
        current_window.p90_min,
        current_window.sd_min,
        coalesce(previous_window.responses, 0) as prev_responses,
        previous_window.mean_min as prev_mean_min,
        previous_window.sd_min as prev_sd_min,
        (current_window.window_end - interval 9 month)::date >= bounds.first_quarter
            and current_window.window_end <= bounds.last_quarter as window_complete,
        (current_window.window_end - interval 21 month)::date >= bounds.first_quarter
            and (current_window.window_end - interval 12 month)::date <= bounds.last_quarter
            as prev_window_complete
    from window_stats as current_window
    inner join district_quarters on current_window.window_end = district_quarters.quarter_start
    cross join bounds
    left join window_stats as previous_window
        on previous_window.window_end = (current_window.window_end - interval 12 month)::date
        and previous_window.municipality_code is not distinct from current_window.municipality_code
        and previous_window.cause is not distinct from current_window.cause
),

changes as (
    select
        *,
        case when window_complete and prev_window_complete then mean_min - prev_mean_min end as change_min,
        case when window_complete and prev_window_complete and responses >= 20 and prev_responses >= 20
            then 1.96 * sqrt(sd_min * sd_min / responses + prev_sd_min * prev_sd_min / prev_responses) end as half_width_min
    from paired
),

final as (
    select
        changes.quarter_start,
        changes.municipality_code,
        municipalities.municipality,
        changes.cause,
        changes.responses,
        changes.mean_min,
        changes.median_min,
        changes.p90_min,
        changes.responses < 20 as low_sample,
        changes.prev_responses,
        changes.prev_mean_min,
        changes.window_complete,
        changes.prev_window_complete,
        changes.change_min,
        case when changes.prev_mean_min <> 0 then 100 * changes.change_min / changes.prev_mean_min end
            as change_pct,
        changes.change_min - changes.half_width_min as change_ci_low_min,
        changes.change_min + changes.half_width_min as change_ci_high_min,
        changes.change_min - changes.half_width_min > 0
            or changes.change_min + changes.half_width_min < 0 as change_significant
    from changes
    left join municipalities on changes.municipality_code = municipalities.municipality_code
)

select * from final
