/*
  kpi_year_summary — one row per year: the deck's overview ("Overblik"), computed from the
  other KPI tables (district totals).
*/
with years as (
    select * from int_years
),

municipalities as (
    select * from dim_municipality
),

population as (
    select year, sum(population)::bigint as population from int_population_by_year group by year
),

reports as (
    select year(month) as year, sum(reports)::bigint as reports from kpi_reports group by 1
),

callouts as (
    select year(month) as year, sum(callouts)::bigint as callouts from kpi_callouts group by 1
),

responses as (
    select year(period_start) as year, responses as timed_responses, mean_min as mean_response_min
    from kpi_response_times
    where period_grain = 'year' and municipality_code is null and cause is null
),

ambassadors as (
    select year, ambassadors, local_areas
    from kpi_safety_ambassadors
    where municipality_code is null
),

outreach as (
    select
        year(month) as year,
        sum(activities) filter (where activity = 'mobil_politistation')::bigint as mobile_station_outings,
        sum(activities) filter (where activity = 'tryghedsopfoelgning')::bigint as safety_followups,
        sum(activities) filter (where activity = 'borgerraadgiver')::bigint as citizen_adviser_inquiries,
        sum(activities) filter (where activity = 'sub_besoeg')::bigint as sub_visits,
        sum(activities) filter (where activity = 'foredrag')::bigint as talks,
        sum(activities) filter (where activity = 'faerdselskontrol')::bigint as traffic_controls
    from kpi_outreach
    group by 1
),

final as (
    select
        years.year::integer as year,
        (select count(*) from municipalities) as municipalities,
        population.population,
        coalesce(reports.reports, 0) as reports,
        coalesce(callouts.callouts, 0) as callouts,
        coalesce(responses.timed_responses, 0) as timed_responses,
        responses.mean_response_min,
        coalesce(ambassadors.ambassadors, 0) as safety_ambassadors,
        coalesce(ambassadors.local_areas, 0) as ambassador_local_areas,
        coalesce(outreach.mobile_station_outings, 0) as mobile_station_outings,
        coalesce(outreach.safety_followups, 0) as safety_followups,
        coalesce(outreach.citizen_adviser_inquiries, 0) as citizen_adviser_inquiries,
        coalesce(outreach.sub_visits, 0) as sub_visits,
        coalesce(outreach.talks, 0) as talks,
        coalesce(outreach.traffic_controls, 0) as traffic_controls
    from years
    left join population on years.year = population.year
    left join reports on years.year = reports.year
    left join callouts on years.year = callouts.year
    left join responses on years.year = responses.year
    left join ambassadors on years.year = ambassadors.year
    left join outreach on years.year = outreach.year
)

select * from final
