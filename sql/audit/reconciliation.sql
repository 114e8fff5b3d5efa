/*
  audit: reconciliation — Reconciliation of the built release: every check row holds what is expected and what the release holds
(KPI = facts, district = sum of municipalities, all causes = sum of causes, row conservation per file,
data quality = the state's row counts).
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
union all select 'year over year: district reports = kpi_reports',
       (select coalesce(sum(reports), 0) from kpi_reports),
       (select coalesce(sum(value), 0)::bigint from kpi_year_over_year
        where measure = 'reports' and municipality_code is null)
union all select 'year over year: district = sum of municipalities (every count)',
       (select count(*) from kpi_year_over_year d where municipality_code is null
        and (measure in ('reports', 'callouts', 'responses') or measure like 'outreach\_%' escape '\')),
       (select count(*) from kpi_year_over_year d where municipality_code is null
        and (measure in ('reports', 'callouts', 'responses') or measure like 'outreach\_%' escape '\') and value =
           (select sum(value) from kpi_year_over_year m where m.municipality_code is not null
            and m.year = d.year and m.measure = d.measure))
union all select 'trend: district = sum of municipalities (every quarter, cause)',
       (select count(*) from kpi_response_time_trend d where municipality_code is null),
       (select count(*) from kpi_response_time_trend d where municipality_code is null and responses =
           (select sum(responses) from kpi_response_time_trend m where m.municipality_code is not null
            and m.quarter_start = d.quarter_start and m.cause is not distinct from d.cause))
union all select 'data quality: valid rows = rows staged by the files in force',
       (select coalesce(sum(rows_staged), 0) from state.files
        where status = 'ingested' and source in ('reports', 'dispatches', 'outreach')),
       (select coalesce(sum(rows_valid), 0) from kpi_data_quality)
union all select 'data quality: quarantined rows = rows quarantined in the files in force',
       (select coalesce(sum(rows_quarantined), 0) from state.files
        where status = 'ingested' and source in ('reports', 'dispatches', 'outreach')),
       (select coalesce(sum(rows_quarantined), 0) from kpi_data_quality)
union all select 'report: call-outs by month = kpi_callouts',
       (select coalesce(sum(callouts), 0) from kpi_callouts), (select coalesce(sum(callouts), 0) from rpt_callouts_by_month)
union all select 'row conservation: read = staged + quarantined (every ingested file)',
       (select count(*) from state.files where status = 'ingested'),
       (select count(*) from state.files where status = 'ingested' and rows_read = rows_staged + rows_quarantined)
