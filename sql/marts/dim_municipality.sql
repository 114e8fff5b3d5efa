/*
  dim_municipality — one row per municipality of the district (of the country, in the national
  release), with its police district and its latest population figure and the year it is for.
*/
with municipalities as (
    select * from ref_municipalities
),

population as (
    select * from ref_population
),

latest as (
    select municipality_code, arg_max(population, year) as population, max(year) as population_year
    from population
    group by municipality_code
),

final as (
    select
        municipalities.municipality_code::integer as municipality_code,
        municipalities.municipality,
        municipalities.police_district,
        municipalities.district_code,
        latest.population::integer as population,
        latest.population_year::integer as population_year
    from municipalities
    left join latest on municipalities.municipality_code = latest.municipality_code
)

select * from final
