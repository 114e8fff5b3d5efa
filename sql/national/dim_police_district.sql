/*
  dim_police_district — national release only: one row per police district of the reference
  data (all 12, whether or not they are in the build), with its municipalities and population
  (the latest year held).
*/
with districts as (
    select * from ref_police_districts
),

municipalities as (
    select * from ref_country_municipalities
),

population as (
    select municipality_code, arg_max(population, year) as population, max(year) as population_year
    from ref_country_population
    group by municipality_code
),

final as (
    select
        districts.district_code,
        districts.police_district,
        count(municipalities.municipality_code)::integer as municipalities,
        sum(population.population)::bigint as population,
        max(population.population_year)::integer as population_year
    from districts
    left join municipalities on districts.district_code = municipalities.district_code
    left join population on municipalities.municipality_code = population.municipality_code
    group by districts.district_code, districts.police_district
)

select * from final
