/*
  stg_roster__ambassadors — one row per staged roster row of every roster file.
  Local-area names are compared after trimming spaces and Unicode NFC normalisation.
*/
with source as (
    select * from state.staged_ambassadors
),

renamed as (
    select
        ambassadoer_id as ambassador_id,
        nfc_normalize(trim(lokalomraade)) as local_area,
        kommunekode as municipality_code,
        aktiv_fra as active_from,
        aktiv_til as active_to,
        file_identity,
        line as source_line
    from source
)

select * from renamed
