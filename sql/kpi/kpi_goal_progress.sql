/*
  kpi_goal_progress — one row per (year, goal, municipality_code) for every year with a
  response in the district, every row present (value NULL where undefined). The district's
  goals (the deck): `shrink_spread` (municipality_code NULL): the year's spread_min;
  `improve_small_municipality`: one row per municipality whose population (the year's, nearest
  held) is strictly below the median of the municipal populations: its year mean over all
  causes against the district's. met = value < prev_value (the year before's), NULL when
  either is NULL or, for a municipality, either year has fewer than 20 responses.
*/
with response_times as (
    select * from kpi_response_times
    where period_grain = 'year' and cause is null
),

spread as (
    select * from kpi_response_time_spread
    where period_grain = 'year' and cause is null
),

municipalities as (
    select * from dim_municipality
),

population as (
    select * from int_population_by_year
    where municipality_code in (select municipality_code from municipalities)
),

years as (
    select year(period_start) as year, mean_min as district_mean_min
    from response_times
    where municipality_code is null
),

median_population as (
    select year, quantile_cont(population, 0.5) as median_population
    from population
    group by year
),

small_municipalities as (
    select population.year, population.municipality_code
    from population
    inner join median_population on population.year = median_population.year
    where population.population < median_population.median_population
),

shrink_spread as (
    select
        years.year,
        'shrink_spread' as goal,
        null::integer as municipality_code,
        this_year.spread_min as value,
        null::double as district_value,
        null::double as gap_min,
        null::bigint as responses,
        last_year.spread_min as prev_value,
        this_year.spread_min < last_year.spread_min as met
    from years
    left join spread as this_year on year(this_year.period_start) = years.year
    left join spread as last_year on year(last_year.period_start) = years.year - 1
),

improve_small_municipality as (
    select
        years.year,
        'improve_small_municipality' as goal,
        small_municipalities.municipality_code,
        this_year.mean_min as value,
        years.district_mean_min as district_value,
        this_year.mean_min - years.district_mean_min as gap_min,
        coalesce(this_year.responses, 0) as responses,
        last_year.mean_min as prev_value,
        -- no responses in a year: NULL >= 20 is NULL, so met is NULL
        case when this_year.responses >= 20 and last_year.responses >= 20
            then this_year.mean_min < last_year.mean_min end as met
    from years
    inner join small_municipalities on years.year = small_municipalities.year
    left join response_times as this_year
        on year(this_year.period_start) = years.year
        and this_year.municipality_code = small_municipalities.municipality_code
    left join response_times as last_year
        on year(last_year.period_start) = years.year - 1
        and last_year.municipality_code = small_municipalities.municipality_code
),

goals as (
    select * from shrink_spread
    union all
    select * from improve_small_municipality
),

final as (
    select
        goals.year::integer as year,
        goals.goal,
        goals.municipality_code,
        municipalities.municipality,
        goals.value,
        goals.district_value,
        goals.gap_min,
        goals.responses,
        goals.prev_value,
        goals.value - goals.prev_value as change,
        goals.met
    from goals
    left join municipalities on goals.municipality_code = municipalities.municipality_code
)

select * from final
