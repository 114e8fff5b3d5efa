/*
  kpi_safety_ambassadors — one row per (year, municipality_code), municipality_code NULL =
  the district: ambassadors active at any time in the year and the distinct local areas
  (municipality_code, local_area) they cover. Distinct counts are computed at each level.
*/
with ambassadors as (
    select * from dim_ambassadors
),

years as (
    select * from int_years
),

municipalities as (
    select * from dim_municipality
),

active as (
    select years.year, ambassadors.*
    from years
    inner join ambassadors
        on ambassadors.active_from <= make_date(years.year, 12, 31)
        and (ambassadors.active_to is null or ambassadors.active_to >= make_date(years.year, 1, 1))
),

counted as (
    select
        year::integer as year,
        municipality_code,
        count(distinct ambassador_id) as ambassadors,
        count(distinct (municipality_code, local_area)) as local_areas
    from active
    group by grouping sets ((year, municipality_code), (year))
),

final as (
    select
        counted.year,
        counted.municipality_code,
        municipalities.municipality,
        counted.ambassadors,
        counted.local_areas
    from counted
    left join municipalities on counted.municipality_code = municipalities.municipality_code
)

select * from final
