/*
  audit: state_totals — files, rows read, staged and quarantined, and rejected files per source over
  the state a release is built from (the release's quarantine_summary).
*/
select source, count(*) filter (where status = 'ingested') as files,
       coalesce(sum(rows_read), 0) as read, coalesce(sum(rows_staged), 0) as staged,
       coalesce(sum(rows_quarantined), 0) as quarantined,
       count(*) filter (where status = 'rejected') as rejected_files
from state.files group by source order by source
