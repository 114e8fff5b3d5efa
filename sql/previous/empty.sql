/*
  previous — the release a build replaces, as the revisions log reads it: when there is none (the
  first release) or it predates a table, these empty tables stand in for it. Not a model: the
  build creates them in the in-memory catalog `previous` (flows/transform/transform.py).
*/
create table previous._release (release_id varchar, data_through date, input_files varchar, code_version varchar);
create table previous.kpi_reports (month date, municipality_code integer, law_area varchar, reports bigint);
create table previous.kpi_callouts (month date, municipality_code integer, cause varchar, priority integer,
                                    callouts bigint);
create table previous.kpi_outreach (month date, municipality_code integer, activity varchar, activities bigint);
create table previous.kpi_response_times (period_grain varchar, period_start date, municipality_code integer,
                                          cause varchar, responses bigint, mean_min double);
create table previous.kpi_revisions (release_id varchar, previous_release_id varchar, table_name varchar,
                                     key varchar, column_name varchar, old_value double, new_value double,
                                     inputs_changed boolean, code_changed boolean);
