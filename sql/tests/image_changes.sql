-- Data tests of image_changes.

-- test: unique key (project_id, image_id, changed_at, change)
select project_id, image_id, changed_at, change, count(*) as rows
from analytics.image_changes
group by project_id, image_id, changed_at, change
having count(*) > 1;

-- test: not null
select * from analytics.image_changes
where changed_at is null or project_id is null or image_id is null or change is null;

-- test: change is added, removed or changed
select * from analytics.image_changes where change not in ('added', 'removed', 'changed');

-- test: every current image was added once more than it was removed
select coalesce(c.project_id, i.project_id) as project_id, c.net_added, i.current_images
from (
    select project_id,
        count(*) filter (where change = 'added') - count(*) filter (where change = 'removed') as net_added
    from analytics.image_changes
    group by project_id
) as c
full join (select project_id, count(*) as current_images from analytics.image_inventory group by project_id) as i
    on c.project_id = i.project_id
where coalesce(c.net_added, 0) <> coalesce(i.current_images, 0);

-- test: each new version is one added or changed row
select versions, added_or_changed
from (select count(*) as versions from analytics.stg_images),
     (select count(*) as added_or_changed from analytics.image_changes where change in ('added', 'changed'))
where versions <> added_or_changed;
