/*
  rpt_revisions — kpi_revisions in the report's terms: the key decoded into month, municipality
  (code and name) and category (law area, cause or activity), and for a restated mean the
  month's responses now, so the report can hide a mean computed from a count it hides.
*/
with decoded as (
    select
        r.*,
        coalesce(json_extract_string(r.key, '$.month'), json_extract_string(r.key, '$.period_start'))::date
            as month,
        json_extract(r.key, '$.municipality_code')::integer as municipality_code,
        coalesce(json_extract_string(r.key, '$.law_area'), json_extract_string(r.key, '$.cause'),
                 json_extract_string(r.key, '$.activity')) as category,
        json_extract(r.key, '$.priority')::integer as priority
    from kpi_revisions as r
)

select
    d.release_id, d.previous_release_id, d.table_name, d.column_name, d.month, d.municipality_code,
    m.municipality, d.category, d.priority, d.old_value, d.new_value, d.inputs_changed, d.code_changed,
    t.responses as responses_now
from decoded as d
left join dim_municipality as m on m.municipality_code = d.municipality_code
left join kpi_response_times as t
    on d.table_name = 'kpi_response_times' and t.period_grain = 'month' and t.period_start = d.month
    and t.municipality_code is not distinct from d.municipality_code and t.cause is not distinct from d.category
