/*
  stg_cases__reports — one row per staged report version (corrections not yet resolved).
  Renames the case system's columns and adds local (Europe/Copenhagen) times.
*/
with source as (
    select * from state.staged_reports
),

renamed as (
    select
        journalnr as journal_number,
        anmeldt_tid as reported_at,
        timezone('Europe/Copenhagen', anmeldt_tid) as reported_local,
        gerningstid_fra as offence_began_at,
        kommunekode as municipality_code,
        lovomraade as law_area,
        overtraedelse as offence,
        sidst_aendret as changed_at,
        file_identity,
        line as source_line
    from source
)

select * from renamed
