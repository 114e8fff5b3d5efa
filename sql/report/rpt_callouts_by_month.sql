/*
  rpt_callouts_by_month — one row per local month: the district's call-outs (all causes and
  priorities, cancelled ones included), for the report's monthly chart. The report only selects.
*/
select month, sum(callouts)::bigint as callouts
from kpi_callouts
group by month
order by month
