-- Data tests of os_version_trend.

-- test: unique key (day, os_type, os_version)
select day, os_type, os_version, count(*) as rows
from analytics.os_version_trend
group by day, os_type, os_version
having count(*) > 1;

-- test: images are held by 1 to that many projects, and no image by no project
select * from analytics.os_version_trend
where (images > 0 and (projects < 1 or projects > images)) or (images = 0 and projects <> 0);

-- test: no negative counts
select * from analytics.os_version_trend where images < 0 or projects < 0;

-- test: every day from the first load to the last (when any image was ever loaded)
select expected_days, trend_days
from (
    select date_diff('day', min(as_of)::date, max(as_of)::date) + 1 as expected_days
    from analytics.stg_project_runs
),
(select count(distinct day) as trend_days from analytics.os_version_trend)
where expected_days <> trend_days and exists (select 1 from analytics.stg_images);

-- test: the last day equals the current inventory per os_type and os_version
select coalesce(t.os_type, i.os_type) as os_type, coalesce(t.os_version, i.os_version) as os_version,
    t.images as trend_images, i.images as inventory_images
from (
    select os_type, os_version, images
    from analytics.os_version_trend
    where day = (select max(day) from analytics.os_version_trend) and images > 0
) as t
full join (
    select coalesce(os_type, 'unknown') as os_type, coalesce(os_version, 'unknown') as os_version,
        count(*) as images
    from analytics.image_inventory
    group by 1, 2
) as i
    on t.os_type = i.os_type and t.os_version = i.os_version
where t.images is distinct from i.images;
