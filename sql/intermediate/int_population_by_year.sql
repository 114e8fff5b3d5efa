/*
  int_population_by_year — one row per (municipality_code, year) of int_years: the
  population of that year, or of the nearest year held (ties: the earlier year).
*/
with population as (
    select * from ref_population
),

years as (
    select * from int_years
),

candidates as (
    select
        population.municipality_code,
        years.year,
        population.population,
        population.year as population_year,
        row_number() over (
            partition by population.municipality_code, years.year
            order by abs(population.year - years.year), population.year
        ) as nearness
    from years
    cross join population
),

final as (
    select municipality_code, year, population, population_year
    from candidates
    where nearness = 1
)

select * from final
