/*
  stg_outreach__activities — one row per staged activity-log row (rows are additive:
  identical rows are separate activities). `antal` is the number of activities in the row.
*/
with source as (
    select * from state.staged_outreach
),

renamed as (
    select
        dato as activity_date,
        kommunekode as municipality_code,
        aktivitet as activity,
        antal as activities,
        nullif(nfc_normalize(trim(lokalomraade)), '') as local_area,
        file_identity,
        line as source_line
    from source
)

select * from renamed
