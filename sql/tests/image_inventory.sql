-- Data tests of image_inventory.

-- test: unique key (project_id, image_id)
select project_id, image_id, count(*) as rows
from analytics.image_inventory
group by project_id, image_id
having count(*) > 1;

-- test: not null
select * from analytics.image_inventory
where project_id is null or image_id is null or region is null or first_seen_at is null
    or last_changed_at is null or is_stale is null;

-- test: first seen no later than last changed
select project_id, image_id, first_seen_at, last_changed_at
from analytics.image_inventory
where first_seen_at > last_changed_at;

-- test: one row per current version in workspace_images.images
select current_rows, inventory_rows
from (select count(*) as current_rows from workspace_images.images where _dlt_valid_to is null),
     (select count(*) as inventory_rows from analytics.image_inventory)
where current_rows <> inventory_rows;
