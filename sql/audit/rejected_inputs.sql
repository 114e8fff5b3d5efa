/*
  audit: rejected_inputs — per source, the files the current release was built from that the state
  now holds as rejected (a re-delivery that could not be read): named when closed months move.
*/
select source, list(identity || ' (' || reason || ')' order by identity) from state.files
where status = 'rejected' and identity in (select unnest(json_keys(input_files::json)) from current._release)
group by source
