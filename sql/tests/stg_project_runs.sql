-- test: unique key (run_id, project_id)
select run_id, project_id, count(*) as rows
from analytics.stg_project_runs
group by run_id, project_id
having count(*) > 1;

-- test: status is ok or failed
select run_id, project_id, status
from analytics.stg_project_runs
where status not in ('ok', 'failed');
