/*
  stg_state__files — one row per file identity the state holds: its current version's hash,
  status (ingested or rejected) and row counts.
*/
with source as (
    select * from state.files
)

select
    identity as file_identity,
    source,
    sha256,
    status,
    reason,
    rows_read,
    rows_staged,
    rows_quarantined
from source
