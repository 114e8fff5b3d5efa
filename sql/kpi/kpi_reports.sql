/*
  kpi_reports — one row per (month, municipality_code, law_area) with reports: distinct
  journal numbers after corrections, and reports per 1,000 inhabitants of that year's
  population (or the nearest year held, named in population_year). Base rows only.
*/
with reports as (
    select * from fct_reports
),

population as (
    select * from int_population_by_year
),

municipalities as (
    select * from dim_municipality
),

counted as (
    select month, year, municipality_code, law_area, count(distinct journal_number) as reports
    from reports
    group by all
),

final as (
    select
        counted.month,
        counted.municipality_code,
        municipalities.municipality,
        counted.law_area,
        counted.reports,
        counted.reports * 1000.0 / population.population as reports_per_1000,
        population.population_year::integer as population_year
    from counted
    left join population
        on counted.municipality_code = population.municipality_code
        and counted.year = population.year
    left join municipalities on counted.municipality_code = municipalities.municipality_code
)

select * from final
