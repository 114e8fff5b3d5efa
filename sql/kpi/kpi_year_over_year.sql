/*
  kpi_year_over_year — long format: one row per (year, municipality_code, measure),
  municipality_code NULL = the district. For every year with data in a source, every
  municipality and the district get a row for each count and rate of that source (0 where
  there is nothing); a response measure has a row only where there are responses. value,
  prev_value (the (year - 1) row's value, NULL when that row does not exist), change,
  change_pct (NULL when prev_value is 0 or NULL); per 1,000 inhabitants with the year's
  population (nearest year held, ties to the earlier), the district's over the sum of the
  municipal populations.
*/
with reports as (
    select * from kpi_reports
),

callouts as (
    select * from kpi_callouts
),

outreach as (
    select * from kpi_outreach
),

response_times as (
    select * from kpi_response_times
    where period_grain = 'year' and cause is null
),

municipalities as (
    select * from dim_municipality
),

population as (
    select * from int_population_by_year
),

activities as (
    select * from (values
        ('mobil_politistation'), ('tryghedsopfoelgning'), ('borgerraadgiver'),
        ('sub_besoeg'), ('foredrag'), ('faerdselskontrol')
    ) as activities (activity)
),

count_measures as (
    select 'reports' as measure, 'reports' as source
    union all select 'callouts', 'dispatches'
    union all select 'responses', 'dispatches'
    union all select 'outreach_' || activity, 'outreach' from activities
),

rate_measures as (
    select 'reports_per_1000' as measure, 'reports' as count_measure, 'reports' as source
    union all select 'callouts_per_1000', 'callouts', 'dispatches'
),

source_years as (
    select 'reports' as source, year(month) as year, count(distinct month) as months_with_data
    from reports group by all
    union all
    select 'dispatches', year(month), count(distinct month) from callouts group by all
    union all
    select 'outreach', year(month), count(distinct month) from outreach group by all
),

areas as (
    select municipality_code from municipalities
    union all
    select null
),

municipal_counts as (
    select year(month) as year, municipality_code, 'reports' as measure, sum(reports) as value
    from reports group by all
    union all
    select year(month), municipality_code, 'callouts', sum(callouts) from callouts group by all
    union all
    select year(period_start), municipality_code, 'responses', sum(responses)
    from response_times where municipality_code is not null group by all
    union all
    select year(month), municipality_code, 'outreach_' || activity, sum(activities) from outreach group by all
),

counts as (
    select year, municipality_code, measure, sum(value) as value
    from municipal_counts
    group by grouping sets ((year, municipality_code, measure), (year, measure))
),

count_rows as (
    select
        source_years.year,
        areas.municipality_code,
        count_measures.measure,
        coalesce(counts.value, 0)::double as value,
        null::integer as population_year,
        source_years.months_with_data
    from source_years
    inner join count_measures on source_years.source = count_measures.source
    cross join areas
    left join counts
        on source_years.year = counts.year
        and areas.municipality_code is not distinct from counts.municipality_code
        and count_measures.measure = counts.measure
),

area_population as (
    select year, municipality_code, population, population_year
    from population
    where municipality_code in (select municipality_code from municipalities)
    union all
    select year, null, sum(population), max(population_year)
    from population
    where municipality_code in (select municipality_code from municipalities)
    group by year
),

rate_rows as (
    select
        count_rows.year,
        count_rows.municipality_code,
        rate_measures.measure,
        count_rows.value * 1000 / area_population.population as value,
        area_population.population_year::integer as population_year,
        count_rows.months_with_data
    from count_rows
    inner join rate_measures on count_rows.measure = rate_measures.count_measure
    left join area_population
        on count_rows.year = area_population.year
        and count_rows.municipality_code is not distinct from area_population.municipality_code
),

response_rows as (
    select
        year(response_times.period_start) as year,
        response_times.municipality_code,
        measures.measure,
        case measures.measure
            when 'mean_response_min' then response_times.mean_min
            when 'median_response_min' then response_times.median_min
            when 'p90_response_min' then response_times.p90_min
            when 'share_within_10_min' then response_times.share_within_10_min
        end as value,
        null::integer as population_year,
        source_years.months_with_data
    from response_times
    cross join (values ('mean_response_min'), ('median_response_min'), ('p90_response_min'),
                       ('share_within_10_min')) as measures (measure)
    inner join source_years
        on source_years.source = 'dispatches' and source_years.year = year(response_times.period_start)
),

measured as (
    select * from count_rows
    union all
    select * from rate_rows
    union all
    select * from response_rows
),

final as (
    select
        measured.year::integer as year,
        measured.municipality_code,
        municipalities.municipality,
        measured.measure,
        measured.value,
        previous.value as prev_value,
        measured.value - previous.value as change,
        case when previous.value <> 0 then 100 * (measured.value - previous.value) / previous.value end
            as change_pct,
        measured.population_year,
        measured.months_with_data::integer as months_with_data
    from measured
    left join measured as previous
        on previous.year = measured.year - 1
        and previous.municipality_code is not distinct from measured.municipality_code
        and previous.measure = measured.measure
    left join municipalities on measured.municipality_code = municipalities.municipality_code
)

select * from final
