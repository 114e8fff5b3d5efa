/*
  dim_ambassadors — one row per ambassador of the roster in force: the ingested roster file
  whose identity sorts last (each roster file is a complete snapshot). No names.
*/
with roster as (
    select * from stg_roster__ambassadors
),

files as (
    select * from stg_state__files
),

in_force as (
    select max(file_identity) as file_identity
    from files
    where source = 'ambassadors' and status = 'ingested'
),

final as (
    select
        roster.ambassador_id,
        roster.municipality_code,
        roster.local_area,
        roster.active_from,
        roster.active_to,
        roster.file_identity
    from roster
    inner join in_force on roster.file_identity = in_force.file_identity
)

select * from final
