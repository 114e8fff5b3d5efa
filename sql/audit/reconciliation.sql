/*
  audit: reconciliation — Reconciliation of the built release: every check row holds what is expected and what the release holds
(KPI = facts, district = sum of municipalities, all causes = sum of causes, row conservation per file).
*/
select 'reports: kpi = facts' as check_name,
       (select count(*) from fct_reports) as expected,
       (select coalesce(sum(reports), 0) from kpi_reports) as actual
union all select 'callouts: kpi = facts',
       (select count(*) from fct_callouts), (select coalesce(sum(callouts), 0) from kpi_callouts)
union all select 'outreach: kpi = facts',
       (select coalesce(sum(activities), 0) from fct_outreach), (select coalesce(sum(activities), 0) from kpi_outreach)
union all select 'responses: kpi = measured facts',
       (select count(*) from fct_callouts where response_seconds is not null),
       (select coalesce(sum(responses), 0) from kpi_response_times
        where period_grain = 'month' and municipality_code is not null and cause is not null)
union all select 'responses: district = sum of municipalities (every period, cause)',
       (select count(*) from kpi_response_times d where municipality_code is null),
       (select count(*) from kpi_response_times d where municipality_code is null and responses =
           (select sum(responses) from kpi_response_times m where m.municipality_code is not null
            and m.period_grain = d.period_grain and m.period_start = d.period_start
            and m.cause is not distinct from d.cause))
union all select 'responses: all causes = sum of causes (every period, municipality)',
       (select count(*) from kpi_response_times d where cause is null),
       (select count(*) from kpi_response_times d where cause is null and responses =
           (select sum(responses) from kpi_response_times m where m.cause is not null
            and m.period_grain = d.period_grain and m.period_start = d.period_start
            and m.municipality_code is not distinct from d.municipality_code))
union all select 'year summary reports = kpi_reports',
       (select coalesce(sum(reports), 0) from kpi_reports), (select coalesce(sum(reports), 0) from kpi_year_summary)
union all select 'year summary callouts = kpi_callouts',
       (select coalesce(sum(callouts), 0) from kpi_callouts), (select coalesce(sum(callouts), 0) from kpi_year_summary)
union all select 'ambassadors: district <= sum of municipalities (every year)',
       (select count(*) from kpi_safety_ambassadors d where municipality_code is null),
       (select count(*) from kpi_safety_ambassadors d where municipality_code is null and ambassadors <=
           (select coalesce(sum(ambassadors), 0) from kpi_safety_ambassadors m
            where m.year = d.year and m.municipality_code is not null))
union all select 'row conservation: read = staged + quarantined (every ingested file)',
       (select count(*) from state.files where status = 'ingested'),
       (select count(*) from state.files where status = 'ingested' and rows_read = rows_staged + rows_quarantined)
