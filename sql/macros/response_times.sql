-- Response-time aggregates shared by kpi_response_times, kpi_response_time_trend and
-- kpi_district_comparison (SPEC 4, 4.1): computed on integer seconds, shown as minutes (seconds /
-- 60, unrounded). Temporary macros: the build creates them on its connection before any model
-- runs; no release file holds them, so a reader of a release needs none.
create or replace temp macro mean_min(seconds) as avg(seconds) / 60;

-- continuous quantile (interpolated between the two nearest values), in minutes
create or replace temp macro quantile_min(seconds, q) as quantile_cont(seconds, q) / 60;

-- fraction (0-1) of the group's responses within the limit (the limit included)
create or replace temp macro share_within(seconds, limit_seconds) as
    count(*) filter (where seconds <= limit_seconds) / count(*)::double;
