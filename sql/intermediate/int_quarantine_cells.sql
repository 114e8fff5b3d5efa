/*
  int_quarantine_cells — one row per quarantined row of reports, dispatches and outreach in a
  file now in force (an ingested file: a rejected one counts nowhere), with the cell it is
  attributed to. Each key on its own: month = the local month of the period field (anmeldt_tid,
  modtaget, dato) when that raw text has the source's format and is a real calendar date;
  municipality_code = kommunekode when it is one of the district's codes; otherwise NULL
  ("not attributable"). A line kept only as length and hash (kind 'line') is NULL, NULL.
  Counts only leave this model: no raw value is carried on.
*/
with quarantine as (
    select * from state.quarantine
),

files as (
    select * from stg_state__files
),

municipalities as (
    select * from dim_municipality
),

in_force as (
    select
        quarantine.source,
        quarantine.kind,
        case quarantine.source
            when 'reports' then quarantine.raw_values ->> 'anmeldt_tid'
            when 'dispatches' then quarantine.raw_values ->> 'modtaget'
            when 'outreach' then quarantine.raw_values ->> 'dato'
        end as period_text,
        quarantine.raw_values ->> 'kommunekode' as municipality_text
    from quarantine
    inner join files
        on quarantine.file_identity = files.file_identity
        and quarantine.source = files.source
    where files.status = 'ingested'
        and quarantine.source in ('reports', 'dispatches', 'outreach')
),

parsed as (
    select
        source,
        kind,
        case
            when source = 'reports'
                and regexp_full_match(period_text, '\d{2}-\d{2}-\d{4} \d{2}:\d{2}:\d{2}')
                -- local wall-clock time: its own month (a spring-gap time still has a real date)
                then try_strptime(period_text, '%d-%m-%Y %H:%M:%S')
            when source = 'dispatches'
                and regexp_full_match(period_text,
                                      '\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})')
                -- an instant with its offset: the Danish wall-clock time it was
                then timezone('Europe/Copenhagen', try_cast(period_text as timestamptz))
            when source = 'outreach' and regexp_full_match(period_text, '\d{2}-\d{2}-\d{4}')
                then try_strptime(period_text, '%d-%m-%Y')
        end as period_local,
        case when regexp_full_match(municipality_text, '-?\d{1,9}')
            then try_cast(municipality_text as integer) end as municipality_number
    from in_force
),

final as (
    select
        parsed.source,
        case when parsed.kind <> 'line' then date_trunc('month', parsed.period_local)::date end as month,
        case when parsed.kind <> 'line' then municipalities.municipality_code end as municipality_code
    from parsed
    left join municipalities on parsed.municipality_number = municipalities.municipality_code
)

select * from final
