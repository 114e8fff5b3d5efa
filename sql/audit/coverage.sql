/*
  audit: coverage — Every month from the first to the last month with reports is present: the number missing (0 expected).
*/
with months as (select distinct month from kpi_reports),
span as (select unnest(range(min(month), max(month) + interval 1 month, interval 1 month))::date as month
         from months having count(*) > 0)
select count(*) filter (where months.month is null) as missing_months
from span left join months using (month)
