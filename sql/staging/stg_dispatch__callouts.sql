/*
  stg_dispatch__callouts — one row per staged call-out version (corrections not yet resolved).
  Renames the command-and-control fields and adds the local time the call was received.
*/
with source as (
    select * from state.staged_dispatches
),

renamed as (
    select
        haendelse_id as incident_id,
        modtaget as received_at,
        timezone('Europe/Copenhagen', modtaget) as received_local,
        disponeret as dispatched_at,
        fremme as on_scene_at,
        afsluttet as closed_at,
        prioritet as priority,
        aarsag as cause,
        responstid_maalt as response_measured,
        kommunekode as municipality_code,
        aflyst as cancelled,
        sidst_aendret as changed_at,
        journalnr as journal_number,
        file_identity,
        line as source_line
    from source
)

select * from renamed
