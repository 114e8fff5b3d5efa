/*
  fct_outreach — one row per activity-log row (additive: identical rows are separate
  activities); activities is the row's `antal`.
*/
with activities as (
    select * from stg_outreach__activities
),

final as (
    select
        activity_date,
        date_trunc('month', activity_date)::date as month,
        year(activity_date) as year,
        municipality_code,
        activity,
        activities,
        local_area,
        file_identity,
        source_line
    from activities
)

select * from final
