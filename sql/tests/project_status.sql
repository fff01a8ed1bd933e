-- Data tests of project_status.

-- test: unique key (project_id)
select project_id, count(*) as rows
from analytics.project_status
group by project_id
having count(*) > 1;

-- test: every project with a current image has a status
select distinct images.project_id
from analytics.stg_images as images
left join analytics.project_status as status
    on status.project_id = images.project_id
where images.is_current and status.project_id is null;

-- test: last read whole no later than its latest run, and only ok runs vouch for it
select project_id, latest_status, latest_as_of, last_ok_at
from analytics.project_status
where last_ok_at > latest_as_of or (latest_status = 'ok' and last_ok_at is distinct from latest_as_of);
