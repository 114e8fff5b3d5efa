/*
  kpi_district_comparison — national release only: one row per (period_grain, period_start,
  district_code, cause) for calendar quarters and years, for every district with a timed response
  in the period and every cause with one, plus cause NULL = all causes and district_code NULL = the
  country (the districts in the build). Response statistics pooled over the responses, as in
  kpi_response_times (integer seconds / 60); rank_mean = RANK() by mean_min descending among the
  districts with at least 20 responses (1 = the slowest); reports and reports per 1,000 inhabitants
  on cause-NULL rows.
*/
with callouts as (
    select * from fct_callouts
    where response_seconds is not null
),

reports as (
    select * from fct_reports
),

municipalities as (
    select * from dim_municipality
),

population as (
    select * from int_population_by_year
),

districts as (
    select distinct district_code, police_district from municipalities
),

responses as (
    select municipalities.district_code, callouts.cause, callouts.received_local, callouts.response_seconds
    from callouts
    inner join municipalities on callouts.municipality_code = municipalities.municipality_code
),

by_period as (
    select 'quarter' as period_grain, date_trunc('quarter', received_local)::date as period_start, *
    from responses
    union all
    select 'year', date_trunc('year', received_local)::date, *
    from responses
),

aggregated as (
    select
        period_grain,
        period_start,
        district_code,
        cause,
        count(*) as responses,
        mean_min(response_seconds) as mean_min,
        quantile_min(response_seconds, 0.5) as median_min,
        quantile_min(response_seconds, 0.9) as p90_min,
        share_within(response_seconds, 600) as share_within_10_min,
        share_within(response_seconds, 1200) as share_within_20_min
    from by_period
    group by grouping sets (
        (period_grain, period_start, district_code, cause),
        (period_grain, period_start, district_code),
        (period_grain, period_start, cause),
        (period_grain, period_start)
    )
),

report_periods as (
    select 'quarter' as period_grain, date_trunc('quarter', reports.month)::date as period_start,
           municipalities.district_code
    from reports
    inner join municipalities on reports.municipality_code = municipalities.municipality_code
    union all
    select 'year', date_trunc('year', reports.month)::date, municipalities.district_code
    from reports
    inner join municipalities on reports.municipality_code = municipalities.municipality_code
),

reported as (
    select period_grain, period_start, district_code, count(*) as reports
    from report_periods
    group by grouping sets ((period_grain, period_start, district_code), (period_grain, period_start))
),

district_population as (
    select
        population.year,
        municipalities.district_code,
        sum(population.population)::bigint as population,
        max(population.population_year)::integer as population_year
    from population
    inner join municipalities on population.municipality_code = municipalities.municipality_code
    group by grouping sets ((population.year, municipalities.district_code), (population.year))
),

ranked as (
    select
        aggregated.*,
        case when aggregated.district_code is not null and aggregated.responses >= 20 then
            rank() over (
                partition by aggregated.period_grain, aggregated.period_start, aggregated.cause,
                             aggregated.district_code is not null and aggregated.responses >= 20
                order by aggregated.mean_min desc
            )
        end as rank_mean
    from aggregated
),

final as (
    select
        ranked.period_grain,
        ranked.period_start,
        ranked.district_code,
        districts.police_district,
        ranked.cause,
        ranked.responses,
        ranked.mean_min,
        ranked.median_min,
        ranked.p90_min,
        ranked.share_within_10_min,
        ranked.share_within_20_min,
        ranked.responses < 20 as low_sample,
        ranked.rank_mean::integer as rank_mean,
        case when ranked.cause is null then coalesce(reported.reports, 0) end as reports,
        case when ranked.cause is null
            then coalesce(reported.reports, 0) * 1000.0 / district_population.population end as reports_per_1000,
        case when ranked.cause is null then district_population.population_year end as population_year
    from ranked
    left join districts on ranked.district_code = districts.district_code
    left join reported
        on ranked.period_grain = reported.period_grain
        and ranked.period_start = reported.period_start
        and ranked.district_code is not distinct from reported.district_code
    left join district_population
        on year(ranked.period_start) = district_population.year
        and ranked.district_code is not distinct from district_population.district_code
)

select * from final
