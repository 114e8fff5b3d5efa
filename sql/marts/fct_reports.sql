/*
  fct_reports — one row per report (journal_number), after corrections: the valid version
  with the latest change wins; on a tie, the file whose identity sorts last. No personal data.
*/
with reports as (
    select * from stg_cases__reports
),

ranked as (
    select
        *,
        row_number() over (
            partition by journal_number
            order by changed_at desc, file_identity desc, source_line desc
        ) as version_rank
    from reports
),

final as (
    select
        journal_number,
        reported_at,
        reported_local,
        date_trunc('month', reported_local)::date as month,
        year(reported_local) as year,
        municipality_code,
        law_area,
        offence,
        offence_began_at,
        changed_at,
        file_identity,
        source_line
    from ranked
    where version_rank = 1
)

select * from final
