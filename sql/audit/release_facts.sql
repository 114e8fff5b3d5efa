/*
  audit: release_facts — data_through: the last day with data from every event source (reports, call-outs, outreach).
*/
select least((select max(reported_local)::date from fct_reports),
             (select max(received_local)::date from fct_callouts),
             (select max(activity_date) from fct_outreach)) as data_through
