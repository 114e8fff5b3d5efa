/*
  kpi_data_quality — one row per (month, municipality_code, source) for reports, dispatches
  and outreach where rows exist, over the files now in force (ingested; a rejected file counts
  nowhere): rows that passed validation (superseded versions and duplicates included), rows
  quarantined, and the quarantined share. Rows, not `antal`. A NULL key means "not
  attributable" (see int_quarantine_cells), not "all": there are no rollups. Counts only.
  Reads the staged rows of the state whole (every version of every key).
*/
with staged_reports as (
    select * from state.staged_reports
),

staged_dispatches as (
    select * from state.staged_dispatches
),

staged_outreach as (
    select * from state.staged_outreach
),

files as (
    select * from stg_state__files
),

quarantined as (
    select * from int_quarantine_cells
),

municipalities as (
    select * from dim_municipality
),

staged_instants as (
    -- Counted per UTC hour before any time zone work: since 1894 Denmark's offsets are whole hours,
    -- so every instant of a UTC hour lies in the same local month, and ~40k hours are converted
    -- instead of every row (a nightly build re-reads the state whole). An earlier instant (local
    -- mean time, +0:50:20) keeps its own microsecond.
    select 'reports' as source, file_identity, kommunekode as municipality_code,
           case when anmeldt_tid >= timestamptz '1894-01-01 00:00:00+00'
                then floor(epoch_us(anmeldt_tid) / 3600000000)::bigint * 3600000000
                else epoch_us(anmeldt_tid) end as utc_us,
           count(*) as rows
    from staged_reports
    group by all
    union all
    select 'dispatches', file_identity, kommunekode,
           case when modtaget >= timestamptz '1894-01-01 00:00:00+00'
                then floor(epoch_us(modtaget) / 3600000000)::bigint * 3600000000
                else epoch_us(modtaget) end,
           count(*)
    from staged_dispatches
    group by all
),

staged as (
    select source, file_identity, municipality_code,
           date_trunc('month', timezone('Europe/Copenhagen', timezone('UTC', make_timestamp(utc_us))))::date
               as month,
           rows
    from staged_instants
    union all
    select 'outreach', file_identity, kommunekode, date_trunc('month', dato)::date, count(*)
    from staged_outreach
    group by all
),

valid as (
    select staged.month, staged.municipality_code, staged.source, sum(staged.rows) as rows_valid,
           0 as rows_quarantined
    from staged
    inner join files on staged.file_identity = files.file_identity and staged.source = files.source
    where files.status = 'ingested'
    group by all
),

invalid as (
    select month, municipality_code, source, 0 as rows_valid, count(*) as rows_quarantined
    from quarantined
    group by all
),

cells as (
    select
        month,
        municipality_code,
        source,
        sum(rows_valid)::bigint as rows_valid,
        sum(rows_quarantined)::bigint as rows_quarantined
    from (select * from valid union all select * from invalid)
    group by month, municipality_code, source
),

final as (
    select
        cells.month,
        cells.municipality_code,
        municipalities.municipality,
        cells.source,
        cells.rows_valid,
        cells.rows_quarantined,
        cells.rows_quarantined / (cells.rows_valid + cells.rows_quarantined)::double as quarantined_share
    from cells
    left join municipalities on cells.municipality_code = municipalities.municipality_code
)

select * from final
