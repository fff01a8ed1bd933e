-- Data tests of inventory_summary.

-- test: unique key (region, project_id, os_type, image_type, architecture)
select region, project_id, os_type, image_type, architecture, count(*) as rows
from analytics.inventory_summary
group by region, project_id, os_type, image_type, architecture
having count(*) > 1;

-- test: stale counts add up to image_inventory per project
select coalesce(s.project_id, i.project_id) as project_id, s.stale as summary_stale, i.stale as inventory_stale
from (select project_id, sum(stale_images) as stale from analytics.inventory_summary group by project_id) as s
full join (select project_id, count(*) filter (where is_stale) as stale from analytics.image_inventory
           group by project_id) as i
    on s.project_id = i.project_id
where s.stale is distinct from i.stale;

-- test: counts add up to image_inventory per project
select coalesce(s.project_id, i.project_id) as project_id, s.images as summary_images, i.images as inventory_images
from (select project_id, sum(images) as images from analytics.inventory_summary group by project_id) as s
full join (select project_id, count(*) as images from analytics.image_inventory group by project_id) as i
    on s.project_id = i.project_id
where s.images is distinct from i.images;
